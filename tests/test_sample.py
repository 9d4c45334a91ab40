"""`nnfractal sample`: the sampling estimators on real training, through the engine and the store.

Tiny runs of the paper's tanh MLP (float64) in the colab's start window, which holds boundary at
any number of steps."""
import json

import numpy as np
import pytest
from helpers import assert_picture

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.estimators.sampling import transect_points
from nnfractal.models import build_family
from nnfractal.runner.run import load_data
from nnfractal.storage.store import RunStore
from nnfractal.studies.sample import SampleSpec, dimension_of_sample, read_spec, source_config
from nnfractal.training.engine import train
from nnfractal.window import Window

pytestmark = pytest.mark.slow  # trains sampled points

WINDOW = ["--mnmx", "-3", "6", "-3", "6"]
TINY = ["paper-tanh", "--steps", "30", *WINDOW, "--no-progress"]
TRANSECT = ["--method", "transect", "--points", "1024", "--lines", "2"]


def cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def transect_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("s") / "transect"
    assert main(["sample", *TINY, *TRANSECT, "--out", str(out)]) == 0
    return out


def test_transect_sample_writes_a_run_folder(transect_run, capsys):
    out = transect_run
    for name in ["config.toml", "sample.json", "fractal.json", "summary.json", "report.html"]:
        assert (out / name).is_file(), name
    for name in ["transect.png", "points.png"]:
        assert_picture(out / name)
    info = json.loads((out / "sample.json").read_text())
    # a 32 x 32 coarse map placed the segments, then 2 x 1024 points on them
    assert info["method"] == "transect" and info["evaluations"] == 1024 + 2048
    assert info["model_steps"] == (1024 + 2048) * 30
    est = info["estimate"]
    # a number only when the fit rule holds; otherwise the rule's reason and no number
    assert (est["ok"] and est["ci_low"] <= est["dimension"] <= est["ci_high"]) or (
        est["dimension"] is None and "differing pairs" in est["reason"])
    # the points trained are the transect's points, in hyperparameter units
    spec, cfg = read_spec(out)
    store = RunStore.open(out / "store.zarr")
    coarse, block = store.attrs["blocks"]
    assert coarse["n"] == 1024 and block["n"] == 2048 and block["row"] % store.tile_grid.tile_rows == 0
    stored = store.read_points(block["row"], block["row"] + block["rows"])[:2048]
    centre = tuple(est["extra"]["centre"])
    # at the angle the coarse map chose (along the boundary's trend, or 30 degrees without one)
    assert est["extra"]["angle_source"] in ("boundary trend", "fallback: no net boundary direction")
    expected = Window.of(cfg).to_values(transect_points(1024, lines=2, centre=centre,
                                                   angle_deg=est["extra"]["angle_deg"]
                                                   ).reshape(-1, 2))
    np.testing.assert_array_equal(stored, expected)
    curves = store.group["curves/train_loss"][block["row"]:block["row"] + block["rows"]]
    assert np.isfinite(curves.reshape(-1, 30)[:2048, 0]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "sample" and summary["model_steps_per_s"] > 0
    html = (out / "report.html").read_text()
    assert "transect" in html and "data:image/png;base64" in html


def test_sampled_points_train_as_the_engine_trains_any_point(transect_run):
    # One engine: a sampled point's curve is the curve engine.train gives that point.
    spec, cfg = read_spec(transect_run)
    store = RunStore.open(transect_run / "store.zarr")
    block = store.attrs["blocks"][1]
    points = store.read_points(block["row"], block["row"] + block["rows"])[:2048]
    curves = store.group["curves/train_loss"][block["row"]:block["row"] + block["rows"]].reshape(
        -1, 30)[:2048]
    pick = [0, 777, 2047]
    family = build_family(cfg)
    alone = train(cfg, family, load_data(cfg, family), points[pick]).curves["train_loss"]
    np.testing.assert_allclose(alone, curves[pick], rtol=1e-10, atol=0)


def test_dimension_recomputes_a_sample_from_its_curves_without_training(transect_run, capsys):
    before = json.loads((transect_run / "sample.json").read_text())["estimate"]
    # dimension_of_sample's evaluator has no trainer: a missing curve would raise
    again = dimension_of_sample(transect_run)
    assert again == before
    code, out, err = cli(["dimension", str(transect_run)], capsys)
    assert code == 0, err
    assert "transect" in out
    assert (f"{before['dimension']:.3f}" if before["ok"] else before["reason"]) in out


def test_uncertainty_sample_and_resume_after_a_failed_tile(tmp_path, capsys, monkeypatch):
    args = ["sample", *TINY, "--method", "uncertainty", "--budget", "20200", "--coarse", "8",
            "--eps-min", "1e-5"]
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0
    capsys.readouterr()
    broken = tmp_path / "broken"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "1")        # its first attempt raises
    code, _, err = cli([*args, "--out", str(broken)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"nnfractal sample --resume {broken}" in err
    monkeypatch.delenv("NNFRACTAL_TEST_FAIL_TILE")
    code, _, err = cli(["sample", "--resume", str(broken), "--no-progress"], capsys)
    assert code == 0, err
    a = json.loads((full / "sample.json").read_text())
    b = json.loads((broken / "sample.json").read_text())
    assert a["estimate"] == b["estimate"] and a["evaluations"] == b["evaluations"]
    assert a["parameters"]["eps_min"] == 1e-5 and a["evaluations"] <= 20200
    sa, sb = RunStore.open(full / "store.zarr"), RunStore.open(broken / "store.zarr")
    n = sum(blk["rows"] for blk in sa.attrs["blocks"])
    np.testing.assert_array_equal(sa.group["curves/train_loss"][:n],
                                  sb.group["curves/train_loss"][:n])
    assert (full / "uncertainty.png").exists()


@pytest.mark.parametrize("extra, field", [
    (["--method", "uncertainty", "--eps-min", "1e-20"], "eps_min"),
    (["--method", "uncertainty", "--budget", "10"], "budget"),
    (["--method", "transect", "--points", "10"], "points"),
    (["--method", "transect", "--direction", "0", "0"], "direction"),
    (["--method", "transect", "--center", "40", "0"], "center"),
    (["--method", "boxes"], "method"),
    (["--method", "uncertainty", "--points", "4096"], "points"),     # the transect's flag
    (["--method", "transect", "--budget", "30000"], "budget"),
    (["--method", "uncertainty", "--budget", "16000000", "--steps", "100000"], "budget"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, field):
    out = tmp_path / "bad"
    code, _, err = cli(["sample", *TINY, *extra, "--out", str(out)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and f"error: {field}:" in err and "allowed" in err
    assert not out.exists()


def test_a_window_without_boundary_says_so(tmp_path, capsys):
    out = tmp_path / "flat"
    # learning rates of 1e-3..1e-2.5 all converge in 30 steps
    code, stdout, err = cli(["sample", "paper-tanh", "--steps", "30", "--mnmx", "-3", "-2.5", "-3",
                             "-2.5", "--no-progress", *TRANSECT, "--out", str(out)], capsys)
    assert code == 2 and "window: no boundary in this window" in err
    assert "transect dimension: no boundary in this window" in stdout     # no number printed
    info = json.loads((out / "sample.json").read_text())
    assert info["estimate"]["dimension"] is None


def test_spec_defaults_follow_the_precision():
    from nnfractal.studies.sample import precision_eps_floor, resolve_spec
    cfg64 = build_config("paper-tanh", mnmx=[-3.0, 6.0, -3.0, 6.0])
    cfg32 = cfg64.replace(precision="float32")
    assert precision_eps_floor(cfg32) > 1e5 * precision_eps_floor(cfg64)
    spec = resolve_spec(SampleSpec("uncertainty"), cfg32)
    assert spec.eps_min == pytest.approx(precision_eps_floor(cfg32))
    assert resolve_spec(SampleSpec("uncertainty"), cfg64).eps_min == 1e-9


def test_the_chaos_floor_points_default_to_a_share_of_the_budget():
    from nnfractal.studies.sample import resolve_spec
    cfg = build_config("paper-tanh", mnmx=[-3.0, 6.0, -3.0, 6.0])
    # budget / 64 within 512..4096: the default budget's floor is 8x what it was (512)
    for budget, floor in ((1 << 18, 4096), (1 << 16, 1024), (1 << 15, 512), (1 << 20, 4096)):
        assert resolve_spec(SampleSpec("uncertainty", budget=budget), cfg).floor_points == floor
    # given, it is kept; a folder's stored spec always holds a number, so replays ask for the
    # same points
    assert resolve_spec(SampleSpec("uncertainty", floor_points=512), cfg).floor_points == 512
    assert resolve_spec(SampleSpec("uncertainty", floor_points=0), cfg).floor_points == 0


def test_a_presets_own_adaptive_is_dropped_but_the_flag_is_refused(tmp_path, capsys):
    cfg, _ = source_config("quickstart", {})
    assert build_config("quickstart").adaptive and not cfg.adaptive
    assert cfg.mnmx == build_config("quickstart").mnmx             # the same window and network
    code = main(["sample", "quickstart", "--adaptive", "--out", str(tmp_path / "s")])
    assert code == 2 and "adaptive" in capsys.readouterr().err and not (tmp_path / "s").exists()
