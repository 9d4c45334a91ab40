"""Adaptive refinement (--adaptive) against the full grid: agreement, dimension, speed.

Two modes.

* **End to end** (default): runs ``run.execute`` twice on the same config, once as a full grid and
  once with ``adaptive = true``, each writing its whole run folder (training, store, maps, epoch
  animation, boundary, dimension, report), and compares them: fraction of pixels whose sign
  (converged or not) agrees, both box-counting dimensions, wall times end to end and of training
  alone, and the speed-up. ``--repeats N`` alternates the two N times (medians reported).

* **Simulation** (``--simulate RUN_DIR [RUN_DIR ...]``): takes finished *full* runs and replays
  the refinement on their stored scores for every ``--coarse`` x ``--guard`` pair, without
  training. This is exact, not an approximation: a trained pixel's curve is bit-identical to the
  full run's (tests/test_adaptive.py checks it), so the refinement would make exactly the same
  decisions and the filled map is the full map read at each pixel's source. It measures what the
  defaults should be, and how the trained fraction scales with resolution (``--subsample K``
  also replays the grids every K-th pixel of the stored one: a coarser grid of the same window).

Usage:
    python benchmarks/bench_adaptive.py --preset paper-tanh --resolution 128
    python benchmarks/bench_adaptive.py --preset paper-tanh --resolution 512 --json bench512.json
    python benchmarks/bench_adaptive.py --simulate runs/full256 --coarse 16 32 64 --guard 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nnfractal.adaptive import coarse_stride, refine
from nnfractal.config import build_config, config_from_toml
from nnfractal.fractal import boundary, estimate_dimension
from nnfractal.run import execute, score_map
from nnfractal.store import RunStore


def final_scores(run_dir: Path) -> np.ndarray:
    """The run's final score map (rows, cols), read from its store."""
    cfg = config_from_toml(run_dir / "config.toml")
    return score_map(RunStore.open(run_dir / "store.zarr"), cfg)


def dimension(scores: np.ndarray) -> dict:
    est = estimate_dimension(boundary(scores))
    return {"dimension": est.dimension, "ci_low": est.ci_low, "ci_high": est.ci_high,
            "ok": est.ok, "reason": est.reason, "boundary_pixels": est.n_boundary_pixels}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose convergence (score < 0) is the same in both maps."""
    return float(np.mean((a < 0) == (b < 0)))


def fmt(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


# ---- end to end --------------------------------------------------------------------------------

def end_to_end(args) -> dict:
    overrides = dict(resolution=args.resolution, steps=args.steps, tile_batch=args.tile_batch)
    base = build_config(args.preset, **overrides)
    adaptive = base.replace(adaptive=True, adaptive_coarse=args.coarse[0], adaptive_guard=args.guard[0])
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_adaptive."))
    times = {"full": [], "adaptive": []}
    train_times = {"full": [], "adaptive": []}
    folders = {}
    for rep in range(args.repeats):
        order = [("full", base), ("adaptive", adaptive)]
        if rep % 2:
            order.reverse()
        for name, cfg in order:
            out = root / f"{name}-{rep}"
            t0 = time.perf_counter()
            execute(cfg, out, progress=not args.no_progress, log=(print if args.verbose else lambda *_: None),
                    epoch_maps=not args.no_epoch_maps)
            times[name].append(time.perf_counter() - t0)
            summary = json.loads((out / "summary.json").read_text())
            train_times[name].append(summary["wall_time_s"])
            folders[name] = out
            print(f"  repeat {rep}: {name:8s} {times[name][-1]:8.1f} s end to end, "
                  f"{train_times[name][-1]:8.1f} s training", flush=True)
    full, adapt = final_scores(folders["full"]), final_scores(folders["adaptive"])
    summary = json.loads((folders["adaptive"] / "summary.json").read_text())
    t_full, t_adapt = statistics.median(times["full"]), statistics.median(times["adaptive"])
    result = {
        "preset": args.preset, "resolution": args.resolution, "steps": base.steps,
        "coarse": adaptive.adaptive_coarse, "guard": adaptive.adaptive_guard,
        "repeats": args.repeats, "threads": _threads(), "loadavg_end": os.getloadavg(),
        "sign_agreement": agreement(full, adapt),
        "pixels_differing": int(np.sum((full < 0) != (adapt < 0))),
        "dimension_full": dimension(full), "dimension_adaptive": dimension(adapt),
        "fraction_trained": summary["adaptive"]["fraction_trained"],
        "levels": summary["adaptive"]["levels"],
        "end_to_end_s": times, "training_s": train_times,
        "speedup_end_to_end": t_full / t_adapt,
        "speedup_training": statistics.median(train_times["full"]) / statistics.median(train_times["adaptive"]),
        "folders": {k: str(v) for k, v in folders.items()},
    }
    d_full, d_adapt = result["dimension_full"]["dimension"], result["dimension_adaptive"]["dimension"]
    result["dimension_difference"] = (d_adapt - d_full) if d_full is not None and d_adapt is not None else None
    print()
    print(f"{args.preset} {args.resolution} x {args.resolution}, {base.steps} steps, coarse "
          f"{adaptive.adaptive_coarse} (stride {coarse_stride(args.resolution, adaptive.adaptive_coarse)}), "
          f"guard {adaptive.adaptive_guard}, {args.repeats} repeat(s)")
    print("| run | end to end s (median) | training s | trained | dimension [95% CI] |")
    print("|---|---|---|---|---|")
    for name, frac, dim in (("full", 1.0, result["dimension_full"]),
                            ("adaptive", result["fraction_trained"], result["dimension_adaptive"])):
        print(f"| {name} | {statistics.median(times[name]):.1f} | "
              f"{statistics.median(train_times[name]):.1f} | {frac:.1%} | "
              f"{fmt(dim['dimension'])} [{fmt(dim['ci_low'])}, {fmt(dim['ci_high'])}] |")
    print(f"\nsign agreement {result['sign_agreement']:.4%} ({result['pixels_differing']} pixels differ); "
          f"dimension difference {fmt(result['dimension_difference'])}; speed-up end to end "
          f"{result['speedup_end_to_end']:.2f}x, training {result['speedup_training']:.2f}x")
    return result


def _threads() -> int:
    import torch
    return torch.get_num_threads()


# ---- simulation from full runs -----------------------------------------------------------------

def simulate_one(scores: np.ndarray, coarse: int, guard: int) -> dict:
    """Replay the refinement on a full map's scores; compare the filled map with the full one."""
    rows, cols = scores.shape
    conv = scores < 0
    s0 = coarse_stride(min(rows, cols), coarse)
    t0 = time.perf_counter()
    ref = refine(rows, cols, s0, guard, lambda flat, s: conv.flat[flat])
    overhead = time.perf_counter() - t0
    filled = scores.flat[ref.source]
    return {"coarse": coarse, "stride": s0, "guard": guard, "fraction_trained": ref.fraction_trained,
            "sign_agreement": agreement(scores, filled),
            "pixels_differing": int(np.sum((scores < 0) != (filled < 0))),
            "dimension": dimension(filled)["dimension"], "levels": len(ref.levels),
            "refinement_overhead_s": overhead}


def simulate(args) -> list[dict]:
    rows_out = []
    print("| run | px | coarse | stride | guard | trained | sign agreement | px differing | "
          "dimension full | adaptive | diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in args.simulate:
        run = Path(run)
        full = final_scores(run)
        for k in args.subsample:
            scores = full[::k, ::k]
            d_full = dimension(scores)["dimension"]
            for coarse in args.coarse:
                for guard in args.guard:
                    r = simulate_one(scores, coarse, guard)
                    r.update(run=str(run), resolution=scores.shape[0], subsample=k, dimension_full=d_full)
                    diff = None if d_full is None or r["dimension"] is None else r["dimension"] - d_full
                    r["dimension_difference"] = diff
                    rows_out.append(r)
                    print(f"| {run.name} | {scores.shape[0]} | {coarse} | {r['stride']} | {guard} | "
                          f"{r['fraction_trained']:.1%} | {r['sign_agreement']:.4%} | "
                          f"{r['pixels_differing']} | {fmt(d_full)} | {fmt(r['dimension'])} | "
                          f"{fmt(diff)} |", flush=True)
    return rows_out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper-tanh")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--tile_batch", type=int, default=None)
    p.add_argument("--coarse", type=int, nargs="+", default=[None],
                   help="adaptive_coarse value(s) (end to end: the first; default the config's)")
    p.add_argument("--guard", type=int, nargs="+", default=[None],
                   help="adaptive_guard value(s) (end to end: the first; default the config's)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-epoch-maps", action="store_true",
                   help="skip the per-epoch maps in both runs (default: draw them, as `nnfractal run` does)")
    p.add_argument("--keep", help="write the run folders here (default: a temporary folder)")
    p.add_argument("--simulate", nargs="+", metavar="RUN_DIR", help="replay on finished full runs")
    p.add_argument("--subsample", type=int, nargs="+", default=[1],
                   help="simulation: also every K-th pixel of the stored grid")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print the runs' own log lines")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(int(os.environ.get("NNF_THREADS", "2")))
    if args.simulate:
        defaults = build_config("paper-tanh")
        args.coarse = [c or defaults.adaptive_coarse for c in args.coarse]
        args.guard = [g if g is not None else defaults.adaptive_guard for g in args.guard]
        result = simulate(args)
    else:
        defaults = build_config(args.preset)
        args.coarse = [args.coarse[0] or defaults.adaptive_coarse]
        args.guard = [args.guard[0] if args.guard[0] is not None else defaults.adaptive_guard]
        result = end_to_end(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
