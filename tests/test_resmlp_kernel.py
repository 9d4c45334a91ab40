"""The deep mean-field MLP's whole-run C++ kernel (meanfield_kernel.train_deep_models): against
float64 autograd over 500 steps for both variants at depths 4 and 16, against the one-model
reference and torch.optim, against the paper MLP's kernel at depth 2; bit identity whatever the
chunk, tile, thread count or early exit; the switch and the fallback."""
import warnings

import numpy as np
import pytest
import torch

from nnfractal.config import build_config
from nnfractal.models import build_family, fused_bn, meanfield_kernel
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import train
from nnfractal.training.reference import train_single

# A string condition: evaluated when a test runs, so that collecting never builds the kernel.
pytestmark = [pytest.mark.compile, pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif("not meanfield_kernel.available()",
                                 reason="the kernel cannot be built here (no C++ compiler)")]

# (input rate, output rate) pairs whose 500-step trajectories are not chaotic at depths 4 and 16
# (kernel and autograd agree to ~1e-15 on them; nearer the boundary, and for the plain network at
# depth 16 already at (0.3, 1), roundoff grows to O(1) over 500 steps), plus two that diverge to
# NaN within 20 steps.
POINTS = np.array([[0.01, 10.0], [0.05, 0.05], [0.01, 0.3], [0.003, 30.0], [1e12, 1e12], [1e3, 1e10]])
# Points that train further (loss 1.09 -> 0.4-0.9), not chaotic except for the plain network at
# depth 16.
FAR = np.array([[0.3, 1.0], [1.0, 0.1], [0.2, 0.5]])


def _cfg(depth, skip, **extra):
    return build_config("resmlp-residual", depth=depth, skip=skip, steps=500, tile_batch=16,
                        compile="off", **extra)


def _data(cfg):
    return synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)


def _close(fast, slow):
    """The same places non-finite, the finite values to rtol 1e-10."""
    np.testing.assert_array_equal(np.isfinite(fast), np.isfinite(slow))
    ok = np.isfinite(slow)
    np.testing.assert_allclose(fast[ok], slow[ok], rtol=1e-10, atol=0)


@pytest.fixture
def kernel_calls(monkeypatch):
    """The number of chunks the deep kernel trained (the real kernel runs; this only counts)."""
    calls = []
    real = meanfield_kernel.train_deep_models

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(meanfield_kernel, "train_deep_models", counting)
    return calls


@pytest.mark.parametrize("skip", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("depth", [4, 16])
def test_kernel_equals_autograd_over_500_float64_steps(depth, skip, kernel_calls):
    cfg = _cfg(depth, skip)
    family, data = build_family(cfg), _data(cfg)
    pts = POINTS if (depth, skip) == (16, False) else np.r_[POINTS, FAR]
    fast = train(cfg, family, data, pts).losses
    assert len(kernel_calls) == 1
    slow = train(cfg.replace(fast_path=False), family, data, pts).losses
    assert len(kernel_calls) == 1, "autograd must not use the kernel"
    _close(fast, slow)
    assert np.isnan(fast[4:6, 20]).all() and np.isfinite(fast[:4]).all()
    assert (fast[:4, -1] < fast[:4, 0]).all()                          # they do train
    if len(pts) > len(POINTS):
        assert (fast[6:, -1] < 0.95 * fast[6:, 0]).all()


@pytest.mark.parametrize("skip", [True, False], ids=["residual", "plain"])
def test_kernel_equals_the_one_model_reference_and_torch_optim(skip, kernel_calls):
    """The reference module (family.reference) trained by torch.optim.SGD, one model at a time."""
    cfg = _cfg(16, skip)
    family, data = build_family(cfg), _data(cfg)
    pts = POINTS[[0, 2]]
    fast = train(cfg, family, data, pts).losses
    assert len(kernel_calls) == 1
    for i, point in enumerate(pts):
        single = train_single(cfg, family, data, point)["train_loss"]
        np.testing.assert_allclose(fast[i], single, rtol=1e-10, atol=0)


def test_at_depth_2_it_is_the_paper_mlp_kernel():
    """Depth 2 has no hidden layer: both variants are the paper MLP, and the deep kernel gives the
    paper kernel's curves to roundoff."""
    cfg = build_config("paper-tanh", steps=500, tile_batch=8, compile="off")
    data = _data(cfg)
    pts = np.r_[POINTS, FAR]
    paper = train(cfg, build_family(cfg), data, pts).losses
    for skip in (True, False):
        deep = train(cfg.replace(model="meanfield-resmlp", skip=skip), build_family(
            cfg.replace(model="meanfield-resmlp", skip=skip)), data, pts).losses
        _close(deep, paper)


# Points of each phase space whose 60 steps are not chaotic (for the torch path's comparison).
CALM = {"lr_vs_lr": np.array([[0.01, 0.3], [0.05, 0.05], [0.01, 10.0], [0.3, 1.0]]),
        "offset_vs_lr": np.array([[0.001, 0.05], [-0.002, 0.3], [0.0, 1.0], [0.01, 0.1]])}


@pytest.mark.parametrize("preset,skip", [("paper-tanh", True), ("paper-minibatch", False),
                                         ("paper-offset", True)])
def test_a_model_never_depends_on_its_chunk_tile_threads_or_early_exit(preset, skip, kernel_calls):
    """A grid trained in one go equals the same grid in two tiles, with other chunk sizes,
    another thread count and without early exit, bit for bit (diverging models included); and
    the torch fast path to roundoff on its calm points (minibatches and offsets included)."""
    cfg = build_config(preset, model="meanfield-resmlp", depth=6, skip=skip, steps=60,
                       tile_batch=16, compile="off")
    family, data = build_family(cfg), _data(cfg)
    rng = np.random.default_rng(1)
    if cfg.phase_space == "offset_vs_lr":
        pts = np.c_[rng.uniform(-0.05, 0.05, 33), 10 ** rng.uniform(-1, 8, 33)]
    else:
        pts = 10 ** np.c_[rng.uniform(-2, 4, 33), rng.uniform(-2, 6, 33)]
    pts = np.r_[CALM[cfg.phase_space], pts]
    whole = train(cfg, family, data, pts).losses
    assert np.isnan(whole[:, -1]).any() and np.isfinite(whole[:, -1]).any()
    tiles = np.concatenate([train(cfg.replace(tile_batch=4), family, data, pts[:11]).losses,
                            train(cfg.replace(tile_batch=32), family, data, pts[11:]).losses])
    np.testing.assert_array_equal(whole, tiles)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)                  # the module runs on one (one_torch_thread)
        two_threads = train(cfg.replace(early_exit=False), family, data, pts).losses
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(whole, two_threads)
    assert len(kernel_calls) == 3 + 3 + 1 + 3
    family.whole_run_kernel = False
    calm = len(CALM[cfg.phase_space])
    torch_path = train(cfg, family, data, pts[:calm]).losses
    assert len(kernel_calls) == 10
    assert (torch_path[:, -1] < torch_path[:, 0]).all()
    np.testing.assert_allclose(whole[:calm], torch_path, rtol=1e-10)


def test_kernel_leaves_other_runs_to_the_torch_path(kernel_calls):
    """Momentum, two outputs, float32 and width 12 are not the kernel's."""
    for extra in ({"optimizer": "momentum"}, {"target_dim": 2}, {"precision": "float32"},
                  {"width": 12}):
        cfg = _cfg(4, True, **extra).replace(steps=3)
        train(cfg, build_family(cfg), _data(cfg), POINTS[:2])
    assert kernel_calls == []


def test_switched_off_or_unbuildable_the_torch_fast_path_trains_it(monkeypatch, kernel_calls):
    """NNFRACTAL_MLP_KERNEL=0, or a kernel that cannot be built (one warning, then silence):
    the torch fast path trains the run, to roundoff the kernel's curves."""
    cfg = _cfg(4, True).replace(steps=100)
    family, data = build_family(cfg), _data(cfg)
    with_kernel = train(cfg, family, data, POINTS).losses
    assert len(kernel_calls) == 1
    monkeypatch.setattr(meanfield_kernel, "_state", {})
    monkeypatch.setenv(meanfield_kernel.SWITCH, "0")
    _close(train(cfg, family, data, POINTS).losses, with_kernel)
    assert len(kernel_calls) == 1
    monkeypatch.setattr(meanfield_kernel, "_state", {})
    monkeypatch.delenv(meanfield_kernel.SWITCH)

    def no_compiler(*args, **kwargs):
        raise OSError("no C++ compiler")
    monkeypatch.setattr(fused_bn, "load_locked", no_compiler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = train(cfg, family, data, POINTS).losses
        train(cfg, family, data, POINTS[:2])
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [
        "mean-field MLP kernel unavailable (OSError: no C++ compiler); using the torch fast path"]
    assert len(kernel_calls) == 1
    _close(first, with_kernel)


def test_bad_input_is_refused():
    ext = meanfield_kernel.extension()
    v = torch.zeros(2, 4, dtype=torch.float64)
    xs, y = torch.zeros(16, 8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    no_batches = torch.empty(0, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="depth - 1"):
        ext.train_deep(torch.zeros(2, 100, dtype=torch.float64), v, v, xs, y, 5, no_batches,
                       False, False, 3, 4, True, 0.5, 0.3, 0, 1.0, 0.01, True)
    with pytest.raises(RuntimeError, match=r"\(M, depth\)"):
        ext.train_deep(torch.zeros(2, 16 * 16 * 3 + 16, dtype=torch.float64),
                       torch.zeros(2, 3, dtype=torch.float64), v, xs, y,
                       5, no_batches, False, False, 3, 4, True, 0.5, 0.3, 0, 1.0, 0.01, True)
