"""The batched engine against single-model training, and model isolation."""
import numpy as np
import pytest
import torch

from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import make_schedule, train, train_chunk
from nnfractal.training.grid import hyperparameters
from nnfractal.training.reference import train_single

pytestmark = pytest.mark.slow  # trains models against the reference loop

TINY_RESNET = dict(depth=8, c_hidden=[4, 8, 8], train_size=32, batch_size=16)


def _resnet_cfg(**kw):
    return build_config("resnet20-mnist", **{**TINY_RESNET, **kw})


def _mlp_data(cfg):
    return synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)


POINTS_OFFSET = np.array([[1e-3, 0.05], [3e-2, 0.2], [0.1, 0.01]])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_one_batched_step_equals_single_model_steps_float32(mnist_tiny, optimizer):
    cfg = _resnet_cfg(steps=2, optimizer=optimizer, tile_batch=3, mnmx=[-3.0, 0.0, -3.0, 0.0])
    family = build_family(cfg)
    batched = train(cfg, family, mnist_tiny, POINTS_OFFSET).losses
    for i, p in enumerate(POINTS_OFFSET):
        single = train_single(cfg, family, mnist_tiny, p)["train_loss"]
        # step 0: same initial loss; step 1: the loss after one update
        np.testing.assert_allclose(batched[i], single, rtol=2e-5, atol=1e-6)


def test_resnet_50_steps_agree_float64(mnist_tiny):
    cfg = _resnet_cfg(steps=50, precision="float64", optimizer="momentum", tile_batch=2, batch_size=8)
    family = build_family(cfg)
    batched = train(cfg, family, mnist_tiny, POINTS_OFFSET[:2]).losses
    assert batched.dtype == np.float64
    for i, p in enumerate(POINTS_OFFSET[:2]):
        np.testing.assert_allclose(batched[i], train_single(cfg, family, mnist_tiny, p)["train_loss"],
                                   rtol=1e-10, atol=0)


@pytest.mark.parametrize("preset", ["paper-tanh", "paper-relu", "paper-minibatch", "paper-offset"])
def test_mlp_50_steps_agree_float64(preset):
    cfg = build_config(preset, steps=50, tile_batch=4)
    family = build_family(cfg)
    data = _mlp_data(cfg)
    pts = np.array([[0.5, 2.0], [3.0, 40.0], [0.01, 0.3], [20.0, 5.0]])
    if cfg.phase_space == "offset_vs_lr":
        pts = np.array([[0.001, 2.0], [0.01, 10.0], [-0.005, 0.3], [0.02, 5.0]])
    batched = train(cfg, family, data, pts).losses
    for i, p in enumerate(pts):
        np.testing.assert_allclose(batched[i], train_single(cfg, family, data, p)["train_loss"],
                                   rtol=1e-10, atol=1e-300)


def test_lr_vs_lr_gives_each_layer_its_own_rate(mnist_tiny):
    cfg = _resnet_cfg(steps=3, precision="float64", phase_space="lr_vs_lr", base_lr=0.05, tile_batch=2)
    family = build_family(cfg)
    pts = np.array([[0.3, 0.01], [0.01, 0.3]])
    batched = train(cfg, family, mnist_tiny, pts).losses
    for i, p in enumerate(pts):
        np.testing.assert_allclose(batched[i], train_single(cfg, family, mnist_tiny, p)["train_loss"], rtol=1e-10)
    assert not np.allclose(batched[0], batched[1])   # swapping the rates changes training


@pytest.mark.parametrize("which", ["mlp", "resnet"])
def test_diverging_model_never_changes_other_models(which, mnist_tiny):
    if which == "mlp":
        cfg = build_config("paper-tanh", steps=40, tile_batch=4)
        data = _mlp_data(cfg)
        tame, wild = [1.0, 1.0], [1e6, 1e6]
        others = [[0.5, 2.0], [2.0, 0.5], [3.0, 3.0]]
    else:
        cfg = _resnet_cfg(steps=12, tile_batch=4)
        data = mnist_tiny
        tame, wild = [0.0, 0.01], [1e37, 1e4]
        others = [[0.0, 0.05], [0.01, 0.1], [0.1, 0.02]]
    family = build_family(cfg)
    with_wild = train(cfg, family, data, np.array([wild] + others)).losses
    with_tame = train(cfg, family, data, np.array([tame] + others)).losses
    assert not np.all(np.isfinite(with_wild[0])), "the wild model should diverge to inf/NaN"
    np.testing.assert_array_equal(with_wild[1:], with_tame[1:])   # bit for bit


def test_padding_last_chunk_does_not_change_results():
    cfg = build_config("paper-tanh", steps=30, tile_batch=4)
    family, data = build_family(cfg), _mlp_data(cfg)
    pts = np.array([[0.5, 2.0], [2.0, 0.5], [3.0, 3.0], [1.0, 9.0], [4.0, 4.0]])
    full = train(cfg, family, data, pts).losses          # chunks of 4 + 1 (padded)
    alone = train(cfg, family, data, pts[4:]).losses      # the last point alone (padded)
    np.testing.assert_array_equal(full[4:], alone)


def test_every_step_offset_accumulates():
    cfg = build_config("paper-offset", steps=3, tile_batch=1)
    family, data = build_family(cfg), _mlp_data(cfg)
    sched = make_schedule(cfg, len(data.x_train))
    init = {k: v for k, v in family.init_params(cfg.seed).items()}
    hp = hyperparameters(cfg, np.array([[0.5, 0.0]]))        # lr 0: only the offset moves weights
    losses = train_chunk(cfg, family, init, data, sched, hp)["train_loss"]
    for t in range(3):
        p = {k: v.clone().unsqueeze(0) for k, v in init.items()}
        p["weights.0"] += 0.5 * (t + 1)
        expected = family.loss(p, data.x_train, data.y_train)
        torch.testing.assert_close(losses[0, t], expected[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("which", ["mlp", "resnet"])
def test_early_exit_gives_bit_identical_curves(which):
    from nnfractal.training.data import load_mnist
    if which == "mlp":
        cfg = build_config("paper-tanh", steps=60, tile_batch=16)
        data = _mlp_data(cfg)
        rng = np.random.default_rng(0)
        pts = 10 ** rng.uniform(-1, 9, (40, 2))          # many of these overflow to NaN
    else:
        data = load_mnist(train_size=32, test_size=40, download=False)
        cfg = _resnet_cfg(num_epochs=3, tile_batch=4, eval_every=1, test_size=40, c_hidden=[16, 32, 64])
        rng = np.random.default_rng(1)
        pts = np.c_[10 ** rng.uniform(-3, 38, 8), 10 ** rng.uniform(-2, 4, 8)]   # offsets up to 1e38: inf
    family = build_family(cfg)
    fast = train(cfg, family, data, pts).curves
    slow = train(cfg.replace(early_exit=False), family, data, pts).curves
    assert set(fast) == set(slow)
    for name in fast:
        np.testing.assert_array_equal(fast[name], slow[name], err_msg=name)
    assert np.isnan(slow["train_loss"][:, -1]).sum() >= 3, "the test needs diverging models"


def test_early_exit_never_shrinks_narrow_float32_resnets(mnist_tiny):
    # With 4-8 channels per model the chunk size changes float32 roundoff: early exit only fills.
    cfg = _resnet_cfg(num_epochs=3, tile_batch=8, eval_every=0)
    pts = np.c_[10 ** np.linspace(20, 38, 8), np.full(8, 0.1)]
    family = build_family(cfg)
    np.testing.assert_array_equal(train(cfg, family, mnist_tiny, pts).losses,
                                  train(cfg.replace(early_exit=False), family, mnist_tiny, pts).losses)


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"),
                    reason="flush-to-zero is x86's MXCSR here")
def test_every_openmp_thread_flushes_denormals():
    """The flag is per thread and OpenMP's threads copy their creator's: importing the engine sets
    it before the process's first parallel operation, so every torch thread flushes (an OpenMP
    thread started earlier kept denormals: half of a 2-thread product came back nonzero)."""
    import subprocess
    import sys
    code = ("import torch\nfrom nnfractal.training import engine\ntorch.set_num_threads(2)\n"
            "x = torch.full((1 << 22,), 1e-310, dtype=torch.float64)\n"
            "print(int((x * 1.0 != 0).sum()), torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "2"]
