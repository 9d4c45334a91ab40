"""Adaptive refinement: agreement with the full grid, bit-identical trained pixels, an honest mask,
the run folder it writes, and refused settings."""
import json

import numpy as np
import pytest
from helpers import assert_picture

import nnfractal.runner.adaptive as adaptive
from nnfractal.cli.main import main
from nnfractal.config import ConfigError, build_config
from nnfractal.models import build_family
from nnfractal.runner.adaptive import (
    _dilate,
    coarse_stride,
    lattice,
    nearest_trained,
    point_scores,
    refine,
    train_adaptive,
)
from nnfractal.runner.run import load_data
from nnfractal.storage.store import RunStore
from nnfractal.training.engine import train
from nnfractal.training.grid import axes, grid_points

# paper-tanh (float64) on a small grid with fewer steps: the map already has a boundary with
# islands and filaments, and full + adaptive train in a few seconds.
GRID = dict(resolution=40, steps=100)


@pytest.fixture(scope="module")
def tanh_runs():
    """Full-grid curves and an adaptive refinement of the same config, with every point the
    adaptive run handed to the engine (recorded by wrapping the real engine.train)."""
    cfg = build_config("paper-tanh", **GRID, adaptive=True, adaptive_coarse=10, adaptive_guard=1)
    family = build_family(cfg)
    data = load_data(cfg, family)
    x, y = axes(cfg)
    full = train(cfg, family, data, grid_points(x, y))
    calls = []

    def recording_train(cfg_, family_, data_, points, **kw):
        calls.append(np.array(points))
        return train(cfg_, family_, data_, points, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(adaptive, "train", recording_train)
    try:
        result = train_adaptive(cfg, family, data, x, y)
    finally:
        mp.undo()
    full_scores = point_scores(cfg, full.curves, 1).reshape(len(y), len(x))
    return cfg, x, y, full, full_scores, result, calls


@pytest.mark.slow
def test_adaptive_map_agrees_with_full_map(tanh_runs):
    cfg, x, y, full, full_scores, result, _ = tanh_runs
    ref = result.refinement
    filled = full_scores.flat[ref.source]          # each pixel holds its source's curve
    assert 0 < (full_scores < 0).mean() < 1, "the test grid must hold a boundary"
    assert ref.fraction_trained < 0.7, "nothing was saved"
    agree = np.mean((filled < 0) == (full_scores < 0))
    assert agree >= 0.995, f"sign agreement {agree:.4f}"


@pytest.mark.slow
def test_trained_pixels_are_bitwise_the_full_runs(tanh_runs):
    _, _, _, full, _, result, _ = tanh_runs
    order = result.refinement.order
    for metric, curves in result.train.curves.items():
        assert curves.shape == (len(order), full.curves[metric].shape[1])
        np.testing.assert_array_equal(curves, full.curves[metric][order])   # NaN == NaN here


@pytest.mark.slow
def test_mask_counts_exactly_the_points_the_engine_trained(tanh_runs):
    _, x, y, _, _, result, calls = tanh_runs
    ref = result.refinement
    # one engine call per level that had new points, plus one per boundary-following round
    assert len(calls) == (sum(lv["new_points"] > 0 for lv in ref.levels)
                          + sum(lv["follow_rounds"] for lv in ref.levels))
    sent = np.concatenate(calls)
    assert len(sent) == ref.trained.sum() == len(ref.order)       # each trained pixel once
    r, c = np.divmod(ref.order, len(x))
    np.testing.assert_array_equal(sent, np.stack([x[c], y[r]], axis=1))
    trained_points = {(a, b) for a, b in sent}
    rr, cc = np.nonzero(~ref.trained)
    assert len(rr) > 0
    assert not any((x[j], y[i]) in trained_points for i, j in zip(rr, cc)), "a filled pixel was trained"
    assert ref.trained.flat[ref.source].all()                     # every pixel copies a trained one
    np.testing.assert_array_equal(ref.source[ref.trained], np.flatnonzero(ref.trained))


@pytest.mark.slow
def test_cli_adaptive_run_writes_mask_summary_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--preset", "paper-tanh", "--resolution", "24", "--steps", "40",
                 "--adaptive", "--adaptive-coarse", "7", "--adaptive-guard", "1",
                 "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    store = RunStore.open(out / "store.zarr")
    info = adaptive.read_refinement(store)
    trained, source = info["trained"], info["source"]
    assert trained.shape == (24, 24) and 0 < trained.mean() < 1
    curves = store.read_curves("train_loss")
    flat = curves.reshape(24 * 24, -1)
    np.testing.assert_array_equal(flat, flat[source.ravel()])      # filled = their source's curve
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adaptive"]["n_trained"] == int(trained.sum())
    assert summary["model_steps"] == int(trained.sum()) * 40       # only trained pixels count
    assert_picture(out / "trained.png", min_ink=0.3, outcomes=True)
    html = (out / "report.html").read_text()
    assert "Adaptive refinement:" in html and f"{int(trained.sum())} of" in html


@pytest.mark.slow
@pytest.mark.parametrize("flags, field", [
    (["--adaptive-coarse", "1"], "adaptive_coarse"),
    (["--adaptive-guard", "-1"], "adaptive_guard"),
])
def test_bad_adaptive_settings_are_refused_in_one_line(tmp_path, capsys, flags, field):
    out = tmp_path / "run"
    code = main(["run", "--preset", "paper-tanh", "--resolution", "8", "--steps", "5", "--adaptive",
                 *flags, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and f"{field}:" in err and "allowed" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_adaptive_must_be_a_boolean():
    with pytest.raises(ConfigError, match="adaptive: .*allowed: true, false"):
        build_config("paper-tanh", adaptive="yes")


# ---- the pieces ----------------------------------------------------------------------------------

def test_lattice_and_coarse_stride():
    np.testing.assert_array_equal(lattice(10, 4), [0, 4, 8, 9])
    np.testing.assert_array_equal(lattice(9, 4), [0, 4, 8])
    assert coarse_stride(512, 64) == 8            # 65 points per side
    assert coarse_stride(256, 64) == 4
    assert coarse_stride(64, 64) == 1             # no coarser lattice has 64 points: full grid
    assert len(lattice(512, coarse_stride(512, 50))) >= 50


def test_nearest_trained_is_the_euclidean_nearest():
    rng = np.random.default_rng(0)
    for shape, p in [((23, 31), 0.05), ((16, 16), 0.3), ((7, 40), 0.02)]:
        mask = rng.random(shape) < p
        mask[0, 0] = True
        got = nearest_trained(mask)
        tr, tc = np.nonzero(mask)
        rr, cc = np.mgrid[:shape[0], :shape[1]]
        d2 = (rr[..., None] - tr) ** 2 + (cc[..., None] - tc) ** 2
        best = d2.min(-1)
        gr, gc = np.divmod(got, shape[1])
        assert mask[gr, gc].all()
        np.testing.assert_array_equal((rr - gr) ** 2 + (cc - gc) ** 2, best)
        ri, ci = np.arange(0, shape[0], 3), np.arange(1, shape[1], 4)
        np.testing.assert_array_equal(nearest_trained(mask, ri, ci), got[np.ix_(ri, ci)])


def test_dilate_is_a_square():
    m = np.zeros((7, 7), dtype=bool)
    m[3, 3] = True
    assert _dilate(m, 2).sum() == 25 and _dilate(m, 2)[1:6, 1:6].all()
    assert _dilate(m, 0).sum() == 1


def test_refinement_traces_a_smooth_boundary_with_trained_pixels_only():
    """A disc on a 97 px grid: the filled map equals the true one, every pixel next to the
    boundary was trained, and far fewer than all pixels were."""
    n = 97
    rr, cc = np.mgrid[:n, :n]
    truth = (rr - 40.3) ** 2 + (cc - 55.7) ** 2 < 27.1 ** 2
    ref = refine(n, n, 8, 1, lambda flat, s: truth.flat[flat])
    filled = truth.flat[ref.source]
    np.testing.assert_array_equal(filled, truth)
    edges = np.zeros((n, n), dtype=bool)
    mixed = (truth[:-1, :-1] != truth[1:, 1:]) | (truth[:-1, 1:] != truth[1:, :-1]) \
        | (truth[:-1, :-1] != truth[1:, :-1]) | (truth[:-1, :-1] != truth[:-1, 1:])
    for dr in (0, 1):
        for dc in (0, 1):
            edges[dr:n - 1 + dr, dc:n - 1 + dc] |= mixed
    assert ref.trained[edges].all()
    assert ref.fraction_trained < 0.35
    assert [lv["stride"] for lv in ref.levels] == [8, 4, 2, 1]


def test_guard_band_finds_an_island_between_agreeing_corners():
    """A small island strictly inside one coarse cell is invisible to the corner test alone; a
    boundary next to it makes the guard band refine its cell and find it."""
    n = 65
    truth = np.zeros((n, n), dtype=bool)
    truth[:, :20] = True                       # a straight boundary between columns 19 and 20
    truth[36:39, 27:30] = True                 # a 3x3 island inside coarse cell (rows 32-40, cols 24-32)
    no_guard = refine(n, n, 8, 0, lambda flat, s: truth.flat[flat])
    guard = refine(n, n, 8, 1, lambda flat, s: truth.flat[flat])
    assert not truth.flat[no_guard.source][36:39, 27:30].any()
    np.testing.assert_array_equal(truth.flat[guard.source], truth)
