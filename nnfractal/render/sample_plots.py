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


def _band_line(est) -> str:
    """The band's scale and the chaos of every stage, for the title ('' without a floor)."""
    star = _opt(est, "eps_star")
    chaos = _arr(est, "chaos_fraction") if _opt(est, "chaos_fraction") is not None else []
    if not len(chaos) or not np.nanmax(chaos) > 0:
        return ""
    text = "chaos floor per stage " + ", ".join(f"{c:.3f}" for c in chaos)
    if star is not None:
        lo, hi = _opt(est, "eps_star_low"), _opt(est, "eps_star_high")
        text = (f"band: eps* = {star:.1e}" + (f" [{lo:.1e}, {hi:.1e}]" if lo is not None else "")
                + "; " + text)
    return text


def _opt(est, key):
    """A field that estimates written before it existed lack (None then)."""
    if isinstance(est, dict):
        return est.get(key)
    return getattr(est, key, None)


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


def _stage_colour(s):
    return f"C{int(s) % 10}"


def _draw_stages(ax, est):
    """Raw f(eps) per stage (filled where fitted), its chaos floor, and the fitted curve term
    A eps^(2 - D) over the stage's fitted eps. Returns whether anything was drawn."""
    scales, raw = _arr(est, "scales"), _arr(est, "raw_values" if _opt(est, "raw_values")
                                            is not None else "values")
    stage, mask = _arr(est, "stage", int), _arr(est, "fit_mask", bool)
    floors = _arr(est, "chaos_fraction") if _opt(est, "chaos_fraction") is not None else []
    amps = _arr(est, "amplitude") if _opt(est, "amplitude") is not None else []
    dim = _get(est, "dimension")
    shown = raw > 0
    for s in np.unique(stage):
        i = (stage == s) & shown
        colour = _stage_colour(s)
        ax.plot(scales[i], raw[i], "-", color=colour, lw=0.8, label=f"stage {s}: f(eps)")
        ax.plot(scales[i & mask], raw[i & mask], "o", ms=4, color=colour)
        ax.plot(scales[i & ~mask], raw[i & ~mask], "o", ms=5, mfc="none", mec=colour)
        span = scales[stage == s]
        if s < len(floors) and floors[s] > 0:
            ax.hlines(floors[s], span.min(), span.max(), colors=colour, linestyles="--", lw=1,
                      label=f"stage {s}: chaos floor {floors[s]:.3f}")
        fitted = (stage == s) & mask
        if dim is not None and s < len(amps) and np.isfinite(amps[s]) and fitted.any():
            xs = np.geomspace(scales[fitted].min(), scales[fitted].max(), 20)
            ax.plot(xs, amps[s] * xs ** (2 - dim), "-", color=colour, lw=2.2, alpha=0.55,
                    label=f"stage {s}: curve term A eps^{2 - dim:.2f}")
    return bool(shown.any())


def _mark_band(ax, est):
    star = _opt(est, "eps_star")
    if star is None:
        return
    lo, hi = _opt(est, "eps_star_low"), _opt(est, "eps_star_high")
    if lo is not None and hi is not None:
        ax.axvspan(lo, hi, color="0.5", alpha=0.15, lw=0)
    ax.axvline(star, color="0.3", ls=":", lw=1.2, label=f"eps* = {star:.1e} (band's scale)")


def uncertainty_figure(est, title=""):
    """The uncertainty exponent's figure (a matplotlib Figure; :func:`plot_uncertainty` saves it).

    Top: each stage's raw ``f(eps)`` (filled: fitted eps), its chaos floor ``F`` (dashed), the
    fitted curve term ``A eps^(2 - D)`` (thick) and ``eps*`` (dotted, its interval shaded).
    Bottom: the local dimension ``2 - slope`` of the curve term ``q`` (``f`` less its chaos)
    between neighbouring eps of a stage, above the band; where it is measured nowhere, that of
    ``f`` itself (the chaos counted as boundary), so the panel always shows what was measured.
    """
    fig = _new_figure((7.0, 6.8))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    shown = _draw_stages(top, est)
    _mark_band(top, est)
    _log_axes(top, shown, "no pair differed")
    top.set_ylabel("f(eps): fraction of pairs that differ")
    if shown:
        top.legend(fontsize=6, ncol=2)
    band = _band_line(est)
    top.set_title((title + "\n" if title else "") + _title_line(est) + ("\n" + band if band else ""),
                  fontsize=8)
    top.grid(True, which="major", alpha=0.3)
    _draw_local(bottom, est)
    return fig


def _draw_local(ax, est):
    ss, ls = _arr(est, "slope_scales"), _arr(est, "local_slopes")
    ok = np.isfinite(ls)
    label = "local dimension of the curve term q (f less its chaos)"
    if not ok.any():
        # nothing above the floor anywhere: the local dimension of f itself, chaos included
        from nnfractal.estimators.sampling_fit import local_slopes
        scales, raw = _arr(est, "scales"), _arr(est, "raw_values" if _opt(est, "raw_values")
                                                is not None else "values")
        ss, ls = local_slopes(scales, raw, _arr(est, "stage", int), lambda a: 2 - a)
        ok = np.isfinite(ls)
        label = "local dimension of f (no curve term above the band)"
    ax.plot(ss[ok], ls[ok], ".", color="tab:blue", label=label)
    if _get(est, "ok"):
        for v, style in ((_get(est, "dimension"), "-"), (_get(est, "ci_low"), ":"),
                         (_get(est, "ci_high"), ":")):
            ax.axhline(v, color="tab:red", ls=style, lw=1)
    if ok.any():
        ax.set_xscale("log")
        ax.legend(fontsize=6, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no pair differed at two neighbouring eps", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("eps (window units)")
    ax.set_ylabel("local 2 - slope")
    ax.set_ylim(0.8, 2.2)
    ax.grid(True, alpha=0.3)


def plot_uncertainty(est, path, title=""):
    """Write :func:`uncertainty_figure` to ``path`` (PNG).

    Parameters
    ----------
    est : SamplingEstimate or dict
        ``method='uncertainty'``.
    path : str or Path
        PNG to write.
    """
    return _save(uncertainty_figure(est, title), path)


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
