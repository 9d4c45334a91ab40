"""A model family added from outside the package: a tiny ViT-like classifier for 28x28 images.

The whole family is this file; tests/test_model_registry.py adds it with one line,
``register(TINY_VIT)``. The image is cut into 16 patches of 7x7 pixels, each embedded by one
shared matrix (width units) plus a learned position embedding; ``depth`` blocks of single-head
self-attention with a residual add and the nonlinearity; the tokens' mean; a linear head with a
bias. No biases elsewhere.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnfractal.errors import check_choice, check_int_at_least
from nnfractal.models import FamilySpec

PATCH = 7
TOKENS = (28 // PATCH) ** 2        # 16
PIXELS = PATCH * PATCH             # 49
CLASSES = 10
DEPTHS = (1, 2, 3, 4)
ACTIVATIONS = {"relu": F.relu, "leaky": lambda x: F.leaky_relu(x, 0.01), "tanh": torch.tanh,
               "identity": lambda x: x}


def patches(x: Tensor) -> Tensor:
    """(B, 1, 28, 28) images -> (B, 16, 49) patches, row by row."""
    b = x.shape[0]
    p = x.reshape(b, 28 // PATCH, PATCH, 28 // PATCH, PATCH).transpose(2, 3)
    return p.reshape(b, TOKENS, PIXELS)


class TinyViT(nn.Module):
    """One model: (B, 1, 28, 28) -> (B, 10) logits. The float64 reference."""

    def __init__(self, width: int = 8, depth: int = 1, nonlinearity: str = "relu"):
        super().__init__()
        self.embed = nn.Linear(PIXELS, width, bias=False)
        self.pos = nn.Parameter(0.1 * torch.randn(TOKENS, width))
        self.blocks = nn.ModuleList(
            nn.ModuleDict({k: nn.Linear(width, width, bias=False) for k in ("q", "k", "v")})
            for _ in range(depth))
        self.head = nn.Linear(width, CLASSES)
        self.act = ACTIVATIONS[nonlinearity]

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(patches(x)) + self.pos                          # (B, 16, w)
        for blk in self.blocks:
            q, k, v = blk["q"](h), blk["k"](h), blk["v"](h)
            att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(h.shape[-1]), -1)
            h = self.act(h + att @ v)
        return self.head(h.mean(1))


class BatchedTinyViT:
    """M tiny ViTs at once over stacked parameters {name: (M, *shape)} (names as in TinyViT)."""

    task = "classification"

    def __init__(self, width: int, depth: int, nonlinearity: str):
        self.width, self.depth, self.nonlinearity = width, depth, nonlinearity
        self.act = ACTIVATIONS[nonlinearity]

    def init_params(self, seed: int) -> dict[str, Tensor]:
        torch.manual_seed(seed)
        net = TinyViT(self.width, self.depth, self.nonlinearity)
        return {k: v.detach().clone() for k, v in net.named_parameters()}

    def role(self, name: str) -> str:
        return "input" if name in ("embed.weight", "pos") else "output" if name.startswith("head.") \
            else "hidden"

    def forward(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """x (B, 1, 28, 28) shared by all models -> logits (M, B, 10)."""
        h = torch.einsum("btp,mwp->mbtw", patches(x), p["embed.weight"]) + p["pos"][:, None]
        for i in range(self.depth):
            q, k, v = (h @ p[f"blocks.{i}.{n}.weight"].transpose(1, 2)[:, None] for n in "qkv")
            att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(self.width), -1)
            h = self.act(h + att @ v)
        return torch.baddbmm(p["head.bias"][:, None], h.mean(2), p["head.weight"].transpose(1, 2))

    def loss(self, p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = self.forward(p, x)
        m, b, c = logits.shape
        return F.cross_entropy(logits.reshape(m * b, c), y.repeat(m), reduction="none").view(m, b).mean(1)

    def reference(self, params: dict[str, Tensor]) -> TinyViT:
        net = TinyViT(self.width, self.depth, self.nonlinearity)
        net.load_state_dict(params, strict=True)
        return net


def _check(cfg) -> None:
    check_choice("depth", cfg.depth, DEPTHS)
    check_int_at_least("width", cfg.width, 2)


def _n_params(cfg) -> int:
    w = cfg.width
    return PIXELS * w + TOKENS * w + cfg.depth * 3 * w * w + CLASSES * w + CLASSES


TINY_VIT = FamilySpec(
    name="tiny-vit", build=lambda cfg: BatchedTinyViT(cfg.width, cfg.depth, cfg.nonlinearity),
    label=lambda cfg: f"tiny ViT, {cfg.depth} attention x {cfg.width}",
    datasets=("mnist", "fashion-mnist"), n_params=_n_params,
    activations_per_example=lambda cfg: TOKENS * cfg.width * (2 + 6 * cfg.depth),
    check=_check, unused_fields=("c_hidden", "skip", "target_dim"),
    depth_help="attention blocks (1 to 4)")
