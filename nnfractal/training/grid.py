"""The hyperparameter window: axes, pixel points, and the hyperparameters each point stands for.

A grid has ``resolution`` rows (y, the learning rate) and ``resolution`` columns (x, the weight
offset, or the input layer's learning rate for lr_vs_lr). Row 0 is the smallest y; images are
drawn with origin="lower". Points are listed row-major: ``points[i * cols + j] = (x[j], y[i])``.

How finely a precision can divide a window: `ulps_per_pixel` counts the rounding units between
neighbouring pixels; a window needs `MIN_ULPS_PER_PIXEL` of them (zoom frames, explorer windows,
the sampling estimators' smallest distance).
"""
from __future__ import annotations

import math

import numpy as np

from nnfractal.config import Config


def axis_values(lo: float, hi: float, n: int, scale: str) -> np.ndarray:
    """n float64 values from lo to hi; with scale "log", lo and hi are base-10 exponents."""
    if scale == "log":
        return np.logspace(lo, hi, n, dtype=np.float64)
    return np.linspace(lo, hi, n, dtype=np.float64)


def axes(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """(x values (cols,), y values (rows,)) of the config's window."""
    y_min, y_max, x_min, x_max = cfg.mnmx
    x = axis_values(x_min, x_max, cfg.resolution, cfg.axis_scale)
    y = axis_values(y_min, y_max, cfg.resolution, cfg.axis_scale)
    return x, y


def grid_points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """All (x, y) pairs of a grid, row-major: (rows*cols, 2) float64."""
    xx, yy = np.meshgrid(x, y)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def axis_labels(cfg: Config) -> tuple[str, str]:
    """Human-readable names of the x and y axes."""
    unit = "log10 " if cfg.axis_scale == "log" else ""
    if cfg.phase_space == "lr_vs_lr":
        return f"{unit}input layer learning rate", f"{unit}output layer learning rate"
    target = "input layer weight offset" if cfg.offset_target == "input" else "weight offset"
    return f"{unit}{target}", f"{unit}learning rate"


def hyperparameters(cfg: Config, points: np.ndarray) -> dict[str, np.ndarray]:
    """Per-point learning rates by layer role and weight offsets, each (k,) float64.

    offset_vs_lr: every layer trains at lr = y, and x is added to the initial weights.
    lr_vs_lr: the input layer trains at x, the output layer at y, the layers between at base_lr.
    """
    x, y = points[:, 0], points[:, 1]
    if cfg.phase_space == "lr_vs_lr":
        return {"input": x, "hidden": np.full_like(y, cfg.base_lr), "output": y,
                "offset": np.zeros_like(x)}
    return {"input": y, "hidden": y, "output": y, "offset": x}


# Rounding units a window needs between neighbouring pixels, so that they differ and are evenly
# spaced to 1%.
MIN_ULPS_PER_PIXEL = 100.0


def ulps_per_pixel(mnmx, resolution: int, axis_scale: str, precision: str = "float64") -> float:
    """Rounding units of `precision` between neighbouring pixels, the worse of the two axes.

    On a log axis a pixel is a relative step of ``spacing * ln 10`` in the hyperparameter 10**v,
    and v itself is rounded to ``|v| * eps``; on a linear axis the step is ``spacing / max|value|``.
    """
    eps = float(np.finfo(np.dtype(precision)).eps)
    y0, y1, x0, x1 = (float(v) for v in mnmx)
    worst = math.inf
    for lo, hi in ((x0, x1), (y0, y1)):
        spacing = (hi - lo) / (resolution - 1)
        big = max(abs(lo), abs(hi))
        if axis_scale == "log":
            # value 10**v: relative step spacing*ln10; v's own rounding |v|*eps moves the value by
            # ln10*|v|*eps relative, the power's rounding by ~eps.
            steps = spacing * math.log(10) / (eps * max(1.0, math.log(10) * big))
        else:
            steps = spacing / (eps * big) if big > 0 else math.inf
        worst = min(worst, steps)
    return worst
