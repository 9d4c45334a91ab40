"""Convergence maps as pictures: the paper's colour restretch, labelled axes, epoch animations.

Everything here reads arrays (from the store) and writes files; nothing trains.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402


def cdf_restretch(x: np.ndarray, x_ref: np.ndarray | None = None, buffer: float = 0.25) -> np.ndarray:
    """The paper's colour stretch: values -> [-1, 1] by rank, keeping the sign.

    Negative (converged) scores spread uniformly over [-1, -buffer] and positive ones over
    [buffer, 1], ranked against `x_ref` (default: x itself). Returns -y so that converged pixels
    land on the blue end of the Spectral colormap, as in the paper's figures.
    """
    x = np.asarray(x, dtype=np.float64)
    u = np.sort(np.asarray(x if x_ref is None else x_ref, dtype=np.float64).ravel())
    n_neg = int(np.sum(u < 0))
    v = np.concatenate([np.linspace(-1, -buffer, n_neg), np.linspace(buffer, 1, u.size - n_neg)])
    return -np.interp(x, u, v)


def value_formatter(axis_scale: str) -> FuncFormatter:
    """Tick labels in hyperparameter values (10**v on log axes)."""
    if axis_scale == "log":
        return FuncFormatter(lambda v, _: f"{10.0 ** v:.3g}")
    return FuncFormatter(lambda v, _: f"{v:.3g}")


def value_axes(ax, axis_scale: str) -> None:
    """Label both axes in hyperparameter values, with at most ~5 ticks on x: values such as
    0.00316 are long, and a default locator on a narrow log window crowds them into each other."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(value_formatter(axis_scale))
    ax.yaxis.set_major_formatter(value_formatter(axis_scale))


def extent_of(x: np.ndarray, y: np.ndarray, axis_scale: str) -> tuple[float, float, float, float]:
    """imshow extent (x_min, x_max, y_min, y_max) in plotting units (log10 on log axes)."""
    f = np.log10 if axis_scale == "log" else (lambda a: a)
    return float(f(x[0])), float(f(x[-1])), float(f(y[0])), float(f(y[-1]))


def draw_map(ax, score_map: np.ndarray, extent, xlabel: str, ylabel: str, axis_scale: str,
             title: str = "", reference: np.ndarray | None = None):
    """Draw a score map (rows=y, cols=x) on `ax` with the Spectral restretch; returns the image."""
    im = ax.imshow(cdf_restretch(score_map, reference), extent=extent, origin="lower",
                   vmin=-1, vmax=1, cmap="Spectral", aspect="auto", interpolation="nearest")
    ax.set_xlabel(xlabel.replace("log10 ", ""))
    ax.set_ylabel(ylabel.replace("log10 ", ""))
    value_axes(ax, axis_scale)
    if title:
        ax.set_title(title, fontsize=10)
    return im


def map_figure(score_map, extent, xlabel, ylabel, axis_scale, title="", figsize=(6, 5), dpi=100,
               reference=None) -> Figure:
    """A figure holding one labelled map; `fig.axes[0].images[0]` is the image (for animations)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    draw_map(ax, score_map, extent, xlabel, ylabel, axis_scale, title, reference)
    fig.text(0.99, 0.01, "blue: converged   red: diverged", ha="right", va="bottom", fontsize=7,
             color="0.3")
    fig.tight_layout()
    return fig


def save_map(path: Path, *args, **kwargs) -> None:
    """Write a convergence map PNG (arguments as `map_figure`)."""
    fig = map_figure(*args, **kwargs)
    fig.savefig(path)


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a figure to an (H, W, 3) uint8 array with even H and W (H.264 needs them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    return np.ascontiguousarray(rgb[:h, :w])


def write_animation(frames: list[np.ndarray], gif_path: Path | None, mp4_path: Path | None,
                    fps: float = 4.0) -> None:
    """Write RGB frames as a looping GIF and an H.264 (yuv420p) MP4 that browsers can play."""
    import imageio.v2 as imageio
    if gif_path is not None:
        imageio.mimsave(gif_path, frames, duration=1000.0 / fps, loop=0)
    if mp4_path is not None:
        writer = imageio.get_writer(mp4_path, fps=fps, codec="libx264", pixelformat="yuv420p",
                                    macro_block_size=2, ffmpeg_log_level="error")
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()


def trained_figure(score_map: np.ndarray, stride: np.ndarray, extent, xlabel: str, ylabel: str,
                   axis_scale: str, title: str = "", figsize=(12, 5), dpi=100) -> Figure:
    """Adaptive refinement, two panels: the map with filled pixels dimmed (left) and which level
    trained each pixel (right; white = filled from the nearest trained pixel).

    score_map and stride are (rows, cols); stride holds the stride of the level that trained a
    pixel (the coarse lattice's stride, then halves down to 1) and 0 for a filled pixel.
    """
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    fig = Figure(figsize=figsize, dpi=dpi)
    ax_map, ax_lvl = fig.subplots(1, 2)
    im = draw_map(ax_map, score_map, extent, xlabel, ylabel, axis_scale,
                  "map; filled pixels dimmed")
    rgba = colormaps["Spectral"]((im.get_array() + 1) / 2)
    filled = stride == 0
    rgba[filled, :3] = 0.35 * rgba[filled, :3] + 0.65          # blend filled pixels towards white
    im.remove()
    ax_map.imshow(rgba, extent=extent, origin="lower", aspect="auto", interpolation="nearest")

    strides = sorted({int(s) for s in np.unique(stride) if s > 0}, reverse=True)
    colours = ["white"] + [colormaps["viridis"](v) for v in np.linspace(0.0, 0.9, max(1, len(strides)))]
    level = np.zeros(stride.shape, dtype=int)
    for i, s in enumerate(strides):
        level[stride == s] = i + 1
    ax_lvl.imshow(level, extent=extent, origin="lower", aspect="auto", interpolation="nearest",
                  cmap=ListedColormap(colours[:len(strides) + 1]),
                  norm=BoundaryNorm(np.arange(len(strides) + 2) - 0.5, len(strides) + 1))
    ax_lvl.set_xlabel(xlabel.replace("log10 ", ""))
    ax_lvl.set_ylabel(ylabel.replace("log10 ", ""))
    value_axes(ax_lvl, axis_scale)
    n = stride.size
    handles = [Patch(facecolor="white", edgecolor="0.5",
                     label=f"filled ({int(filled.sum()) / n:.1%})")]
    handles += [Patch(facecolor=colours[i + 1], label=f"trained at stride {s} "
                      f"({int((stride == s).sum()) / n:.1%})") for i, s in enumerate(strides)]
    ax_lvl.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                  frameon=False)
    ax_lvl.set_title(f"trained pixels: {int((~filled).sum())} of {n} ({(~filled).mean():.1%})",
                     fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
