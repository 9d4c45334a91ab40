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

Boundaries wrapped in a chaotic band (``--bands``): Weierstrass and Takagi-Landsberg regions whose
points within a band of half-width w around the curve take the other side's outcome with
probability p, pseudo-randomly by their coordinates (``known_sets.banded_boundary``). Every case
runs the uncertainty exponent with a chaos floor and compares ``D`` with the curve's dimension and
``eps*`` with the band's crossover computed from the truth (``known_sets.band_crossover``); the
markdown table groups them (``--markdown``):

    python benchmarks/validate_sampling.py --bands --markdown bands.md --json bands.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from nnfractal.estimators.known_sets import (
    analytic_boundary,
    band_crossover,
    banded_boundary,
    rotated_boundary,
)
from nnfractal.estimators.sampling import (
    TRANSECT_COARSE,
    floor_points_for,
    transect_dimension,
    uncertainty_exponent,
)

NAMES = (["circle"] + [f"weierstrass-{d / 10:.1f}" for d in range(11, 20)]
         + [f"takagi-{d / 10:.1f}" for d in range(11, 20)])
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


BAND_FAMILIES = ("weierstrass", "takagi")
BAND_DIMS = (1.2, 1.5, 1.8)
BAND_WIDTHS = (1e-2, 1e-3, 1e-4, 1e-6, 1e-8)
BAND_FLIPS = (0.1, 0.3, 0.5)
BAND_DECADES = (0.0, 1.0)
MIN_ABOVE = 1.5               # decades between the band's crossover and the window's 0.1


def run_bands(budget: int, seeds: int, families=BAND_FAMILIES, dims=BAND_DIMS,
              widths=BAND_WIDTHS, flips=BAND_FLIPS, decades=BAND_DECADES,
              json_path=None) -> list[dict]:
    """One row per banded case: the estimate, the band's crossover from the truth, and how
    many decades of eps lie above it (below WINDOW_EPS = 0.1, the largest eps measured). With
    `json_path` the rows are written after every case, and cases already there are kept."""
    rows = []
    if json_path and os.path.exists(json_path):
        with open(json_path) as f:
            rows = json.load(f)
    done = {_band_key(r) for r in rows}
    for family in families:
        for dim in dims:
            name = f"{family}-{dim:.1f}"
            for width in widths:
                for flip in flips:
                    for dec in decades:
                        for seed in range(seeds):
                            if (name, width, flip, dec, seed) in done:
                                continue
                            rows.append(_band_case(name, width, flip, dec, seed, budget))
                            if json_path:
                                with open(json_path, "w") as f:
                                    json.dump(rows, f, indent=1)
    return rows


def _band_key(r):
    return (r["boundary"], r["width"], r["flip"], r["decades"], r["seed"])


def _band_case(name, width, flip, dec, seed, budget) -> dict:
    b = banded_boundary(name, width, flip, decades=dec, salt=seed)
    t = time.perf_counter()
    # `nnfractal sample`'s default floor points
    est = uncertainty_exponent(b.score, budget=budget, seed=seed,
                               floor_points=floor_points_for(budget))
    seconds = time.perf_counter() - t
    cross, info = band_crossover(b, seed=seed)
    above = float(np.log10(0.1 / cross)) if cross == cross else float("nan")
    star = est.eps_star
    r = {"boundary": name, "width": width, "flip": flip, "decades": dec, "seed": seed,
         "true": b.dimension, "ok": est.ok, "dimension": est.dimension,
         "ci": [est.ci_low, est.ci_high], "reason": est.reason,
         "covered": bool(est.ok and est.ci_low <= b.dimension <= est.ci_high),
         "error": (est.dimension - b.dimension) if est.ok else None,
         "eps_star": star, "eps_star_ci": [est.eps_star_low, est.eps_star_high],
         "crossover": cross, "above": above, "true_floor": info["floor"],
         "star_over_cross": star / cross if star and cross == cross else None,
         "star_covers": bool(star and est.eps_star_low is not None and cross == cross
                             and est.eps_star_low <= cross <= est.eps_star_high),
         "star_over_width": star / width if star else None,
         "chaos_fraction": [float(x) for x in est.chaos_fraction],
         "fit_decades": est.extra.get("fit_decades"), "evaluations": est.evaluations,
         "seconds": round(seconds, 2)}
    print(f"{b.name:34s} seed {seed}: "
          + (f"{r['dimension']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] "
             f"{'ok  ' if r['covered'] else 'MISS'} err {r['error']:+.3f}"
             if est.ok else "no dimension")
          + f"  eps* {_e(star)} / crossover {_e(cross)} ({above:.1f} decades above)", flush=True)
    return r


def _e(x):
    return "-" if x is None or x != x else f"{x:.1e}"


def _range(values, fmt):
    values = [v for v in values if v is not None and v == v]
    return f"{fmt.format(min(values))}..{fmt.format(max(values))}" if values else "-"


def bands_markdown(rows: list[dict], command: str) -> str:
    """The validation table: per curve and band kind, the cases with at least MIN_ABOVE decades
    above the band (covered / total, within 0.05, error range, eps* over the crossover), and
    what the estimator said below that."""
    out = [f"`{command}`", "",
           f"| curve | band | cases >= {MIN_ABOVE} decades above | D given | covered | within 0.05 | "
           "error range | eps* within x2 of the crossover | eps* / crossover | eps* interval "
           "holds it | eps* / w | below: refused / total |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["boundary"], r["decades"]) for r in rows},
                  key=lambda k: (k[0], k[1]))
    for name, dec in keys + [("all", None)]:
        sel = [r for r in rows if name == "all" or (r["boundary"], r["decades"]) == (name, dec)]
        acc = [r for r in sel if r["above"] >= MIN_ABOVE]
        low = [r for r in sel if not r["above"] >= MIN_ABOVE]
        ok = [r for r in acc if r["ok"]]
        band = "all" if dec is None else ("constant" if not dec else f"varying, {dec:g} decade")
        ratios = [r["star_over_cross"] for r in ok if r["star_over_cross"]]
        out.append(
            f"| {name} | {band} | {len(acc)} | {len(ok)}/{len(acc)} | "
            f"{sum(r['covered'] for r in acc)}/{len(acc)} | "
            f"{sum(abs(r['error']) <= 0.05 for r in ok)}/{len(acc)} | "
            f"{_range([r['error'] for r in ok], '{:+.3f}')} | "
            f"{sum(0.5 <= x <= 2 for x in ratios)}/{len(ratios)} | "
            f"{_range(ratios, '{:.2f}')} | "
            f"{sum(r.get('star_covers', False) for r in ok)}/{len(ratios)} | "
            f"{_range([r['star_over_width'] for r in ok], '{:.2g}')} | "
            f"{sum(not r['ok'] for r in low)}/{len(low)} |")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=1 << 18)
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per case (default 6; with --bands 1, a salt of the band too)")
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
    p.add_argument("--bands", action="store_true",
                   help="boundaries wrapped in chaotic bands (uncertainty exponent only)")
    p.add_argument("--families", nargs="+", default=list(BAND_FAMILIES))
    p.add_argument("--dims", type=float, nargs="+", default=list(BAND_DIMS))
    p.add_argument("--widths", type=float, nargs="+", default=list(BAND_WIDTHS))
    p.add_argument("--flips", type=float, nargs="+", default=list(BAND_FLIPS))
    p.add_argument("--band-decades", type=float, nargs="+", default=list(BAND_DECADES))
    p.add_argument("--markdown", help="with --bands: write the validation table here")
    p.add_argument("--table-only", action="store_true",
                   help="with --bands and --json: rebuild the table from the rows there")
    a = p.parse_args()
    if a.bands:
        if a.table_only:
            with open(a.json) as f:
                rows = json.load(f)
        else:
            rows = run_bands(a.budget, a.seeds or 1, a.families, a.dims,
                             a.widths, a.flips, a.band_decades, a.json)
        table = bands_markdown(rows, "python benchmarks/validate_sampling.py " + " ".join(
            x for x in sys.argv[1:] if x != "--table-only"))
        print(table)
        if a.markdown:
            with open(a.markdown, "w") as f:
                f.write(table)
        return
    rows = run(a.budget, a.seeds or 6, a.lines, a.placed, a.methods, a.first_seed, a.names,
               a.rotations, a.shifts, a.angle)
    summarise(rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
