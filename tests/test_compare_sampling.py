"""nnfractal compare --method uncertainty|transect: shared segments, a tiny
ResNet against its plain twin end to end, and a killed comparison resumed bit for bit."""
import json

import numpy as np
import pytest
from helpers import assert_picture
from test_report import assert_opens_cleanly, parse_report

from nnfractal.cli.main import main
from nnfractal.estimators import stats
from nnfractal.estimators.boxcount import boundary
from nnfractal.report import REPORT_NAME
from nnfractal.storage.store import RunStore
from nnfractal.studies.compare_sampled import read_compare_plan, shared_centre

# A ResNet-8 of 2/4/4 channels on 8 MNIST images, 6 SGD steps: the window holds a boundary
# (learning rate 10^0.5..10^1.5 x weight offset 10^-3..10^0) in both architectures.
TINY = ["skipstudy-cpu-resnet", "skipstudy-cpu-plain", "--steps", "6", "--train-size", "8",
        "--c_hidden", "2", "4", "4", "--mnmx", "0.5", "1.5", "-3", "0", "--no-progress"]
TRANSECT = ["--method", "transect", "--points", "1024", "--lines", "2", "--seeds", "2"]


def assert_too_few_pairs_said(diff: dict, pairs: list) -> None:
    """A comparison of fewer than MIN_GRIDS seeds: its estimate is the mean of the pairs' own
    differences, and where the interval alone would claim a difference the verdict withholds
    it and says why; without both dimensions of any pair it says which is missing."""
    if not diff["ok"]:
        assert diff["verdict"] == stats.NO_DIFFERENCE and "no pair has both dimensions" in diff["reason"]
        return
    own = [a["dimension"] - b["dimension"] for a, b in pairs if a["ok"] and b["ok"]]
    assert diff["n_pairs"] == len(own) < stats.MIN_GRIDS
    assert diff["estimate"] == pytest.approx(np.mean(own))
    if stats.verdict_of(diff["ci_low"], diff["ci_high"]) != stats.NO_DIFFERENCE:
        assert diff["verdict"] == stats.NO_DIFFERENCE and "too few pairs" in diff["reason"]
        assert diff["reason"] in diff["sentence"]


def test_shared_centre_lies_on_both_boundaries():
    n = 32
    u = np.linspace(0, 1, n)
    xx, yy = np.meshgrid(u, u)
    a = yy - 0.5 - 0.1 * np.sin(9 * xx)            # a wavy horizontal boundary
    b = yy - 0.45 - 0.05 * xx                      # a straight one just below it
    cu, cv = shared_centre(a, b)
    assert 0.25 <= cu <= 0.75
    assert abs(cv - 0.48) < 0.12                   # between the two curves, not at the edge
    assert shared_centre(np.ones((n, n)), -np.ones((n, n))) is None
    only_b = shared_centre(np.ones((n, n)), b)     # one map without boundary: the other's
    ii, jj = np.nonzero(boundary(b))
    assert abs(only_b[1] - (ii.mean() + 0.5) / (n - 1)) < 0.1


# ---- end to end --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_transect(tmp_path_factory):
    out = tmp_path_factory.mktemp("cs") / "transect"
    assert main(["compare", *TINY, *TRANSECT, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_transect_comparison_measures_both_architectures_on_the_same_points(tiny_transect):
    out = tiny_transect
    info = json.loads((out / "compare.json").read_text())
    assert info["method"] == "transect" and info["presets"] == TINY[:2]
    units = info["units"]
    assert len(units) == 4
    for seed in (0, 1):
        a, b = (next(u for u in units if u["preset"] == p and u["seed_index"] == seed)
                for p in TINY[:2])
        assert a["seed"] == b["seed"] and a["center"] == b["center"] is not None
        pa = RunStore.open(out / a["dir"] / "store.zarr").read_points(0, 4)
        pb = RunStore.open(out / b["dir"] / "store.zarr").read_points(0, 4)
        np.testing.assert_array_equal(pa, pb)             # identical hyperparameters
        fa = json.loads((out / a["dir"] / "fractal.json").read_text())["final"]
        assert fa["dimension"] == a["estimate"]["dimension"]
        for u in (a, b):
            assert (out / u["coarse_dir"] / "map.png").exists()
            assert u["evaluations"] == 2048
    # the difference is recomputed from the units' estimates by the paired rule
    pairs = [tuple(next(u["estimate"] for u in units if u["preset"] == p and u["seed_index"] == s)
                   for p in TINY[:2]) for s in (0, 1)]
    again = stats.paired_difference(pairs, label_a=info["labels"][TINY[0]],
                                    label_b=info["labels"][TINY[1]], name_a=TINY[0],
                                    name_b=TINY[1])
    assert again["estimate"] == info["difference"]["estimate"]
    assert again["verdict"] == info["verdict"]
    assert_too_few_pairs_said(info["difference"], pairs)
    assert_picture(out / "compare_maps.png", min_ink=0.3)
    for name in ("compare_fits.png", "compare_dimensions.png"):
        assert_picture(out / name)
    assert info["timing"]["evaluations"] == 4 * 2048
    assert info["timing"]["model_steps"] == 6 * (4 * 2048 + 4 * 16 * 16)
    # a transect has no chaos split, and says so
    assert info["quantities_note"].startswith("the transect method measures only the coarse scales")
    assert all(r["quantities"] == {} for r in info["results"])
    assert set(info["sentences"]) == {"dimension"}


@pytest.mark.slow
@pytest.mark.browser
def test_transect_comparison_report_opens_in_chromium(tiny_transect):
    page = parse_report(tiny_transect / REPORT_NAME)
    for sid in ("dims", "maps", "units", "method", "config", "hardware"):
        assert sid in page.ids
    assert {"maps side by side", "fits", "dimensions"} <= {a["alt"] for a in page.all("img")}
    text = page.plain
    assert "transect" in text and "No difference detectable" in text
    assert "The transects of both architectures run through the same points" in text
    assert "The transect method measures only the coarse scales" in text
    links = [a["href"] for a in page.all("a") if not a["href"].startswith("#")]
    assert "skipstudy-cpu-resnet/seed0/sample/report.html" in links
    assert_opens_cleanly(tiny_transect / REPORT_NAME)


@pytest.mark.slow
def test_killed_comparison_resumes_to_the_same_numbers(tiny_transect, tmp_path, capsys,
                                                      monkeypatch):
    broken = tmp_path / "broken"
    # tile 1 exists only in the samples (2 x 1024 points: two tiles), not in the 16 x 16 maps:
    # the first sample fails halfway, after both coarse maps of seed 0
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "1")
    code = main(["compare", *TINY, *TRANSECT, "--out", str(broken)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"nnfractal compare --resume {broken}" in err
    assert read_compare_plan(broken).method == "transect" and not (broken / "compare.json").exists()
    assert (broken / "skipstudy-cpu-plain/seed0/coarse/summary.json").exists()   # work kept
    monkeypatch.delenv("NNFRACTAL_TEST_FAIL_TILE")
    assert main(["compare", "--resume", str(broken), "--no-progress"]) == 0
    a = json.loads((tiny_transect / "compare.json").read_text())
    b = json.loads((broken / "compare.json").read_text())
    assert a["results"] == b["results"]                        # every number, bit for bit
    assert [u["estimate"] for u in a["units"]] == [u["estimate"] for u in b["units"]]
    # a finished comparison resumed again trains nothing and changes nothing
    assert main(["compare", "--resume", str(broken), "--no-progress"]) == 0
    assert json.loads((broken / "compare.json").read_text())["results"] == b["results"]


@pytest.mark.parametrize("extra, field", [
    (["--method", "boxes"], "method"),
    (["--method", "transect", "--windows", "2"], "windows"),
    (["--method", "box", "--points", "2048"], "points"),
    (["--method", "uncertainty", "--points", "2048"], "points"),
    (["--method", "transect", "--points", "10"], "points"),
    (["--method", "uncertainty", "--budget", "10"], "budget"),
    (["--method", "transect", "--seeds", "0"], "seeds"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, field):
    out = tmp_path / "bad"
    code = main(["compare", *TINY, *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"error: {field}:" in err and "allowed" in err
    assert not out.exists()


def test_resume_of_a_folder_that_is_not_a_comparison_is_refused(tmp_path, capsys):
    code = main(["compare", "--resume", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "resume:" in err and "is not a comparison (no plan.json" in err


@pytest.mark.slow
def test_uncertainty_comparison_of_a_tiny_resnet(tmp_path):
    out = tmp_path / "unc"
    assert main(["compare", *TINY, "--method", "uncertainty", "--seeds", "1", "--budget", "18064",
                 "--coarse", "8", "--eps-min", "1e-4", "--floor-points", "0", "--out",
                 str(out)]) == 0
    info = json.loads((out / "compare.json").read_text())
    assert info["method"] == "uncertainty" and len(info["units"]) == 2
    for u in info["units"]:
        sample = json.loads((out / u["dir"] / "sample.json").read_text())
        assert sample["estimate"]["dimension"] == u["estimate"]["dimension"]
        assert u["evaluations"] <= 18064 and u["coarse_dir"] is None
    # the same seed and coarse points: block 0 (the 8 x 8 coarse map) is shared
    a, b = (RunStore.open(out / u["dir"] / "store.zarr") for u in info["units"])
    np.testing.assert_array_equal(a.read_points(0, 1)[:64], b.read_points(0, 1)[:64])
    d = info["difference"]
    assert d["n_pairs"] == (1 if all(u["estimate"]["ok"] for u in info["units"]) else 0)
    assert_too_few_pairs_said(d, [tuple(u["estimate"] for u in info["units"])])
    assert (out / REPORT_NAME).exists() and (out / "compare_maps.png").exists()
