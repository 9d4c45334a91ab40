"""What the model families share: the losses, the activations, and the torch.compile wrapper and
its "auto" rule. No family imports another; each imports this.
"""
from __future__ import annotations

import math
import shutil
import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:            # types only: the models sit below config (pyproject.toml's floors)
    from nnfractal.config import Config


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


def activation(name: str):
    """The elementwise nonlinearity called `name` (relu, leaky, tanh, identity)."""
    return {
        "relu": F.relu,
        "leaky": lambda x: F.leaky_relu(x, 0.01),
        "tanh": torch.tanh,
        "identity": lambda x: x,
    }[name]


def activation_(name: str):
    """`activation(name)` in place: the batched network applies it to BatchNorm outputs and
    residual sums, which no backward formula needs, so autograd allows it; it saves one
    allocation and memory pass per layer (~5% of a CPU training step, measured)."""
    return {
        "relu": torch.relu_,
        "leaky": lambda x: F.leaky_relu_(x, 0.01),
        "tanh": torch.tanh_,
        "identity": lambda x: x,
    }[name]


# ---- the mean-field MLPs' activations ---------------------------------------------------------
# The hidden activations of a pre-activation z, as the paper's colab: tanh(sqrt(2) z), sqrt(2) relu(z)...
MEANFIELD_ACTIVATIONS = {
    "tanh": lambda z: torch.tanh(z * math.sqrt(2.0)),
    "relu": lambda z: torch.relu(z) * math.sqrt(2.0),
    "leaky": lambda z: torch.nn.functional.leaky_relu(z, 0.01) * math.sqrt(2.0),
    "identity": lambda z: z,
}
# The same activations as act(z) = post * f(pre * z), for the hand-written backward passes.
PRE_SCALE = {"tanh": math.sqrt(2.0), "relu": 1.0, "leaky": 1.0, "identity": 1.0}
POST_SCALE = {"tanh": 1.0, "relu": math.sqrt(2.0), "leaky": math.sqrt(2.0), "identity": 1.0}
LEAKY_SLOPE = 0.01


def meanfield_activation_(u: Tensor, nonlinearity: str, post: float) -> Tensor:
    """h = post * f(u), in place on `u` (the forward of `meanfield_activation_backward`)."""
    if nonlinearity == "tanh":
        u.tanh_()
    elif nonlinearity == "relu":
        u.relu_()
    elif nonlinearity == "leaky":
        torch.nn.functional.leaky_relu_(u, LEAKY_SLOPE)
    if post != 1.0:
        u.mul_(post)
    return u


def meanfield_activation_backward(grad: Tensor, h: Tensor, nonlinearity: str, post: float) -> Tensor:
    """d loss / d u from grad = d loss / d h, where h = post * f(u) (elementwise)."""
    if nonlinearity == "tanh":
        return grad * (1.0 - h * h)
    if nonlinearity == "relu":
        return grad * (h > 0) * post
    if nonlinearity == "leaky":
        return torch.where(h > 0, grad * post, grad * (post * LEAKY_SLOPE))
    return grad


def compiled(fn):
    """torch.compile(fn) with the leading (models) dimension dynamic; on any failure to compile
    (no C++ compiler, an unsupported platform) a warning and `fn` itself."""
    state = {"fn": None}

    def call(*args):
        if state["fn"] is None:
            # Early exit shrinks chunks: kernels compiled for fixed sizes (the ResNet's) need
            # one entry per power of two, more than torch's default limit of 8 per function.
            import torch._dynamo as dynamo
            if getattr(dynamo.config, "recompile_limit", 64) < 64:
                dynamo.config.recompile_limit = 64
            state["fn"] = torch.compile(fn, dynamic=False)
        for a in args:
            # Sizes 0 and 1 are always specialised by torch.compile; early exit shrinks chunks
            # through powers of two >= 2, which all share the dynamic kernel.
            if isinstance(a, Tensor) and a.ndim == 3 and a.shape[0] >= 2:
                torch._dynamo.mark_dynamic(a, 0)
        try:
            return state["fn"](*args)
        except Exception as err:                          # noqa: BLE001 - any backend failure
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); "
                          "running the fused kernel uncompiled", RuntimeWarning, stacklevel=2)
            state["fn"] = fn
            return fn(*args)
    return call


# torch.compile costs ~5-10 s per kernel with a warm cache (~40 s cold, measured on a 2-core
# Xeon) and saves ~10 us per model-step of the paper's MLP: under "auto" it is used only for runs
# of at least this many model-steps.
AUTO_COMPILE_MODEL_STEPS = 1_000_000


def compile_wanted(cfg: Config) -> bool:
    """Whether the model's kernels are torch.compiled (the MLP's fused readout and backward, the
    ResNet's forward and backward): cfg.compile "on"/"off", or "auto": when the run's grid is
    large enough to repay the compile time and a C++ compiler (CPU) is present (torch.compile's
    CPU backend needs one); for the ResNet only on CUDA."""
    if cfg.compile != "auto":
        return cfg.compile == "on"
    steps = cfg.steps or cfg.num_epochs * (1 if cfg.full_batch else max(1, cfg.train_size // cfg.batch_size))
    if cfg.resolution ** 2 * steps < AUTO_COMPILE_MODEL_STEPS:
        return False
    if cfg.model == "resnet" and cfg.device != "cuda":
        return False                    # CPU: 3% faster than channels_last eager, not worth it
    return cfg.device in ("cuda", "auto") or any(shutil.which(c) for c in ("c++", "g++", "clang++"))
