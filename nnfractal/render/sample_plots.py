"""Figures of the sampling estimators: f(eps) with its fit and local slopes, transect barcodes.

Estimates are ``sampling.SamplingEstimate`` objects or their ``to_dict()`` form (sample.json).
Figures use the Agg canvas directly (no pyplot state), like ``fractal_plots``.
"""
from __future__ import annotations

import math

import numpy as np

from .fractal_plots import _new_figure, _save


def _get(est, key):
    return est[key] if isinstance(est, dict) else getattr(est, key)


def _arr(est, key, dtype=float):
    v = _get(est, key)
    return np.asarray([np.nan if x is None else x for x in v] if isinstance(v, list) else v,
                      dtype=dtype)


def _title_line(est) -> str:
    if not _get(est, "ok"):
        import textwrap
        return textwrap.fill(f"no dimension: {_get(est, 'reason')}", 90)
    return (f"D = {_get(est, 'dimension'):.3f}  [95%: {_get(est, 'ci_low'):.3f}, "
            f"{_get(est, 'ci_high'):.3f}]  ({_get(est, 'evaluations'):,} evaluations)")


def _log_axes(ax, has_data, empty_text):
    """Log-log axes, or a note when there is nothing positive to draw on them."""
    if has_data:
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, empty_text, ha="center", va="center", transform=ax.transAxes)


def _fit_line(ax, scales, values, mask, dimension, exponent_of):
    """The fitted power law through the fitted points (offset by least squares in log)."""
    if dimension is None or not mask.any():
        return
    a = exponent_of(dimension)
    x, y = np.log(scales[mask]), np.log(values[mask])
    c = float(np.mean(y - a * x))
    xs = np.array([scales[mask].min(), scales[mask].max()])
    ax.plot(xs, np.exp(c) * xs ** a, "-", color="tab:red", lw=1.5, label=f"fit, slope {a:.3f}")


def plot_uncertainty(est, path, title=""):
    """f(eps) per stage (rescaled onto one curve), the fit, and the local dimension 2 - slope.

    Parameters
    ----------
    est : SamplingEstimate or dict
        ``method='uncertainty'``.
    path : str or Path
        PNG to write.
    """
    scales, values = _arr(est, "scales"), _arr(est, "values")
    hits, stage = _arr(est, "hits", int), _arr(est, "stage", int)
    mask = _arr(est, "fit_mask", bool)
    fig = _new_figure((7.0, 6.4))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    shown = hits > 0
    for s in np.unique(stage):
        i = (stage == s) & shown
        top.plot(scales[i], values[i], "o-", ms=4, lw=0.8, label=f"stage {s}")
        faint = i & ~mask
        top.plot(scales[faint], values[faint], "o", ms=7, mfc="none", mec="0.6")
    _fit_line(top, scales, values, mask & shown, _get(est, "dimension"), lambda d: 2 - d)
    _log_axes(top, shown.any(), "no pair differed")
    top.set_ylabel("f(eps): fraction of pairs that differ\n(stages rescaled onto stage 0)")
    if shown.any():
        top.legend(fontsize=7, ncol=2)
    top.set_title((title + "\n" if title else "") + _title_line(est), fontsize=9)
    top.grid(True, which="major", alpha=0.3)
    ss, ls = _arr(est, "slope_scales"), _arr(est, "local_slopes")
    ok = np.isfinite(ls)
    bottom.plot(ss[ok], ls[ok], ".", color="tab:blue")
    if _get(est, "ok"):
        for v, style in ((_get(est, "dimension"), "-"), (_get(est, "ci_low"), ":"),
                         (_get(est, "ci_high"), ":")):
            bottom.axhline(v, color="tab:red", ls=style, lw=1)
    if ok.any():
        bottom.set_xscale("log")
    bottom.set_xlabel("eps (window units)")
    bottom.set_ylabel("local 2 - slope")
    bottom.set_ylim(0.8, 2.2)
    bottom.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_transect(est, signs, path, title="", max_px=2048):
    """Sign barcode of every segment and the count of sign changes against the lag.

    Parameters
    ----------
    est : SamplingEstimate or dict
        ``method='transect'``.
    signs : (lines, n) array_like
        Sign of each point's score along each segment (max-pooled to ``max_px`` columns: a
        column is dark where any of its points diverged).
    path : str or Path
    """
    signs = np.asarray(signs)
    lines, n = signs.shape
    f = max(1, math.ceil(n / max_px))
    pad = np.zeros((lines, math.ceil(n / f) * f))
    pad[:, :n] = signs > 0
    img = pad.reshape(lines, -1, f).mean(-1)
    fig = _new_figure((7.0, 6.4))
    top, bottom = fig.subplots(2, 1, height_ratios=[1, 2])
    top.imshow(img, aspect="auto", cmap="RdBu_r", vmin=0, vmax=1, interpolation="nearest",
               extent=(0, 1, lines, 0))
    top.set_xlabel("position along the segment (fraction; red = diverged, blue = converged)")
    top.set_ylabel("segment")
    top.set_title((title + "\n" if title else "") + _title_line(est), fontsize=9)
    scales, values = _arr(est, "scales"), _arr(est, "values")
    mask = _arr(est, "fit_mask", bool)
    shown = values > 0
    bottom.plot(scales[shown], values[shown], "o-", ms=4, lw=0.8, label="sign changes per lag")
    bottom.plot(scales[shown & ~mask], values[shown & ~mask], "o", ms=7, mfc="none", mec="0.6",
                label="not fitted")
    _fit_line(bottom, scales, values, mask & shown, _get(est, "dimension"), lambda d: 1 - d)
    _log_axes(bottom, shown.any(), "no sign change along the segments")
    bottom.set_xlabel("lag between points (window units)")
    bottom.set_ylabel("sign changes at this lag")
    if shown.any():
        bottom.legend(fontsize=7)
    bottom.grid(True, which="major", alpha=0.3)
    return _save(fig, path)


def plot_sample_points(points, signs, extent, xlabel, ylabel, path, title="", max_points=20000):
    """Where the sampled points fell in the window, coloured by outcome.

    Parameters
    ----------
    points : (k, 2) array_like
        Points in axis units (exponents on log axes).
    signs : (k,) array_like
        Sign of each score (negative = converged).
    extent : (x_min, x_max, y_min, y_max)
    """
    points, signs = np.asarray(points), np.asarray(signs)
    if len(points) > max_points:
        pick = np.random.default_rng(0).choice(len(points), max_points, replace=False)
        points, signs = points[pick], signs[pick]
    fig = _new_figure((6.0, 5.4))
    ax = fig.subplots()
    for cond, colour, label in ((signs < 0, "tab:blue", "converged"),
                                (signs > 0, "tab:red", "diverged")):
        ax.plot(points[cond, 0], points[cond, 1], ".", ms=1.5, color=colour, label=label)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, markerscale=6, loc="upper right")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
