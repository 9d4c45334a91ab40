"""A deep mean-field MLP with or without skip connections: the paper's MLP made deep.

Layers, with weights N(0, 1), no biases, H = width = input dimension, act as the paper MLP's
(tanh(sqrt(2) z), sqrt(2) relu(z), ...), ``L = depth`` weight matrices:

- the stem:   ``h_1 = act(W_0^T x / sqrt(H))``;
- L - 2 hidden layers, l = 1..L-2: ``h_{l+1} = h_l + a act(W_l^T h_l / sqrt(H))`` with skip
  connections (``skip = true``), ``h_{l+1} = act(W_l^T h_l / sqrt(H))`` without;
- the readout: ``out = w^T h_{L-1} / H`` (mean field: 1/sqrt(H) twice), MSE loss.

``a = 1 / sqrt(L - 2)``: each branch adds a^2 E[act^2] to the variance of the residual stream, so
after the L - 2 blocks the stream's variance, and the norm of the backward pass, are O(1) at any
depth, while the blocks together still change the function by O(1) (a = 1/L would make them
vanish as depth grows). Without skips the network is the paper MLP of that depth (meanfield.py),
weight for weight; the switch changes nothing else (the same names, initial weights, data and
offsets), so the two variants differ in the skips alone.

Learning rates (``role``): the readout takes the output rate; the stem and every hidden layer take
the input rate. The input dimension equals the width, so the stem is an H x H layer of the same
mean-field scale as the hidden ones; one rate for the whole trunk keeps lr_vs_lr a map of the two
rates of the paper (trunk against readout), which is the paper's map at depth 2, instead of
fixing the other L - 2 layers at `base_lr`, which would set the deep network's boundary alone.

`loss_and_grads` is the torch fast path (a hand-written backward pass over all M models, features
first as meanfield.py's), and `train_whole_run` the C++ whole-run kernel
(meanfield_kernel.train_deep_models); `forward` is the plain formula that autograd differentiates
when the fast path is off.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from . import meanfield_kernel
from .common import (
    LEAKY_SLOPE,
    MEANFIELD_ACTIVATIONS,
    POST_SCALE,
    PRE_SCALE,
    meanfield_activation_,
    meanfield_activation_backward,
    regression_loss,
)

if TYPE_CHECKING:
    from nnfractal.config import Config


def branch_scale(depth: int) -> float:
    """a = 1 / sqrt(number of hidden layers) (1 where there are none)."""
    return 1.0 / math.sqrt(max(1, depth - 2))


class ResidualMeanFieldMLP(nn.Module):
    """One model: X (N, width) -> (N, target_dim). The float64 reference of the tests."""

    def __init__(self, width: int = 16, depth: int = 4, target_dim: int = 1,
                 nonlinearity: str = "tanh", skip: bool = True):
        super().__init__()
        outs = [width] * (depth - 1) + [target_dim]
        # Drawn in the order (and with the names) of meanfield.MeanFieldMLP: the same seed gives
        # the same weights as the paper MLP of this depth.
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(width, o, dtype=torch.float64))
                                         for o in outs])
        self.act = MEANFIELD_ACTIVATIONS[nonlinearity]
        self.skip, self.branch = skip, branch_scale(depth)

    def forward(self, x: Tensor) -> Tensor:
        *trunk, readout = self.weights
        h = self.act(x @ trunk[0] / math.sqrt(trunk[0].shape[0]))
        for w in trunk[1:]:
            branch = self.act(h @ w / math.sqrt(w.shape[0]))
            h = h + self.branch * branch if self.skip else branch
        return h @ readout / readout.shape[0]


class BatchedResidualMeanFieldMLP:
    """M deep mean-field MLPs at once, as a function of stacked weights
    ``{"weights.i": (M, fan_in, fan_out)}``."""

    task = "regression"

    def __init__(self, width: int = 16, depth: int = 4, target_dim: int = 1,
                 nonlinearity: str = "tanh", skip: bool = True):
        self.width, self.depth, self.target_dim = width, depth, target_dim
        self.nonlinearity, self.skip = nonlinearity, skip
        self.branch_scale = branch_scale(depth)
        self.act = MEANFIELD_ACTIVATIONS[nonlinearity]
        self.names = [f"weights.{i}" for i in range(depth)]
        # The activation as post * f(pre * z), for the hand-written passes and the kernel.
        self.pre_scale, self.post_scale = PRE_SCALE[nonlinearity], POST_SCALE[nonlinearity]
        self.leaky_slope = LEAKY_SLOPE
        # Train chunks model by model through all steps in the C++ kernel where it applies
        # (meanfield_kernel.supports_deep); False: the torch fast path, step by step.
        self.whole_run_kernel = True

    def n_params(self) -> int:
        return self.width * self.width * (self.depth - 1) + self.width * self.target_dim

    def flops_per_model_step(self, n_points: int) -> int:
        """FLOPs of one training step of one model on `n_points` points: the products only
        (forward, input gradient and weight gradient, a multiply-add = 2), not the elementwise
        work nor the residual adds. The stem needs no input gradient."""
        h = self.width
        macs = (h * h * (self.depth - 1) + h * self.target_dim) * n_points
        return 2 * (3 * macs - h * h * n_points)

    def init_params(self, seed: int) -> dict[str, Tensor]:
        """One model's N(0, 1) weights (float64), drawn from `seed` (both variants alike)."""
        torch.manual_seed(seed)
        net = ResidualMeanFieldMLP(self.width, self.depth, self.target_dim, self.nonlinearity,
                                   self.skip)
        return {k: v.detach().clone() for k, v in net.named_parameters()}

    def role(self, name: str) -> str:
        """The readout takes the output rate, the stem and hidden layers the input rate."""
        return "output" if name == self.names[-1] else "input"

    def forward(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """x (N, width) shared by all models -> (M, N, target_dim)."""
        w0 = p[self.names[0]]
        h = self.act(torch.matmul(x, w0) / math.sqrt(w0.shape[1]))
        for name in self.names[1:-1]:
            w = p[name]
            branch = self.act(torch.matmul(h, w) / math.sqrt(w.shape[1]))
            h = h + self.branch_scale * branch if self.skip else branch
        w = p[self.names[-1]]
        return torch.matmul(h, w) / w.shape[1]

    def loss(self, p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Mean squared error of each model over points and target dimensions: (M,)."""
        return regression_loss(self.forward(p, x), y)

    # ---- the fast path ------------------------------------------------------------------------
    def _hidden(self, p: dict[str, Tensor], x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The hidden states h_1..h_{L-1} and the activations act_0..act_{L-2} of every model,
        each (M, width, N): features first, points contiguous (as meanfield.py). Without skips,
        and for the stem, the activation is the next hidden state itself."""
        w0 = p[self.names[0]]                                            # (M, d, h)
        m, d, h = w0.shape
        # The stem: the input is shared, so all M models are one (M*h, d) x (d, N) GEMM.
        xs = (x * (self.pre_scale / math.sqrt(d))).T                     # (d, N)
        u = torch.mm(w0.transpose(1, 2).reshape(m * h, d), xs).view(m, h, -1)
        hidden = [self._activate(u)]
        acts = [hidden[0]]
        for name in self.names[1:-1]:
            w = p[name]                                                  # (M, h, h)
            u = torch.bmm(w.transpose(1, 2), hidden[-1]).mul_(self.pre_scale / math.sqrt(h))
            act = self._activate(u)
            acts.append(act)
            hidden.append(hidden[-1] + self.branch_scale * act if self.skip else act)
        return hidden, acts

    def _activate(self, u: Tensor) -> Tensor:
        """post * f(u), in place on `u`."""
        return meanfield_activation_(u, self.nonlinearity, self.post_scale)

    def loss_and_grads(self, p: dict[str, Tensor], x: Tensor, y: Tensor
                       ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Losses (M,), outputs (M, N, target_dim) and the gradient of every model's own loss
        with respect to its weights ({name: (M, fan_in, fan_out)}), without autograd.

        x (N, width) and y (N, target_dim) are shared by all models.
        """
        hidden, acts = self._hidden(p, x)
        w = p[self.names[-1]]                                            # (M, h, T)
        m, h, t = w.shape
        n = x.shape[0]
        out = torch.bmm(w.transpose(1, 2), hidden[-1]).mul_(1.0 / h)     # (M, T, N)
        resid = out - y.T
        loss = resid.square().mean((1, 2))
        dout = resid.mul_(2.0 / (n * t))
        grads = {self.names[-1]: torch.bmm(hidden[-1], dout.transpose(1, 2)).mul_(1.0 / h)}
        grad_h = torch.bmm(w, dout).mul_(1.0 / h)                        # d loss / d h_{L-1}
        scale = self.pre_scale / math.sqrt(h)
        for i in range(self.depth - 2, 0, -1):
            du = meanfield_activation_backward(grad_h, acts[i], self.nonlinearity, self.post_scale)
            if self.skip:
                du = du * self.branch_scale          # not in place: identity's du is grad_h
            grads[self.names[i]] = torch.bmm(hidden[i - 1], du.transpose(1, 2)).mul_(scale)
            back = torch.bmm(p[self.names[i]], du).mul_(scale)          # through W_i
            grad_h = grad_h.add_(back) if self.skip else back
        du = meanfield_activation_backward(grad_h, acts[0], self.nonlinearity, self.post_scale)
        d = x.shape[1]
        # One (M*h, N) x (N, d) GEMM gives every model's stem gradient.
        g0 = torch.mm(du.reshape(m * h, n), x * (self.pre_scale / math.sqrt(d))).view(m, h, d)
        grads[self.names[0]] = g0.transpose(1, 2)
        return loss, out.transpose(1, 2), dict(reversed(grads.items()))

    def whole_run_supported(self, optimizer: str, classify: bool, evaluations: bool, dtype,
                            device) -> bool:
        """Whether `train_whole_run` can train this run's chunks (meanfield_kernel.supports_deep)."""
        return self.whole_run_kernel and meanfield_kernel.supports_deep(
            self, optimizer, classify, evaluations, dtype, device)

    def train_whole_run(self, params: dict[str, Tensor], lr: dict[str, Tensor],
                        offsets: dict[str, Tensor], x: Tensor, y: Tensor, batches: Tensor | None,
                        full_loss: bool, steps: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Train M models through `steps` SGD steps in the C++ kernel: the losses (M, steps) and
        the final parameters (meanfield_kernel.train_deep_models says the shapes)."""
        return meanfield_kernel.train_deep_models(self, params, lr, offsets, x, y, batches,
                                                  full_loss, steps)

    def reference(self, params: dict[str, Tensor]) -> ResidualMeanFieldMLP:
        net = ResidualMeanFieldMLP(self.width, self.depth, self.target_dim, self.nonlinearity,
                                   self.skip)
        net.load_state_dict(params, strict=True)
        return net


def build(cfg: Config) -> BatchedResidualMeanFieldMLP:
    """The batched deep mean-field MLP of `cfg` (width, depth, target_dim, nonlinearity, skip)."""
    return BatchedResidualMeanFieldMLP(cfg.width, cfg.depth, cfg.target_dim, cfg.nonlinearity,
                                       cfg.skip)
