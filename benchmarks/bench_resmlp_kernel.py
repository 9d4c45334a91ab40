"""The deep mean-field MLP's whole-run kernel (plain and residual, depths 4/8/16) against the paper
MLP's kernel (depth 2), per FLOP, side by side in one process; the torch fast path for scale.

    python benchmarks/bench_resmlp_kernel.py [--models 256] [--steps 500] [--rounds 3]
        [--threads 2] [--depths 4 8 16] [--torch-models 32]

Every round times each variant once, in an order rotated every round, so that load from other
processes hits all alike; prints the medians of model-steps/s and GFLOP/s (the families'
`flops_per_model_step`: products only), each variant's GFLOP/s as a ratio to the paper kernel's,
per wall second and per CPU-second (with one thread on a shared machine, the latter is close to
one quiet core's rate), the rate of every round, and the load average. All models train at small
learning rates (10^-3..10^-1.5 on both axes), so that none diverges and exits early: every
variant does its full 500 steps per model. The torch fast path (the same families with
`whole_run_kernel = False`) trains `--torch-models` models.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.training.data import synthetic_regression
from nnfractal.training.engine import train


def variants(depths: list[int], torch_path: bool) -> dict[str, tuple[dict, bool]]:
    """name -> (config overrides of paper-tanh, whether the whole-run kernel trains it)."""
    out = {"paper kernel d2": ({}, True)}
    for d in depths:
        for skip in (True, False):
            tag = f"{'res' if skip else 'plain'} d{d}"
            out[f"kernel {tag}"] = (dict(model="meanfield-resmlp", depth=d, skip=skip), True)
    if torch_path:
        out["torch paper d2"] = ({}, False)
        for d in depths:
            out[f"torch res d{d}"] = (dict(model="meanfield-resmlp", depth=d, skip=True), False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--torch-models", type=int, default=32)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    runs = {}
    for name, (over, kernel) in variants(args.depths, args.torch_models > 0).items():
        k = args.models if kernel else args.torch_models
        # One chunk of exactly k models: the torch path trains a chunk's padding rows too.
        cfg = build_config("paper-tanh", steps=args.steps, compile="off", tile_batch=k, **over)
        family = build_family(cfg)
        family.whole_run_kernel = kernel
        data = synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)
        points = 10 ** rng.uniform(-3, -1.5, (k, 2))
        train(cfg.replace(steps=2), family, data, points[:8])              # warm-up, the build
        print(f"  ready: {name}", flush=True)
        runs[name] = (cfg, family, data, points, family.flops_per_model_step(cfg.train_size))
    print(f"{args.models} models (torch: {args.torch_models}) x {args.steps} steps, "
          f"{args.threads} threads, load {os.getloadavg()[0]:.2f}")
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu_rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            cfg, family, data, points, _ = runs[name]
            start, cpu = time.perf_counter(), time.process_time()
            losses = train(cfg, family, data, points).losses
            rates[name].append(len(points) * args.steps / (time.perf_counter() - start))
            cpu_rates[name].append(len(points) * args.steps / (time.process_time() - cpu))
            assert np.isfinite(losses).all(), f"{name}: a model diverged; the timing would be short"
            print(f"    {name:18s} {rates[name][-1]:10.0f} model-steps/s, {cpu_rates[name][-1]:10.0f} "
                  f"per CPU-second (load {os.getloadavg()[0]:.2f})", flush=True)
        print(f"  round {r + 1} done (load {os.getloadavg()[0]:.2f})", flush=True)
    flops = {name: run[4] for name, run in runs.items()}
    for label, table in (("wall", rates), ("per CPU-second", cpu_rates)):
        paper = statistics.median(table["paper kernel d2"]) * flops["paper kernel d2"] / 1e9
        print(f"{label}:\n{'variant':18s} {'model-steps/s':>14s} {'GFLOP/s':>8s} {'x paper kernel':>15s}"
              "  model-steps/s per round")
        for name in names:
            med = statistics.median(table[name])
            gflops = med * flops[name] / 1e9
            print(f"{name:18s} {med:14.0f} {gflops:8.2f} {gflops / paper:15.2f}  "
                  f"{[round(v) for v in table[name]]}")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
