"""The uncertainty exponent's figure, read back through its matplotlib objects: each stage's raw
f(eps), its chaos floor, the fitted curve term, eps* and the local dimension."""

import json

import numpy as np
import pytest

from nnfractal.estimators.known_sets import banded_boundary
from nnfractal.estimators.sampling import scale_picture, uncertainty_exponent
from nnfractal.render.sample_plots import plot_uncertainty, uncertainty_figure


@pytest.fixture(scope="module")
def banded():
    # a circle whose points within 1e-5 of it are coin flips: cheap, and it has a band
    b = banded_boundary("circle", 1e-5, 0.5)
    est = uncertainty_exponent(b.score, budget=1 << 16, seed=0, floor_points=256, n_boot=30)
    assert est.ok and est.eps_star is not None, est.reason
    return est


def _labels(ax):
    return [line.get_label() for line in ax.get_lines()]


@pytest.mark.parametrize("as_json", [False, True])
def test_figure_draws_each_stage_its_floor_the_curve_term_and_eps_star(banded, as_json):
    est = json.loads(json.dumps(banded.to_dict())) if as_json else banded
    fig = uncertainty_figure(est, title="circle in a band")
    top, bottom = fig.axes
    stages = banded.extra["stages"]
    labels = _labels(top)
    assert sum(lab.endswith(": f(eps)") for lab in labels) == stages
    # the raw f of stage 0 is drawn as measured, not rescaled
    f0 = next(line for line in top.get_lines() if line.get_label() == "stage 0: f(eps)")
    f = banded.raw_values[banded.stage == 0]
    np.testing.assert_allclose(f0.get_ydata(), f[f > 0])
    # a dashed floor at F for every stage with flips
    floors = {c.get_label(): c for c in top.collections if "chaos floor" in c.get_label()}
    with_flips = np.flatnonzero(banded.chaos_fraction > 0)
    assert len(floors) == len(with_flips) >= 1
    for s in with_flips:
        seg = floors[f"stage {s}: chaos floor {banded.chaos_fraction[s]:.3f}"].get_segments()[0]
        np.testing.assert_allclose(seg[:, 1], banded.chaos_fraction[s])
    # the fitted curve term A eps^(2 - D) of every stage with an amplitude (every fitted stage
    # has one), over all of the stage's eps: below the band too, where it meets the floor
    terms = [line for line in top.get_lines() if "curve term" in line.get_label()]
    with_amp = np.flatnonzero(np.isfinite(banded.amplitude))
    assert set(np.unique(banded.stage[banded.fit_mask])) <= set(with_amp)
    assert len(terms) == len(with_amp) >= 1
    for line, s in zip(terms, with_amp):
        x, y = line.get_xdata(), line.get_ydata()
        np.testing.assert_allclose(y, banded.amplitude[s] * x ** (2 - banded.dimension))
        eps = banded.scales[banded.stage == s]
        np.testing.assert_allclose([x.min(), x.max()], [eps.min(), eps.max()])
    # eps* as a vertical line at its value, and in the title with D
    star = next(line for line in top.get_lines() if line.get_label().startswith("eps* ="))
    assert np.allclose(star.get_xdata(), banded.eps_star)
    title = top.get_title()
    assert f"D = {banded.dimension:.3f}" in title and f"eps* = {banded.eps_star:.1e}" in title
    fitted_eps = banded.scales[banded.fit_mask]
    assert f"over eps {fitted_eps.min():.1e}..{fitted_eps.max():.1e}" in title
    # the local dimension of the curve term, one point per neighbouring pair of eps
    (points, *_) = bottom.get_lines()
    assert "curve term" in points.get_label()
    assert len(points.get_xdata()) == int(np.isfinite(banded.local_slopes).sum()) > 0


def test_local_panel_shows_f_where_no_curve_term_is_left(banded):
    # nowhere above the floor: the panel shows the local dimension of f itself, and says so
    est = json.loads(json.dumps(banded.to_dict()))
    est.update(ok=False, dimension=None, ci_low=None, ci_high=None, reason="chaotic: test",
               local_slopes=[None] * len(est["local_slopes"]), eps_star=None)
    fig = uncertainty_figure(est)
    top, bottom = fig.axes
    (points, *_) = bottom.get_lines()
    assert "no curve term" in points.get_label() and len(points.get_xdata()) > 0
    assert "no dimension: chaotic: test" in top.get_title()
    assert not any(lab.startswith("eps* =") for lab in _labels(top))


def test_plot_uncertainty_writes_the_png(banded, tmp_path):
    fig = plot_uncertainty(banded, tmp_path / "u.png")
    assert len(fig.axes) == 2                       # f(eps) over the local dimension
    with open(tmp_path / "u.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_scale_picture_is_one_line_with_d_chaos_and_eps_star(banded):
    line = scale_picture(banded.to_dict())
    assert "\n" not in line
    assert line.startswith(f"D {banded.dimension:.3f} (95% CI {banded.ci_low:.3f}-")
    assert f"eps* {banded.eps_star:.1e}" in line and f"{banded.evaluations:,} evaluations" in line
    # one chaos percentage per stage, coarse to fine
    chaos = line.split("chaos ")[1].split(" per stage")[0].split(" / ")
    assert chaos == [f"{100 * c:.1f}%" for c in banded.chaos_fraction]


def test_a_refused_estimate_says_why_and_still_gives_its_chaos(banded):
    refused = dict(banded.to_dict(), ok=False, dimension=None, reason="chaotic: test")
    line = scale_picture(refused)
    assert line.startswith("no D: chaotic: test;") and "chaos " in line and "eps* " in line


def test_eps_star_is_a_measured_scale_never_an_extrapolation_below_the_data(banded):
    """eps* is given only near the eps the stages measured: an eps* the fit would put further
    below all of them (a D near 2 carries it decades down) is withheld, and the line gives the
    bound instead of a number."""
    assert banded.eps_star is not None and banded.eps_star >= min(banded.scales) / 2
    assert banded.extra["eps_star_below"] is None
    bound = float(min(banded.scales)) / 2
    withheld = dict(banded.to_dict(), eps_star=None, eps_star_low=None, eps_star_high=None,
                    extra=dict(banded.extra, eps_star_below=bound))
    line = scale_picture(withheld)
    assert f"eps* below {bound:.1e} (under the eps measured: a bound, not a number)" in line
