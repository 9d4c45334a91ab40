"""CUDA path: the same numbers as on CPU (float32 to single-step roundoff, float64 trajectories
to 1e-10), TF32 and bfloat16 only on request, chunk size from free memory. Skipped without a GPU
(benchmarks/gpu_check.sh runs them on a GPU machine)."""
import numpy as np
import pytest
import torch

from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import resolve_tile_batch, train

pytestmark = [pytest.mark.slow,  # trains on CUDA
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
POINTS = np.array([[1e-3, 0.05], [3e-2, 0.2], [0.1, 0.01], [0.0, 0.3]])


def test_resnet_one_step_on_cuda_equals_cpu(mnist_tiny):
    cfg = build_config("resnet20-mnist", depth=8, train_size=32, batch_size=16, steps=2, tile_batch=4)
    family = build_family(cfg)
    cpu = train(cfg, family, mnist_tiny, POINTS).losses
    gpu = train(cfg.replace(device="cuda"), family, mnist_tiny, POINTS).losses
    # The forward pass to float32 roundoff; the loss after one SGD step is a function of the
    # gradient, whose roundoff cuDNN and oneDNN sum in different orders (measured on an H200:
    # 3.7e-5 relative for 1 of 4 models after one step).
    np.testing.assert_allclose(gpu[:, 0], cpu[:, 0], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(gpu[:, 1], cpu[:, 1], rtol=2e-4)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = train(cfg.replace(device="cuda", matmul_precision="tf32"), family, mnist_tiny, POINTS).losses
    np.testing.assert_allclose(tf32[:, 0], cpu[:, 0], rtol=1e-2)        # close, not equal
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_mlp_fast_path_on_cuda_float64_100_steps():
    cfg = build_config("paper-tanh", steps=100, tile_batch=8, device="cuda", compile="off")
    data = synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim)
    family = build_family(cfg)
    pts = np.array([[0.5, 2.0], [0.01, 0.3], [1.0, 1.0], [0.05, 0.05]])
    gpu = train(cfg, family, data, pts).losses
    cpu = train(cfg.replace(device="cpu", fast_path=False), family, data, pts).losses
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10)


def test_auto_chunk_size_fits_free_memory(mnist_tiny):
    cfg = build_config("resnet20-mnist", train_size=32, batch_size=16, steps=1, tile_batch=0, device="cuda")
    family = build_family(cfg)
    tile = resolve_tile_batch(cfg, family, mnist_tiny)
    assert tile & (tile - 1) == 0 and 1 <= tile <= 4096
    result = train(cfg, family, mnist_tiny, POINTS)
    assert result.tile_batch == tile
