"""Train one model the ordinary way: an `nn.Module` and a `torch.optim` optimizer.

This is the yardstick for the batched engine: the tests check that the engine reproduces it, and
the benchmarks time it as the naive one-model-at-a-time loop.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nnfractal.config import Config
from nnfractal.models import Family

from .data import Dataset
from .engine import DTYPES, make_schedule, resolve_device
from .grid import hyperparameters


def _loss(family: Family, net, x, y):
    """The loss of one model's batch by the family's task: mean squared error over points and
    outputs (regression) or mean cross-entropy (classification); and the outputs."""
    out = net(x)
    if family.task == "regression":
        return (out - y).square().mean(), out
    return F.cross_entropy(out, y), out


@torch.no_grad()
def _evaluate(cfg: Config, net, x, y) -> tuple[float, float]:
    """Held-out loss and accuracy of one model, in batches of the training batch size."""
    batch = cfg.batch_size or len(x)
    loss_sum, correct = 0.0, 0
    for lo in range(0, len(x), batch):
        out = net(x[lo:lo + batch])
        loss_sum += F.cross_entropy(out, y[lo:lo + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[lo:lo + batch]).sum().item()
    return loss_sum / len(x), correct / len(x)


def train_single(cfg: Config, family: Family, data: Dataset, point) -> dict[str, np.ndarray]:
    """The curves of the model at `point` = (x, y), trained on its own: train_loss (steps,), and
    train_acc / test_loss / test_acc as the engine records them."""
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.precision]
    torch.set_flush_denormal(True)          # as the engine does
    data = data.to(dtype, device)
    x, y = data.x_train, data.y_train
    has_test = data.x_test is not None and cfg.eval_every > 0
    schedule = make_schedule(cfg, len(x), has_test=has_test)
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
    curves = {"train_loss": np.empty(schedule.steps)}
    if family.task == "classification":
        curves["train_acc"] = np.empty(schedule.steps)
    if schedule.eval_epochs:
        curves["test_loss"] = np.empty(len(schedule.eval_epochs))
        curves["test_acc"] = np.empty(len(schedule.eval_epochs))

    def maybe_evaluate(epoch):
        if epoch in schedule.eval_epochs:
            i = schedule.eval_epochs.index(epoch)
            curves["test_loss"][i], curves["test_acc"][i] = _evaluate(cfg, net, data.x_test, data.y_test)

    maybe_evaluate(0)
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
        loss, out = _loss(family, net, xb, yb)
        loss.backward()
        if schedule.full_loss:
            with torch.no_grad():
                curves["train_loss"][t] = _loss(family, net, x, y)[0].item()
        else:
            curves["train_loss"][t] = loss.item()
        if "train_acc" in curves:
            curves["train_acc"][t] = (out.argmax(1) == yb).double().mean().item()
        opt.step()
        if (t + 1) % schedule.steps_per_epoch == 0:
            maybe_evaluate((t + 1) // schedule.steps_per_epoch)
    return curves
