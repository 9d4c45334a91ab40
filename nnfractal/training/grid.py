"""A grid run's pixel points, the names of its axes, and the hyperparameters each point stands for.

A grid has ``resolution`` rows (y, the learning rate) and ``resolution`` columns (x, the weight
offset, or the input layer's learning rate for lr_vs_lr). Row 0 is the smallest y; images are
drawn with origin="lower". Points are listed row-major: ``points[i * cols + j] = (x[j], y[i])``.
The window itself (which number of mnmx is which, units, where pixels sit) is `nnfractal.window`.
"""
from __future__ import annotations

import numpy as np

from nnfractal.config import Config
from nnfractal.window import Window


def axes(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """(x values (cols,), y values (rows,)) of the config's grid run: ENDPOINTS pixels."""
    return Window.of(cfg).axes(cfg.resolution)


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
