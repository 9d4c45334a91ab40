"""Turn loss curves into one signed score per model: negative = converged, positive = diverged.

Scores are cheap and are always recomputed from the stored curves, so a new measure or threshold
never needs retraining.
"""
from __future__ import annotations

import numpy as np

CLIP = 1e6          # the paper's max_val: non-finite and huge normalised losses count as this
TAIL = 20           # the paper averages the last 20 values to see through oscillations


def normalise(curves: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """Curves (..., T) divided by their first value, non-finite and > clip values set to clip."""
    v = np.asarray(curves, dtype=np.float64)
    v = np.where(np.isfinite(v), v, clip)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = v / v[..., :1]
    return np.where(np.isfinite(v) & (v <= clip), v, clip)


def paper_score(curves: np.ndarray, clip: float = CLIP, tail: int = TAIL) -> np.ndarray:
    """The paper's convergence measure, (..., T) -> (...).

    Converged iff the mean of the last `tail` normalised values is < 1; the score is then
    -sum(v) (< 0), else sum(1/v) (> 0), which gives the image its texture on both sides.
    """
    v = normalise(curves, clip)
    converged = v[..., -tail:].mean(-1) < 1
    with np.errstate(divide="ignore"):
        return np.where(converged, -v.sum(-1), (1.0 / v).sum(-1))


def customer_score(curves: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """The customer's measure: mean of the normalised curve minus 1 (< 0 = loss fell on average)."""
    return normalise(curves, clip).mean(-1) - 1.0


def accuracy_score(acc_curves: np.ndarray, threshold: float, tail: int = 1) -> np.ndarray:
    """Signed accuracy measure, (..., T) -> (...): threshold - final accuracy.

    The final accuracy is the mean of the last `tail` values (for per-step batch accuracies, one
    epoch's worth). Negative = converged (final accuracy above the threshold), so the boundary is
    where the final accuracy crosses the threshold.
    """
    a = np.asarray(acc_curves, dtype=np.float64)
    return threshold - np.nan_to_num(a[..., -tail:].mean(-1), nan=0.0)


MEASURES = {"paper": paper_score, "customer": customer_score}


def scores(curves: np.ndarray, measure: str = "paper") -> np.ndarray:
    """Score every curve with the named measure: (..., T) -> (...)."""
    return MEASURES[measure](curves)


def converged_fraction(score_map: np.ndarray) -> float:
    return float(np.mean(np.asarray(score_map) < 0))
