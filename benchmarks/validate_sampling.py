"""Validate the sampling estimators on analytic boundaries of known dimension.

For every boundary (a circle, and regions under Weierstrass functions of dimension 1.1..1.9) and
several seeds, run the uncertainty exponent and the transect at a given budget and report each
estimate, whether its 95% interval holds the truth, the error, and the evaluations it cost.

    python benchmarks/validate_sampling.py --budget 262144 --seeds 6 --json out.json

Boundaries of unknown orientation: ``--rotations`` turns every boundary about the window's
centre (``known_sets.rotated_boundary``), ``--shifts`` slides the Weierstrass curves along their
own axis first (another stretch of the curve), and ``--angle auto`` runs the transect as
`nnfractal sample` does by default (placed and oriented by its coarse map, which counts in the
budget). The transect's default orientation was checked with

    python benchmarks/validate_sampling.py --methods transect --angle auto --seeds 1 \\
        --rotations $(seq 0 5 175) --shifts 0 0.31
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from nnfractal.estimators.known_sets import analytic_boundary, rotated_boundary
from nnfractal.estimators.sampling import TRANSECT_COARSE, transect_dimension, uncertainty_exponent

NAMES = ["circle"] + [f"weierstrass-{d / 10:.1f}" for d in range(11, 20)]
ACCEPTANCE = {"circle", "weierstrass-1.2", "weierstrass-1.4", "weierstrass-1.5",
              "weierstrass-1.6", "weierstrass-1.8"}
BUCKET_DEG = 45           # orientations are summarised in buckets of this width


def transect_kwargs(angle: str, budget: int, lines: int, placed: bool, seed: int) -> dict:
    """The transect's settings: 'seed' = 25 + 5 x seed degrees (through the window centre unless
    placed), 'auto' = placed and oriented by the coarse map, a number = that angle, placed."""
    if angle == "seed":
        return {"n_points": budget // lines, "angle_deg": 25.0 + 5 * seed,
                "centre": None if placed else (0.5, 0.5)}
    # the coarse map that places the chords is part of the budget
    points = (budget - TRANSECT_COARSE ** 2) // lines
    return {"n_points": points, "angle_deg": None if angle == "auto" else float(angle)}


def run(budget: int, seeds: int, lines: int, placed: bool,
        methods=("uncertainty", "transect"), first_seed: int = 0, names=NAMES,
        rotations=(0.0,), shifts=(0.0,), angle: str = "seed") -> list[dict]:
    rows = []
    for name in names:
        base = analytic_boundary(name)
        for rotation in rotations:
            for shift in shifts:
                b = rotated_boundary(base, rotation, shift=shift) \
                    if rotation or shift else base
                for seed in range(first_seed, first_seed + seeds):
                    for method in methods:
                        rows.append(_one(b, name, method, budget, lines, placed, seed, angle,
                                         rotation, shift))
    return rows


def _one(b, name, method, budget, lines, placed, seed, angle, rotation, shift) -> dict:
    t = time.perf_counter()
    if method == "uncertainty":
        est = uncertainty_exponent(b.score, budget=budget, seed=seed)
    else:
        est = transect_dimension(b.score, lines=lines, seed=seed,
                                 **transect_kwargs(angle, budget, lines, placed, seed))
    r = {"boundary": name, "rotation": rotation, "shift": shift, "true": b.dimension,
         "seed": seed, "method": method, "ok": est.ok, "dimension": est.dimension,
         "ci": [est.ci_low, est.ci_high], "evaluations": est.evaluations,
         "covered": bool(est.ok and est.ci_low <= b.dimension <= est.ci_high),
         "error": (est.dimension - b.dimension) if est.ok else None,
         "angle_deg": est.extra.get("angle_deg"), "angle_source": est.extra.get("angle_source"),
         "seconds": round(time.perf_counter() - t, 2)}
    print(f"{method:11s} {b.name:22s} seed {seed}: "
          + (f"{r['dimension']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] "
             f"{'ok  ' if r['covered'] else 'MISS'} err {r['error']:+.3f}"
             if est.ok else f"no estimate: {est.reason}")
          + f"  ({est.evaluations} evaluations)", flush=True)
    return r


def _line(label: str, sel: list[dict]) -> str:
    ok = [r for r in sel if r["ok"]]
    errs = [r["error"] for r in ok]
    span = f"{min(errs):+.3f}..{max(errs):+.3f}" if errs else "none"
    return (f"    {label:28s} {sum(r['covered'] for r in sel)}/{len(sel)} covered, "
            f"{sum(abs(e) <= 0.05 for e in errs)}/{len(sel)} within 0.05, errors {span}, "
            f"evaluations {max(r['evaluations'] for r in sel)}")


def summarise(rows: list[dict]) -> None:
    print("\nmethod       boundary          coverage  max|err|  median half-width")
    rotated = len({r["rotation"] for r in rows}) > 1
    for method in sorted({r["method"] for r in rows}, reverse=True):
        names = sorted({r["boundary"] for r in rows}, key=NAMES.index)
        for group, members in (("acceptance", ACCEPTANCE), ("all", set(names))):
            sel = [r for r in rows if r["method"] == method and r["boundary"] in members]
            ok = [r for r in sel if r["ok"]]
            if not sel:
                continue
            cov = sum(r["covered"] for r in sel)
            err = max(abs(r["error"]) for r in ok) if ok else float("nan")
            hw = np.median([(r["ci"][1] - r["ci"][0]) / 2 for r in ok]) if ok else float("nan")
            print(f"{method:12s} {group:16s} {cov:3d}/{len(sel):<4d} {err:8.3f}  {hw:8.3f}")
        for name in names:
            sel = [r for r in rows if r["method"] == method and r["boundary"] == name]
            print(_line(name, sel))
            if rotated:
                for lo in range(0, 180, BUCKET_DEG):
                    part = [r for r in sel if lo <= r["rotation"] % 180 < lo + BUCKET_DEG]
                    if part:
                        print("  " + _line(f"rotated {lo}-{lo + BUCKET_DEG} deg", part))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=1 << 18)
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--lines", type=int, default=16, help="transect segments")
    p.add_argument("--placed", action="store_true",
                   help="with --angle seed: transects placed by their coarse map (default: "
                   "through the centre)")
    p.add_argument("--methods", nargs="+", default=["uncertainty", "transect"])
    p.add_argument("--names", nargs="+", default=NAMES, choices=NAMES,
                   help="boundaries (default: all)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds first..first+seeds-1 (with --angle seed a transect's angle is "
                   "25 + 5 x seed degrees: --first-seed 6 checks 55..80 degrees)")
    p.add_argument("--angle", default="seed",
                   help="transect angle: 'seed' (25 + 5 x seed degrees), 'auto' (the default "
                   "of nnfractal sample: along the boundary's trend, placed by the coarse map), "
                   "or degrees (placed by the coarse map)")
    p.add_argument("--rotations", type=float, nargs="+", default=[0.0],
                   help="turn every boundary by these angles, degrees, about the window centre")
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0],
                   help="slide every boundary by these distances along its own axis first")
    p.add_argument("--json", help="write every row here")
    a = p.parse_args()
    rows = run(a.budget, a.seeds, a.lines, a.placed, a.methods, a.first_seed, a.names,
               a.rotations, a.shifts, a.angle)
    summarise(rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
