"""The convergence measures on hand-made curves, and the grid axes."""
import numpy as np
import pytest

from nnfractal.config import build_config
from nnfractal.training.engine import epoch_curves
from nnfractal.training.grid import axes, grid_points, hyperparameters
from nnfractal.training.measure import customer_score, metric_scores, normalise, paper_score, prefix_metric_scores


def test_paper_measure_on_hand_made_curves():
    t = np.arange(100)
    falling = 2.0 * np.exp(-t / 10)                 # converges
    rising = 2.0 * np.exp(t / 10)                   # diverges
    flat = np.full(100, 2.0)                        # mean of tail == 1 -> not converged
    nan_late = np.concatenate([falling[:50], np.full(50, np.nan)])
    s = paper_score(np.stack([falling, rising, flat, nan_late]))
    v = falling / falling[0]
    assert s[0] == pytest.approx(-v.sum())
    w = np.minimum(rising / rising[0], 1e6)
    assert s[1] == pytest.approx((1 / w).sum())
    assert s[2] == pytest.approx(100.0)             # sum(1/1)
    assert s[3] > 0                                 # NaN -> clip value -> diverged
    assert np.all(np.isfinite(s))


@pytest.mark.parametrize("measure", ["paper", "customer"])
def test_prefix_scores_are_the_scores_of_each_prefix(measure):
    """The per-epoch maps by cumulative sums: every sign exactly the per-prefix score's, every
    value equal to rounding, on curves that converge, diverge to inf/NaN, hit 0 and oscillate
    around the threshold, at prefixes shorter and longer than the 20-value tail."""
    rng = np.random.default_rng(0)
    t = np.arange(120)
    curves = np.stack([2.0 * np.exp(-t / 15), 2.0 * np.exp(t / 5), np.tile([1.0, 0.999], 60),
                       np.where(t < 30, 1.0 + 0.01 * t, 0.0), np.where(t < 40, 1.0, np.nan),
                       np.tile([1.0, 1.0000001, 0.9999999], 40)])
    near_one = np.concatenate([np.ones((40, 1)), rng.uniform(0.7, 1.3, (40, 119))], axis=1)
    curves = np.concatenate([curves, np.exp(rng.normal(0, 1, (40, 120)).cumsum(-1) / 5), near_one])
    cfg = build_config("quickstart", measure=measure)
    ends = [1, 2, 19, 20, 21, 57, 120]
    got = prefix_metric_scores(curves, ends, "train_loss", cfg, 1)
    want = np.stack([metric_scores(curves[:, :e], "train_loss", cfg, 1) for e in ends])
    np.testing.assert_array_equal(np.sign(got), np.sign(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)   # customer: mean - 1 cancels


def test_normalise_clips_and_replaces_non_finite():
    v = normalise(np.array([[1.0, np.inf, np.nan, 1e9, 0.5]]))
    np.testing.assert_array_equal(v, [[1.0, 1e6, 1e6, 1e6, 0.5]])


def test_oscillation_is_averaged_over_the_last_20_steps():
    osc = np.tile([1.0, 0.7], 50)                    # mean of tail 0.85 < 1 -> converged
    assert paper_score(osc[None])[0] < 0
    osc_up = np.tile([1.0, 1.5], 50)
    assert paper_score(osc_up[None])[0] > 0


def test_customer_measure():
    c = customer_score(np.array([[2.0, 1.0, 1.0, 0.0], [1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_allclose(c, [(1 + 0.5 + 0.5 + 0) / 4 - 1, (1 + 2 + 3 + 4) / 4 - 1])


def test_epoch_readout_means_each_epochs_steps():
    losses = np.arange(12, dtype=float).reshape(2, 6)
    np.testing.assert_array_equal(epoch_curves(losses, 3), [[1, 4], [7, 10]])


def test_log_axes_follow_the_paper_order():
    cfg = build_config("paper-tanh", mnmx=[-1.0, 3.0, 0.0, 2.0], resolution=5)
    x, y = axes(cfg)
    np.testing.assert_allclose(y, [0.1, 1, 10, 100, 1000])     # rows: first pair (output lr)
    np.testing.assert_allclose(x, np.logspace(0, 2, 5))          # cols: second pair (input lr)
    pts = grid_points(x, y)
    assert pts.shape == (25, 2)
    np.testing.assert_allclose(pts[1], [x[1], y[0]])              # row-major
    np.testing.assert_allclose(pts[5], [x[0], y[1]])
    hp = hyperparameters(cfg, pts)
    np.testing.assert_allclose(hp["input"], pts[:, 0])
    np.testing.assert_allclose(hp["output"], pts[:, 1])


def test_linear_axes_and_offset_phase_space():
    cfg = build_config("resnet20-mnist", axis_scale="linear", mnmx=[0.01, 0.05, -1.0, 1.0], resolution=3)
    x, y = axes(cfg)
    np.testing.assert_allclose(x, [-1, 0, 1])
    np.testing.assert_allclose(y, [0.01, 0.03, 0.05])
    hp = hyperparameters(cfg, grid_points(x, y))
    np.testing.assert_allclose(hp["offset"][:3], [-1, 0, 1])
    np.testing.assert_allclose(hp["hidden"][::3], y)
