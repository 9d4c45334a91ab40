"""nnfractal compare: paired configs, the statistics on synthetic inputs, the comparison end to end."""
import json

import numpy as np
import pytest
from test_report import assert_opens_cleanly, parse_report

from nnfractal.cli.main import main
from nnfractal.config import config_from_toml
from nnfractal.estimators import stats
from nnfractal.report import REPORT_NAME
from nnfractal.storage.store import RunStore
from nnfractal.studies.comparison import ARCH_FIELDS, config_difference, pair_configs

NO_DIFF = "no difference detectable at this resolution"


def units(rng, true_dim, n=6, spread=0.03, half=0.08):
    """n synthetic per-grid estimates: true dimension + seed/window spread, each with an interval."""
    d = true_dim + spread * rng.standard_normal(n)
    return [{"dimension": float(x), "ci_low": float(x - half), "ci_high": float(x + half),
             "ok": True, "reason": ""} for x in d]


# ---- statistics on synthetic inputs ------------------------------------------------------------

def test_known_difference_is_detected_both_ways():
    rng = np.random.default_rng(0)
    a, b = units(rng, 1.25), units(rng, 1.55)
    d = stats.difference(a, b, label_a="resnet", label_b="plain")
    assert d["verdict"] == stats.SMALLER == "smaller"
    assert d["ci_low"] < d["estimate"] < d["ci_high"] < 0
    assert abs(d["estimate"] - (-0.30)) < 0.06
    assert d["sentence"].startswith("The boundary of resnet has a smaller fractal dimension than that of plain")
    assert d["p_permutation"] == pytest.approx(2 / 924)           # exact: 6 vs 6, fully separated
    e = stats.difference(b, a)
    assert e["verdict"] == "larger" and 0 < e["ci_low"]
    assert e["estimate"] == pytest.approx(-d["estimate"])


def test_no_difference_gives_no_difference_detectable():
    rng = np.random.default_rng(1)
    a, b = units(rng, 1.45), units(rng, 1.45)
    d = stats.difference(a, b, label_a="A", label_b="B")
    assert d["verdict"] == NO_DIFF
    assert d["ci_low"] < 0 < d["ci_high"]
    assert "No difference between the boundary dimensions of A and B is detectable at this resolution" \
        in d["sentence"]


def test_a_difference_smaller_than_the_estimators_intervals_is_not_claimed():
    # Grids agree closely within each architecture, but each estimate is only good to +-0.2 (the
    # estimator's systematic error at low resolution): 0.1 apart is not a detectable difference.
    rng = np.random.default_rng(2)
    d = stats.difference(units(rng, 1.40, spread=0.005, half=0.2),
                         units(rng, 1.50, spread=0.005, half=0.2))
    assert d["verdict"] == NO_DIFF
    assert d["p_permutation"] < 0.01          # the seed/window spread alone would say otherwise


def test_missing_estimates_give_no_difference_with_the_reason():
    short = {"dimension": None, "ci_low": None, "ci_high": None, "ok": False,
             "reason": "boundary too short for a dimension at this resolution"}
    rng = np.random.default_rng(3)
    d = stats.difference([short, short], units(rng, 1.3), label_a="A", label_b="B")
    assert d["verdict"] == NO_DIFF and d["estimate"] is None and not d["ok"]
    assert d["reason"] == "A has no dimension estimate (boundary too short for a dimension at this resolution)"
    both = stats.difference([short], [short], label_a="A", label_b="B")
    assert both["reason"].startswith("neither has a dimension estimate")
    p = stats.pool([short, units(rng, 1.3, n=1)[0]])
    assert p["ok"] and p["n_ok"] == 1 and p["n_units"] == 2 and "1 of 2 grids" in p["reason"]


def test_difference_is_matched_by_window():
    # A's dimension grows with magnification (1.2 in window 0, 1.5 in window 1); B could only be
    # measured in window 1, where it equals A. Pooling all of A against B would claim "smaller";
    # matched by window there is nothing to claim.
    rng = np.random.default_rng(6)
    a = units(rng, 1.2, n=3, spread=0.01, half=0.03) + units(rng, 1.5, n=3, spread=0.01, half=0.03)
    short = {"dimension": None, "ok": False, "reason": "boundary too short for a dimension at this resolution"}
    b = [short] * 3 + units(rng, 1.5, n=3, spread=0.01, half=0.03)
    windows = [0, 0, 0, 1, 1, 1]
    assert stats.difference(a, b)["verdict"] == "smaller"                 # unmatched: confounded
    d = stats.difference(a, b, strata_a=windows, strata_b=windows, name_a="A", name_b="B")
    assert d["verdict"] == NO_DIFF and d["ok"]
    assert d["strata_used"] == [1] and d["strata_dropped"] == [0]
    assert d["note"] == "matched by window: the difference uses window 1, where both have estimates; window 0 left out"
    # with every window present, matching keeps a real difference
    c = units(rng, 1.5, n=3, spread=0.01, half=0.03) + units(rng, 1.8, n=3, spread=0.01, half=0.03)
    m = stats.difference(a, c, strata_a=windows, strata_b=windows)
    assert m["verdict"] == "smaller" and m["strata_used"] == [0, 1] and m["note"] == ""
    assert m["estimate"] == pytest.approx(-0.3, abs=0.03) and m["p_permutation"] < 0.05
    # no window in common: no difference, and why
    n = stats.difference(a[:3], c[3:], strata_a=[0, 0, 0], strata_b=[1, 1, 1], name_a="A", name_b="B")
    assert n["verdict"] == NO_DIFF and n["reason"] == "no window has an estimate for both (A: [0], B: [1])"


def test_two_grids_are_too_few_for_a_verdict():
    rng = np.random.default_rng(7)
    d = stats.difference(units(rng, 1.2, n=2, half=0.02), units(rng, 1.6, n=2, half=0.02),
                         name_a="A", name_b="B")
    assert d["ok"] and d["ci_high"] < 0                    # the numbers are still reported
    assert d["verdict"] == NO_DIFF
    assert d["reason"].startswith("too few grids for a verdict: A has 2, B has 2")
    assert "too few grids" in d["sentence"]


def test_pooled_interval_keeps_the_estimators_systematic_error():
    one = stats.pool([{"dimension": 1.5, "ci_low": 1.4, "ci_high": 1.6, "ok": True}])
    ten = stats.pool([{"dimension": 1.5, "ci_low": 1.4, "ci_high": 1.6, "ok": True}] * 10)
    assert one["dimension"] == ten["dimension"] == 1.5
    for p in (one, ten):                 # more identical grids do not shrink a systematic error
        assert p["ci_low"] == pytest.approx(1.4, abs=0.01) and p["ci_high"] == pytest.approx(1.6, abs=0.01)
    spread = stats.pool([{"dimension": d, "ci_low": d - 0.01, "ci_high": d + 0.01, "ok": True}
                         for d in (1.2, 1.3, 1.4, 1.5, 1.6)])
    assert spread["ci_low"] < 1.35 and spread["ci_high"] > 1.45       # seed/window spread counts
    assert spread["between_sd"] == pytest.approx(np.std([1.2, 1.3, 1.4, 1.5, 1.6], ddof=1))


def test_asymmetric_intervals_are_respected():
    p = stats.pool([{"dimension": 1.5, "ci_low": 1.45, "ci_high": 1.8, "ok": True}])
    assert 1.5 - p["ci_low"] < 0.07 and p["ci_high"] - 1.5 > 0.25


@pytest.mark.slow
def test_false_positives_are_rare_and_real_differences_are_found():
    rng = np.random.default_rng(4)
    false_pos = sum(stats.difference(units(rng, 1.4), units(rng, 1.4), n_boot=500, seed=i)["verdict"]
                    != NO_DIFF for i in range(60))
    found = sum(stats.difference(units(rng, 1.4), units(rng, 1.7), n_boot=500, seed=i)["verdict"]
                == "smaller" for i in range(60))
    assert false_pos <= 3 and found >= 57


def test_results_are_deterministic():
    rng = np.random.default_rng(5)
    a, b = units(rng, 1.3), units(rng, 1.35)
    assert stats.difference(a, b) == stats.difference(a, b)


def test_verdict_of():
    assert stats.verdict_of(-0.3, -0.01) == "smaller"
    assert stats.verdict_of(0.01, 0.3) == "larger"
    assert stats.verdict_of(-0.1, 0.1) == NO_DIFF
    assert stats.verdict_of(None, None) == NO_DIFF


def test_exact_permutation_p_value():
    rng = np.random.default_rng(0)
    p = stats._permutation_p(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), 4000, rng)
    assert p == pytest.approx(2 / 20)


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
    assert args.presets == [] and args.seeds == 3
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
        assert (out / name).stat().st_size > 0
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
    assert info["verdict"] == NO_DIFF and info["difference"]["estimate"] is None
    assert "at this resolution" in info["sentence"]
    assert info["timing"]["grids"] == 4 and info["timing"]["model_steps"] == 4 * 64 * 30
    assert info["hardware"]["device"] == "cpu"
    for name in ("maps", "boundaries", "dimensions", "curves"):
        assert (out / info["figures"][name]).stat().st_size > 0
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
            y0, y1, x0, x1 = cfg0.mnmx
            v0, v1, u0, u1 = config_from_toml(w1 / "config.toml").mnmx
            assert u1 - u0 == pytest.approx((x1 - x0) / 2) and v1 - v0 == pytest.approx((y1 - y0) / 2)
            assert x0 <= u0 < u1 <= x1 and y0 <= v0 < v1 <= y1            # nested in window 0
            unit = next(u for u in info["units"] if u["preset"] == preset and u["depth"] == depth
                        and u["window"] == 1)
            assert unit["center"] == pytest.approx(list(centre))    # centred on its own boundary
            zoomed += 1
    assert zoomed >= 2
    assert (out / info["figures"]["depth"]).stat().st_size > 0
    parse_report(out / REPORT_NAME)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_comparison_after_the_current_chunk(tmp_path, sig):
    """Ctrl-C or SIGTERM while the first grid trains (one chunk per grid): no other grid is
    trained, exit 130, and neither the output nor a hidden staged folder stays."""
    import os
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "cmp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnfractal", "compare", "paper-tanh", "paper-relu",
         "--resolution", "8", "--tile_batch", "64", "--train-size", "1", "--steps", "600",
         "--seeds", "2", "--windows", "1", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "] training " in line:
            time.sleep(0.3)
            proc.send_signal(getattr(signal, sig))
            break
    rest, _ = proc.communicate(timeout=300)
    text = "".join(seen) + rest
    assert proc.returncode == 130, text
    assert "stopping after the current chunk" in text
    assert text.count("] training ") == 1, text              # no other grid was trained
    assert list(tmp_path.iterdir()) == []                   # no output, no .cmp.* folder
