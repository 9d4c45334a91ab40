"""Adaptive refinement (--adaptive) against the full grid: agreement, dimension, speed.

Two modes.

* **End to end** (default): runs ``run.execute`` on the same config as a full grid and with
  ``adaptive = true`` for every ``--coarse`` x ``--guard`` pair, each writing its whole run folder
  (training, store, maps, epoch animation, boundary, dimension, report), and compares each with
  the full grid: fraction of pixels whose sign (converged or not) agrees, box-counting
  dimensions, wall times end to end and of training alone, and the speed-ups. ``--repeats N``
  runs them all N times, alternating the order (medians reported).

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
    python benchmarks/bench_adaptive.py --simulate runs/full256 --coarse 16 32 64 --guard 0 4 8
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

from nnfractal.config import build_config, config_from_toml
from nnfractal.estimators.boxcount import boundary, estimate_dimension
from nnfractal.runner.adaptive import coarse_stride, refine
from nnfractal.runner.run import execute, score_map
from nnfractal.storage.store import RunStore


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
    """Full grid, then every --coarse x --guard adaptive variant, each through run.execute."""
    overrides = dict(resolution=args.resolution, steps=args.steps, tile_batch=args.tile_batch,
                     mnmx=tuple(args.mnmx) if args.mnmx else None)
    base = build_config(args.preset, **overrides)
    variants = [("full", base)] + [
        (f"adaptive c{c} g{g}", base.replace(adaptive=True, adaptive_coarse=c, adaptive_guard=g))
        for c in args.coarse for g in args.guard]
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_adaptive."))
    times = {name: [] for name, _ in variants}
    train_times = {name: [] for name, _ in variants}
    folders = {}
    for rep in range(args.repeats):
        order = variants if rep % 2 == 0 else variants[::-1]      # alternate who goes first
        for name, cfg in order:
            out = root / f"{name.replace(' ', '-')}-{rep}"
            t0 = time.perf_counter()
            execute(cfg, out, progress=not args.no_progress,
                    log=(print if args.verbose else lambda *_: None), epoch_maps=not args.no_epoch_maps)
            times[name].append(time.perf_counter() - t0)
            train_times[name].append(json.loads((out / "summary.json").read_text())["wall_time_s"])
            folders[name] = out
            print(f"  repeat {rep}: {name:16s} {times[name][-1]:8.1f} s end to end, "
                  f"{train_times[name][-1]:8.1f} s training  (load {os.getloadavg()[0]:.1f})", flush=True)
    full = final_scores(folders["full"])
    d_full = dimension(full)
    t_full = statistics.median(times["full"])
    tt_full = statistics.median(train_times["full"])
    rows = []
    for name, cfg in variants:
        summary = json.loads((folders[name] / "summary.json").read_text())
        scores = final_scores(folders[name])
        d = dimension(scores)
        t, tt = statistics.median(times[name]), statistics.median(train_times[name])
        rows.append({
            "run": name, "coarse": cfg.adaptive_coarse if cfg.adaptive else None,
            "coarse_stride": coarse_stride(cfg.resolution, cfg.adaptive_coarse) if cfg.adaptive else None,
            "guard": cfg.adaptive_guard if cfg.adaptive else None,
            "fraction_trained": (summary.get("adaptive") or {}).get("fraction_trained", 1.0),
            "sign_agreement": agreement(full, scores),
            "pixels_differing": int(np.sum((full < 0) != (scores < 0))),
            "dimension": d,
            "dimension_difference": (d["dimension"] - d_full["dimension"])
            if d["dimension"] is not None and d_full["dimension"] is not None else None,
            "end_to_end_s": times[name], "training_s": train_times[name],
            "speedup_end_to_end": t_full / t, "speedup_training": tt_full / tt,
            "levels": (summary.get("adaptive") or {}).get("levels"), "folder": str(folders[name])})
    print(f"\n{args.preset} {base.resolution} x {base.resolution}, {base.steps} steps, window "
          f"{list(base.mnmx)}, {args.repeats} repeat(s), {_threads()} threads")
    print("| run | stride | trained | sign agreement | px differing | dimension [95% CI] | diff | "
          "end to end s | training s | speed-up end to end | training |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["dimension"]
        print(f"| {r['run']} | {r['coarse_stride'] or '-'} | {r['fraction_trained']:.1%} | "
              f"{r['sign_agreement']:.4%} | {r['pixels_differing']} | {fmt(d['dimension'])} "
              f"[{fmt(d['ci_low'])}, {fmt(d['ci_high'])}] | {fmt(r['dimension_difference'])} | "
              f"{statistics.median(r['end_to_end_s']):.1f} | {statistics.median(r['training_s']):.1f} | "
              f"{r['speedup_end_to_end']:.2f}x | {r['speedup_training']:.2f}x |")
    return {"preset": args.preset, "resolution": base.resolution, "steps": base.steps,
            "mnmx": list(base.mnmx), "repeats": args.repeats, "threads": _threads(),
            "loadavg_end": os.getloadavg(), "runs": rows}


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
    p.add_argument("--mnmx", type=float, nargs=4, default=None, help="window (default: the preset's)")
    p.add_argument("--coarse", type=int, nargs="+", default=[None],
                   help="adaptive_coarse value(s) (default: the config's)")
    p.add_argument("--guard", type=int, nargs="+", default=[None],
                   help="adaptive_guard value(s) (default: the config's)")
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
    defaults = build_config(args.preset)
    args.coarse = [c or defaults.adaptive_coarse for c in args.coarse]
    args.guard = [g if g is not None else defaults.adaptive_guard for g in args.guard]
    result = simulate(args) if args.simulate else end_to_end(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
