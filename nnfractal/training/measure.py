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
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # huge -> clip below
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


def epoch_curves(losses: np.ndarray, steps_per_epoch: int) -> np.ndarray:
    """Mean loss over each epoch's steps: (k, steps) -> (k, steps // steps_per_epoch).

    A non-finite step makes its epoch's mean non-finite, as it should (the model diverged).
    """
    k, steps = losses.shape
    epochs = steps // steps_per_epoch
    if epochs == 0:
        return losses
    return losses[:, : epochs * steps_per_epoch].reshape(k, epochs, steps_per_epoch).mean(2)


def readout_curves(curves: np.ndarray, metric: str, readout: str, steps_per_epoch: int) -> np.ndarray:
    """The values of a metric's curves (..., T) that the map reads, (..., T'): held-out curves (one
    value per evaluation) as they are; training curves per step, or with readout "epoch" the
    mean of each epoch's steps."""
    if metric.startswith("test") or readout != "epoch":
        return curves
    lead = curves.shape[:-1]
    return epoch_curves(curves.reshape(-1, curves.shape[-1]), steps_per_epoch).reshape(*lead, -1)


def metric_scores(curves: np.ndarray, metric: str, cfg, steps_per_epoch: int) -> np.ndarray:
    """The one scoring rule of a map: scores (...) of a metric's read-out curves (..., T').

    Accuracy metrics: threshold (cfg.acc_threshold) minus the final accuracy, which for per-step
    training accuracies (readout "step") is one epoch's mean; losses: cfg.measure. `cfg` is the
    run's Config (measure, readout, acc_threshold are read)."""
    if metric.endswith("acc"):
        tail = steps_per_epoch if (metric == "train_acc" and cfg.readout == "step") else 1
        return accuracy_score(curves, cfg.acc_threshold, tail)
    return scores(curves, cfg.measure)


def prefix_metric_scores(curves: np.ndarray, ends, metric: str, cfg, steps_per_epoch: int) -> np.ndarray:
    """`metric_scores(curves[..., :end], ...)` for every `end` of `ends`: (len(ends), ...).

    The scores a map had after each epoch, with the curves normalised once and summed by
    cumulative sums instead of once per prefix (the per-epoch maps of a run: benchmarks/README.md).
    Normalising is elementwise, so a prefix's normalised values are the full curve's;
    the converged test reads the same tail values as `paper_score`, so every sign (converged or
    not) is exactly the per-prefix one, and the magnitudes agree to rounding."""
    ends = [int(e) for e in ends]
    measure = getattr(cfg, "measure", "paper")
    if metric.endswith("acc") or measure not in MEASURES or not ends or min(ends) < 1:
        return np.stack([metric_scores(curves[..., :e], metric, cfg, steps_per_epoch) for e in ends])
    v = normalise(curves)
    sums = np.cumsum(v, axis=-1)
    if measure == "customer":
        return np.stack([sums[..., e - 1] / e - 1.0 for e in ends])
    with np.errstate(divide="ignore"):
        inverse_sums = np.cumsum(1.0 / v, axis=-1)
    out = []
    for e in ends:
        converged = v[..., max(0, e - TAIL):e].mean(-1) < 1
        out.append(np.where(converged, -sums[..., e - 1], inverse_sums[..., e - 1]))
    return np.stack(out)


def point_scores(cfg, curves: dict[str, np.ndarray], steps_per_epoch: int) -> np.ndarray:
    """Scores (k,) of the config's metric from raw curves (k, T) per metric: the readout, then
    `metric_scores`, exactly as a stored map is scored."""
    metric = cfg.metric
    return metric_scores(readout_curves(np.asarray(curves[metric]), metric, cfg.readout, steps_per_epoch),
                         metric, cfg, steps_per_epoch)


def converged_fraction(score_map: np.ndarray) -> float:
    return float(np.mean(np.asarray(score_map) < 0))
