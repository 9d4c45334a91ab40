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
       the same reading as the zoom's pooled interval (``zoom_result.POOLED_METHOD``).

    The interval is the 2.5-97.5 percentile of the replicated means.

Difference between architectures
    ``D_A - D_B``, matched by stratum (the window, in a comparison): the mean over the windows
    where both architectures have an estimate of the difference of their mean dimensions there.
    (The dimension may depend on magnification, and a window only one architecture could measure
    would otherwise mix magnifications; without strata it is simply the difference of the pooled
    means.) Replicates resample A's and B's units independently within each window, with one
    ``z`` per architecture, so the interval holds both architectures' between-unit spread and both
    estimators' systematic errors. The verdict is read from the interval:

    * ``"smaller"``: the whole interval is below 0 (A's boundary has the smaller dimension),
    * ``"larger"``: the whole interval is above 0,
    * ``"no difference detectable at this resolution"`` otherwise, when either architecture has
      no usable estimate, or when either has fewer than ``MIN_GRIDS`` (3) usable grids in the
      matched windows (a bootstrap over two grids cannot see their spread; the estimate and its
      interval are still reported, with the reason).

    A permutation test of the unit means (A's and B's ok units shuffled between the labels) is
    reported beside it as ``p_permutation``; it looks at the seed/window spread only and ignores
    each estimate's own interval, so it can be small while the verdict says no difference.

Everything is deterministic for a given ``seed``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["SMALLER", "LARGER", "NO_DIFFERENCE", "pool", "difference", "paired_difference",
           "verdict_of",
           "verdict_sentence", "POOL_METHOD", "DIFFERENCE_METHOD"]

SMALLER = "smaller"
LARGER = "larger"
NO_DIFFERENCE = "no difference detectable at this resolution"

N_BOOT = 4000
N_PERM = 4000
MIN_GRIDS = 3       # grids with an estimate per architecture (in the matched windows) for a claim

POOL_METHOD = (
    "mean of the units' box-counting dimensions (unit = one grid: one seed, one window); 95% "
    "interval: two-level bootstrap, units resampled with replacement, and every replicate shifted "
    "by z times each unit's own half-interval/1.96 with one z ~ N(0,1) shared by all units of the "
    "architecture (the estimator's error is mostly systematic, so more grids do not shrink it)")
POOL_METHOD_OF = (  # the same pooling of another quantity (`pool(..., what=...)`)
    "mean of the units' {what}s (unit = one sample: one seed); 95% interval: two-level "
    "bootstrap, units resampled with replacement, and every replicate shifted by z times each "
    "unit's own half-interval/1.96 with one z ~ N(0,1) shared by all units of the architecture")
DIFFERENCE_METHOD = (
    "D_A - D_B: mean over the windows where both architectures have estimates of the difference "
    "of their mean dimensions (matched by window, so magnifications are not mixed); 95% interval: "
    "the two-level bootstrap of both architectures, independently, within each window, with one "
    "systematic shift per architecture; verdict 'smaller'/'larger' when the interval excludes 0, "
    "otherwise 'no difference detectable at this resolution'. p_permutation: permutation test of the grid "
    "dimensions between the two labels within each window (seed/window spread only)")


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
                rng: np.random.Generator, z: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap replicates of the pooled mean (see the module docstring).

    `z` (n_boot, 1): the per-replicate systematic shift in units of each estimate's sigma; drawn
    here unless given (one draw shared by several strata of the same architecture).
    """
    k = d.size
    pick = rng.integers(0, k, size=(n_boot, k))
    if z is None:
        z = rng.standard_normal(n_boot)[:, None]
    shift = np.where(z >= 0, z * s_hi[pick], z * s_lo[pick])
    return (d[pick] + shift).mean(axis=1)


def _reason_text(reasons: list[str]) -> str:
    uniq = sorted(set(reasons))
    return "; ".join(uniq) if uniq else "no grids"


def pool(estimates: Iterable, *, n_boot: int = N_BOOT, seed: int = 0,
         what: str | None = None) -> dict:
    """Pooled dimension of one architecture's units with a 95% interval.

    `what` names another quantity pooled the same way (e.g. 'chaos fraction', with its value
    and interval in the estimates' dimension fields) in ``method`` and the reasons; None: box
    dimensions of grids.

    Returns a JSON-safe dict: ``dimension, ci_low, ci_high, ok, reason, n_units, n_ok,
    between_sd`` (standard deviation of the ok units' dimensions, None below 2),
    ``mean_half_width`` (mean half-width of their own intervals) and ``method``.
    """
    d, s_lo, s_hi, n, reasons = _usable(estimates)
    method = POOL_METHOD if what is None else POOL_METHOD_OF.format(what=what)
    none_have = ("no grid has a dimension estimate" if what is None
                 else f"no sample has its {what}")
    without = "grids without an estimate" if what is None else f"samples without their {what}"
    out = {"n_units": n, "n_ok": int(d.size), "method": method}
    if d.size == 0:
        return {**out, "dimension": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": f"{none_have} ({_reason_text(reasons)})",
                "between_sd": None, "mean_half_width": None}
    rep = _replicates(d, s_lo, s_hi, n_boot, np.random.default_rng(seed))
    lo, hi = np.percentile(rep, [2.5, 97.5])
    dim = float(d.mean())
    return {**out, "dimension": dim, "ci_low": float(min(lo, dim)), "ci_high": float(max(hi, dim)),
            "ok": True, "reason": "" if not reasons else
            f"{len(reasons)} of {n} {without} ({_reason_text(reasons)})",
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


def _stratified_permutation_p(groups, n_perm: int, rng: np.random.Generator) -> float | None:
    """Permutation p-value of the mean over strata of mean(a_s) - mean(b_s), labels shuffled
    within each stratum. `groups`: list of (a_s, b_s) arrays."""
    if len(groups) == 1:
        return _permutation_p(groups[0][0], groups[0][1], n_perm, rng)
    if sum(a.size + b.size for a, b in groups) < 3:
        return None
    observed = abs(np.mean([a.mean() - b.mean() for a, b in groups]))
    total = np.zeros(n_perm)
    for a, b in groups:
        both = np.concatenate([a, b])
        perm = np.argsort(rng.random((n_perm, both.size)), axis=1)
        shuffled = both[perm]
        total += shuffled[:, :a.size].mean(axis=1) - shuffled[:, a.size:].mean(axis=1)
    total = np.abs(total / len(groups))
    tol = 1e-12 * max(1.0, observed)
    return float((np.sum(total >= observed - tol) + 1) / (n_perm + 1))


def difference(estimates_a: Iterable, estimates_b: Iterable, *, label_a: str = "A",
               label_b: str = "B", name_a: str | None = None, name_b: str | None = None,
               strata_a=None, strata_b=None, stratum_name: str = "window",
               n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """D_A - D_B with a 95% interval, a verdict and a sentence (see the module docstring).

    `label_a`/`label_b` name the architectures in the sentence, `name_a`/`name_b` (default: the
    labels) in the shorter reasons. `strata_a`/`strata_b`: a stratum per estimate (the window
    index in a comparison). With strata the difference is matched: it is the mean over the strata
    where *both* architectures have an estimate of the per-stratum differences, each bootstrapped
    within its stratum (one systematic shift per architecture for all strata), so a window that
    only one architecture could measure (e.g. a boundary too short in the preset's window) does
    not mix magnifications; the strata left out are listed in ``strata_dropped`` and ``note``.

    Returns a JSON-safe dict: ``estimate, ci_low, ci_high, ok, reason, verdict, sentence, note,
    p_permutation, strata_used, strata_dropped, n_ok_a, n_ok_b, method``.
    """
    ests_a, ests_b = list(estimates_a), list(estimates_b)
    sa = list(strata_a) if strata_a is not None else [0] * len(ests_a)
    sb = list(strata_b) if strata_b is not None else [0] * len(ests_b)
    if len(sa) != len(ests_a) or len(sb) != len(ests_b):
        raise ValueError("one stratum per estimate")
    da, la, ha, na, ra = _usable(ests_a)
    db, lb, hb, nb, rb = _usable(ests_b)
    out: dict[str, Any] = {"n_units_a": na, "n_units_b": nb, "n_ok_a": int(da.size), "n_ok_b": int(db.size),
           "method": DIFFERENCE_METHOD, "note": "", "strata_used": [], "strata_dropped": []}
    name_a, name_b = name_a or label_a, name_b or label_b
    lacking = [(lab, _reason_text(r)) for lab, d, r in ((name_a, da, ra), (name_b, db, rb))
               if d.size == 0]
    if len(lacking) == 2 and lacking[0][1] == lacking[1][1]:
        missing = [f"neither has a dimension estimate ({lacking[0][1]})"]
    else:
        missing = [f"{lab} has no dimension estimate ({why})" for lab, why in lacking]
    per_a = {t: _usable([e for e, u in zip(ests_a, sa) if u == t]) for t in sorted(set(sa))}
    per_b = {t: _usable([e for e, u in zip(ests_b, sb) if u == t]) for t in sorted(set(sb))}
    common = [t for t in sorted(set(per_a) & set(per_b))
              if per_a[t][0].size and per_b[t][0].size]
    dropped = sorted(t for t in set(per_a) | set(per_b) if t not in common)
    if not missing and not common:
        missing = [f"no {stratum_name} has an estimate for both ({name_a}: "
                   f"{[t for t in per_a if per_a[t][0].size]}, {name_b}: "
                   f"{[t for t in per_b if per_b[t][0].size]})"]
    diff: dict[str, Any]
    if missing:
        diff = {**out, "estimate": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": "; ".join(missing), "p_permutation": None}
    else:
        rng = np.random.default_rng(seed)
        z_a = rng.standard_normal(n_boot)[:, None]
        z_b = rng.standard_normal(n_boot)[:, None]
        rep = np.zeros(n_boot)
        est = 0.0
        for t in common:
            a, b = per_a[t], per_b[t]
            rep += (_replicates(a[0], a[1], a[2], n_boot, rng, z_a)
                    - _replicates(b[0], b[1], b[2], n_boot, rng, z_b))
            est += float(a[0].mean() - b[0].mean())
        rep /= len(common)
        est /= len(common)
        lo, hi = np.percentile(rep, [2.5, 97.5])
        note = ""
        if dropped and strata_a is not None:
            note = (f"matched by {stratum_name}: the difference uses {stratum_name}"
                    f"{'s' if len(common) > 1 else ''} {', '.join(map(str, common))}, where both "
                    f"have estimates; {stratum_name}{'s' if len(dropped) > 1 else ''} "
                    f"{', '.join(map(str, dropped))} left out")
        diff = {**out, "estimate": est, "ci_low": float(min(lo, est)),
                "ci_high": float(max(hi, est)), "ok": True, "reason": "", "note": note,
                "strata_used": common, "strata_dropped": dropped,
                "p_permutation": _stratified_permutation_p(
                    [(per_a[t][0], per_b[t][0]) for t in common], N_PERM, rng)}
    diff["verdict"] = verdict_of(diff["ci_low"], diff["ci_high"])
    if diff["ok"]:
        used = {name_a: sum(per_a[t][0].size for t in common),
                name_b: sum(per_b[t][0].size for t in common)}
        few = {k: v for k, v in used.items() if v < MIN_GRIDS}
        if few and diff["verdict"] != NO_DIFFERENCE:
            diff["verdict"] = NO_DIFFERENCE
            diff["reason"] = ("too few grids for a verdict: " + ", ".join(
                f"{k} has {v}" for k, v in few.items()) + f" with an estimate in the matched "
                f"{stratum_name}s (at least {MIN_GRIDS} each: the bootstrap cannot see the spread "
                f"of fewer; add seeds or {stratum_name}s)")
    diff["sentence"] = verdict_sentence(diff["verdict"], label_a, label_b, diff)
    return diff


# ---- paired comparisons (sampling estimators) -----------------------------------------------

PAIRED_METHOD = (
    "D_A - D_B over pairs (one pair = both architectures at one initialisation seed, measured at "
    "the same sampled points where the estimator allows): the mean of the pairs' differences; 95% "
    "interval: pairs resampled with replacement, every replicate shifted by z_A and z_B times "
    "each estimate's own half-interval/1.96 (one z per architecture, as for pooling); verdict "
    "'smaller'/'larger' when the interval excludes 0, else no difference. p_permutation: exact "
    "sign-flip test of the pairs' differences (seed spread only)")


def _sign_flip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float | None:
    """Two-sided sign-flip p-value of mean(d); exact for up to log2(n_perm) pairs."""
    k = d.size
    if k < 2:
        return None
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, observed)
    if 2 ** k <= n_perm:
        signs = 1 - 2 * ((np.arange(2 ** k)[:, None] >> np.arange(k)[None]) & 1)
    else:
        signs = rng.choice([-1, 1], size=(n_perm, k))
    stats = np.abs((signs * d[None]).mean(axis=1))
    return float(np.mean(stats >= observed - tol))


def paired_difference(pairs: Iterable, *, label_a: str = "A", label_b: str = "B",
                      name_a: str | None = None, name_b: str | None = None,
                      n_boot: int = N_BOOT, seed: int = 0, what: str = "dimension") -> dict:
    """D_A - D_B from paired estimates, with a 95% interval, a verdict and a sentence.

    `what` names the quantity in the reasons ('dimension'; e.g. 'chaos fraction' where the
    estimates' ``dimension`` key holds another quantity: the sentence is then the caller's).

    `pairs`: (estimate_a, estimate_b) per initialisation seed. Pairs where either estimate is
    not ok are left out and counted. The verdict needs ``MIN_GRIDS`` usable pairs (as the
    unpaired `difference` needs grids); with fewer, the estimate and interval are still given.

    Returns the keys of `difference` (``strata_*`` empty) plus ``pairs`` (per pair: the two
    dimensions and their difference, or why it is left out) and ``n_pairs``.
    """
    pairs = list(pairs)
    name_a, name_b = name_a or label_a, name_b or label_b
    rows: list[dict[str, Any]] = []
    d_a: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    d_b: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i, (ea, eb) in enumerate(pairs):
        ua, ub = _usable([ea]), _usable([eb])
        if ua[0].size and ub[0].size:
            d_a.append(ua[:3])
            d_b.append(ub[:3])
            rows.append({"pair": i, "a": float(ua[0][0]), "b": float(ub[0][0]),
                         "difference": float(ua[0][0] - ub[0][0])})
        else:
            why = "; ".join(f"{n}: {_reason_text(u[4])}" for n, u in ((name_a, ua), (name_b, ub))
                            if not u[0].size)
            rows.append({"pair": i, "a": None, "b": None, "difference": None, "reason": why})
    out: dict[str, Any] = {"n_units_a": len(pairs), "n_units_b": len(pairs), "n_ok_a": len(d_a),
           "n_ok_b": len(d_b), "n_pairs": len(d_a), "pairs": rows, "method": PAIRED_METHOD,
           "note": "", "strata_used": [], "strata_dropped": []}
    diff: dict[str, Any]
    if not d_a:
        reasons = sorted({r["reason"] for r in rows if r.get("reason")})
        diff = {**out, "estimate": None, "ci_low": None, "ci_high": None, "ok": False,
                "reason": f"no pair has both {what}s (" + ("; ".join(reasons) or "no pairs")
                + ")", "p_permutation": None}
    else:
        da, la, ha = (np.concatenate(x) for x in zip(*d_a))
        db, lb, hb = (np.concatenate(x) for x in zip(*d_b))
        rng = np.random.default_rng(seed)
        k = da.size
        pick = rng.integers(0, k, size=(n_boot, k))
        z_a = rng.standard_normal(n_boot)[:, None]
        z_b = rng.standard_normal(n_boot)[:, None]
        rep_a = da[pick] + np.where(z_a >= 0, z_a * ha[pick], z_a * la[pick])
        rep_b = db[pick] + np.where(z_b >= 0, z_b * hb[pick], z_b * lb[pick])
        rep = (rep_a - rep_b).mean(axis=1)
        est = float((da - db).mean())
        lo, hi = np.percentile(rep, [2.5, 97.5])
        diff = {**out, "estimate": est, "ci_low": float(min(lo, est)),
                "ci_high": float(max(hi, est)), "ok": True, "reason": "",
                "p_permutation": _sign_flip_p(da - db, N_PERM, rng)}
        left = len(pairs) - k
        if left:
            diff["note"] = f"{left} of {len(pairs)} pairs left out (a {what} missing)"
    diff["verdict"] = verdict_of(diff["ci_low"], diff["ci_high"])
    if diff["ok"] and diff["n_pairs"] < MIN_GRIDS and diff["verdict"] != NO_DIFFERENCE:
        diff["verdict"] = NO_DIFFERENCE
        diff["reason"] = (f"too few pairs for a verdict: {diff['n_pairs']} seed(s) with both "
                          f"{what}s (at least {MIN_GRIDS}: one initialisation says nothing "
                          "about the spread over initialisations; add seeds)")
    diff["sentence"] = verdict_sentence(diff["verdict"], label_a, label_b, diff)
    return diff


def min_detectable(diff: dict) -> float | None:
    """The smallest |D_A - D_B| a comparison could have called a difference: the half-width of
    the difference's 95% interval (a true difference of that size puts 0 at the interval's edge).
    None where there is no difference estimate."""
    if not diff.get("ok"):
        return None
    return float(max(diff["estimate"] - diff["ci_low"], diff["ci_high"] - diff["estimate"]))
