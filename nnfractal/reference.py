"""Train one model the ordinary way: an `nn.Module` and a `torch.optim` optimizer.

This is the yardstick for the batched engine: the tests check that the engine reproduces it, and
the benchmarks time it as the naive one-model-at-a-time loop.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .data import Dataset
from .engine import DTYPES, Schedule, make_schedule, resolve_device
from .grid import hyperparameters


def _loss(cfg: Config, net, x, y):
    out = net(x)
    if cfg.model == "resnet":
        return F.cross_entropy(out, y)
    return (out - y).square().mean()


def train_single(cfg: Config, family, data: Dataset, point, schedule: Schedule | None = None) -> np.ndarray:
    """The loss curve (steps,) of the model at `point` = (x, y), trained on its own."""
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.precision]
    torch.set_flush_denormal(True)          # as the engine does
    data = data.to(dtype, device)
    x, y = data.x_train, data.y_train
    schedule = schedule or make_schedule(cfg, len(x))
    hp = {k: float(v[0]) for k, v in hyperparameters(cfg, np.asarray([point], dtype=np.float64)).items()}
    params = {k: v.to(dtype) for k, v in family.init_params(cfg.seed).items()}
    net = family.reference(params).to(device=device, dtype=dtype)
    offset_roles = {"input"} if cfg.offset_target == "input" else {"input", "hidden", "output"}
    offset_params = [p for n, p in net.named_parameters() if family.role(n) in offset_roles]
    if cfg.offset_mode == "init":
        with torch.no_grad():
            for p in offset_params:
                p.add_(hp["offset"])
    groups = [{"params": [p for n, p in net.named_parameters() if family.role(n) == role], "lr": hp[role]}
              for role in ("input", "hidden", "output")]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups)
    elif cfg.optimizer == "momentum":
        opt = torch.optim.SGD(groups, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adam(groups)
    losses = np.empty(schedule.steps)
    for t in range(schedule.steps):
        if cfg.offset_mode == "every-step":
            with torch.no_grad():
                for p in offset_params:
                    p.add_(hp["offset"])
        if schedule.batches is None:
            xb, yb = x, y
        else:
            idx = schedule.batches[t].to(device)
            xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = _loss(cfg, net, xb, yb)
        loss.backward()
        if schedule.full_loss:
            with torch.no_grad():
                losses[t] = _loss(cfg, net, x, y).item()
        else:
            losses[t] = loss.item()
        opt.step()
    return losses
