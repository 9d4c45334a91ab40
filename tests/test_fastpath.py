"""The MLP fast path (hand-written forward/backward, first layer as one GEMM over all models)
against the generic path (autograd through `forward`)."""
import math

import numpy as np
import pytest
import torch

from nnfractal.config import ConfigError, build_config
from nnfractal.models import build_family
from nnfractal.models.common import compile_wanted
from nnfractal.models.meanfield import BatchedMeanFieldMLP
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import train

pytestmark = pytest.mark.slow  # trains models against autograd

# lr_vs_lr points (input lr, output lr) and offset_vs_lr points (offset, lr) whose 100-step
# trajectories are not chaotic (the generic engine and the single-model loop agree to 1e-12 on
# them), plus one that diverges to NaN within the 100 steps.
POINTS_LR = np.array([[0.5, 2.0], [0.01, 0.3], [1.0, 1.0], [0.05, 0.05], [1e8, 1e8]])
POINTS_OFFSET = np.array([[0.001, 2.0], [0.01, 10.0], [-0.005, 0.3], [0.02, 5.0], [100.0, 1e6]])

CASES = [
    ("paper-tanh", {}),
    ("paper-relu", {}),
    ("paper-linear", {}),
    ("paper-minibatch", {}),
    ("paper-single", {}),
    ("paper-offset", {}),                                        # every-step offsets, offset_vs_lr
    ("paper-offset", {"offset_mode": "init", "offset_target": "all", "nonlinearity": "relu"}),
    ("paper-tanh", {"depth": 3, "optimizer": "momentum"}),
    ("paper-tanh", {"target_dim": 2, "optimizer": "adam"}),
    ("paper-relu", {"nonlinearity": "leaky", "depth": 3}),
    ("paper-linear", {"depth": 3}),
]


def _data(cfg):
    return synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)


def _close(fast, slow):
    """Finite values to rtol 1e-10 (with an absolute floor of 1e-10 x the initial loss for
    curves that converge to ~0: a single training point reaches 1e-30, where relative roundoff
    means nothing), non-finite values at the same places (an overflowing model may give inf on
    one path and NaN on the other; the measures treat both as diverged)."""
    np.testing.assert_array_equal(np.isfinite(fast), np.isfinite(slow))
    ok = np.isfinite(slow)
    np.testing.assert_allclose(fast[ok], slow[ok], rtol=1e-10, atol=1e-10 * np.abs(slow[:, 0]).min())


@pytest.mark.parametrize("preset,extra", CASES, ids=[f"{p}-{'-'.join(map(str, e.values()))}"
                                                     for p, e in CASES])
def test_fast_path_equals_generic_path_over_100_steps(preset, extra):
    cfg = build_config(preset, steps=100, tile_batch=8, compile="off", **extra)
    family, data = build_family(cfg), _data(cfg)
    pts = POINTS_OFFSET if cfg.phase_space == "offset_vs_lr" else POINTS_LR
    fast = train(cfg, family, data, pts).losses
    slow = train(cfg.replace(fast_path=False), family, data, pts).losses
    assert not slow[-1, -1] < 1e6, "the last point should diverge"
    _close(fast, slow)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "leaky", "identity"])
@pytest.mark.parametrize("depth,target_dim", [(2, 1), (3, 2), (4, 1)])
def test_one_step_gradients_equal_autograd(nonlinearity, depth, target_dim):
    family = BatchedMeanFieldMLP(8, depth, target_dim, nonlinearity)
    gen = torch.Generator().manual_seed(0)
    params = {k: v + 0.3 * torch.randn(3, *v.shape, generator=gen, dtype=torch.float64)
              for k, v in family.init_params(0).items()}
    x = torch.randn(20, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(20, target_dim, generator=gen, dtype=torch.float64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = family.forward(leaves, x)
    loss = (out - y).square().mean((1, 2))
    expected = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values()))))
    fast_loss, fast_out, grads = family.loss_and_grads(params, x, y)
    torch.testing.assert_close(fast_loss, loss.detach(), rtol=1e-13, atol=0)
    torch.testing.assert_close(fast_out, out.detach(), rtol=1e-13, atol=1e-15)
    assert list(grads) == list(expected)
    for name, g in expected.items():
        assert grads[name].shape == g.shape
        torch.testing.assert_close(grads[name], g, rtol=1e-12, atol=1e-14 * float(g.abs().max()))


def test_fast_loss_equals_forward_loss():
    # The recorded full-batch loss of paper-minibatch uses the fast forward pass.
    family = BatchedMeanFieldMLP(16, 2, 1, "tanh")
    params = {k: v.unsqueeze(0).repeat(4, 1, 1) * torch.tensor([1.0, 2.0, 0.5, 3.0]).view(4, 1, 1)
              .double() for k, v in family.init_params(1).items()}
    data = synthetic_regression(272, 16, 1)
    slow = ((family.forward(params, data.x_train) - data.y_train) ** 2).mean((1, 2))
    torch.testing.assert_close(family.loss(params, data.x_train, data.y_train), slow, rtol=1e-13, atol=0)


@pytest.mark.compile
def test_compiled_kernel_equals_generic_and_early_exit_stays_bit_identical():
    """torch.compile of the fused readout kernel (one compile, a few seconds warm): the same
    trajectories as autograd, and early exit, which shrinks the chunk through powers of two
    (one dynamic kernel), does not change any curve."""
    cfg = build_config("paper-tanh", steps=60, tile_batch=16, compile="on")
    family, data = build_family(cfg), _data(cfg)
    assert family.compile_kernels
    family.whole_run_kernel = False          # the torch path with its compiled readout, not the C++ kernel
    rng = np.random.default_rng(0)
    pts = np.r_[POINTS_LR, 10 ** rng.uniform(1, 9, (11, 2)), 10 ** rng.uniform(4, 9, (16, 2))]
    fast = train(cfg, family, data, pts).losses
    _close(fast[:5], train(cfg.replace(fast_path=False), family, data, pts[:5]).losses)
    no_exit = train(cfg.replace(early_exit=False), family, data, pts).losses
    np.testing.assert_array_equal(fast, no_exit)
    assert np.isnan(fast[16:, -1]).sum() >= 12, "the test needs a chunk that shrinks"


def test_fast_path_is_used_and_can_be_switched_off(monkeypatch):
    cfg = build_config("paper-tanh", steps=3, tile_batch=2, compile="off")
    family, data = build_family(cfg), _data(cfg)
    family.whole_run_kernel = False          # the step-by-step path (tests/test_mlp_kernel.py: the kernel)
    calls = []
    real = family.loss_and_grads
    monkeypatch.setattr(family, "loss_and_grads", lambda *a: calls.append(1) or real(*a))
    train(cfg, family, data, POINTS_LR[:2])
    assert len(calls) == 3
    train(cfg.replace(fast_path=False), family, data, POINTS_LR[:2])
    assert len(calls) == 3


def test_compile_setting():
    small = build_config("paper-tanh", resolution=8, steps=10)
    assert not compile_wanted(small)                                  # auto: too small to pay
    assert compile_wanted(small.replace(compile="on"))
    assert not compile_wanted(build_config("paper-tanh", compile="off"))
    with pytest.raises(ConfigError, match=r"compile: 'yes' is not allowed \(allowed: auto, on, off\)"):
        build_config("paper-tanh", compile="yes")
    with pytest.raises(ConfigError, match="fast_path"):
        build_config("paper-tanh", fast_path="no")


def test_flop_count_of_paper_mlp():
    # forward 272 x (16x16 + 16x1) MACs, backward twice that except the first layer's input
    # gradient: 2 x 272 x (3 x 272 - 256) FLOPs
    family = BatchedMeanFieldMLP(16, 2, 1, "tanh")
    assert family.flops_per_model_step(272) == 2 * 272 * (3 * (256 + 16) - 256)
    assert math.isclose(family.flops_per_model_step(272) / 1e3, 304.6, rel_tol=1e-3)
