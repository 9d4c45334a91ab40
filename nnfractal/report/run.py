"""The report of a run folder (``nnfractal run``, a zoom frame, a comparison grid): map(s), epoch
video, boundary, box counting, dimension during training, the dimension table (every recorded
metric side by side when there are several), configuration, hardware and timing.
"""
from __future__ import annotations

from pathlib import Path

from nnfractal.estimators.resolution import min_resolution_for_dimension
from nnfractal.models import arch_label
from nnfractal.storage.run_folder import BOUNDARY_FILE, BOXCOUNT_FILE, DIMENSION_PER_EPOCH_FILE, SUMMARY_FILE
from nnfractal.training.grid import axis_labels

from .chaos_section import chaos_section
from .html import card, esc, fmt_est, fmt_num, fmt_seconds, img, page, section, short_reason, table, video
from .parts import config_tables, hardware_table, read_config, read_json


def run_title_bits(cfg) -> tuple[str, str]:
    if cfg is None:
        return "run", ""
    xl, yl = (s.replace("log10 ", "") for s in axis_labels(cfg))
    steps = f"{cfg.steps} steps" if cfg.steps else f"{cfg.num_epochs} epochs"
    return arch_label(cfg), (f"{esc(arch_label(cfg))} &middot; {cfg.resolution}&times;{cfg.resolution} "
                             f"grid of {esc(yl)} &times; {esc(xl)} &middot; {steps}, "
                             f"{esc(cfg.optimizer)}, {esc(cfg.dataset)}")


def run_body(folder: Path, *, heading_level: int = 2, compact: bool = False) -> tuple[str, list]:
    """Sections of a run report (also used for zoom frames) and their table of contents."""
    cfg = read_config(folder)
    fractal = read_json(folder / "fractal.json")
    summary = read_json(folder / SUMMARY_FILE)
    final = fractal.get("final") or {}
    metric = fractal.get("metric") or (cfg.metric if cfg else "train_loss")
    metrics = fractal.get("metrics") or {}
    others = [m for m in _ordered(metrics) if m != metric]
    toc, parts = [("summary", "Summary"), ("maps", "Maps")], []
    parts.append(section("Summary", _summary_cards(final, summary, metric), "summary"))
    parts.append(_maps_section(folder, cfg, metric, metrics, summary))
    adaptive = adaptive_section(folder, summary)
    if adaptive:
        parts.append(adaptive)
        toc.append(("adaptive", "Adaptive"))
    chaos = chaos_section(folder, summary)            # report/chaos_section.py: --chaos runs
    if chaos:
        parts.append(chaos)
        toc.append(("chaos", "Chaos"))
    fd_fig = img(folder / DIMENSION_PER_EPOCH_FILE, "dimension per epoch",
                 "Dimension of the boundary after each epoch, 95% intervals; n/a where the "
                 "boundary is too short.")
    if others:
        vid = video(folder / "epochs.mp4", f"The <code>{esc(metric)}</code> map after each epoch "
                    "(H.264 video).")
        if vid:
            parts.append(section("Training, epoch by epoch",
                                 f'<div class="grid2">{vid}{fd_fig}</div>', "epochs"))
            toc.append(("epochs", "Epochs"))
            fd_fig = ""
    parts.append(_dimension_section(folder, fractal, metric, others, fd_fig))
    toc.append(("dimension", "Dimension"))
    per_epoch = fractal.get("per_epoch") or []
    if per_epoch and not compact:
        rows = [[fmt_num(e.get("epoch")), fmt_est(e)] for e in per_epoch]
        parts.append(f'<details><summary>Dimension after each epoch ({len(rows)} rows)</summary>'
                     f'{table(["epoch", "dimension [95% interval]"], rows)}</details>')
    if cfg is not None:
        parts.append(section("Configuration", config_tables(cfg.to_dict()), "config",
                             f"Exactly what ran (<code>config.toml</code>), preset "
                             f"<code>{esc(cfg.preset)}</code>."))
        toc.append(("config", "Configuration"))
    if summary:
        medians = summary.get("final_metrics_median") or {}
        extra = [(f"median final {esc(k)}", fmt_num(v, 4)) for k, v in medians.items()]
        parts.append(section("Hardware and timing", hardware_table(summary, extra), "hardware"))
        toc.append(("hardware", "Hardware"))
    return "".join(parts), toc


def _summary_cards(final: dict, summary: dict, metric: str) -> str:
    """The run's numbers at a glance: dimension, converged fraction, size, time, device."""
    cards = [card("dimension (box counting)", fmt_est(final) if final.get("ok") else
                  f'<span class="na small">{esc(short_reason(final)) if final else "&ndash;"}</span>',
                  "95% interval in brackets"),
             card("fraction converged", f"{summary['fraction_converged']:.1%}"
                  if summary.get("fraction_converged") is not None else "&ndash;", esc(metric)),
             card("boundary pixels", fmt_num(final.get("n_boundary_pixels"))),
             card("steps", fmt_num(summary.get("steps")),
                  f"{fmt_num(summary.get('epochs'))} epochs" if summary.get("epochs") else ""),
             card("training time", fmt_seconds(summary.get("wall_time_s")),
                  f"{fmt_num(summary.get('model_steps_per_s'), 1)} model-steps/s"
                  if summary.get("model_steps_per_s") else ""),
             card("device", esc(summary.get("device", "&ndash;")))]
    if (summary.get("adaptive") or {}).get("fraction_trained") is not None:
        cards.append(card("pixels trained", f"{summary['adaptive']['fraction_trained']:.1%}",
                          "adaptive refinement; the rest filled"))
    notes = "".join(f'<div class="verdict none"><b>Note:</b> {esc(n)}</div>'
                    for n in summary.get("notes") or [])
    return f'<div class="cards">{"".join(cards)}</div>{notes}'


def _maps_section(folder: Path, cfg, metric: str, metrics: dict, summary: dict) -> str:
    """The config's metric, or every recorded metric side by side (losses above accuracies)."""
    from nnfractal.render.maps import outcome_words
    others = [m for m in _ordered(metrics) if m != metric]
    by_metric_conv = summary.get("fraction_converged_by_metric") or {}
    if others:
        map_figs = []
        for m in _ordered(metrics):
            path = folder / f"map_{m}.png"
            if not path.exists() and m == metric:
                path = folder / "map.png"
            conv = by_metric_conv.get(m)
            map_figs.append(img(path, f"map of {m}",
                                f"<code>{esc(m)}</code>{' (the run&rsquo;s metric)' if m == metric else ''}: "
                                f"dimension {fmt_est((metrics[m] or {}).get('final'))}"
                                + (f", {conv:.1%} converged" if conv is not None else "")))
        intro = ("Each pixel is one network trained with the hyperparameters of its position; "
                 "blue converged, red diverged (accuracy maps: blue above the accuracy threshold, "
                 "red below it; the paper's rank colour stretch). Every recorded metric is shown, "
                 "training and held-out side by side.")
    else:
        blue, red = outcome_words(metric, cfg.acc_threshold if cfg else 0.9)
        map_figs = [img(folder / "map.png", f"convergence map ({metric})",
                        f"Convergence map of <code>{esc(metric)}</code>: blue {esc(blue)}, red "
                        f"{esc(red)} (the paper's rank colour stretch)."),
                    video(folder / "epochs.mp4", "The map after each epoch (H.264 video).")]
        intro = "Each pixel is one network trained with the hyperparameters of its position."
    return section("Convergence map" + ("s" if others else ""),
                   f'<div class="grid2">{"".join(map_figs)}</div>', "maps", intro)


def _dimension_section(folder: Path, fractal: dict, metric: str, others: list[str],
                       fd_fig: str) -> str:
    """The boundary, box counting and every estimator's dimension in one table."""
    final = fractal.get("final") or {}
    paper = fractal.get("paper_method") or {}
    metrics = fractal.get("metrics") or {}
    bfigs = [img(folder / BOUNDARY_FILE, "boundary", "Boundary pixels: 2&times;2 neighbourhoods "
                 "that hold both outcomes."),
             img(folder / BOXCOUNT_FILE, "box counting", "Box counts with the fitted scaling range "
                 "(left) and local slopes with the estimate and its 95% interval (right)."), fd_fig]
    for m in others:
        bfigs.append(img(folder / f"boundary_{m}.png", f"boundary of {m}",
                         f"Boundary of <code>{esc(m)}</code>."))
    rows = [[f"<code>{esc(metric)}</code> (map)", "box counting, least squares", fmt_est(final),
             fmt_num(final.get("n_boundary_pixels")), esc(_fit_range(final))],
            [f"<code>{esc(metric)}</code> (map)", "paper: median local slope", fmt_est(paper),
             fmt_num(paper.get("n_boundary_pixels")), "all sizes &ge; 10 px"]]
    for m in others:
        est = (metrics[m] or {}).get("final") or {}
        rows.append([f"<code>{esc(m)}</code>", "box counting, least squares", fmt_est(est),
                     fmt_num(est.get("n_boundary_pixels")), esc(_fit_range(est))])
    dim_table = table(["metric", "estimator", "dimension [95% interval]", "boundary px",
                       "fit range"], rows)
    return section("Boundary and its dimension",
                   dim_table + f'<div class="grid2">{"".join(bfigs)}</div>', "dimension",
                   "A box-counting dimension needs a scaling range of at least a factor 3 "
                   "between 4 px and 1/8 of the boundary's extent, i.e. at least "
                   f"{min_resolution_for_dimension()} px per side (more when the boundary "
                   "spans less of the map); smaller maps say n/a instead of a number.")


def adaptive_line(info: dict) -> str:
    """One sentence on an adaptive run: how many pixels were trained, how the rest were filled."""
    return (f"Adaptive refinement: {fmt_num(info.get('n_trained'))} of "
            f"{fmt_num(info.get('n_pixels'))} pixels trained ({info['fraction_trained']:.1%}; "
            f"coarse lattice stride {fmt_num(info.get('coarse_stride'))}, guard band "
            f"{fmt_num(info.get('guard'))} px), the other {1 - info['fraction_trained']:.1%} "
            f"filled with the curves of their nearest trained pixel; "
            f"{info['work_saving']:.1f}&times; fewer model-steps than the full grid.")


def adaptive_section(folder: Path, summary: dict) -> str:
    """The adaptive-refinement section of a run report ('' for a full grid)."""
    info = summary.get("adaptive")
    if not info or not info.get("n_pixels"):
        return ""
    rows = [[fmt_num(lv.get("stride")), fmt_num(lv.get("mixed")), fmt_num(lv.get("flagged")),
             fmt_num(lv.get("cells")), fmt_num(lv.get("new_points")),
             fmt_num(lv.get("follow_points", 0)), fmt_num(lv.get("follow_rounds", 0))]
            for lv in info.get("levels") or []]
    levels = table(["stride", "cells with mixed corners", "refined (with guard band)",
                    "cells", "points trained", "boundary following: points", "rounds"],
                   rows) if rows else ""
    fig = img(folder / "trained.png", "trained and filled pixels",
              "Left: the map, filled pixels dimmed. Right: the level (lattice stride) that trained "
              "each pixel; white pixels were filled, not trained.")
    return section("Adaptive refinement", f"<p>{adaptive_line(info)}</p>{fig}{levels}", "adaptive",
                   "The boundary and its dimension come from trained pixels; inside the regions "
                   "filled pixels repeat a trained neighbour's curve, so the map shows flat patches "
                   "there rather than invented texture.")


METRIC_ORDER = ("train_loss", "test_loss", "train_acc", "test_acc")


def _ordered(metrics) -> list[str]:
    """Recorded metrics with losses first and each training metric next to its held-out one."""
    known = [m for m in METRIC_ORDER if m in metrics]
    return known + sorted(m for m in metrics if m not in METRIC_ORDER)


def _fit_range(est: dict) -> str:
    fs = est.get("fit_sizes") or []
    return f"{fs[0]}-{fs[-1]} px ({len(fs)} sizes)" if fs else "-"


def run_report(folder: Path, display=None) -> str:
    cfg = read_config(folder)
    _, subtitle = run_title_bits(cfg)
    body, toc = run_body(folder)
    return page(cfg.preset if cfg else folder.name, "run report", subtitle, body, toc,
                display or folder)

