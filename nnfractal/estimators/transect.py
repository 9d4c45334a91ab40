"""Transects: the dimension of a boundary from sign changes along segments across it.

Equally spaced points on segments cross the boundary; the number of sign changes between points
``s`` apart, per ``s``, scales as ``s^-(D - 1)`` (the crossings of a line with a boundary of
dimension ``D`` have dimension ``D - 1``). :func:`transect_dimension` places and orients the
segments with a coarse map, evaluates them in one batch and fits the counts
(:func:`transect_estimate`).

A transect has no chaos floor: where the outcome is chaotic at the segment's spacing, every lag
counts the band's random flips as sign changes, and the count reads the band (a dimension near
2) instead of the curve. Its number is the curve's dimension at the lags it fits, and says so in
``note``; the uncertainty exponent separates the two (:mod:`.uncertainty`).
"""
from __future__ import annotations

import math

import numpy as np

from nnfractal.window import CENTRES, unit_grid

from .boxcount import boundary, density_around
from .sampling_fit import (
    REASON_BOOTSTRAP,
    REASON_NO_BOUNDARY,
    REASON_TOO_FEW,
    SamplingError,
    SamplingEstimate,
    decades,
    fit_exponent,
    fit_span_ok,
    local_slopes,
    no_estimate,
    percentile_interval,
    small_cap,
    sub_window,
)

__all__ = [
    "TRANSECT_COARSE",
    "TREND_OFFSET_DEG",
    "check_transect_args",
    "densest_boundary_cell",
    "densest_edge_cell",
    "sign_flux",
    "transect_angle",
    "transect_block_counts",
    "transect_dimension",
    "transect_estimate",
    "transect_points",
]

MIN_CHANGES = 8          # sign changes per lag (pairs / lag) to enter the fit
N_BLOCKS = 8             # blocks per line for the bootstrap
MIN_TRANSECT_POINTS = 1024
TRANSECT_NOTE = ("transect: no chaos floor; where outcomes are chaotic at the fitted lags, the "
                 "count is the chaotic band's, not the curve's (the uncertainty exponent's "
                 "eps_star gives the band's scale)")


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
    # |angle| <= 360: beyond it the degrees-to-radians product loses the angle's own digits
    # (1e308 degrees ran at another angle than 1e308 mod 360)
    if angle_deg is not None and not (math.isfinite(angle_deg) and abs(angle_deg) <= 360):
        raise SamplingError("angle", f"{angle_deg!r} is not allowed (allowed: degrees from -360 "
                            "to 360, or none: along the boundary's trend)")
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
    ii, jj = np.nonzero(edges)
    density = density_around(edges, ii, jj, h)
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
        grid = unit_grid(TRANSECT_COARSE, CENTRES)
        coarse_scores = np.asarray(evaluate(grid), dtype=np.float64)
        used = len(grid)
        coarse_map = coarse_scores.reshape(TRANSECT_COARSE, TRANSECT_COARSE)
        if centre is None:
            centre = densest_boundary_cell(coarse_map)
            if centre is None:
                return no_estimate("transect", REASON_NO_BOUNDARY, used, note=TRANSECT_NOTE)
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
    mask = sub_window(lags.astype(float), mask, window)
    if not fit_span_ok(lags.astype(float), mask):
        return None, mask
    slope, _ = fit_exponent(np.log(lags[mask]), np.log(changes[mask]), changes[mask],
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
    cap = small_cap(lags.astype(float), all_mask)
    slope, mask = _transect_fit(lags, changes, MIN_CHANGES, cap=cap)
    scales = lags * step
    slope_scales, local = local_slopes(scales, changes, np.zeros(len(lags), int),
                                       lambda a: 1 - a)
    evidence = dict(scales=scales, values=changes, raw_values=changes,
                    hits=counts.sum((0, 1)), stage=np.zeros(len(lags), int), fit_mask=mask,
                    slope_scales=slope_scales, local_slopes=local, note=TRANSECT_NOTE,
                    extra=extra)
    used = lines * n + coarse
    if slope is None:
        reason = REASON_NO_BOUNDARY if counts.sum() == 0 else REASON_TOO_FEW
        return no_estimate("transect", reason, used, **evidence)
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
    interval = percentile_interval(dim, dims)
    if interval is None:
        return no_estimate("transect", REASON_BOOTSTRAP, used, **evidence)
    extra.update(fit_decades=decades(scales, mask), boot_ok=len(dims),
                 all_scales_dimension=None if all_slope is None else float(1 - all_slope))
    return SamplingEstimate(dimension=float(dim), ci_low=interval[0], ci_high=interval[1],
                            method="transect", ok=True, reason="", evaluations=used, **evidence)
