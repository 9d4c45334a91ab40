"""nnfractal compare: paired configs and the comparison end to end (its statistics: test_stats.py)."""
import json

import numpy as np
import pytest
from helpers import assert_picture, interrupt_at
from test_report import assert_opens_cleanly, parse_report

from nnfractal.cli.main import main
from nnfractal.config import config_from_toml
from nnfractal.estimators import stats
from nnfractal.report import REPORT_NAME
from nnfractal.storage.store import RunStore
from nnfractal.studies.comparison import ARCH_FIELDS, config_difference, pair_configs
from nnfractal.window import Window

# ---- configurations ----------------------------------------------------------------------------

def test_configs_differ_only_in_the_architecture():
    a, b, notes = pair_configs("resnet20-mnist", "plain20-mnist", resolution=6, seed=3)
    assert config_difference(a, b) == {"preset": ["resnet20-mnist", "plain20-mnist"],
                                       "skip": [True, False]}
    assert a.resolution == b.resolution == 6 and a.seed == b.seed == 3 and notes == []
    a, b, notes = pair_configs("paper-tanh", "paper-offset")
    assert set(config_difference(a, b)) <= set(ARCH_FIELDS) | {"preset"}
    assert b.phase_space == a.phase_space == "lr_vs_lr"            # B's non-architecture fields: A's
    assert any(n.startswith("paper-offset: phase_space") for n in notes)


@pytest.mark.slow
def test_default_is_resnet20_against_plain20(tmp_path):
    from nnfractal.cli.compare import compare_overrides_from_args as overrides_from_args
    from nnfractal.cli.main import make_parser
    from nnfractal.studies.compare import plan
    p = plan(out=tmp_path / "cmp")
    assert p.presets == ["resnet20-mnist", "plain20-mnist"]
    assert p.seeds == 3 and p.windows == 3 and p.factor == 2.0
    assert p.config_difference == {"preset": ["resnet20-mnist", "plain20-mnist"],
                                   "skip": [True, False]}
    assert not (tmp_path / "cmp").exists()                      # planning writes nothing
    args = make_parser().parse_args(["compare", "--resolution", "8", "--num_epochs", "2",
                                     "--c_hidden", "4", "8", "8"])
    assert args.presets == [] and args.seeds is None          # the study's defaults (plan above)
    assert overrides_from_args(args, "resnet20-mnist") == {"c_hidden": (4, 8, 8), "num_epochs": 2,
                                                           "resolution": 8}


@pytest.mark.slow
def test_residual_and_plain_start_from_the_same_weights():
    from nnfractal.models import build_family
    a, b, _ = pair_configs("resnet20-mnist", "plain20-mnist", depth=8, c_hidden=[4, 8, 8])
    pa, pb = build_family(a).init_params(a.seed), build_family(b).init_params(b.seed)
    assert set(pb) <= set(pa) and len(pb) > 10
    for name in pb:
        assert np.array_equal(pa[name].numpy(), pb[name].numpy()), name


BAD = [
    (["paper-tanh", "paper-relu", "paper-linear"], "presets:"),
    (["paper-tanh", "paper-tanh"], "presets:"),
    (["paper-tanh", "no-such-preset"], "preset:"),
    (["paper-tanh", "paper-relu", "--seeds", "0"], "seeds:"),
    (["paper-tanh", "paper-relu", "--windows", "0"], "windows:"),
    (["paper-tanh", "paper-relu", "--factor", "1"], "factor:"),
    (["paper-tanh", "paper-relu", "--resolution", "1"], "resolution:"),
    (["paper-tanh", "paper-relu", "--depth", "3", "--depths", "2", "3"], "depth:"),
    (["paper-tanh", "paper-relu", "--depths", "2", "2"], "depths:"),
    (["paper-tanh", "--preset", "paper-relu"], "preset:"),
    # resource budgets (budget.py), before anything is trained
    (["paper-tanh", "paper-relu", "--seeds", "1000000000"], "seeds: 1000000000 makes the comparison"),
    (["paper-tanh", "paper-relu", "--resolution", "100000"], "resolution: 100000 makes"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,field", BAD)
def test_refused_inputs_write_nothing(tmp_path, capsys, args, field):
    out = tmp_path / "cmp"
    assert main(["compare", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nnfractal: error: {field}") and err.count("\n") == 1, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["compare", "paper-tanh", "paper-relu", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("nnfractal: error: out:")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.slow
def test_a_drawing_failure_keeps_the_trained_grids_and_report_redraws(tmp_path, capsys, monkeypatch):
    """Drawing comes after all the training: if it fails (here: a plotting function raises), the
    grids and compare.json stay in the folder, the error is one line, exit 2, and `nnfractal
    report` draws what is missing."""
    from nnfractal.render import compare_plots

    def broken(*args, **kwargs):
        raise RuntimeError("plotting broke")

    out = tmp_path / "cmp"
    with monkeypatch.context() as m:
        m.setattr(compare_plots, "plot_dimension_bars", broken)
        code = main(["compare", "paper-tanh", "paper-relu", "--resolution", "6", "--steps", "8",
                     "--seeds", "1", "--windows", "1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "RuntimeError: plotting broke" in err and f"nnfractal report {out}" in err
    info = json.loads((out / "compare.json").read_text())
    assert len(info["units"]) == 2 and "plotting broke" in (out / "error.log").read_text()
    for u in info["units"]:
        assert (out / u["dir"] / "store.zarr").is_dir()
    assert not (out / "compare_dimensions.png").exists() and not (out / REPORT_NAME).exists()
    assert main(["report", str(out)]) == 0
    info = json.loads((out / "compare.json").read_text())
    assert info["figures"]["dimensions"] == "compare_dimensions.png"
    for name in info["figures"].values():
        assert_picture(out / name)
    assert (out / REPORT_NAME).exists()
    assert all((out / u["dir"] / REPORT_NAME).exists() for u in info["units"])


# ---- end to end --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_compare(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    code = main(["compare", "paper-tanh", "paper-relu", "--resolution", "8", "--steps", "30",
                 "--seeds", "2", "--windows", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


@pytest.mark.slow
def test_compare_end_to_end_writes_every_grid_and_compare_json(tiny_compare):
    out = tiny_compare
    info = json.loads((out / "compare.json").read_text())
    assert info["format"] == "nnfractal-compare" and info["presets"] == ["paper-tanh", "paper-relu"]
    assert info["settings"]["seeds"] == 2 and info["settings"]["windows"] == 1
    assert info["settings"]["overrides"] == {"resolution": 8, "steps": 30}
    assert info["config_difference"] == {"preset": ["paper-tanh", "paper-relu"],
                                         "nonlinearity": ["tanh", "relu"]}
    assert len(info["units"]) == 4
    axes = []
    for preset in ("paper-tanh", "paper-relu"):
        for i in range(2):
            run = out / preset / f"seed{i}" / "window0"
            cfg = config_from_toml(run / "config.toml")
            assert cfg.seed == i and cfg.resolution == 8 and cfg.steps == 30 and cfg.preset == preset
            store = RunStore.open(run / "store.zarr")
            assert store.complete and store.read_curves().shape == (8, 8, 30)
            axes.append((store.x.tolist(), store.y.tolist()))
            for name in ("map.png", "boundary.png", "fractal.json", "summary.json", REPORT_NAME):
                assert (run / name).exists(), name
            # epoch maps and video only where the report shows them: seed 0's preset window
            assert (run / "epochs.mp4").exists() == (i == 0)
    assert all(ax == axes[0] for ax in axes)                     # the same grid for all
    # configs of the two architectures at one seed differ only in the architecture
    ta = config_from_toml(out / "paper-tanh/seed1/window0/config.toml").to_dict()
    tb = config_from_toml(out / "paper-relu/seed1/window0/config.toml").to_dict()
    assert {k for k in ta if ta[k] != tb[k]} == {"preset", "nonlinearity"}
    # 8 px is far below what the estimator needs: no dimension anywhere, and the verdict says so
    res = info["results"][0]
    for p in info["presets"]:
        assert res["archs"][p]["pooled"]["ok"] is False
        assert len(res["archs"][p]["per_window"]) == 1
    assert info["verdict"] == stats.NO_DIFFERENCE and info["difference"]["estimate"] is None
    assert "at this resolution" in info["sentence"]
    assert info["timing"]["grids"] == 4 and info["timing"]["model_steps"] == 4 * 64 * 30
    assert info["hardware"]["device"] == "cpu"
    assert_picture(out / info["figures"]["maps"], min_ink=0.3)
    for name in ("boundaries", "dimensions", "curves"):
        assert_picture(out / info["figures"][name])
    assert "depth" not in info["figures"]
    assert not list(out.parent.glob(".cmp.*"))                   # no temporary folder left


@pytest.mark.slow
@pytest.mark.browser
def test_compare_report_parses_and_opens_in_chromium(tiny_compare):
    page = parse_report(tiny_compare / REPORT_NAME)
    for sid in ("dims", "maps", "videos", "grids", "method", "config", "hardware"):
        assert sid in page.ids
    alts = [a["alt"] for a in page.all("img")]
    assert {"maps side by side", "boundaries overlaid", "dimensions", "loss curves near the boundary"} \
        <= set(alts)
    assert len(page.all("video")) == 2
    text = page.plain
    assert "No difference detectable at this resolution" in text
    assert "nonlinearity" in text and "tanh / relu" in text
    links = [a["href"] for a in page.all("a") if not a["href"].startswith("#")]
    assert "paper-tanh/seed0/window0/report.html" in links
    assert_opens_cleanly(tiny_compare / REPORT_NAME, min_videos=2)


@pytest.mark.slow
def test_zoomed_windows_and_depth_sweep(tmp_path):
    from nnfractal.storage.run_folder import score_map_of
    from nnfractal.studies.windows import auto_center
    out = tmp_path / "sweep"
    code = main(["compare", "paper-tanh", "paper-relu", "--resolution", "6", "--steps", "8",
                 "--seeds", "1", "--windows", "2", "--factor", "2", "--depths", "2", "3",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    info = json.loads((out / "compare.json").read_text())
    assert [r["depth"] for r in info["results"]] == [2, 3]
    assert info["settings"]["depths"] == [2, 3]
    zoomed = 0
    for preset in info["presets"]:
        for depth in (2, 3):
            w0 = out / preset / f"depth{depth}" / "seed0" / "window0"
            cfg0 = config_from_toml(w0 / "config.toml")
            assert cfg0.depth == depth
            cfg_, smap = score_map_of(w0)
            centre = auto_center(cfg0, smap)
            w1 = out / preset / f"depth{depth}" / "seed0" / "window1"
            if centre is None:                      # no boundary to zoom into: no window 1
                assert not w1.exists()
                continue
            outer, inner = Window.of(cfg0), Window.of(config_from_toml(w1 / "config.toml"))
            assert inner.size == pytest.approx((outer.size[0] / 2, outer.size[1] / 2))
            assert outer.contains(inner.x0, inner.y0) and outer.contains(inner.x1, inner.y1)
            unit = next(u for u in info["units"] if u["preset"] == preset and u["depth"] == depth
                        and u["window"] == 1)
            assert unit["center"] == pytest.approx(list(centre))    # centred on its own boundary
            zoomed += 1
    assert zoomed >= 2
    assert_picture(out / info["figures"]["depth"])
    parse_report(out / REPORT_NAME)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_comparison_after_the_current_chunk(tmp_path, sig):
    """Ctrl-C or SIGTERM while the first grid trains (one chunk per grid): no other grid is
    trained, exit 130 with the resume line, the grid is kept and no hidden folder is left; the
    resume trains only the other grids."""
    out = tmp_path / "cmp"
    code, text = interrupt_at(
        ["compare", "paper-tanh", "paper-relu", "--resolution", "8", "--tile_batch", "64",
         "--train-size", "1", "--steps", "600", "--seeds", "2", "--windows", "1", "--out", str(out),
         "--no-progress"], lambda line: "] training " in line, sig)
    assert code == 130, text
    assert "stopping after the current chunk" in text
    assert text.strip().splitlines()[-1].endswith(f"resume with: nnfractal compare --resume {out}")
    assert text.count("] training ") == 1, text              # no other grid was trained
    assert [p.name for p in tmp_path.iterdir()] == ["cmp"]  # no .cmp.* folder beside it
    assert (out / "plan.json").is_file() and not (out / "compare.json").exists()
    code, text = interrupt_at(["compare", "--resume", str(out), "--no-progress"],
                              lambda line: False, sig)
    assert code == 0, text
    assert text.count("] training ") == 3, text              # the three grids not yet trained
    assert len(json.loads((out / "compare.json").read_text())["units"]) == 4
