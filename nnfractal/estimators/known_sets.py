"""Images of known fractal dimension, to validate the dimension estimators.

Each generator renders a set at resolution ``n`` (pixels per side). Sets that
are naturally the boundary between two regions are returned as *score maps*
(negative inside/"converged", positive outside/"diverged"), so that the same
:func:`nnfractal.estimators.boxcount.boundary` used on training results extracts their
edges. The Sierpinski triangle has no interior, so it is returned directly as
an edge image.

* ``line`` (dimension 1): :func:`line_scores`, score map
* ``circle`` (1): :func:`circle_scores`, score map
* ``koch`` (log 4 / log 3 = 1.2619): :func:`koch_scores`, score map
* ``sierpinski`` (log 3 / log 2 = 1.5850): :func:`sierpinski_edges`, edge image
* ``plane`` (2): :func:`plane_scores`, score map

Use :func:`known_edges` to get the edge image of any of them by name.

**Analytic boundaries** (:class:`AnalyticBoundary`, :func:`analytic_boundary`) are score
*functions*: they take any points of the unit square and need no grid, so the sampling estimators
(uncertainty exponent, transects) can be validated at any depth, and grid estimators at any
resolution (:meth:`AnalyticBoundary.grid`). Rough curves are what trainability boundaries resemble,
so the family that matters most is the region under a Weierstrass function,
``W(x) = sum_k a^k cos(2 pi 3^k x)`` with ``a = 3^(D - 2)``, whose graph has box dimension ``D``
(Kaplan, Mallet-Paret & Yorke 1984), for any ``1 < D < 2``:

* ``weierstrass-<D>`` (D from 1.1 to 1.9), e.g. ``weierstrass-1.5``
* ``circle`` and ``line`` (1), ``plane`` (2: an independent random sign at every evaluation)

:func:`rotated_boundary` turns any of them about the window's centre, so that an estimator with a
direction (transects) can be checked at every orientation of the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnfractal.window import CENTRES, unit_grid

from .boxcount import boundary

__all__ = [
    "ANALYTIC_NAMES",
    "AnalyticBoundary",
    "analytic_boundary",
    "band_crossover",
    "banded_boundary",
    "coordinate_hash",
    "ChaosBand",
    "GraphCurve",
    "graph_curve",
    "in_band",
    "rotated_boundary",
    "takagi",
    "weierstrass",
    "KNOWN_DIMENSIONS",
    "circle_scores",
    "known_edges",
    "koch_polygon",
    "koch_scores",
    "line_scores",
    "plane_scores",
    "polygon_inside",
    "sierpinski_edges",
]

KNOWN_DIMENSIONS = {
    "line": 1.0,
    "circle": 1.0,
    "koch": math.log(4) / math.log(3),  # 1.2619
    "sierpinski": math.log(3) / math.log(2),  # 1.5850
    "plane": 2.0,
}


def _pixel_centres(n):
    # (y, x) of pixel centres, in pixels, row 0 at y = 0.5.
    return np.mgrid[0:n, 0:n] + 0.5


def line_scores(n, angle_deg=30.0, offset=0.123):
    """Signed distance to a straight line through the image centre.

    Parameters
    ----------
    n : int
        Image side in pixels.
    angle_deg : float, optional
        Angle of the line to the x axis, degrees; oblique by default so the
        boundary is not pixel-aligned.
    offset : float, optional
        Shift of the line from the centre, pixels (off the pixel lattice).

    Returns
    -------
    scores : (n, n) ndarray of float
        Signed distance in pixels; the boundary has dimension 1.
    """
    y, x = _pixel_centres(n)
    t = math.radians(angle_deg)
    return (x - n / 2) * math.sin(t) - (y - n / 2) * math.cos(t) + offset


def circle_scores(n, radius_frac=0.4, centre=None):
    """``r - R`` for a circle of radius ``radius_frac * n``.

    Parameters
    ----------
    n : int
        Image side in pixels.
    radius_frac : float, optional
        Radius as a fraction of ``n``.
    centre : (float, float), optional
        ``(y, x)`` centre in pixels; default slightly off the image centre
        so the circle is not symmetric about the pixel lattice.

    Returns
    -------
    scores : (n, n) ndarray of float
        Negative inside the circle; the boundary has dimension 1.
    """
    y, x = _pixel_centres(n)
    cy, cx = (n / 2 + 0.1, n / 2 + 0.3) if centre is None else centre
    return np.hypot(y - cy, x - cx) - radius_frac * n


def koch_polygon(n, radius_frac=0.45, segment_px=1.0, angle_deg=0.0):
    """Vertices of a Koch snowflake fitted in an ``n`` x ``n`` image.

    The snowflake is iterated until its segments are at most ``segment_px``
    pixels long, so that it is self-similar down to the pixel scale.

    Parameters
    ----------
    n : int
        Image side in pixels.
    radius_frac : float, optional
        Circumradius of the snowflake (the tips of the star) as a fraction
        of ``n``.
    segment_px : float, optional
        Longest allowed segment, pixels.
    angle_deg : float, optional
        Rotation of the snowflake about the image centre, degrees.

    Returns
    -------
    vertices : (3 * 4**level, 2) ndarray of float
        Closed polygon, ``(x, y)`` in pixels, counter-clockwise.
    """
    radius = radius_frac * n
    side = radius * math.sqrt(3)
    level = max(0, math.ceil(math.log(side / segment_px, 3)))
    angles = np.radians(np.array([90.0, 210.0, 330.0]) + angle_deg)
    pts = np.column_stack([np.cos(angles), np.sin(angles)]) * radius + n / 2
    c, s = math.cos(-math.pi / 3), math.sin(-math.pi / 3)
    for _ in range(level):
        d = (np.roll(pts, -1, axis=0) - pts) / 3
        # Turning the middle third by -60 degrees puts the bump outside a
        # counter-clockwise polygon.
        bump = np.column_stack([d[:, 0] * c - d[:, 1] * s,
                                d[:, 0] * s + d[:, 1] * c])
        a = pts + d
        pts = np.stack([pts, a, a + bump, pts + 2 * d], axis=1).reshape(-1, 2)
    return pts


def polygon_inside(vertices, n):
    """Even-odd fill of a polygon on the pixel centres of an n x n grid.

    Scanline fill: every polygon edge toggles the parity of all pixels to the
    right of where it crosses a pixel-centre row, which is exact and
    vectorised over edges (unlike testing each pixel against each edge).

    Parameters
    ----------
    vertices : (v, 2) ndarray of float
        Closed polygon, ``(x, y)`` in pixels.
    n : int
        Image side in pixels.

    Returns
    -------
    inside : (n, n) ndarray of bool
        ``inside[i, j]`` for the pixel centre ``(x, y) = (j + .5, i + .5)``.
    """
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    # Rows whose centre y = i + 0.5 lies in [min(y0, y1), max(y0, y1)); the
    # half-open interval counts a vertex on a row exactly once.
    first = np.ceil(np.minimum(y0, y1) - 0.5).astype(int)
    stop = np.ceil(np.maximum(y0, y1) - 0.5).astype(int)
    k = stop - first
    edge = np.repeat(np.arange(len(x0)), k)
    rows = np.repeat(first, k) + np.arange(k.sum()) - np.repeat(
        np.cumsum(k) - k, k)
    yc = rows + 0.5
    xc = x0[edge] + (yc - y0[edge]) * (x1[edge] - x0[edge]) / (
        y1[edge] - y0[edge])
    # Toggle from the first pixel whose centre lies right of the crossing.
    cols = np.clip(np.floor(xc - 0.5).astype(int) + 1, 0, n)
    valid = (rows >= 0) & (rows < n)
    toggles = np.zeros((n, n + 1), dtype=np.int32)
    np.add.at(toggles, (rows[valid], cols[valid]), 1)
    return np.cumsum(toggles, axis=1)[:, :n] % 2 == 1


def koch_scores(n, radius_frac=0.45, segment_px=1.0, angle_deg=0.0):
    """Koch snowflake as a score map: -1 inside, +1 outside.

    Parameters
    ----------
    n : int
        Image side in pixels.
    radius_frac, segment_px, angle_deg : float, optional
        See :func:`koch_polygon`.

    Returns
    -------
    scores : (n, n) ndarray of float
        The boundary has dimension ``log 4 / log 3 = 1.2619``.
    """
    inside = polygon_inside(
        koch_polygon(n, radius_frac, segment_px, angle_deg), n)
    return np.where(inside, -1.0, 1.0)


def sierpinski_edges(n, margin_frac=1 / 16):
    """Sierpinski triangle as an edge image (Pascal's triangle mod 2).

    Pixel ``(i, j)`` of the triangle is set iff ``C(i, j)`` is odd, i.e.
    ``i & j == j`` (Lucas' theorem); with ``n`` a power of two the triangle
    is exactly self-similar from ``n`` pixels down to one. The triangle has
    straight sides, so it is drawn on a larger canvas with an empty margin:
    a straight side lying on the image border would be clipped by border
    boxes, which no estimator should be asked to undo (boundaries of score
    maps cross the image border, they do not run along it).

    Parameters
    ----------
    n : int
        Side of the triangle in pixels (a power of two for exact
        self-similarity).
    margin_frac : float, optional
        Empty margin on each side as a fraction of ``n``.

    Returns
    -------
    edges : (n + 2 * margin, n + 2 * margin) ndarray of bool
        ``margin = round(margin_frac * n)``. Dimension
        ``log 3 / log 2 = 1.5850``.
    """
    margin = int(round(margin_frac * n))
    i, j = np.mgrid[0:n, 0:n]
    out = np.zeros((n + 2 * margin, n + 2 * margin), dtype=bool)
    out[margin:margin + n, margin:margin + n] = (j <= i) & ((i & j) == j)
    return out


def plane_scores(n, seed=0):
    """Independent Gaussian scores: a boundary that fills the plane.

    About 7/8 of the pixels are boundary pixels at every scale, so the
    box-counting dimension is 2.

    Parameters
    ----------
    n : int
        Image side in pixels.
    seed : int, optional
        Random seed.

    Returns
    -------
    scores : (n, n) ndarray of float
    """
    return np.random.default_rng(seed).standard_normal((n, n))


_GENERATORS = {
    "line": line_scores,
    "circle": circle_scores,
    "koch": koch_scores,
    "plane": plane_scores,
}


def known_edges(name, n):
    """Edge image of a known set by name.

    Parameters
    ----------
    name : str
        One of ``KNOWN_DIMENSIONS``.
    n : int
        Resolution in pixels. Score maps give ``(n - 1, n - 1)`` edge
        images; ``sierpinski`` gives an ``n``-pixel triangle on a canvas
        with a margin (see :func:`sierpinski_edges`).

    Returns
    -------
    edges : ndarray of bool
    """
    if name == "sierpinski":
        return sierpinski_edges(n)
    if name not in _GENERATORS:
        raise KeyError(
            f"unknown set {name!r}; one of {list(KNOWN_DIMENSIONS)}")
    return boundary(_GENERATORS[name](n))


# ---------------------------------------------------------------------------
# Analytic boundaries: score functions of points, evaluable at any depth

WEIERSTRASS_BASE = 3          # frequency ratio b of W(x) = sum a^k cos(2 pi b^k x)
WEIERSTRASS_TERMS = 26        # b^26 = 2.5e12: rough down to ~1e-12 of the window


def weierstrass(x, dimension, terms=WEIERSTRASS_TERMS):
    """The Weierstrass function ``W(x) = sum_{k<terms} a^k cos(2 pi 3^k x)``.

    With ``a = 3^(dimension - 2)`` its graph over ``[0, 1]`` has box dimension ``dimension``
    (Kaplan, Mallet-Paret & Yorke 1984). ``terms`` sets the depth: the graph is rough down to
    horizontal scales of about ``3^-terms``.

    Parameters
    ----------
    x : (k,) array_like of float
        Abscissae (any real values; W has period 1).
    dimension : float
        Box dimension of the graph, ``1 < dimension < 2``.
    terms : int, optional
        Number of terms of the sum.

    Returns
    -------
    w : (k,) ndarray of float64
    """
    if not 1.0 < dimension < 2.0:
        raise ValueError(f"dimension must be in (1, 2), got {dimension}")
    x = np.asarray(x, dtype=np.float64)
    a = float(WEIERSTRASS_BASE) ** (dimension - 2.0)
    out = np.zeros_like(x)
    for k in range(int(terms)):
        # Reduce b^k x mod 1 exactly in float64 before the cosine: the phase stays accurate to
        # ~1e-16 * b^k, far below one period for every term that matters.
        phase = np.mod(x * float(WEIERSTRASS_BASE) ** k, 1.0)
        out += a ** k * np.cos(2.0 * math.pi * phase)
    return out


TAKAGI_TERMS = 40             # 2^-40 = 9e-13: rough down to ~1e-12 of the window


def takagi(x, dimension, terms=TAKAGI_TERMS):
    """The Takagi-Landsberg function ``T(x) = sum_{k<terms} c^k phi(2^k x)``, ``phi`` the
    distance to the nearest integer.

    With ``c = 2^(dimension - 2)`` (``1/2 < c < 1``) its graph over ``[0, 1]`` has box dimension
    ``dimension``: a second self-affine family beside :func:`weierstrass`, with a piecewise-linear
    generator and base 2 instead of a cosine and base 3 (other log-periodic wobbles). Every
    ``2^k x`` and its distance to an integer are exact in float64.

    Parameters
    ----------
    x : (k,) array_like of float
    dimension : float
        Box dimension of the graph, ``1 < dimension < 2``.
    terms : int, optional

    Returns
    -------
    t : (k,) ndarray of float64
    """
    if not 1.0 < dimension < 2.0:
        raise ValueError(f"dimension must be in (1, 2), got {dimension}")
    x = np.asarray(x, dtype=np.float64)
    c = 2.0 ** (dimension - 2.0)
    out = np.zeros_like(x)
    for k in range(int(terms)):
        frac = np.mod(x * 2.0 ** k, 1.0)
        out += c ** k * np.minimum(frac, 1.0 - frac)
    return out


def _weierstrass_oscillation(dimension, terms=WEIERSTRASS_TERMS):
    a = float(WEIERSTRASS_BASE) ** (dimension - 2.0)
    k = np.arange(int(terms))

    def bound(half):
        # |cos(s) - cos(t)| <= min(2, |s - t|), summed term by term over |x - u| <= half
        h = np.asarray(half, dtype=np.float64)[..., None]
        return (a ** k * np.minimum(2.0, 2 * math.pi * float(WEIERSTRASS_BASE) ** k * h)).sum(-1)
    return bound


def _takagi_oscillation(dimension, terms=TAKAGI_TERMS):
    c = 2.0 ** (dimension - 2.0)
    k = np.arange(int(terms))

    def bound(half):
        h = np.asarray(half, dtype=np.float64)[..., None]
        return 2 * (c ** k * np.minimum(0.5, 2.0 ** k * h)).sum(-1)
    return bound


@dataclass(frozen=True)
class GraphCurve:
    """The graph ``v = height(u)`` of a rough function, scaled to fill the window's height.

    Attributes
    ----------
    height : callable
        ``(k,) u -> (k,) v``, window units (any real u: the functions have period 1).
    oscillation : callable
        ``half (k,) -> (k,)``: an upper bound, window units, on ``max - min`` of ``height`` over
        any ``[u - half, u + half]`` (term-by-term Lipschitz and range bounds).
    """

    height: Callable[[np.ndarray], np.ndarray]
    oscillation: Callable[[np.ndarray], np.ndarray]


# A Takagi region is read from x = u + TAKAGI_PHASE: at the dyadic abscissae every term beyond
# the first few vanishes, and the pixel centres (j + 1/2) / n of a coarse map are dyadic.
TAKAGI_PHASE = (math.sqrt(5.0) - 1.0) / 2.0
_GRAPH_FAMILIES = {"weierstrass": (weierstrass, _weierstrass_oscillation, 0.0),
                   "takagi": (takagi, _takagi_oscillation, TAKAGI_PHASE)}


def graph_curve(family, dimension):
    """:class:`GraphCurve` of ``family`` (``'weierstrass'`` or ``'takagi'``, the latter read from
    ``x = u + TAKAGI_PHASE``) with graph dimension ``dimension``: v runs over the function's range
    on [0, 1] (min and max from a dense sample), so the boundary fills the window's height as in
    the issue that measured the box estimator's bias."""
    fn, osc, phase = _GRAPH_FAMILIES[family]
    sample = fn(np.linspace(0.0, 1.0, 1 << 16, endpoint=False) + phase, dimension)
    lo, hi = float(sample.min()), float(sample.max())
    bound = osc(dimension)
    return GraphCurve(height=lambda u: (fn(np.asarray(u) + phase, dimension) - lo) / (hi - lo),
                      oscillation=lambda half: bound(half) / (hi - lo))


@dataclass(frozen=True)
class AnalyticBoundary:
    """A two-outcome region given by a score function on the unit square.

    Attributes
    ----------
    name : str
        Registry name (``analytic_boundary(name)``).
    dimension : float
        Box dimension of the boundary, the truth an estimator is judged against.
    score : callable
        ``score(points) -> scores``: points ``(k, 2)`` float64 ``(u, v)`` in the unit square
        (u = x, v = y, both in window units 0..1), scores ``(k,)`` float64, negative on one side
        (\"converged\") and positive on the other. Any point may be evaluated, at any depth.
    curve : GraphCurve or None
        The boundary as a graph ``v = height(u)`` (Weierstrass and Takagi regions), else None.
    band : ChaosBand or None
        The chaotic band around the boundary (:func:`banded_boundary`), else None.
    """

    name: str
    dimension: float
    score: Callable[[np.ndarray], np.ndarray]
    curve: GraphCurve | None = None
    band: ChaosBand | None = None

    def grid(self, n):
        """Score map of an ``n`` x ``n`` grid of CENTRES pixels (`nnfractal.window`), row 0 at the
        smallest v.

        Returns
        -------
        scores : (n, n) ndarray of float64
        """
        return self.score(unit_grid(n, CENTRES)).reshape(n, n)


def _graph_region(curve):
    def score(points):
        p = np.asarray(points, dtype=np.float64)
        return p[:, 1] - curve.height(p[:, 0])
    return score


def _circle(points):
    p = np.asarray(points, dtype=np.float64)
    return np.hypot(p[:, 0] - 0.5003, p[:, 1] - 0.4991) - 0.4


def _line(points):
    p = np.asarray(points, dtype=np.float64)
    t = math.radians(30.0)
    return (p[:, 0] - 0.5) * math.sin(t) - (p[:, 1] - 0.5) * math.cos(t) + 1.23e-4


def _plane(points):
    # A fresh random sign at every evaluation: two points differ with probability 1/2 at every
    # distance, so the uncertainty exponent is 0 and the dimension 2.
    return np.random.default_rng().standard_normal(len(points))


ANALYTIC_NAMES = ("circle", "line", "plane") + tuple(
    f"weierstrass-{d / 10:.1f}" for d in range(11, 20)) + tuple(
    f"takagi-{d / 10:.1f}" for d in range(11, 20))


def analytic_boundary(name):
    """An analytic boundary by name: ``circle``, ``line``, ``plane``, ``weierstrass-<D>`` or
    ``takagi-<D>`` (the region under that function's graph, scaled to the window).

    ``weierstrass-<D>`` and ``takagi-<D>`` take any ``1 < D < 2`` (e.g. ``weierstrass-1.37``);
    ``ANALYTIC_NAMES`` lists the validated ones (D = 1.1 to 1.9 in steps of 0.1).
    """
    fixed = {"circle": (1.0, _circle), "line": (1.0, _line), "plane": (2.0, _plane)}
    if name in fixed:
        dim, fn = fixed[name]
        return AnalyticBoundary(name, dim, fn)
    family, _, tail = name.partition("-")
    if family in _GRAPH_FAMILIES:
        try:
            dim = float(tail)
        except ValueError:
            dim = float("nan")
        if 1.0 < dim < 2.0:
            curve = graph_curve(family, dim)
            return AnalyticBoundary(name, dim, _graph_region(curve), curve=curve)
    raise KeyError(f"unknown analytic boundary {name!r} (allowed: {', '.join(ANALYTIC_NAMES)}, "
                   "or weierstrass-<D> / takagi-<D> with 1 < D < 2)")


def rotated_boundary(base, degrees, centre=(0.5, 0.5), shift=0.0):
    """``base`` (an :class:`AnalyticBoundary`) turned by ``degrees`` counterclockwise about
    ``centre`` (window units), after sliding it by ``shift`` along u (for a Weierstrass region,
    periodic in u, a change of phase: another stretch of the same curve in the window).

    The score at a point is the base score at the point turned back, so the rotated region's
    boundary is the base boundary turned (its dimension is unchanged). Weierstrass regions are
    periodic in u and unbounded in v, so the turned-back point may leave the unit square: the
    region simply continues there. Name: ``<base>@<degrees>``.

    Returns
    -------
    AnalyticBoundary
    """
    t = math.radians(float(degrees))
    cos_t, sin_t = math.cos(t), math.sin(t)
    c = np.asarray(centre, dtype=np.float64)

    def score(points):
        p = np.asarray(points, dtype=np.float64) - c
        # the inverse rotation R(-t) applied to every point
        back = np.stack([cos_t * p[:, 0] + sin_t * p[:, 1],
                         -sin_t * p[:, 0] + cos_t * p[:, 1]], axis=1) + c
        back[:, 0] -= shift
        return base.score(back)
    name = f"{base.name}@{float(degrees):g}" + (f"+{float(shift):g}" if shift else "")
    return AnalyticBoundary(name, base.dimension, score)


# ---------------------------------------------------------------------------
# Chaotic bands: boundaries of known dimension wrapped in pseudo-random outcomes

BAND_SAMPLES = 8          # abscissae per side that read a graph's range over [u - w, u + w]


@dataclass(frozen=True)
class ChaosBand:
    """A band of pseudo-random outcomes around a boundary.

    Attributes
    ----------
    width : float
        ``w``, window units: the band's half-width (for a varying band, its geometric mean along
        the curve).
    flip : float
        ``p``: the probability that a point of the band has the other side's outcome.
    decades : float
        The width varies along the curve as ``w(u) = width * 10^(decades / 2 * sin(2 pi u))``:
        over ``decades`` decades from its narrowest to its widest (0: a constant width).
    salt : int
        Chooses the pseudo-random outcomes (another salt, another draw of the same band).
    """

    width: float
    flip: float
    decades: float = 0.0
    salt: int = 0

    def width_at(self, u):
        """Half-width ``w(u)``, window units, at abscissae ``u`` (k,)."""
        u = np.asarray(u, dtype=np.float64)
        return self.width * 10.0 ** (self.decades / 2 * np.sin(2 * math.pi * u))


def _mix64(z):
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def coordinate_hash(points, salt=0):
    """A pseudo-random number in [0, 1) fixed by each point's float64 coordinates.

    Two points that differ in any bit of either coordinate get independent numbers, so a move
    of one rounding unit redraws the outcome, as a chaotic training run does; the same point
    always gets the same number, on any machine.

    Parameters
    ----------
    points : (k, 2) array_like of float64
    salt : int, optional

    Returns
    -------
    (k,) ndarray of float64
    """
    p = np.ascontiguousarray(points, dtype=np.float64)
    with np.errstate(over="ignore"):
        z = _mix64(p[:, 0].view(np.uint64) ^ _mix64(np.full(len(p), salt, dtype=np.uint64)))
        z = _mix64(z ^ p[:, 1].view(np.uint64))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def in_band(points, boundary, band):
    """Whether each point lies in ``band`` around ``boundary``'s curve.

    The band is the curve's neighbourhood of half-width ``w = band.width_at(u)`` in the max-norm:
    a point ``(u, v)`` is in it when ``v`` lies within ``w`` of the curve's range over
    ``[u - w, u + w]``. For a graph that range is read from ``2 * BAND_SAMPLES + 1`` equally
    spaced abscissae (the exact range of a rough curve over an interval has no closed form;
    the sampled one holds the graph's own points, so the band always contains the curve, and it
    lies inside the exact neighbourhood). A circle's band is exact: ``|r - R| < w``.

    Parameters
    ----------
    points : (k, 2) array_like of float64
    boundary : AnalyticBoundary
        A graph region (``curve`` set) or the circle.
    band : ChaosBand

    Returns
    -------
    (k,) ndarray of bool
    """
    p = np.asarray(points, dtype=np.float64)
    w = band.width_at(p[:, 0])
    if boundary.curve is None:
        if boundary.name != "circle":
            raise ValueError(f"no band for {boundary.name!r} (allowed: circle or a graph region)")
        return np.abs(_circle(p)) < w
    curve = boundary.curve
    centre = curve.height(p[:, 0])
    out = np.abs(p[:, 1] - centre) < w
    # only points the curve's oscillation over [u - w, u + w] can reach need the samples
    maybe = ~out & (np.abs(p[:, 1] - centre) < w + curve.oscillation(w))
    if maybe.any():
        u, v, wm = p[maybe, 0], p[maybe, 1], w[maybe]
        lo, hi = centre[maybe].copy(), centre[maybe].copy()
        for j in range(-BAND_SAMPLES, BAND_SAMPLES + 1):
            if j:
                h = curve.height(u + wm * (j / BAND_SAMPLES))
                lo, hi = np.minimum(lo, h), np.maximum(hi, h)
        out[maybe] = (v > lo - wm) & (v < hi + wm)
    return out


def banded_boundary(name, width, flip, decades=0.0, salt=0):
    """``analytic_boundary(name)`` wrapped in a chaotic band of known width.

    Inside the band (:func:`in_band`) a point's outcome is the other side's where
    ``coordinate_hash(point, salt) < flip``: pseudo-random, reproducible, and redrawn by a
    move of one rounding unit. The boundary's dimension is the curve's; the band adds a fraction
    of differing pairs that no distance explains, as chaotic training does near a trainability
    boundary. Name: ``<name>~w<width>p<flip>`` (``v<decades>`` for a varying width).

    Parameters
    ----------
    name : str
        ``circle``, ``weierstrass-<D>`` or ``takagi-<D>``.
    width : float
        Half-width, window units, ``1e-12 <= width <= 0.1``.
    flip : float
        ``0 < flip <= 0.5``.
    decades : float, optional
        Variation of the width along the curve (:class:`ChaosBand`), ``0 <= decades <= 3``.
    salt : int, optional

    Returns
    -------
    AnalyticBoundary
        With ``band`` set.
    """
    base = analytic_boundary(name)
    if base.curve is None and name != "circle":
        raise KeyError(f"no band for {name!r} (allowed: circle, weierstrass-<D>, takagi-<D>)")
    if not (1e-12 <= width <= 0.1 and 0.0 < flip <= 0.5 and 0.0 <= decades <= 3.0):
        raise ValueError(f"band width {width!r}, flip {flip!r}, decades {decades!r} (allowed: "
                         "1e-12 <= width <= 0.1, 0 < flip <= 0.5, 0 <= decades <= 3)")
    band = ChaosBand(float(width), float(flip), float(decades), int(salt))

    def score(points):
        p = np.asarray(points, dtype=np.float64)
        s = base.score(p)
        flipped = in_band(p, base, band) & (coordinate_hash(p, band.salt) < band.flip)
        return np.where(flipped, -s, s)
    label = f"{name}~w{width:g}p{flip:g}" + (f"v{decades:g}" if decades else "")
    return AnalyticBoundary(label, base.dimension, score, curve=base.curve, band=band)


def band_crossover(boundary, *, points=1 << 17, seed=0):
    """The scale where the clean curve separates as many pairs as the band flips: the ``eps*``
    a perfect uncertainty estimator reports for a :func:`banded_boundary`.

    Base points are uniform in ``u`` and in a strip of ``v`` around the curve (wide enough to
    hold the band and every pair that can differ at the scales searched); ``F`` is the fraction
    of them in the band times ``2 p (1 - p)`` (two independent draws differ: a move of a rounding
    unit), ``q(eps)`` the fraction whose partner ``eps`` away, in a random direction, lies across
    the clean curve. Both are densities along the same curve, so their crossing does not depend
    on the strip. ``q`` is read at 2 eps per decade from ``w / 100`` to ``100 w`` (``w`` the
    band's width), then at 8 per decade inside the decade where it first reaches ``F``, and the
    crossing is interpolated log-linearly. For a band of varying width, the crossing is that of
    the chaos averaged along the curve.

    Parameters
    ----------
    boundary : AnalyticBoundary
        With ``band`` set, a graph region (``curve`` set) or the circle.
    points : int, optional
    seed : int, optional

    Returns
    -------
    eps_cross : float
        Window units; NaN when ``q`` stays above or below ``F`` over the scales searched.
    info : dict
        ``floor`` (F), ``eps`` and ``q`` (the curve's separation fractions read, eps ascending).
    """
    band = boundary.band
    clean = analytic_boundary(boundary.name.split("~")[0])
    w_max = band.width * 10.0 ** (band.decades / 2)
    top = 100 * band.width
    rng = np.random.default_rng(seed)
    base = _strip_points(clean, rng, points, 2 * (top + w_max))
    floor = float(in_band(base, clean, band).mean() * 2 * band.flip * (1 - band.flip))
    side = np.sign(clean.score(base))
    theta = rng.random(len(base)) * 2 * math.pi
    step = np.stack([np.cos(theta), np.sin(theta)], axis=1)

    def q_at(eps):
        return np.array([np.mean(side * np.sign(clean.score(base + e * step)) < 0)
                         for e in eps])
    eps = band.width * 10.0 ** np.arange(-2.0, 2.01, 0.5)
    q = q_at(eps)
    above = np.flatnonzero(q >= floor)
    if len(above) and above[0] > 0:
        j = above[0]
        fine = eps[j - 1] * 10.0 ** (np.arange(1, 4) / 8)
        eps, q = np.concatenate([eps, fine]), np.concatenate([q, q_at(fine)])
        order = np.argsort(eps)
        eps, q = eps[order], q[order]
    return _first_crossing(eps, q, floor), {"floor": floor, "eps": eps, "q": q}


def _strip_points(clean, rng, points, reach):
    """Base points uniform in u and in v within the curve's oscillation plus `reach` of it (a
    graph), or uniform in the ring of half-width `reach` around the circle (by area)."""
    if clean.curve is not None:
        half = min(clean.curve.oscillation(np.array([reach]))[0] + reach, 2.0)
        u = rng.random(points)
        return np.stack([u, clean.curve.height(u) + (2 * rng.random(points) - 1) * half], axis=1)
    half = min(reach, 0.09)
    # uniform by area: r^2 uniform between the ring's radii
    r = np.sqrt((0.4 - half) ** 2 + rng.random(points) * ((0.4 + half) ** 2 - (0.4 - half) ** 2))
    t = rng.random(points) * 2 * math.pi
    return np.stack([0.5003 + r * np.cos(t), 0.4991 + r * np.sin(t)], axis=1)


def _first_crossing(eps, q, floor):
    """The eps where q first rises to floor, log-linearly between the two eps around it."""
    above = np.flatnonzero(q >= floor)
    if not len(above) or above[0] == 0 or not q[above[0] - 1] > 0:
        return float("nan")
    j = above[0]
    t = (math.log(floor) - math.log(q[j - 1])) / (math.log(q[j]) - math.log(q[j - 1]))
    return float(math.exp(math.log(eps[j - 1]) + t * (math.log(eps[j]) - math.log(eps[j - 1]))))
