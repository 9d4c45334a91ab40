"""The uncertainty exponent of a boundary that is a fractal curve wrapped in a chaotic band.

McDonald, Grebogi, Ott & Yorke (1985), "Fractal basin boundaries": the fraction ``f(eps)`` of
point pairs ``eps`` apart whose outcomes differ scales as ``eps^(2 - D)``. Near a trainability
boundary the outcome after finitely many steps is also partly chaotic: a move of a few rounding
units flips a fraction of the points, at every distance. Each stage's ``f`` is then modelled as

    f(eps) = A eps^(2 - D) + F

the curve term (pairs the curve separates) and the chaos term ``F``, measured by moving base
points by a few rounding units (the *chaos floor*). The curve's dimension is read where the curve
term is measurable, above the band; ``eps*``, where the two terms are equal, is the band's scale.

:func:`uncertainty_exponent` draws the pairs (a coarse map, a window stage at the coarse decades,
then stages that zoom onto the boundary), :func:`uncertainty_estimate` fits them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .boxcount import boundary
from .sampling_fit import (
    MIN_FIT_DECADES,
    REASON_NO_BOUNDARY,
    REASON_TOO_FEW,
    SamplingError,
    SamplingEstimate,
    contiguous,
    decades,
    fit_exponent,
    fit_span_ok,
    grid_centres,
    local_slopes,
    no_estimate,
    percentile_interval,
    small_cap,
    sub_window,
)

__all__ = [
    "REASON_CHAOS",
    "Stage",
    "check_uncertainty_args",
    "coarse_boundary_cells",
    "uncertainty_estimate",
    "uncertainty_exponent",
]

REASON_CHAOS = "chaotic: fewer than 1.5 decades of eps above the chaotic band"

MIN_HITS = 16            # differing pairs at one eps for it to enter the fit (Poisson error 25%)
MIN_STAGE_BASE = 2000    # base points of a stage at least (a smaller one is not run)
CENTRE_HITS = 32         # differing pairs at the eps the next stage zooms to
FLOOR_FACTOR = 3.0       # an eps is fitted only while f(eps) >= this x the stage's chaos floor
FLOOR_SHARE = 1.0        # the share of the chaos floor subtracted from f: the curve term
SHARE_LOW, SHARE_HIGH = 1.0, 1.0   # bootstrap replicates draw the share in this range
EPS_PER_DECADE = 3
STAGE_DECADES = 2.0      # each stage zooms its squares by 10^2
EPS_CAP = 0.25           # eps <= EPS_CAP * square side: beyond, pairs leave the boundary's square
WINDOW_EPS = 0.1         # the largest eps of any stage, window units
WINDOW_BLOCKS = 8        # the window stage's bootstrap clusters: WINDOW_BLOCKS^2 blocks
FLOOR_STAGES = 5         # the chaos floor's batch is reserved for about this many stages


@dataclass
class Stage:
    """One stage's pairs and their outcomes.

    Attributes
    ----------
    eps : (m,) ndarray of float
        Pair distances, window units, largest first.
    hits : (n, m) ndarray of bool
        Whether base point i and its partner at ``eps[j]`` differ in outcome.
    square : (n,) ndarray of int
        The square (bootstrap cluster) of each base point.
    n_squares : int
    base : (n, 2) ndarray of float
        Base points, window units.
    signs : (n,) ndarray of float
        Sign of each base point's score.
    side : float
        Side of the stage's squares, window units (1: the whole window).
    kind : str
        ``'window'`` (base points on the coarse grid), ``'cells'`` (in the coarse map's boundary
        cells) or ``'zoom'`` (in squares around the stage before's differing pairs).
    floor_index, floor_flips : (k,) ndarray
        Base points moved for the chaos floor, and whether each one's outcome flipped.
    """

    eps: np.ndarray
    hits: np.ndarray
    square: np.ndarray
    n_squares: int
    base: np.ndarray
    signs: np.ndarray
    side: float
    kind: str
    floor_index: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    floor_flips: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def per_square(self):
        """Differing pairs (squares, m), base points (squares,), floor points moved (squares,)
        and their flips (squares,) of each square."""
        agg = np.zeros((self.n_squares, len(self.eps)), dtype=np.int64)
        np.add.at(agg, self.square, self.hits)
        fsq = self.square[self.floor_index]
        return (agg, np.bincount(self.square, minlength=self.n_squares),
                np.bincount(fsq, minlength=self.n_squares),
                np.bincount(fsq, weights=self.floor_flips, minlength=self.n_squares))


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


def _eps_grid(hi, lo):
    """Log-spaced eps from hi down to lo, EPS_PER_DECADE per decade, on a fixed lattice
    (10^(k / EPS_PER_DECADE)) so that stages share their eps values."""
    k_hi = math.floor(math.log10(hi) * EPS_PER_DECADE + 1e-9)
    k_lo = math.ceil(math.log10(lo) * EPS_PER_DECADE - 1e-9)
    return 10.0 ** (np.arange(k_hi, k_lo - 1, -1) / EPS_PER_DECADE)


def _partners(rng, base, eps):
    """One partner per eps in a random direction: (n, m, 2)."""
    theta = rng.random((len(base), len(eps))) * 2 * math.pi
    return base[:, None, :] + eps[None, :, None] * np.stack([np.cos(theta), np.sin(theta)],
                                                            axis=-1)


def _pairs(rng, corners, side, n_base, eps, centred):
    """Base points uniform in random squares of the region, and one partner per eps in a
    random direction: base (n, 2), partners (n, m, 2), and the square of each base point (n,)."""
    pick = rng.integers(0, len(corners), n_base)
    offset = rng.random((n_base, 2)) * side
    base = corners[pick] + (offset - side / 2 if centred else offset)
    return base, _partners(rng, base, eps), pick


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
                         eps_floor=None, window_stage=True):
    """Dimension of a boundary's curve, its chaotic band's scale, from pairs of points.

    1. Coarse map: ``coarse`` x ``coarse`` points; its boundary cells are the first zoom's
       region (``coarse=0``: the whole window, base points uniform in it).
    2. Window stage (stage 0, with ``window_stage`` and a coarse map): the coarse map's points
       are base points, each with a partner at every eps from ``WINDOW_EPS`` (0.1 of the window)
       down to the cells' scale, in a random direction: the coarse decades, where a chaotic band
       narrower than the window is a small share of the pairs.
    3. Zoom stages draw base points uniformly in their squares of side ``h`` and give each a
       partner at every eps of its range: ``h / 10^stage_decades / 4 <= eps <= h / 4`` (the last
       stage down to ``eps_min``). The next stage's squares, of side ``h / 10^stage_decades``,
       are centred on the midpoints of this stage's differing pairs at eps between ``h / 16``
       and ``h / 2`` of the new side: each holds boundary. The budget is split evenly over the
       zoom stages, so each decade costs the same and ``f(eps)`` stays measurable to ``eps_min``.
    4. Chaos floor (``floor_points > 0``): one more batch moves up to ``floor_points`` base points
       of every stage by ``eps_floor`` (default ``eps_min / 1000``); the fraction whose outcome
       flips is the stage's chaos term ``F``. An analytic boundary has none.
    5. The fit (:func:`uncertainty_estimate`): ``D``, ``eps*`` and their intervals.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(points (k, 2)) -> scores (k,)``, window units (``nnfractal.estimators
        .sampling``). Called once for the coarse map, once per stage, once for the chaos floor.
    budget : int, optional
        Evaluations in all (coarse map included); default 2^18, one 512 x 512 grid's worth.
    eps_min : float, optional
        Smallest pair distance, window units: down to what the scores' precision resolves.
    coarse : int, optional
        Points per side of the coarse map (0: base points uniform in the window).
    seed, n_boot : int, optional
    stage_decades : float, optional
        Decades of eps per zoom stage.
    floor_points : int, optional
        Base points moved per stage for the chaos floor (0: none, ``F = 0``).
    eps_floor : float, optional
        Their move, window units.
    window_stage : bool, optional
        Run the window stage (False replays samples drawn before it existed, point for point).

    Returns
    -------
    SamplingEstimate
        ``method='uncertainty'``.
    """
    check_uncertainty_args(budget, eps_min, coarse)
    rng = np.random.default_rng(seed)
    used, stages, notes = 0, [], []
    corners, side, centred = np.zeros((1, 2)), 1.0, False
    reserve = (FLOOR_STAGES if window_stage else 4) * int(floor_points)
    if coarse:
        grid = grid_centres(coarse)
        coarse_scores = np.asarray(evaluate(grid), dtype=np.float64)
        used += len(grid)
        # Boundary cells only, no guard ring: the base points need to sample the boundary
        # representatively, not to find all of it, and a ring would triple the cells that hold
        # none (measured: a third of the differing pairs at small eps on a circle).
        corners, side = coarse_boundary_cells(coarse_scores.reshape(coarse, coarse), guard=0)
        if len(corners) == 0:
            return no_estimate("uncertainty", REASON_NO_BOUNDARY, used)
        if window_stage:
            stage = _window_stage(evaluate, rng, grid, coarse_scores, side,
                                  budget - reserve - used, notes)
            if stage is not None:
                stages.append(stage)
                used += stage.hits.size
    used = _zoom_stages(evaluate, rng, stages, corners, side, centred, used, budget - reserve,
                        eps_min, stage_decades, window_stage, notes)
    if floor_points and stages:
        per_stage = min(int(floor_points), (budget - used) // len(stages))
        used += _chaos_floor(evaluate, stages, per_stage,
                             eps_min / 1000 if eps_floor is None else eps_floor, rng)
    return uncertainty_estimate(stages, used, seed=seed, n_boot=n_boot, notes=notes,
                                stage_decades=stage_decades, floored=bool(floor_points))


def _window_stage(evaluate, rng, grid, scores, cell, room, notes):
    """Stage 0: the coarse map's points as base points, partners from WINDOW_EPS down to the
    first zoom stage's top; None (with a note) when it would leave no room for a zoom stage."""
    eps = _eps_grid(WINDOW_EPS, EPS_CAP * cell)
    eps = eps[eps > EPS_CAP * cell * (1 + 1e-9)]
    one_zoom = MIN_STAGE_BASE * (1 + math.ceil(STAGE_DECADES * EPS_PER_DECADE) + 1)
    if len(eps) == 0 or len(grid) * len(eps) + one_zoom > room:
        notes.append("no window stage: the budget leaves no room for it beside one zoom stage")
        return None
    partners = _partners(rng, grid, eps)
    sp = np.sign(np.asarray(evaluate(partners.reshape(-1, 2)), dtype=np.float64))
    sb = np.sign(scores)
    block = np.minimum((grid * WINDOW_BLOCKS).astype(int), WINDOW_BLOCKS - 1)
    return Stage(eps=eps, hits=(sb[:, None] * sp.reshape(len(grid), len(eps))) < 0,
                 square=block[:, 1] * WINDOW_BLOCKS + block[:, 0],
                 n_squares=WINDOW_BLOCKS ** 2, base=grid, signs=sb, side=1.0, kind="window")


def _zoom_stages(evaluate, rng, stages, corners, side, centred, used, budget, eps_min,
                 stage_decades, capped, notes):
    """Run zoom stages into `stages` until eps_min or the budget; returns evaluations used."""
    decades_per_stage = stage_decades          # updated with the depth each stage reached
    first = len(stages)
    while True:
        top = EPS_CAP * side if not capped else min(EPS_CAP * side, WINDOW_EPS)
        n_left = max(1, math.ceil(math.log10(top / eps_min) / decades_per_stage - 1e-9))
        last = n_left == 1
        eps = _eps_grid(top, eps_min if last else max(eps_min, top * 10.0 ** -stage_decades))
        # Every stage gets at least MIN_STAGE_BASE base points: a thin stage measures nothing,
        # so a small budget reaches fewer decades instead of many noisy ones.
        n_base = max((budget - used) // n_left, MIN_STAGE_BASE * (1 + len(eps))) // (1 + len(eps))
        if used + n_base * (1 + len(eps)) > budget:
            n_base = (budget - used) // (1 + len(eps))
            if n_base < MIN_STAGE_BASE:
                notes.append(f"budget spent after {len(stages)} stage(s), at eps {top:.1e}")
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
        stages.append(Stage(eps=eps, hits=hits, square=square, n_squares=len(corners),
                            base=base, signs=sb, side=side,
                            kind="cells" if len(stages) == first else "zoom"))
        if last:
            break
        zoom = _next_squares(stages[-1], partners, side, notes)
        if zoom is None:
            break
        corners, new_side = zoom
        decades_per_stage = max(0.5, math.log10(side / new_side))
        side, centred = new_side, True
    return used


def _next_squares(stage, partners, side, notes):
    """The next stage zooms to where this one still counts CENTRE_HITS differing pairs: its
    squares (side 2 eps*) are centred on pairs at eps* / 8 .. eps*, so each holds boundary.
    Returns (centres, side) or None (with a note)."""
    eps, hits = stage.eps, stage.hits
    counted = np.flatnonzero(hits.sum(0) >= CENTRE_HITS)
    if len(counted) == 0:
        notes.append(f"stopped after this stage: no eps with {CENTRE_HITS} differing pairs "
                     "to centre the next stage on")
        return None
    eps_star = eps[counted.max()]
    if 2 * eps_star > side / 3:
        notes.append(f"stopped after this stage: differing pairs too rare to zoom below eps "
                     f"{eps_star:.1e}")
        return None
    near = (eps >= eps_star / 8) & (eps <= eps_star)
    bi, ej = np.nonzero(hits[:, near])
    return (stage.base[bi] + partners[bi, np.flatnonzero(near)[ej]]) / 2, 2 * eps_star


def _chaos_floor(evaluate, stages, floor_points, eps_floor, rng):
    """Flip fraction of base points of every stage moved by eps_floor, in one batch: the first
    ones of a stage with random base points, a random choice on the window stage's grid."""
    moved = []
    for st in stages:
        k = min(int(floor_points), len(st.base))
        st.floor_index = (np.sort(rng.choice(len(st.base), k, replace=False))
                          if st.kind == "window" else np.arange(k))
        theta = rng.random(k) * 2 * math.pi
        moved.append(st.base[st.floor_index]
                     + eps_floor * np.stack([np.cos(theta), np.sin(theta)], axis=1))
    scores = np.sign(np.asarray(evaluate(np.concatenate(moved)), dtype=np.float64))
    at = 0
    for st in stages:
        k = len(st.floor_index)
        st.floor_flips = scores[at:at + k] * st.signs[st.floor_index] < 0
        at += k
    return at


# ---------------------------------------------------------------------------
# The fit: curve term above the band, chaos term from the floor


@dataclass
class _Counts:
    """Flat arrays over every (stage, eps), and each stage's chaos floor."""

    scales: np.ndarray          # (n,) eps
    stage: np.ndarray           # (n,) stage index
    n: np.ndarray               # (n,) pairs
    hits: np.ndarray            # (n,) differing pairs
    moved: np.ndarray           # (stages,) floor points moved
    flips: np.ndarray           # (stages,) of them flipped

    @property
    def fraction(self):
        return self.hits / np.maximum(self.n, 1)

    @property
    def floor(self):
        """(stages,) F: the flip fraction of each stage's floor points (0 where none moved)."""
        return np.where(self.moved > 0, self.flips / np.maximum(self.moved, 1), 0.0)


def _counts(stages, squares, pick=None):
    """Counts of the stages, their squares resampled by `pick` (a list of square indices per
    stage; None keeps them all)."""
    hits, n, moved, flips = [], [], [], []
    for i, (agg, per, fmoved, fflips) in enumerate(squares):
        sel = slice(None) if pick is None else pick[i]
        hits.append(agg[sel].sum(0))
        n.append(np.full(agg.shape[1], per[sel].sum()))
        moved.append(fmoved[sel].sum())
        flips.append(fflips[sel].sum())
    return _Counts(scales=np.concatenate([st.eps for st in stages]),
                   stage=np.concatenate([np.full(len(st.eps), i) for i, st in enumerate(stages)]),
                   n=np.concatenate(n), hits=np.concatenate(hits), moved=np.array(moved),
                   flips=np.array(flips, dtype=float))


@dataclass
class _Fit:
    slope: float
    offsets: dict
    mask: np.ndarray
    floor: np.ndarray

    @property
    def dimension(self):
        return 2.0 - self.slope

    def eps_star(self, counts):
        """Where the curve term equals the chaos term: per stage with both a fitted amplitude
        and flips, ``(F / A)^(1 / (2 - D))``; their geometric mean weighted by the flips (the
        floor's Poisson precision). None without such a stage or with ``D >= 2``."""
        if not self.slope > 0:
            return None
        logs, weights = [], []
        for s, off in self.offsets.items():
            if self.floor[s] > 0:
                logs.append((math.log(self.floor[s]) - off) / self.slope)
                weights.append(counts.flips[s])
        if not logs:
            return None
        return float(math.exp(np.average(logs, weights=weights)))


def _curve(counts, chaos, share=FLOOR_SHARE):
    """f, the chaos term F of each scale's stage, and the curve term f - share * F
    (chaos=False: the chaos counted as boundary, F = 0)."""
    f = counts.fraction
    floor = counts.floor if chaos else np.zeros(len(counts.moved))
    per_scale = floor[counts.stage]
    return f, per_scale, f - share * per_scale, floor


def _curve_fit(counts, min_hits, window=None, cap=np.inf, chaos=True, share=None):
    """The weighted power-law fit of the curve term over the eps its rules keep, or None.

    An eps is kept, per stage from the largest down (:func:`contiguous`), while it has
    ``min_hits`` differing pairs, ``f >= FLOOR_FACTOR * F`` and a positive curve term; then
    those up to `cap`, inside `window` (:func:`sub_window`)."""
    f, per_scale, curve, floor = _curve(counts, chaos, FLOOR_SHARE if share is None else share)
    ok = (counts.hits >= min_hits) & (f >= FLOOR_FACTOR * per_scale) & (curve > 0)
    mask = contiguous(counts.scales, counts.stage, ok) & (counts.scales <= cap * (1 + 1e-9))
    mask = sub_window(counts.scales, mask, window)
    if not fit_span_ok(counts.scales, mask):
        return None
    x, y, st = np.log(counts.scales[mask]), np.log(curve[mask]), counts.stage[mask]
    n, fm, base = counts.n[mask], f[mask], per_scale[mask]
    # Var(log c) ~ f (1 - f) / (n c^2) for a binomial f less a fixed F; the second pass takes
    # f and c from the first fit, not the observed ones, so that an eps that fluctuated up does
    # not also weigh more.
    weight = n * curve[mask] ** 2 / np.maximum(fm * (1 - fm), 1e-12)
    slope, offsets = fit_exponent(x, y, weight, st)
    if slope is None:
        return None
    fitted = np.exp(slope * x + np.array([offsets[int(k)] for k in st]))
    f_fit = np.clip(fitted + base, 1e-12, 0.999)
    slope, offsets = fit_exponent(x, y, n * fitted ** 2 / (f_fit * (1 - f_fit)), st)
    if slope is None:
        return None
    return _Fit(slope, offsets, mask, floor)


def _bootstrap(stages, squares, cap, rng, n_boot, chaos):
    """Dimension and eps* of n_boot replicates: the squares of every stage resampled with their
    base points and floor points, the hit threshold drawn between 8 and 32 and a fit window."""
    dims, stars = [], []
    for _ in range(int(n_boot)):
        pick = [rng.integers(0, len(sq[1]), len(sq[1])) for sq in squares]
        counts = _counts(stages, squares, pick)
        min_hits = int(round(math.exp(rng.uniform(math.log(8), math.log(32)))))
        fit = _curve_fit(counts, min_hits, rng.random(2), cap, chaos, _draw_share(rng))
        if fit is not None:
            dims.append(fit.dimension)
            star = fit.eps_star(counts)
            if star is not None:
                stars.append(math.log10(star))
    return dims, stars


def _draw_share(rng):
    """The share of the chaos floor a bootstrap replicate subtracts: uniform in
    [SHARE_LOW, SHARE_HIGH]."""
    return float(rng.uniform(SHARE_LOW, SHARE_HIGH))


def _fit_with_interval(stages, squares, rng, n_boot, chaos=True):
    """The curve fit (smallest 3+ decades of the eps the rules keep), its 95% interval and
    eps*'s, or None when the rules leave too little to fit.

    Cluster bootstrap: the squares of every stage are resampled with their base points, so the
    interval carries which stretches of boundary the stages happened to zoom into, not only the
    scatter of the points within them; the hit threshold and a fit window are drawn too (the
    window carries the log-periodic wobble of self-affine curves' local slopes)."""
    counts = _counts(stages, squares)
    every = _curve_fit(counts, MIN_HITS, chaos=chaos)
    all_mask = _curve_fit_mask(counts, chaos)
    cap = small_cap(counts.scales, all_mask)
    fit = _curve_fit(counts, MIN_HITS, cap=cap, chaos=chaos)
    if fit is None:
        return None
    dims, stars = _bootstrap(stages, squares, cap, rng, n_boot, chaos)
    interval = percentile_interval(fit.dimension, dims)
    if interval is None:
        return None
    star = fit.eps_star(counts)
    star_ci = percentile_interval(math.log10(star), stars) if star is not None else None
    return {"fit": fit, "counts": counts, "dimension": fit.dimension, "ci_low": interval[0],
            "ci_high": interval[1], "eps_star": star,
            "eps_star_ci": None if star_ci is None else (10 ** star_ci[0], 10 ** star_ci[1]),
            "eps_star_boot": len(stars), "boot_ok": len(dims),
            "fit_decades": decades(counts.scales, fit.mask),
            "all_scales_dimension": None if every is None else every.dimension,
            "all_scales_decades": decades(counts.scales, all_mask)}


def _curve_fit_mask(counts, chaos):
    """The eps the rules keep before the cap (for the cap and the all-scales span)."""
    f, per_scale, curve, _ = _curve(counts, chaos)
    ok = (counts.hits >= MIN_HITS) & (f >= FLOOR_FACTOR * per_scale) & (curve > 0)
    return contiguous(counts.scales, counts.stage, ok)


def uncertainty_estimate(stages, used, *, seed=0, n_boot=200, notes=(),
                         stage_decades=STAGE_DECADES, floored=False):
    """The fit of :func:`uncertainty_exponent` on given stages.

    Each stage's ``f(eps) = A eps^(2 - D) + F``. ``F`` is the stage's chaos floor, measured, never
    fitted; the curve term ``f - F`` is fitted (a weighted least-squares line of its log on
    ``log eps``, one offset ``log A`` per stage, common slope ``2 - D``) over the eps where it is
    measurable: at least ``MIN_HITS`` differing pairs and ``f >= FLOOR_FACTOR * F``, from each
    stage's largest eps down to the first that fails (the band takes over below), and of those
    the smallest ``SMALL_SCALE_SHARE`` of the decades (at least ``SMALL_SCALE_DECADES``). Fewer
    than ``MIN_FIT_DECADES`` decades: no dimension (``REASON_CHAOS`` where a floor cut them).

    ``eps*``, the band's scale, is where the fitted curve term equals ``F``
    (:meth:`_Fit.eps_star`). The 95% intervals of ``D`` and ``eps*`` are the 2.5-97.5% ranges
    over ``n_boot`` cluster-bootstrap replicates (:func:`_fit_with_interval`).

    Parameters
    ----------
    stages : list of Stage
    used : int
        Evaluations spent (reported).
    seed, n_boot : int, optional
    notes : sequence of str, optional
        How the stages ended (reported in ``extra``).
    floored : bool, optional
        A chaos floor was measured (the fit with the chaos counted as boundary is added).

    Returns
    -------
    SamplingEstimate
    """
    notes = list(notes)
    if not stages:
        return no_estimate("uncertainty", REASON_TOO_FEW, used, extra={"notes": notes})
    if not any(st.hits.any() for st in stages):        # not one pair differed anywhere
        return no_estimate("uncertainty", REASON_NO_BOUNDARY, used, extra={"notes": notes})
    rng = np.random.default_rng([int(seed), 0x5EED])
    squares = [st.per_square() for st in stages]
    counts = _counts(stages, squares)
    fit = _fit_with_interval(stages, squares, rng, n_boot)
    extra = _stage_extra(stages, counts, notes, stage_decades, n_boot)
    if floored and counts.flips.sum() > 0:
        # The same fit with the chaos counted as boundary, as a box count of the outcome map would
        # count it: where the floor dominates, this is the plane-filling reading (D near 2).
        chaos = _fit_with_interval(stages, squares, rng, n_boot, chaos=False)
        extra["counting_chaos"] = None if chaos is None else {
            k: chaos[k] for k in ("dimension", "ci_low", "ci_high", "fit_decades")}
    evidence = _evidence(counts, None if fit is None else fit["fit"])
    if fit is None:
        return no_estimate("uncertainty", _refusal(counts), used, extra=extra, **evidence)
    mask = fit["fit"].mask
    extra.update(fit_decades=fit["fit_decades"],
                 eps_fit=[float(counts.scales[mask].min()), float(counts.scales[mask].max())],
                 boot_ok=fit["boot_ok"], eps_star_boot=fit["eps_star_boot"],
                 all_scales_dimension=fit["all_scales_dimension"],
                 all_scales_decades=fit["all_scales_decades"])
    star_ci = fit["eps_star_ci"] or (None, None)
    return SamplingEstimate(dimension=fit["dimension"], ci_low=fit["ci_low"],
                            ci_high=fit["ci_high"], method="uncertainty", ok=True, reason="",
                            evaluations=int(used), eps_star=fit["eps_star"],
                            eps_star_low=star_ci[0], eps_star_high=star_ci[1], extra=extra,
                            **evidence)


def _stage_extra(stages, counts, notes, stage_decades, n_boot):
    floor = counts.floor
    return {"stages": len(stages), "stage_kind": [st.kind for st in stages],
            "stage_side": [float(st.side) for st in stages],
            "base_points": [int(st.hits.shape[0]) for st in stages],
            "squares": [int(st.n_squares) for st in stages],
            "chaos_floor": [float(x) for x in floor] if counts.moved.sum() else None,
            "chaos_interval": [list(_wilson(k, m)) for k, m in zip(counts.flips, counts.moved)],
            "floor_points": [int(m) for m in counts.moved],
            "stage_decades": stage_decades, "notes": notes, "n_boot": int(n_boot)}


def _wilson(k, m, z=1.96):
    """95% Wilson interval of a binomial fraction k / m ((0, 1) when m = 0)."""
    if m <= 0:
        return 0.0, 1.0
    p = k / m
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _evidence(counts, fit):
    """The per-scale and per-stage arrays of the estimate (fit None: nothing fitted)."""
    f, _, curve, floor = _curve(counts, True)
    offsets = {} if fit is None else fit.offsets
    ref = offsets[min(offsets)] if offsets else 0.0
    # one line for the plot: every stage's curve term moved onto the first fitted stage's
    shift = np.array([math.exp(ref - offsets.get(int(s), ref)) for s in counts.stage])
    values = np.where(curve > 0, curve * shift, np.nan)
    slope_scales, local = local_slopes(counts.scales, curve, counts.stage, lambda a: 2 - a)
    amplitude = np.array([math.exp(offsets[s]) if s in offsets else np.nan
                          for s in range(len(counts.moved))])
    return dict(scales=counts.scales, values=values, raw_values=f,
                hits=counts.hits.astype(int), stage=counts.stage,
                fit_mask=np.zeros(len(f), bool) if fit is None else fit.mask,
                slope_scales=slope_scales, local_slopes=local, chaos_fraction=floor,
                amplitude=amplitude)


def _refusal(counts):
    """Why no dimension: the band (with its scale) where a chaos floor cut the decades short,
    else too few differing pairs."""
    f, per_scale, curve, _ = _curve(counts, True)
    measurable = (counts.hits >= MIN_HITS) & (curve > 0)
    kept = contiguous(counts.scales, counts.stage, measurable & (f >= FLOOR_FACTOR * per_scale))
    cut = measurable & ~kept & (f < FLOOR_FACTOR * per_scale)
    if not cut.any():
        return REASON_TOO_FEW
    band = float(counts.scales[cut].max())
    span = decades(counts.scales, kept)
    return (f"{REASON_CHAOS} (the curve term is measurable over {span:.1f} decades"
            + (f", eps {counts.scales[kept].min():.1e}..{counts.scales[kept].max():.1e}"
               if kept.any() else "")
            + f"; the band takes over below eps {band:.1e}, where f < {FLOOR_FACTOR:g} x the "
            f"chaos floor; at least {MIN_FIT_DECADES} decades are needed)")
