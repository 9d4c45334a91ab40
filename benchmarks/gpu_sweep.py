"""GPU sweep for a session with a CUDA device: ResNet-20 model-steps/s by chunk size and option.

For each setting, one warm-up call (kernel selection, torch.compile) and `--repeats` timed calls
of `engine.train` on evenly spread points of the resnet20-mnist window (batch 32, float32, no
held-out evaluation). Prints a table and writes JSON. Goal (issue 6, item 5): >= 5,000 ResNet-20
model-steps/s in float32 on one H100, with matmul_precision "highest".

    python benchmarks/gpu_sweep.py --json gpu_sweep.json [--steps 10] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnfractal.config import build_config  # noqa: E402
from nnfractal.models import build_family  # noqa: E402
from nnfractal.training.data import load_mnist  # noqa: E402
from nnfractal.training.engine import train  # noqa: E402
from nnfractal.training.grid import axes, grid_points  # noqa: E402

SETTINGS = [  # (label, overrides), most important first: a --max-seconds budget cuts the tail
    ("tile auto (free memory)", {"tile_batch": 0}),
    ("tile 256", {"tile_batch": 256}),
    ("tile 1024", {"tile_batch": 1024}),
    ("tile auto + tf32", {"tile_batch": 0, "matmul_precision": "tf32"}),
    ("tile auto + bfloat16", {"tile_batch": 0, "matmul_precision": "bfloat16"}),
    ("tile auto + compile", {"tile_batch": 0, "compile": "on"}),
    ("tile 64", {"tile_batch": 64}),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", type=int, default=0, help="points per call (default 2 x the chunk)")
    ap.add_argument("--json", type=Path, help="written after every setting, so a cut-off sweep keeps its rows")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="start no new setting after this many seconds (0 = run all)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_sweep: no CUDA device", file=sys.stderr)
        return 2
    base = build_config("resnet20-mnist", eval_every=0, steps=args.steps, device="cuda")
    data = load_mnist(train_size=base.train_size, seed=base.data_seed, download=False)
    x, y = axes(base)
    grid = grid_points(x, y)
    rows = []
    start = time.perf_counter()
    for label, overrides in SETTINGS:
        if args.max_seconds and time.perf_counter() - start > args.max_seconds:
            print(f"{label:28s} skipped: --max-seconds {args.max_seconds:g} reached", flush=True)
            continue
        cfg = base.replace(**overrides)
        family = build_family(cfg)
        t = time.perf_counter()
        warm = train(cfg.replace(steps=1), family, data, grid[:1])
        torch.cuda.synchronize()
        tile = warm.tile_batch
        warmup = time.perf_counter() - t
        k = args.models or 2 * tile
        pts = np.resize(grid, (k, 2))
        rates = []
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.repeats):
            t = time.perf_counter()
            train(cfg, family, data, pts)
            torch.cuda.synchronize()
            rates.append(k * args.steps / (time.perf_counter() - t))
        row = {"setting": label, "tile_batch": tile, "models": k, "steps": args.steps,
               "model_steps_per_s": statistics.median(rates), "best": max(rates),
               "warmup_seconds": warmup, "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20}
        rows.append(row)
        print(f"{label:28s} tile {tile:5d}  {row['model_steps_per_s']:9.1f} model-steps/s "
              f"(best {row['best']:.1f}, warm-up {warmup:.1f} s, {row['cuda_peak_mb']:.0f} MiB)", flush=True)
        if args.json:
            out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows,
                   "goal_model_steps_per_s": 5000}
            args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
