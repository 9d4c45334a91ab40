"""The mean-field MLPs trained model by model through all their steps, in cache (C++ kernel).

`train_models(...)` runs what `engine.train_chunk` runs for the paper's one-hidden-layer mean-field
MLP with SGD (full batch or minibatches, every-step offsets), but each thread takes one model at a
time through all its steps (meanfield_kernel.cpp): the whole training of one model fits in
L1/L2, where the torch fast path streams a chunk's activations through memory at every step.
`train_deep_models(...)` does the same for the deep mean-field MLP of resmlp.py, plain or
residual, at any depth.
The C++ source is compiled on first use with torch.utils.cpp_extension (about 30 s, then cached
under ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR, one build per CPU kind and source
version, as the fused BatchNorm kernel); `available()` is False, with one warning, where that
cannot be done (no compiler), and the engine then keeps the torch fast path.
NNFRACTAL_MLP_KERNEL=0 switches the kernel off.

Numbers: equal to autograd to roundoff (tests: 1e-10 over 500 float64 steps); a model's numbers
depend only on its own rates and offsets, never on its chunk, its neighbours or the threads, so
tiles, resume and the chunk size give bit-identical curves.
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

from . import fused_bn

_SOURCE = Path(__file__).with_name("meanfield_kernel.cpp")
SWITCH = "NNFRACTAL_MLP_KERNEL"
ACTIVATIONS = {"tanh": 0, "relu": 1, "leaky": 2, "identity": 3}
WIDTHS = (8, 16, 32)
_state: dict = {}
_lock = threading.Lock()


def extension():
    """The compiled module (train), or None where it cannot be built or is switched off."""
    with _lock:
        if "ext" not in _state:
            _state["ext"] = None
            if os.environ.get(SWITCH, "1") == "0":
                return None
            try:
                fused_bn._put_ninja_on_path()
                from torch.utils import cpp_extension
                name = f"nnfractal_meanfield_{fused_bn._build_tag(_SOURCE)}"
                fused_bn._say_if_building(cpp_extension, name, "mean-field MLP kernel")
                _state["ext"] = fused_bn.load_locked(
                    cpp_extension, name, sources=[str(_SOURCE)],
                    extra_cflags=["-O3", "-march=native", "-fno-math-errno"], verbose=False)
            except Exception as err:     # no compiler, no headers: the torch fast path
                warnings.warn(f"mean-field MLP kernel unavailable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); using the torch "
                              "fast path", RuntimeWarning, stacklevel=2)
        return _state["ext"]


def available() -> bool:
    return extension() is not None


def supports(family, optimizer: str, classify: bool, evaluations: bool, dtype, device) -> bool:
    """Whether the kernel can train this run's chunks: a 2-layer mean-field MLP (width 8, 16 or
    32, one output, input dimension = width), plain SGD, float64 on the CPU, no held-out
    evaluation; and the kernel builds here."""
    return (getattr(family, "depth", None) == 2 and getattr(family, "target_dim", None) == 1
            and family.width in WIDTHS and family.nonlinearity in ACTIVATIONS
            and optimizer == "sgd" and not classify and not evaluations
            and dtype == torch.float64 and device.type == "cpu" and available())


def _kernel_points(x: Tensor, y: Tensor, pre_scale: float) -> tuple[Tensor, Tensor, int]:
    """The kernels' training points: xs (D, npad) and y (npad), zero padded to a multiple of 8
    points, and the number n of real ones. As the torch fast path: the 1/sqrt(fan_in) scale and
    the activation's inner factor multiply the shared input once."""
    n, d = x.shape
    npad = -(-n // 8) * 8
    xs = torch.zeros(d, npad, dtype=torch.float64)
    xs[:, :n] = (x.to(torch.float64) * (pre_scale / math.sqrt(d))).T
    ys = torch.zeros(npad, dtype=torch.float64)
    ys[:n] = y.reshape(n).to(torch.float64)
    return xs, ys, n


def train_models(family, params: dict[str, Tensor], lr: dict[str, Tensor],
                 offsets: dict[str, Tensor], x: Tensor, y: Tensor, batches: Tensor | None,
                 full_loss: bool, steps: int, flush_denormals: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Train M models through `steps` SGD steps, on every torch thread of the caller.

    params {"weights.0": (M, D, H), "weights.1": (M, H, 1)} (not changed), lr likewise by name,
    each (M, 1, 1); offsets: the every-step offsets by name, (M, 1, 1) each (empty: none);
    x (N, D) and y (N, 1) the training set; batches (steps, B) point indices or None (full
    batch); full_loss: record the full-batch loss instead of the minibatch loss; flush_denormals:
    every thread that trains flushes denormal numbers to zero (FTZ, DAZ), or keeps them (False;
    the paper presets never meet one: their curves are bit-identical either way).
    Returns the losses (M, steps), each before its step's update, and the final parameters.
    """
    ext = extension()
    names = family.names
    w1 = params[names[0]].detach().to(torch.float64).contiguous().clone()
    m, d, h = w1.shape
    w2 = params[names[1]].detach().reshape(m, h).to(torch.float64).contiguous().clone()
    per_model = lambda t: t.detach().reshape(m).to(torch.float64).contiguous()   # noqa: E731
    zeros = torch.zeros(m, dtype=torch.float64)
    off1 = per_model(offsets[names[0]]) if names[0] in offsets else zeros
    off2 = per_model(offsets[names[1]]) if names[1] in offsets else zeros
    nl = family.nonlinearity
    xs, ys, n = _kernel_points(x, y, family.pre_scale)
    b = (batches.to(torch.int64).contiguous() if batches is not None
         else torch.empty(0, dtype=torch.int64))
    losses = ext.train(w1, w2, per_model(lr[names[0]]), per_model(lr[names[1]]), off1, off2,
                       xs, ys, n, b, bool(full_loss and batches is not None), bool(offsets),
                       steps, ACTIVATIONS[nl], family.post_scale, family.leaky_slope, flush_denormals)
    return losses, {names[0]: w1, names[1]: w2.view(m, h, 1)}


def supports_deep(family, optimizer: str, classify: bool, evaluations: bool, dtype, device) -> bool:
    """Whether `train_deep_models` can train this run's chunks: a deep mean-field MLP (resmlp.py;
    width 8, 16 or 32, one output, input dimension = width), plain SGD, float64 on the CPU, no
    held-out evaluation; and the kernel builds here."""
    return (family.target_dim == 1 and family.width in WIDTHS
            and family.nonlinearity in ACTIVATIONS and optimizer == "sgd" and not classify
            and not evaluations and dtype == torch.float64 and device.type == "cpu"
            and available())


def train_deep_models(family, params: dict[str, Tensor], lr: dict[str, Tensor],
                      offsets: dict[str, Tensor], x: Tensor, y: Tensor, batches: Tensor | None,
                      full_loss: bool, steps: int,
                      flush_denormals: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Train M deep mean-field MLPs (resmlp.py) through `steps` SGD steps.

    params {name: (M, fan_in, fan_out)} in `family.names` order (not changed), lr likewise, each
    (M, 1, 1); offsets: the every-step offsets by name, (M, 1, 1) each (a layer left out gets
    none); x, y, batches, full_loss and flush_denormals as `train_models`. Returns the losses (M, steps), each
    before its step's update, and the final parameters.
    """
    ext = extension()
    names = family.names
    m = params[names[0]].shape[0]
    # One flat row of weights per model, layer after layer (the kernel's layout).
    w = torch.cat([params[n].detach().reshape(m, -1).to(torch.float64) for n in names], 1).contiguous()
    per_layer = lambda d: torch.stack(                                   # noqa: E731
        [d[n].detach().reshape(m).to(torch.float64) if n in d else torch.zeros(m, dtype=torch.float64)
         for n in names], 1).contiguous()
    xs, ys, n = _kernel_points(x, y, family.pre_scale)
    b = (batches.to(torch.int64).contiguous() if batches is not None
         else torch.empty(0, dtype=torch.int64))
    losses = ext.train_deep(w, per_layer(lr), per_layer(offsets), xs, ys, n, b,
                            bool(full_loss and batches is not None), bool(offsets), steps,
                            family.depth, family.skip, family.branch_scale,
                            family.pre_scale / math.sqrt(family.width),
                            ACTIVATIONS[family.nonlinearity], family.post_scale, family.leaky_slope,
                            flush_denormals)
    trained, at = {}, 0
    for name in names:
        shape = params[name].shape
        size = shape[1:].numel()
        trained[name] = w[:, at:at + size].view(shape)
        at += size
    return losses, trained
