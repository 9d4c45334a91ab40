"""Boundary extraction and box-counting fractal dimension of score maps.

A *score map* is a float array of shape ``(rows, cols)`` holding one training
outcome per hyperparameter pair: negative where training converged, positive
where it diverged. Row 0 is the smallest y value (display with
``origin='lower'``). The *boundary* (edge image) of a score map marks the
pixels that separate the two outcomes, and its box-counting dimension is the
quantity studied by Sohl-Dickstein (2024), "The boundary of neural network
trainability is fractal", arXiv:2402.06184.

Two estimators are provided:

* :func:`estimate_dimension` -- least-squares slope of ``log N(s)`` against
  ``log(1/s)`` over a documented scaling range, with box counts averaged over
  shifted box grids and a 95% interval that carries the sensitivity to the
  scaling range as well as box-placement noise, widened upward to the highest
  dimension that a smooth-to-rough crossover model of the counts admits
  (:func:`crossover_high`): on rough curves the box counts of a finite image
  read low.
* :func:`paper_dimension` -- the paper's estimator (median of local slopes at
  log-spaced box sizes, pooled over frames), kept for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DimensionEstimate",
    "REASON_EMPTY",
    "REASON_SHORT",
    "boundary",
    "box_counts",
    "crossover_high",
    "estimate_dimension",
    "local_slopes",
    "log_sizes",
    "paper_dimension",
    "power_of_two_sizes",
]

REASON_EMPTY = "no boundary in this map"
REASON_SHORT = "boundary too short for a dimension at this resolution"

# Scaling-range rule of estimate_dimension (see its docstring).
MIN_BOX_SIZE = 4  # px; smaller boxes see pixelisation, not geometry
MIN_BOXES_ACROSS = 8  # boxes across the boundary's extent and the image
MIN_SCALE_RATIO = 3.0  # s_max / s_min: at least ~1.6 octaves (a 128 px map just qualifies)
MIN_FIT_SIZES = 3
MIN_PAPER_PIXELS = 16  # paper estimator: boundary pixels per frame, on average
MIN_PAPER_SIDE = 64  # paper estimator: below this its 10 log-spaced sizes collapse to a few,
#                      too few for a slope
SUBRANGE_MIN_SHARE = 0.4  # sub-ranges span >= this share of log(s) range
# Crossover model of the counts (see crossover_high): N(s) = A s^-D + B s^-1 - E s^-2.
CROSSOVER_DIMENSIONS = np.round(np.linspace(1.0, 2.0, 201), 3)  # profile grid, step 0.005
CROSSOVER_DCHI2 = 2 * 3.841  # 95% chi2(1), doubled: neighbouring sizes (4 per octave) share
#                               boxes, so their residuals are correlated
CROSSOVER_MIN_ROUGH_SHARE = 0.5  # the rough term must hold >= half the boxes at the smallest
#                                  size, else its exponent is not measured (a line fits any D)
CROSSOVER_MIN_SIZES = 5  # three coefficients plus at least one residual degree of freedom
CROSSOVER_OCTAVES = 5  # the model is fitted from the smallest fitted size up to 2^5 times it:
#                        its three terms are the leading ones only, so over longer ranges its
#                        profile interval is too narrow


# ---------------------------------------------------------------------------
# Boundary


def boundary(scores):
    """Boundary pixels of a score map (the paper's definition).

    An edge pixel sits between four neighbouring scores; it is on the boundary
    iff that 2x2 neighbourhood holds both signs, i.e.
    ``sign(max * min) < 0`` over the four values (Sohl-Dickstein 2024).

    Parameters
    ----------
    scores : (rows, cols) array_like of float
        Score map: negative = converged, positive = diverged. Zeros have no
        sign and never create a boundary on their own. NaNs are ignored
        (a window is judged on its remaining values), so map non-finite
        training outcomes to a signed score before calling. Boolean
        "converged" maps are rejected on purpose: convert them explicitly,
        e.g. ``np.where(converged, -1.0, 1.0)``.

    Returns
    -------
    edges : (rows - 1, cols - 1) ndarray of bool
        ``edges[i, j]`` covers ``scores[i:i+2, j:j+2]``.

    Examples
    --------
    >>> s = -np.ones((3, 3)); s[1, 1] = 1.0
    >>> boundary(s)
    array([[ True,  True],
           [ True,  True]])
    """
    arr = np.asarray(scores)
    if arr.dtype == bool:
        raise TypeError(
            "boundary() takes a float score map; convert a bool map with "
            "np.where(converged, -1.0, 1.0)"
        )
    if arr.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {arr.shape}")
    arr = arr.astype(float, copy=False)
    windows = np.stack(
        [arr[:-1, :-1], arr[:-1, 1:], arr[1:, :-1], arr[1:, 1:]]
    )
    # fmax/fmin skip NaNs; comparing instead of multiplying avoids overflow.
    hi = np.fmax.reduce(windows, axis=0)
    lo = np.fmin.reduce(windows, axis=0)
    return (hi > 0) & (lo < 0)


# ---------------------------------------------------------------------------
# Box sizes and box counts


def power_of_two_sizes(shape):
    """Box sizes 1, 2, 4, ... up to ``min(shape)``.

    Parameters
    ----------
    shape : tuple of int
        Shape ``(rows, cols)`` of the edge image.

    Returns
    -------
    sizes : (n,) ndarray of int
        Box sides in pixels.
    """
    m = int(min(shape))
    if m < 1:
        return np.zeros(0, dtype=int)
    return 2 ** np.arange(int(math.log2(m)) + 1)


def log_sizes(shape, n=None, *, min_size=1, max_size=None):
    """Log-spaced integer box sizes (duplicates removed).

    Parameters
    ----------
    shape : tuple of int
        Shape ``(rows, cols)`` of the edge image.
    n : int, optional
        Number of log-spaced values before rounding; duplicates from
        rounding are dropped, so fewer may be returned. Default: four per
        octave between ``min_size`` and ``max_size``.
    min_size, max_size : int, optional
        Smallest and largest box side in pixels; ``max_size`` defaults to
        ``min(shape)``.

    Returns
    -------
    sizes : (k,) ndarray of int
        Strictly increasing box sides in pixels, ``k <= n``.
    """
    hi = int(min(shape)) if max_size is None else int(max_size)
    lo = int(min_size)
    if hi < lo or lo < 1:
        return np.zeros(0, dtype=int)
    if n is None:
        n = int(round(4 * math.log2(hi / lo))) + 1
    vals = np.logspace(math.log10(lo), math.log10(hi), max(int(n), 1))
    return np.unique(np.clip(np.round(vals).astype(int), lo, hi))


def _as_edges(edges):
    arr = np.asarray(edges)
    if arr.ndim != 2:
        raise ValueError(f"edge image must be 2-D, got shape {arr.shape}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.integer) and arr.size
                and np.isin(arr, (0, 1)).all()):
            raise TypeError(
                "expected a bool edge image; call boundary(scores) first"
            )
        arr = arr.astype(bool)
    return arr


def _integral(edges):
    """Summed-area table, shape (rows + 1, cols + 1), for O(1) box sums."""
    rows, cols = edges.shape
    # int32 halves memory for images up to 46k x 46k pixels.
    dtype = np.int32 if edges.size < 2 ** 31 else np.int64
    table = np.zeros((rows + 1, cols + 1), dtype=dtype)
    np.cumsum(np.cumsum(edges, axis=0, dtype=dtype), axis=1, out=table[1:, 1:])
    return table


def density_around(edges, rows, cols, half: int) -> np.ndarray:
    """Sum of `edges` (r, c; bool, or counts where two maps' boundaries are added) in the
    (2 half + 1)^2 box centred on each pixel (rows[k], cols[k]), the box clipped at the map's
    edges: (k,) int. One summed-area table (O(1) per box), as the box counts use."""
    table = _integral(np.asarray(edges))
    n_rows, n_cols = np.shape(edges)
    rows, cols = np.asarray(rows), np.asarray(cols)
    r0, r1 = np.clip(rows - half, 0, n_rows), np.clip(rows + half + 1, 0, n_rows)
    c0, c1 = np.clip(cols - half, 0, n_cols), np.clip(cols + half + 1, 0, n_cols)
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def _grid_lines(offset, size, length):
    # Box edges at -offset, -offset + size, ... until the image is covered;
    # clipping to [0, length] is the same as padding with False pixels.
    lines = np.arange(-offset, length + size, size)
    lines = lines[: np.searchsorted(lines, length) + 1]
    return np.clip(lines, 0, length)


def _box_sums(table, size, origin):
    rows, cols = table.shape[0] - 1, table.shape[1] - 1
    r = _grid_lines(int(origin[0]) % size, size, rows)
    c = _grid_lines(int(origin[1]) % size, size, cols)
    sums = (table[np.ix_(r[1:], c[1:])] - table[np.ix_(r[:-1], c[1:])]
            - table[np.ix_(r[1:], c[:-1])] + table[np.ix_(r[:-1], c[:-1])])
    return sums, r, c


def _count(table, size, origin, weighted):
    if size == 1:  # boxes are pixels, all inside the image
        return float(table[-1, -1])
    sums, r, c = _box_sums(table, size, origin)
    occupied = sums > 0
    if not weighted:
        return float(occupied.sum())
    # A box cut by the image border counts by the fraction of it inside the
    # image, so a boundary that fills the image is not inflated by the extra
    # partial boxes of a shifted grid.
    inside = np.outer(np.diff(r), np.diff(c)) / float(size * size)
    return float((inside * occupied).sum())


def _weighted_counts(table, size, origins, max_cells=1 << 22):
    """`_count(table, size, o, True)` for every origin o of `origins` (n, 2): (n,) float.

    All origins of one size in a few array operations rather than a Python call each: the per-
    epoch and per-frame estimates count 16 origins x ~15 sizes per map, where call overhead was
    most of the time. Grid lines past the image's edge clip onto it (boxes of zero width: sum 0,
    inside fraction 0), so every origin has the same number of lines and the counts are the
    loop's (to rounding).
    """
    origins = np.asarray(origins)
    if size == 1:
        return np.full(len(origins), float(table[-1, -1]))
    rows, cols = table.shape[0] - 1, table.shape[1] - 1

    def lines(offsets, length):
        k = np.arange(length // size + 3)
        return np.clip(-(offsets[:, None] % size) + k * size, 0, length)

    r, c = lines(origins[:, 0], rows), lines(origins[:, 1], cols)
    per_chunk = max(1, max_cells // (r.shape[1] * c.shape[1]))   # bounds the temporary arrays
    out = []
    for k in range(0, len(origins), per_chunk):
        rk, ck = r[k:k + per_chunk], c[k:k + per_chunk]
        r0, r1 = rk[:, :-1, None], rk[:, 1:, None]
        c0, c1 = ck[:, None, :-1], ck[:, None, 1:]
        sums = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
        inside = (r1 - r0) * (c1 - c0) / float(size * size)
        out.append((inside * (sums > 0)).sum(axis=(1, 2)))
    return np.concatenate(out)


def box_counts(edges, sizes, origin=(0, 0), *, weighted=False):
    """Number of boxes of each size that contain a boundary pixel.

    Boxes tile the plane on a grid with lines at ``-origin + k * s``; the
    image is padded with False so that the shifted grid covers it.

    Parameters
    ----------
    edges : (rows, cols) ndarray of bool
        Edge image, e.g. ``boundary(scores)``.
    sizes : sequence of int
        Box sides in pixels.
    origin : tuple of int, optional
        Grid shift ``(dy, dx)`` in pixels, taken modulo each size.
    weighted : bool, optional
        If True, a box cut by the image border counts as the fraction of its
        area inside the image instead of 1 (what :func:`estimate_dimension`
        uses). Default False: plain integer counts.

    Returns
    -------
    counts : (len(sizes),) ndarray of float
        Box counts (integers unless ``weighted``).

    Examples
    --------
    >>> e = np.zeros((4, 4), bool); e[0, 0] = e[3, 3] = True
    >>> box_counts(e, [1, 2, 4])
    array([2., 2., 1.])
    >>> box_counts(e, [2], origin=(1, 1))
    array([2.])
    """
    edges = _as_edges(edges)
    table = _integral(edges)
    sizes = np.asarray(sizes, dtype=int).ravel()
    if (sizes < 1).any():
        raise ValueError("box sizes must be >= 1 pixel")
    return np.array([_count(table, int(s), origin, weighted) for s in sizes])


def local_slopes(sizes, counts):
    """Local dimension ``-d log N / d log s`` between neighbouring sizes.

    Parameters
    ----------
    sizes : (n,) array_like
        Box sides in pixels, strictly increasing.
    counts : (n,) array_like
        Box counts ``N(s)``.

    Returns
    -------
    slopes : (n - 1,) ndarray of float
        ``slopes[i]`` belongs to sizes ``i`` and ``i + 1`` (plot it at their
        geometric mean). NaN where a count is zero.
    """
    s = np.asarray(sizes, dtype=float)
    n = np.asarray(counts, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logn = np.where(n > 0, np.log(np.where(n > 0, n, 1.0)), np.nan)
        return -np.diff(logn) / np.diff(np.log(s))


# ---------------------------------------------------------------------------
# Estimates


def json_safe(v):
    """`v` as strict JSON takes it, recursively: arrays and tuples become lists, numpy scalars
    Python ones, and non-finite floats (inf, nan) None. Here, on the lowest floor that writes
    JSON (the estimates' ``to_dict``); storage's JSON writers use it too."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return [json_safe(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


@dataclass
class DimensionEstimate:
    """Box-counting dimension of an edge image, with its evidence.

    Attributes
    ----------
    dimension : float or None
        Estimated box-counting dimension; None when ``ok`` is False.
    ci_low, ci_high : float or None
        95% interval for the dimension; None when ``ok`` is False.
    sizes : (n,) ndarray of int
        Box sides counted, in pixels.
    counts : (n,) ndarray of float
        Box counts ``N(s)`` (mean over grid shifts or frames).
    local_slopes : (m,) ndarray of float
        Local dimensions ``-d log N / d log s``.
    slope_sizes : (m,) ndarray of float
        Box size (pixels) at which each local slope applies.
    fit_sizes : (k,) ndarray of int
        Sizes used by the estimate (the scaling range).
    method : str
        ``'box-ols'`` or ``'paper-median'``.
    n_boundary_pixels : int
        Number of True pixels in the edge image(s).
    ok : bool
        Whether a dimension could be estimated.
    reason : str
        Why not, when ``ok`` is False; ``''`` otherwise.
    stderr : float or None
        Least-squares standard error of the slope (``'box-ols'`` only).
    intercept : float or None
        ``log N`` at ``s = 1`` px of the fitted line, so that
        ``N(s) = exp(intercept) * s ** -dimension`` (``'box-ols'`` only).
    n_frames : int
        Number of edge images pooled.
    extra : dict
        Method details (bootstrap sizes, interval components).
    """

    dimension: float | None
    ci_low: float | None
    ci_high: float | None
    sizes: np.ndarray
    counts: np.ndarray
    local_slopes: np.ndarray
    slope_sizes: np.ndarray
    fit_sizes: np.ndarray
    method: str
    n_boundary_pixels: int
    ok: bool
    reason: str = ""
    stderr: float | None = None
    intercept: float | None = None
    n_frames: int = 1
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        """JSON-safe dict: arrays become lists, NaN/inf become None."""
        return json_safe(self.__dict__)


def _failed(method, reason, n_pixels, sizes=(), counts=(), slopes=(),
            slope_sizes=(), n_frames=1):
    return DimensionEstimate(
        dimension=None, ci_low=None, ci_high=None,
        sizes=np.asarray(sizes, dtype=int), counts=np.asarray(counts, float),
        local_slopes=np.asarray(slopes, float),
        slope_sizes=np.asarray(slope_sizes, float),
        fit_sizes=np.zeros(0, dtype=int), method=method,
        n_boundary_pixels=int(n_pixels), ok=False, reason=reason,
        n_frames=n_frames,
    )


def _ols_slopes(x, y):
    """Least-squares slopes of each row of ``y`` (b, k) on ``x`` (k,)."""
    dx = x - x.mean()
    return (y - y.mean(axis=1, keepdims=True)) @ dx / (dx @ dx)


def _scaling_range(sizes, counts, shape, extent):
    """Sizes kept by the default scaling-range rule (bool mask)."""
    s_max = min(min(shape), extent) / MIN_BOXES_ACROSS
    return (sizes >= MIN_BOX_SIZE) & (sizes <= s_max) & (counts > 0)


def _grid_origins(size, n_origins, rng):
    if size * size <= n_origins:  # few distinct shifts: use them all
        dy, dx = np.divmod(np.arange(size * size), size)
        return np.stack([dy, dx], axis=1)
    return rng.integers(0, size, size=(n_origins, 2))


def refusal_by_shape(edges):
    """The refusal `estimate_dimension` gives every edge image of this shape, or None.

    The scaling-range rule needs sizes from MIN_BOX_SIZE to min(rows, cols) / MIN_BOXES_ACROSS
    spanning MIN_SCALE_RATIO, so a map with a side under 4 x 8 x 3 = 96 px gives no dimension
    whatever its boundary; knowing that, the per-epoch estimates of a small map skip counting
    boxes. The refusal holds no counts."""
    edges = _as_edges(edges)
    n_pix = int(edges.sum())
    if n_pix == 0:
        return _failed("box-ols", REASON_EMPTY, 0)
    if min(edges.shape) / MIN_BOXES_ACROSS / MIN_BOX_SIZE < MIN_SCALE_RATIO:
        return _failed("box-ols", REASON_SHORT, n_pix)
    return None


def estimate_dimension(edges, *, sizes=None, fit_range=None, n_boot=200,
                       n_origins=16, seed=0):
    """Box-counting dimension of an edge image with a 95% interval.

    Box counts ``N(s)`` are averaged over ``n_origins`` random shifts of the
    box grid (all shifts when ``s**2 <= n_origins``); a box cut by the image
    border counts by the fraction of its area inside the image (see
    :func:`box_counts`), which keeps boundaries that fill the image unbiased.
    The dimension is the least-squares slope of ``log N`` against
    ``log(1/s)`` over the scaling range.

    Scaling-range rule (used unless ``fit_range`` is given):

    * ``s >= 4`` px. Below that the counts describe pixelisation rather than
      geometry: ``N(1)`` is the boundary pixel count by definition and the
      2x2 boundary stencil makes curves one to two pixels thick, so counts
      saturate toward the number of boundary pixels and bias the slope.
    * ``s <= min(min(rows, cols), extent) / 8``, where ``extent`` is the
      larger side of the bounding box of the boundary pixels: at least 8
      boxes must fit across both the image and the boundary, otherwise the
      few, border-cut boxes no longer sample the boundary's scaling.
    * The range must span at least a factor 3 in ``s`` (1.6 octaves) and hold
      at least 3 sizes; otherwise the result has ``ok=False`` and the reason
      ``"boundary too short for a dimension at this resolution"``.

    95% interval. At the resolutions of interest the error of a box-counting
    dimension is mostly systematic (log-periodic wobble of the local slopes
    of real fractals, pixel-scale smoothing at small boxes, border effects
    at large boxes), so the interval is built to carry sensitivity to the
    scaling range, not only scatter:

    1. every contiguous sub-range of the fit sizes spanning at least 40%
       of its ``log s`` extent (and >= 3 sizes) is fitted, and the interval
       spans from the lowest ``slope - t se`` to the highest
       ``slope + t se`` over these sub-ranges (``se``: least-squares
       standard error, ``t``: 97.5% Student-t quantile; the full range is
       one of the sub-ranges);
    2. it is widened on both sides by 1.96 standard deviations of the
       full-range slope over ``n_boot`` bootstrap resamples of the grid
       shifts (box-placement noise);
    3. its upper end is raised to :func:`crossover_high` of the counts from
       the smallest fitted size to ``2**CROSSOVER_OCTAVES`` (32) times it,
       when that is higher. On a rough curve the counts of a finite image
       read low (boxes larger than the curve's oscillation see it as
       smooth; pixel-centre samples miss the extremes of a curve that is
       rough below a pixel), and the raised bound is what covers the truth
       (README, "Resolution and dimensions"). The point estimate
       stays the fitted slope: the model's own best dimension is not
       identified well enough to replace it. ``extra`` keeps the unraised
       bound as ``fit_high``.

    Parameters
    ----------
    edges : (rows, cols) ndarray of bool
        Edge image, e.g. ``boundary(scores)``.
    sizes : sequence of int, optional
        Box sides to count, in pixels. Default: ``log_sizes(edges.shape)``
        (four per octave).
    fit_range : (float, float), optional
        ``(s_min, s_max)`` in pixels, inclusive; overrides the rule above
        (only the ``>= 3`` sizes requirement remains).
    n_boot : int, optional
        Bootstrap resamples of the grid shifts.
    n_origins : int, optional
        Grid shifts averaged per box size.
    seed : int, optional
        Seed for grid shifts and bootstrap; results are deterministic.

    Returns
    -------
    DimensionEstimate
        With ``method='box-ols'``; ``counts`` are the shift-averaged
        (border-weighted) counts.
    """
    edges = _as_edges(edges)
    method = "box-ols"
    n_pix = int(edges.sum())
    if n_pix == 0:
        return _failed(method, REASON_EMPTY, 0)
    sizes = log_sizes(edges.shape) if sizes is None else np.unique(
        np.asarray(sizes, dtype=int))
    if sizes.size == 0 or sizes[0] < 1:
        raise ValueError("box sizes must be >= 1 pixel")

    rng = np.random.default_rng(seed)
    table = _integral(edges)
    per_origin = [  # counts for each size, one per grid shift
        _weighted_counts(table, int(s), _grid_origins(int(s), n_origins, rng)) for s in sizes]
    counts = np.array([c.mean() for c in per_origin])
    slopes = local_slopes(sizes, counts)
    slope_sizes = np.sqrt(sizes[1:] * sizes[:-1].astype(float))

    rows_any = np.flatnonzero(edges.any(axis=1))
    cols_any = np.flatnonzero(edges.any(axis=0))
    extent = max(rows_any[-1] - rows_any[0], cols_any[-1] - cols_any[0]) + 1
    if fit_range is None:
        keep = _scaling_range(sizes, counts, edges.shape, extent)
        fs = sizes[keep]
        too_short = (fs.size < MIN_FIT_SIZES
                     or fs[-1] / fs[0] < MIN_SCALE_RATIO)
    else:
        keep = ((sizes >= fit_range[0]) & (sizes <= fit_range[1])
                & (counts > 0))
        fs = sizes[keep]
        too_short = fs.size < MIN_FIT_SIZES
    if too_short:
        return _failed(method, REASON_SHORT, n_pix, sizes, counts, slopes,
                       slope_sizes)

    x = -np.log(fs.astype(float))  # log(1/s): the slope is the dimension
    y = np.log(counts[keep])
    dim, intercept, stderr = _ols_fit(x, y)
    sub_lo, sub_hi = _subrange_bounds(x, y)
    boot = _bootstrap_ols(x, [per_origin[i] for i in np.flatnonzero(keep)],
                          n_boot, rng)
    grid_sd = float(boot.std(ddof=1)) if boot.size > 1 else 0.0
    fit_high = float(max(sub_hi, dim) + 1.96 * grid_sd)
    cross = keep & (sizes <= fs[0] * 2 ** CROSSOVER_OCTAVES)
    cross_high = crossover_high(sizes[cross], counts[cross])
    return DimensionEstimate(
        dimension=dim, ci_low=float(min(sub_lo, dim) - 1.96 * grid_sd),
        ci_high=max(fit_high, cross_high or fit_high), sizes=sizes,
        counts=counts, local_slopes=slopes, slope_sizes=slope_sizes,
        fit_sizes=fs, method=method, n_boundary_pixels=n_pix, ok=True,
        reason="", stderr=stderr, intercept=intercept,
        extra={"n_boot": int(n_boot), "n_origins": int(n_origins),
               "subrange_low": float(sub_lo), "subrange_high": float(sub_hi),
               "grid_sd": grid_sd, "fit_high": fit_high, "crossover_high": cross_high,
               "crossover_sizes": sizes[cross],
               "interval": _interval_kind(fit_high, cross_high, int(cross.sum()))},
    )


def _interval_kind(own_high, cross_high, n_cross_sizes):
    """How the upper bound was set, for ``extra['interval']``."""
    if n_cross_sizes < CROSSOVER_MIN_SIZES:
        return "own (crossover not assessed: fewer than 5 sizes)"
    if cross_high is None:
        return "own (the counts hold no rough term that could hide a higher dimension)"
    return "widened to crossover_high" if cross_high > own_high else "own"


def _ols_fit(x, y):
    """Slope, intercept and slope standard error of y on x."""
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    dof = max(x.size - 2, 1)
    se = math.sqrt(resid @ resid / dof / ((x - x.mean()) ** 2).sum())
    return float(slope), float(intercept), se


def _subrange_bounds(x, y):
    """Lowest and highest 95% bound over contiguous sub-ranges of the fit.

    Windows of consecutive sizes spanning at least ``SUBRANGE_MIN_SHARE`` of
    the log scaling range and holding >= ``MIN_FIT_SIZES`` sizes; returns
    ``min(slope - 1.96 se)`` and ``max(slope + 1.96 se)`` over them.
    """
    span = abs(x[0] - x[-1])
    lo, hi = np.inf, -np.inf
    for i in range(x.size):
        for j in range(i + MIN_FIT_SIZES - 1, x.size):
            if abs(x[i] - x[j]) < SUBRANGE_MIN_SHARE * span * (1 - 1e-9):
                continue
            d, _, se = _ols_fit(x[i:j + 1], y[i:j + 1])
            # Student t: a window holds only a handful of sizes.
            t = _t975(j - i - 1)
            lo, hi = min(lo, d - t * se), max(hi, d + t * se)
    return lo, hi


# 97.5% quantiles of Student's t for 1..30 degrees of freedom (scipy is not
# a runtime dependency).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262,
         2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
         2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
         2.048, 2.045, 2.042)


def _t975(dof):
    """97.5% quantile of Student's t with ``dof`` degrees of freedom."""
    dof = max(int(dof), 1)
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959964  # Cornish-Fisher expansion, within 5e-4 beyond 30
    return (z + (z ** 3 + z) / (4 * dof)
            + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * dof ** 2))


def _bootstrap_ols(x, per_origin, n_boot, rng):
    """Full-range slopes refitted with the grid shifts resampled per size."""
    if n_boot <= 1:
        return np.zeros(0)
    y = np.empty((n_boot, x.size))
    for j, c in enumerate(per_origin):
        pick = rng.integers(0, c.size, size=(n_boot, c.size))
        y[:, j] = np.log(c[pick].mean(axis=1))
    return _ols_slopes(x, y)


def _crossover_profile(sizes, counts):
    """Best crossover model at each profiled dimension.

    Fits ``N(s) = A s^-D + B s^-1 - E s^-2`` with ``A > 0, B >= 0, E >= 0`` by least squares on
    the relative residuals ``model / N - 1`` (about the residuals of ``log N``) for every ``D`` of
    ``CROSSOVER_DIMENSIONS``, trying every subset of the optional terms and keeping the best
    feasible one.

    Returns
    -------
    rss : (m,) ndarray of float
        Residual sum of squares per dimension (inf where no subset is feasible).
    rough_share : (m,) ndarray of float
        ``(A s0^-D - E s0^-2) / N(s0)`` at the smallest size ``s0``.
    """
    s, n, dims = sizes, counts, CROSSOVER_DIMENSIONS
    design = np.stack([s[None, :] ** -dims[:, None],
                       np.broadcast_to(s ** -1.0, (dims.size, s.size)),
                       np.broadcast_to(-s ** -2.0, (dims.size, s.size))], axis=2) / n[:, None]
    rss = np.full(dims.size, np.inf)
    share = np.zeros(dims.size)
    for terms in ((0, 1, 2), (0, 1), (0, 2), (0,)):
        x = design[:, :, terms]
        coef = np.linalg.pinv(x) @ np.ones(s.size)  # (m, len(terms)), batched over dimensions
        resid = np.einsum("mkt,mt->mk", x, coef) - 1.0
        this = np.einsum("mk,mk->m", resid, resid)
        better = (coef >= 0).all(axis=1) & (coef[:, 0] > 0) & (this < rss)
        deficit = coef[:, terms.index(2)] * s[0] ** -2.0 if 2 in terms else 0.0
        rough = (coef[:, 0] * s[0] ** -dims - deficit) / n[0]
        rss = np.where(better, this, rss)
        share = np.where(better, rough, share)
    return rss, share


def crossover_high(sizes, counts):
    """Highest dimension that a smooth-to-rough crossover model of the box counts admits.

    Box counting reads a rough curve low on a finite image, for two reasons that both fade only
    slowly with resolution: boxes larger than the curve's local oscillation count it as if it were
    smooth (a term ``B s^-1``), and a curve that is still rough below one pixel is seen only
    through its samples at the pixel centres, whose extremes fall short of the curve's by about
    one pixel-scale oscillation (a deficit ``E s^-2``). The counts are modelled as

        ``N(s) = A s^-D + B s^-1 - E s^-2``,  ``A > 0``, ``B, E >= 0``,

    and profiled over ``D`` on a 0.005 grid from 1 to 2. A dimension is admitted when

    * its best fit is within ``CROSSOVER_DCHI2`` (2 x 3.84) of the best over all ``D``, in units
      of the best fit's residual variance (a 95% profile interval; doubled because neighbouring
      box sizes share boxes and their residuals are correlated), and
    * its rough part ``A s^-D - E s^-2`` holds at least ``CROSSOVER_MIN_ROUGH_SHARE`` (half) of
      the boxes at the smallest size: otherwise ``D`` is the exponent of a term the counts barely
      contain, which the data do not measure (a straight line is fitted by any ``D``).

    On the Weierstrass family at 1024 px the plain least-squares slope is 0.04-0.3 low, and this
    bound lies above the truth in almost all cases (see README); on self-similar sets and smooth
    curves it stays close to the fitted slope.

    Parameters
    ----------
    sizes : (k,) array_like of int
        Box sides of the scaling range, pixels, increasing.
    counts : (k,) array_like of float
        Box counts ``N(s)`` (positive).

    Returns
    -------
    high : float or None
        Highest admitted dimension; None when the model cannot be assessed (fewer than
        ``CROSSOVER_MIN_SIZES`` sizes, or no dimension passes).
    """
    s = np.asarray(sizes, dtype=float)
    n = np.asarray(counts, dtype=float)
    if s.size < CROSSOVER_MIN_SIZES or (n <= 0).any():
        return None
    rss, share = _crossover_profile(s, n)
    dof = s.size - 4  # three coefficients and the dimension
    passes = ((rss <= rss.min() * (1.0 + CROSSOVER_DCHI2 / dof))
              & (share >= CROSSOVER_MIN_ROUGH_SHARE))
    return float(CROSSOVER_DIMENSIONS[passes].max()) if passes.any() else None


# ---------------------------------------------------------------------------
# The paper's estimator


def _porespy_sizes(shape, bins):
    # porespy.metrics.boxcount default: log-spaced from 10 px to min(shape),
    # truncated to int.
    return np.unique(np.logspace(1, np.log10(min(shape)), bins).astype(int))


def _porespy_counts(edges, sizes):
    # porespy tiles from the top-left corner (origin 0, partial boxes at the
    # far edges kept) and counts boxes holding some, but not only, True
    # pixels.
    table = _integral(edges)
    out = []
    for s in sizes:
        sums, r, c = _box_sums(table, int(s), (0, 0))
        area = np.outer(np.diff(r), np.diff(c))
        out.append(int(((sums > 0) & (sums < area)).sum()))
    return np.array(out, dtype=float)


def paper_dimension(edge_images, *, bins=10, n_boot=200, seed=0):
    """Fractal dimension by the paper's estimator (median local slope).

    This reproduces Sohl-Dickstein (2024)'s procedure, which used
    ``porespy.metrics.boxcount`` on each edge image: box sizes
    ``unique(int(logspace(1, log10(min(shape)), bins)))`` px, boxes tiled from
    the corner and counted when they hold some but not only boundary pixels,
    local slopes ``-np.gradient(log N, log s)`` at every size, and the
    dimension is the median of all local slopes pooled over all frames (the
    paper pools the frames of a zoom sequence). There is no scaling-range
    selection. Slopes that are not finite (zero counts) are dropped.

    The interval is a percentile bootstrap (2.5-97.5%) of that median:
    frames are resampled with replacement, then the pooled slopes are
    resampled with replacement. That reflects the spread of local slopes,
    not the estimator's bias, which on rough curves is as low as the box
    fit's (Weierstrass regions at 1024 px: 0.05-0.3 low); so, as in
    :func:`estimate_dimension`, the upper end is raised to
    :func:`crossover_high` of the frames' box counts (frames shaped like the
    first, counts averaged over them and over 4 grid shifts, at sizes from
    4 px to 32 times that within the scaling-range rule) when that is
    higher. ``extra`` keeps the bootstrap's bound as ``bootstrap_high``.

    Parameters
    ----------
    edge_images : list of (rows, cols) ndarray of bool
        Edge images (e.g. ``boundary(scores)`` of each frame).
    bins : int, optional
        Number of log-spaced sizes before rounding (porespy's default 10).
    n_boot : int, optional
        Bootstrap replicates for the interval.
    seed : int, optional
        Seed of the bootstrap.

    Returns
    -------
    DimensionEstimate
        With ``method='paper-median'``. ``sizes``/``counts`` are those of
        the first frame's shape (counts averaged over frames of that shape);
        ``local_slopes`` is the per-size median over those frames and
        ``fit_sizes`` all sizes.
    """
    frames = [_as_edges(e) for e in edge_images]
    method = "paper-median"
    if not frames:
        raise ValueError("paper_dimension needs at least one edge image")
    n_pix = int(sum(int(e.sum()) for e in frames))
    nf = len(frames)
    if n_pix == 0:
        return _failed(method, REASON_EMPTY, 0, n_frames=nf)
    if n_pix < MIN_PAPER_PIXELS * nf or min(min(e.shape) for e in frames) < MIN_PAPER_SIDE:
        # A handful of pixels gives flat counts and slopes of 0: a number, but a meaningless one.
        return _failed(method, REASON_SHORT, n_pix, n_frames=nf)

    per_frame = []  # finite local slopes of each frame
    sizes0 = _porespy_sizes(frames[0].shape, bins)
    same = []  # (counts, slopes) of frames shaped like the first
    for e in frames:
        sizes = _porespy_sizes(e.shape, bins)
        counts = _porespy_counts(e, sizes)
        with np.errstate(divide="ignore", invalid="ignore"):
            sl = (-np.gradient(np.log(counts), np.log(sizes))
                  if sizes.size > 1 else np.zeros(0))
        per_frame.append(sl[np.isfinite(sl)])
        if e.shape == frames[0].shape:
            same.append((counts, np.where(np.isfinite(sl), sl, np.nan)))
    counts0 = np.mean([c for c, _ in same], axis=0)
    with np.errstate(all="ignore"):
        slopes0 = (np.nanmedian(np.stack([s for _, s in same]), axis=0)
                   if sizes0.size > 1 else np.zeros(0))
    pooled = np.concatenate(per_frame)
    if pooled.size < MIN_FIT_SIZES:
        return _failed(method, REASON_SHORT, n_pix, sizes0, counts0, slopes0,
                       sizes0, nf)

    dim = float(np.median(pooled))
    cross_sizes, cross_counts = _frames_crossover_counts(
        [e for e in frames if e.shape == frames[0].shape])
    cross_high = crossover_high(cross_sizes, cross_counts)
    rng = np.random.default_rng(seed)
    meds = []
    for _ in range(max(int(n_boot), 0)):
        pick = rng.integers(0, nf, nf)
        pool = np.concatenate([per_frame[i] for i in pick])
        if pool.size:
            meds.append(np.median(rng.choice(pool, pool.size)))
    lo, hi = np.percentile(meds, [2.5, 97.5]) if meds else (dim, dim)
    boot_high = float(max(hi, dim))
    return DimensionEstimate(
        dimension=dim, ci_low=float(min(lo, dim)),
        ci_high=max(boot_high, cross_high or boot_high),
        sizes=sizes0, counts=counts0, local_slopes=slopes0,
        slope_sizes=sizes0.astype(float), fit_sizes=sizes0, method=method,
        n_boundary_pixels=n_pix, ok=True, reason="", n_frames=nf,
        extra={"n_boot": int(n_boot), "bins": int(bins),
               "n_slopes": int(pooled.size), "bootstrap_high": boot_high,
               "crossover_high": cross_high, "crossover_sizes": cross_sizes,
               "interval": _interval_kind(boot_high, cross_high, cross_sizes.size)},
    )


def _frames_crossover_counts(frames, n_origins=4, seed=0):
    """Box counts of same-shaped frames for :func:`crossover_high`, averaged over the frames.

    Sizes: four per octave from ``MIN_BOX_SIZE`` to ``2**CROSSOVER_OCTAVES`` times it, capped by
    the scaling-range rule of :func:`estimate_dimension` (8 boxes across the image and the
    boundary) of each frame; border-weighted counts averaged over ``n_origins`` grid shifts.

    Returns
    -------
    sizes : (k,) ndarray of int
        Box sides in pixels (empty when no size qualifies).
    counts : (k,) ndarray of float
        Mean count over the frames with a boundary.
    """
    frames = [e for e in frames if e.any()]
    if not frames:
        return np.zeros(0, dtype=int), np.zeros(0)
    rng = np.random.default_rng(seed)
    top = MIN_BOX_SIZE * 2 ** CROSSOVER_OCTAVES
    sizes = log_sizes(frames[0].shape, min_size=MIN_BOX_SIZE,
                      max_size=max(min(top, min(frames[0].shape)), MIN_BOX_SIZE))
    per_frame = []
    for e in frames:
        table = _integral(e)
        per_frame.append([np.mean(_weighted_counts(table, int(s), _grid_origins(int(s), n_origins, rng)))
                          for s in sizes])
    counts = np.mean(per_frame, axis=0)
    keep = np.ones(sizes.size, dtype=bool)
    for e in frames:
        rows_any = np.flatnonzero(e.any(axis=1))
        cols_any = np.flatnonzero(e.any(axis=0))
        extent = max(rows_any[-1] - rows_any[0], cols_any[-1] - cols_any[0]) + 1
        keep &= _scaling_range(sizes, counts, e.shape, extent)
    return sizes[keep], counts[keep]
