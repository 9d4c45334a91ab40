"""The paper's mean-field MLP (Sohl-Dickstein 2024): no biases, weights N(0, 1), MSE loss.

Layer i computes ``Z = X @ W_i / sqrt(fan_in)``; hidden layers apply ``tanh(sqrt(2) Z)``,
``sqrt(2) relu(Z)`` or ``Z``; the output is ``Z / sqrt(fan_in)`` (so the readout is scaled by
1/width overall: the mean-field parameterisation). ``depth`` counts weight matrices (the paper's
one-hidden-layer network has depth 2). Input dimension equals the width, as in the paper.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

HIDDEN_ACTIVATIONS = {
    "tanh": lambda z: torch.tanh(z * math.sqrt(2.0)),
    "relu": lambda z: torch.relu(z) * math.sqrt(2.0),
    "leaky": lambda z: torch.nn.functional.leaky_relu(z, 0.01) * math.sqrt(2.0),
    "identity": lambda z: z,
}


class MeanFieldMLP(nn.Module):
    """One model: X (N, width) -> (N, target_dim). The reference for tests and the naive loop."""

    def __init__(self, width: int = 16, depth: int = 2, target_dim: int = 1,
                 nonlinearity: str = "tanh"):
        super().__init__()
        outs = [width] * (depth - 1) + [target_dim]
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(width, o, dtype=torch.float64))
                                         for o in outs])
        self.act = HIDDEN_ACTIVATIONS[nonlinearity]

    def forward(self, x: Tensor) -> Tensor:
        for i, w in enumerate(self.weights):
            z = x @ w / math.sqrt(w.shape[0])
            x = self.act(z)
        return z / math.sqrt(w.shape[0])


class BatchedMeanFieldMLP:
    """M mean-field MLPs at once, as a function of stacked weights ``{name: (M, fan_in, fan_out)}``."""

    task = "regression"

    def __init__(self, width: int = 16, depth: int = 2, target_dim: int = 1,
                 nonlinearity: str = "tanh"):
        self.width, self.depth, self.target_dim = width, depth, target_dim
        self.nonlinearity = nonlinearity
        self.act = HIDDEN_ACTIVATIONS[nonlinearity]
        self.names = [f"weights.{i}" for i in range(depth)]

    def n_params(self) -> int:
        return self.width * self.width * (self.depth - 1) + self.width * self.target_dim

    def init_params(self, seed: int) -> dict[str, Tensor]:
        """One model's N(0, 1) weights (float64), drawn from `seed`."""
        torch.manual_seed(seed)
        net = MeanFieldMLP(self.width, self.depth, self.target_dim, self.nonlinearity)
        return {k: v.detach().clone() for k, v in net.named_parameters()}

    def role(self, name: str) -> str:
        i = int(name.split(".")[1])
        return "input" if i == 0 else "output" if i == self.depth - 1 else "hidden"

    def forward(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """x (N, width) shared by all models -> (M, N, target_dim)."""
        h = x
        for name in self.names:
            w = p[name]
            z = torch.matmul(h, w) / math.sqrt(w.shape[1])
            h = self.act(z)
        return z / math.sqrt(w.shape[1])

    def loss(self, p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Mean squared error of each model over points and target dimensions: (M,)."""
        from . import regression_loss
        return regression_loss(self.forward(p, x), y)

    def reference(self, params: dict[str, Tensor]) -> MeanFieldMLP:
        net = MeanFieldMLP(self.width, self.depth, self.target_dim, self.nonlinearity)
        net.load_state_dict(params, strict=True)
        return net
