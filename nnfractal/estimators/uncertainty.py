"""The uncertainty exponent of a boundary that is a fractal curve wrapped in a chaotic band.

McDonald, Grebogi, Ott & Yorke (1985), "Fractal basin boundaries": the fraction ``f(eps)`` of
point pairs ``eps`` apart whose outcomes differ scales as ``eps^(2 - D)``. Near a trainability
boundary the outcome after finitely many steps is also partly chaotic: a move of a few rounding
units flips a fraction of the points, at every distance. Each stage's ``f`` is then modelled as

    f(eps) = A eps^(2 - D) + chaos term

the curve term (pairs the curve separates) and the pairs that differ through chaos: ``F``, the
fraction of base points that flip under a move of a few rounding units (the *chaos floor*),
inside the band, fading where the curve dominates (a chaotic point whose partner is across the
curve differs as often as not). The curve's dimension is read where the curve term is
measurable, above the band; ``eps*``, where the curve term equals ``F``, is the band's scale.

:func:`uncertainty_exponent` draws the pairs (a coarse map, a window stage at the coarse decades,
then stages that zoom onto the boundary), :func:`uncertainty_estimate` fits them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnfractal.window import CENTRES, unit_grid

from .boxcount import boundary
from .sampling_fit import (
    MIN_FIT_DECADES,
    MIN_SLOPE_DECADES,
    REASON_NO_BOUNDARY,
    REASON_TOO_FEW,
    SamplingError,
    SamplingEstimate,
    contiguous,
    decades,
    fit_exponent,
    fit_span_ok,
    local_slopes,
    no_estimate,
    percentile_interval,
    slope_decades,
    small_cap,
    sub_window,
)

__all__ = [
    "REASON_CHAOS",
    "Stage",
    "check_uncertainty_args",
    "coarse_boundary_cells",
    "draw_stages",
    "floor_points_for",
    "uncertainty_estimate",
    "uncertainty_exponent",
]

REASON_CHAOS = "chaotic: fewer than 1.5 decades of eps above the chaotic band"

MIN_HITS = 16            # differing pairs at one eps for it to enter the fit (Poisson error 25%)
MIN_STAGE_BASE = 2000    # base points of a stage at least (a smaller one is not run)
CENTRE_HITS = 32         # differing pairs at the eps the next stage zooms to
FLOOR_FACTOR = 2.0       # an eps is fitted only while f(eps) >= this x the stage's chaos floor
CHAOS_FADE = 1.0         # how fast the chaos term fades above the band (see _curve) ...
CHAOS_FADE_RANGE = (0.0, 2.0)  # ... and the range bootstrap replicates draw it from
EPS_STAR_REACH = 2.0     # eps* is given down to this factor below the smallest eps measured: the
                         # extrapolation the banded validation covers (docs/results/validation.md)
EPS_PER_DECADE = 3
STAGE_DECADES = 2.0      # each stage zooms its squares by 10^2
EPS_CAP = 0.25           # eps <= EPS_CAP * square side: beyond, pairs leave the boundary's square
WINDOW_EPS = 0.1         # the largest eps of any stage, window units
WINDOW_EPS_MIN = 1e-3    # the window stage's smallest eps
WINDOW_SHARE = 64        # the window stage has budget / WINDOW_SHARE base points (about 1/7 of
WINDOW_BASE = (1024, 4096)  # the budget with their partners), within these bounds
WINDOW_BLOCKS = 8        # its bootstrap clusters: WINDOW_BLOCKS^2 blocks of the window
FLOOR_STAGES = 5         # the chaos floors' batches are reserved for about this many stages
FLOOR_SHARE = 64         # default floor points per stage: budget / FLOOR_SHARE, within
FLOOR_POINTS = (512, 4096)  # these bounds (see floor_points_for)
CELLS_SLOPE_SHARE = 0.05  # the cells stage's slope is read at eps <= this x the cells' side


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
        ``'window'`` (base points uniform in the window), ``'cells'`` (in the coarse map's boundary
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


def floor_points_for(budget):
    """Default chaos-floor points per stage for a budget: ``budget / FLOOR_SHARE`` within
    ``FLOOR_POINTS`` (4096 at the default 2^18, 6% of it over the reserved stages).

    ``eps* = (F / A)^(1 / (2 - D))`` raises the floor's error to the power ``1 / (2 - D)``, and a
    floor of a few percent from 512 points is a few tens of flips (20% apart from one draw to the
    next: a factor 2.5 in eps* at D = 1.8). An underestimated floor also lets the fit keep eps
    that are inside the band, which reads D high where the curve term is steep."""
    return int(min(max(int(budget) // FLOOR_SHARE, FLOOR_POINTS[0]), FLOOR_POINTS[1]))


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
    2. Window stage (stage 0, with ``window_stage`` and a coarse map): ``budget /
       WINDOW_SHARE`` base points (1,024 to 4,096) uniform in the window, each with a partner
       at every eps from ``WINDOW_EPS`` (0.1 of the window) down to ``WINDOW_EPS_MIN`` (1e-3),
       in a random direction: the coarse decades, where a chaotic band narrower than the window
       is a small share of the pairs.
    3. Zoom stages draw base points uniformly in their squares of side ``h`` and give each a
       partner at every eps of its range: ``h / 10^stage_decades / 4 <= eps <= h / 4`` (the last
       stage down to ``eps_min``). The next stage's squares, of side ``h / 10^stage_decades``,
       are centred on the midpoints of this stage's differing pairs at eps between ``h / 16``
       and ``h / 2`` of the new side (step 4): each holds boundary. The budget is split evenly
       over the zoom stages, so each decade costs the same and ``f(eps)`` stays measurable to
       ``eps_min``.
    4. Chaos floor (``floor_points > 0``): after each stage, one more batch moves up to
       ``floor_points`` of its base points by ``eps_floor`` (default ``eps_min / 1000``); the
       fraction whose outcome flips is the stage's chaos term ``F`` (an analytic boundary has
       none). The next stage zooms to the smallest eps where the curve still dominates
       (``f >= FLOOR_FACTOR * F``), so that it continues the curve rather than the band.
    5. The fit (:func:`uncertainty_estimate`): ``D``, ``eps*`` and their intervals.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(points (k, 2)) -> scores (k,)``, window units (``nnfractal.estimators
        .sampling``). Called once for the coarse map, and once for each stage and its floor.
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
        False replays samples drawn before the window stage and the per-stage floors existed,
        point for point: no window stage, one floor batch after the last stage, zooms by hits.

    Returns
    -------
    SamplingEstimate
        ``method='uncertainty'``.
    """
    stages, used, notes = draw_stages(evaluate, budget=budget, eps_min=eps_min, coarse=coarse,
                                      seed=seed, stage_decades=stage_decades,
                                      floor_points=floor_points, eps_floor=eps_floor,
                                      window_stage=window_stage)
    if stages is None:
        return no_estimate("uncertainty", REASON_NO_BOUNDARY, used)
    return uncertainty_estimate(stages, used, seed=seed, n_boot=n_boot, notes=notes,
                                stage_decades=stage_decades, floored=bool(floor_points))


def draw_stages(evaluate, *, budget=1 << 18, eps_min=1e-9, coarse=64, seed=0,
                stage_decades=STAGE_DECADES, floor_points=0, eps_floor=None, window_stage=True):
    """The pairs of :func:`uncertainty_exponent` (steps 1-4), not fitted: the same draws for the
    same arguments, so that a fit can be compared with another on identical samples.

    Returns
    -------
    stages : list of Stage, or None
        None when the coarse map holds no boundary.
    used : int
        Evaluations spent.
    notes : list of str
        How the stages ended.
    """
    check_uncertainty_args(budget, eps_min, coarse)
    draw = _Draw(evaluate=evaluate, rng=np.random.default_rng(seed), eps_min=eps_min,
                 stage_decades=stage_decades, floor_points=int(floor_points),
                 eps_floor=eps_min / 1000 if eps_floor is None else eps_floor,
                 current=bool(window_stage))
    # the chaos floor's batches come out of the budget: reserve them for the zoom stages (the
    # window stage's is counted when it is drawn)
    draw.budget = budget - (FLOOR_STAGES - 1 if draw.current else 4) * draw.floor_points
    stages = []
    corners, side, centred = np.zeros((1, 2)), 1.0, False
    if coarse:
        grid = unit_grid(coarse, CENTRES)
        coarse_scores = draw.call(grid)
        # Boundary cells only, no guard ring: the base points need to sample the boundary
        # representatively, not to find all of it, and a ring would triple the cells that hold
        # none (measured: a third of the differing pairs at small eps on a circle).
        corners, side = coarse_boundary_cells(coarse_scores.reshape(coarse, coarse), guard=0)
        if len(corners) == 0:
            return None, draw.used, draw.notes
        if draw.current:
            _window_stage(draw, stages, side, budget)
    _zoom_stages(draw, stages, corners, side, centred)
    if draw.floor_points and stages and not draw.current:
        per_stage = min(draw.floor_points, (budget - draw.used) // len(stages))
        _chaos_floor(draw, stages, per_stage)
    return stages, draw.used, draw.notes


@dataclass
class _Draw:
    """What the stages share while they are drawn: the evaluator, the random generator, the
    budget left to the stages and what has been spent."""

    evaluate: object
    rng: np.random.Generator
    eps_min: float
    stage_decades: float
    floor_points: int
    eps_floor: float
    current: bool             # False: the schedule of samples drawn before the window stage
    budget: int = 0
    used: int = 0
    notes: list = field(default_factory=list)

    def call(self, points):
        """The scores of `points` (one batch), counted in `used`."""
        self.used += len(points)
        return np.asarray(self.evaluate(points), dtype=np.float64)


def _window_stage(draw, stages, cell, budget):
    """Stage 0: ``budget / WINDOW_SHARE`` base points (within ``WINDOW_BASE``) uniform in the
    window, partners from WINDOW_EPS down to WINDOW_EPS_MIN (or the first zoom stage's top, if
    lower); skipped (with a note) when it would leave no room for a zoom stage. Random base
    points rather than the coarse map's: a boundary with structure on the map's lattice (a
    Takagi curve is exactly its first terms at dyadic abscissae, as the map's pixel centres
    are) would be sampled where it is special."""
    eps = _eps_grid(WINDOW_EPS, min(WINDOW_EPS_MIN, EPS_CAP * cell))
    n = int(min(max(budget // WINDOW_SHARE, WINDOW_BASE[0]), WINDOW_BASE[1]))
    one_zoom = MIN_STAGE_BASE * (1 + math.ceil(STAGE_DECADES * EPS_PER_DECADE) + 1)
    cost = n * (1 + len(eps) + (1 if draw.floor_points else 0))
    if cost + one_zoom > draw.budget - draw.used:
        draw.notes.append("no window stage: the budget leaves no room for it beside one zoom "
                          "stage")
        return
    base = draw.rng.random((n, 2))
    partners = _partners(draw.rng, base, eps)
    scores = np.sign(draw.call(np.concatenate([base, partners.reshape(-1, 2)])))
    sb, sp = scores[:n], scores[n:].reshape(n, len(eps))
    block = np.minimum((base * WINDOW_BLOCKS).astype(int), WINDOW_BLOCKS - 1)
    stage = Stage(eps=eps, hits=(sb[:, None] * sp) < 0,
                  square=block[:, 1] * WINDOW_BLOCKS + block[:, 0],
                  n_squares=WINDOW_BLOCKS ** 2, base=base, signs=sb, side=1.0, kind="window")
    stages.append(stage)
    if draw.floor_points:
        # every base point: the band is a small share of the window, and few flips would leave
        # F unmeasured where the window stage's smallest eps need it
        _chaos_floor(draw, [stage], n)


def _zoom_stages(draw, stages, corners, side, centred):
    """Run zoom stages into `stages` until eps_min or the budget."""
    decades_per_stage = draw.stage_decades          # updated with the depth each stage reached
    first = len(stages)
    while True:
        top = min(EPS_CAP * side, WINDOW_EPS) if draw.current else EPS_CAP * side
        n_left = max(1, math.ceil(math.log10(top / draw.eps_min) / decades_per_stage - 1e-9))
        last = n_left == 1
        eps = _eps_grid(top, draw.eps_min if last
                        else max(draw.eps_min, top * 10.0 ** -draw.stage_decades))
        # Every stage gets at least MIN_STAGE_BASE base points: a thin stage measures nothing,
        # so a small budget reaches fewer decades instead of many noisy ones.
        room = draw.budget - draw.used
        n_base = max(room // n_left, MIN_STAGE_BASE * (1 + len(eps))) // (1 + len(eps))
        if n_base * (1 + len(eps)) > room:
            n_base = room // (1 + len(eps))
            if n_base < MIN_STAGE_BASE:
                draw.notes.append(f"budget spent after {len(stages)} stage(s), at eps {top:.1e}")
                break
            last = True
            eps = _eps_grid(top, draw.eps_min)
            n_base = room // (1 + len(eps))
        base, partners, square = _pairs(draw.rng, corners, side, n_base, eps, centred)
        scores = draw.call(np.concatenate([base, partners.reshape(-1, 2)]))
        sb, sp = np.sign(scores[:n_base]), np.sign(scores[n_base:]).reshape(n_base, len(eps))
        # A zero score has no sign: such a pair is not counted as differing.
        stage = Stage(eps=eps, hits=(sb[:, None] * sp) < 0, square=square,
                      n_squares=len(corners), base=base, signs=sb, side=side,
                      kind="cells" if len(stages) == first else "zoom")
        stages.append(stage)
        if draw.current and draw.floor_points:
            _chaos_floor(draw, [stage], draw.floor_points)
        if last:
            break
        zoom = _next_squares(stage, partners, side, draw.notes, draw.current)
        if zoom is None:
            break
        corners, new_side = zoom
        decades_per_stage = max(0.5, math.log10(side / new_side))
        side, centred = new_side, True


def _next_squares(stage, partners, side, notes, above_band):
    """Where the next stage zooms: its squares (side 2 eps*) are centred on this stage's
    differing pairs at eps* / 8 .. eps*, so each holds boundary, with eps* the smallest eps with
    CENTRE_HITS differing pairs; with `above_band`, also with ``f >= FLOOR_FACTOR * F`` (the
    curve's pairs, not the band's), where any eps has both. Returns (centres, side) or None
    (with a note)."""
    eps, hits = stage.eps, stage.hits
    counted = hits.sum(0) >= CENTRE_HITS
    if above_band and len(stage.floor_flips):
        curve = counted & (hits.mean(0) >= FLOOR_FACTOR * stage.floor_flips.mean())
        counted = curve if curve.any() else counted
    if not counted.any():
        notes.append(f"stopped after the stage at eps {eps[0]:.1e}: no eps with {CENTRE_HITS} "
                     "differing pairs to centre the next stage on")
        return None
    eps_star = eps[np.flatnonzero(counted).max()]
    if 2 * eps_star > side / 3:
        notes.append(f"stopped after the stage at eps {eps[0]:.1e}: differing pairs too rare "
                     f"to zoom below eps {eps_star:.1e}")
        return None
    near = (eps >= eps_star / 8) & (eps <= eps_star)
    bi, ej = np.nonzero(hits[:, near])
    return (stage.base[bi] + partners[bi, np.flatnonzero(near)[ej]]) / 2, 2 * eps_star


def _chaos_floor(draw, stages, floor_points):
    """Flip fraction of the first floor_points base points of each of `stages` (random points)
    moved by eps_floor, in one batch."""
    moved = []
    for st in stages:
        k = min(int(floor_points), len(st.base))
        st.floor_index = np.arange(k)
        theta = draw.rng.random(k) * 2 * math.pi
        moved.append(st.base[st.floor_index]
                     + draw.eps_floor * np.stack([np.cos(theta), np.sin(theta)], axis=1))
    scores = np.sign(draw.call(np.concatenate(moved)))
    at = 0
    for st in stages:
        k = len(st.floor_index)
        st.floor_flips = scores[at:at + k] * st.signs[st.floor_index] < 0
        at += k


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
    slope_ok: np.ndarray | None = None   # (n,) eps a slope may be read at (None: every eps)

    def __post_init__(self):
        if self.slope_ok is None:
            self.slope_ok = np.ones(len(self.scales), bool)

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
                   flips=np.array(flips, dtype=float),
                   slope_ok=np.concatenate([_slope_eps(st) for st in stages]))


def _slope_eps(stage):
    """(m,) bool: the stage's eps a slope is read at: below ``CELLS_SLOPE_SHARE`` of the side in
    the cells stage, every eps in the others.

    The cells stage's base points are in the coarse map's boundary cells: cells whose corners'
    signs differ, which hold the curve's crossings between pixel centres but not its excursions
    into cells whose corners agree. Pairs reach those excursions only from the marked cells'
    edges, a share that shrinks as eps falls, so near the cells' side f falls faster than the
    curve's ``eps^(2 - D)`` and reads D low (a Takagi curve of D = 1.5: local D 1.40 at
    side / 7 - side / 16 and 1.46 at side / 16 - side / 34, 1.47 and 1.50 with a guard ring of
    cells around the marked ones). Those eps still give the stage's amplitude. The window stage
    (base points uniform in the window) has no such edge, and a zoom stage's squares are
    centred on the curve (their top eps read 0.01 low on average, within the noise of the
    deeper eps that replacing them would cost)."""
    if stage.kind != "cells":
        return np.ones(len(stage.eps), bool)
    return stage.eps <= CELLS_SLOPE_SHARE * stage.side * (1 + 1e-9)


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
        """Where the curve term equals the chaos term, ``(F / A)^(1 / (2 - D))``, with one ratio
        ``F / A`` for every stage with a fitted amplitude and floor points: the flips of all of
        them over ``sum(moved_s A_s)``. The floor and the curve term are densities along the
        same curve, so each stage's ``F_s / A_s`` is that one ratio; pooled, it is the Poisson
        maximum-likelihood estimate from every flip, where a mean of the stages' own ratios
        would be led by a stage of one or two flips (and weighting them by their flips leans
        towards the stages whose flips came out high). None without flips or with ``D >= 2``."""
        if not self.slope > 0:
            return None
        flips = exposure = 0.0
        for s, off in self.offsets.items():
            if counts.moved[s] > 0:
                flips += counts.flips[s]
                exposure += counts.moved[s] * math.exp(off)
        if not flips > 0:
            return None
        star = math.exp(min(math.log(flips / exposure) / self.slope, 700.0))
        return star if star > 0 else None


def _curve(counts, chaos, fade=CHAOS_FADE):
    """f, the chaos floor F of each scale's stage, the curve term q, and the floor per stage.

    Chaos adds differing pairs only where the curve does not already separate them: a pair
    across the curve whose one point is chaotic differs as often as not. So the chaos term is
    F inside the band (``q << F``) and fades where the curve dominates; modelled as
    ``F / (1 + fade q / F)``, ``f = q + F^2 / (F + fade q)`` is solved for ``q``. ``fade = 0`` is
    the constant chaos term of ``f = A eps^(2 - D) + F``; on bands of known truth (Weierstrass
    and Takagi curves, D 1.2-1.8, flip probabilities 0.1-0.5) the excess ``f - q`` over F lies
    between ``fade`` 0 and 2, 1 at the median. Where ``f <= F``, ``q = 0`` (with ``fade > 1`` the
    model's f dips below F just above the band; the fit keeps ``f >= FLOOR_FACTOR * F``, where
    the larger root is the curve term). ``chaos=False``: the chaos counted as boundary (``F = 0``,
    ``q = f``).
    """
    f = counts.fraction
    floor = counts.floor if chaos else np.zeros(len(counts.moved))
    at = floor[counts.stage]
    if fade > 0:
        root = np.sqrt(np.maximum((at - fade * f) ** 2 + 4 * fade * at * (f - at), 0.0))
        q = ((fade * f - at) + root) / (2 * fade)
    else:
        q = f - at
    return f, at, np.where(f > at, q, 0.0), floor


def _chaos_term(floor_at, q, fade):
    """The model's pairs that differ through chaos, ``F^2 / (F + fade q)`` (0 where F = 0)."""
    return np.where(floor_at > 0, floor_at ** 2 / np.maximum(floor_at + fade * q, 1e-300), 0.0)


def _above_band(counts, chaos):
    """The eps above the band: per stage, from the largest eps down while
    ``f >= FLOOR_FACTOR * F`` (:func:`contiguous`). Decided once, on all the data, and kept by
    every bootstrap replicate: a stage's F is often a few flips, and a rule redrawn with a
    resampled F would cut a replicate's range at random."""
    f, per_scale, _, _ = _curve(counts, chaos)
    return contiguous(counts.scales, counts.stage, f >= FLOOR_FACTOR * per_scale)


def _curve_fit(counts, min_hits, keep, window=None, cap=np.inf, chaos=True, fade=CHAOS_FADE):
    """The weighted power-law fit of the curve term over the eps its rules keep, or None.

    An eps is kept, per stage from the largest down (:func:`contiguous`), while it is in `keep`
    (above the band), has ``min_hits`` differing pairs and a positive curve term; then those up
    to `cap`, inside `window` (:func:`sub_window`). The slope is read at the kept eps a slope
    may be read at (``counts.slope_ok``, :func:`_slope_eps`), each stage's amplitude at all of
    its kept eps given that slope."""
    f, per_scale, curve, floor = _curve(counts, chaos, fade)
    ok = keep & (counts.hits >= min_hits) & (curve > 0)
    kept = contiguous(counts.scales, counts.stage, ok) & (counts.scales <= cap * (1 + 1e-9))
    kept = sub_window(counts.scales, kept, window)
    mask = kept & counts.slope_ok
    if not fit_span_ok(counts.scales, mask, counts.stage):
        return None
    x, y = np.log(counts.scales), np.log(np.where(kept, curve, 1.0))
    # Var(log q) ~ f (1 - f) / (n q^2) for a binomial f; the second pass takes f and q from
    # the first fit, not the observed ones, so that an eps that fluctuated up does not also
    # weigh more.
    weight = counts.n * curve ** 2 / np.maximum(f * (1 - f), 1e-12)
    for _ in range(2):
        slope, _ = fit_exponent(x[mask], y[mask], weight[mask], counts.stage[mask])
        if slope is None:
            return None
        offsets = _stage_offsets(slope, x, y, weight, counts.stage, kept)
        fitted = np.exp(slope * x + np.array([offsets.get(int(k), 0.0) for k in counts.stage]))
        f_fit = np.clip(fitted + _chaos_term(per_scale, fitted, fade), 1e-12, 0.999)
        weight = np.where(kept, counts.n * fitted ** 2 / (f_fit * (1 - f_fit)), 0.0)
    return _Fit(slope, offsets, mask, floor)


def _stage_offsets(slope, x, y, weight, stage, mask):
    """``log A`` of each stage with masked eps: the weighted mean of ``y - slope x`` there."""
    out = {}
    for s in np.unique(stage[mask]):
        m = mask & (stage == s)
        out[int(s)] = float(np.average(y[m] - slope * x[m], weights=weight[m]))
    return out


def _bootstrap(stages, squares, keep, cap, rng, n_boot, chaos):
    """Dimension and eps* of n_boot replicates: the squares of every stage resampled with their
    base points and floor points, the hit threshold drawn between 8 and 32, a fit window and how
    fast the chaos fades (``CHAOS_FADE_RANGE``)."""
    dims, stars = [], []
    for _ in range(int(n_boot)):
        pick = [rng.integers(0, len(sq[1]), len(sq[1])) for sq in squares]
        counts = _counts(stages, squares, pick)
        min_hits = int(round(math.exp(rng.uniform(math.log(8), math.log(32)))))
        fade = rng.uniform(*CHAOS_FADE_RANGE)
        fit = _curve_fit(counts, min_hits, keep, rng.random(2), cap, chaos, fade)
        if fit is not None:
            dims.append(fit.dimension)
            star = fit.eps_star(counts)
            if star is not None and star > 0:
                stars.append(math.log10(star))
    return dims, stars


def _fit_with_interval(stages, squares, rng, n_boot, chaos=True):
    """The curve fit (smallest 3+ decades of the eps the rules keep), its 95% interval and
    eps*'s, or None when the rules leave too little to fit.

    Cluster bootstrap: the squares of every stage are resampled with their base points, so the
    interval carries which stretches of boundary the stages happened to zoom into, not only the
    scatter of the points within them; the hit threshold and a fit window are drawn too (the
    window carries the log-periodic wobble of self-affine curves' local slopes)."""
    counts = _counts(stages, squares)
    keep = _above_band(counts, chaos)
    every = _curve_fit(counts, MIN_HITS, keep, chaos=chaos)
    all_mask = _curve_fit_mask(counts, keep, chaos)
    zoomed = np.array([st.kind != "window" for st in stages])[counts.stage]
    cap = small_cap(counts.scales, all_mask, all_mask & zoomed)
    fit = _curve_fit(counts, MIN_HITS, keep, cap=cap, chaos=chaos)
    if fit is None:
        return None
    dims, stars = _bootstrap(stages, squares, keep, cap, rng, n_boot, chaos)
    interval = percentile_interval(fit.dimension, dims)
    if interval is None:
        return None
    star = fit.eps_star(counts)
    bound = float(counts.scales.min()) / EPS_STAR_REACH
    below = star is not None and star < bound
    if below:        # extrapolated past the eps measured: not a measurement of the band
        star = None
    star_ci = percentile_interval(math.log10(star), stars) if star is not None else None
    return {"fit": fit, "counts": counts, "dimension": fit.dimension, "ci_low": interval[0],
            "ci_high": interval[1], "eps_star": star,
            "eps_star_below": bound if below else None,
            "eps_star_ci": None if star_ci is None else (10 ** star_ci[0], 10 ** star_ci[1]),
            "eps_star_boot": len(stars), "boot_ok": len(dims),
            "fit_decades": decades(counts.scales, fit.mask),
            "slope_decades": slope_decades(counts.scales, fit.mask, counts.stage),
            "all_scales_dimension": None if every is None else every.dimension,
            "all_scales_decades": decades(counts.scales, all_mask)}


def _curve_fit_mask(counts, keep, chaos):
    """The eps the rules keep before the cap (for the cap and the all-scales span)."""
    _, _, curve, _ = _curve(counts, chaos)
    return contiguous(counts.scales, counts.stage,
                      keep & (counts.hits >= MIN_HITS) & (curve > 0))


def uncertainty_estimate(stages, used, *, seed=0, n_boot=200, notes=(),
                         stage_decades=STAGE_DECADES, floored=False):
    """The fit of :func:`uncertainty_exponent` on given stages.

    Each stage's ``f(eps)`` is the curve term ``q = A eps^(2 - D)`` plus the chaos term. ``F``, the
    stage's chaos floor, is measured, never fitted; the chaos term is ``F`` inside the band and
    fades where the curve dominates, ``k F^2 / (k F + q)`` (:func:`_curve`), and ``q`` is solved
    from ``f`` and ``F``. ``log q`` is fitted on ``log eps`` by weighted least squares (one offset
    ``log A`` per stage, common slope ``2 - D``) over the eps above the band: per stage, from its
    largest eps down while ``f >= FLOOR_FACTOR * F`` and there are ``MIN_HITS`` differing pairs;
    of those, the smallest ``SMALL_SCALE_SHARE`` of the decades the zoom stages reached (at
    least ``SMALL_SCALE_DECADES``). Fewer than ``MIN_FIT_DECADES`` decades (or fewer than
    ``MIN_SLOPE_DECADES`` inside stages): no dimension, ``REASON_CHAOS`` with the band's scale
    where a floor cut them.

    ``eps*``, the band's scale, is where the fitted curve term equals ``F`` (:meth:`_Fit.eps_star`);
    where that lies more than a factor ``EPS_STAR_REACH`` below every eps measured it is an
    extrapolation, not a measurement: no eps*, and ``extra["eps_star_below"]`` holds that bound
    (the band is thinner than it).
    The 95% intervals of ``D`` and ``eps*`` are the 2.5-97.5% ranges over ``n_boot``
    cluster-bootstrap replicates (:func:`_fit_with_interval`), which also draw ``k`` from
    ``CHAOS_FADE_RANGE``: how fast the chaos fades above the band is known only within it.

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
    extra.update(fit_decades=fit["fit_decades"], slope_decades=fit["slope_decades"],
                 eps_fit=[float(counts.scales[mask].min()), float(counts.scales[mask].max())],
                 boot_ok=fit["boot_ok"], eps_star_boot=fit["eps_star_boot"],
                 eps_star_below=fit["eps_star_below"],
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
    # the local dimension of the curve term where it is measured: above the band
    above = _above_band(counts, True) & (counts.hits > 0)
    slope_scales, local = local_slopes(counts.scales, np.where(above, curve, np.nan),
                                       counts.stage, lambda a: 2 - a)
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
    _, _, curve, _ = _curve(counts, True)
    measurable = (counts.hits >= MIN_HITS) & (curve > 0)
    above = _above_band(counts, True)
    kept = contiguous(counts.scales, counts.stage, measurable & above)
    cut = measurable & ~above
    if not cut.any():
        return REASON_TOO_FEW
    band = float(counts.scales[cut].max())
    span = decades(counts.scales, kept)
    readable = kept & counts.slope_ok
    # the span can pass while the fit's does not: the cells stage's slope is read only well
    # below the coarse cells' side (`_slope_eps`), so say what the fit had
    short = (f"the eps a slope is read at (the cells stage's below {CELLS_SLOPE_SHARE:g} x its "
             f"side) span {decades(counts.scales, readable):.1f} decades, "
             f"{slope_decades(counts.scales, readable, counts.stage):.1f} inside stages; at "
             f"least {MIN_FIT_DECADES} and {MIN_SLOPE_DECADES:g} are needed"
             if span >= MIN_FIT_DECADES else f"at least {MIN_FIT_DECADES} decades are needed")
    return (f"{REASON_CHAOS} (the curve term is measurable over {span:.1f} decades"
            + (f", eps {counts.scales[kept].min():.1e}..{counts.scales[kept].max():.1e}"
               if span > 0 else "")
            + f"; the band takes over below eps {band:.1e}, where f < {FLOOR_FACTOR:g} x the "
            f"chaos floor; {short})")
