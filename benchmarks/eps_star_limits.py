"""How well eps* (the band's scale) can be read at a budget: its 95% interval taken apart, and the
same samples refitted with the flip probability p known exactly.

For each banded case of the validation (``validate_sampling.py --bands``: the curve's D, the
band's half-width w, flip probability p and variation), the stages are drawn once
(:func:`nnfractal.estimators.uncertainty.draw_stages`, the default floor points) and fitted as
the estimator does. eps*'s 95% interval is then recomputed by bootstrap replicates that each
redraw less than the estimator's:

- ``estimator``: the squares resampled, the hit threshold, the fit window and the fade ``k`` of
  the chaos term drawn (the interval the estimator reports);
- ``fade fixed``: ``k = 1`` in every replicate;
- ``resampling``: ``k = 1``, the 16-hit threshold and no window: the sampling noise alone;
- ``floors fixed``: as ``resampling``, with every stage's chaos floor kept at its measured value.

Each is summarised by the interval's half-width as a factor (``sqrt(high / low)``) and the
spread of ``ln eps*`` over the replicates. The sampling noise scales as ``budget^(-1/2)``: the
budget at which the ``resampling`` half-width reaches a factor 2 is printed per case.

``--oracle`` also refits every case with chaos terms that use the true p (``r = 2 p (1 - p)``,
the fraction of a band's points that flip under a move): the band model's in-band limit
``f = F + (1 - 2 r) q``, clipped at 0 where the curve dominates (``linear``); the estimator's
fade with ``k = 2 r``, its slope at small q (``fade 2r``); and no chaos term above the band
(``none``). An estimator that measured p (several moves of each floor point) could do no better
than these.

    python benchmarks/eps_star_limits.py --dims 1.8 --oracle --json eps_star.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import time

import numpy as np

from nnfractal.estimators import uncertainty as unc
from nnfractal.estimators.known_sets import band_crossover, banded_boundary
from nnfractal.estimators.sampling_fit import percentile_interval, small_cap

MODES = ("estimator", "fade fixed", "resampling", "floors fixed")
ORACLES = ("linear", "fade 2r", "none")
MIN_ABOVE = 1.5          # decades above the band for a case to count (as in the validation)


def _main_fit(stages, squares):
    """The estimator's fit on all the data: (fit, counts, keep, cap)."""
    counts = unc._counts(stages, squares)
    keep = unc._above_band(counts, True)
    every = unc._curve_fit_mask(counts, keep, True)
    zoomed = np.array([st.kind != "window" for st in stages])[counts.stage]
    cap = small_cap(counts.scales, every, every & zoomed)
    return unc._curve_fit(counts, unc.MIN_HITS, keep, cap=cap), counts, keep, cap


def _replicate(stages, squares, keep, cap, rng, mode, full):
    """One bootstrap replicate's log10 eps* (None where the fit or eps* fails)."""
    pick = [rng.integers(0, len(sq[1]), len(sq[1])) for sq in squares]
    counts = unc._counts(stages, squares, pick)
    if mode in ("estimator", "fade fixed"):
        min_hits = int(round(math.exp(rng.uniform(math.log(8), math.log(32)))))
        fade = rng.uniform(*unc.CHAOS_FADE_RANGE) if mode == "estimator" else 1.0
        window = rng.random(2)
    else:
        min_hits, fade, window = unc.MIN_HITS, 1.0, None
    if mode == "floors fixed":
        counts.moved, counts.flips = full.moved, full.flips
    fit = unc._curve_fit(counts, min_hits, keep, window, cap, True, fade)
    star = None if fit is None else fit.eps_star(counts)
    return math.log10(star) if star else None


def interval_factors(stages, n_boot, seed):
    """eps* and, per mode, (half-width factor, sd of ln eps*) of its bootstrap interval."""
    squares = [st.per_square() for st in stages]
    fit, counts, keep, cap = _main_fit(stages, squares)
    star = None if fit is None else fit.eps_star(counts)
    if star is None:
        return None, None, {}
    out = {}
    for mode in MODES:
        rng = np.random.default_rng([int(seed), 0x5EED])
        logs = [x for x in (_replicate(stages, squares, keep, cap, rng, mode, counts)
                            for _ in range(n_boot)) if x is not None]
        ci = percentile_interval(math.log10(star), logs)
        if ci is not None:
            out[mode] = (10 ** ((ci[1] - ci[0]) / 2), float(np.std(logs) * math.log(10)))
    return fit.dimension, star, out


@contextlib.contextmanager
def oracle_chaos(kind, r):
    """Swap the estimator's chaos term for one that knows ``r = 2 p (1 - p)``."""
    curve, chaos = unc._curve, unc._chaos_term

    def linear_curve(counts, with_chaos, fade=None):
        f = counts.fraction
        floor = counts.floor if with_chaos else np.zeros(len(counts.moved))
        at = floor[counts.stage]
        inside = (f - at) / (1 - 2 * r) if 1 - 2 * r > 1e-9 else np.zeros(len(f))
        q = np.where(f <= at / (2 * r), inside, f)
        return f, at, np.where(f > at, q, 0.0), floor

    if kind == "linear":
        unc._curve = linear_curve
        unc._chaos_term = lambda at, q, fade: np.maximum(at - 2 * r * q, 0.0)
    elif kind == "fade 2r":
        unc._curve = lambda counts, c, fade=None: curve(counts, c, 2 * r)
        unc._chaos_term = lambda at, q, fade: chaos(at, q, 2 * r)
    elif kind == "none":
        unc._curve = lambda counts, c, fade=None: curve(counts, c, 1e12)
    try:
        yield
    finally:
        unc._curve, unc._chaos_term = curve, chaos


def oracle_fits(stages, flip):
    """(D, eps*) of the fit with each oracle chaos term (None where it fails)."""
    squares = [st.per_square() for st in stages]
    out = {}
    for kind in ORACLES:
        with oracle_chaos(kind, 2 * flip * (1 - flip)):
            fit, counts, _, _ = _main_fit(stages, squares)
            star = None if fit is None else fit.eps_star(counts)
            out[kind] = (None, None) if fit is None else (fit.dimension, star)
    return out


def run_case(name, width, flip, dec, seed, budget, n_boot, oracle):
    b = banded_boundary(name, width, flip, decades=dec, salt=seed)
    t = time.perf_counter()
    stages, _, _ = unc.draw_stages(b.score, budget=budget, seed=seed,
                                   floor_points=unc.floor_points_for(budget))
    cross, _ = band_crossover(b, seed=seed)
    row = {"boundary": name, "width": width, "flip": flip, "decades": dec, "seed": seed,
           "true": b.dimension, "crossover": cross,
           "above": float(np.log10(0.1 / cross)) if cross == cross else float("nan")}
    dim, star, modes = interval_factors(stages or [], n_boot, seed) if stages else (None, None,
                                                                                  {})
    row.update(dimension=dim, eps_star=star, modes=modes)
    if oracle and stages:
        row["oracle"] = oracle_fits(stages, flip)
    row["seconds"] = round(time.perf_counter() - t, 1)
    print(f"{b.name:34s} seed {seed}: "
          + (f"D {dim:.3f} eps*/crossover {star / cross:.2f} | " if star else "no eps* | ")
          + " | ".join(f"{m} x{h:.2f}" for m, (h, _) in modes.items()), flush=True)
    return row


def _ratios(rows, get):
    return np.array([get(r) / r["crossover"] for r in rows if get(r)])


def summary(rows, budget):
    """Per true D: the interval factors (median, range, cases wider than x2), the budget at
    which the sampling noise alone would give x2, and eps* within x2 per flip group."""
    lines = []
    for dim in sorted({r["true"] for r in rows}):
        sel = [r for r in rows if r["true"] == dim and r["above"] >= MIN_ABOVE and r["eps_star"]]
        if not sel:
            continue
        lines.append(f"D = {dim}: {len(sel)} cases with eps* and >= {MIN_ABOVE} decades above")
        for mode in MODES:
            h = np.array([r["modes"][mode][0] for r in sel if mode in r["modes"]])
            sd = np.array([r["modes"][mode][1] for r in sel if mode in r["modes"]])
            lines.append(f"  {mode:12s} half-width x{np.median(h):.2f} (x{h.min():.2f}..x"
                         f"{h.max():.2f}), wider than x2 in {(h > 2).sum()}/{len(h)}; sd(ln eps*)"
                         f" median {np.median(sd):.2f}, 90th percentile "
                         f"{np.percentile(sd, 90):.2f}")
        sd = np.array([r["modes"]["resampling"][1] for r in sel if "resampling" in r["modes"]])
        need = budget * (np.percentile(sd, [50, 90]) / (math.log(2) / 1.96)) ** 2
        lines.append(f"  the sampling noise's half-width reaches x2 at about {need[0]:,.0f} "
                     f"evaluations (median case), {need[1]:,.0f} (90th percentile)")
        fits = [("estimator", lambda r: r["eps_star"])] + [
            (k, lambda r, k=k: (r.get("oracle") or {}).get(k, (None, None))[1]) for k in ORACLES]
        for label, get in fits:
            parts = []
            for flips in ((0.1,), (0.3, 0.5)):
                x = _ratios([r for r in sel if r["flip"] in flips], get)
                if len(x):
                    parts.append(f"p {'/'.join(map(str, flips))}: within x2 "
                                 f"{((x >= 0.5) & (x <= 2)).sum()}/{len(x)}, geometric mean "
                                 f"x{math.exp(np.log(x).mean()):.2f}")
            if parts:
                lines.append(f"  eps* / crossover, {label:9s}: " + "; ".join(parts))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=1 << 18)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--families", nargs="+", default=["weierstrass", "takagi"])
    p.add_argument("--dims", type=float, nargs="+", default=[1.8])
    p.add_argument("--widths", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4, 1e-6, 1e-8])
    p.add_argument("--flips", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    p.add_argument("--band-decades", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--oracle", action="store_true", help="also refit with the true p")
    p.add_argument("--json", help="write every row here")
    a = p.parse_args()
    rows = [run_case(f"{fam}-{dim:.1f}", w, flip, dec, seed, a.budget, a.n_boot, a.oracle)
            for fam in a.families for dim in a.dims for w in a.widths for flip in a.flips
            for dec in a.band_decades for seed in range(a.seeds)]
    print(summary(rows, a.budget))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
