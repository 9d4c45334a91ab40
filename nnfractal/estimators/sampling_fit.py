"""What the sampling estimators share: their result, their refusals, and their fits.

A sampling estimator (:mod:`.uncertainty`, :mod:`.transect`) counts, at each scale, pairs of
points whose outcomes differ, and reads a dimension from how the count scales: a weighted
least-squares power law over the scales its validity rule keeps, with a cluster-bootstrap
interval. This module holds that fit, the rules on the scale range, and
:class:`SamplingEstimate`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .boxcount import json_safe

REASON_NO_BOUNDARY = "no boundary in this window"
REASON_TOO_FEW = "too few differing pairs for a dimension at this budget"
REASON_BOOTSTRAP = "bootstrap replicates mostly failed the fit rule"

MIN_FIT_DECADES = 1.5    # the fitted scales must span at least this many decades
MIN_FIT_SCALES = 4
MIN_SLOPE_DECADES = 1.0  # of them, at least this many inside stages (not bridged by offsets)
SMALL_SCALE_SHARE = 0.5  # the fit uses the smallest half of the decades reached (see small_cap),
SMALL_SCALE_DECADES = 3.0  # but at least 3: with fewer the estimate is noise, not depth
MIN_BOOT = 10            # bootstrap replicates that must pass the fit rule for an interval


class SamplingError(ValueError):
    """A bad estimator parameter: the message is '<field>: <what> (allowed: ...)'."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _empty(dtype=float):
    return field(default_factory=lambda: np.zeros(0, dtype))


@dataclass
class SamplingEstimate:
    """A dimension from sampled outcomes, with its evidence.

    Attributes
    ----------
    dimension, ci_low, ci_high : float or None
        Estimate and 95% interval; None when ``ok`` is False.
    method : str
        ``'uncertainty'`` or ``'transect'``.
    ok : bool
    reason : str
        Why there is no estimate ('' when ``ok``).
    evaluations : int
        Points evaluated (networks trained), all stages and the coarse map included.
    scales : (n,) ndarray of float
        ``eps`` (uncertainty) or the lag between points (transect), in window units.
    values : (n,) ndarray of float
        The curve term: ``f(eps) - F`` of each stage, moved onto one stage by the fitted
        amplitudes so that one line shows them all (uncertainty), or sign changes per lag
        (transect). NaN where not positive.
    raw_values : (n,) ndarray of float
        ``f(eps)`` as measured, the fraction of pairs that differ (uncertainty); the same as
        ``values`` for a transect.
    hits : (n,) ndarray of int
        Differing pairs counted at each scale.
    stage : (n,) ndarray of int
        Stage of each scale (uncertainty; 0 for transects).
    fit_mask : (n,) ndarray of bool
        Scales in the fit.
    slope_scales, local_slopes : (m,) ndarray of float
        Local dimension of the curve term between neighbouring scales of one stage, at their
        geometric mean (NaN where either scale is in the band).
    chaos_fraction : (stages,) ndarray of float
        ``F`` of each stage: the fraction of its base points whose outcome flips under a move
        of a few rounding units (uncertainty with a chaos floor; empty otherwise).
    amplitude : (stages,) ndarray of float
        ``A`` of each stage's curve term ``A eps^(2 - D)`` (NaN where the stage has no fitted
        scale).
    eps_star, eps_star_low, eps_star_high : float or None
        The band's scale and its 95% interval: the eps where the curve term equals the chaos
        fraction, window units (None where no chaos was measured).
    note : str
        What the number measures when that is less than the whole boundary.
    extra : dict
        Method details: bootstrap size, stage squares, fit span, the segments of a transect.
    """

    dimension: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    ok: bool
    reason: str
    evaluations: int
    scales: np.ndarray = _empty()
    values: np.ndarray = _empty()
    raw_values: np.ndarray = _empty()
    hits: np.ndarray = _empty(int)
    stage: np.ndarray = _empty(int)
    fit_mask: np.ndarray = _empty(bool)
    slope_scales: np.ndarray = _empty()
    local_slopes: np.ndarray = _empty()
    chaos_fraction: np.ndarray = _empty()
    amplitude: np.ndarray = _empty()
    eps_star: float | None = None
    eps_star_low: float | None = None
    eps_star_high: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-safe dict: arrays become lists, non-finite numbers None."""
        return json_safe(self.__dict__)


def scale_picture(est: dict) -> str:
    """The measured scale picture of an estimate (``SamplingEstimate.to_dict()``) in one line.

    ``'D 1.432 (95% CI 1.381-1.480) over eps 1.2e-01..3.4e-04; chaos 0.0% / 1.2% / 4.5% per
    stage; eps* 2.1e-05 (95% CI 1.0e-05-4.0e-05); 32,768 evaluations'``: the dimension (or why
    there is none), the fraction of points that flip under a few rounding units at each stage
    (coarse to fine) and the band's scale, so that a user sees the curve and the chaos together.
    """
    if est["ok"]:
        fitted = [s for s, m in zip(est.get("scales") or [], est.get("fit_mask") or []) if m]
        span = f" over eps {max(fitted):.1e}..{min(fitted):.1e}" if fitted else ""
        parts = [f"D {est['dimension']:.3f} (95% CI {est['ci_low']:.3f}-{est['ci_high']:.3f}){span}"]
    else:
        parts = [f"no D: {est['reason']}"]
    chaos = [c for c in (est.get("chaos_fraction") or []) if c is not None]
    if chaos:
        parts.append("chaos " + " / ".join(f"{100 * c:.1f}%" for c in chaos) + " per stage")
    if est.get("eps_star") is not None:
        lo, hi = est.get("eps_star_low"), est.get("eps_star_high")
        ci = f" (95% CI {lo:.1e}-{hi:.1e})" if lo is not None and hi is not None else ""
        parts.append(f"eps* {est['eps_star']:.1e}{ci}")
    elif est.get("method") == "uncertainty" and chaos:
        below = (est.get("extra") or {}).get("eps_star_below")
        parts.append("eps* none (it needs a curve fit)" if not est["ok"]
                     else f"eps* below {below:.1e} (under the eps measured: a bound, not a number)"
                     if below
                     else "eps* none (the curve term never meets the chaos)")
    parts.append(f"{est['evaluations']:,} evaluations")
    return "; ".join(parts)


def no_estimate(method, reason, used, **fields) -> SamplingEstimate:
    """An estimate without a number: ``ok=False`` with ``reason``; ``fields`` fill the rest
    (``extra``, the scales measured so far)."""
    return SamplingEstimate(dimension=None, ci_low=None, ci_high=None, method=method, ok=False,
                            reason=reason, evaluations=int(used), **fields)


def percentile_interval(point, replicates):
    """(low, high): the 2.5-97.5% range of the bootstrap ``replicates``, widened to hold
    ``point``; None when fewer than ``MIN_BOOT`` replicates passed the fit rule."""
    if len(replicates) < MIN_BOOT:
        return None
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return float(min(lo, point)), float(max(hi, point))


def fit_exponent(log_scale, log_value, weight, stage):
    """Common slope of log_value on log_scale with a free offset per stage (weighted LSQ).

    Returns (slope, offsets dict stage -> offset) or (None, None) when underdetermined.
    """
    stages = np.unique(stage)
    design = np.column_stack([log_scale] + [(stage == s).astype(float) for s in stages])
    sw = np.sqrt(weight)
    if np.linalg.matrix_rank(design * sw[:, None]) < design.shape[1]:
        return None, None
    coef, *_ = np.linalg.lstsq(design * sw[:, None], log_value * sw, rcond=None)
    return float(coef[0]), {int(s): float(c) for s, c in zip(stages, coef[1:])}


def local_slopes(scales, values, stage, to_dimension):
    """Log-log slopes between neighbouring scales of each stage, as dimensions.

    Returns (scales (m,), dimensions (m,)): the geometric mean of each neighbouring pair and
    ``to_dimension(slope)`` (NaN where a value is not positive).
    """
    mids, slopes = [], []
    for s in np.unique(stage):
        i = np.flatnonzero(stage == s)
        i = i[np.argsort(scales[i])]
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(values[i] > 0, values[i], np.nan)
            ls = np.diff(np.log(v)) / np.diff(np.log(scales[i]))
        mids.append(np.sqrt(scales[i][1:] * scales[i][:-1]))
        slopes.append(to_dimension(ls))
    if not mids:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(mids), np.concatenate(slopes)


def fit_span_ok(scales, mask, stage=None, min_decades=None):
    """At least MIN_FIT_SCALES scales spanning `min_decades` (MIN_FIT_DECADES) decades, of which
    at least MIN_SLOPE_DECADES inside stages (:func:`slope_decades`)."""
    if mask.sum() < MIN_FIT_SCALES:
        return False
    need = MIN_FIT_DECADES if min_decades is None else min_decades
    return (decades(scales, mask) >= need - 1e-9
            and slope_decades(scales, mask, stage) >= min(MIN_SLOPE_DECADES, need) - 1e-9)


def decades(scales, mask):
    """Decades spanned by the masked scales (0 when fewer than two)."""
    if mask.sum() < 2:
        return 0.0
    return float(math.log10(scales[mask].max() / scales[mask].min()))


def slope_decades(scales, mask, stage=None):
    """Decades the masked scales measure a slope over: the union of each stage's span (a
    stage with one scale has its own offset and measures none; the gap between two stages is
    bridged by their offsets, not measured). 0 when no stage has two scales."""
    stage = np.zeros(len(scales), int) if stage is None else np.asarray(stage)
    spans = []
    for s in np.unique(stage[mask]):
        x = np.log10(scales[mask & (stage == s)])
        if len(x) >= 2:
            spans.append((x.min(), x.max()))
    total, reach = 0.0, -np.inf
    for lo, hi in sorted(spans):
        total += max(0.0, hi - max(lo, reach))
        reach = max(reach, hi)
    return float(total)


def sub_window(scales, mask, window, min_decades=MIN_FIT_DECADES):
    """Keep the masked scales inside a sub-window of their log range: window = (share, position)
    in [0, 1]^2 picks a run of max(MIN_FIT_DECADES, (1 + share) / 2 * range) decades (at least
    half the range) starting at the masked scale found at `position` among those that leave room
    for it; the run ends at the first masked scale that reaches its length (scales sit on a
    lattice, and a window that ended between two of them would span less than asked, so that a
    range barely above MIN_FIT_DECADES could never be resampled). None keeps everything."""
    if window is None or not mask.any():
        return mask
    log_s = np.log10(scales)
    kept = np.unique(log_s[mask])
    span = kept[-1] - kept[0]
    width = min(span, max(min_decades, (0.5 + 0.5 * window[0]) * span))
    starts = kept[kept + width <= kept[-1] + 1e-9]
    start = starts[min(int(window[1] * len(starts)), len(starts) - 1)]
    end = kept[np.searchsorted(kept, start + width - 1e-9)]
    return mask & (log_s >= start - 1e-9) & (log_s <= end + 1e-9)


def small_cap(scales, mask, reached=None):
    """Largest scale the fit uses: the smallest SMALL_SCALE_SHARE of the decades reached, at
    least SMALL_SCALE_DECADES (all of the kept scales when fewer were reached). The decades
    reached are those of the masked scales, or of the `reached` mask when given (a window stage
    at the coarse decades widens what the rule keeps, not what it calls reached). The box
    dimension is a limit eps -> 0, and trainability boundaries can be smooth at large scales
    and rough only below a crossover (the single-datapoint MLP's local dimension rises from 1.0
    above 1e-4 of the window to 1.85 below 1e-5); a fit over every decade would average the two
    regimes."""
    if not mask.any():
        return np.inf
    kept = np.sort(scales[mask])
    ref = np.sort(scales[reached]) if reached is not None and reached.any() else kept
    span = np.log10(kept / kept[0])
    want = max(SMALL_SCALE_DECADES, SMALL_SCALE_SHARE * math.log10(ref[-1] / ref[0]))
    # the first kept scale that reaches the wanted span (scales are discrete)
    return float(kept[min(np.searchsorted(span, want - 1e-9), len(kept) - 1)])


def contiguous(scales, stage, ok):
    """Per stage, the scales from the largest down to the first where `ok` fails (excluded):
    dropping only the failing scales one by one would keep those that fluctuated up, and a
    count that fluctuated up at small scales biases the slope."""
    mask = np.zeros(len(scales), bool)
    for s in np.unique(stage):
        i = np.flatnonzero(stage == s)
        for j in i[np.argsort(-scales[i])]:
            if not ok[j]:
                break
            mask[j] = True
    return mask


