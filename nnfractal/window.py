"""The hyperparameter window as one value: which number of ``mnmx`` is which, the units a point
is written in, and where the pixels of a side sit.

A config's ``mnmx`` is ``(y_min, y_max, x_min, x_max)`` (the paper's order: rows first). Code reads
it only through `Window.of` / `Window.from_mnmx`, never by unpacking the tuple.

Units
-----
axis units
    What ``mnmx`` holds and what plots are drawn in: base-10 exponents on log axes
    (``axis_scale = "log"``), plain values on linear ones.
values
    The hyperparameters training sees: ``10 ** axis units`` on log axes, the axis units otherwise.
window units
    The unit square over the window, ``(0, 0)`` its lower-left corner (x_min, y_min) and
    ``(1, 1)`` its upper-right one; the estimators work in these.

Pixels
------
A side of ``n`` pixels puts them by one of two named conventions, each where its grid needs it:

``ENDPOINTS``
    pixel k at ``k / (n - 1)``: the first and last pixels lie on the window's edges. Grid runs
    (``np.linspace`` over ``mnmx``, as the paper's code), zoom frames and the explorer.
``CENTRES``
    pixel k at ``(k + 0.5) / n``: the middle of the k-th of n equal cells, so that the cells
    tile the window. The sampling estimators' coarse maps and the known sets' score maps.

Here, below config, rather than in training/grid.py: the estimators use the pixel conventions
and may not import training (the floors in pyproject.toml), and config validates with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

ENDPOINTS = "endpoints"
CENTRES = "centres"
PIXEL_CONVENTIONS = (ENDPOINTS, CENTRES)

# Neighbouring points closer than this many rounding units of the training precision are not
# trained apart: below it their hyperparameters differ by too few units to be evenly spaced to 1%.
MIN_ULPS_APART = 100.0


def to_values(axis_units: Any, axis_scale: str) -> Any:
    """Axis units (a number or an array) -> hyperparameter values: ``10 ** a`` on log axes."""
    return 10.0 ** axis_units if axis_scale == "log" else axis_units


def pixel_units(n: int, pixels: str = ENDPOINTS) -> np.ndarray:
    """Window units of the ``n`` pixels of a side, (n,) float64 (see the module's Pixels)."""
    if pixels == ENDPOINTS:
        return np.linspace(0.0, 1.0, n, dtype=np.float64)
    if pixels == CENTRES:
        return (np.arange(n, dtype=np.float64) + 0.5) / n
    raise ValueError(f"pixels: {pixels!r} is not allowed (allowed: {', '.join(PIXEL_CONVENTIONS)})")


def cell_middles(n: int, pixels: str = ENDPOINTS) -> np.ndarray:
    """Window units of the middles of the ``n - 1`` cells between neighbouring pixels, (n-1,).

    A boundary cell of a map (`boxcount.boundary`) spans pixels k and k + 1; this is its middle.
    """
    p = pixel_units(n, pixels)
    return (p[:-1] + p[1:]) / 2


def unit_grid(n: int, pixels: str = ENDPOINTS) -> np.ndarray:
    """All ``n * n`` pixels of a square map in window units, row-major (row 0 at v's lowest):
    ``grid[i * n + j] = (u_j, v_i)``, (n*n, 2) float64."""
    c = pixel_units(n, pixels)
    u, v = np.meshgrid(c, c)
    return np.stack([u.ravel(), v.ravel()], axis=1)


def ulps_per_pixel_on_axis(lo: float, hi: float, n: int, axis_scale: str,
                           precision: str = "float64") -> float:
    """Rounding units of `precision` between neighbouring ENDPOINTS pixels of the side lo..hi
    (axis units).

    On a log axis a pixel is the relative step ``spacing * ln 10`` of the value ``10 ** v``, and
    ``v``'s own rounding ``|v| * eps`` moves the value by ``ln 10 * |v| * eps`` relative (the
    power's rounding by about eps); on a linear axis the step is ``spacing / max|value|``.
    """
    eps = float(np.finfo(np.dtype(precision)).eps)
    spacing = (hi - lo) / (n - 1)
    big = max(abs(lo), abs(hi))
    if axis_scale == "log":
        return spacing * math.log(10) / (eps * max(1.0, math.log(10) * big))
    return spacing / (eps * big) if big > 0 else math.inf


def _nested(centre: float, width: float, lo_outer: float, hi_outer: float) -> tuple[float, float]:
    lo = centre - width / 2
    if lo < lo_outer:
        return lo_outer, lo_outer + width
    if lo + width > hi_outer:
        return hi_outer - width, hi_outer
    return lo, lo + width


@dataclass(frozen=True)
class Window:
    """A rectangle of the hyperparameter plane in axis units, with its axis scale.

    Attributes
    ----------
    x0, x1 : float
        The x range (columns: the weight offset, or the input layer's learning rate), axis units.
    y0, y1 : float
        The y range (rows: the learning rate), axis units.
    axis_scale : {"log", "linear"}
        "log": the four numbers are base-10 exponents.
    """

    x0: float
    x1: float
    y0: float
    y1: float
    axis_scale: str = "linear"

    @classmethod
    def from_mnmx(cls, mnmx: Any, axis_scale: str = "linear") -> Window:
        """The window of a ``(y_min, y_max, x_min, x_max)`` sequence (a config's or a JSON file's)."""
        y0, y1, x0, x1 = (float(v) for v in mnmx)
        return cls(x0, x1, y0, y1, axis_scale)

    @classmethod
    def of(cls, cfg: Any) -> Window:
        """The window of a config (anything with ``mnmx`` and ``axis_scale``)."""
        return cls.from_mnmx(cfg.mnmx, cfg.axis_scale)

    @property
    def mnmx(self) -> tuple[float, float, float, float]:
        """``(y_min, y_max, x_min, x_max)``, the config's order."""
        return (self.y0, self.y1, self.x0, self.x1)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` in axis units: matplotlib's order (imshow extent)."""
        return (self.x0, self.x1, self.y0, self.y1)

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) in axis units."""
        return (self.x1 - self.x0, self.y1 - self.y0)

    @property
    def centre(self) -> tuple[float, float]:
        """(x, y) of the middle, axis units."""
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def contains(self, x: float, y: float) -> bool:
        """Whether the point (x, y), axis units, lies in the window (edges included)."""
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    def to_axis(self, unit: np.ndarray) -> np.ndarray:
        """Window units (k, 2) -> axis units (k, 2)."""
        unit = np.asarray(unit, dtype=np.float64)
        return np.stack([self.x0 + unit[:, 0] * (self.x1 - self.x0),
                         self.y0 + unit[:, 1] * (self.y1 - self.y0)], axis=1)

    def to_unit(self, axis_units: np.ndarray) -> np.ndarray:
        """Axis units (k, 2) -> window units (k, 2)."""
        a = np.asarray(axis_units, dtype=np.float64)
        return np.stack([(a[:, 0] - self.x0) / (self.x1 - self.x0),
                         (a[:, 1] - self.y0) / (self.y1 - self.y0)], axis=1)

    def to_values(self, unit: np.ndarray) -> np.ndarray:
        """Window units (k, 2) -> hyperparameter values (x, y) (k, 2), as the engine takes them."""
        return to_values(self.to_axis(unit), self.axis_scale)

    def axis_units(self, n: int, pixels: str = ENDPOINTS) -> tuple[np.ndarray, np.ndarray]:
        """(columns' x (n,), rows' y (n,)) of an n x n map in axis units, float64.

        ENDPOINTS is ``np.linspace`` over each range, bit for bit: the grid runs' hyperparameters
        (and so their stored numbers) are the paper code's.
        """
        if pixels == ENDPOINTS:
            return (np.linspace(self.x0, self.x1, n, dtype=np.float64),
                    np.linspace(self.y0, self.y1, n, dtype=np.float64))
        p = pixel_units(n, pixels)
        return self.x0 + p * (self.x1 - self.x0), self.y0 + p * (self.y1 - self.y0)

    def axes(self, n: int, pixels: str = ENDPOINTS) -> tuple[np.ndarray, np.ndarray]:
        """(columns' x (n,), rows' y (n,)) of an n x n map in hyperparameter values, float64."""
        x, y = self.axis_units(n, pixels)
        return to_values(x, self.axis_scale), to_values(y, self.axis_scale)

    def pixel_extent(self, n: int, pixels: str = ENDPOINTS) -> tuple[float, float, float, float]:
        """imshow extent (x_min, x_max, y_min, y_max), axis units, from the first pixel of an
        n-pixel side to the last: every map is drawn so, and for ENDPOINTS it is the window."""
        if pixels == ENDPOINTS:
            return self.extent
        x, y = self.axis_units(n, pixels)
        return (float(x[0]), float(x[-1]), float(y[0]), float(y[-1]))

    def nested(self, centre: tuple[float, float], size: tuple[float, float]) -> Window:
        """The window of `size` (width, height) centred on `centre` (x, y), shifted (not shrunk)
        where it would leave this one, so that it lies inside: a zoom never shows area outside
        the frame before it."""
        xs = _nested(float(centre[0]), float(size[0]), self.x0, self.x1)
        ys = _nested(float(centre[1]), float(size[1]), self.y0, self.y1)
        return Window(xs[0], xs[1], ys[0], ys[1], self.axis_scale)

    def ulps_per_pixel(self, n: int, precision: str = "float64") -> float:
        """Rounding units of `precision` between neighbouring pixels of an n x n grid run, the
        worse of the two axes (`ulps_per_pixel_on_axis`)."""
        return min(ulps_per_pixel_on_axis(self.x0, self.x1, n, self.axis_scale, precision),
                   ulps_per_pixel_on_axis(self.y0, self.y1, n, self.axis_scale, precision))
