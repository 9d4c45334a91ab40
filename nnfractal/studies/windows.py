"""Where zoomed windows go: the windows of a zoom, how many of them a precision resolves, and
the automatic centre on a run's boundary and following it frame by frame.

Pure geometry on score maps (numpy only): the zoom (zoom.py) and the box comparison's zoomed
windows (compare.py) use it.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from nnfractal.config import Config
from nnfractal.estimators.boxcount import boundary, density_around
from nnfractal.window import MIN_ULPS_APART, Window


def frame_count(depth: float, factor: float) -> int:
    """Frames of a zoom `depth` decades deep at `factor` per frame, the run's own window included."""
    return int(math.floor(depth * math.log(10) / math.log(factor) + 1e-9)) + 1


def frame_windows(mnmx, center, factor: float, n: int) -> list[tuple[float, float, float, float]]:
    """The `n` windows (y_min, y_max, x_min, x_max) of a zoom, in float64.

    Frame 0 is `mnmx` itself. Frame k has 1/factor**k of its width and height, is centred on
    `center` = (x, y) and, where that would leave frame k-1, is shifted (not shrunk) to lie inside
    frame k-1 (`Window.nested`).
    """
    first = Window.from_mnmx(mnmx)
    wins = [first]
    for k in range(1, n):
        scale = float(factor) ** -k
        wins.append(wins[-1].nested(center, (first.size[0] * scale, first.size[1] * scale)))
    return [w.mnmx for w in wins]


def resolvable_frames(windows, resolution: int, axis_scale: str,
                      precision: str = "float64") -> tuple[int, list[float]]:
    """How many leading windows `precision` can resolve (`MIN_ULPS_APART` rounding units between
    neighbouring pixels), and each window's ulps per pixel."""
    ulps = [Window.from_mnmx(w, axis_scale).ulps_per_pixel(resolution, precision) for w in windows]
    n = 0
    while n < len(ulps) and ulps[n] >= MIN_ULPS_APART:
        n += 1
    return n, ulps


def axis_units(cfg: Config, resolution: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column and row coordinates of a grid in axis units (exponents on log axes), float64."""
    return Window.of(cfg).axis_units(resolution or cfg.resolution)


def densest_boundary_pixel(edges: np.ndarray, half: int | None = None) -> tuple[int, int]:
    """(row, col) of the boundary pixel with the most boundary pixels in a box around it.

    The box is (2*half+1) pixels square, half = max(1, min(shape) // 16). Ties go to the pixel
    nearest the image's middle, then to the lowest row and column: the choice is deterministic.
    """
    edges = np.asarray(edges, dtype=bool)
    if not edges.any():
        raise ValueError("no boundary pixel")
    rows, cols = edges.shape
    h = max(1, min(rows, cols) // 16) if half is None else int(half)
    ii, jj = np.nonzero(edges)
    density = density_around(edges, ii, jj, h)
    dist = (ii - (rows - 1) / 2) ** 2 + (jj - (cols - 1) / 2) ** 2
    best = np.lexsort((jj, ii, dist, -density))[0]
    return int(ii[best]), int(jj[best])


def largest_component(edges: np.ndarray) -> np.ndarray:
    """The largest 8-connected set of boundary pixels (rows, cols) bool: the main boundary, not an
    isolated filament or a speck of diverged dust. Ties go to the component found first in row
    order (deterministic)."""
    edges = np.asarray(edges, dtype=bool)
    label = np.zeros(edges.shape, dtype=np.int32)
    rows, cols = edges.shape
    best, best_size, current = 0, 0, 0
    for r0, c0 in zip(*np.nonzero(edges)):
        if label[r0, c0]:
            continue
        current += 1
        label[r0, c0] = current
        queue, size = deque([(r0, c0)]), 0
        while queue:
            r, c = queue.popleft()
            size += 1
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < rows and 0 <= cc < cols and edges[rr, cc] and not label[rr, cc]:
                        label[rr, cc] = current
                        queue.append((rr, cc))
        if size > best_size:
            best, best_size = current, size
    return label == best if best else np.zeros_like(edges)


def auto_center(cfg: Config, score_map: np.ndarray) -> tuple[float, float] | None:
    """Centre (x, y) in axis units of the densest pixel of the run's main boundary (its largest
    connected component); None without boundary.

    A boundary pixel (i, j) stands for the cell between grid rows i, i+1 and columns j, j+1; the
    centre is that cell's middle.
    """
    edges = boundary(score_map)
    if not edges.any():
        return None
    i, j = densest_boundary_pixel(largest_component(edges))
    xs, ys = axis_units(cfg, score_map.shape[1])
    return float((xs[j] + xs[j + 1]) / 2), float((ys[i] + ys[i + 1]) / 2)


def follow_boundary(cfg: Config, score_map: np.ndarray, center, next_width,
                    half: int) -> tuple[tuple[float, float], bool]:
    """Centre of the next frame of an automatic zoom, from this frame's map: the boundary cell
    with the most boundary within ``half`` pixels of it, among the cells inside the next frame
    as planned around ``center`` (the nearest boundary cell when none is).

    A centre chosen on the first map is only as precise as that map's pixels: once the frames are
    smaller than those pixels, a fixed centre leaves the boundary (the paper's single-datapoint
    configuration at 128 px: frame 3 of x8 frames was 0% converged). Following the boundary frame
    by frame keeps every frame on it, as the paper's hand-picked zooms are.

    Parameters
    ----------
    cfg : Config
        This frame's config (its ``mnmx`` places the pixels; axis units).
    score_map : (n, n) ndarray
        This frame's scores (rows = y, cols = x).
    center : (x, y)
        The current centre, axis units.
    next_width : (width_x, width_y)
        The next frame's width and height, axis units.

    Returns
    -------
    ((x, y), found) : the next centre (``center`` itself when this frame has no boundary) and
    whether there was boundary to follow.
    """
    edges = boundary(score_map)
    if not edges.any():
        return (float(center[0]), float(center[1])), False
    xs, ys = axis_units(cfg, score_map.shape[1])
    mid_x, mid_y = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    ii, jj = np.nonzero(edges)
    dx, dy = mid_x[jj] - center[0], mid_y[ii] - center[1]
    inside = (np.abs(dx) <= next_width[0] / 2) & (np.abs(dy) <= next_width[1] / 2)
    # distance in pixels of this frame, so the two axes weigh alike
    dist = (dx / (xs[1] - xs[0])) ** 2 + (dy / (ys[1] - ys[0])) ** 2
    if inside.any():
        density = density_around(edges, ii, jj, half)
        best = np.lexsort((jj, ii, dist, -np.where(inside, density, -1)))[0]
    else:
        best = np.lexsort((jj, ii, dist))[0]
    return (float(mid_x[jj[best]]), float(mid_y[ii[best]])), True
