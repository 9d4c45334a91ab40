"""An ordinary MLP classifier for 28x28 images (the customer's 784-300-10 ReLU network).

Biases, PyTorch's standard `nn.Linear` initialisation, softmax cross-entropy. ``depth`` counts
linear layers (2 = one hidden layer of ``width`` units).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .common import activation, classification_loss

if TYPE_CHECKING:
    from nnfractal.config import Config


class MLP(nn.Module):
    """One model: (B, 1, 28, 28) -> (B, n_classes) logits."""

    def __init__(self, width: int = 300, depth: int = 2, nonlinearity: str = "relu",
                 n_in: int = 784, n_classes: int = 10):
        super().__init__()
        sizes = [n_in] + [width] * (depth - 1) + [n_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = activation(nonlinearity)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h


class BatchedMLP:
    """M MLPs at once, as a function of stacked parameters (names as in `MLP`)."""

    task = "classification"

    def __init__(self, width: int = 300, depth: int = 2, nonlinearity: str = "relu"):
        self.width, self.depth, self.nonlinearity = width, depth, nonlinearity
        self.act = activation(nonlinearity)

    def init_params(self, seed: int) -> dict[str, Tensor]:
        torch.manual_seed(seed)
        net = MLP(self.width, self.depth, self.nonlinearity)
        return {k: v.detach().clone() for k, v in net.named_parameters()}

    def role(self, name: str) -> str:
        i = int(name.split(".")[1])
        return "input" if i == 0 else "output" if i == self.depth - 1 else "hidden"

    def forward(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """x (B, 1, 28, 28) shared by all models -> logits (M, B, 10)."""
        w0 = p["layers.0.weight"]                                   # (M, H, 784)
        m, hidden, n_in = w0.shape
        # The input is shared: one (B, 784) x (784, M*H) GEMM for the first layer of every model.
        h = (x.flatten(1) @ w0.reshape(m * hidden, n_in).T).view(-1, m, hidden).transpose(0, 1)
        h = h + p["layers.0.bias"].unsqueeze(1)
        for i in range(1, self.depth):
            h = self.act(h)
            w, b = p[f"layers.{i}.weight"], p[f"layers.{i}.bias"]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        return h

    def loss(self, p, x, y):
        return classification_loss(self.forward(p, x), y)

    def reference(self, params: dict[str, Tensor]) -> MLP:
        net = MLP(self.width, self.depth, self.nonlinearity)
        net.load_state_dict(params, strict=True)
        return net


def build(cfg: Config) -> BatchedMLP:
    """The batched MLP of `cfg` (width, depth, nonlinearity)."""
    return BatchedMLP(cfg.width, cfg.depth, cfg.nonlinearity)
