"""Pictures of a zoom sequence: the smooth zoom animation and the dimension per frame.

Windows here are plotting windows ``(x_lo, x_hi, y_lo, y_hi)`` in axis units (log10 exponents
on log axes), the order of matplotlib's ``extent``. Everything reads arrays and writes files;
nothing trains.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .maps import MAP_CMAP, cdf_restretch, figure_to_rgb, write_animation  # noqa: E402

__all__ = ["interpolate_window", "pixel_extent", "zoom_animation_frames", "write_zoom_animation",
           "plot_dimension_per_frame"]

FRAMES_PER_TRANSITION = 12
FPS = 12.0
HOLD_START = 6          # animation frames showing the first window before the zoom starts
HOLD_END = 12           # ... and the last window after it ends


def pixel_extent(window, shape) -> tuple[float, float, float, float]:
    """imshow extent that puts pixel centres exactly on the grid values.

    A grid's first and last values sit on the window's edges, so the image reaches half a pixel
    beyond the window on every side. (The run's own maps stretch the image to the window instead;
    for a zoom that would misplace a finer frame against a coarser one by up to half a pixel.)
    """
    x_lo, x_hi, y_lo, y_hi = (float(v) for v in window)
    rows, cols = shape
    hx = (x_hi - x_lo) / (2 * (cols - 1))
    hy = (y_hi - y_lo) / (2 * (rows - 1))
    return x_lo - hx, x_hi + hx, y_lo - hy, y_hi + hy


def interpolate_window(w1, w2, alpha: float) -> tuple[float, float, float, float]:
    """The window a fraction `alpha` of the way from `w1` to `w2`, as the paper's videos zoom.

    As the paper's ``interpolate_history``: the width shrinks geometrically, gamma =
    (width2/width1)**alpha, about the fixed point c* = (c2 - c1 r)/(1 - r), r = width2/width1, of
    the similarity that maps w1 onto w2; the centre is c* + (c1 - c*) gamma. The zoom speed is
    constant on a log scale and a point of the picture moves on a straight line, so nothing
    wobbles. Both axes are interpolated this way (with one r when the windows are similar).
    """
    out = []
    for lo1, hi1, lo2, hi2 in ((w1[0], w1[1], w2[0], w2[1]), (w1[2], w1[3], w2[2], w2[3])):
        d1, d2 = hi1 - lo1, hi2 - lo2
        c1, c2 = (lo1 + hi1) / 2, (lo2 + hi2) / 2
        r = d2 / d1
        gamma = r ** alpha
        if abs(1 - r) < 1e-12:         # no zoom on this axis: slide the window linearly
            c = c1 + (c2 - c1) * alpha
        else:
            c_star = (c2 - c1 * r) / (1 - r)
            c = c_star + (c1 - c_star) * gamma
        half = d1 * gamma / 2
        out += [c - half, c + half]
    return tuple(out)


def _stretches(maps):
    """Per transition k -> k+1: (frame k own, frame k ranked like k+1, k+1 like k, k+1 own)."""
    own = [cdf_restretch(m) for m in maps]
    return [(own[k], cdf_restretch(maps[k], maps[k + 1]), cdf_restretch(maps[k + 1], maps[k]),
             own[k + 1]) for k in range(len(maps) - 1)], own


def zoom_animation_frames(maps, windows, xlabel="", ylabel="", title="", *,
                          frames_per_transition=FRAMES_PER_TRANSITION, hold_start=HOLD_START,
                          hold_end=HOLD_END, figsize=(5.0, 5.0), dpi=80, only=None):
    """Yield RGB frames (H, W, 3) of a smooth zoom through the score maps.

    Parameters
    ----------
    maps : list of (rows, cols) score maps, coarsest window first.
    windows : list of (x_lo, x_hi, y_lo, y_hi), the grid window of each map (axis units).
    only : optional iterable of (transition k, alpha) pairs to draw instead of the whole
        animation (to look at single frames).

    Between frame k and k+1 the view moves with `interpolate_window` from frame k's picture to
    frame k+1's. Frame k is drawn, and frame k+1 on top of it in its own (smaller) extent, so the
    finer picture replaces the coarse pixels as soon as it is in view. Colours: the paper's
    rank-based restretch, blended over the transition: frame k goes from its own stretch to a
    stretch ranked against frame k+1's scores and frame k+1 from a stretch ranked against frame
    k's to its own, so the inset matches its surroundings when it appears and the picture hands
    over seamlessly to the next transition. One Figure is reused; only image data, extents, axis
    limits and the title change per frame.
    """
    n = len(maps)
    if n < 2 or len(windows) != n:
        raise ValueError("a zoom animation needs at least two maps, each with its window")
    extents = [pixel_extent(w, m.shape) for w, m in zip(windows, maps)]
    blends, own = _stretches(maps)
    width0 = extents[0][1] - extents[0][0]

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_axes((0.19, 0.13, 0.76, 0.76))
    kw = dict(origin="lower", cmap=MAP_CMAP, vmin=-1, vmax=1, interpolation="nearest",
              aspect="auto")
    im_a = ax.imshow(own[0], extent=extents[0], **kw)
    im_b = ax.imshow(own[1], extent=extents[1], **kw)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    fig.text(0.99, 0.01, "blue: converged   red: diverged", ha="right", va="bottom", fontsize=7,
             color="0.3")

    def draw(k: int, alpha: float) -> np.ndarray:
        a_own, a_next, b_prev, b_own = blends[k]
        im_a.set_data((1 - alpha) * a_own + alpha * a_next)
        im_a.set_extent(extents[k])
        im_b.set_data((1 - alpha) * b_prev + alpha * b_own)
        im_b.set_extent(extents[k + 1])
        view = interpolate_window(extents[k], extents[k + 1], alpha)
        ax.set_xlim(view[0], view[1])
        ax.set_ylim(view[2], view[3])
        mag = width0 / (view[1] - view[0])
        ax.set_title(f"{title}zoom x{mag:.3g}  (frame {k + alpha:.2f} of {n - 1})", fontsize=9)
        return figure_to_rgb(fig)

    if only is not None:
        for k, alpha in only:
            yield draw(int(k), float(alpha))
        return
    first = draw(0, 0.0)
    for _ in range(hold_start):
        yield first
    for k in range(n - 1):
        for i in range(frames_per_transition):
            yield first if (k, i) == (0, 0) else draw(k, i / frames_per_transition)
    last = draw(n - 2, 1.0)
    for _ in range(max(1, hold_end)):
        yield last


def write_zoom_animation(maps, windows, gif_path: Path | None, mp4_path: Path | None,
                         xlabel="", ylabel="", title="", fps: float = FPS, **kwargs) -> int:
    """Write the zoom animation as GIF and H.264 MP4; returns the number of frames."""
    frames = list(zoom_animation_frames(maps, windows, xlabel, ylabel, title, **kwargs))
    write_animation(frames, gif_path, mp4_path, fps=fps)
    return len(frames)


def _field(est, key):
    return est[key] if isinstance(est, dict) else getattr(est, key)


def plot_dimension_per_frame(decades, estimates, path, *, pooled=None, pooled_paper=None,
                             title="") -> Figure:
    """Box-counting dimension with its 95% interval per zoom frame.

    x: zoom depth of each frame in decades (log10 of its magnification). Frames without an
    estimate get a grey x on the lower edge, their reasons in the legend. The paper's estimator
    pooled over all frames is drawn as a band (its 95% interval) with a line; the pooled
    per-frame estimate as a dashed line with a hatched band.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    decades = np.asarray(decades, dtype=float)
    ok = np.array([bool(_field(e, "ok")) for e in estimates], dtype=bool)
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if pooled_paper is not None and _field(pooled_paper, "ok"):
        d, lo, hi = (_field(pooled_paper, k) for k in ("dimension", "ci_low", "ci_high"))
        ax.axhspan(lo, hi, color="C1", alpha=0.2, lw=0)
        ax.axhline(d, color="C1", label=f"paper's estimator, all frames pooled: "
                   f"{d:.3f} [{lo:.3f}, {hi:.3f}]")
    elif pooled_paper is not None:
        ax.plot([], [], " ", label=f"paper's estimator: {_field(pooled_paper, 'reason')}")
    if pooled is not None and _field(pooled, "ok"):
        d, lo, hi = (_field(pooled, k) for k in ("dimension", "ci_low", "ci_high"))
        ax.axhspan(lo, hi, facecolor="none", edgecolor="C0", hatch="//", alpha=0.35, lw=0)
        ax.axhline(d, color="C0", ls="--", label=f"weighted mean of frames: "
                   f"{d:.3f} [{lo:.3f}, {hi:.3f}]")
    if ok.any():
        d = np.array([_field(e, "dimension") for e, k in zip(estimates, ok) if k], dtype=float)
        lo = np.array([_field(e, "ci_low") for e, k in zip(estimates, ok) if k], dtype=float)
        hi = np.array([_field(e, "ci_high") for e, k in zip(estimates, ok) if k], dtype=float)
        ax.errorbar(decades[ok], d, yerr=[d - lo, hi - d], fmt="o", color="C0", capsize=3,
                    label="box-counting dimension per frame (95% interval)")
    else:
        ax.text(0.5, 0.5, "no frame has a box-counting estimate", ha="center", va="center",
                transform=ax.transAxes, color="0.3")
    if (~ok).any():
        reasons = sorted({_field(e, "reason") for e, k in zip(estimates, ok) if not k})
        tf = ax.get_xaxis_transform()
        ax.plot(decades[~ok], np.full((~ok).sum(), 0.03), "x", color="0.5", transform=tf,
                label="frame without estimate: " + "; ".join(reasons))
    ax.set_xticks(decades)
    ax.set_xticklabels([f"{v:.2g}\n#{i}" for i, v in enumerate(decades)], fontsize=8)
    span = decades[-1] - decades[0] if decades.size > 1 else 1.0
    ax.set_xlim(decades[0] - 0.08 * span, decades[-1] + 0.08 * span)
    ax.margins(y=0.15)
    # a boundary's dimension: 1 to 2 always in view (the whole axis when no estimate was drawn)
    has_data = ok.any() or any(e is not None and _field(e, "ok") for e in (pooled, pooled_paper))
    lo, hi = ax.get_ylim() if has_data else (0.9, 2.1)
    ax.set_ylim(min(lo, 0.9), max(hi, 2.1))
    ax.set_xlabel("zoom depth (decades: log10 of the magnification), frame number")
    ax.set_ylabel("fractal dimension of the boundary")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return fig
