"""Figures for boundaries and their box-counting dimension.

All figures are drawn on :class:`matplotlib.figure.Figure` objects with the
Agg canvas and written straight to PNG, so nothing touches pyplot's global
figure list (safe in threads, servers and test runs). Each ``plot_*`` returns
the Figure it wrote.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .maps import value_axes

__all__ = ["plot_boundary", "plot_boxcount", "plot_dimension_per_epoch"]

_MAX_IMAGE_PX = 1024  # edge images are max-pooled down to this many pixels


def _new_figure(figsize):
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=150):
    """Write `fig` to `path`; return it, so that a caller (or a test) can read what it shows."""
    fig.savefig(path, dpi=dpi)
    return fig


def _field(est, key):
    # Accept DimensionEstimate objects or their to_dict() form (e.g. JSON).
    return est[key] if isinstance(est, dict) else getattr(est, key)


def _max_pool(edges, max_px):
    """Shrink a bool image by block ``any`` so that 1-px lines stay visible."""
    rows, cols = edges.shape
    f = max(1, math.ceil(max(rows, cols) / max_px))
    if f == 1:
        return edges
    pad = np.zeros((math.ceil(rows / f) * f, math.ceil(cols / f) * f), bool)
    pad[:rows, :cols] = edges
    return pad.reshape(pad.shape[0] // f, f, pad.shape[1] // f, f).any(
        axis=(1, 3))


def plot_boundary(edges, extent, xlabel, ylabel, path, title="", axis_scale=None):
    """Draw a boundary (edge) image, black on white.

    Parameters
    ----------
    edges : (rows, cols) ndarray of bool
        Edge image, e.g. ``boundary(scores)``; row 0 is drawn at the bottom.
        Images larger than 1024 px are max-pooled so thin boundaries remain
        visible.
    extent : (float, float, float, float)
        ``(x_min, x_max, y_min, y_max)`` in axis units (log10 exponents for
        log-scaled hyperparameters).
    xlabel, ylabel : str
        Axis labels.
    path : str or path-like
        Output PNG file.
    title : str, optional
        Figure title.
    axis_scale : {"log", "linear"}, optional
        Label the ticks in hyperparameter values as ``map.png`` does (10**v on log axes, the
        labels' "log10 of" dropped); None keeps the axis units.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, as written to `path`.
    """
    img = _max_pool(np.asarray(edges, dtype=bool), _MAX_IMAGE_PX)
    fig = _new_figure((6, 6))
    ax = fig.add_subplot()
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, origin="lower",
              extent=tuple(extent), interpolation="nearest", aspect="auto")
    if axis_scale is not None:       # one convention for every map: values, as map.png
        xlabel = xlabel.replace("log10 of ", "").replace("log10 ", "")
        ylabel = ylabel.replace("log10 of ", "").replace("log10 ", "")
        value_axes(ax, axis_scale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _message_figure(path, lines, title=""):
    """A figure that says, in words, why there is no plot (instead of an empty axis)."""
    fig = _new_figure((7, 2.8))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.fill(line[:1].upper() + line[1:], 70)
                                 for line in lines if line),
            ha="center", va="center", fontsize=11, transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_boxcount(est, path, title="", note=""):
    """Box counts and local slopes behind a dimension estimate.

    Left panel: ``N(s)`` against box size on log-log axes, the sizes used by
    the fit filled, the fitted power law drawn over the fit range. Right
    panel: local slopes against box size with the estimate and its 95%
    interval. When ``est.ok`` is False the figure states the reason instead.

    Parameters
    ----------
    est : DimensionEstimate or dict
        Result of ``estimate_dimension`` or ``paper_dimension`` (or its
        ``to_dict()``).
    path : str or path-like
        Output PNG file.
    title : str, optional
        Figure title.
    note : str, optional
        A line added under the reason when there is no estimate (e.g. what resolution would
        give one).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, as written to `path`.
    """
    if not _field(est, "ok"):
        return _message_figure(path, [
            f"No dimension estimate: {_field(est, 'reason')} "
            f"({_field(est, 'n_boundary_pixels')} boundary pixels).", note], title)

    sizes = np.asarray(_field(est, "sizes"), dtype=float)
    counts = np.asarray(_field(est, "counts"), dtype=float)
    fit = np.asarray(_field(est, "fit_sizes"), dtype=float)
    slopes = np.asarray(_field(est, "local_slopes"), dtype=float)
    slope_sizes = np.asarray(_field(est, "slope_sizes"), dtype=float)
    dim = _field(est, "dimension")
    lo, hi = _field(est, "ci_low"), _field(est, "ci_high")
    method = _field(est, "method")
    in_fit = np.isin(sizes, fit)

    fig = _new_figure((11, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    pos = counts > 0  # log axes cannot show empty counts
    for sel, mfc, label in ((pos & in_fit, "C0", "fit range"),
                            (pos & ~in_fit, "none", "not fitted")):
        if sel.any():
            ax1.loglog(sizes[sel], counts[sel], "o", mfc=mfc, color="C0",
                       label=label)
    if fit.size:
        s = np.geomspace(fit.min(), fit.max(), 50)
        intercept = _field(est, "intercept")
        if intercept is None:  # paper estimator: anchor at the median count
            ref = np.exp(np.median(np.log(counts[pos & in_fit])))
            s_ref = np.exp(np.median(np.log(sizes[pos & in_fit])))
            line = ref * (s / s_ref) ** -dim
        else:
            line = np.exp(intercept) * s ** -dim
        kind = "fitted" if intercept is not None else "median"
        ax1.loglog(s, line, "-", color="C3", label=f"{kind} slope -{dim:.3f}")
        for ax in (ax1, ax2):
            ax.axvspan(fit.min(), fit.max(), color="0.9", zorder=0)
    ax1.set_xlabel("box size s (pixels)")
    ax1.set_ylabel("boxes containing boundary N(s)")
    ax1.legend()

    ok_sl = np.isfinite(slopes)
    ax2.semilogx(slope_sizes[ok_sl], slopes[ok_sl], "o-", color="C0",
                 label="local slope")
    ax2.axhspan(lo, hi, color="C3", alpha=0.2, label="95% interval")
    ax2.axhline(dim, color="C3",
                label=f"D = {dim:.3f} [{lo:.3f}, {hi:.3f}]")
    vals = np.concatenate([slopes[ok_sl], [lo, hi]])
    # Local slopes at the largest boxes can be wild; keep the band readable.
    ax2.set_ylim(max(vals.min(), lo - 1.0) - 0.1,
                 min(vals.max(), hi + 1.0) + 0.1)
    ax2.set_xlabel("box size s (pixels)")
    ax2.set_ylabel("local dimension -dlogN/dlogs")
    ax2.legend()
    fig.suptitle(title or f"box counting ({method})")
    return _save(fig, path)


def plot_dimension_per_epoch(epochs, estimates, path, title="", note="", xlabel="epoch"):
    """Dimension with 95% error bars against training epoch.

    Entries whose estimate is not ok are not plotted as values; they are
    marked with a grey ``x`` on the lower edge of the plot and their reasons
    are listed in the legend.

    Parameters
    ----------
    epochs : sequence of int or float
        Epoch (or step) of each estimate.
    estimates : sequence of DimensionEstimate or dict
        One estimate (or its ``to_dict()``) per epoch.
    path : str or path-like
        Output PNG file.
    title : str, optional
        Figure title.
    note : str, optional
        A line shown when no entry has an estimate (then the figure is that message).
    xlabel : str, optional
        "epoch", or "step" for full-batch training (one step per epoch).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, as written to `path`.
    """
    epochs = np.asarray(epochs, dtype=float)
    if len(epochs) != len(estimates):
        raise ValueError("epochs and estimates must have the same length")
    ok = np.array([bool(_field(e, "ok")) for e in estimates], dtype=bool)
    if not ok.any():
        reasons = sorted({_field(e, "reason") for e in estimates})
        return _message_figure(path, [f"No {xlabel} has a dimension estimate: "
                                      + "; ".join(reasons) + ".", note], title)
    fig = _new_figure((7, 4.5))
    ax = fig.add_subplot()
    if ok.any():
        d = np.array([_field(e, "dimension") for e, k in zip(estimates, ok)
                      if k], dtype=float)
        lo = np.array([_field(e, "ci_low") for e, k in zip(estimates, ok)
                       if k], dtype=float)
        hi = np.array([_field(e, "ci_high") for e, k in zip(estimates, ok)
                       if k], dtype=float)
        ax.errorbar(epochs[ok], d, yerr=[d - lo, hi - d], fmt="o-",
                    capsize=3, label="dimension (95% interval)")
    else:
        ax.text(0.5, 0.5, "no epoch has a dimension estimate",
                ha="center", va="center", transform=ax.transAxes)
    if (~ok).any():
        reasons = sorted({_field(e, "reason") for e, k in zip(estimates, ok)
                          if not k})
        # Axis-fraction y so the marks sit on the bottom edge at any scale.
        xy_tf = ax.get_xaxis_transform()
        ax.plot(epochs[~ok], np.full((~ok).sum(), 0.02), "x", color="0.5",
                transform=xy_tf, label="no estimate: " + "; ".join(reasons))
        for ep in epochs[~ok]:
            ax.annotate("n/a", (ep, 0.02), xycoords=xy_tf,
                        xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=8, color="0.4")
    ax.margins(x=0.05, y=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("box-counting dimension")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)
