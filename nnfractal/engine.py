"""Train many copies of one network at once, each with its own hyperparameters.

``train(cfg, family, data, points)`` returns the training loss of every model at every step. All
models share the initial weights and the data order; they differ only in the hyperparameters of
their grid point (learning rate per layer role, weight offset). Models run in chunks of exactly
``cfg.tile_batch`` (the last chunk padded by repeating its last point), so a point's numbers do not
depend on which other points share its chunk, nor on how a grid is split into tiles: the kernels'
roundoff can depend on the chunk size (measured: float64 MLP curves differ between chunks of 1
and 4), never on the neighbours.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .config import Config
from .data import Dataset, minibatch_schedule
from .grid import hyperparameters

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Schedule:
    """How many steps, and which training examples each step sees."""
    steps: int
    steps_per_epoch: int
    batches: Tensor | None          # (steps, batch) example indices, None = full batch
    full_loss: bool                 # record the full-batch loss instead of the minibatch loss


def make_schedule(cfg: Config, n_points: int) -> Schedule:
    """The step count and batch order of a run (the same for every model)."""
    if cfg.full_batch:
        steps = cfg.steps or cfg.num_epochs
        return Schedule(steps, 1, None, False)
    if cfg.minibatch_replacement:
        per_epoch = max(1, n_points // cfg.batch_size)
        steps = cfg.steps or cfg.num_epochs * per_epoch
        batches = minibatch_schedule(n_points, cfg.batch_size, steps, cfg.data_seed, replacement=True)
        return Schedule(steps, per_epoch, batches, True)
    per_epoch = n_points // cfg.batch_size
    steps = cfg.steps or cfg.num_epochs * per_epoch
    batches = minibatch_schedule(n_points, cfg.batch_size, steps, cfg.data_seed, replacement=False)
    return Schedule(steps, per_epoch, batches, False)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda is not available on this machine (allowed here: cpu, auto)")
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
            if self.kind == "sgd":
                p.sub_(lr * g)
            elif self.kind == "momentum":
                buf = self.state[name][0]
                buf.mul_(self.mu).add_(g)
                p.sub_(lr * buf)
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


def train_chunk(cfg: Config, family, init: dict[str, Tensor], x: Tensor, y: Tensor,
                schedule: Schedule, hp: dict[str, np.ndarray], on_step=None) -> Tensor:
    """Train len(hp["offset"]) models together; returns their losses, (M, steps) on CPU.

    `init` holds one model's parameters (already in the run's dtype and device); `hp` the per-model
    learning rates by role and offsets.
    """
    dtype, device = x.dtype, x.device
    m = len(hp["offset"])
    offset_roles = {"input"} if cfg.offset_target == "input" else {"input", "hidden", "output"}
    offsets = {n: _per_model(hp["offset"], p.unsqueeze(0), dtype, device)
               for n, p in init.items() if family.role(n) in offset_roles}
    params = {}
    for name, p0 in init.items():
        p = p0.unsqueeze(0).repeat(m, *([1] * p0.ndim))
        if cfg.offset_mode == "init" and name in offsets:
            p += offsets[name]
        params[name] = p.requires_grad_(True)
    lr = {n: _per_model(hp[family.role(n)], p, dtype, device) for n, p in params.items()}
    opt = Optimizer(cfg.optimizer, params, lr, cfg.momentum)
    losses = torch.empty(m, schedule.steps, dtype=dtype, device=device)
    names = list(params)
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
        loss = family.loss(params, xb, yb)
        grads = torch.autograd.grad(loss.sum(), [params[n] for n in names])
        if schedule.full_loss:
            with torch.no_grad():
                losses[:, t] = family.loss(params, x, y)
        else:
            losses[:, t] = loss.detach()
        opt.step(params, dict(zip(names, grads)))
        if on_step is not None:
            on_step()
    return losses.cpu()


@dataclass
class TrainResult:
    losses: np.ndarray        # (k, steps) training loss before each step
    schedule: Schedule
    wall_time: float          # seconds
    device: str


def train(cfg: Config, family, data: Dataset, points: np.ndarray, progress: bool = False,
          desc: str = "training") -> TrainResult:
    """Train one model per point; points (k, 2) = (x, y) hyperparameter pairs in axis units."""
    from tqdm.auto import tqdm

    device = resolve_device(cfg.device)
    dtype = DTYPES[cfg.precision]
    # Models on their way to divergence or to zero pass through denormal numbers, which run
    # ~10x slower on x86 CPUs (measured: a chunk stalled for seconds). Flushing them to zero only
    # changes values below 1e-38 (float32) / 1e-308 (float64).
    torch.set_flush_denormal(True)
    data = data.to(dtype, device)
    x, y = data.x_train, data.y_train
    schedule = make_schedule(cfg, len(x))
    if schedule.batches is not None:
        schedule = Schedule(schedule.steps, schedule.steps_per_epoch,
                            schedule.batches.to(device), schedule.full_loss)
    init = {n: p.to(dtype=dtype, device=device) for n, p in family.init_params(cfg.seed).items()}
    hp_all = hyperparameters(cfg, np.asarray(points, dtype=np.float64))
    k, m = len(points), cfg.tile_batch
    losses = np.empty((k, schedule.steps), dtype=np.float64 if cfg.precision == "float64" else np.float32)
    start = time.perf_counter()
    with tqdm(total=k * schedule.steps, unit="model-step", unit_scale=True, desc=desc,
              disable=not progress, dynamic_ncols=True) as bar:
        for lo in range(0, k, m):
            hi = min(lo + m, k)
            # Pad to exactly m models by repeating the last point: every chunk runs the same kernels.
            take = np.minimum(np.arange(lo, lo + m), k - 1)
            hp = {role: v[take] for role, v in hp_all.items()}
            chunk = train_chunk(cfg, family, init, x, y, schedule, hp,
                                on_step=lambda: bar.update(hi - lo))
            losses[lo:hi] = chunk[: hi - lo].numpy()
    return TrainResult(losses, schedule, time.perf_counter() - start, str(device))


def epoch_curves(losses: np.ndarray, steps_per_epoch: int) -> np.ndarray:
    """Mean loss over each epoch's steps: (k, steps) -> (k, steps // steps_per_epoch).

    A non-finite step makes its epoch's mean non-finite, as it should (the model diverged).
    """
    k, steps = losses.shape
    epochs = steps // steps_per_epoch
    if epochs == 0:
        return losses
    return losses[:, : epochs * steps_per_epoch].reshape(k, epochs, steps_per_epoch).mean(2)

