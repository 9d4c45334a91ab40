"""The paper MLP's whole-run C++ kernel (models/meanfield_kernel.cpp): each model trained through
all its steps in cache. Against autograd over 500 float64 steps for the six paper presets, bit
identity whatever the chunk, tile, thread count or early exit, its tanh, and where it applies."""
import numpy as np
import pytest
import torch

from nnfractal.config import build_config
from nnfractal.models import build_family, meanfield_kernel
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import train
from nnfractal.window import Window

# A string condition: evaluated when a test runs, so that collecting (e.g. for `pytest --quick`)
# never builds the kernel.
pytestmark = [pytest.mark.compile,
              pytest.mark.skipif("not meanfield_kernel.available()",
                                 reason="the kernel cannot be built here (no C++ compiler)")]

# Points whose 500-step trajectories are not chaotic (the kernel, the torch fast path and
# autograd agree to ~1e-14 on them), plus one that diverges to NaN.
POINTS_LR = np.array([[0.5, 2.0], [0.01, 0.3], [1.0, 1.0], [0.05, 0.05], [1e8, 1e8]])
POINTS_OFFSET = np.array([[0.001, 2.0], [0.01, 10.0], [-0.005, 0.3], [0.02, 5.0], [100.0, 1e6]])
PRESETS = ["paper-tanh", "paper-relu", "paper-linear", "paper-minibatch", "paper-single", "paper-offset"]


def _data(cfg):
    return synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)


@pytest.fixture
def kernel_calls(monkeypatch):
    """The number of chunks the kernel trained (the real kernel runs; this only counts)."""
    calls = []
    real = meanfield_kernel.train_models

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(meanfield_kernel, "train_models", counting)
    return calls


@pytest.mark.parametrize("preset", PRESETS)
def test_kernel_equals_autograd_over_500_float64_steps(preset, kernel_calls):
    cfg = build_config(preset, steps=500, tile_batch=8, compile="off")
    family, data = build_family(cfg), _data(cfg)
    pts = POINTS_OFFSET if cfg.phase_space == "offset_vs_lr" else POINTS_LR
    fast = train(cfg, family, data, pts).losses
    assert len(kernel_calls) == 1
    slow = train(cfg.replace(fast_path=False), family, data, pts).losses
    assert len(kernel_calls) == 1, "autograd (fast_path = false) must not use the kernel"
    np.testing.assert_array_equal(np.isfinite(fast), np.isfinite(slow))
    assert np.isnan(fast[-1, -1]), "the last point should diverge"
    ok = np.isfinite(slow)
    # an absolute floor of 1e-10 x the initial loss for the single point, whose loss reaches 1e-30
    np.testing.assert_allclose(fast[ok], slow[ok], rtol=1e-10, atol=1e-10 * np.abs(slow[:, 0]).min())


@pytest.mark.parametrize("preset", ["paper-tanh", "paper-minibatch", "paper-offset"])
def test_a_model_never_depends_on_its_chunk_tile_threads_or_early_exit(preset, kernel_calls):
    """A grid trained in one go equals the same grid in two tiles, with other chunk sizes,
    another thread count and without early exit, bit for bit (diverging models included)."""
    cfg = build_config(preset, steps=120, tile_batch=16, resolution=6, compile="off")
    family, data = build_family(cfg), _data(cfg)
    rng = np.random.default_rng(1)
    if cfg.phase_space == "offset_vs_lr":
        pts = np.c_[rng.uniform(-0.05, 0.05, 37), 10 ** rng.uniform(-1, 8, 37)]
    else:
        pts = Window.of(cfg).to_values(rng.uniform(0, 1, (37, 2)))
    whole = train(cfg, family, data, pts).losses
    assert np.isnan(whole[:, -1]).any() and np.isfinite(whole[:, -1]).any()
    tiles = np.concatenate([train(cfg.replace(tile_batch=4), family, data, pts[:11]).losses,
                            train(cfg.replace(tile_batch=32), family, data, pts[11:]).losses])
    np.testing.assert_array_equal(whole, tiles)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = train(cfg.replace(early_exit=False), family, data, pts).losses
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(whole, one_thread)
    side_by_side = train(cfg.replace(tile_batch=8, chunk_workers=2), family, data, pts).losses
    np.testing.assert_array_equal(whole, side_by_side)
    assert len(kernel_calls) == 3 + 4 + 3 + 5


def test_kernel_tanh_within_4_ulp_of_numpy():
    # engine.train turns on flush-to-zero for its thread, and numpy's ulp arithmetic below needs
    # denormals: off for this test, whatever ran before it.
    torch.set_flush_denormal(False)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, s, 20000) for s in (1e-9, 1e-3, 0.1, 0.5, 1, 3, 10, 30)]
                       + [[0.0, -0.0, 0.3465, 19.0, 19.1, 20.0, 25.0, 1e300, -1e300, 5e-324]])
    ours = meanfield_kernel.extension().tanh(torch.from_numpy(x)).numpy()
    ref = np.tanh(x)
    ulps = np.abs(ours - ref) / np.spacing(np.abs(ref)).clip(5e-324)
    assert ulps.max() <= 4
    assert np.signbit(ours[x == 0]).tolist() == np.signbit(x[x == 0]).tolist()
    special = meanfield_kernel.extension().tanh(torch.tensor([np.inf, -np.inf, np.nan], dtype=torch.float64)).numpy()
    assert special[0] == 1.0 and special[1] == -1.0 and np.isnan(special[2])


def test_kernel_leaves_other_runs_to_the_torch_path(kernel_calls):
    """Momentum, depth 3 and two outputs are not the kernel's: the torch fast path trains them,
    and switching the kernel off for a family gives the same curves to roundoff."""
    for extra in ({"optimizer": "momentum"}, {"depth": 3}, {"target_dim": 2}):
        cfg = build_config("paper-tanh", steps=5, tile_batch=4, compile="off", **extra)
        train(cfg, build_family(cfg), _data(cfg), POINTS_LR[:2])
    assert kernel_calls == []
    cfg = build_config("paper-relu", steps=50, tile_batch=4, compile="off")
    family, data = build_family(cfg), _data(cfg)
    with_kernel = train(cfg, family, data, POINTS_LR).losses
    family.whole_run_kernel = False
    without = train(cfg, family, data, POINTS_LR).losses
    assert len(kernel_calls) == 2                               # 5 points in chunks of 4
    np.testing.assert_allclose(with_kernel[:4], without[:4], rtol=1e-12)


def test_kernel_releases_the_gil():
    """Two chunks in Python threads run at once (chunk workers): a thread calling the kernel
    lets the other Python thread go on."""
    import threading
    import time
    cfg = build_config("paper-tanh", steps=300, compile="off")
    family, data = build_family(cfg), _data(cfg)
    ticks, done = [], threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)
    t = threading.Thread(target=tick)
    t.start()
    try:
        start = time.perf_counter()
        train(cfg.replace(tile_batch=64), family, data, np.tile(POINTS_LR[:4], (16, 1)))
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        t.join()
    assert elapsed > 0.05
    assert max(np.diff([start, *[x for x in ticks if x >= start]])) < elapsed / 2


def test_kernel_trains_on_every_torch_thread():
    """The kernel's parallel_for team is the caller's torch thread count (an extension built
    without OpenMP runs ATen's parallel_for serially: a team of 1 whatever the threads); and the
    engine, measuring its threads' CPU time, sees that many compute."""
    cfg = build_config("paper-tanh", steps=300, compile="off")
    family, data = build_family(cfg), _data(cfg)
    pts = 10 ** np.c_[np.linspace(0, 1, 96), np.linspace(0, 1, 96)]         # all train 300 steps
    threads = torch.get_num_threads()
    try:
        for wanted in (1, 2, 3):
            torch.set_num_threads(wanted)
            assert meanfield_kernel.extension().team_size(64) == wanted
            assert meanfield_kernel.extension().team_size(2) == min(2, wanted)
            if wanted <= 2:
                assert train(cfg, family, data, pts).threads == wanted
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("preset", PRESETS)
def test_flushing_denormals_changes_no_curve_of_a_paper_preset(preset, monkeypatch):
    """Every thread of the kernel flushes denormals (FTZ, DAZ). Over a preset's whole window
    (models that converge and models that diverge), the curves are bit for bit those of the same
    kernel keeping denormals: no model of these networks meets one (a loss cannot fall below its
    roundoff floor, ~1e-32, with O(1) targets)."""
    from nnfractal.training.grid import axes, grid_points
    cfg = build_config(preset, steps=300, resolution=10, tile_batch=64, compile="off")
    family, data = build_family(cfg), _data(cfg)
    pts = grid_points(*axes(cfg))
    flushed = train(cfg, family, data, pts).losses
    real = meanfield_kernel.train_models
    kept = []
    monkeypatch.setattr(meanfield_kernel, "train_models",
                        lambda *a, **k: kept.append(1) or real(*a, **k, flush_denormals=False))
    not_flushed = train(cfg, family, data, pts).losses
    assert len(kept) == 2                                    # 100 points in chunks of 64
    assert np.isnan(flushed[:, -1]).any() and np.isfinite(flushed[:, -1]).any()
    np.testing.assert_array_equal(flushed, not_flushed)


def test_bad_input_is_refused():
    ext = meanfield_kernel.extension()
    w = torch.zeros(2, 16, 16, dtype=torch.float64)
    v = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="padded to a multiple of 8"):
        ext.train(w, torch.zeros(2, 16, dtype=torch.float64), v, v, v, v,
                  torch.zeros(16, 5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64),
                  5, torch.empty(0, dtype=torch.int64), False, False, 3, 0, 1.0, 0.01, True)
    with pytest.raises(RuntimeError, match="float64"):
        ext.train(w.float(), torch.zeros(2, 16, dtype=torch.float64), v, v, v, v,
                  torch.zeros(16, 8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64),
                  5, torch.empty(0, dtype=torch.int64), False, False, 3, 0, 1.0, 0.01, True)
