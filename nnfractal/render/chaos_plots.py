"""chaos.png: a run's convergence map with the pixels whose outcome flips under a move of a few
rounding units marked (the chaos map of `runner.chaos`)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .maps import MAP_CMAP, draw_map

FLIP_RGB = (0.0, 0.0, 0.0)          # flipped pixels: black, seen on blue and red alike


def chaos_rgba(score_map: np.ndarray, flipped: np.ndarray, twinned: np.ndarray,
               image: np.ndarray) -> np.ndarray:
    """(rows, cols, 4) colours: the map's (`image`: its restretched values in -1..1) blended half
    towards white so the marks stand out, pixels without a twin (filled by an adaptive run)
    further towards white, flipped pixels black."""
    rgba = MAP_CMAP((np.asarray(image) + 1) / 2)
    rgba[..., :3] = 0.5 * rgba[..., :3] + 0.5
    rgba[~twinned, :3] = 0.4 * rgba[~twinned, :3] + 0.6
    rgba[flipped, :3] = FLIP_RGB
    return rgba


def chaos_figure(score_map: np.ndarray, flipped: np.ndarray, twinned: np.ndarray,
                 near_boundary: np.ndarray, extent, xlabel: str, ylabel: str, axis_scale: str,
                 title: str = "", figsize=(6, 5), dpi=100) -> Figure:
    """One panel: the map (`score_map` (rows, cols)) lightened, its flipped pixels black, with a
    legend counting flips among all twinned pixels and among boundary pixels (`near_boundary`).
    All masks are (rows, cols) bool."""
    from matplotlib.patches import Patch

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    im = draw_map(ax, score_map, extent, xlabel, ylabel, axis_scale, title)
    rgba = chaos_rgba(score_map, flipped, twinned, im.get_array())
    im.remove()
    ax.imshow(rgba, extent=extent, origin="lower", aspect="auto", interpolation="nearest")
    on_edge = twinned & near_boundary
    handles = [Patch(facecolor=FLIP_RGB, label=f"outcome flips: {int(flipped.sum())} of "
                     f"{int(twinned.sum())} pixels, {int((flipped & on_edge).sum())} of "
                     f"{int(on_edge.sum())} boundary pixels")]
    if not twinned.all():
        handles.append(Patch(facecolor="0.92", edgecolor="0.6",
                             label=f"no twin (filled, not trained): {int((~twinned).sum())}"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7,
              frameon=False)
    fig.tight_layout()
    return fig
