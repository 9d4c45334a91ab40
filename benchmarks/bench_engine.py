"""Benchmark the batched training engine against the naive one-model-at-a-time loop.

Two workloads, each timed side by side in one process:

* ResNet-20 on MNIST (preset ``resnet20-mnist``: batch 32, float32, SGD; held-out evaluation
  off): ``engine.train`` with ``tile_batch`` 8 and 16 against ``reference.train_single`` (an
  ``nn.Module`` + ``torch.optim``).
  Reported as model-steps/s, GFLOP/s (5.96 GFLOP per model-step, see below) and % of this
  machine's float32 matmul peak, measured in the same run.
* The paper's MLP (preset ``paper-tanh``: 16 tanh units, 272 points, full batch, float64):
  ``engine.train`` with ``tile_batch`` 256 against ``reference.train_single``.

Repeats are interleaved (every repeat runs every variant once, in a rotated order), so a burst of
load from another process on this shared machine hits all variants alike. Each variant is warmed
up once (one step) before the timed repeats. Rates count only the models asked for (a last chunk
padded up to ``tile_batch`` does extra work that is not counted).

FLOPs per ResNet-20 model-step: 5.96 GFLOP = 3 x the forward pass (backward ~ 2 x forward: one
product for the input gradient, one for the weight gradient). The forward pass of one ResNet-20
on a (32, 1, 28, 28) batch is 1.985 GFLOP as counted by ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matmuls, a multiply-add = 2 FLOPs; BatchNorm, ReLU and the loss are not
counted); the script re-measures it, and the forward+backward count, and prints both.

Usage:
    python benchmarks/bench_engine.py                 # ~1 min on 2 cores
    python benchmarks/bench_engine.py --quick         # ~30 s smoke run
    python benchmarks/bench_engine.py --repeats 5 --json bench.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from nnfractal.cli.bench import cpu_model
from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.training.data import load_mnist, synthetic_regression
from nnfractal.training.engine import train
from nnfractal.training.grid import axes, grid_points
from nnfractal.training.reference import train_single

RESNET_GFLOP_PER_MODEL_STEP = 5.96      # 3 x 1.985 GFLOP forward (ResNet-20, batch 32, 28x28x1)

# name: (models, steps) per variant. "naive" is train_single on that many models.
SIZES = {
    "normal": {
        "resnet": {"steps": 5, "batched_models": 16, "naive_models": 4},
        "mlp": {"steps": 100, "batched_models": 1024, "naive_models": 16},
    },
    "quick": {
        "resnet": {"steps": 3, "batched_models": 16, "naive_models": 2},
        "mlp": {"steps": 50, "batched_models": 1024, "naive_models": 16},
    },
}


# ---- machine ----------------------------------------------------------------------------------

def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def matmul_gflops(n: int = 2048, tries: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n x n torch.matmul over `tries` calls (2 n^3 FLOPs)."""
    a = torch.randn(n, n, dtype=torch.float32)
    b = torch.randn(n, n, dtype=torch.float32)
    torch.matmul(a, b)                   # warm-up
    best = float("inf")
    for _ in range(tries):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def resnet_flops(cfg, data) -> dict[str, float]:
    """FLOPs (GFLOP) of one ResNet of `cfg` on one batch: forward, and forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode
    family = build_family(cfg)
    net = family.reference(family.init_params(cfg.seed))
    x, y = data.x_train[: cfg.batch_size], data.y_train[: cfg.batch_size]
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            net(x)
    fwd = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(net(x), y).backward()
    return {"forward_gflop": fwd / 1e9, "forward_backward_gflop": fc.get_total_flops() / 1e9}


# ---- timing -----------------------------------------------------------------------------------

@dataclass
class Variant:
    workload: str                    # "resnet20-mnist" or "paper-tanh"
    name: str                        # "naive", "batched tile 8", ...
    models: int
    steps: int
    run: object                      # callable() -> np.ndarray (models, steps) of losses
    warmup: object                   # callable() -> None
    gflop_per_model_step: float | None = None
    seconds: list[float] = field(default_factory=list)
    loadavg: list[float | None] = field(default_factory=list)   # 1-min load average after each run
    losses: np.ndarray | None = None

    @property
    def model_steps(self) -> int:
        return self.models * self.steps

    def rates(self) -> list[float]:
        return [self.model_steps / s for s in self.seconds]


def _train_loss(curves) -> np.ndarray:
    """The training-loss curve from train_single (a dict of curves; a bare array in old versions)."""
    return curves["train_loss"] if isinstance(curves, dict) else curves


def spread_points(points: np.ndarray, k: int) -> np.ndarray:
    """k points evenly spread over a grid's point list (so they cover the whole window)."""
    idx = np.unique(np.linspace(0, len(points) - 1, k).round().astype(int))
    if len(idx) < k:
        raise ValueError(f"the grid has only {len(points)} points, {k} asked")
    return points[idx]


def make_variants(kind: str, cfg, data, sizes: dict, tiles: list[int],
                  gflop: float | None) -> list[Variant]:
    steps = sizes["steps"]
    cfg = cfg.replace(steps=steps)
    family = build_family(cfg)
    x, y = axes(cfg)
    points = spread_points(grid_points(x, y), sizes["batched_models"])
    # The naive loop trains a subset of the same points (evenly spread, so it sees the same mix of
    # converging and diverging models as the batched engine).
    naive_idx = np.unique(np.linspace(0, len(points) - 1, sizes["naive_models"]).round().astype(int))
    naive_points = points[naive_idx]

    def naive(c=cfg):
        return np.stack([_train_loss(train_single(c, family, data, p)) for p in naive_points])

    variants = [Variant(kind, "naive (train_single)", len(naive_points), steps, naive,
                        lambda: naive(cfg.replace(steps=1)), gflop)]
    for tile in tiles:
        c = cfg.replace(tile_batch=tile)
        variants.append(Variant(
            kind, f"batched tile {tile}", len(points), steps,
            lambda c=c: train(c, family, data, points).losses,
            lambda c=c, tile=tile: train(c.replace(steps=1), family, data, points[:tile]),
            gflop))
    variants[0].naive_idx = naive_idx          # to compare the curves afterwards
    return variants


def run_interleaved(variants: list[Variant], repeats: int, peaks: list[float], log) -> None:
    for v in variants:
        t = time.perf_counter()
        v.warmup()
        log(f"  warm-up {v.workload:15s} {v.name:22s} {time.perf_counter() - t:6.2f} s")
    for r in range(repeats):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            t = time.perf_counter()
            losses = v.run()
            dt = time.perf_counter() - t
            v.seconds.append(dt)
            v.losses = losses
            load = loadavg()
            v.loadavg.append(load[0] if load else None)
            log(f"  repeat {r + 1}/{repeats} {v.workload:15s} {v.name:22s} {dt:7.2f} s "
                f"{v.model_steps / dt:10.1f} model-steps/s   (load avg {v.loadavg[-1]})")
        peaks.append(matmul_gflops())


def agreement(variants: list[Variant], steps: int = 2) -> float | None:
    """Largest relative |batched - naive| loss over the first `steps` steps of the shared points.

    A sanity check that both sides train the same models. Only the first steps are compared:
    near the trainability boundary training is chaotic, so roundoff differences (the kernels
    differ) grow to O(1) over a long run.
    """
    naive = variants[0]
    worst = None
    for v in variants[1:]:
        b = np.asarray(v.losses, dtype=np.float64)[naive.naive_idx, :steps]
        a = np.asarray(naive.losses, dtype=np.float64)[:, :steps]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.any():
            d = float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(1.0, np.abs(a[ok]))))
            worst = d if worst is None else max(worst, d)
    return worst


# ---- report -----------------------------------------------------------------------------------

def summarise(variants: list[Variant], peak: float) -> list[dict]:
    naive_median = statistics.median(variants[0].rates())
    naive_best = max(variants[0].rates())
    rows = []
    for v in variants:
        rates = v.rates()
        med = statistics.median(rates)
        row = {
            "workload": v.workload, "variant": v.name, "models": v.models, "steps": v.steps,
            "model_steps": v.model_steps,
            "seconds": [round(s, 4) for s in v.seconds],
            "median_seconds": statistics.median(v.seconds),
            "model_steps_per_s": {"median": med, "min": min(rates), "max": max(rates)},
            "ratio_vs_naive": med / naive_median,
            "ratio_vs_naive_best": max(rates) / naive_best,
            "ratio_vs_naive_per_repeat": [r / n for r, n in zip(rates, variants[0].rates())],
            "loadavg_1min_after_each_repeat": v.loadavg,
            "nonfinite_final_loss_fraction": float(np.mean(~np.isfinite(np.asarray(v.losses)[:, -1]))),
        }
        if v.gflop_per_model_step is not None:
            g = med * v.gflop_per_model_step
            row["gflop_per_s"] = {"median": g, "min": min(rates) * v.gflop_per_model_step,
                                  "max": max(rates) * v.gflop_per_model_step}
            row["percent_of_matmul_peak"] = 100 * g / peak
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    head = (f"{'workload':15s} {'variant':22s} {'models x steps':>14s} {'median s':>9s} "
            f"{'model-steps/s  median [min, max]':>34s} {'x naive':>8s} {'(best)':>7s} {'GFLOP/s':>8s} "
            f"{'% peak':>7s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["model_steps_per_s"]
        rate = f"{m['median']:9.1f} [{m['min']:.1f}, {m['max']:.1f}]"
        g = f"{r['gflop_per_s']['median']:8.1f}" if "gflop_per_s" in r else f"{'-':>8s}"
        p = f"{r['percent_of_matmul_peak']:6.1f}%" if "percent_of_matmul_peak" in r else f"{'-':>7s}"
        print(f"{r['workload']:15s} {r['variant']:22s} {str(r['models']) + ' x ' + str(r['steps']):>14s} "
              f"{r['median_seconds']:9.2f} {rate:>34s} {r['ratio_vs_naive']:8.2f} "
              f"{r['ratio_vs_naive_best']:7.2f} {g} {p}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats per variant (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a ~30 s smoke run")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--only", choices=["resnet", "mlp"], help="run one workload only")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    args = ap.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1 or args.threads < 1:
        ap.error("--repeats and --threads must be >= 1")
    sizes = SIZES["quick" if args.quick else "normal"]

    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)        # noqa: E731
    meta = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "loadavg_start": loadavg(), "mode": "quick" if args.quick else "normal",
        "repeats": repeats, "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    log(f"torch {meta['torch']}, python {meta['python']}, {meta['threads']} threads, "
        f"CPU: {meta['cpu']} ({meta['cpu_count']} logical CPUs), load avg {meta['loadavg_start']}")
    log(f"mode {meta['mode']}, {repeats} repeat(s), interleaved")

    peaks = [matmul_gflops()]
    log(f"float32 matmul 2048^3: {peaks[0]:.1f} GFLOP/s (best of 5)")

    variants: list[Variant] = []
    flops = None
    if args.only in (None, "resnet"):
        # eval_every=0: no held-out evaluation, so both sides time training steps only.
        cfg = build_config("resnet20-mnist", eval_every=0)
        data = load_mnist(train_size=cfg.train_size, seed=cfg.data_seed, download=False)
        log(f"resnet data: {data.source}")
        flops = resnet_flops(cfg, data)
        log(f"ResNet-20, batch {cfg.batch_size}: forward {flops['forward_gflop']:.3f} GFLOP, "
            f"forward+backward {flops['forward_backward_gflop']:.3f} GFLOP measured "
            f"(FlopCounterMode); using {RESNET_GFLOP_PER_MODEL_STEP} = 3 x forward per model-step")
        variants += make_variants("resnet20-mnist", cfg, data, sizes["resnet"], [8, 16],
                                  RESNET_GFLOP_PER_MODEL_STEP)
    if args.only in (None, "mlp"):
        cfg = build_config("paper-tanh")
        data = synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)
        variants += make_variants("paper-tanh", cfg, data, sizes["mlp"], [256], None)

    groups = [[v for v in variants if v.workload == w] for w in dict.fromkeys(v.workload for v in variants)]
    t0 = time.perf_counter()
    for group in groups:
        run_interleaved(group, repeats, peaks, log)
    total = time.perf_counter() - t0
    peak = max(peaks)
    rows = [row for group in groups for row in summarise(group, peak)]
    agree = {group[0].workload: agreement(group) for group in groups}

    print()
    print(f"float32 matmul peak (2048^3, {meta['threads']} threads, best of {5 * len(peaks)} "
          f"calls spread over the run): {peak:.1f} GFLOP/s")
    print_table(rows)
    for w, d in agree.items():
        print(f"{w}: max relative |batched - naive| loss, first 2 steps of the shared points: "
              f"{'n/a' if d is None else f'{d:.1e}'}")
    meta["loadavg_end"] = loadavg()
    print(f"timed section {total:.1f} s; load avg start {meta['loadavg_start']}, "
          f"end {meta['loadavg_end']}")

    if args.json:
        out = {"meta": meta, "matmul_fp32_gflops": {"best": peak, "samples": peaks},
               "resnet20_flops": {**(flops or {}),
                                  "gflop_per_model_step_used": RESNET_GFLOP_PER_MODEL_STEP},
               "results": rows, "max_rel_loss_difference_first_2_steps": agree, "timed_seconds": total}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
