"""The paper's mean-field MLP (Sohl-Dickstein 2024): no biases, weights N(0, 1), MSE loss.

Layer i computes ``Z = X @ W_i / sqrt(fan_in)``; hidden layers apply ``tanh(sqrt(2) Z)``,
``sqrt(2) relu(Z)`` or ``Z``; the output is ``Z / sqrt(fan_in)`` (so the readout is scaled by
1/width overall: the mean-field parameterisation). ``depth`` counts weight matrices (the paper's
one-hidden-layer network has depth 2). Input dimension equals the width, as in the paper.

`BatchedMeanFieldMLP.loss_and_grads` is the engine's fast path: a hand-written forward and
backward pass in which the first layer of all M models is one GEMM over the shared input
(``(M*h, d) @ (d, N)``) and its weight gradient another (``(M*h, N) @ (N, d)``), instead of M
small products, and the elementwise work runs in place. `forward` stays the plain formula; the
engine differentiates it with autograd when the fast path is switched off, and the tests check
that both paths agree to 1e-10 in float64 over 100 steps.
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
    compile_wanted,
    compiled,
    meanfield_activation_,
    meanfield_activation_backward,
    regression_loss,
)

if TYPE_CHECKING:
    from nnfractal.config import Config

HIDDEN_ACTIVATIONS = MEANFIELD_ACTIVATIONS
_PRE_SCALE, _POST_SCALE = PRE_SCALE, POST_SCALE
_activation_backward = meanfield_activation_backward


def _readout_backward(h: Tensor, w: Tensor, y: Tensor, nonlinearity: str, post: float):
    """The readout layer, the loss and the backward pass down to the last hidden layer's input.

    h (M, H, N) last hidden activations, w (M, H, T) readout weights, y (N, T) targets.
    Returns loss (M,), out (M, T, N), d loss / d w (M, H, T) and d loss / d u (M, H, N) for
    the last hidden layer's pre-activation u (h = post * f(u)). Written as broadcasts and sums
    so that torch.compile fuses it into a few passes over h.
    """
    scale = 1.0 / w.shape[1]          # the readout divides by fan_in twice (mean field)
    n, t = y.shape
    out = (h.unsqueeze(2) * w.unsqueeze(3)).sum(1) * scale                # (M, T, N)
    resid = out - y.T
    loss = resid.square().mean((1, 2))
    dout = resid * (2.0 / (n * t))                                         # d loss / d out
    g_w = (h.unsqueeze(2) * dout.unsqueeze(1)).sum(3) * scale             # (M, H, T)
    grad_h = (w.unsqueeze(3) * dout.unsqueeze(1)).sum(2) * scale          # (M, H, N)
    return loss, out, g_w, _activation_backward(grad_h, h, nonlinearity, post)


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
        for _i, w in enumerate(self.weights):
            z = x @ w / math.sqrt(w.shape[0])
            x = self.act(z)
        return z / math.sqrt(w.shape[0])


class BatchedMeanFieldMLP:
    """M mean-field MLPs at once, as a function of stacked weights ``{name: (M, fan_in, fan_out)}``."""

    task = "regression"

    def __init__(self, width: int = 16, depth: int = 2, target_dim: int = 1,
                 nonlinearity: str = "tanh", compile_kernels: bool = False):
        self.width, self.depth, self.target_dim = width, depth, target_dim
        self.nonlinearity = nonlinearity
        self.act = HIDDEN_ACTIVATIONS[nonlinearity]
        self.names = [f"weights.{i}" for i in range(depth)]
        self.compile_kernels = compile_kernels     # torch.compile the fast path's fused kernel
        # Train chunks model by model through all steps in the C++ kernel where it applies
        # (meanfield_kernel.supports); False: the torch fast path, step by step.
        self.whole_run_kernel = True
        # The activation as post * f(pre * z), for the hand-written passes and the kernel.
        self.pre_scale, self.post_scale = _PRE_SCALE[nonlinearity], _POST_SCALE[nonlinearity]
        self.leaky_slope = LEAKY_SLOPE
        self._compiled = None

    def n_params(self) -> int:
        return self.width * self.width * (self.depth - 1) + self.width * self.target_dim

    def flops_per_model_step(self, n_points: int) -> int:
        """FLOPs of one training step of one model on `n_points` points: the products only
        (forward, input gradient and weight gradient, a multiply-add = 2), not the elementwise
        work. The first layer needs no input gradient."""
        macs = sum(a * b for a, b in self._shapes()) * n_points
        first = self.width * self.width * n_points
        return 2 * (3 * macs - first)

    def _shapes(self) -> list[tuple[int, int]]:
        outs = [self.width] * (self.depth - 1) + [self.target_dim]
        return [(self.width, o) for o in outs]

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
        if not any(w.requires_grad for w in p.values()):
            w = p[self.names[-1]]
            # The readout divides by fan_in twice (the mean-field scale), as in `forward`.
            out = torch.bmm(w.transpose(1, 2), self._hidden(p, x)[-1]).mul_(1.0 / w.shape[1])
            return out.sub_(y.T).square_().mean((1, 2))
        return regression_loss(self.forward(p, x), y)

    # ---- the fast path ------------------------------------------------------------------------
    def _hidden(self, p: dict[str, Tensor], x: Tensor) -> list[Tensor]:
        """The hidden activations of every model, each (M, width, N): features first, points
        contiguous, so that every elementwise pass and every reduction over points runs over
        contiguous memory."""
        pre, post = _PRE_SCALE[self.nonlinearity], _POST_SCALE[self.nonlinearity]
        w0 = p[self.names[0]]                                            # (M, d, h)
        m, d, h = w0.shape
        # Layer 0: the input is shared, so all M models are one (M*h, d) x (d, N) GEMM. The
        # scale 1/sqrt(fan_in) and the activation's inner factor multiply the small input once.
        xs = (x * (pre / math.sqrt(d))).T                                  # (d, N)
        u = torch.mm(w0.transpose(1, 2).reshape(m * h, d), xs).view(m, h, -1)
        hidden = [self._activate(u, post)]
        for name in self.names[1:-1]:
            w = p[name]                                                  # (M, h, h)
            u = torch.bmm(w.transpose(1, 2), hidden[-1]).mul_(pre / math.sqrt(w.shape[1]))
            hidden.append(self._activate(u, post))
        return hidden

    def _activate(self, u: Tensor, post: float) -> Tensor:
        """post * f(u), in place on `u`."""
        return meanfield_activation_(u, self.nonlinearity, post)

    def loss_and_grads(self, p: dict[str, Tensor], x: Tensor, y: Tensor
                       ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Losses (M,), outputs (M, N, target_dim) and the gradient of every model's own loss
        with respect to its weights ({name: (M, fan_in, fan_out)}), without autograd.

        x (N, width) and y (N, target_dim) are shared by all models.
        """
        pre, post = _PRE_SCALE[self.nonlinearity], _POST_SCALE[self.nonlinearity]
        hidden = self._hidden(p, x)
        w = p[self.names[-1]]
        readout = self._readout_kernel if self.compile_kernels else _readout_backward
        loss, out, g_out, grad_u = readout(hidden[-1], w, y, self.nonlinearity, post)
        grads = {self.names[-1]: g_out}
        for i in range(self.depth - 2, -1, -1):
            if i < self.depth - 2:
                grad_u = _activation_backward(grad_u, hidden[i], self.nonlinearity, post)
            w = p[self.names[i]]
            scale = pre / math.sqrt(w.shape[1])
            if i == 0:
                m, d, h = w.shape
                # One (M*h, N) x (N, d) GEMM gives every model's first-layer gradient.
                g = torch.mm(grad_u.view(m * h, -1), x.mul(scale)).view(m, h, d)
                grads[self.names[0]] = g.transpose(1, 2)
            else:
                grads[self.names[i]] = torch.bmm(hidden[i - 1], grad_u.transpose(1, 2)).mul_(scale)
                grad_u = torch.bmm(w.mul(scale), grad_u)          # d loss / d hidden[i - 1]
        return loss, out.transpose(1, 2), dict(reversed(grads.items()))

    def whole_run_supported(self, optimizer: str, classify: bool, evaluations: bool, dtype,
                            device) -> bool:
        """Whether `train_whole_run` can train this run's chunks (meanfield_kernel.supports)."""
        return self.whole_run_kernel and meanfield_kernel.supports(self, optimizer, classify,
                                                                    evaluations, dtype, device)

    def train_whole_run(self, params: dict[str, Tensor], lr: dict[str, Tensor],
                        offsets: dict[str, Tensor], x: Tensor, y: Tensor, batches: Tensor | None,
                        full_loss: bool, steps: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Train M models through `steps` SGD steps in the C++ kernel: the losses (M, steps) and
        the final parameters (meanfield_kernel.train_models says the shapes)."""
        return meanfield_kernel.train_models(self, params, lr, offsets, x, y, batches, full_loss,
                                             steps)

    @property
    def _readout_kernel(self):
        """`_readout_backward`, compiled once per family (torch.compile; the number of models
        is a dynamic dimension, so shrinking chunks reuse the same kernel)."""
        if self._compiled is None:
            self._compiled = compiled(_readout_backward)
        return self._compiled

    def reference(self, params: dict[str, Tensor]) -> MeanFieldMLP:
        net = MeanFieldMLP(self.width, self.depth, self.target_dim, self.nonlinearity)
        net.load_state_dict(params, strict=True)
        return net


def build(cfg: Config) -> BatchedMeanFieldMLP:
    """The batched mean-field MLP of `cfg` (width, depth, target_dim, nonlinearity, compile)."""
    return BatchedMeanFieldMLP(cfg.width, cfg.depth, cfg.target_dim, cfg.nonlinearity,
                               compile_kernels=compile_wanted(cfg))
