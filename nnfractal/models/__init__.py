"""Model families: each builds M copies of one network and computes their losses at once.

A family is a small object with
- ``init_params(seed) -> {name: Tensor}``: one model's initial parameters;
- ``role(name) -> "input" | "hidden" | "output"``: which learning rate a parameter takes;
- ``task``: "classification" (logits, cross-entropy, accuracy) or "regression" (MSE);
- ``forward(params, x) -> (M, B, out)`` and ``loss(params, x, y) -> (M,)`` on stacked parameters
  ``{name: (M, *shape)}``; models never mix (each model's numbers depend on its own slice only);
- ``reference(params) -> nn.Module``: the same network as an ordinary single-model module.
The engine does not know which family it runs.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..config import Config


def classification_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Mean softmax cross-entropy of each model: logits (M, B, C), labels (B,) -> (M,)."""
    m, b, c = logits.shape
    return F.cross_entropy(logits.reshape(m * b, c), y.repeat(m), reduction="none").view(m, b).mean(1)


def regression_loss(out: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of each model over points and outputs: (M, N, D), (N, D) -> (M,)."""
    return (out - y).square().mean((1, 2))


def correct_count(logits: Tensor, y: Tensor) -> Tensor:
    """Number of correctly classified examples per model: (M, B, C), (B,) -> (M,) float."""
    return (logits.argmax(-1) == y).sum(1).to(logits.dtype)


from .meanfield import BatchedMeanFieldMLP, MeanFieldMLP  # noqa: E402
from .mlp import MLP, BatchedMLP  # noqa: E402
from .resnet import BatchedResNet, ResNet  # noqa: E402

__all__ = ["build_family", "BatchedResNet", "ResNet", "BatchedMeanFieldMLP", "MeanFieldMLP",
           "BatchedMLP", "MLP", "classification_loss", "regression_loss", "correct_count"]


# torch.compile costs ~5-10 s per kernel with a warm cache (~40 s cold, measured on a 2-core
# Xeon) and saves ~10 us per model-step of the paper's MLP: under "auto" it is used only for runs
# of at least this many model-steps.
AUTO_COMPILE_MODEL_STEPS = 1_000_000


def compile_wanted(cfg: Config) -> bool:
    """Whether the model's kernels are torch.compiled (the MLP's fused readout and backward, the
    ResNet's forward and backward): cfg.compile "on"/"off", or "auto": when the run's grid is
    large enough to repay the compile time and a C++ compiler (CPU) is present (torch.compile's
    CPU backend needs one); for the ResNet only on CUDA."""
    import shutil
    if cfg.compile != "auto":
        return cfg.compile == "on"
    steps = cfg.steps or cfg.num_epochs * (1 if cfg.full_batch else max(1, cfg.train_size // cfg.batch_size))
    if cfg.resolution ** 2 * steps < AUTO_COMPILE_MODEL_STEPS:
        return False
    if cfg.model == "resnet" and cfg.device != "cuda":
        return False                    # CPU: 3% faster than channels_last eager, not worth it
    return cfg.device in ("cuda", "auto") or any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def build_family(cfg: Config):
    """The batched model family described by `cfg`."""
    if cfg.model == "resnet":
        return BatchedResNet(cfg.depth, cfg.c_hidden, cfg.skip, cfg.nonlinearity,
                             compile_kernels=compile_wanted(cfg))
    if cfg.model == "meanfield-mlp":
        return BatchedMeanFieldMLP(cfg.width, cfg.depth, cfg.target_dim, cfg.nonlinearity,
                                   compile_kernels=compile_wanted(cfg))
    if cfg.model == "mlp":
        return BatchedMLP(cfg.width, cfg.depth, cfg.nonlinearity)
    raise ValueError(f"unknown model {cfg.model!r}")
