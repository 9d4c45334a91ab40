"""The three answers of an uncertainty comparison: the curve's dimension, the chaos fraction and
the chaotic band's scale eps*, each per unit, pooled per architecture and paired by seed.

The mixed estimator (`estimators.uncertainty`) reads each sample as ``f = A eps^(2 - D) + F``:

dimension
    ``D`` of the curve, above the chaotic band, with its 95% interval (refused where fewer than
    1.5 decades of eps lie above the band).
chaos fraction
    ``F`` of the sample's **deepest stage with a chaos floor**: the fraction of its base points,
    in the smallest squares the estimator zoomed to around the boundary, whose outcome flips
    under a move of a few rounding units; its 95% interval is the Wilson interval of those flips.
    The deepest stage, because it is the one nearest the boundary, where chaos decides outcomes;
    the stage's square side is recorded beside it, since ``F`` grows as the squares shrink onto
    the band.
eps*
    Where the fitted curve term equals ``F``: the band's width in window units, with its 95%
    bootstrap interval. The estimator gives it only with a fitted curve, so a unit whose ``D`` is
    refused has none.

A unit whose ``D`` is refused still gives its chaos fraction (and eps* where it has one). Each
quantity is pooled over seeds (`stats.pool`) and its paired difference taken by seed
(`stats.paired_difference`: bootstrap interval, sign-flip p-value, a verdict only with 3 pairs);
eps* on a log scale, so that its difference is a ratio. The transect method counts sign changes
at the coarse scales and has no chaos floor: it gives the dimension alone (`TRANSECT_NOTE`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from nnfractal.estimators.stats import LARGER, SMALLER, paired_difference, pool
from nnfractal.storage.records import JsonRecord

CHAOS = "chaos_fraction"
EPS_STAR = "eps_star"
QUANTITIES = (CHAOS, EPS_STAR)
TRANSECT_NOTE = ("the transect method measures only the coarse scales: sign changes along "
                 "segments count chaos as boundary, so it gives the dimension alone, with no "
                 "chaos fraction or eps* (use --method uncertainty with --floor-points for those)")
CHAOS_CHOICE = ("chaos fraction: F of each sample's deepest stage with a chaos floor (the "
                "smallest squares around the boundary), Wilson 95% interval of its flips")
EPS_STAR_CHOICE = ("eps*: where the fitted curve term equals F, window units, 95% bootstrap "
                   "interval; pooled and differenced on log10 eps*, so the difference is a ratio")


def chaos_of(estimate: dict) -> dict:
    """The chaos fraction of one sample's estimate (compare.json's compacted one or sample.json's
    whole one): ``fraction, ci_low, ci_high, stage, side, moved, ok, reason``."""
    floors = estimate.get("chaos_floor") or (estimate.get("extra") or {}).get("chaos_floor")
    source = estimate if "chaos_interval" in estimate else (estimate.get("extra") or {})
    moved = source.get("floor_points") or []
    intervals = source.get("chaos_interval") or []
    sides = source.get("stage_side") or []
    stages = [s for s in range(len(floors or [])) if s < len(moved) and moved[s] > 0]
    if not floors or not stages:
        return {"fraction": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": "no chaos floor measured (--floor-points 0, or no stage ran)"}
    s = stages[-1]
    low, high = intervals[s] if s < len(intervals) else (None, None)
    return {"fraction": float(floors[s]), "ci_low": low, "ci_high": high, "stage": s,
            "side": sides[s] if s < len(sides) else None, "moved": int(moved[s]), "ok": True,
            "reason": ""}


def eps_star_of(estimate: dict) -> dict:
    """eps* of one sample's estimate: ``eps_star, ci_low, ci_high, ok, reason``."""
    star = estimate.get("eps_star")
    if star is None or not star > 0:
        why = ("no curve fit (the dimension is refused), so no eps*" if not estimate.get("ok")
               else "no chaos measured, so no band")
        return {"eps_star": None, "ci_low": None, "ci_high": None, "ok": False, "reason": why}
    return {"eps_star": float(star), "ci_low": estimate.get("eps_star_low"),
            "ci_high": estimate.get("eps_star_high"), "ok": True, "reason": ""}


def _as_dimension(q: str, value: dict) -> dict:
    """A quantity in the shape `stats` pools (``dimension, ci_low, ci_high, ok, reason``); eps*
    as log10."""
    if q == CHAOS:
        return {"dimension": value["fraction"], "ci_low": value["ci_low"],
                "ci_high": value["ci_high"], "ok": value["ok"], "reason": value["reason"]}
    logs = [math.log10(v) if v else None for v in (value["eps_star"], value["ci_low"],
                                                  value["ci_high"])]
    return {"dimension": logs[0], "ci_low": logs[1], "ci_high": logs[2], "ok": value["ok"],
            "reason": value["reason"]}


def per_unit(estimate: dict) -> dict[str, dict]:
    """Both quantities of one unit."""
    return {CHAOS: chaos_of(estimate), EPS_STAR: eps_star_of(estimate)}


@dataclass(kw_only=True)
class QuantityGroup(JsonRecord):
    """One quantity at one depth: pooled per architecture, and the paired difference by seed.

    eps*'s ``pooled`` and ``difference`` are in log10 eps* (``pooled_eps_star`` and ``ratio``
    give them back in window units)."""
    quantity: str
    pooled: dict[str, dict]
    difference: dict
    sentence: str
    pooled_eps_star: dict[str, dict] = field(default_factory=dict)
    ratio: dict | None = None


def _unlog(p: dict) -> dict:
    if not p.get("ok"):
        return {"eps_star": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": p.get("reason", "")}
    return {"eps_star": 10 ** p["dimension"], "ci_low": 10 ** p["ci_low"],
            "ci_high": 10 ** p["ci_high"], "ok": True, "n_ok": p.get("n_ok"),
            "n_units": p.get("n_units"), "reason": p.get("reason", "")}


def analyse_quantity(q: str, values: dict[str, dict[int, dict]], presets,
                     labels: dict[str, str]) -> QuantityGroup:
    """`values`: preset -> seed index -> that unit's value of `q` (`per_unit`). Pooled over each
    architecture's seeds, differenced over the seeds both have."""
    a, b = presets
    as_dim = {p: {i: _as_dimension(q, v) for i, v in sorted(values[p].items())} for p in presets}
    what = "chaos fraction" if q == CHAOS else "eps*"
    pooled = {p: pool(list(as_dim[p].values()), seed=k + 1, what=what)
              for k, p in enumerate(presets)}
    pairs = [(as_dim[a][i], as_dim[b][i]) for i in sorted(set(as_dim[a]) & set(as_dim[b]))]
    diff = paired_difference(pairs, label_a=labels[a], label_b=labels[b], name_a=a, name_b=b,
                             what=what)
    group = QuantityGroup(quantity=q, pooled=pooled, difference=diff, sentence="")
    if q == EPS_STAR:
        group.pooled_eps_star = {p: _unlog(pooled[p]) for p in presets}
        if diff.get("ok"):
            group.ratio = {k: 10 ** diff[k] for k in ("estimate", "ci_low", "ci_high")}
    group.sentence = sentence(q, diff, labels[a], labels[b])
    return group


def sentence(q: str, diff: dict, label_a: str, label_b: str) -> str:
    """The verdict on one quantity in plain words, with its numbers."""
    verdict = diff.get("verdict")
    if q == CHAOS:
        num = (f" (difference {diff['estimate']:+.3f}, 95% interval {diff['ci_low']:+.3f} to "
               f"{diff['ci_high']:+.3f}, p = {_p(diff)})" if diff.get("ok") else "")
        if verdict in (SMALLER, LARGER):
            fewer = "fewer" if verdict == SMALLER else "more"
            return (f"{label_a} has a {verdict} chaos fraction than {label_b}{num}: {fewer} of "
                    "its outcomes near the boundary flip under a move of a few rounding units.")
        return (f"No difference between the chaos fractions of {label_a} and {label_b} is "
                f"detectable{num}{_why(diff)}.")
    num = (f" (eps* ratio x{10 ** diff['estimate']:.3g}, 95% interval x{10 ** diff['ci_low']:.3g}"
           f" to x{10 ** diff['ci_high']:.3g}, p = {_p(diff)})" if diff.get("ok") else "")
    if verdict in (SMALLER, LARGER):
        width = "narrower" if verdict == SMALLER else "wider"
        return (f"The chaotic band of {label_a} is {width} than that of {label_b}{num}: its "
                f"outcomes are {'more' if verdict == SMALLER else 'less'} predictable near the "
                "boundary.")
    return (f"No difference between the chaotic band widths (eps*) of {label_a} and {label_b} "
            f"is detectable{num}{_why(diff, 'x1')}.")


def _p(diff: dict) -> str:
    p = diff.get("p_permutation")
    return "n/a" if p is None else f"{p:.3g}"


def _why(diff: dict, nothing: str = "0") -> str:
    if diff.get("reason"):
        return f": {diff['reason']}"
    return f"; the interval includes {nothing}" if diff.get("ok") else ""


def analyse_quantities(units: list, presets, labels: dict[str, str]) -> dict[str, QuantityGroup]:
    """Both quantities at one depth from its units (anything with ``preset``, ``seed_index`` and
    a sampling ``estimate``)."""
    out = {}
    for q in QUANTITIES:
        values = {p: {u.seed_index: per_unit(u.estimate)[q] for u in units if u.preset == p}
                  for p in presets}
        out[q] = analyse_quantity(q, values, presets, labels)
    return out
