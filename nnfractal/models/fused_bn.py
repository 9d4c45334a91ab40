"""BatchNorm + residual add + ReLU as one CPU kernel (forward and backward), for channels_last.

`bn_act(x, gamma, beta, residual, relu)` equals
``act(F.batch_norm(x, None, None, gamma, beta, True, 0.0, eps) + residual)`` with batch
statistics, in two passes over memory each way instead of ATen's 5-8 (see fused_bn.cpp). The C++
source is compiled on first use with torch.utils.cpp_extension (30-60 s, then cached
under ~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR); `available()` is False, with one
warning, where that cannot be done (no compiler), and the callers then keep ATen's kernels.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

_SOURCE = Path(__file__).with_name("fused_bn.cpp")
_state: dict = {}
_lock = threading.Lock()


def _build_tag(source: Path = _SOURCE) -> str:
    """A short hash of this CPU's instruction-set flags and of the source: the kernel is built
    with -march=native, so a cache shared by machines with different CPUs must keep one build per
    kind, and two versions of nnfractal (a benchmark against an older commit) one each. The
    source's path is in it too: torch rebuilds whenever the build file names another source
    path, so two checkouts sharing one build folder rebuilt it in turn (measured: minutes per
    build on a busy 2-core machine, every process waiting on the build lock meanwhile)."""
    flags = platform.machine() + str(source.resolve()) + source.read_text()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("flags", "Features")):
                flags += line
                break
    except OSError:
        pass
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def _put_ninja_on_path() -> None:
    """cpp_extension runs `ninja` from PATH; the pip package `ninja` (a dependency) puts it in the
    venv's bin folder, which is not on PATH when the venv is used without activating it."""
    import shutil
    if shutil.which("ninja") is None:
        try:
            import ninja
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except (ImportError, AttributeError):
            pass


def _say_if_building(cpp_extension, name: str, what: str = "fused BatchNorm kernel") -> None:
    """One line on stderr before a first build, so that a 30-60 s pause is explained."""
    try:
        built = Path(cpp_extension._get_build_directory(name, verbose=False)) / f"{name}.so"
    except Exception:                # a private helper of torch's: never let it cost the kernel
        return
    if not built.exists():
        from tqdm import tqdm  # it is built during training: above the progress bar
        tqdm.write(f"nnfractal: building the {what} for this CPU (once, 30-60 s)",
                   file=sys.stderr)


OPENMP = "-fopenmp"


def load_locked(cpp_extension, name: str, **kwargs):
    """cpp_extension.load under an flock of our own on the build folder, compiled and linked
    with OpenMP.

    torch serialises builds with a 'lock' file that a build killed half way (Ctrl-C, kill -9, a
    test timeout) leaves behind, and every later build then waits for it forever (seen: a test
    run hung at collection). The flock is released by the OS when its holder dies, so while we
    hold it no live build holds torch's lock file, and a leftover one can be removed.

    OpenMP: ATen's parallel_for is a header template that runs its whole range serially in the
    calling thread where the including file is compiled without it (measured: the paper MLP's
    kernel trained on one thread whatever torch's thread count). Linked with it, the extension
    uses the OpenMP runtime torch has loaded (the same soname), so torch's threads."""
    import fcntl
    for key in ("extra_cflags", "extra_ldflags"):
        flags = list(kwargs.get(key) or [])
        kwargs[key] = flags if OPENMP in flags else [*flags, OPENMP]
    folder = Path(cpp_extension._get_build_directory(name, verbose=False))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "nnfractal-build.flock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        (folder / "lock").unlink(missing_ok=True)
        return cpp_extension.load(name=name, **kwargs)


def extension():
    """The compiled module (forward, backward), or None where it cannot be built."""
    with _lock:
        if "ext" not in _state:
            _state["ext"] = None
            if os.environ.get("NNFRACTAL_FUSED_BN", "1") == "0":
                return None
            try:
                _put_ninja_on_path()
                from torch.utils import cpp_extension
                name = f"nnfractal_fused_bn_{_build_tag()}"
                _say_if_building(cpp_extension, name)
                _state["ext"] = load_locked(
                    cpp_extension, name, sources=[str(_SOURCE)],
                    extra_cflags=["-O3", "-march=native", "-fopenmp"],
                    extra_ldflags=["-fopenmp"], verbose=False)
            except Exception as err:     # no compiler, no headers: ATen's kernels do the job
                warnings.warn(f"fused BatchNorm kernel unavailable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); using ATen's",
                              RuntimeWarning, stacklevel=2)
        return _state["ext"]


def available() -> bool:
    return extension() is not None


class _BNAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, residual, relu: bool, eps: float):
        y, mean, invstd = extension().forward(x, gamma, beta, residual, relu, eps)
        keep_y = relu and residual is not None        # the mask cannot be recomputed from x then
        ctx.save_for_backward(x, gamma, beta, mean, invstd, y if keep_y else None)
        ctx.relu, ctx.has_residual = relu, residual is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, gamma, beta, mean, invstd, y = ctx.saved_tensors
        dx, dgamma, dbeta, dres = extension().backward(grad, x, y, gamma, beta, mean, invstd, ctx.relu)
        if ctx.has_residual and not ctx.relu:
            dres = grad
        return dx, dgamma, dbeta, (dres if ctx.has_residual else None), None, None


def bn_act(x: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor | None = None,
           relu: bool = True, eps: float = 1e-5) -> Tensor:
    """x (B, C, H, W) channels_last on the CPU, gamma and beta (C,), residual like x or None ->
    relu?(batchnorm(x) + residual), channels_last. Batch statistics, biased variance."""
    if residual is not None:
        residual = residual.contiguous(memory_format=torch.channels_last)
    return _BNAct.apply(x.contiguous(memory_format=torch.channels_last), gamma.contiguous(),
                        beta.contiguous(), residual, relu, eps)
