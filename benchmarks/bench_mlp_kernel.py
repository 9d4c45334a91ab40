"""The paper MLP's whole-run C++ kernel against the torch fast path, side by side in one process.

    python benchmarks/bench_mlp_kernel.py [--models 1024] [--steps 500] [--repeats 5]
        [--threads 2] [--preset paper-tanh]

Alternates the two variants (the order rotated every repeat) on the same grid of points, so that
load from other processes hits both alike; prints model-steps/s per repeat, the medians, their
ratio, the ratio to the paper's JAX code (17.6k model-steps/s, measured earlier on this CPU, not
in this run) and the load average. Run it with tcmalloc preloaded to compare with `nnfractal
bench` (the torch fast path gains from it; the kernel allocates nothing per step). Model-steps
per CPU-second are printed too: with one thread on a shared machine they are close to the rate
of one quiet core (spinning OpenMP threads count as CPU time, so not with two).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from nnfractal.cli.bench import PAPER_JAX_MODEL_STEPS_PER_S
from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.training import allocator
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import train
from nnfractal.training.grid import axes, grid_points


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper-tanh")
    ap.add_argument("--models", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = build_config(args.preset, steps=args.steps, compile="off")
    family = build_family(cfg)
    data = synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)
    # The points `nnfractal bench` times: the preset's grid, `--models` of them evenly spaced
    # (diverging models included, as in a real map; the paper's JAX code trains those too).
    x, y = axes(cfg)
    points = grid_points(x, y)
    points = points[np.unique(np.linspace(0, len(points) - 1, args.models).round().astype(int))]
    variants = {"kernel": True, "torch fast path": False}
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpu_rates: dict[str, list[float]] = {v: [] for v in variants}
    for on in variants.values():                             # warm-up (the kernel's build)
        family.whole_run_kernel = on
        train(cfg.replace(steps=2), family, data, points[:8])
    print(f"{args.preset}: {len(points)} models x {args.steps} steps, {args.threads} threads, "
          f"{allocator.in_use()}, load {os.getloadavg()[0]:.2f}")
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            family.whole_run_kernel = variants[name]
            t, c = time.perf_counter(), time.process_time()
            train(cfg, family, data, points)
            rate = len(points) * args.steps / (time.perf_counter() - t)
            cpu_rate = len(points) * args.steps / (time.process_time() - c)
            rates[name].append(rate)
            cpu_rates[name].append(cpu_rate)
            print(f"  repeat {r + 1} {name:16s} {rate:10.0f} model-steps/s, {cpu_rate:10.0f} per CPU-second"
                  f"  (load {os.getloadavg()[0]:.2f})", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu_rates.items()}
    for k, v in med.items():
        print(f"{k:16s} median {v:10.0f}  best {max(rates[k]):10.0f}  per CPU-second {cpu_med[k]:10.0f}  "
              f"x {v / PAPER_JAX_MODEL_STEPS_PER_S:.2f} vs paper JAX (17.6k, earlier)")
    print(f"kernel / torch fast path: x {med['kernel'] / med['torch fast path']:.2f} "
          f"(per-repeat ratios {[round(a / b, 2) for a, b in zip(rates['kernel'], rates['torch fast path'])]}); "
          f"per CPU-second x {cpu_med['kernel'] / cpu_med['torch fast path']:.2f}; "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
