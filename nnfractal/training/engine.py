"""Train many copies of one network at once, each with its own hyperparameters.

``train(cfg, family, data, points)`` returns the curves of every model: training loss (and, for
classifiers, batch accuracy) at every step, held-out loss and accuracy at evaluation epochs. All
models share the initial weights and the data order; they differ only in the hyperparameters of
their grid point (learning rate per layer role, weight offset). Models run in chunks of exactly
``cfg.tile_batch`` (the last chunk padded by repeating its last point), so a point's numbers do not
depend on which other points share its chunk, nor on how a grid is split into tiles: the kernels'
roundoff can depend on the chunk size (measured: float64 MLP curves differ between chunks of 1
and 4), never on the neighbours. ``tile_batch = 0`` picks the size (`resolve_tile_batch`).

A step's loss and gradients come from the family's hand-written ``loss_and_grads(params, x, y)``
where it has one (the mean-field MLP: the fast path), otherwise from autograd through
``forward``. ``matmul_precision`` (TF32, bfloat16 autocast) applies around both.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nnfractal.config import Config, ConfigError
from nnfractal.models import Family, family_spec
from nnfractal.models.common import classification_loss, compile_wanted, correct_count, regression_loss

from .allocator import usable_cpus
from .cpu_usage import NO_USAGE, CpuUsage, Usage
from .data import Dataset, minibatch_schedule
from .grid import hyperparameters
from .measure import epoch_curves  # noqa: F401 - engine.epoch_curves: its name before measure.py

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def flush_denormals() -> None:
    """Flush denormal numbers to zero in this thread (FTZ, DAZ). Models on their way to
    divergence or to zero pass through denormals, which run ~10x slower on x86 CPUs (measured: a
    chunk stalled for seconds); flushing only changes values below 1e-38 (float32) / 1e-308
    (float64). The control register is per thread, and a new thread copies its creator's: OpenMP's
    threads flush only if their creator flushed when it started them (hence the call at import,
    before this process's first parallel torch operation; the paper MLP's kernel sets it in each
    of its threads itself)."""
    torch.set_flush_denormal(True)


flush_denormals()


@dataclass(frozen=True)
class Schedule:
    """How many steps, which training examples each step sees, and when to evaluate."""
    steps: int
    steps_per_epoch: int
    batches: Tensor | None          # (steps, batch) example indices, None = full batch
    full_loss: bool                 # record the full-batch loss instead of the minibatch loss
    eval_epochs: tuple[int, ...] = ()   # held-out evaluation after these epochs (0 = at init)


KERNEL_SLICE_MODEL_STEPS = 1 << 16   # model-steps per thread per call of the paper-MLP kernel
KERNEL_MAX_STEPS = 1 << 16           # longer runs train step by step: one model per call would
#                                      still not hear a cancel for seconds

def make_schedule(cfg: Config, n_points: int, has_test: bool = False) -> Schedule:
    """The step count, batch order and evaluation epochs of a run (the same for every model)."""
    if cfg.full_batch:
        per_epoch, batches, full_loss = 1, None, False
    elif cfg.minibatch_replacement:
        per_epoch, full_loss = max(1, n_points // cfg.batch_size), True
    else:
        per_epoch, full_loss = n_points // cfg.batch_size, False
    steps = cfg.steps or cfg.num_epochs * per_epoch
    if not cfg.full_batch:
        batches = minibatch_schedule(n_points, cfg.batch_size, steps, cfg.data_seed,
                                     replacement=cfg.minibatch_replacement)
    evals = ()
    if has_test and cfg.eval_every > 0:
        evals = tuple(range(0, steps // per_epoch + 1, cfg.eval_every))
    return Schedule(steps, per_epoch, batches, full_loss, evals)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "'cuda' is not available on this machine (allowed here: cpu, auto)")
    return torch.device(name)


class Optimizer:
    """SGD, heavy-ball momentum or Adam over stacked parameters, with per-model learning rates.

    Updates follow torch.optim (SGD momentum: v = mu v + g, p -= lr v; Adam with bias correction,
    betas 0.9/0.999, eps 1e-8); `lr[name]` has shape (M, 1, ..., 1) so it broadcasts per model.
    """

    def __init__(self, kind: str, params: dict[str, Tensor], lr: dict[str, Tensor], momentum: float):
        self.kind, self.lr, self.mu, self.t = kind, lr, momentum, 0
        self.state = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in params.items()} \
            if kind != "sgd" else {}

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor]) -> None:
        self.t += 1
        for name, p in params.items():
            g, lr = grads[name], self.lr[name]
            # addcmul_ updates in place without a temporary (these steps are memory-bound).
            if self.kind == "sgd":
                p.addcmul_(g, lr, value=-1.0)
            elif self.kind == "momentum":
                buf = self.state[name][0]
                buf.mul_(self.mu).add_(g)
                p.addcmul_(buf, lr, value=-1.0)
            else:
                m, v = self.state[name]
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                m_hat = m / (1 - 0.9 ** self.t)
                v_hat = v / (1 - 0.999 ** self.t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8))


def _per_model(values: np.ndarray, like: Tensor, dtype, device) -> Tensor:
    """(M,) values reshaped to (M, 1, ..., 1) to broadcast against a stacked parameter."""
    return torch.as_tensor(values, dtype=dtype, device=device).view(-1, *([1] * (like.ndim - 1)))


def _task_loss(task: str, out: Tensor, y: Tensor) -> Tensor:
    return classification_loss(out, y) if task == "classification" else regression_loss(out, y)


@torch.no_grad()
def evaluate(family: Family, params: dict[str, Tensor], x: Tensor, y: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Held-out loss and accuracy of every model, (M,) each, in batches of `batch_size`.

    Inference mode: no gradients. BatchNorm has no running averages here, so it normalises with
    the statistics of each evaluation batch, as in training; batches are fixed, so every model
    sees exactly the same ones.
    """
    loss_sum, correct = 0.0, 0.0
    for lo in range(0, len(x), batch_size):
        out = family.forward(params, x[lo:lo + batch_size])
        yb = y[lo:lo + batch_size]
        loss_sum = loss_sum + classification_loss(out, yb) * len(yb)
        correct = correct + correct_count(out, yb)
    return loss_sum / len(x), correct / len(x)


def _nan_models(params: dict[str, Tensor]) -> Tensor:
    """(M,) bool: models with a NaN anywhere in their parameters."""
    return torch.stack([p.detach().flatten(1).isnan().any(1) for p in params.values()]).any(0)


@torch.no_grad()
def _silence(rows: Tensor, params: dict[str, Tensor], offsets: dict[str, Tensor], opt: Optimizer) -> None:
    """Zero the weights, offsets, learning rates and optimizer state of dead chunk rows (bool).

    Their curves are already filled in (`_Frozen`) and no longer recorded, but until the chunk
    can shrink they are still computed: with NaN weights that is several times slower (MKL's
    tanh takes a slow path for NaN: 3-5x measured), and every step would rescan the weights for
    NaNs. Zero weights with zero learning rates stay finite. Models never mix, so the live
    models' numbers do not change (tests/test_engine.py checks bit for bit).
    """
    for p in params.values():
        p[rows] = 0
    for o in offsets.values():
        o[rows] = 0
    for v in opt.lr.values():
        v[rows] = 0
    for bufs in opt.state.values():
        for b in bufs:
            b[rows] = 0


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(1, (n - 1).bit_length())


class _Frozen:
    """Early exit. A model with a NaN parameter stays NaN forever: every later loss is NaN, and its
    logits are all NaN, so its predicted class is whatever argmax returns for a NaN row. Its curves
    can therefore be filled instead of computed, and the model dropped from the chunk."""

    def __init__(self, family: Family, data: Dataset, schedule: Schedule, dtype, device):
        self.classify = family.task == "classification"
        if self.classify:
            k = int(torch.argmax(torch.full((1, 10), float("nan"))))   # the class NaN logits give
            y = data.y_train
            batches = schedule.batches
            self.train_acc = torch.stack([(y if batches is None else y[batches[t]]).eq(k).to(dtype).mean()
                                          for t in range(schedule.steps)]) if schedule.steps else None
            self.test_acc = data.y_test.eq(k).to(dtype).mean() if data.y_test is not None else None

    def fill(self, curves: dict[str, Tensor], models: Tensor, from_step: int, schedule: Schedule) -> None:
        """Write the curves models would have from step `from_step` on (no step computed there)."""
        curves["train_loss"][models, from_step:] = float("nan")
        if self.classify:
            curves["train_acc"][models, from_step:] = self.train_acc[from_step:]
        if "test_loss" in curves:
            # evaluation after epoch e runs after step e * steps_per_epoch - 1
            later = [i for i, e in enumerate(schedule.eval_epochs)
                     if e * schedule.steps_per_epoch - 1 >= from_step]
            if later:
                curves["test_loss"][models[:, None], torch.tensor(later)] = float("nan")
                curves["test_acc"][models[:, None], torch.tensor(later)] = self.test_acc


def _autograd_step(family: Family, params: dict[str, Tensor], x: Tensor, y: Tensor):
    """(loss (M,), output, grads {name: tensor}) of every model, by autograd through forward."""
    out = family.forward(params, x)
    loss = _task_loss(family.task, out, y)
    names = list(params)
    grads = torch.autograd.grad(loss.sum(), [params[n] for n in names])
    return loss.detach(), out.detach(), dict(zip(names, grads))


def _hand_step(family: Family, params: dict[str, Tensor], x: Tensor, y: Tensor):
    """The family's hand-written forward and backward pass (no autograd graph)."""
    with torch.no_grad():
        return family.loss_and_grads(params, x, y)


def _step_function(cfg: Config, family: Family):
    """The family's `loss_and_grads` fast path where it has one and cfg.fast_path allows it,
    autograd otherwise. Both compute the same gradients (to roundoff: tests/test_fastpath.py).
    Under bfloat16 autocast the fast path's hand-written products would mix dtypes: autograd."""
    if (cfg.fast_path and cfg.matmul_precision != "bfloat16"
            and callable(getattr(family, "loss_and_grads", None))):
        return _hand_step
    return _autograd_step


def _whole_run_kernel(cfg: Config, family: Family, step_fn, dtype, device, evaluations: bool) -> bool:
    """Whether a chunk trains in the family's whole-run kernel (`train_whole_run`: each model
    through all its steps in cache) rather than step by step. Part of the fast path:
    cfg.fast_path = false (autograd) switches it off too."""
    if step_fn is not _hand_step or not getattr(family, "whole_run_kernel", False):
        return False
    return family.whole_run_supported(cfg.optimizer, family.task == "classification",
                                      evaluations, dtype, device)


def prepare_kernels(cfg: Config, family: Family) -> None:
    """Build (the first time on a machine: 30-60 s) or load now the compiled kernel the run's
    chunks may use (the paper MLP's), so that a caller timing its training (a run's tile seconds,
    hence its rate) times training only."""
    device = resolve_device(cfg.device)
    _whole_run_kernel(cfg, family, _step_function(cfg, family), DTYPES[cfg.precision], device, False)


@contextlib.contextmanager
def matmul_precision(cfg: Config, device: torch.device):
    """Products in the storage precision, TF32 or bfloat16 autocast, as cfg.matmul_precision says.

    PyTorch lets cuDNN convolutions use TF32 by default; "highest" switches that off too, so a
    float32 run on a GPU is float32 throughout. The previous settings are restored afterwards.
    """
    if cfg.matmul_precision == "tf32" and device.type != "cuda":
        raise ConfigError("matmul_precision", "'tf32' needs a CUDA device; device "
                          f"{cfg.device!r} runs on {device.type} (allowed there: highest, bfloat16)")
    saved = None
    if device.type == "cuda":
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = \
            cfg.matmul_precision == "tf32"
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=cfg.matmul_precision == "bfloat16"):
            yield
    finally:
        if saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


MAX_AUTO_TILE_BATCH = 4096


def model_footprint(cfg: Config, family: Family, data: Dataset, device: torch.device, m: int) -> int:
    """Bytes one training step of a chunk of m models holds at its peak, counted exactly on any
    device: the tensors autograd saves for the backward pass (what dominates), the parameters,
    their gradients and the optimizer state (two buffers at most), and the batch's outputs."""
    dtype = DTYPES[cfg.precision]
    init = {n: p.to(dtype=dtype, device=device) for n, p in family.init_params(cfg.seed).items()}
    params = {n: p.unsqueeze(0).repeat(m, *([1] * p.ndim)).requires_grad_(True) for n, p in init.items()}
    batch = cfg.batch_size or data.n_train
    x = data.x_train[:batch].to(dtype=dtype, device=device)
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), matmul_precision(cfg, device):
        out = family.forward(params, x)
    param_bytes = sum(p.numel() * p.element_size() for p in params.values())
    return sum(seen.values()) + 4 * param_bytes + 2 * out.numel() * out.element_size()


def available_memory(device: torch.device) -> int:
    """Bytes free for training: free CUDA memory, or the kernel's MemAvailable on CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2 ** 30


def resolve_tile_batch(cfg: Config, family: Family, data: Dataset, device: torch.device | None = None,
                       memory_budget: int | None = None) -> int:
    """cfg.tile_batch, or for 0 (auto) the chunk size to use: a power of two (early exit shrinks
    chunks through powers of two), the largest whose measured footprint fits in 70% of the
    memory budget (default: free CUDA memory, or available RAM), and on CPU at most the size
    measured fastest for the model (its family's `cpu_tile_batch`). Chunk sizes change roundoff, so the size
    chosen is reported with the results (TrainResult.tile_batch)."""
    if cfg.tile_batch:
        return cfg.tile_batch
    device = device or resolve_device(cfg.device)
    budget = 0.7 * (memory_budget if memory_budget is not None else available_memory(device))
    budget /= resolve_chunk_workers(cfg, device, MAX_AUTO_TILE_BATCH)[0]   # chunks held at once
    one = model_footprint(cfg, family, data, device, 1)
    per_model = max(1, model_footprint(cfg, family, data, device, 2) - one)
    fixed = max(0, one - per_model)
    fits = int((budget - fixed) // per_model)
    cap = MAX_AUTO_TILE_BATCH if device.type == "cuda" else family_spec(cfg.model).cpu_tile_batch
    size = min(max(1, fits), cap)
    return 1 << (size.bit_length() - 1)


def train_chunk(cfg: Config, family: Family, init: dict[str, Tensor], data: Dataset, schedule: Schedule,
                hp: dict[str, np.ndarray], on_step=None) -> dict[str, Tensor]:
    """Train len(hp["offset"]) models together; returns their curves on CPU.

    `init` holds one model's parameters and `data` the tensors, both already in the run's dtype and
    on its device; `hp` the per-model learning rates by role and offsets. Curves: "train_loss"
    (M, steps) always; for classifiers "train_acc" (M, steps, accuracy of the step's batch), and
    with evaluation epochs "test_loss" and "test_acc" (M, len(schedule.eval_epochs)).

    With cfg.early_exit, models whose parameters turn NaN are filled in (see `_Frozen`) and, once
    the live models fit in a power of two at most half the current size, dropped: the chunk
    shrinks through power-of-two sizes, whose kernels were measured to give bit-identical results
    (tests/test_engine.py checks the maps are identical with and without early exit).
    """
    x, y = data.x_train, data.y_train
    dtype, device = x.dtype, x.device
    m = len(hp["offset"])
    classify = family.task == "classification"
    step_fn = _step_function(cfg, family)
    products = lambda: matmul_precision(cfg, device)      # noqa: E731 - a fresh context each use
    offset_roles = {"input"} if cfg.offset_target == "input" else {"input", "hidden", "output"}
    offsets = {n: _per_model(hp["offset"], p.unsqueeze(0), dtype, device)
               for n, p in init.items() if family.role(n) in offset_roles}
    params = {}
    for name, p0 in init.items():
        p = p0.unsqueeze(0).repeat(m, *([1] * p0.ndim))
        if cfg.offset_mode == "init" and name in offsets:
            p += offsets[name]
        params[name] = p.requires_grad_(step_fn is _autograd_step)
    lr = {n: _per_model(hp[family.role(n)], p, dtype, device) for n, p in params.items()}
    if schedule.steps <= KERNEL_MAX_STEPS and _whole_run_kernel(
            cfg, family, step_fn, dtype, device, bool(schedule.eval_epochs)):
        # The padding repeats the last point: train it once (a model's numbers never depend on
        # its chunk, so the copies are bit-identical) instead of up to tile_batch - 1 times.
        hp_rows = np.stack([np.asarray(v) for v in hp.values()], 1)
        same_as_last = (hp_rows == hp_rows[-1]).all(1)
        real = m - int(np.argmin(same_as_last[::-1])) + 1 if not same_as_last.all() else 1
        every_step = offsets if cfg.offset_mode == "every-step" else {}
        # Slices of at most KERNEL_SLICE_MODEL_STEPS model-steps per thread, so that on_step (a
        # Ctrl-C, an explorer's cancel) is heard within about a second rather than after a whole
        # chunk, while each thread still gets many models (a call ends when its slowest thread
        # does); a model's numbers never depend on its neighbours, so the slicing changes no bit.
        parts, calls = [], 0
        per_call = max(1, KERNEL_SLICE_MODEL_STEPS * torch.get_num_threads() // schedule.steps)
        for a in range(0, real, per_call):
            b = min(a + per_call, real)
            part, _ = family.train_whole_run(
                {n: p[a:b] for n, p in params.items()}, {n: v[a:b] for n, v in lr.items()},
                {n: o[a:b] for n, o in every_step.items()}, x, y, schedule.batches,
                schedule.full_loss, schedule.steps)
            parts.append(part)
            if on_step is not None and calls < schedule.steps:
                on_step()
                calls += 1
        losses = parts[0] if len(parts) == 1 else torch.cat(parts)     # copies only where needed
        if real < m:
            losses = torch.cat([losses, losses[-1:].expand(m - real, -1)])
        for _ in range(schedule.steps - calls):          # the progress bar counts steps
            if on_step is not None:
                on_step()
        return {"train_loss": losses}
    opt = Optimizer(cfg.optimizer, params, lr, cfg.momentum)
    curves = {"train_loss": torch.empty(m, schedule.steps, dtype=dtype, device=device)}
    if classify:
        curves["train_acc"] = torch.empty(m, schedule.steps, dtype=dtype, device=device)
    evals = list(schedule.eval_epochs)
    if evals:
        curves["test_loss"] = torch.empty(m, len(evals), dtype=dtype, device=device)
        curves["test_acc"] = torch.empty(m, len(evals), dtype=dtype, device=device)
    eval_batch = cfg.batch_size or len(x)
    active = torch.arange(m, device=device)          # chunk row -> model index
    live = torch.ones(m, dtype=torch.bool, device=device)
    frozen = _Frozen(family, data, schedule, dtype, device) if cfg.early_exit else None
    # Measured: float32 grouped convolutions with < 16 channels per model pack several models into
    # one SIMD register, and their roundoff then depends on the chunk size; never shrink those.
    shrink_is_exact = dtype == torch.float64 or getattr(family, "shrink_is_exact", True)

    silenced = False                                 # does the chunk hold dead (zeroed) models?

    def record(name: str, col, values: Tensor) -> None:
        """Store values (one per chunk row) for the chunk's live models; dead ones were filled."""
        values = values.to(curves[name].dtype)            # bfloat16 autocast gives bfloat16
        if silenced:
            keep = live[active]
            curves[name][active[keep], col] = values[keep]
        else:
            curves[name][active, col] = values

    def maybe_evaluate(epoch: int) -> None:
        if epoch in evals:
            i = evals.index(epoch)
            with products():
                test_loss, test_acc = evaluate(family, params, data.x_test, data.y_test, eval_batch)
            record("test_loss", i, test_loss)
            record("test_acc", i, test_acc)

    maybe_evaluate(0)
    for t in range(schedule.steps):
        if cfg.offset_mode == "every-step":
            # As the paper's code does: the offset is added to the weights before every step,
            # so it accumulates.
            with torch.no_grad():
                for name, off in offsets.items():
                    params[name].add_(off)
        if schedule.batches is None:
            xb, yb = x, y
        else:
            idx = schedule.batches[t]
            xb, yb = x[idx], y[idx]
        with products():
            loss, out, grads = step_fn(family, params, xb, yb)
        with torch.no_grad():
            if schedule.full_loss:
                with products():
                    loss_full = family.loss(params, x, y)
            record("train_loss", t, loss_full if schedule.full_loss else loss)
            if classify:
                record("train_acc", t, correct_count(out, yb) / len(yb))
        opt.step(params, grads)
        if (t + 1) % schedule.steps_per_epoch == 0:
            maybe_evaluate((t + 1) // schedule.steps_per_epoch)
        if on_step is not None:
            on_step()
        if frozen is not None and not torch.isfinite(loss).all():
            newly = _nan_models(params) & live[active]
            if newly.any():
                live[active[newly]] = False
                frozen.fill(curves, active[newly], t + 1, schedule)
                _silence(newly, params, offsets, opt)
                silenced = True
                size = _power_of_two_at_least(int(live.sum()))
                if size <= len(active) // 2 and shrink_is_exact:
                    rows = torch.arange(len(active), device=device)
                    keep = torch.cat([rows[live[active]], rows[~live[active]]])[:size].sort().values
                    active = active[keep]
                    params = {n: p.detach()[keep].requires_grad_(step_fn is _autograd_step)
                              for n, p in params.items()}
                    offsets = {n: o[keep] for n, o in offsets.items()}
                    opt.lr = {n: v[keep] for n, v in opt.lr.items()}
                    opt.state = {n: tuple(b[keep] for b in bufs) for n, bufs in opt.state.items()}
                    silenced = bool((~live[active]).any())
    return {k: v.detach().cpu() for k, v in curves.items()}


@dataclass
class TrainResult:
    curves: dict[str, np.ndarray]   # metric -> (k, T): train_loss (k, steps) before each step, ...
    schedule: Schedule
    wall_time: float                # seconds
    device: str
    tile_batch: int = 0             # the chunk size used (cfg.tile_batch, or the auto choice)
    chunk_workers: int = 1          # chunks trained side by side (resolve_chunk_workers)
    cpu_time: float = 0.0           # CPU seconds of this process's threads while training
    threads: int = 1                # threads that computed (measured: cpu_usage.Usage.threads)
    wait_time: float = 0.0          # seconds those threads were ready to run but had no CPU

    @property
    def usage(self) -> Usage:
        return Usage(self.cpu_time, self.wait_time, self.threads)

    @property
    def cpu_share(self) -> float:
        """CPU time / (CPU time + run-queue wait): about 1 where every thread that had work had a
        core, 1 / (k + 1) beside k busy programs per core (`cpu_usage`)."""
        return self.usage.share

    @property
    def busy_warning(self) -> str | None:
        """One line when the CPU was busy with other work, else None (see `cpu_busy_warning`)."""
        return cpu_busy_warning(self.usage, self.wall_time)

    @property
    def losses(self) -> np.ndarray:
        return self.curves["train_loss"]


def resolve_chunk_workers(cfg: Config, device: torch.device, n_chunks: int) -> tuple[int, int]:
    """(workers, threads per chunk): how many chunks train at once and with how many torch threads
    each. cfg.chunk_workers, or for 0 (auto) one worker per torch thread for the families whose
    chunks run faster side by side (`parallel_chunks`) on a CPU (unless torch.compiled), else 1.
    Workers split the torch threads between them. The threads per chunk do not depend on
    n_chunks (which only caps the workers): kernels' roundoff can depend on their thread count,
    and a point must not depend on the size of its tile."""
    threads = torch.get_num_threads()
    if device.type != "cpu":
        return 1, threads
    # torch.compile's first call compiles, which is not safe from two threads at once.
    auto = threads if family_spec(cfg.model).parallel_chunks and not compile_wanted(cfg) else 1
    wanted = cfg.chunk_workers or auto
    return max(1, min(wanted, n_chunks)), max(1, threads // wanted)


# Below this share of the CPU time its threads were ready to use (CPU / (CPU + run-queue wait))
# training warns that the CPU was busy: the run took at least 1 / 0.75 = 1.33x longer than on
# this machine alone. One busy program beside a 2-thread run on 2 cores gives 2/3; a machine
# running nothing else close to 1 (interrupts, our own helper threads).
BUSY_CPU_SHARE = 0.75
BUSY_MIN_SECONDS = 3.0


def cpu_busy_warning(usage: Usage, wall_time: float, cpus: int | None = None) -> str | None:
    """A one-line warning when training of `wall_time` seconds got less than BUSY_CPU_SHARE of
    the CPU time its threads were ready to use: other programs were using the CPU, so its rate is
    below this machine's. More computing threads than the `cpus` this process may use (default
    `allocator.usable_cpus`) wait for each other, which is not other programs: the share is taken
    relative to cpus / threads there. None for short runs (under BUSY_MIN_SECONDS) or a fair
    share."""
    if wall_time < BUSY_MIN_SECONDS:
        return None
    cpus = cpus or usable_cpus()
    own = min(1.0, cpus / max(1, usage.threads))       # the share our own threads leave each other
    if usage.share >= BUSY_CPU_SHARE * own:
        return None
    import os
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"nnfractal: warning: the CPU was busy: training waited for a CPU "
            f"{100 * (1 - usage.share):.0f}% of the time it was ready to run ({usage.wait_s:.0f} s "
            f"of {usage.cpu_s + usage.wait_s:.0f} s on {usage.threads} thread(s){load}); other "
            "programs slowed it down")


class _Abort(Exception):
    """Raised inside a chunk worker when the run stops (another chunk failed, or on_chunk raised)."""


def _run_chunks(n_chunks: int, workers: int, threads: int, run_one, on_done) -> None:
    """run_one(i, abort) for i < n_chunks, `workers` at a time with `threads` torch threads each;
    on_done(i, result) in chunk order, in the calling thread. An exception in either sets `abort`
    (run_one stops at its next step) and is raised here once the workers have stopped."""
    if workers <= 1 and threads == torch.get_num_threads():
        for i in range(n_chunks):
            on_done(i, run_one(i, None))
        return
    saved_threads = torch.get_num_threads()
    abort = threading.Event()

    def work(i: int):
        # Per-thread settings: torch threads (OpenMP's count is per thread) and denormal flushing
        # (MXCSR is per thread), before this thread's OpenMP threads exist.
        torch.set_num_threads(threads)
        flush_denormals()
        return run_one(i, abort)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nnfractal-chunk")
    try:
        futures = [pool.submit(work, i) for i in range(n_chunks)]
        for i, fut in enumerate(futures):
            on_done(i, fut.result())
    except BaseException:
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(saved_threads)      # MKL's thread count is global: restore it


def train(cfg: Config, family: Family, data: Dataset, points: np.ndarray, progress: bool = False,
          desc: str = "training", on_chunk=None, on_step=None) -> TrainResult:
    """Train one model per point; points (k, 2) = (x, y) hyperparameter pairs in axis units.

    `on_chunk(lo, hi, curves)` (optional) is called after each chunk, in chunk order, with its
    (unpadded) curves. `on_step()` (optional) is called after every training step of every chunk,
    in the chunk's thread: an exception it raises (a cancelled job) stops training within one
    step and is raised here. On a CPU, chunks may train side by side (`resolve_chunk_workers`): a
    chunk's numbers depend on the torch threads it gets, never on what runs beside it.
    """
    from tqdm.auto import tqdm

    device = resolve_device(cfg.device)
    dtype = DTYPES[cfg.precision]
    flush_denormals()                   # a thread created before the import
    data = data.to(dtype, device)
    if cfg.eval_every == 0 or data.x_test is None:
        data = dataclasses.replace(data, x_test=None, y_test=None)
    schedule = make_schedule(cfg, data.n_train, has_test=data.x_test is not None)
    if schedule.batches is not None:
        schedule = dataclasses.replace(schedule, batches=schedule.batches.to(device))
    init = {n: p.to(dtype=dtype, device=device) for n, p in family.init_params(cfg.seed).items()}
    hp_all = hyperparameters(cfg, np.asarray(points, dtype=np.float64))
    k, m = len(points), resolve_tile_batch(cfg, family, data, device)
    n_chunks = -(-k // m)
    workers, chunk_threads = resolve_chunk_workers(cfg, device, n_chunks)
    np_dtype = np.float64 if cfg.precision == "float64" else np.float32
    curves: dict[str, np.ndarray] = {}
    start, usage = time.perf_counter(), CpuUsage()
    used = [NO_USAGE]       # read after each chunk, while the chunk workers (and their CPU times) live
    with tqdm(total=k * schedule.steps, unit="model-step", unit_scale=True, desc=desc,
              disable=not progress, dynamic_ncols=True) as bar:

        def run_one(i: int, abort) -> dict[str, Tensor]:
            lo, hi = i * m, min(i * m + m, k)
            # Pad to exactly m models by repeating the last point: every chunk runs the same kernels.
            take = np.minimum(np.arange(lo, lo + m), k - 1)
            hp = {role: v[take] for role, v in hp_all.items()}

            def step_done():
                if abort is not None and abort.is_set():
                    raise _Abort()
                if on_step is not None:
                    on_step()
                bar.update(hi - lo)
            return train_chunk(cfg, family, init, data, schedule, hp, on_step=step_done)

        def on_done(i: int, chunk: dict[str, Tensor]) -> None:
            lo, hi = i * m, min(i * m + m, k)
            for name, c in chunk.items():
                if name not in curves:
                    curves[name] = np.empty((k, c.shape[1]), dtype=np_dtype)
                curves[name][lo:hi] = c[: hi - lo].numpy()
            if on_chunk is not None:
                on_chunk(lo, hi, {n: c[lo:hi] for n, c in curves.items()})
            used[0] = usage.read()
            if progress and device.type == "cpu" and cpu_busy_warning(used[0], time.perf_counter() - start):
                bar.set_postfix_str("CPU busy with other programs", refresh=False)

        _run_chunks(n_chunks, workers, chunk_threads, run_one, on_done)
    if not n_chunks:
        used[0] = usage.read()
    return TrainResult(curves, schedule, time.perf_counter() - start, str(device), m, workers,
                       used[0].cpu_s, used[0].threads, used[0].wait_s)



