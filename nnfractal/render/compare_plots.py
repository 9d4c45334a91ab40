"""Figures of a two-architecture comparison (``nnfractal compare``).

Like the other render modules, everything is drawn on :class:`matplotlib.figure.Figure` with the
Agg canvas and written to PNG; nothing here trains or touches pyplot's global state. Each
``plot_*`` returns the Figure it wrote, so that what it shows can be read back (labels, limits,
titles).

Colours: architecture A is blue-green, B vermillion (Okabe-Ito, distinguishable with the common
colour-vision deficiencies), used for both in every figure. Convergence maps keep the paper's
Spectral colours (blue converged, red diverged).
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from nnfractal.training.grid import axis_labels
from nnfractal.training.measure import CLIP, normalise
from nnfractal.window import Window

from .maps import draw_map, value_axes

__all__ = ["ARCH_COLOURS", "boundary_pixel_pairs", "plot_maps_side_by_side",
           "plot_boundaries_overlay", "plot_pixel_curves", "plot_dimension_bars",
           "plot_dimension_vs_depth", "plot_quantities"]

ARCH_COLOURS = ("#0072B2", "#D55E00")
BOTH_COLOUR = "#222222"
PAIR_COLOURS = ("#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000")


def _figure(figsize) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _pixel_xy(r: int, c: int, shape, extent) -> tuple[float, float]:
    """Centre of pixel (r, c) in plot units, as imshow(extent=..., origin='lower') draws it."""
    rows, cols = shape
    x0, x1, y0, y1 = extent
    return x0 + (c + 0.5) * (x1 - x0) / cols, y0 + (r + 0.5) * (y1 - y0) / rows


# ---- chosen pixels ---------------------------------------------------------------------------

def boundary_pixel_pairs(score_map, k: int = 3) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Up to `k` pairs of neighbouring pixels on opposite sides of the boundary.

    Each pair is ((row, col) converged, (row, col) diverged), horizontally or vertically adjacent.
    Pairs touching the map's edge are used only when there are no others. The first pair is the
    one nearest the middle of all candidates, each next one the candidate farthest from those
    already taken (farthest-point sampling), so the pairs spread along the boundary.
    Deterministic.
    """
    s = np.asarray(score_map, dtype=float)
    rows, cols = s.shape
    pairs = []
    for dr, dc in ((0, 1), (1, 0)):
        a = s[: rows - dr, : cols - dc]
        b = s[dr:, dc:]
        for r, c in zip(*np.nonzero((a < 0) & (b > 0))):
            pairs.append(((int(r), int(c)), (int(r + dr), int(c + dc))))
        for r, c in zip(*np.nonzero((a > 0) & (b < 0))):
            pairs.append(((int(r + dr), int(c + dc)), (int(r), int(c))))
    if not pairs:
        return []
    pairs.sort()

    def inner(p):
        return all(0 < r < rows - 1 and 0 < c < cols - 1 for r, c in p)
    cand = [p for p in pairs if inner(p)] or pairs
    mid = np.array([[(p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2] for p in cand])
    taken = [int(np.argmin(((mid - mid.mean(axis=0)) ** 2).sum(axis=1)))]
    dist = ((mid - mid[taken[0]]) ** 2).sum(axis=1)
    while len(taken) < min(k, len(cand)):
        nxt = int(np.argmax(dist))
        if dist[nxt] == 0:
            break
        taken.append(nxt)
        dist = np.minimum(dist, ((mid - mid[nxt]) ** 2).sum(axis=1))
    return [cand[i] for i in taken]


# ---- maps and boundaries ---------------------------------------------------------------------

def plot_maps_side_by_side(maps, extent, labels, xlabel, ylabel, axis_scale, path,
                           marks=None, windows=None, segments=None, dpi: int = 130):
    """Convergence maps next to each other: same axes, one colour scale for all.

    The paper's colour restretch is computed against all maps together (`reference`), so a colour
    means the same score in every panel. `marks`: per map, pixel pairs from
    `boundary_pixel_pairs` (numbered circles: converged pixel filled, diverged hollow);
    `windows`: per map, zoomed windows (y0, y1, x0, x1) drawn as dashed rectangles;
    `segments`: per map, a transect segment ((x0, y0), (x1, y1)) in axis units, or None.
    """
    maps = [np.asarray(m, dtype=float) for m in maps]
    reference = np.concatenate([m.ravel() for m in maps])
    n = len(maps)
    fig = _figure((4.6 * n + 0.4, 4.6))
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    for i, (ax, m) in enumerate(zip(axes, maps)):
        draw_map(ax, m, extent, xlabel, ylabel, axis_scale, labels[i], reference=reference)
        ax.title.set_color(ARCH_COLOURS[i % 2])
        if i:
            ax.set_ylabel("")
        for w_i, win in enumerate((windows or [[]] * n)[i]):
            w = Window.from_mnmx(win)
            ax.add_patch(Rectangle((w.x0, w.y0), *w.size, fill=False, lw=1.2, ls="--", ec="black"))
            ax.annotate(f"w{w_i + 1}", (w.x0, w.y1), xytext=(2, -2), textcoords="offset points",
                        fontsize=7, va="top", color="black")
        seg = (segments or [None] * n)[i]
        if seg is not None:
            (sx0, sy0), (sx1, sy1) = seg
            ax.plot([sx0, sx1], [sy0, sy1], "-", color="black", lw=1.4)
        for p_i, (conv, div) in enumerate((marks or [[]] * n)[i]):
            col = PAIR_COLOURS[p_i % len(PAIR_COLOURS)]
            cx, cy = _pixel_xy(*conv, m.shape, extent)
            dx, dy = _pixel_xy(*div, m.shape, extent)
            ax.plot([cx], [cy], "o", ms=7, mfc=col, mec="white", mew=1.2)
            ax.plot([dx], [dy], "o", ms=7, mfc="none", mec=col, mew=2)
            ax.annotate(str(p_i + 1), (cx, cy), xytext=(5, 4), textcoords="offset points",
                        fontsize=8, fontweight="bold", color="white",
                        bbox=dict(boxstyle="round,pad=0.15", fc=col, ec="none"))
    handles = [Patch(fc=(0.2, 0.4, 0.75), label="converged"), Patch(fc=(0.8, 0.2, 0.2),
                                                                     label="diverged")]
    if marks and any(marks):
        handles += [Line2D([], [], ls="", marker="o", mfc="0.4", mec="white", ms=7,
                           label="chosen pixel, converged"),
                    Line2D([], [], ls="", marker="o", mfc="none", mec="0.4", mew=2, ms=7,
                           label="its diverged neighbour")]
    if windows and any(windows):
        handles.append(Line2D([], [], color="black", ls="--", label="zoomed windows (seed 0)"))
    if segments and any(s is not None for s in segments):
        handles.append(Line2D([], [], color="black", label="transect (first segment)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)
    fig.savefig(path, dpi=dpi)
    return fig


def plot_boundaries_overlay(edges, extent, labels, xlabel, ylabel, axis_scale, path,
                            dpi: int = 130):
    """Two boundaries in one picture: A and B in their colours, pixels of both in near-black."""
    a = np.asarray(edges[0], dtype=bool)
    b = np.asarray(edges[1], dtype=bool)
    img = np.ones(a.shape + (3,))
    img[a & ~b] = to_rgb(ARCH_COLOURS[0])
    img[b & ~a] = to_rgb(ARCH_COLOURS[1])
    img[a & b] = to_rgb(BOTH_COLOUR)
    fig = _figure((6.0, 5.4))
    ax = fig.add_subplot()
    ax.imshow(img, extent=extent, origin="lower", aspect="auto", interpolation="nearest")
    ax.set_xlabel(xlabel.replace("log10 ", ""))
    ax.set_ylabel(ylabel.replace("log10 ", ""))
    value_axes(ax, axis_scale)
    ax.set_title("boundaries overlaid", fontsize=10)
    handles = [Patch(fc=ARCH_COLOURS[0], label=f"{labels[0]} ({int(a.sum())} px)"),
               Patch(fc=ARCH_COLOURS[1], label=f"{labels[1]} ({int(b.sum())} px)"),
               Patch(fc=BOTH_COLOUR, label=f"both ({int((a & b).sum())} px)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize=8, frameon=False)
    fig.savefig(path, dpi=dpi)
    return fig


# ---- loss curves -----------------------------------------------------------------------------

def plot_pixel_curves(curves, picks, labels, cfgs, axes_xy, path, dpi: int = 130):
    """Training curves of the chosen pixel pairs, one panel per architecture.

    `curves`: per architecture (curves (rows, cols, T), epoch_of_value); `picks`: per architecture
    the pairs of `boundary_pixel_pairs`; `cfgs`: the configs (metric, axis names); `axes_xy`:
    (x values, y values) of the grid. Loss metrics are drawn normalised by their first value on a
    log axis (non-finite values at the paper's clip, 1e6); accuracies as they are. Solid line:
    the converged pixel; dashed: its diverged neighbour; one colour per pair, numbered as on the
    maps.
    """

    x_vals, y_vals = axes_xy
    n = len(curves)
    fig = _figure((5.2 * n + 0.4, 4.2))
    axs = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for i, ax in enumerate(axs):
        c, _ = curves[i]
        cfg = cfgs[i]
        is_acc = cfg.metric.endswith("acc")
        xname, yname = (s.replace("log10 ", "") for s in axis_labels(cfg))
        for p_i, (conv, div) in enumerate(picks[i]):
            col = PAIR_COLOURS[p_i % len(PAIR_COLOURS)]
            for (r, cc), ls in ((conv, "-"), (div, "--")):
                v = np.asarray(c[r, cc], dtype=float)
                v = v if is_acc else normalise(v[None], CLIP)[0]
                ax.plot(np.arange(1, v.size + 1), v, ls, color=col, lw=1.6)
            ax.plot([], [], "-", color=col,
                    label=f"{p_i + 1}: {yname} {y_vals[conv[0]]:.3g}, {xname} {x_vals[conv[1]]:.3g}")
        if not picks[i]:
            ax.text(0.5, 0.5, "no boundary in this map", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_title(labels[i], fontsize=10, color=ARCH_COLOURS[i % 2])
        unit = "step" if cfg.readout == "step" and not cfg.metric.startswith("test") else \
            ("evaluation" if cfg.metric.startswith("test") else "epoch")
        ax.set_xlabel(unit)
        if is_acc:
            ax.set_ylabel(cfg.metric.replace("_", " "))
        else:
            ax.set_yscale("log")
            ax.set_ylabel(f"{cfg.metric.replace('_', ' ')} / its first value")
            ax.axhline(1.0, color="0.6", lw=0.8, zorder=0)
        ax.grid(alpha=0.25)
        if picks[i]:
            ax.legend(fontsize=7, loc="best", title="pair: pixel (converged)", title_fontsize=7)
    fig.legend(handles=[Line2D([], [], color="0.3", ls="-", label="converged pixel"),
                        Line2D([], [], color="0.3", ls="--", label="diverged neighbour (one pixel "
                               "away)")],
               loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.savefig(path, dpi=dpi)
    return fig


# ---- dimensions ------------------------------------------------------------------------------

def _errbar(ax, x, est, colour, label=None, marker="o"):
    """Point with asymmetric 95% error bar; a grey 'n/a' where there is no estimate."""
    if est and est.get("ok") and est.get("dimension") is not None:
        d, lo, hi = est["dimension"], est["ci_low"], est["ci_high"]
        ax.errorbar([x], [d], yerr=[[d - lo], [hi - d]], fmt=marker, color=colour, ms=7,
                    capsize=4, lw=1.6, label=label)
        return True
    ax.annotate("n/a", (x, 0.02), xycoords=ax.get_xaxis_transform(), ha="center", fontsize=8,
                color=colour)
    if label:
        ax.plot([], [], marker, color=colour, label=label)
    return False


def plot_dimension_bars(group: dict, presets, path, dpi: int = 130, *, key: str = "per_window",
                        ylabel: str = "box-counting dimension (95% interval)"):
    """Dimension per window (or per seed) and pooled, per architecture, with 95% intervals; and
    the difference.

    `group` is one entry of compare.json's "results"; `key` names its per-unit list
    ("per_window" in a box comparison, "per_seed" in a sampled one). Bars show the estimate,
    whiskers the interval; a unit without an estimate says 'n/a'. Right panel: D_A - D_B with its
    95% interval against 0, titled with the verdict.
    """
    units = group["archs"][presets[0]][key]
    if key == "per_window":
        names = [f"window {w['window']}" + (" (preset)" if w["window"] == 0 else "")
                 for w in units] + ["pooled"]
    else:
        names = [f"seed {u['seed']}" for u in units] + ["pooled"]
    fig = _figure((8.8, 4.4))
    gs = fig.add_gridspec(1, 2, width_ratios=[max(2, len(names)) * 1.2, 1.6])
    ax, axd = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    width = 0.36
    tops = []
    for i, p in enumerate(presets):
        arch = group["archs"][p]
        ests = list(arch[key]) + [arch["pooled"]]
        for k, est in enumerate(ests):
            x = k + (i - 0.5) * width
            if est.get("ok"):
                d, lo, hi = est["dimension"], est["ci_low"], est["ci_high"]
                ax.bar(x, d, width * 0.92, color=ARCH_COLOURS[i],
                       alpha=0.95 if k == len(ests) - 1 else 0.6,
                       label=arch["label"] if k == 0 else None)
                ax.errorbar([x], [d], yerr=[[d - lo], [hi - d]], fmt="none", ecolor="black",
                            capsize=3, lw=1.1)
                ax.annotate(f"{d:.3f}", (x, hi), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=7)
                tops.append(hi)
            else:
                ax.bar(x, 0, width * 0.92, color=ARCH_COLOURS[i],
                       label=arch["label"] if k == 0 else None)
                ax.annotate("n/a", (x, 0.02), xycoords=ax.get_xaxis_transform(), ha="center",
                            fontsize=8, color=ARCH_COLOURS[i])
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(ylabel)
    top = max(tops) if tops else 2.0
    ax.set_ylim(0, max(2.05, top + 0.1))
    ax.axhline(1.0, color="0.7", lw=0.8, zorder=0)
    ax.axhline(2.0, color="0.7", lw=0.8, zorder=0)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.25)
    ax.set_title("dimension of the trainability boundary" +
                 (f" (depth {group['depth']})" if group.get("depth") is not None else ""),
                 fontsize=10)

    diff = group["difference"]
    axd.axhline(0.0, color="0.3", lw=1)
    if diff.get("ok"):
        e, lo, hi = diff["estimate"], diff["ci_low"], diff["ci_high"]
        axd.errorbar([0], [e], yerr=[[e - lo], [hi - e]], fmt="D", color="black", capsize=5,
                     ms=7, lw=1.6)
        span = max(abs(lo), abs(hi), 0.05)
        axd.set_ylim(-1.3 * span, 1.3 * span)
        axd.annotate(f"{e:+.3f}\n[{lo:+.3f}, {hi:+.3f}]", (0, hi), xytext=(8, 0),
                     textcoords="offset points", fontsize=7, va="bottom")
    else:
        axd.text(0.5, 0.5, "no estimate", ha="center", va="center", transform=axd.transAxes)
        axd.set_ylim(-0.5, 0.5)
    axd.set_xlim(-1, 1.6)
    axd.set_xticks([])
    axd.set_ylabel("D(A) - D(B)")
    axd.set_title(_wrap(diff.get("verdict", ""), 22), fontsize=9)
    axd.grid(axis="y", alpha=0.25)
    fig.savefig(path, dpi=dpi)
    return fig


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def plot_dimension_vs_depth(results, presets, path, dpi: int = 130):
    """Pooled dimension against depth for both architectures (95% intervals), and D_A - D_B."""
    depths = [r["depth"] for r in results]
    fig = _figure((7.0, 6.0))
    ax, axd = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    step = 0.012 * (max(depths) - min(depths) or 1) * 2
    for i, p in enumerate(presets):
        xs, ds = [], []
        for r, d in zip(results, depths):
            est = r["archs"][p]["pooled"]
            x = d + (i - 0.5) * step
            if _errbar(ax, x, est, ARCH_COLOURS[i], label=None):
                xs.append(x)
                ds.append(est["dimension"])
        if len(xs) > 1:
            ax.plot(xs, ds, "-", color=ARCH_COLOURS[i], lw=1, alpha=0.6)
        ax.plot([], [], "o-", color=ARCH_COLOURS[i], label=results[0]["archs"][p]["label"]
                .split(" (")[0])
    ax.set_ylabel("pooled dimension (95% interval)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.25)
    ax.set_title("boundary dimension against depth", fontsize=10)
    axd.axhline(0.0, color="0.3", lw=1)
    for r, d in zip(results, depths):
        diff = r["difference"]
        if diff.get("ok"):
            e, lo, hi = diff["estimate"], diff["ci_low"], diff["ci_high"]
            colour = "black" if diff["verdict"] != "no difference detectable at this resolution" \
                else "0.55"
            axd.errorbar([d], [e], yerr=[[e - lo], [hi - e]], fmt="D", color=colour, capsize=4)
        else:
            axd.annotate("n/a", (d, 0.5), xycoords=axd.get_xaxis_transform(), ha="center",
                         fontsize=8, color="0.4")
    axd.set_ylabel("D(A) - D(B)")
    axd.set_xlabel("depth")
    axd.set_xticks(depths, [str(d) for d in depths])
    axd.grid(alpha=0.25)
    fig.savefig(path, dpi=dpi)
    return fig


def plot_sampled_fits(estimates, labels, path, dpi: int = 130):
    """Both architectures' sampling fits on one axes: f(eps) (uncertainty; stages rescaled onto
    stage 0) or sign changes per lag (transect), the fitted points filled, the fit as a line.

    `estimates`: per architecture a `SamplingEstimate.to_dict()` (or None: left out).
    """
    fig = _figure((6.6, 4.6))
    ax = fig.subplots()
    method = next((e.get("method") for e in estimates if e), "uncertainty")
    shown = False
    for i, est in enumerate(estimates):
        if not est or not est.get("scales"):
            continue
        sc, val = np.asarray(est["scales"], float), np.asarray(est["values"], float)
        mask = np.asarray(est.get("fit_mask") or [False] * sc.size, bool)
        ok = np.isfinite(val) & (val > 0)
        colour = ARCH_COLOURS[i % 2]
        ax.plot(sc[ok & ~mask], val[ok & ~mask], "o", mfc="none", mec=colour, ms=4, alpha=0.6)
        d = est.get("dimension")
        text = (f"{d:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}]" if est.get("ok")
                else f"no dimension: {est.get('reason', '')}")
        ax.plot(sc[ok & mask], val[ok & mask], "o", color=colour, ms=4,
                label=f"{labels[i]}: D = {_wrap(text, 60)}")
        if est.get("ok") and (ok & mask).sum() >= 2:
            slope = (2 - d) if method == "uncertainty" else -(d - 1)
            xs = sc[ok & mask]
            mid = np.exp(np.mean(np.log(xs)))
            amp = np.exp(np.mean(np.log(val[ok & mask]) - slope * np.log(xs / mid)))
            line = np.array([xs.min(), xs.max()])
            ax.plot(line, amp * (line / mid) ** slope, "-", color=colour, lw=1.5)
        shown = True
    if shown:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no estimate to show", ha="center", va="center",
                transform=ax.transAxes)
    if method == "uncertainty":
        ax.set_xlabel("eps (window units)")
        ax.set_ylabel("f(eps): fraction of pairs that differ")
        ax.set_title("uncertainty exponent: f ~ eps^(2 - D) (seed 0; filled: in the fit range)",
                     fontsize=9)
    else:
        ax.set_xlabel("lag (window units)")
        ax.set_ylabel("sign changes at this lag (differing pairs / lag)")
        ax.set_title("transect: changes ~ lag^-(D - 1) (seed 0; filled: in the fit range)",
                     fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    fig.savefig(path, dpi=dpi)
    return fig


def plot_seed_dimensions(group: dict, presets, path, dpi: int = 130):
    """Dimension per seed and pooled (95% intervals) and the paired difference."""
    method = next((u.get("method") for p in presets for u in group["archs"][p]["per_seed"]
                   if u.get("method")), "sampling")
    return plot_dimension_bars(group, presets, path, dpi, key="per_seed",
                               ylabel=f"{method} dimension (95% interval)")


# The three answers of an uncertainty comparison (studies.quantities): the row's title, the
# y label of the pooled values and of the paired difference, and whether the axis is log10.
QUANTITY_ROWS = (
    ("dimension", "curve dimension D", "D (95% interval)", "D(A) - D(B)"),
    ("chaos_fraction", "chaos fraction F (deepest stage)", "F (95% interval)", "F(A) - F(B)"),
    ("eps_star", "band scale eps* (window units)", "log10 eps* (95% interval)",
     "log10 eps*(A) / eps*(B)"),
)


def _quantity_of(group: dict, key: str) -> tuple[dict, dict]:
    """(preset -> pooled, paired difference) of one quantity of a group (compare.json's)."""
    if key == "dimension":
        return {p: a["pooled"] for p, a in group["archs"].items()}, group["difference"]
    q = group["quantities"][key]
    return q["pooled"], q["difference"]


def plot_quantities(results, presets, path, dpi: int = 130):
    """Per depth, the pooled D, chaos fraction and log10 eps* of both architectures (95%
    intervals, left) and their paired differences by seed (right; black where the interval
    excludes 0, grey otherwise). `results`: compare.json's groups with ``quantities``."""
    depths = [r["depth"] if r["depth"] is not None else 0 for r in results]
    fig = _figure((9.0, 8.0))
    axes = fig.subplots(3, 2, sharex=True, width_ratios=[1.6, 1])
    step = 0.04 * (max(depths) - min(depths) or 1)
    for row, (key, title, ylabel, dlabel) in enumerate(QUANTITY_ROWS):
        ax, axd = axes[row]
        for r, d in zip(results, depths):
            pooled, diff = _quantity_of(r, key)
            for i, p in enumerate(presets):
                _errbar(ax, d + (i - 0.5) * step, pooled.get(p), ARCH_COLOURS[i])
            if diff.get("ok"):
                e, lo, hi = diff["estimate"], diff["ci_low"], diff["ci_high"]
                found = diff["verdict"] in ("smaller", "larger")
                axd.errorbar([d], [e], yerr=[[e - lo], [hi - e]], fmt="D", capsize=4,
                             color="black" if found else "0.55")
            else:
                axd.annotate("n/a", (d, 0.5), xycoords=axd.get_xaxis_transform(), ha="center",
                             fontsize=8, color="0.4")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        axd.axhline(0.0, color="0.3", lw=1)
        axd.set_ylabel(dlabel, fontsize=9)
        for a in (ax, axd):
            a.grid(alpha=0.25)
    for i, p in enumerate(presets):
        axes[0][0].plot([], [], "o", color=ARCH_COLOURS[i],
                        label=results[0]["archs"][p]["label"].split(" (")[0])
    axes[0][0].legend(fontsize=8)
    for a in axes[-1]:
        a.set_xlabel("depth" if results[0]["depth"] is not None else "")
        a.set_xticks(depths, [str(d) if r["depth"] is not None else "" for r, d in
                              zip(results, depths)])
    fig.savefig(path, dpi=dpi)
    return fig
