"""Validate the sampling estimators on analytic boundaries of known dimension.

For every boundary (a circle, and regions under Weierstrass functions of dimension 1.1..1.9) and
several seeds, run the uncertainty exponent and the transect at a given budget and report each
estimate, whether its 95% interval holds the truth, the error, and the evaluations it cost.

    python benchmarks/validate_sampling.py --budget 262144 --seeds 6 --json out.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from nnfractal.known_sets import analytic_boundary
from nnfractal.sampling import transect_dimension, uncertainty_exponent

NAMES = ["circle"] + [f"weierstrass-{d / 10:.1f}" for d in range(11, 20)]
ACCEPTANCE = {"circle", "weierstrass-1.2", "weierstrass-1.4", "weierstrass-1.5",
              "weierstrass-1.6", "weierstrass-1.8"}


def run(budget: int, seeds: int, lines: int, placed: bool,
        methods=("uncertainty", "transect"), first_seed: int = 0) -> list[dict]:
    rows = []
    for name in NAMES:
        b = analytic_boundary(name)
        for seed in range(first_seed, first_seed + seeds):
            for method in methods:
                t = time.perf_counter()
                if method == "uncertainty":
                    est = uncertainty_exponent(b.score, budget=budget, seed=seed)
                else:
                    # chords through the window centre (default: placed by a coarse map)
                    est = transect_dimension(b.score, n_points=budget // lines, lines=lines,
                                             seed=seed, angle_deg=25.0 + 5 * seed,
                                             centre=None if placed else (0.5, 0.5))
                rows.append({"boundary": name, "true": b.dimension, "seed": seed,
                             "method": method, "ok": est.ok, "dimension": est.dimension,
                             "ci": [est.ci_low, est.ci_high], "evaluations": est.evaluations,
                             "covered": bool(est.ok and est.ci_low <= b.dimension <= est.ci_high),
                             "error": (est.dimension - b.dimension) if est.ok else None,
                             "seconds": round(time.perf_counter() - t, 2)})
                r = rows[-1]
                print(f"{method:11s} {name:16s} seed {seed}: "
                      + (f"{r['dimension']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] "
                         f"{'ok  ' if r['covered'] else 'MISS'} err {r['error']:+.3f}"
                         if est.ok else f"no estimate: {est.reason}")
                      + f"  ({est.evaluations} evaluations)", flush=True)
    return rows


def summarise(rows: list[dict]) -> None:
    print("\nmethod       boundary          coverage  max|err|  median half-width")
    for method in sorted({r["method"] for r in rows}, reverse=True):
        for group, names in (("acceptance", ACCEPTANCE), ("all", set(NAMES))):
            sel = [r for r in rows if r["method"] == method and r["boundary"] in names]
            ok = [r for r in sel if r["ok"]]
            cov = sum(r["covered"] for r in sel)
            err = max(abs(r["error"]) for r in ok) if ok else float("nan")
            hw = np.median([(r["ci"][1] - r["ci"][0]) / 2 for r in ok]) if ok else float("nan")
            print(f"{method:12s} {group:16s} {cov:3d}/{len(sel):<4d} {err:8.3f}  {hw:8.3f}")
        for name in NAMES:
            sel = [r for r in rows if r["method"] == method and r["boundary"] == name]
            ok = [r for r in sel if r["ok"]]
            errs = [r["error"] for r in ok]
            print(f"    {name:16s} {sum(r['covered'] for r in sel)}/{len(sel)} covered, "
                  f"errors {min(errs) if errs else float('nan'):+.3f}..{max(errs) if errs else float('nan'):+.3f}, "
                  f"evaluations {max(r['evaluations'] for r in sel)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=1 << 18)
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--lines", type=int, default=16, help="transect segments")
    p.add_argument("--placed", action="store_true",
                   help="transects placed by their coarse map (default: through the centre)")
    p.add_argument("--methods", nargs="+", default=["uncertainty", "transect"])
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds first..first+seeds-1 (a transect's angle is 25 + 5 x seed degrees: "
                   "--first-seed 6 checks 55..80 degrees, which seeds 0-5 never see)")
    p.add_argument("--json", help="write every row here")
    a = p.parse_args()
    rows = run(a.budget, a.seeds, a.lines, a.placed, a.methods, a.first_seed)
    summarise(rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
