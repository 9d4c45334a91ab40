"""Convergence maps as pictures: the paper's colour restretch, labelled axes, epoch animations.

Everything here reads arrays (from the store) and writes files; nothing trains.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import Formatter, MaxNLocator  # noqa: E402


def _outcome_colormap():
    """The maps' colours on [-1, 1] (after `cdf_restretch`): reds for diverged (-1 .. -0.25),
    blues for converged (0.25 .. 1), white in the unused gap between. Unlike Spectral, whose two
    halves meet in pale yellow and pale orange, the pixels on either side of the boundary keep
    clearly different hues."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    v = -1.0 + (2 * np.arange(256) + 1) / 256                  # the middle of each colour's bin
    depth = np.clip((np.abs(v) - 0.25) / 0.75, 0.0, 1.0)       # 0 at the gap's edge, 1 at the ends
    reds = colormaps["Reds"](0.35 + 0.6 * depth)
    blues = colormaps["Blues"](0.35 + 0.6 * depth)
    rgba = np.where((v < 0)[:, None], reds, blues)
    # white only well inside the gap: the bins holding +-0.25 (the pixels next to the boundary)
    # keep their colour
    rgba[np.abs(v) < 0.2] = (1.0, 1.0, 1.0, 1.0)
    return ListedColormap(rgba, name="nnfractal-outcome")


#: The colour map of every convergence map (matplotlib and the explorer's lookup table).
MAP_CMAP = _outcome_colormap()


def colorbar_labels(metric: str = "train_loss", measure: str = "paper",
                    acc_threshold: float = 0.9) -> tuple[str, str, str, str]:
    """What the colour bar's four marks (-1, -0.25, 0.25, 1 after the stretch) mean:
    (red end, red next to the boundary, blue next to the boundary, blue end)."""
    if metric.endswith("acc"):
        return ("lowest accuracy", f"just below {acc_threshold:g}", f"just above {acc_threshold:g}",
                "highest accuracy")
    if measure == "customer":
        return ("loss rose most", "loss rose slightly", "loss fell slightly", "loss fell most")
    # paper's measure: diverged sum(1/v) is largest for the latest divergence; converged -sum(v)
    # is most negative for the slowest descent
    return ("diverged, late", "diverged, early", "converged, fast", "converged, slowly")


def outcome_words(metric: str = "train_loss", acc_threshold: float = 0.9) -> tuple[str, str]:
    """(blue, red) in words: converged/diverged for losses, above/below the threshold for
    accuracies (an accuracy map's red pixels did not diverge: they stayed below it)."""
    if metric.endswith("acc"):
        return (f"{metric} above {acc_threshold:g}", f"below threshold {acc_threshold:g}")
    return ("converged", "diverged")


def cdf_restretch(x: np.ndarray, x_ref: np.ndarray | None = None, buffer: float = 0.25) -> np.ndarray:
    """The paper's colour stretch: values -> [-1, 1] by rank, keeping the sign.

    Negative (converged) scores spread uniformly over [-1, -buffer] and positive ones over
    [buffer, 1], ranked against `x_ref` (default: x itself). Returns -y so that converged pixels
    land on the blue end of the map colours (MAP_CMAP), as in the paper's figures.
    """
    x = np.asarray(x, dtype=np.float64)
    u = np.sort(np.asarray(x if x_ref is None else x_ref, dtype=np.float64).ravel())
    n_neg = int(np.sum(u < 0))
    v = np.concatenate([np.linspace(-1, -buffer, n_neg), np.linspace(buffer, 1, u.size - n_neg)])
    return -np.interp(x, u, v)


class ValueFormatter(Formatter):
    """Tick labels in hyperparameter values (10**v on log axes), with as many significant digits
    (at least 3) as it takes for neighbouring ticks to read differently: a deep zoom frame spans
    a relative 1e-6 of its values, where 3 digits would label every tick alike."""

    def __init__(self, axis_scale: str):
        self.to_value = (lambda v: 10.0 ** v) if axis_scale == "log" else (lambda v: v)
        self.digits = 3

    def set_locs(self, locs):
        super().set_locs(locs)
        values = [self.to_value(float(v)) for v in locs]
        for digits in range(3, 18):
            labels = [f"{v:.{digits}g}" for v in values]
            if len(set(labels)) == len(labels):
                break
        self.digits = digits

    def __call__(self, x, pos=None):
        return f"{self.to_value(float(x)):.{self.digits}g}"


def value_formatter(axis_scale: str) -> Formatter:
    """Tick labels in hyperparameter values (10**v on log axes); see `ValueFormatter`."""
    return ValueFormatter(axis_scale)


def value_axes(ax, axis_scale: str) -> None:
    """Label both axes in hyperparameter values, with at most ~5 ticks on x: values such as
    0.00316 are long, and a default locator on a narrow log window crowds them into each other."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(value_formatter(axis_scale))
    ax.yaxis.set_major_formatter(value_formatter(axis_scale))


def draw_map(ax, score_map: np.ndarray, extent, xlabel: str, ylabel: str, axis_scale: str,
             title: str = "", reference: np.ndarray | None = None):
    """Draw a score map (rows=y, cols=x) on `ax` with the paper's restretch in MAP_CMAP; returns
    the image."""
    im = ax.imshow(cdf_restretch(score_map, reference), extent=extent, origin="lower",
                   vmin=-1, vmax=1, cmap=MAP_CMAP, aspect="auto", interpolation="nearest")
    ax.set_xlabel(xlabel.replace("log10 of ", "").replace("log10 ", ""))
    ax.set_ylabel(ylabel.replace("log10 of ", "").replace("log10 ", ""))
    value_axes(ax, axis_scale)
    if title:
        ax.set_title(title, fontsize=10)
    return im


def add_colorbar(fig: Figure, ax, im, metric: str = "train_loss", measure: str = "paper",
                 acc_threshold: float = 0.9):
    """A colour bar beside `ax` whose marks say what its ends and the boundary mean."""
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    bar.set_ticks([-1.0, -0.25, 0.25, 1.0])
    bar.set_ticklabels(colorbar_labels(metric, measure, acc_threshold))
    bar.ax.tick_params(labelsize=7)
    bar.ax.axhline(0.0, color="0.2", lw=0.8)
    blue, red = outcome_words(metric, acc_threshold)
    bar.set_label(f"blue: {blue}   red: {red}   (shade: rank of the score)", fontsize=7)
    return bar


def map_figure(score_map, extent, xlabel, ylabel, axis_scale, title="", figsize=(6, 5), dpi=100,
               reference=None, metric: str = "train_loss", measure: str = "paper",
               acc_threshold: float = 0.9) -> Figure:
    """A figure holding one labelled map with its colour bar; `fig.axes[0].images[0]` is the
    image (for animations). `metric`, `measure`, `acc_threshold` name the colours' meaning."""
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    im = draw_map(ax, score_map, extent, xlabel, ylabel, axis_scale, title, reference)
    add_colorbar(fig, ax, im, metric, measure, acc_threshold)
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


class MapFrames:
    """Frames of one map figure (`map_figure`) whose pixels and step label change from frame to
    frame.

    The axes, ticks, labels, title and colour bar are drawn once; each frame draws only the image,
    the axes' frame and a short label at the right of the title line ("step 40/500") over that
    background (blitting), in a full draw's order, so a frame is the full draw's picture. Text is
    most of a draw's time: the label's dozen glyphs are all a frame rasterises, and, right-aligned,
    it stays put as its digits change.
    """

    def __init__(self, fig: Figure):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        self.canvas = FigureCanvasAgg(fig)
        self.ax = fig.axes[0]
        self.image = self.ax.images[0]
        # An empty label rather than a hidden one: the titles are lined up at the highest
        # baseline of the three, and a hidden title's baseline is off the figure.
        self.label = self.ax.set_title("", loc="right", fontsize=self.ax.title.get_fontsize())
        changing = [self.image, *self.ax.spines.values()]  # drawn per frame, with the label
        for artist in changing:
            artist.set_visible(False)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        for artist in changing:
            artist.set_visible(True)

    def render(self, values: np.ndarray, label: str) -> np.ndarray:
        """The figure with `values` (as `im.set_data` takes them) and `label`, as an (H, W, 3)
        uint8 array with even H and W (H.264 needs them)."""
        self.canvas.restore_region(self.background)
        self.image.set_data(values)
        self.label.set_text(label)
        self.ax.draw_artist(self.image)
        for spine in self.ax.spines.values():
            self.ax.draw_artist(spine)
        self.ax.draw_artist(self.label)
        rgb = np.asarray(self.canvas.buffer_rgba())[..., :3]
        h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
        return np.ascontiguousarray(rgb[:h, :w])


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as a PNG, at zlib level 3: for these flat-coloured maps
    much faster to encode than the default level 6, for about the same size (benchmarks/README.md)."""
    from PIL import Image
    Image.fromarray(rgb).save(path, format="PNG", compress_level=3)


def write_animation(frames: list[np.ndarray], gif_path: Path | None, mp4_path: Path | None,
                    fps: float = 4.0) -> None:
    """Write RGB frames as a looping GIF and an H.264 (yuv420p) MP4 that browsers can play."""
    if gif_path is not None:
        write_gif(frames, gif_path, fps)
    if mp4_path is not None:
        with Mp4Writer(mp4_path, fps) as mp4:
            for frame in frames:
                mp4.add(frame)


class Mp4Writer:
    """An H.264 (yuv420p) MP4 written frame by frame through ffmpeg, which encodes in its own
    process: frames added while the next ones are drawn are encoded meanwhile, on another core.

    x264's "veryfast" preset: on these flat maps less CPU than its default ("medium") for no larger
    a file at the same quality target (CRF 23; benchmarks/README.md). Use as a context manager; frames are
    (H, W, 3) uint8 with even H and W."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self._writer = Path(path), fps, None

    def add(self, frame: np.ndarray) -> None:
        if self._writer is None:
            import imageio.v2 as imageio
            self._writer = imageio.get_writer(self.path, fps=self.fps, codec="libx264",
                                              pixelformat="yuv420p", macro_block_size=2,
                                              ffmpeg_log_level="error",
                                              output_params=["-preset", "veryfast"])
        self._writer.append_data(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:          # else the error that stopped the frames is the news
                raise


def write_gif(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """A looping GIF of RGB frames in one 256-colour palette, chosen from every 4th pixel of up to
    8 of the frames (the frames are flat colour areas: a sample finds their colours).

    One palette for all frames keeps a colour the same colour from frame to frame (no flicker),
    and mapping frames onto a given palette is much cheaper than choosing one per frame.
    """
    from PIL import Image
    picks = [f[::2, ::2] for f in frames[:: max(1, len(frames) // 8)][:8]]   # every 4th pixel
    palette = Image.fromarray(np.concatenate(picks, axis=0)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE)
              for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=1000.0 / fps, loop=0)


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
    rgba = MAP_CMAP((im.get_array() + 1) / 2)
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
    ax_lvl.set_xlabel(xlabel.replace("log10 of ", "").replace("log10 ", ""))
    ax_lvl.set_ylabel(ylabel.replace("log10 of ", "").replace("log10 ", ""))
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
