"""Figures show what they must: axis labels, limits, the numbers in titles and legends. Each
plotting function returns the Figure it wrote, and the tests read it back."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from nnfractal.config import build_config
from nnfractal.estimators.boxcount import boundary, estimate_dimension, paper_dimension
from nnfractal.estimators.known_sets import circle_scores
from nnfractal.render import compare_plots as cp
from nnfractal.render.fractal_plots import plot_boundary, plot_boxcount, plot_dimension_per_epoch
from nnfractal.render.sample_plots import plot_sample_points, plot_transect, plot_uncertainty
from nnfractal.render.zoom_video import plot_dimension_per_frame
from nnfractal.window import Window


def texts(fig) -> str:
    """Every string a figure shows: titles, labels, tick labels, legends, annotations."""
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    return "\n".join(t for t in out if t)


def legend_labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


@pytest.fixture(scope="module")
def circle_estimates():
    edges = boundary(circle_scores(512))
    return edges, estimate_dimension(edges), paper_dimension([edges])


def test_boxcount_figure_shows_the_estimate_its_interval_and_the_fit_range(tmp_path,
                                                                           circle_estimates):
    _, est, _ = circle_estimates
    fig = plot_boxcount(est, tmp_path / "c.png", title="circle")
    counts_ax, slopes_ax = fig.axes
    d, lo, hi = est.dimension, est.ci_low, est.ci_high
    assert f"D = {d:.3f} [{lo:.3f}, {hi:.3f}]" in legend_labels(slopes_ax)
    assert f"fitted slope -{d:.3f}" in legend_labels(counts_ax)
    y0, y1 = slopes_ax.get_ylim()
    assert y0 < lo <= hi < y1 and y1 - y0 < 3.5          # the band is in view, not squashed
    x0, x1 = counts_ax.get_xlim()
    assert x0 <= est.fit_sizes.min() and est.fit_sizes.max() <= x1
    assert counts_ax.get_xlabel() == "box size s (pixels)" and counts_ax.get_xscale() == "log"
    assert fig._suptitle.get_text() == "circle"
    # the paper's estimator (no intercept) is drawn with its median slope
    paper = plot_boxcount(circle_estimates[2], tmp_path / "p.png")
    assert any(label.startswith("median slope -") for label in legend_labels(paper.axes[0]))


def test_boxcount_without_an_estimate_says_why_in_words(tmp_path):
    bad = estimate_dimension(np.zeros((64, 64), bool))
    fig = plot_boxcount(bad, tmp_path / "bad.png", title="empty", note="try 128 px")
    shown = texts(fig)
    assert bad.reason in shown and "0 boundary pixels" in shown and "Try 128 px" in shown
    assert not any(ax.axison for ax in fig.axes)               # words, no empty axes


def test_boundary_figure_keeps_the_window_and_every_boundary_pixel(tmp_path, circle_estimates):
    edges = np.zeros((1500, 1500), bool)                       # > 1024 px: max-pooled
    edges[700, ::7] = True                                     # a 1-px dotted line
    fig = plot_boundary(edges, (-3, 1, -2, 2), "log10 of lr1", "log10 of lr2", tmp_path / "b.png",
                        title="line", axis_scale="log")
    ax = fig.axes[0]
    assert ax.get_xlim() == (-3, 1) and ax.get_ylim() == (-2, 2)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("lr1", "lr2", "line")
    img = ax.get_images()[0].get_array()
    assert max(img.shape) <= 1024 and img.any(axis=1).sum() == 1   # still one visible row
    # axis units kept when no scale is given
    fig = plot_boundary(edges, (0, 1, 0, 1), "log10 of lr1", "y", tmp_path / "b2.png")
    assert fig.axes[0].get_xlabel() == "log10 of lr1"


def test_dimension_per_epoch_plots_the_estimates_and_marks_the_missing(tmp_path, circle_estimates):
    _, good, _ = circle_estimates
    bad = estimate_dimension(np.zeros((64, 64), bool))
    fig = plot_dimension_per_epoch([0, 10, 20], [bad, good, good.to_dict()], tmp_path / "e.png",
                                   xlabel="step")
    ax = fig.axes[0]
    line = ax.get_lines()[0]                                   # the errorbar's data line
    np.testing.assert_array_equal(line.get_xdata(), [10, 20])
    np.testing.assert_allclose(line.get_ydata(), [good.dimension] * 2)
    assert ax.get_xlabel() == "step"
    assert [t.get_text() for t in ax.texts] == ["n/a"]
    assert any(bad.reason in label for label in legend_labels(ax))
    none = plot_dimension_per_epoch([0], [bad], tmp_path / "none.png")
    assert f"No epoch has a dimension estimate: {bad.reason}." in texts(none)


def test_no_pyplot_state_leaks_from_any_figure(tmp_path, circle_estimates):
    before = plt.get_fignums()
    plot_boxcount(circle_estimates[1], tmp_path / "c.png")
    plot_dimension_per_frame([0, 0.3], [circle_estimates[1]] * 2, tmp_path / "f.png")
    assert plt.get_fignums() == before


def test_dimension_per_frame_keeps_one_to_two_in_view_and_names_the_pooled_numbers(tmp_path,
                                                                                   circle_estimates):
    _, est, paper = circle_estimates
    pooled = {"ok": True, "dimension": 1.234, "ci_low": 1.2, "ci_high": 1.3}
    fig = plot_dimension_per_frame([0.0, 0.3, 0.6], [est, est, est], tmp_path / "f.png",
                                   pooled=pooled, pooled_paper=paper, title="zoom")
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo <= 0.9 and hi >= 2.1
    assert list(ax.get_xticks()) == [0.0, 0.3, 0.6]
    labels = legend_labels(ax)
    assert "weighted mean of frames: 1.234 [1.200, 1.300]" in labels
    assert f"paper's estimator, all frames pooled: {paper.dimension:.3f}" in " ".join(labels)
    empty = plot_dimension_per_frame([0.0], [estimate_dimension(np.zeros((8, 8), bool))],
                                     tmp_path / "g.png")
    assert empty.axes[0].get_ylim() == (0.9, 2.1)


def _sampling_estimate(method: str) -> dict:
    scales = np.geomspace(1e-6, 1e-2, 9)
    return {"method": method, "ok": True, "dimension": 1.5, "ci_low": 1.4, "ci_high": 1.6,
            "reason": "", "evaluations": 1000, "scales": scales.tolist(),
            "values": (scales ** 0.5).tolist(), "hits": [20] * 9, "stage": [0] * 9,
            "fit_mask": [False] * 3 + [True] * 6, "slope_scales": scales[1:].tolist(),
            "local_slopes": [1.5] * 8, "extra": {}}


def test_sampling_figures_title_the_estimate_and_label_their_units(tmp_path):
    fig = plot_uncertainty(_sampling_estimate("uncertainty"), tmp_path / "u.png", title="circle")
    top, bottom = fig.axes
    assert "D = 1.500  [95%: 1.400, 1.600]" in top.get_title() and "circle" in top.get_title()
    assert bottom.get_xlabel() == "eps (window units)" and bottom.get_ylim() == (0.8, 2.2)
    signs = np.ones((2, 5000))
    signs[:, 2500:] = -1
    fig = plot_transect(_sampling_estimate("transect"), signs, tmp_path / "t.png", max_px=2500)
    barcode = fig.axes[0].get_images()[0].get_array()
    assert barcode.shape == (2, 2500)                          # 5000 points max-pooled by 2
    assert barcode[:, :1250].min() == 1 and barcode[:, -1].max() == 0


def test_sample_points_fill_the_window_by_outcome(tmp_path):
    window = Window(-3.0, 1.0, -2.0, 2.0, "log")
    rng = np.random.default_rng(0)
    points = window.to_axis(rng.random((300, 2)))
    signs = np.where(points[:, 0] > -1, 1.0, -1.0)
    fig = plot_sample_points(points, signs, window.extent, "x", "y", tmp_path / "s.png")
    ax = fig.axes[0]
    assert ax.get_xlim() == (-3.0, 1.0) and ax.get_ylim() == (-2.0, 2.0)
    conv, div = ax.get_lines()[:2]
    assert len(conv.get_xdata()) == int((signs < 0).sum()) and len(div.get_xdata()) == 300 - len(
        conv.get_xdata())


def test_maps_side_by_side_draw_each_zoomed_window_where_it_is(tmp_path):
    maps = [np.linspace(-1, 1, 64).reshape(8, 8), -np.linspace(-1, 1, 64).reshape(8, 8)]
    window = Window(-3.0, 1.0, -2.0, 2.0, "log")
    zoomed = Window(-2.0, -1.0, 0.0, 1.0, "log")
    fig = cp.plot_maps_side_by_side(maps, window.extent, ["A", "B"], "log10 x", "log10 y", "log",
                                    tmp_path / "m.png", windows=[[list(zoomed.mnmx)], []])
    left, right = fig.axes[:2]
    assert (left.get_title(), right.get_title()) == ("A", "B")
    assert left.get_xlim() == (-3.0, 1.0) and left.get_ylim() == (-2.0, 2.0)
    (rect,) = [p for p in left.patches if isinstance(p, Rectangle)]
    assert rect.get_xy() == (zoomed.x0, zoomed.y0)
    assert (rect.get_width(), rect.get_height()) == zoomed.size
    assert not [p for p in right.patches if isinstance(p, Rectangle)]


def test_boundaries_overlay_counts_each_architectures_pixels(tmp_path):
    a = np.zeros((8, 8), bool)
    b = np.zeros((8, 8), bool)
    a[2, :5] = True
    b[2, 3:] = True
    fig = cp.plot_boundaries_overlay([a, b], (0, 1, 0, 1), ["A", "B"], "x", "y", "linear",
                                     tmp_path / "o.png")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["A (5 px)", "B (5 px)", "both (2 px)"]


def _group(dims_a, dims_b, diff):
    def arch(label, dims):
        per = [{"window": k, "ok": True, "dimension": d, "ci_low": d - 0.05, "ci_high": d + 0.05}
               for k, d in enumerate(dims)]
        return {"label": label, "per_window": per,
                "pooled": {"ok": True, "dimension": float(np.mean(dims)),
                           "ci_low": float(np.mean(dims)) - 0.03,
                           "ci_high": float(np.mean(dims)) + 0.03}}
    return {"depth": 20, "archs": {"a": arch("A (residual)", dims_a), "b": arch("B", dims_b)},
            "difference": diff}


def test_dimension_bars_show_each_estimate_and_the_difference_with_its_verdict(tmp_path):
    diff = {"ok": True, "estimate": -0.2, "ci_low": -0.3, "ci_high": -0.1,
            "verdict": "A has the smaller dimension"}
    fig = cp.plot_dimension_bars(_group([1.3, 1.32], [1.5, 1.52], diff), ["a", "b"],
                                 tmp_path / "d.png")
    ax, axd = fig.axes
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [1.3, 1.31, 1.32, 1.5, 1.51, 1.52]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["window 0 (preset)", "window 1",
                                                            "pooled"]
    assert "-0.200\n[-0.300, -0.100]" in [t.get_text() for t in axd.texts]
    assert axd.get_title() == "A has the smaller\ndimension"
    lo, hi = axd.get_ylim()
    assert lo < -0.3 and hi > 0                                 # the interval and 0 in view
    none = cp.plot_dimension_bars(_group([1.3], [1.5], {"ok": False, "verdict": "no estimate"}),
                                  ["a", "b"], tmp_path / "n.png")
    assert "no estimate" in [t.get_text() for t in none.axes[1].texts]


def test_dimension_vs_depth_puts_each_depth_on_the_axis(tmp_path):
    diff = {"ok": True, "estimate": -0.2, "ci_low": -0.3, "ci_high": -0.1, "verdict": "A smaller"}
    results = [dict(_group([1.3], [1.5], diff), depth=d) for d in (8, 20, 56)]
    fig = cp.plot_dimension_vs_depth(results, ["a", "b"], tmp_path / "v.png")
    ax, axd = fig.axes
    assert [t.get_text() for t in axd.get_xticklabels()] == ["8", "20", "56"]
    assert axd.get_xlabel() == "depth" and legend_labels(ax) == ["A", "B"]


def test_sampled_fits_name_both_estimates_in_the_legend(tmp_path):
    a, b = _sampling_estimate("transect"), dict(_sampling_estimate("transect"), ok=False,
                                                reason="too few sign changes")
    fig = cp.plot_sampled_fits([a, b], ["A", "B"], tmp_path / "s.png")
    ax = fig.axes[0]
    assert legend_labels(ax) == ["A: D = 1.500 [1.400, 1.600]",
                                 "B: D = no dimension: too few sign changes"]
    assert ax.get_xlabel() == "lag (window units)" and ax.get_xscale() == "log"


def test_pixel_curves_label_each_pair_by_its_hyperparameters(tmp_path):
    cfg = build_config("paper-tanh", resolution=4)
    curves = np.ones((4, 4, 10))
    curves[1, 2] = np.geomspace(1, 1e3, 10)
    x, y = np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 2.0, 3.0, 4.0])
    fig = cp.plot_pixel_curves([(curves, None)], [[((1, 1), (1, 2))]], ["A"], [cfg], (x, y),
                               tmp_path / "p.png")
    ax = fig.axes[0]
    assert ax.get_title() == "A" and ax.get_yscale() == "log"
    # paper-tanh is lr_vs_lr: y the output layer's learning rate, x the input layer's
    assert legend_labels(ax) == ["1: output layer learning rate 2, input layer learning rate 0.2"]
    assert np.max(ax.get_lines()[1].get_ydata()) == pytest.approx(1e3)   # normalised, diverging


def test_animation_frames_are_the_full_draws_of_each_map_and_label():
    """MapFrames draws only the image, frame and step label over a stored background: each frame
    must be, pixel for pixel, what drawing the whole figure with that map and label gives."""
    from nnfractal.render.maps import MapFrames, cdf_restretch, figure_to_rgb, map_figure
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(24, 32)) for _ in range(3)]
    labels = [f"step {k}/500" for k in (1, 250, 500)]
    title = "paper-tanh: a net\ntrain_loss"
    frames = MapFrames(map_figure(maps[0], (0, 1, 0, 1), "x", "y", "log", title))
    for m, label in zip(maps, labels):
        fig = map_figure(maps[0], (0, 1, 0, 1), "x", "y", "log", title)
        fig.axes[0].images[0].set_data(cdf_restretch(m))
        fig.axes[0].set_title(label, loc="right", fontsize=10)
        got = frames.render(cdf_restretch(m), label)
        np.testing.assert_array_equal(got, figure_to_rgb(fig))
    assert not np.array_equal(got, frames.render(cdf_restretch(m), "step 499/500"))  # label drawn


def test_gif_holds_every_frame_in_one_palette_close_to_its_colours(tmp_path):
    from PIL import Image

    from nnfractal.render.maps import MAP_CMAP, write_gif
    rng = np.random.default_rng(1)
    frames = [(MAP_CMAP(rng.uniform(size=(40, 60)))[..., :3] * 255).astype(np.uint8)
              for _ in range(20)]
    write_gif(frames, tmp_path / "a.gif", fps=5)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == len(frames)
        for k in (0, 7, 19):
            gif.seek(k)
            got = np.asarray(gif.convert("RGB")).astype(int)
            assert np.abs(got - frames[k]).max() <= 24        # one shared 256-colour palette
            assert np.abs(got - frames[k]).mean() < 3


@pytest.mark.slow
def test_a_failed_animation_is_raised_by_render_run_not_lost(tmp_path):
    """The MP4 is encoded on the writer thread while frames are drawn: an encoder that fails
    (here the MP4's path is a folder) must stop render_run with an error naming it, and the
    frames written before stay."""
    from nnfractal.config import build_config
    from nnfractal.runner.run import execute, render_run
    run = execute(build_config("paper-tanh", resolution=8, steps=12), tmp_path / "run",
                  progress=False, log=lambda *_: None)
    (run / "epochs.mp4").unlink()
    (run / "epochs.mp4").mkdir()
    with pytest.raises(Exception) as failed:
        render_run(run, log=lambda *_: None)
    assert "epochs.mp4" in str(failed.value) or "directory" in str(failed.value).lower()
    assert (run / "epochs" / "epoch_0012.png").exists()
