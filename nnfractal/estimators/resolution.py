"""What a grid's resolution can show: the smallest map side that gives a box-counting dimension.

The estimator (fractal.estimate_dimension) needs a scaling range of boxes between its smallest
size and an eighth of the map; below some side length it returns "boundary too short". Rather
than repeat its constants, `min_resolution_for_dimension` asks the estimator itself, on the most
favourable boundary there is (a straight line across the whole map), so the advice stays right
when the estimator's rules change. A real boundary that spans less of the map needs more pixels.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .boxcount import estimate_dimension

SEARCH_MAX = 4096       # px per side: no estimator rule asks for more than this


def _diagonal_line(side: int) -> np.ndarray:
    """(side, side) bool image of a one-pixel diagonal: a boundary spanning the whole map."""
    return np.eye(side, dtype=bool)


def _gives_dimension(side: int) -> bool:
    return bool(estimate_dimension(_diagonal_line(side), n_boot=2, n_origins=1).ok)


@lru_cache(maxsize=1)
def min_resolution_for_dimension() -> int:
    """The smallest side (px) at which the box-counting estimator gives a dimension at all (for a
    boundary crossing the whole map): doubling from 16 px, then bisection (well under a second)."""
    lo, hi = 2, 16
    while not _gives_dimension(hi):
        if hi >= SEARCH_MAX:
            return SEARCH_MAX
        lo, hi = hi, hi * 2
    while hi - lo > 1:                     # invariant: lo gives none, hi gives one
        mid = (lo + hi) // 2
        if _gives_dimension(mid):
            hi = mid
        else:
            lo = mid
    return hi


def suggested_resolution() -> int:
    """A side with some room above the minimum (a real boundary rarely spans the whole map):
    the next power of two at least 1.25 times the minimum."""
    need = min_resolution_for_dimension() * 1.25
    side = 16
    while side < need:
        side *= 2
    return side


def resolution_warning(resolution: int, what: str = "a map") -> str | None:
    """One line saying that `resolution` px per side cannot give a dimension and what would, or
    None when it can."""
    need = min_resolution_for_dimension()
    if resolution >= need:
        return None
    return (f"{what} of {resolution} x {resolution} px cannot give a fractal dimension: the "
            f"box-counting estimator needs at least {need} px per side (--resolution "
            f"{suggested_resolution()} does); the maps are still drawn")


def too_small_note(shape: tuple[int, int]) -> str:
    """The line a figure shows in place of a dimension when its map is below the minimum side;
    '' when the map is large enough (then the boundary itself was too short or absent)."""
    side = min(shape)
    need = min_resolution_for_dimension()
    if side >= need:
        return ""
    return (f"this {shape[1]} x {shape[0]} px map is below the {need} px per side the "
            f"estimator needs; try --resolution {suggested_resolution()}")


CHANCE_ACCURACY = 0.1          # ten balanced classes (MNIST, Fashion-MNIST)
NEAR_CHANCE = 0.25             # a median final accuracy below this learned (almost) nothing


def chance_note(medians: dict[str, float | None], fraction_converged: float | None,
                metric: str) -> str:
    """One plain line when the grid's median final accuracy is near chance while the map calls
    pixels converged by their loss (which then only means 'did not blow up'); '' otherwise.

    `medians`: metric -> median over the grid of its last value (run.py's final_metrics_median).
    """
    accs = {m: v for m, v in medians.items() if m.endswith("acc") and v is not None}
    if not accs or metric.endswith("acc") or max(accs.values()) >= NEAR_CHANCE:
        return ""
    shown = ", ".join(f"{m} {v:.3f}" for m, v in sorted(accs.items()))
    conv = f"{fraction_converged:.0%} of the map is " if fraction_converged is not None else ""
    return (f"median final accuracy is at chance ({shown}; chance {CHANCE_ACCURACY:.2f}): "
            f"{conv}'converged' by the loss measure, which here means the loss did not blow "
            "up, not that the networks learned (train longer, or map --readout train_acc)")
