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

from ..config import Config
from .common import (AUTO_COMPILE_MODEL_STEPS, classification_loss, compile_wanted, correct_count,
                     regression_loss)
from .meanfield import BatchedMeanFieldMLP, MeanFieldMLP
from .mlp import MLP, BatchedMLP
from .resnet import BatchedResNet, ResNet

__all__ = ["build_family", "BatchedResNet", "ResNet", "BatchedMeanFieldMLP", "MeanFieldMLP",
           "BatchedMLP", "MLP", "classification_loss", "regression_loss", "correct_count",
           "compile_wanted", "AUTO_COMPILE_MODEL_STEPS"]


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
