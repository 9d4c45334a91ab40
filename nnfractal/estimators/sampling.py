"""Sampling estimators of a boundary's dimension: the uncertainty exponent and transects.

A box count needs a full grid, and on a finite grid most of its scaling range is made of boxes
larger than the boundary's local oscillation, which count a rough curve as if it were smooth (the
bias measured on Weierstrass boundaries). A sampling estimator never needs the grid: it evaluates
the outcome (the sign of the score) at chosen points only, so it reaches scales a million times
smaller than the window at a cost that does not grow with depth.

Both estimators take ``evaluate(points) -> scores``: points ``(k, 2)`` float64 ``(u, v)`` in
*window units* (the window is the unit square: u along x, v along y; on log axes a unit is the
window's width in decades), scores ``(k,)`` float, negative on one side of the boundary
(converged), positive on the other. Analytic boundaries (``known_sets.analytic_boundary``) give
it directly; ``sample.py`` gives it by training networks with the engine. Each estimator calls
``evaluate`` a few times with whole batches (a coarse map, then one batch per stage), so an
evaluator that trains can store every batch as it goes.

* :func:`uncertainty_exponent` -- McDonald, Grebogi, Ott & Yorke (1985), "Fractal basin
  boundaries": the fraction ``f(eps)`` of point pairs ``eps`` apart whose outcomes differ scales as
  ``eps^alpha`` with ``alpha = 2 - D``. Base points are drawn in the boundary cells of a coarse
  map, then, stage by stage, in squares around the uncertain pairs of the stage before, so that
  every decade of ``eps`` costs the same.
* :func:`transect_dimension` -- equally spaced points on segments across the boundary. The
  number of sign changes between points ``s`` apart, per ``s`` points, scales as ``s^-(D - 1)``
  (the crossings of a line with a boundary of dimension ``D`` have dimension ``D - 1``).

Each states its own validity rule (hits per scale, scaling range in decades) and refuses to give a
number otherwise (``ok=False`` with the reason).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .boxcount import boundary, json_safe

__all__ = [
    "REASON_CHAOS",
    "REASON_NO_BOUNDARY",
    "REASON_TOO_FEW",
    "SamplingEstimate",
    "coarse_boundary_cells",
    "sign_flux",
    "transect_angle",
    "transect_dimension",
    "transect_points",
    "uncertainty_exponent",
]

REASON_NO_BOUNDARY = "no boundary in this window"
REASON_TOO_FEW = "too few differing pairs for a dimension at this budget"
REASON_CHAOS = ("chaotic: f(eps) never rises 3x above the chaos floor (outcomes flip under the "
                "smallest perturbation the precision resolves), so no distance scaling to fit; "
                "see extra.counting_chaos")

MIN_HITS = 16            # differing pairs at one eps for it to enter the fit (Poisson error 25%)
MIN_FIT_DECADES = 1.5    # the fitted scales must span at least this many decades
MIN_FIT_SCALES = 4
SMALL_SCALE_SHARE = 0.5  # the fit uses the smallest half of the decades reached (see _small_cap),
SMALL_SCALE_DECADES = 3.0  # but at least 3: with fewer the estimate is noise, not depth
MIN_STAGE_BASE = 2000    # base points of a stage at least (a smaller one is not run)
CENTRE_HITS = 32         # differing pairs at the eps the next stage zooms to
FLOOR_FACTOR = 3.0       # an eps is fitted only while f(eps) >= this x the stage's chaos floor
EPS_PER_DECADE = 3
STAGE_DECADES = 2.0      # each stage zooms its squares by 10^2
EPS_CAP = 0.25           # eps <= EPS_CAP * square side: beyond, pairs leave the boundary's square
MIN_CHANGES = 8          # transect: sign changes per lag (pairs / lag) to enter the fit
N_BLOCKS = 8             # transect: blocks per line for the bootstrap
MIN_TRANSECT_POINTS = 1024


class SamplingError(ValueError):
    """A bad estimator parameter: the message is '<field>: <what> (allowed: ...)'."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


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
        ``f(eps)`` (uncertainty; each stage rescaled onto stage 0 by the fitted offsets, so one
        curve shows them all) or sign changes per lag (transect).
    hits : (n,) ndarray of int
        Differing pairs counted at each scale.
    stage : (n,) ndarray of int
        Stage of each scale (uncertainty; 0 for transects).
    fit_mask : (n,) ndarray of bool
        Scales in the fit.
    slope_scales, local_slopes : (m,) ndarray of float
        Local dimension between neighbouring scales of one stage, at their geometric mean.
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
    scales: np.ndarray
    values: np.ndarray
    hits: np.ndarray
    stage: np.ndarray
    fit_mask: np.ndarray
    slope_scales: np.ndarray
    local_slopes: np.ndarray
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-safe dict: arrays become lists, non-finite numbers None."""
        return json_safe(self.__dict__)


# ---------------------------------------------------------------------------
# Shared: a weighted power-law fit with one offset per stage


def _fit_exponent(log_scale, log_value, weight, stage):
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


def _local_slopes(scales, values, stage, sign):
    mids, slopes = [], []
    for s in np.unique(stage):
        i = np.flatnonzero(stage == s)
        i = i[np.argsort(scales[i])]
        with np.errstate(divide="ignore", invalid="ignore"):
            ls = np.diff(np.log(values[i])) / np.diff(np.log(scales[i]))
        mids.append(np.sqrt(scales[i][1:] * scales[i][:-1]))
        slopes.append(sign(ls))
    if not mids:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(mids), np.concatenate(slopes)


def _fit_span_ok(scales, mask):
    if mask.sum() < MIN_FIT_SCALES:
        return False
    s = scales[mask]
    return math.log10(s.max() / s.min()) >= MIN_FIT_DECADES - 1e-9


# ---------------------------------------------------------------------------
# Uncertainty exponent


def coarse_boundary_cells(scores, guard=1):
    """Cells of a coarse score map that hold the boundary, grown by ``guard`` cells.

    The map's pixel centres sit at ``(j + 0.5) / n``; a cell spans four neighbouring centres,
    so cell ``(i, j)`` is the square ``[(j + 0.5) / n, (j + 1.5) / n] x [(i + 0.5) / n, ...]``.
    The guard ring catches boundary that passes between centres of equal sign.

    Parameters
    ----------
    scores : (n, n) array_like of float
        Scores at the pixel centres of an n x n grid over the unit square.
    guard : int, optional
        Cells added on each side of every boundary cell.

    Returns
    -------
    corners : (k, 2) ndarray of float64
        Lower-left ``(u, v)`` corner of each cell, window units.
    side : float
        Cell side, window units (``1 / n``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    edges = boundary(scores)
    grown = edges.copy()
    for _ in range(int(guard)):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= g[:, :-1].copy()
        g[:, :-1] |= g[:, 1:].copy()
        grown = g
    rows, cols = np.nonzero(grown)
    return np.stack([(cols + 0.5) / n, (rows + 0.5) / n], axis=1), 1.0 / n


def _grid_centres(n):
    c = (np.arange(n) + 0.5) / n
    u, v = np.meshgrid(c, c)
    return np.stack([u.ravel(), v.ravel()], axis=1)


def _eps_grid(hi, lo):
    """Log-spaced eps from hi down to lo, EPS_PER_DECADE per decade, on a fixed lattice
    (10^(k / EPS_PER_DECADE)) so that stages share their eps values."""
    k_hi = math.floor(math.log10(hi) * EPS_PER_DECADE + 1e-9)
    k_lo = math.ceil(math.log10(lo) * EPS_PER_DECADE - 1e-9)
    return 10.0 ** (np.arange(k_hi, k_lo - 1, -1) / EPS_PER_DECADE)


def _pairs(rng, corners, side, n_base, eps, centred):
    """Base points uniform in random squares of the region, and one partner per eps in a
    random direction: base (n, 2), partners (n, m, 2), and the square of each base point (n,)."""
    pick = rng.integers(0, len(corners), n_base)
    offset = rng.random((n_base, 2)) * side
    base = corners[pick] + (offset - side / 2 if centred else offset)
    theta = rng.random((n_base, len(eps))) * 2 * math.pi
    partners = base[:, None, :] + eps[None, :, None] * np.stack(
        [np.cos(theta), np.sin(theta)], axis=-1)
    return base, partners, pick


def check_uncertainty_args(budget, eps_min, coarse):
    """Refuse parameters the uncertainty estimator cannot work with (SamplingError)."""
    if not (isinstance(coarse, (int, np.integer)) and (coarse == 0 or 8 <= coarse <= 1024)):
        raise SamplingError("coarse", f"{coarse!r} is not allowed (allowed: 0 = base points "
                            "uniform in the window, or 8..1024 points per side of the coarse map)")
    if not (isinstance(eps_min, float) and math.isfinite(eps_min) and 1e-15 <= eps_min <= 1e-3):
        raise SamplingError("eps_min", f"{eps_min!r} is not allowed (allowed: 1e-15 <= eps_min "
                            "<= 1e-3, window units)")
    stage = MIN_STAGE_BASE * (1 + math.ceil(STAGE_DECADES * EPS_PER_DECADE) + 1)
    floor = coarse * coarse + stage
    if not (isinstance(budget, (int, np.integer)) and floor <= budget <= 1 << 24):
        raise SamplingError("budget", f"{budget!r} is not allowed (allowed: {floor} to "
                            f"{1 << 24} evaluations: the coarse map's {coarse * coarse} and one "
                            f"stage of {MIN_STAGE_BASE} base points with their partners)")


def uncertainty_exponent(evaluate, *, budget=1 << 18, eps_min=1e-9, coarse=64, seed=0,
                         n_boot=200, stage_decades=STAGE_DECADES, floor_points=0,
                         eps_floor=None):
    """Dimension from the uncertainty exponent, over many decades of eps at a fixed cost.

    1. Coarse map: ``coarse`` x ``coarse`` points; its boundary cells are stage 0's region
       (``coarse=0``: the whole window, base points uniform in it).
    2. Stage ``s`` draws base points uniformly in its squares of side ``h_s`` and gives each a
       partner at every ``eps`` of its range, in a random direction:
       ``h_s / 10^stage_decades / 4 <= eps <= h_s / 4`` (the last stage down to ``eps_min``).
    3. Stage ``s + 1``'s squares, of side ``h_s / 10^stage_decades``, are centred on the
       midpoints of stage ``s``'s differing pairs at ``eps`` between ``h / 16`` and ``h / 2`` of
       the new side: each holds boundary. The budget is split evenly over the stages, so each
       decade costs the same and ``f(eps)`` stays measurable down to ``eps_min``.
    4. ``f_s(eps)`` is the fraction of stage ``s``'s pairs whose signs differ. For a boundary of
       box dimension ``D``, ``f_s(eps) = c_s eps^(2 - D)`` inside each stage (only ``c_s``
       depends on the squares), so ``alpha = 2 - D`` is the common slope of a weighted
       least-squares fit of ``log f`` on ``log eps`` with one offset per stage.

    Validity rule: an eps enters the fit only with at least ``MIN_HITS`` differing pairs, and
    the fitted eps must span ``MIN_FIT_DECADES`` decades over ``MIN_FIT_SCALES`` values;
    otherwise ``ok=False``. The 95% interval is the 2.5-97.5% range of the estimate over
    ``n_boot`` bootstrap replicates that resample the squares of every stage, each with its
    base points (a cluster bootstrap: which stretches of boundary a stage zoomed into is part
    of the error), and draw the fit range too: the hit threshold between 8 and 32, and a contiguous window of the fitted
    eps covering half to all of their decades (at least ``MIN_FIT_DECADES``). The window carries
    the systematic part of the error, the log-periodic wobble of the local slopes of
    self-affine boundaries, which resampling alone does not see.

    5. Chaos floor (``floor_points > 0``): one more batch moves up to ``floor_points`` base
       points of every stage by ``eps_floor`` (default ``eps_min / 1000``), far below any fitted
       eps. The fraction whose outcome flips, ``f_floor_s``, is the part of ``f_s`` that no
       distance explains: near a trainability boundary the outcome after finitely many steps can
       be chaotic (measured on the paper's linear network: a relative change of 1e-12 in the
       learning rates flipped 42% of the deepest stage's outcomes, as many as any eps did). An
       eps enters the fit only while ``f_s(eps) >= FLOOR_FACTOR * f_floor_s``. An analytic
       boundary has no floor.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(points (k, 2)) -> scores (k,)``, window units (see the module docstring).
        Called once for the coarse map, once per stage, and once for the chaos floor.
    budget : int, optional
        Evaluations in all (coarse map included); default 2^18, one 512 x 512 grid's worth.
    eps_min : float, optional
        Smallest pair distance, window units: down to what the scores' precision resolves.
    coarse : int, optional
        Points per side of the coarse map (0: base points uniform in the window).
    seed : int, optional
    n_boot : int, optional
    stage_decades : float, optional
        Decades of eps per stage.

    Returns
    -------
    SamplingEstimate
        ``method='uncertainty'``.
    """
    check_uncertainty_args(budget, eps_min, coarse)
    rng = np.random.default_rng(seed)
    used = 0
    if coarse:
        grid = _grid_centres(coarse)
        coarse_scores = np.asarray(evaluate(grid), dtype=np.float64)
        used += len(grid)
        # Boundary cells only, no guard ring: the base points need to sample the boundary
        # representatively, not to find all of it, and a ring would triple the cells that hold
        # none (measured: a third of the differing pairs at small eps on a circle).
        corners, side = coarse_boundary_cells(coarse_scores.reshape(coarse, coarse), guard=0)
        centred = False
        if len(corners) == 0:
            return _no_estimate("uncertainty", REASON_NO_BOUNDARY, used)
    else:
        corners, side, centred = np.zeros((1, 2)), 1.0, False
    # the chaos floor's batch comes out of the budget: reserve it for about four stages
    reserve = 4 * int(floor_points)
    budget -= reserve
    stages = []          # (eps (m,), hits (n, m) bool, square of each base (n,), squares,
    #                       base points (n, 2), their signs (n,))
    notes = []
    decades_per_stage = stage_decades          # updated with the depth each stage reached
    while True:
        top = EPS_CAP * side
        left = math.log10(top / eps_min)
        n_left = max(1, math.ceil(left / decades_per_stage - 1e-9))
        last = n_left == 1
        lo = eps_min if last else max(eps_min, top * 10.0 ** -stage_decades)
        eps = _eps_grid(top, lo)
        # Every stage gets at least MIN_STAGE_BASE base points: a thin stage measures nothing,
        # so a small budget reaches fewer decades instead of many noisy ones.
        n_base = max((budget - used) // n_left, MIN_STAGE_BASE * (1 + len(eps))) // (1 + len(eps))
        if used + n_base * (1 + len(eps)) > budget:
            n_base = (budget - used) // (1 + len(eps))
            if n_base < MIN_STAGE_BASE:
                notes.append(f"budget spent after {len(stages)} stage(s), at eps "
                             f"{EPS_CAP * side:.1e}")
                break
            last = True
            eps = _eps_grid(top, eps_min)
            n_base = (budget - used) // (1 + len(eps))
        base, partners, square = _pairs(rng, corners, side, n_base, eps, centred)
        scores = np.asarray(evaluate(np.concatenate([base, partners.reshape(-1, 2)])),
                            dtype=np.float64)
        used += len(scores)
        sb, sp = np.sign(scores[:n_base]), np.sign(scores[n_base:]).reshape(n_base, len(eps))
        # A zero score has no sign: such a pair is not counted as differing.
        hits = (sb[:, None] * sp) < 0
        stages.append((eps, hits, square, len(corners), base, sb))
        if last:
            break
        # The next stage zooms to where this one still counts CENTRE_HITS differing pairs: its
        # squares (side 2 eps*) are centred on pairs at eps* / 8 .. eps*, so each holds boundary.
        counted = np.flatnonzero(hits.sum(0) >= CENTRE_HITS)
        if len(counted) == 0:
            notes.append(f"stopped after stage {len(stages) - 1}: no eps with {CENTRE_HITS} "
                         "differing pairs to centre the next stage on")
            break
        eps_star = eps[counted.max()]
        new_side = 2 * eps_star
        if new_side > side / 3:
            notes.append(f"stopped after stage {len(stages) - 1}: differing pairs too rare to "
                         f"zoom below eps {eps_star:.1e}")
            break
        near = (eps >= eps_star / 8) & (eps <= eps_star)
        bi, ej = np.nonzero(hits[:, near])
        mid = (base[bi] + partners[bi, np.flatnonzero(near)[ej]]) / 2
        decades_per_stage = max(0.5, math.log10(side / new_side))
        corners, side, centred = mid, new_side, True
    floors = None
    if floor_points and stages:
        per_stage = min(int(floor_points), (budget + reserve - used) // len(stages))
        floors, spent = _chaos_floor(evaluate, stages, per_stage,
                                     eps_min / 1000 if eps_floor is None else eps_floor, rng)
        used += spent
    return _uncertainty_estimate(stages, used, rng, n_boot, notes, stage_decades, floors)


def _chaos_floor(evaluate, stages, floor_points, eps_floor, rng):
    """Flip fraction of each stage's first base points moved by eps_floor: one batch."""
    picks = [min(int(floor_points), len(st[4])) for st in stages]
    moved = []
    for st, k in zip(stages, picks):
        theta = rng.random(k) * 2 * math.pi
        moved.append(st[4][:k] + eps_floor * np.stack([np.cos(theta), np.sin(theta)], axis=1))
    scores = np.sign(np.asarray(evaluate(np.concatenate(moved)), dtype=np.float64))
    floors, at = [], 0
    for st, k in zip(stages, picks):
        floors.append(float(np.mean(scores[at:at + k] * st[5][:k] < 0)) if k else 0.0)
        at += k
    return floors, int(sum(picks))


def _no_estimate(method, reason, used, **extra):
    empty = np.zeros(0)
    return SamplingEstimate(None, None, None, method, False, reason, int(used), empty, empty,
                            np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool), empty, empty,
                            extra=extra)


def _stage_table(stages, hit_sums, base_counts=None):
    """Flat arrays over every (stage, eps): eps, stage index, pairs, differing pairs."""
    if base_counts is None:
        base_counts = [st[1].shape[0] for st in stages]
    scales = np.concatenate([st[0] for st in stages])
    stage = np.concatenate([np.full(len(st[0]), i) for i, st in enumerate(stages)])
    n = np.concatenate([np.full(len(st[0]), c) for st, c in zip(stages, base_counts)])
    return scales, stage, n, np.concatenate(hit_sums)


def _per_square(stage_record):
    """Differing pairs (squares, m) and base points (squares,) of each square of a stage."""
    eps, hits, square, n_squares = stage_record[:4]
    agg = np.zeros((n_squares, len(eps)), dtype=np.int64)
    np.add.at(agg, square, hits)
    return agg, np.bincount(square, minlength=n_squares)


def _sub_window(scales, mask, window):
    """Keep the masked scales inside a sub-window of their log range: window = (share, position)
    in [0, 1]^2 picks a window of max(MIN_FIT_DECADES, share_of_range) decades (at least half
    the range) placed at `position` along it. None keeps everything."""
    if window is None or not mask.any():
        return mask
    lo, hi = np.log10(scales[mask].min()), np.log10(scales[mask].max())
    width = min(hi - lo, max(MIN_FIT_DECADES, (0.5 + 0.5 * window[0]) * (hi - lo)))
    start = lo + window[1] * (hi - lo - width)
    log_s = np.log10(scales)
    return mask & (log_s >= start - 1e-9) & (log_s <= start + width + 1e-9)


def _small_cap(scales, mask):
    """Largest scale the fit uses: the smallest SMALL_SCALE_SHARE of the decades the rule kept,
    at least SMALL_SCALE_DECADES (all of them when fewer were reached). The box dimension is a
    limit eps -> 0, and trainability
    boundaries can be smooth at large scales and rough only below a crossover (measured: the
    single-datapoint MLP's local dimension rises from 1.0 above 1e-4 of the window to 1.85 below
    1e-5); a fit over every decade would average the two regimes."""
    if not mask.any():
        return np.inf
    kept = np.sort(scales[mask])
    decades = np.log10(kept / kept[0])
    want = max(SMALL_SCALE_DECADES, SMALL_SCALE_SHARE * decades[-1])
    # the first kept scale that reaches the wanted span (scales are discrete)
    return float(kept[min(np.searchsorted(decades, want - 1e-9), len(kept) - 1)])


def _contiguous(scales, stage, ok):
    """Per stage, the eps from the largest down to the first where `ok` fails (excluded)."""
    mask = np.zeros(len(scales), bool)
    for s in np.unique(stage):
        i = np.flatnonzero(stage == s)
        for j in i[np.argsort(-scales[i])]:
            if not ok[j]:
                break
            mask[j] = True
    return mask


def _contiguous_hits(scales, stage, hits, min_hits):
    """Per stage, the eps from the largest down to the first with fewer than min_hits differing
    pairs (excluded): dropping only the rare-hit eps one by one would keep those that fluctuated
    up and bias f high at small eps, i.e. the dimension high."""
    mask = np.zeros(len(scales), bool)
    for s in np.unique(stage):
        i = np.flatnonzero(stage == s)
        i = i[np.argsort(-scales[i])]
        for j in i:
            if hits[j] < min_hits:
                break
            mask[j] = True
    return mask


def _uncertainty_fit(scales, stage, n, hits, min_hits, window=None, cap=np.inf, keep=None):
    mask = _contiguous_hits(scales, stage, hits, min_hits) & (scales <= cap * (1 + 1e-9))
    if keep is not None:
        mask &= keep
    mask = _sub_window(scales, mask, window)
    if not _fit_span_ok(scales, mask):
        return None, None, mask
    f = hits[mask] / n[mask]
    x, y, st = np.log(scales[mask]), np.log(f), stage[mask]
    # Var(log f) ~ (1 - f) / (n f) for a binomial count; the weights come from a first fit's f,
    # not the observed one, so that an eps that fluctuated up does not also weigh more.
    slope, offsets = _fit_exponent(x, y, hits[mask] / np.maximum(1 - f, 1e-3), st)
    if slope is None:
        return None, None, mask
    fitted = np.exp(slope * x + np.array([offsets[int(k)] for k in st]))
    fitted = np.clip(fitted, 1e-12, 0.999)
    slope, offsets = _fit_exponent(x, y, n[mask] * fitted / (1 - fitted), st)
    return slope, offsets, mask


def _uncertainty_estimate(stages, used, rng, n_boot, notes, stage_decades, floors=None):
    if not stages:
        return _no_estimate("uncertainty", REASON_TOO_FEW, used, notes=notes)
    if not any(st[1].any() for st in stages):        # not one pair differed anywhere
        return _no_estimate("uncertainty", REASON_NO_BOUNDARY, used, notes=notes)
    scales, stage, n, hits = _stage_table(stages, [st[1].sum(0) for st in stages])
    # eps whose f does not rise clearly above the stage's chaos floor measure chaos, not distance
    floor_f = np.zeros(len(scales)) if floors is None else np.array(floors)[stage]
    above = _contiguous(scales, stage, hits / n >= FLOOR_FACTOR * floor_f)
    squares = [_per_square(st) for st in stages]
    fit = _fit_with_interval(scales, stage, n, hits, squares, stages, above, rng, n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = hits / n
    extra = {"stages": len(stages), "base_points": [int(st[1].shape[0]) for st in stages],
             "chaos_floor": floors,
             "squares": [int(st[3]) for st in stages],
             "stage_decades": stage_decades, "notes": notes, "n_boot": int(n_boot)}
    if floors is not None and max(floors) > 0:
        # The same fit with chaos counted as boundary, as a box count of the outcome map would
        # count it: where the floor dominates, this is the plane-filling reading (D near 2).
        chaos = _fit_with_interval(scales, stage, n, hits, squares, stages, None, rng, n_boot)
        extra["counting_chaos"] = None if chaos is None else {
            k: chaos[k] for k in ("dimension", "ci_low", "ci_high", "fit_decades")}
    if fit is None:
        empty = np.zeros(0)
        reason = REASON_TOO_FEW
        if extra.get("counting_chaos"):
            reason = REASON_CHAOS
        return SamplingEstimate(None, None, None, "uncertainty", False, reason, used,
                                scales, f, hits.astype(int), stage, above, empty, empty,
                                extra=extra)
    # One curve for the plot: every stage moved onto stage 0's offset (or the first fitted).
    offsets = fit["offsets"]
    ref = offsets[min(offsets)]
    shift = np.array([math.exp(ref - offsets.get(int(s), ref)) for s in stage])
    values = f * shift
    slope_scales, local = _local_slopes(scales, np.where(hits > 0, values, np.nan), stage,
                                        lambda a: 2 - a)
    mask = fit["mask"]
    extra.update(fit_decades=fit["fit_decades"],
                 eps_fit=[float(scales[mask].min()), float(scales[mask].max())],
                 boot_ok=fit["boot_ok"], all_scales_dimension=fit["all_scales_dimension"],
                 all_scales_decades=fit["all_scales_decades"])
    return SamplingEstimate(fit["dimension"], fit["ci_low"], fit["ci_high"], "uncertainty",
                            True, "", int(used), scales, values, hits.astype(int), stage, mask,
                            slope_scales, local, extra=extra)


def _fit_with_interval(scales, stage, n, hits, squares, stages, keep, rng, n_boot):
    """The uncertainty fit (smallest 3+ decades of the eps the rules keep) and its 95% interval,
    or None when the rules leave too little to fit.

    Cluster bootstrap: the squares of every stage are resampled with their base points, so the
    interval carries which stretches of boundary the stages happened to zoom into, not only the
    scatter of the points within them; the hit threshold and a fit window are drawn too."""
    all_slope, _, all_mask = _uncertainty_fit(scales, stage, n, hits, MIN_HITS, keep=keep)
    cap = _small_cap(scales, all_mask)
    slope, offsets, mask = _uncertainty_fit(scales, stage, n, hits, MIN_HITS, cap=cap, keep=keep)
    if slope is None:
        return None
    dims = []
    for _ in range(int(n_boot)):
        sums, counts = [], []
        for agg, per in squares:
            pick = rng.integers(0, len(per), len(per))
            sums.append(agg[pick].sum(0))
            counts.append(int(per[pick].sum()))
        _, _, bn, bh = _stage_table(stages, sums, counts)
        min_hits = int(round(math.exp(rng.uniform(math.log(8), math.log(32)))))
        b_slope, _, _ = _uncertainty_fit(scales, stage, bn, bh, min_hits, rng.random(2), cap,
                                         keep)
        if b_slope is not None:
            dims.append(2 - b_slope)
    if len(dims) < 10:
        return None
    dim = 2 - slope
    lo, hi = np.percentile(dims, [2.5, 97.5])
    return {"dimension": float(dim), "ci_low": float(min(lo, dim)),
            "ci_high": float(max(hi, dim)), "offsets": offsets, "mask": mask,
            "fit_decades": float(math.log10(scales[mask].max() / scales[mask].min())),
            "boot_ok": len(dims),
            "all_scales_dimension": None if all_slope is None else float(2 - all_slope),
            "all_scales_decades": float(math.log10(scales[all_mask].max()
                                                   / scales[all_mask].min()))}


# ---------------------------------------------------------------------------
# Transects


def transect_points(n_points, *, lines=1, angle_deg=30.0, centre=(0.5, 0.5), length=None,
                    spread=0.5):
    """Equally spaced points on ``lines`` parallel segments, window units.

    The segments run in direction ``angle_deg`` (from the u axis) through ``centre`` and
    through points offset from it perpendicularly, evenly over a band of width ``spread``. By
    default each is the chord of the unit square through its own centre point (``length``
    overrides: a segment of that length centred there). Where a chord of the band would miss the
    window (a centre near an edge, the band across it), the band slides along its normal until
    every segment's centre point is inside, and narrows only if it cannot fit (a band whose
    chords all meet the window is never moved, so stored samples replay the same points).

    Returns
    -------
    points : (lines, n_points, 2) ndarray of float64
    """
    t = math.radians(angle_deg)
    d = np.array([math.cos(t), math.sin(t)])
    normal = np.array([-d[1], d[0]])
    offsets = (np.arange(lines) - (lines - 1) / 2) * (spread / max(lines, 1))
    c0 = np.asarray(centre, dtype=np.float64)
    if any(np.subtract(*_chord(c0 + off * normal, d)[::-1]) <= 1e-9 for off in offsets):
        offsets = _band_inside(c0, normal, offsets)
    out = np.empty((lines, n_points, 2))
    for i, off in enumerate(offsets):
        c = c0 + off * normal
        if length is None:
            lo, hi = _chord(c, d)
        else:
            lo, hi = -length / 2, length / 2
        s = np.linspace(lo, hi, n_points)
        out[i] = c[None] + s[:, None] * d[None]
    return out


def _band_inside(centre, normal, offsets):
    """Offsets along ``normal`` whose points ``centre + offset * normal`` all lie inside the
    unit square (1% in from its edges): shifted as little as possible, scaled down only when the
    band is wider than the square along the normal. Unchanged when ``centre`` is outside it
    (the caller's chords are then empty and refused)."""
    lo, hi = _chord(centre, normal)
    if not hi > lo or len(offsets) == 0:
        return offsets
    pad = 0.01 * (hi - lo)
    lo, hi = lo + pad, hi - pad
    width = offsets.max() - offsets.min()
    if width > hi - lo:
        offsets = offsets * ((hi - lo) / width)
    shift = min(max(0.0, lo - offsets.min()), hi - offsets.max())
    return offsets + shift


def _chord(c, d):
    """Parameters (lo, hi) where the line c + t d is inside the unit square."""
    lo, hi = -np.inf, np.inf
    for k in range(2):
        if abs(d[k]) > 1e-12:
            a, b = (0 - c[k]) / d[k], (1 - c[k]) / d[k]
            lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
        elif not 0 <= c[k] <= 1:
            return 0.0, 0.0
    if not hi > lo:
        return 0.0, 0.0
    return lo, hi


def check_transect_args(n_points, lines, angle_deg, length, direction_norm=1.0):
    """Refuse transect parameters that cannot give a dimension (SamplingError)."""
    if not (isinstance(n_points, (int, np.integer))
            and MIN_TRANSECT_POINTS <= n_points <= 1 << 24):
        raise SamplingError("points", f"{n_points!r} is not allowed (allowed: "
                            f"{MIN_TRANSECT_POINTS} to {1 << 24} points per segment)")
    if not (isinstance(lines, (int, np.integer)) and 1 <= lines <= 1024):
        raise SamplingError("lines", f"{lines!r} is not allowed (allowed: 1 to 1024 segments)")
    if angle_deg is not None and not math.isfinite(angle_deg):
        raise SamplingError("angle", f"{angle_deg!r} is not allowed (allowed: degrees, or none: "
                            "along the boundary's trend)")
    if length is not None and not (math.isfinite(length) and 1e-12 <= length <= 2.0):
        raise SamplingError("length", f"{length!r} is not allowed (allowed: 1e-12 to 2 window "
                            "units; 0 is a segment of zero length)")
    if not direction_norm > 0:
        raise SamplingError("direction", "a direction of zero length is not allowed "
                            "(allowed: an angle in degrees, or a nonzero vector)")


def densest_boundary_cell(scores, half=None, margin=0.25):
    """(u, v) centre, window units, of the coarse boundary cell with the most boundary cells
    within ``half`` cells (default n / 8) of it: where a segment meets the most boundary.
    Cells at least ``margin`` from the window's edges are preferred when there are any: a
    chord through a point near a corner is short.

    Parameters
    ----------
    scores : (n, n) array_like
        Scores at the pixel centres of an n x n grid over the unit square.

    Returns
    -------
    (u, v) : tuple of float, or None when the map holds no boundary.
    """
    edges = boundary(np.asarray(scores, dtype=np.float64))
    n = edges.shape[0] + 1
    # cell (i, j) spans the centres i..i+1 and j..j+1: its middle is at (j + 1) / n
    return densest_edge_cell(edges, lambda k: (k + 1) / n, half=half, margin=margin)


def densest_edge_cell(edges, cell_middle, half=None, margin=0.25):
    """(u, v), window units, of the boundary cell with the most boundary within ``half`` cells.

    Parameters
    ----------
    edges : (m, m) array_like of bool or int
        Boundary cells (`fractal.boundary`), or a sum of several maps' boundaries (a cell on
        two boundaries then counts twice).
    cell_middle : callable
        Cell index array -> window units of the cells' middles (the same on both axes).

    Returns
    -------
    (u, v) : tuple of float, or None when there is no boundary cell.
    """
    edges = np.asarray(edges).astype(np.int64)
    if not edges.any():
        return None
    h = max(1, (edges.shape[0] + 1) // 8) if half is None else int(half)
    table = np.zeros((edges.shape[0] + 1, edges.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(edges, 0), 1)
    ii, jj = np.nonzero(edges)
    r0, r1 = np.clip(ii - h, 0, None), np.clip(ii + h + 1, None, edges.shape[0])
    c0, c1 = np.clip(jj - h, 0, None), np.clip(jj + h + 1, None, edges.shape[1])
    density = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    u, v = cell_middle(jj), cell_middle(ii)
    inner = (np.minimum(u, 1 - u) >= margin) & (np.minimum(v, 1 - v) >= margin)
    if inner.any():
        density = np.where(inner, density, -1)
    best = np.lexsort((jj, ii, -density))[0]
    return (float(u[best]), float(v[best]))


TRANSECT_COARSE = 32         # points per side of the map that places a transect by default
TREND_OFFSET_DEG = 20.0      # default chords run this far from the boundary's trend (measured:
                             # 15 missed a straight boundary, 30 read D = 1.8 at -0.06)
TREND_MIN_STRENGTH = 0.1     # below this the boundary has no net direction (a closed curve)
FALLBACK_ANGLE_DEG = 30.0    # the chords' angle then: parallel to neither axis


def sign_flux(scores):
    """Net direction of a score map's boundary: the sum of its sign gradients.

    Each 2 x 2 cell's gradient of ``sign(score)`` (rows = v, columns = u) points from the
    negative side to the positive side and is nonzero only on the boundary. Its sum over the map
    depends only on the signs along the map's edges: for a boundary that crosses the window
    as a graph ``v = f(u)``, however rough, it is perpendicular to the graph's mean direction
    (the rough wiggles cancel); for a closed curve inside the window it is zero.

    Parameters
    ----------
    scores : (n, m) array_like of float
        Scores at grid points, rows along v, columns along u (NaN counts as no sign).

    Returns
    -------
    flux : (2,) ndarray of float
        Summed gradient ``(du, dv)``, in sign steps.
    total : float
        Summed length of the cells' gradients (the boundary's size, same units).
    """
    s = np.nan_to_num(np.sign(np.asarray(scores, dtype=np.float64)))
    du = (s[:-1, 1:] + s[1:, 1:] - s[:-1, :-1] - s[1:, :-1]) / 2
    dv = (s[1:, :-1] + s[1:, 1:] - s[:-1, :-1] - s[:-1, 1:]) / 2
    return np.array([du.sum(), dv.sum()]), float(np.hypot(du, dv).sum())


def transect_angle(maps, *, centre, lines, length=None, endpoints=False):
    """The default chord angle (degrees from the u axis) for the boundary in ``maps``.

    A chord crossing a rough graph-like boundary steeply sees the boundary plus a linear term
    that swamps its wiggles above a crossover scale (about ``tan(t)^(-1 / (D - 1))`` of the
    window for a relative angle ``t``), so a fit over the chord's lags reads the smooth regime:
    measured on Weierstrass regions, ``D = 1.2`` read 1.000 at 90 degrees to the trend and
    -0.12 at 75. A chord along the trend never crosses a straight boundary, so the chords run
    ``TREND_OFFSET_DEG`` to one side of the trend found by :func:`sign_flux` (within 6 degrees
    of the truth on Weierstrass regions at every orientation): the side whose chords (``lines``
    through ``centre``, as :func:`transect_points` lays them) cross the maps' boundary more
    often. A bent boundary (an L whose arms meet in the window) has a mean direction that
    one side's chords can run along, parallel to an arm, and miss. Where the boundary has no
    net direction (``|flux| / total < TREND_MIN_STRENGTH``: a closed curve, or a tangle, where
    no orientation is steeper than another) the angle is ``FALLBACK_ANGLE_DEG``.

    Parameters
    ----------
    maps : sequence of (n, n) array_like of float
        Score maps of the same window (rows along v); their fluxes and crossings add, so
        several architectures' maps give one angle for all.
    centre : (u, v) window units
        Where the chords will go through.
    lines, length
        As :func:`transect_points` will be given them.
    endpoints : bool, optional
        The maps' pixels sit at ``k / (n - 1)`` (a grid run) rather than ``(k + 0.5) / n``.

    Returns
    -------
    angle_deg : float
    info : dict
        ``angle_source`` (``'boundary trend'`` or ``'fallback: no net boundary direction'``),
        ``trend_deg`` (the trend, degrees in [0, 180), or None), ``trend_strength`` and
        ``coarse_crossings`` (sign changes of the maps along the chords, per side tried).
    """
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    flux, total = np.zeros(2), 0.0
    for m in maps:
        f, t = sign_flux(m)
        flux, total = flux + f, total + t
    strength = float(np.hypot(*flux) / total) if total > 0 else 0.0
    if strength < TREND_MIN_STRENGTH:
        return FALLBACK_ANGLE_DEG, {"angle_source": "fallback: no net boundary direction",
                                    "trend_deg": None, "trend_strength": strength}
    trend = (math.degrees(math.atan2(flux[1], flux[0])) + 90.0) % 180.0
    sides = [(trend + TREND_OFFSET_DEG) % 180.0, (trend - TREND_OFFSET_DEG) % 180.0]
    crossings = [sum(_map_crossings(m, a, centre, lines, length, endpoints) for m in maps)
                 for a in sides]
    # ties (a symmetric boundary) keep the first side
    angle = sides[int(np.argmax(crossings))]
    return angle, {"angle_source": "boundary trend", "trend_deg": float(trend),
                   "trend_strength": strength, "coarse_crossings": [int(c) for c in crossings]}


def _map_crossings(scores, angle_deg, centre, lines, length, endpoints):
    """Sign changes of a score map read along the chords (nearest pixel, 4 samples a pixel)."""
    n = scores.shape[0]
    pts = transect_points(4 * n, lines=lines, angle_deg=angle_deg, centre=centre, length=length)
    if endpoints:
        idx = np.rint(pts * (n - 1))
    else:
        idx = np.floor(pts * n)
    idx = np.clip(idx, 0, n - 1).astype(int)
    signs = np.sign(scores[idx[..., 1], idx[..., 0]])          # (lines, 4n)
    return int(((signs[:, 1:] * signs[:, :-1]) < 0).sum())


def transect_dimension(evaluate, *, n_points=1 << 14, lines=1, angle_deg=None,
                       centre=None, length=None, seed=0, n_boot=200):
    """Dimension from sign changes along segments across the boundary.

    ``lines`` parallel segments of ``n_points`` equally spaced points each (see
    :func:`transect_points`). A ``TRANSECT_COARSE`` x ``TRANSECT_COARSE`` coarse map (run
    unless both ``centre`` and ``angle_deg`` are given) places and orients them. By default
    (``centre=None``) the chords go through the densest boundary of the window, so that they
    cross it where it is most convoluted. Short
    segments were measured and not kept: on a circle a segment meets the boundary once, too few
    sign changes for any fit, and on the D = 1.2 curve they read +0.13 high. By default
    (``angle_deg=None``) they run ``TREND_OFFSET_DEG`` from the boundary's mean direction
    (:func:`transect_angle`): a fixed angle can be steep to a boundary of unknown orientation,
    and a steep chord reads a rough boundary as smooth. For each dyadic lag
    ``s = 1, 2, 4, ... <= n_points / 16``, the pairs of points ``s`` apart whose signs differ,
    divided by ``s``, count the sign changes seen at that scale: ``C(s) ~ s^-(D - 1)``. Counting
    lag pairs (not boxes of the finest sampling) keeps the count's small-scale bias the same at
    every lag: a box count misses the crossings that come in pairs between two samples, a
    miss that grows with the lag's ratio to the spacing and biases the slope low.

    Validity rule: a lag enters the fit with at least ``MIN_CHANGES`` sign changes, and the
    fitted lags must span ``MIN_FIT_DECADES`` decades. The 95% interval is the 2.5-97.5% range
    over ``n_boot`` bootstrap replicates of blocks (``N_BLOCKS`` per segment; pairs belong to the
    block of their first point) with the fit range drawn too (the change threshold between 4
    and 16, and a contiguous window of the fitted lags covering half to all of their decades).

    Returns
    -------
    SamplingEstimate
        ``method='transect'``; ``scales`` are lags in window units; ``extra`` records the
        angle used and where it came from (``angle_source``, ``trend_deg``, ``trend_strength``).
    """
    check_transect_args(n_points, lines, angle_deg, length)
    used, spread = 0, 0.5
    orientation = {"angle_source": "given"}
    if centre is None or angle_deg is None:
        grid = _grid_centres(TRANSECT_COARSE)
        coarse_scores = np.asarray(evaluate(grid), dtype=np.float64)
        used = len(grid)
        coarse_map = coarse_scores.reshape(TRANSECT_COARSE, TRANSECT_COARSE)
        if centre is None:
            centre = densest_boundary_cell(coarse_map)
            if centre is None:
                return _no_estimate("transect", REASON_NO_BOUNDARY, used)
        if angle_deg is None:
            angle_deg, orientation = transect_angle([coarse_map], centre=centre, lines=lines,
                                                    length=length)
    pts = transect_points(n_points, lines=lines, angle_deg=angle_deg, centre=centre,
                          length=length, spread=spread)
    step = np.linalg.norm(pts[0, 1] - pts[0, 0])
    if not step > 0:
        raise SamplingError("length", "the segment has zero length inside the window "
                            "(allowed: a centre inside the window)")
    scores = np.asarray(evaluate(pts.reshape(-1, 2)), dtype=np.float64).reshape(lines, n_points)
    return transect_estimate(np.sign(scores), step, seed=seed, n_boot=n_boot, coarse=used,
                             extra={"lines": int(lines), "angle_deg": float(angle_deg),
                                    **orientation,
                                    "centre": [float(c) for c in centre],
                                    "segment": [pts[0, 0].tolist(), pts[0, -1].tolist()]})


def transect_block_counts(signs):
    """Differing pairs per (segment, block, lag): (lines, N_BLOCKS, lags) int, and the lags."""
    signs = np.asarray(signs)
    lines, n = signs.shape
    lags = 2 ** np.arange(int(math.log2(max(n // 16, 1))) + 1)
    block = n // N_BLOCKS
    counts = np.zeros((lines, N_BLOCKS, len(lags)), dtype=np.int64)
    for j, lag in enumerate(lags):
        differ = (signs[:, lag:] * signs[:, :-lag]) < 0       # (lines, n - lag)
        # pad to n so the blocks of the first point are whole
        padded = np.zeros((lines, N_BLOCKS * block), dtype=bool)
        m = min(N_BLOCKS * block, n - lag)
        padded[:, :m] = differ[:, :m]
        counts[:, :, j] = padded.reshape(lines, N_BLOCKS, block).sum(-1)
    return counts, lags


def _transect_fit(lags, changes, min_changes, window=None, cap=np.inf):
    mask = (changes >= min_changes) & (lags <= cap * (1 + 1e-9))
    mask = _sub_window(lags.astype(float), mask, window)
    if not _fit_span_ok(lags.astype(float), mask):
        return None, mask
    slope, _ = _fit_exponent(np.log(lags[mask]), np.log(changes[mask]), changes[mask],
                             np.zeros(mask.sum(), int))
    return slope, mask


def transect_estimate(signs, step, *, seed=0, n_boot=200, extra=None, coarse=0):
    """The transect fit of :func:`transect_dimension` on given signs (lines, n_points);
    ``coarse``: evaluations spent placing the segments (counted in ``evaluations``)."""
    signs = np.asarray(signs)
    lines, n = signs.shape
    counts, lags = transect_block_counts(signs)
    changes = counts.sum((0, 1)) / lags
    extra = dict(extra or {}, n_boot=int(n_boot), n_points=int(n))
    all_slope, all_mask = _transect_fit(lags, changes, MIN_CHANGES)
    cap = _small_cap(lags.astype(float), all_mask)
    slope, mask = _transect_fit(lags, changes, MIN_CHANGES, cap=cap)
    scales = lags * step
    slope_scales, local = _local_slopes(scales, np.where(changes > 0, changes, np.nan),
                                        np.zeros(len(lags), int), lambda a: 1 - a)
    if slope is None:
        reason = REASON_NO_BOUNDARY if counts.sum() == 0 else REASON_TOO_FEW
        return SamplingEstimate(None, None, None, "transect", False, reason, lines * n + coarse, scales,
                                changes, counts.sum((0, 1)), np.zeros(len(lags), int), mask,
                                slope_scales, local, extra=extra)
    rng = np.random.default_rng(seed)
    units = counts.reshape(lines * N_BLOCKS, len(lags))
    dims = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, len(units), len(units))
        b_changes = units[pick].sum(0) / lags
        min_changes = int(round(math.exp(rng.uniform(math.log(4), math.log(16)))))
        b_slope, _ = _transect_fit(lags, b_changes, min_changes, rng.random(2), cap)
        if b_slope is not None:
            dims.append(1 - b_slope)
    dim = 1 - slope
    if len(dims) < 10:
        return SamplingEstimate(None, None, None, "transect", False,
                                "bootstrap replicates mostly failed the fit rule", lines * n + coarse,
                                scales, changes, counts.sum((0, 1)),
                                np.zeros(len(lags), int), mask, slope_scales, local, extra=extra)
    lo, hi = np.percentile(dims, [2.5, 97.5])
    extra.update(fit_decades=float(math.log10(lags[mask].max() / lags[mask].min())),
                 boot_ok=len(dims),
                 all_scales_dimension=None if all_slope is None else float(1 - all_slope))
    return SamplingEstimate(float(dim), float(min(lo, dim)), float(max(hi, dim)), "transect",
                            True, "", lines * n + coarse, scales, changes, counts.sum((0, 1)),
                            np.zeros(len(lags), int), mask, slope_scales, local, extra=extra)
