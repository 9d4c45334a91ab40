"""Timing worker for `nnfractal bench`: runs one timed workload per request, in its own process.

Run as a script (``python .../bench_worker.py``) with PYTHONPATH set to the root of the nnfractal
version to measure: `nnfractal bench --against REF` starts one worker on the current code and one
on a git worktree of REF, and sends both the same requests in turn, so the two versions are timed
side by side. Only long-standing public functions are used (build_config, build_family, train,
train_single, the data loaders and the grid), so older versions of the engine can be measured.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
Request: {"workload": "resnet20" | "paper-tanh", "variant": "engine" | "naive", "models": k,
"steps": s, "threads": n, "mlp_kernel": false (optional: the paper MLP's torch fast path instead
of its C++ kernel)}. Reply: {"seconds", "warmup_seconds", "model_steps", "peak_rss_mb",
"base_rss_mb", "cuda_peak_mb", "first_losses", "version", "allocator", "train_cpu_seconds" and
"wait_seconds" (the engine's threads' CPU and run-queue seconds, `cpu_usage`; None where the
engine predates them), ...} or {"error": "..."}.
"""
from __future__ import annotations

import json
import os
import sys
import time

if __name__ == "__main__" and sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    # Run as a script: the package's own folder must not shadow top-level modules, and
    # `nnfractal` must come from PYTHONPATH (the version being measured).
    sys.path.pop(0)

WORKLOADS = {
    # name: (preset, config overrides). Held-out evaluation is off: only training steps count.
    "resnet20": ("resnet20-mnist", {"eval_every": 0}),
    "paper-tanh": ("paper-tanh", {}),
}
_DATA: dict = {}


def _rss_mb(field: str) -> float | None:
    """VmHWM (peak) or VmRSS (current) of this process in MiB, from /proc (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _allocator() -> str:
    """"tcmalloc" or "system malloc", as nnfractal.training.allocator.in_use says; written out here
    because the version measured may predate that module."""
    try:
        with open("/proc/self/maps") as maps:
            return "tcmalloc" if any("libtcmalloc" in line for line in maps) else "system malloc"
    except OSError:
        return "system malloc"


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                    # Linux >= 4.0: reset VmHWM to the current RSS
    except OSError:
        pass


def _training(name: str):
    """`nnfractal.training.<name>`, or `nnfractal.<name>` in a version from before the package
    had subpackages: `--against` runs this worker on older worktrees too."""
    import importlib
    try:
        return importlib.import_module(f"nnfractal.training.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"nnfractal.{name}")


def _setup(req: dict):
    import numpy as np

    from nnfractal.config import build_config
    from nnfractal.models import build_family
    axes, grid_points = _training("grid").axes, _training("grid").grid_points
    preset, overrides = WORKLOADS[req["workload"]]
    cfg = build_config(preset, steps=req["steps"], **overrides, **req.get("overrides", {}))
    key = (preset, cfg.train_size, cfg.precision)
    if key not in _DATA:
        if cfg.dataset == "gaussian":
            _DATA[key] = _training("data").synthetic_regression(cfg.train_size, cfg.width,
                                                                cfg.target_dim, seed=cfg.data_seed)
        else:
            _DATA[key] = _training("data").load_mnist(train_size=cfg.train_size, seed=cfg.data_seed, download=False)
    x, y = axes(cfg)
    points = grid_points(x, y)
    points = points[np.unique(np.linspace(0, len(points) - 1, req["models"]).round().astype(int))]
    return cfg, build_family(cfg), _DATA[key], points


def run(req: dict) -> dict:
    """Warm up (one step: kernel selection, torch.compile where the engine uses it), then time
    the whole training call once."""
    import numpy as np
    import torch

    train = _training("engine").train
    torch.set_num_threads(req["threads"])
    cfg, family, data, points = _setup(req)
    if req.get("mlp_kernel") is False and hasattr(family, "whole_run_kernel"):
        family.whole_run_kernel = False        # the paper MLP's torch fast path, step by step
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    ran = {"chunk_workers": 1}                 # chunks trained side by side in the timed call
    if req["variant"] == "naive":
        train_single = _training("reference").train_single

        def work(c=cfg, pts=points):
            out = [train_single(c, family, data, p) for p in pts]
            return np.stack([o["train_loss"] if isinstance(o, dict) else o for o in out])
        warm = lambda: work(cfg.replace(steps=1), points[:1])          # noqa: E731
    else:
        def work(c=cfg, pts=points):
            result = train(c, family, data, pts)
            ran["chunk_workers"] = getattr(result, "chunk_workers", 1)    # older engines: 1
            ran["wait_seconds"] = getattr(result, "wait_time", None)       # older engines: None
            ran["train_cpu_seconds"] = getattr(result, "cpu_time", None)
            return result.losses
        warm = lambda: train(cfg.replace(steps=1), family, data, points[:cfg.tile_batch])  # noqa: E731
    t = time.perf_counter()
    warm()
    warmup = time.perf_counter() - t
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    _reset_peak_rss()
    base = _rss_mb("VmRSS")
    t, cpu = time.perf_counter(), time.process_time()
    losses = work()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    cpu_seconds = time.process_time() - cpu
    import nnfractal
    return {"seconds": seconds, "warmup_seconds": warmup, "model_steps": len(points) * cfg.steps,
            "models": len(points), "steps": cfg.steps, "tile_batch": cfg.tile_batch,
            "chunk_workers": ran["chunk_workers"], "allocator": _allocator(), "cpu_seconds": cpu_seconds,
            "train_cpu_seconds": ran.get("train_cpu_seconds"), "wait_seconds": ran.get("wait_seconds"),
            "peak_rss_mb": _rss_mb("VmHWM"), "base_rss_mb": base,
            "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None,
            "first_losses": [float(v) for v in np.asarray(losses)[:, :2].ravel()],
            "version": os.path.dirname(os.path.dirname(os.path.abspath(nnfractal.__file__)))}


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = run(json.loads(line))
        except Exception as err:                         # noqa: BLE001 - reported to the parent
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
