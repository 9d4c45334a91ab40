"""Model families: each builds M copies of one network and computes their losses at once.

A family is a small object with
- ``init_params(seed) -> {name: Tensor}``: one model's initial parameters;
- ``role(name) -> "input" | "hidden" | "output"``: which learning rate a parameter takes;
- ``forward(params, x) -> (M, B, out)`` and ``loss(params, x, y) -> (M,)`` on stacked parameters
  ``{name: (M, *shape)}``; models never mix (each model's numbers depend on its own slice only);
- ``reference(params) -> nn.Module``: the same network as an ordinary single-model module.
The engine does not know which family it runs.
"""
from __future__ import annotations

from ..config import Config
from .meanfield import BatchedMeanFieldMLP, MeanFieldMLP
from .resnet import BatchedResNet, ResNet

__all__ = ["build_family", "BatchedResNet", "ResNet", "BatchedMeanFieldMLP", "MeanFieldMLP"]


def build_family(cfg: Config):
    """The batched model family described by `cfg`."""
    if cfg.model == "resnet":
        return BatchedResNet(cfg.depth, cfg.c_hidden, cfg.skip, cfg.nonlinearity)
    if cfg.model == "meanfield-mlp":
        return BatchedMeanFieldMLP(cfg.width, cfg.depth, cfg.target_dim, cfg.nonlinearity)
    raise ValueError(f"unknown model {cfg.model!r}")
