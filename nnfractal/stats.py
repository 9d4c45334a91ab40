"""Pooling dimension estimates and comparing two architectures, with 95% intervals.

The inputs are box-counting estimates (``DimensionEstimate.to_dict()`` or dicts with the keys
``dimension``, ``ci_low``, ``ci_high``, ``ok``), one per *unit*: a trained grid at one
initialisation seed and one window. Units whose estimate is not ok (no boundary, or a boundary too
short for a dimension at this resolution) are left out and counted.

Pooled dimension of one architecture
    The mean of its units' dimensions. Its 95% interval comes from a two-level bootstrap:

    1. *between units* -- the units are resampled with replacement (the spread over seeds and
       windows: different initial weights, different parts of the boundary);
    2. *within a unit* -- each resampled dimension is moved by ``z * sigma``, where ``sigma`` is
       the unit's lower or upper half-interval / 1.96 (the side follows the sign of ``z``: the
       estimator's intervals are asymmetric) and ``z ~ N(0, 1)`` is drawn **once per replicate for
       all units of the architecture**. The estimator's interval is mostly systematic (fit-range
       sensitivity, pixelisation; see ``fractal.estimate_dimension``) and largely shared by grids
       of one architecture at one resolution, so averaging more grids must not shrink it. This is
       the same reading as the zoom's pooled interval (``zoom.POOLED_METHOD``).

    The interval is the 2.5-97.5 percentile of the replicated means.

Difference between architectures
    ``D_A - D_B`` of the pooled means. Replicates resample A's and B's units independently with
    independent ``z`` for each architecture, so the interval holds both architectures' between-unit
    spread and both estimators' systematic errors. The verdict is read from the interval:

    * ``"smaller"``: the whole interval is below 0 (A's boundary has the smaller dimension),
    * ``"larger"``: the whole interval is above 0,
    * ``"no difference detectable at this resolution"`` otherwise, or when either architecture has
      no usable estimate.

    A permutation test of the unit means (A's and B's ok units shuffled between the labels) is
    reported beside it as ``p_permutation``; it looks at the seed/window spread only and ignores
    each estimate's own interval, so it can be small while the verdict says no difference.

Everything is deterministic for a given ``seed``.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

__all__ = ["SMALLER", "LARGER", "NO_DIFFERENCE", "pool", "difference", "verdict_of",
           "verdict_sentence", "POOL_METHOD", "DIFFERENCE_METHOD"]

SMALLER = "smaller"
LARGER = "larger"
NO_DIFFERENCE = "no difference detectable at this resolution"

N_BOOT = 4000
N_PERM = 4000

POOL_METHOD = (
    "mean of the units' box-counting dimensions (unit = one grid: one seed, one window); 95% "
    "interval: two-level bootstrap, units resampled with replacement, and every replicate shifted "
    "by z times each unit's own half-interval/1.96 with one z ~ N(0,1) shared by all units of the "
    "architecture (the estimator's error is mostly systematic, so more grids do not shrink it)")
DIFFERENCE_METHOD = (
    "D_A - D_B of the pooled means; 95% interval: the two-level bootstrap of both architectures, "
    "independently; verdict 'smaller'/'larger' when the interval excludes 0, otherwise 'no "
    "difference detectable at this resolution'. p_permutation: permutation test of the unit "
    "dimensions between the two labels (seed/window spread only)")


def _get(est, key, default=None):
    if isinstance(est, Mapping):
        return est.get(key, default)
    return getattr(est, key, default)


def _usable(estimates: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[str]]:
    """Dimensions, lower and upper sigmas of the ok estimates; total count; reasons of the rest."""
    d, s_lo, s_hi, reasons, n = [], [], [], [], 0
    for est in estimates:
        n += 1
        dim = _get(est, "dimension")
        if not _get(est, "ok", dim is not None) or dim is None or not math.isfinite(dim):
            reasons.append(str(_get(est, "reason", "") or "no estimate"))
            continue
        lo = _get(est, "ci_low")
        hi = _get(est, "ci_high")
        lo = dim if lo is None or not math.isfinite(lo) else min(lo, dim)
        hi = dim if hi is None or not math.isfinite(hi) else max(hi, dim)
        d.append(float(dim))
        s_lo.append((dim - lo) / 1.96)
        s_hi.append((hi - dim) / 1.96)
    return np.array(d), np.array(s_lo), np.array(s_hi), n, reasons


def _replicates(d: np.ndarray, s_lo: np.ndarray, s_hi: np.ndarray, n_boot: int,
                rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the pooled mean (see the module docstring)."""
    k = d.size
    pick = rng.integers(0, k, size=(n_boot, k))
    z = rng.standard_normal(n_boot)[:, None]
    shift = np.where(z >= 0, z * s_hi[pick], z * s_lo[pick])
    return (d[pick] + shift).mean(axis=1)


def _reason_text(reasons: list[str]) -> str:
    uniq = sorted(set(reasons))
    return "; ".join(uniq) if uniq else "no grids"


def pool(estimates: Iterable, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Pooled dimension of one architecture's units with a 95% interval.

    Returns a JSON-safe dict: ``dimension, ci_low, ci_high, ok, reason, n_units, n_ok,
    between_sd`` (standard deviation of the ok units' dimensions, None below 2),
    ``mean_half_width`` (mean half-width of their own intervals) and ``method``.
    """
    d, s_lo, s_hi, n, reasons = _usable(estimates)
    out = {"n_units": n, "n_ok": int(d.size), "method": POOL_METHOD}
    if d.size == 0:
        return {**out, "dimension": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": f"no grid has a dimension estimate ({_reason_text(reasons)})",
                "between_sd": None, "mean_half_width": None}
    rep = _replicates(d, s_lo, s_hi, n_boot, np.random.default_rng(seed))
    lo, hi = np.percentile(rep, [2.5, 97.5])
    dim = float(d.mean())
    return {**out, "dimension": dim, "ci_low": float(min(lo, dim)), "ci_high": float(max(hi, dim)),
            "ok": True, "reason": "" if not reasons else
            f"{len(reasons)} of {n} grids without an estimate ({_reason_text(reasons)})",
            "between_sd": float(d.std(ddof=1)) if d.size > 1 else None,
            "mean_half_width": float(np.mean((s_lo + s_hi) * 1.96 / 2))}


def verdict_of(ci_low: float | None, ci_high: float | None) -> str:
    """'smaller' if the interval of D_A - D_B lies below 0, 'larger' above, else no difference."""
    if ci_low is None or ci_high is None:
        return NO_DIFFERENCE
    if ci_high < 0:
        return SMALLER
    if ci_low > 0:
        return LARGER
    return NO_DIFFERENCE


def verdict_sentence(verdict: str, label_a: str, label_b: str, diff: dict | None = None) -> str:
    """The verdict in plain words, e.g. 'ResNet-20's boundary has a smaller dimension than ...'."""
    if diff is not None and diff.get("estimate") is not None:
        num = (f" (difference {diff['estimate']:+.3f}, 95% interval "
               f"{diff['ci_low']:+.3f} to {diff['ci_high']:+.3f})")
    else:
        num = ""
    if verdict == SMALLER:
        return f"The boundary of {label_a} has a smaller fractal dimension than that of {label_b}{num}."
    if verdict == LARGER:
        return f"The boundary of {label_a} has a larger fractal dimension than that of {label_b}{num}."
    why = ""
    if diff is not None and diff.get("reason"):
        why = f": {diff['reason']}"
    elif num:
        why = "; the interval includes 0"
    return (f"No difference between the boundary dimensions of {label_a} and {label_b} is "
            f"detectable at this resolution{num}{why}.")


def _permutation_p(a: np.ndarray, b: np.ndarray, n_perm: int, rng: np.random.Generator) -> float | None:
    """Two-sided permutation p-value of mean(a) - mean(b); exact when there are few splits."""
    if a.size == 0 or b.size == 0 or a.size + b.size < 3:
        return None
    both = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    n, k = both.size, a.size
    tol = 1e-12 * max(1.0, observed)
    if math.comb(n, k) <= n_perm:
        from itertools import combinations
        combos = np.array(list(combinations(range(n), k)))
        sum_a = both[combos].sum(axis=1)
        stats = np.abs(sum_a / k - (both.sum() - sum_a) / (n - k))
        return float(np.mean(stats >= observed - tol))
    perm = np.argsort(rng.random((n_perm, n)), axis=1)
    shuffled = both[perm]
    stats = np.abs(shuffled[:, :k].mean(axis=1) - shuffled[:, k:].mean(axis=1))
    return float((np.sum(stats >= observed - tol) + 1) / (n_perm + 1))


def difference(estimates_a: Iterable, estimates_b: Iterable, *, label_a: str = "A",
               label_b: str = "B", name_a: str | None = None, name_b: str | None = None,
               n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """D_A - D_B with a 95% interval, a verdict and a sentence (see the module docstring).

    `label_a`/`label_b` name the architectures in the sentence, `name_a`/`name_b` (default: the
    labels) in the shorter reason given when one has no estimate.

    Returns a JSON-safe dict: ``estimate, ci_low, ci_high, ok, reason, verdict, sentence,
    p_permutation, n_ok_a, n_ok_b, method``.
    """
    da, la, ha, na, ra = _usable(estimates_a)
    db, lb, hb, nb, rb = _usable(estimates_b)
    out = {"n_units_a": na, "n_units_b": nb, "n_ok_a": int(da.size), "n_ok_b": int(db.size),
           "method": DIFFERENCE_METHOD}
    name_a, name_b = name_a or label_a, name_b or label_b
    missing = [(lab, _reason_text(r)) for lab, d, r in ((name_a, da, ra), (name_b, db, rb))
               if d.size == 0]
    if len(missing) == 2 and missing[0][1] == missing[1][1]:
        missing = [f"neither has a dimension estimate ({missing[0][1]})"]
    else:
        missing = [f"{lab} has no dimension estimate ({why})" for lab, why in missing]
    if missing:
        diff = {**out, "estimate": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": "; ".join(missing), "p_permutation": None}
    else:
        rng = np.random.default_rng(seed)
        rep = _replicates(da, la, ha, n_boot, rng) - _replicates(db, lb, hb, n_boot, rng)
        est = float(da.mean() - db.mean())
        lo, hi = np.percentile(rep, [2.5, 97.5])
        diff = {**out, "estimate": est, "ci_low": float(min(lo, est)),
                "ci_high": float(max(hi, est)), "ok": True, "reason": "",
                "p_permutation": _permutation_p(da, db, N_PERM, rng)}
    diff["verdict"] = verdict_of(diff["ci_low"], diff["ci_high"])
    diff["sentence"] = verdict_sentence(diff["verdict"], label_a, label_b, diff)
    return diff
