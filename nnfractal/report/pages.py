"""One self-contained HTML report for a run, zoom or comparison folder: ``nnfractal report DIR``.

``write_report(folder) -> Path`` writes ``folder/report.html`` and returns its path. The kind of
folder is recognised by its contents:

* ``compare.json`` -- a comparison (``nnfractal compare``): verdict, dimension table per window and
  pooled, difference with its interval, every comparison figure, both architectures' epoch
  videos, every grid, configuration, hardware and timing;
* ``zoom.json`` -- a zoom sequence (``nnfractal zoom``): pooled dimensions, dimension per frame,
  the zoom video, every frame's map and numbers;
* ``config.toml`` + ``store.zarr`` -- a run (``nnfractal run``): map(s), epoch video, boundary,
  box counting, dimension during training, the dimension table (every recorded metric side by
  side when there are several), configuration, hardware and timing.

The page needs nothing but itself: images are PNG data URIs, videos H.264 MP4 data URIs in
``<video>``, the style sheet is inline, there is no script and no network request (the favicon is
an empty data URI too), so it can be mailed, archived or opened offline. It only reads the folder.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
from datetime import datetime
from pathlib import Path

from nnfractal import __version__
from nnfractal.estimators.resolution import min_resolution_for_dimension
from nnfractal.estimators.stats import NO_DIFFERENCE, min_detectable
from nnfractal.models import arch_label
from nnfractal.storage import run_folder
from nnfractal.storage.folders import write_json_atomic, write_text_atomic
from nnfractal.storage.run_folder import REPORT_FILE, RunFolder
from nnfractal.studies import compare
from nnfractal.training.grid import axis_labels

from .chaos_section import chaos_section

# run, backends and render are imported in the functions that use them: they load torch and
# matplotlib (3.7 s and 1.5 s measured), and `nnfractal` imports this module at start, before
# its allocator restart, also for commands that need neither (presets, report, --help).

REPORT_NAME = REPORT_FILE
MAX_VIDEO_BYTES = 40 * 2**20     # larger videos are linked, not embedded
MAX_GALLERY = 24                 # zoom frames shown as maps (evenly spaced beyond that)
MIN_RESOLUTION = 114             # about the smallest map with a box-counting scaling range


class ReportError(Exception):
    """A folder that is not a run, zoom or comparison. One line naming the field."""


# ---- small HTML helpers ------------------------------------------------------------------------

def esc(v) -> str:
    return html.escape(str(v), quote=True)


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def img(path: Path, alt: str, caption: str = "", cls: str = "") -> str:
    path = Path(path)
    if not path.exists():
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="{cls}"><img src="{_data_uri(path, "image/png")}" alt="{esc(alt)}" '
            f'loading="eager">{cap}</figure>')


def video(path: Path, caption: str = "", cls: str = "") -> str:
    path = Path(path)
    if not path.exists():
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    if path.stat().st_size > MAX_VIDEO_BYTES:
        return (f'<figure class="{cls}"><p class="muted">{esc(path.name)} is '
                f'{path.stat().st_size / 2**20:.0f} MB, too large to embed; it is in the folder '
                f'next to this report.</p>{cap}</figure>')
    return (f'<figure class="{cls}"><video controls loop muted playsinline preload="auto" '
            f'src="{_data_uri(path, "video/mp4")}">{esc(path.name)} (H.264) cannot be played by '
            f'this browser.</video>{cap}</figure>')


def fmt_num(v, digits: int = 3) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}".replace(",", "&thinsp;")
    if isinstance(v, float):
        if not math.isfinite(v):
            return "&ndash;"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return esc(v)


def fmt_est(est: dict | None, *, counts: bool = False) -> str:
    """'1.234 <span>[1.100, 1.350]</span>' or the reason there is no estimate."""
    if not est:
        return '<span class="muted">&ndash;</span>'
    if not est.get("ok") or est.get("dimension") is None:
        return f'<span class="na" title="{esc(est.get("reason", ""))}">{esc(_short_reason(est))}</span>'
    n = ""
    if counts and "n_ok" in est:
        n = f' <span class="muted small">({est["n_ok"]} of {est["n_units"]} grids)</span>'
    return (f'<span class="num">{est["dimension"]:.3f}</span> <span class="ci">[{est["ci_low"]:.3f},'
            f' {est["ci_high"]:.3f}]</span>{n}')


def _short_reason(est: dict) -> str:
    r = est.get("reason") or "no estimate"
    if "too short" in r:
        return "n/a: boundary too short at this resolution"
    if "no boundary" in r:
        return "n/a: no boundary"
    return "n/a: " + r


def fmt_seconds(s) -> str:
    if s is None:
        return "&ndash;"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<div class="tablewrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def kv_table(pairs: list[tuple[str, str]], cls: str = "kv") -> str:
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<div class="tablewrap"><table class="{cls}"><tbody>{rows}</tbody></table></div>'


def card(label: str, value: str, note: str = "") -> str:
    n = f'<div class="note">{note}</div>' if note else ""
    return f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>{n}</div>'


def section(title: str, body: str, sid: str = "", intro: str = "") -> str:
    if not body:
        return ""
    i = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{i}{body}</section>'


def _json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _config(folder: Path):
    try:
        return RunFolder(folder).read_config()
    except Exception:
        return None


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if abs(v) < 1e-9:
            return "0"
        return f"{v:.4g}"
    return esc(v)


CONFIG_GROUPS = (
    ("model", ("model", "depth", "skip", "c_hidden", "nonlinearity", "width", "target_dim")),
    ("data", ("dataset", "train_size", "batch_size", "minibatch_replacement", "data_seed",
              "test_size", "eval_every", "data_file", "data_sha256")),
    ("training", ("num_epochs", "steps", "optimizer", "momentum", "phase_space", "offset_target",
                  "offset_mode", "base_lr", "precision", "device", "tile_batch", "chunk_workers",
                  "early_exit", "seed", "init_file", "init_sha256")),
    ("grid and measure", ("mnmx", "axis_scale", "resolution", "adaptive", "adaptive_coarse",
                          "adaptive_guard", "measure", "readout", "metric", "acc_threshold")),
)


def config_tables(cfg_dict: dict, highlight: dict | None = None) -> str:
    """The config in four labelled columns; fields in `highlight` show both values."""
    highlight = highlight or {}
    seen, blocks = set(), []
    for title, keys in CONFIG_GROUPS:
        pairs = []
        for k in keys:
            if k not in cfg_dict:
                continue
            seen.add(k)
            if k in highlight:
                a, b = highlight[k]
                pairs.append((f'<span class="diff">{esc(k)}</span>',
                              f'<span class="diff">{_value(a)} / {_value(b)}</span>'))
            else:
                pairs.append((esc(k), _value(cfg_dict[k])))
        blocks.append(f'<div><h3>{esc(title)}</h3>{kv_table(pairs)}</div>')
    rest = [(esc(k), _value(v)) for k, v in cfg_dict.items()
            if k not in seen and k not in ("preset",)]
    if rest:
        blocks.append(f'<div><h3>display and other</h3>{kv_table(rest)}</div>')
    return f'<div class="configgrid">{"".join(blocks)}</div>'


def hardware_table(summary: dict, extra: list[tuple[str, str]] | None = None) -> str:
    versions = summary.get("versions") or {}
    pairs = [("device", esc(summary.get("device", "&ndash;"))),
             ("CPU", esc(summary.get("cpu", "&ndash;"))),
             ("torch threads", fmt_num(summary.get("threads"))),
             ("chunks side by side x threads each",
              " x ".join(map(str, summary["chunk_threads"])) if summary.get("chunk_threads") else "&ndash;"),
             ("memory allocator", esc(summary.get("allocator") or "&ndash;")),
             ("training wall time", fmt_seconds(summary.get("wall_time_s"))),
             ("model-steps", fmt_num(summary.get("model_steps"))),
             ("model-steps/s", fmt_num(summary.get("model_steps_per_s"), 1)),
             ("data", esc(summary.get("data_source", "&ndash;")))]
    pairs += extra or []
    if versions:
        pairs.append(("versions", ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())))
    return kv_table(pairs)


# ---- page --------------------------------------------------------------------------------------

CSS = """
:root{--text:#1d2330;--muted:#5e6776;--line:#e3e6ec;--soft:#f6f7f9;--accent:#0b5cad;
--a:#0072B2;--b:#D55E00;--good:#1f7a4d;--goodbg:#eaf6ef;--warn:#8a5a00;--warnbg:#fff6e0;}
*{box-sizing:border-box}
html{font-size:16px}
body{margin:0;color:var(--text);background:#fff;
font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
line-height:1.55;-webkit-font-smoothing:antialiased}
main{max-width:1180px;margin:0 auto;padding:2.2rem 1.5rem 4rem}
header{border-bottom:1px solid var(--line);padding-bottom:1.2rem;margin-bottom:1.6rem}
.kind{text-transform:uppercase;letter-spacing:.08em;font-size:.75rem;color:var(--muted);margin:0}
h1{font-size:1.9rem;line-height:1.2;margin:.3rem 0 .4rem;font-weight:650}
h2{font-size:1.3rem;margin:2.6rem 0 .8rem;padding-bottom:.3rem;border-bottom:1px solid var(--line);
font-weight:620}
h3{font-size:.95rem;margin:1rem 0 .4rem;color:var(--muted);font-weight:600}
p{margin:.4rem 0 .8rem;max-width:52rem}
.sub{color:var(--muted);margin:0}
.intro{color:var(--muted)}
.muted{color:var(--muted)}.small{font-size:.82rem}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
nav.toc{font-size:.85rem;color:var(--muted);margin-top:.8rem}
nav.toc a{margin-right:1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.8rem;margin:1rem 0}
.card{border:1px solid var(--line);border-radius:10px;padding:.75rem .9rem;background:var(--soft)}
.card .label{font-size:.75rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.card .value{font-size:1.25rem;font-weight:600;margin-top:.15rem;font-variant-numeric:tabular-nums}
.card .note{font-size:.8rem;color:var(--muted)}
.verdict{border-radius:12px;padding:1.1rem 1.3rem;margin:1.2rem 0;border:1px solid}
.verdict.found{background:var(--goodbg);border-color:#b9dfc9}
.verdict.none{background:var(--warnbg);border-color:#f0d9a0}
.verdict .word{font-size:1.35rem;font-weight:650}
.verdict.found .word{color:var(--good)}.verdict.none .word{color:var(--warn)}
.verdict p{margin:.35rem 0 0}
.tablewrap{overflow-x:auto;margin:.6rem 0 1rem}
table{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums;width:100%}
th,td{padding:.38rem .65rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);white-space:nowrap}
tbody tr:nth-child(even) td{background:#fbfbfc}
table.kv{max-width:760px}
table.kv th{font-weight:500;color:var(--muted);width:38%;white-space:nowrap}
table.dims td:first-child{white-space:nowrap;color:var(--muted)}
figure.medium{max-width:900px}figure.half{max-width:580px}
table.kv td{word-break:break-word}
.num{font-weight:600}.ci{color:var(--muted)}.na{color:var(--muted);font-style:italic}
.diff{color:var(--b);font-weight:600}
.arch-a{color:var(--a);font-weight:600}.arch-b{color:var(--b);font-weight:600}
figure{margin:0 0 1.2rem}
figure img,figure video{display:block;max-width:100%;height:auto;border:1px solid var(--line);
border-radius:6px;background:#fff}
figcaption{font-size:.83rem;color:var(--muted);margin-top:.4rem;max-width:52rem}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:1.2rem 1.6rem;
align-items:start}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:1rem 1.2rem}
.configgrid{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:0 1.6rem}
.notes li{margin:.2rem 0;color:var(--muted)}
details{margin:.6rem 0 1rem}summary{cursor:pointer;color:var(--accent)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86em;
background:var(--soft);padding:.05rem .3rem;border-radius:4px}
footer{margin-top:3rem;padding-top:1rem;border-top:1px solid var(--line);font-size:.8rem;
color:var(--muted)}
@media print{main{max-width:none;padding:0}h2{break-after:avoid}figure,table{break-inside:avoid}
video{display:none}}
"""


def page(title: str, kind: str, subtitle: str, body: str, toc: list[tuple[str, str]],
         folder: Path) -> str:
    """The whole document; `folder` is the path printed in the footer."""
    folder = Path(folder)
    nav = ""
    if toc:
        nav = '<nav class="toc">' + "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in toc) + "</nav>"
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)} &middot; nnfractal</title>"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<style>{CSS}</style></head><body><main>"
        f"<header><p class=\"kind\">nnfractal &middot; {esc(kind)}</p><h1>{esc(title)}</h1>"
        f"<p class=\"sub\">{subtitle}</p>{nav}</header>{body}"
        f"<footer>Written by nnfractal {esc(__version__)} on {when} from "
        f"<code>{esc(folder.resolve() if folder.exists() else folder)}</code>. "
        "Self-contained: every picture and video is embedded; "
        "nothing is loaded from the network.</footer>"
        "</main></body></html>\n")


# ---- run report --------------------------------------------------------------------------------

def _run_title_bits(cfg) -> tuple[str, str]:
    if cfg is None:
        return "run", ""
    xl, yl = (s.replace("log10 ", "") for s in axis_labels(cfg))
    steps = f"{cfg.steps} steps" if cfg.steps else f"{cfg.num_epochs} epochs"
    return arch_label(cfg), (f"{esc(arch_label(cfg))} &middot; {cfg.resolution}&times;{cfg.resolution} "
                             f"grid of {esc(yl)} &times; {esc(xl)} &middot; {steps}, "
                             f"{esc(cfg.optimizer)}, {esc(cfg.dataset)}")


def run_body(folder: Path, *, heading_level: int = 2, compact: bool = False) -> tuple[str, list]:
    """Sections of a run report (also used for zoom frames)."""
    from nnfractal.render.maps import outcome_words
    cfg = _config(folder)
    fractal = _json(folder / "fractal.json")
    summary = _json(folder / "summary.json")
    final = fractal.get("final") or {}
    paper = fractal.get("paper_method") or {}
    metric = fractal.get("metric") or (cfg.metric if cfg else "train_loss")
    metrics = fractal.get("metrics") or {}
    toc, parts = [], []

    cards = [card("dimension (box counting)", fmt_est(final) if final.get("ok") else
                  f'<span class="na small">{esc(_short_reason(final)) if final else "&ndash;"}</span>',
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
    parts.append(section("Summary", f'<div class="cards">{"".join(cards)}</div>{notes}', "summary"))
    toc.append(("summary", "Summary"))

    # maps: the config's metric, or every recorded metric side by side (losses above accuracies)
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
    parts.append(section("Convergence map" + ("s" if others else ""),
                         f'<div class="grid2">{"".join(map_figs)}</div>', "maps", intro))
    toc.append(("maps", "Maps"))
    adaptive = adaptive_section(folder, summary)
    if adaptive:
        parts.append(adaptive)
        toc.append(("adaptive", "Adaptive"))
    chaos = chaos_section(folder, summary)            # report/chaos_section.py: --chaos runs
    if chaos:
        parts.append(chaos)
        toc.append(("chaos", "Chaos"))
    fd_fig = img(folder / "fd_per_epoch.png", "dimension per epoch",
                 "Dimension of the boundary after each epoch, 95% intervals; n/a where the "
                 "boundary is too short.")

    if others:
        vid = video(folder / "epochs.mp4", f"The <code>{esc(metric)}</code> map after each epoch "
                    "(H.264 video).")
        if vid:
            parts.append(section("Training, epoch by epoch", f'<div class="grid2">{vid}{fd_fig}</div>',
                                 "epochs"))
            toc.append(("epochs", "Epochs"))
            fd_fig = ""

    bfigs = [img(folder / "boundary.png", "boundary", "Boundary pixels: 2&times;2 neighbourhoods "
                 "that hold both outcomes."),
             img(folder / "boxcount.png", "box counting", "Box counts with the fitted scaling range "
                 "(left) and local slopes with the estimate and its 95% interval (right).")]
    bfigs.append(fd_fig)
    for m in others:
        bfigs.append(img(folder / f"boundary_{m}.png", f"boundary of {m}", f"Boundary of <code>{esc(m)}</code>."))
    rows = [[f"<code>{esc(metric)}</code> (map)", "box counting, least squares", fmt_est(final),
             fmt_num(final.get("n_boundary_pixels")),
             esc(_fit_range(final))],
            [f"<code>{esc(metric)}</code> (map)", "paper: median local slope", fmt_est(paper),
             fmt_num(paper.get("n_boundary_pixels")), "all sizes &ge; 10 px"]]
    for m in others:
        est = (metrics[m] or {}).get("final") or {}
        rows.append([f"<code>{esc(m)}</code>", "box counting, least squares", fmt_est(est),
                     fmt_num(est.get("n_boundary_pixels")), esc(_fit_range(est))])
    dim_table = table(["metric", "estimator", "dimension [95% interval]", "boundary px",
                       "fit range"], rows)
    parts.append(section("Boundary and its dimension",
                         dim_table + f'<div class="grid2">{"".join(bfigs)}</div>', "dimension",
                         "A box-counting dimension needs a scaling range of at least a factor 3 "
                         "between 4 px and 1/8 of the boundary's extent, i.e. at least "
                         f"{min_resolution_for_dimension()} px per side (more when the boundary "
                         "spans less of the map); smaller maps say n/a instead of a number."))
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
    cfg = _config(folder)
    _, subtitle = _run_title_bits(cfg)
    body, toc = run_body(folder)
    return page(cfg.preset if cfg else folder.name, "run report", subtitle, body, toc,
                display or folder)


# ---- zoom report -------------------------------------------------------------------------------

def zoom_report(folder: Path, display=None) -> str:
    info = _json(folder / "zoom.json")
    frames = info.get("frames") or []
    cfg = _config(folder / frames[0]["dir"]) if frames else None
    pooled = info.get("pooled") or {}
    pooled_paper = info.get("pooled_paper") or {}
    centre = info.get("center") or {}
    toc, parts = [], []
    units = info.get("axis_units", "")
    subtitle = (f"{esc(_run_title_bits(cfg)[0]) if cfg else ''} &middot; {len(frames)} frames of "
                f"{fmt_num(info.get('resolution'))}&times;{fmt_num(info.get('resolution'))}, "
                f"&times;{_value(info.get('factor'))} per frame, "
                f"{fmt_num(info.get('depth_reached'), 2)} decades, centre x = "
                f"{fmt_num(centre.get('x'), 4)}, y = {fmt_num(centre.get('y'), 4)} ({esc(units)}, "
                f"{esc(centre.get('source', ''))})")
    cards = [card("pooled dimension", fmt_est(pooled) if pooled.get("ok") else
                  f'<span class="na small">{esc(_short_reason(pooled))}</span>',
                  "inverse-variance weighted over frames"),
             card("paper's estimator, pooled", fmt_est(pooled_paper) if pooled_paper.get("ok") else
                  f'<span class="na small">{esc(_short_reason(pooled_paper))}</span>',
                  "median local slope over all frames"),
             card("frames", fmt_num(len(frames)), f"of {fmt_num(info.get('n_frames_requested'))} requested"),
             card("training and frames", fmt_seconds(info.get("training_and_frames_s")))]
    summary = _json(folder / frames[0]["dir"] / "summary.json") if frames else {}
    notes = "".join(f'<div class="verdict none"><b>Note:</b> {esc(n)}</div>'
                    for n in summary.get("notes") or [])
    parts.append(section("Summary", f'<div class="cards">{"".join(cards)}</div>{notes}', "summary"))
    toc.append(("summary", "Summary"))
    limit = (info.get("float_limit") or {}).get("message")
    if limit:
        parts.append(f'<p class="muted">{esc(limit)}</p>')
    figs = video(folder / "zoom.mp4", "Zoom through the frames (H.264).") + \
        img(folder / "dimension_per_frame.png", "dimension per frame",
            "Dimension and 95% interval of every frame, pooled estimates as bands.")
    parts.append(section("Zoom", f'<div class="grid2">{figs}</div>', "zoom"))
    toc.append(("zoom", "Zoom"))
    rows = []
    for fr in frames:
        w = fr.get("window") or {}
        rows.append([fmt_num(fr.get("index")), f"&times;{_value(float(fr.get('magnification') or 1))}",
                     f"{_value(w.get('x'))}", f"{_value(w.get('y'))}", fmt_est(fr.get("dimension")),
                     f"{fr['fraction_converged']:.1%}" if fr.get("fraction_converged") is not None else "&ndash;",
                     fmt_num(fr.get("n_boundary_pixels")),
                     f'<a href="{esc(fr.get("dir", ""))}/">{esc(fr.get("dir", ""))}</a>'])
    parts.append(section("Frames", table(["frame", "magnification", "x window", "y window",
                                          "dimension [95% interval]", "converged", "boundary px",
                                          "folder"], rows)
                         + f'<p class="small muted">{esc(info.get("pooled_method", ""))}</p>',
                         "frames", f"Windows in {esc(units)}."))
    toc.append(("frames", "Frames"))
    pick = list(range(len(frames)))
    if len(pick) > MAX_GALLERY:
        pick = sorted({round(i * (len(frames) - 1) / (MAX_GALLERY - 1)) for i in range(MAX_GALLERY)})
    gallery = "".join(img(folder / frames[i]["dir"] / "map.png", f"frame {i}",
                          f"frame {i}: &times;{_value(float(frames[i].get('magnification') or 1))}, "
                          f"{fmt_est(frames[i].get('dimension'))}") for i in pick)
    parts.append(section("Frame maps", f'<div class="grid3">{gallery}</div>', "gallery",
                         "" if len(pick) == len(frames) else
                         f"{len(pick)} of {len(frames)} frames, evenly spaced."))
    toc.append(("gallery", "Frame maps"))
    if cfg is not None:
        parts.append(section("Configuration", config_tables(cfg.to_dict()), "config",
                             "Frame 0's configuration; the other frames differ only in "
                             "<code>mnmx</code>."))
        toc.append(("config", "Configuration"))
    summary = _json(folder / frames[0]["dir"] / "summary.json") if frames else {}
    if summary:
        total = sum((_json(folder / fr["dir"] / "summary.json").get("wall_time_s") or 0)
                    for fr in frames)
        parts.append(section("Hardware and timing", hardware_table(
            summary, [("training wall time, all frames", fmt_seconds(total))]), "hardware",
            "Frame 0's run (training time and throughput are frame 0's unless stated)."))
        toc.append(("hardware", "Hardware"))
    title = f"{info.get('preset', folder.name)}: zoom"
    return page(title, "zoom report", subtitle, "".join(parts), toc, display or folder)


# ---- comparison report -------------------------------------------------------------------------

ARCH_FIELDS_SHOWN = ("model", "depth", "skip", "c_hidden", "nonlinearity", "width")


def _depth_sweep(folder: Path, results: list, presets, head: list, *, with_p: bool,
                 caption: str) -> str:
    """The depth-sweep section of a comparison: pooled dimensions and the difference per depth."""
    rows = []
    for r in results:
        d = r["difference"]
        diff = (f'{d["estimate"]:+.3f} <span class="ci">[{d["ci_low"]:+.3f}, '
                f'{d["ci_high"]:+.3f}]</span>' if d.get("ok") else '<span class="na">n/a</span>')
        rows.append([fmt_num(r["depth"])]
                    + [fmt_est(r["archs"][p]["pooled"], counts=True) for p in presets]
                    + [diff] + ([fmt_num(d.get("p_permutation"))] if with_p else [])
                    + [esc(d["verdict"])])
    header = ["depth", head[1], head[2], "D(A) &minus; D(B)"] + (["p"] if with_p else []) \
        + ["verdict"]
    return section("Depth sweep", table(header, rows)
                   + img(folder / "compare_depth.png", "dimension against depth", caption),
                   "depth")


def sampled_compare_report(folder: Path, info: dict, display=None) -> str:
    """The report of `nnfractal compare --method uncertainty|transect` (studies/compare_sampled.py)."""
    presets, method = info["presets"], info["method"]
    results = info.get("results") or []
    main = next((r for r in results if r.get("depth") == info.get("main_depth")), results[0])
    labels = info.get("labels") or {p: p for p in presets}
    settings = info.get("settings") or {}
    spec = settings.get("spec") or {}
    diff = info.get("difference") or {}
    verdict = info.get("verdict", NO_DIFFERENCE)
    toc, parts = [], []
    size = (f"{fmt_num(spec.get('lines'))} segment(s) &times; {fmt_num(spec.get('points'))} points"
            if method == "transect" else f"up to {fmt_num(spec.get('budget'))} evaluations")
    subtitle = (f"{_arch_span(0, labels.get(presets[0], presets[0]))} vs "
                f"{_arch_span(1, labels.get(presets[1], presets[1]))} &middot; {esc(method)} "
                f"({size}) &middot; {fmt_num(settings.get('seeds'))} seed(s)"
                + (f" &times; depths {', '.join(map(str, settings['depths']))}"
                   if settings.get("depths") else ""))
    found = verdict != NO_DIFFERENCE
    word = {"smaller": f"{presets[0]}: smaller dimension",
            "larger": f"{presets[0]}: larger dimension"}.get(verdict, "No difference detectable")
    where = f" (depth {main['depth']})" if main.get("depth") is not None else ""
    pval = diff.get("p_permutation")
    md = min_detectable(diff)
    extra = (f" Sign-flip test over seeds alone: p = {pval:.3g}." if pval is not None else "")
    extra += (f" Smallest difference this study could have detected: about {md:.3f} (the half-"
              "width of the difference's 95% interval)." if md is not None else "")
    parts.append(f'<div class="verdict {"found" if found else "none"}"><div class="word">'
                 f'{esc(word)}{esc(where)}</div><p>{esc(info.get("sentence", ""))}</p>'
                 f'<p class="small muted">Verdict from the 95% interval of the paired difference '
                 f'D(A) &minus; D(B): &ldquo;smaller&rdquo; or &ldquo;larger&rdquo; only when it '
                 f'excludes 0, with at least 3 seeds.{esc(extra)}</p></div>')
    head = ["", _arch_span(0, labels.get(presets[0], presets[0])),
            _arch_span(1, labels.get(presets[1], presets[1])), "D(A) &minus; D(B)"]
    rows = []
    pairs = {r["pair"]: r for r in diff.get("pairs", [])}
    seeds_a = main["archs"][presets[0]]["per_seed"]
    seeds_b = main["archs"][presets[1]]["per_seed"]
    for k, (ea, eb) in enumerate(zip(seeds_a, seeds_b)):
        d = pairs.get(k, {})
        rows.append([f"seed {fmt_num(ea.get('seed'))}", fmt_est(ea), fmt_est(eb),
                     f"{d['difference']:+.3f}" if d.get("difference") is not None
                     else '<span class="na">&ndash;</span>'])
    rows.append(["<strong>pooled</strong>"] + [fmt_est(main["archs"][p]["pooled"], counts=True)
                                                for p in presets]
                + [(f'<span class="num">{diff["estimate"]:+.3f}</span> <span class="ci">'
                    f'[{diff["ci_low"]:+.3f}, {diff["ci_high"]:+.3f}]</span>'
                    if diff.get("ok") else f'<span class="na">{esc(diff.get("reason", ""))}</span>')])
    parts.append(section("Dimensions", table(head, rows, "dims")
                         + img(folder / "compare_dimensions.png", "dimensions",
                               "Dimension per seed and pooled (95% intervals); the paired "
                               "difference against 0.", "medium"), "dims",
                         f"{esc(method)} dimension of the trainability boundary with its 95% "
                         "interval, per initialisation seed (the same initial weights for both "
                         "architectures) and pooled over seeds."))
    toc.append(("dims", "Dimensions"))
    if len(results) > 1:
        parts.append(_depth_sweep(folder, results, presets, head, with_p=True,
                                  caption="Pooled dimension against depth (95% intervals) and "
                                  "the difference."))
        toc.append(("depth", "Depth sweep"))
    figs = (img(folder / "compare_maps.png", "maps side by side",
                "Seed 0 of both architectures: the coarse map each estimator started from "
                + ("(16 x 16 grid runs; the line: the first of the shared segments)."
                   if method == "transect" else "(the uncertainty exponent's 64 x 64 map)."))
            + img(folder / "compare_fits.png", "fits",
                  "Seed 0: " + ("f(eps), the fraction of pairs eps apart whose outcomes differ"
                                if method == "uncertainty" else
                                "sign changes along the segments per lag")
                  + ", and each architecture's fit."))
    if figs:
        parts.append(section("Maps and fits", figs, "maps"))
        toc.append(("maps", "Maps"))
    urows = []
    for u in info.get("units", []):
        i = presets.index(u["preset"]) if u["preset"] in presets else 0
        link = (f'<a href="{esc(u["dir"])}/report.html">{esc(u["dir"])}</a>'
                if u.get("dir") and (folder / u["dir"] / REPORT_NAME).exists()
                else f'<code>{esc(u.get("dir") or "-")}</code>')
        changes = (u.get("sign_changes") or {}).get("changes") or []
        urows.append([_arch_span(i, u["preset"]), fmt_num(u.get("depth")),
                      fmt_num(u.get("seed")), fmt_est(u.get("estimate")),
                      " / ".join(f"{c:.0f}" for c in changes[:6]) or "&ndash;",
                      fmt_num(u.get("evaluations")), fmt_num(u.get("model_steps")),
                      fmt_seconds(u.get("wall_time_s")), link])
    parts.append(section("Every sample", table(["architecture", "depth", "seed",
                                                "dimension [95% interval]",
                                                "sign changes at lags 1, 2, 4, ...",
                                                "evaluations", "model-steps", "training",
                                                "sample folder"], urows), "units",
                         "Each row is a complete sample folder (nnfractal sample). Transects: "
                         "the sign changes along the shared segment per lag (lag 1 = the "
                         "spacing of its points), the raw data of the fit, shown also where the "
                         "fit rule gives no dimension."))
    toc.append(("units", "Samples"))
    notes = info.get("notes") or []
    notes_html = ("<h3>notes</h3><ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>"
                                                               for n in notes) + "</ul>"
                  if notes else "")
    notes_html += ("<h3>statistics</h3><p class=\"small muted\">"
                   + esc((main["archs"][presets[0]]["pooled"] or {}).get("method", ""))
                   + ".</p><p class=\"small muted\">" + esc(diff.get("method", "")) + ".</p>")
    parts.append(section("Method", notes_html, "method",
                         "Both architectures ran the same experiment: the configuration below is "
                         "shared except the architecture fields "
                         f"({', '.join(info.get('arch_fields') or ARCH_FIELDS_SHOWN)}); "
                         "initial-weight seeds are identical."
                         + (" The transects of both architectures run through the same points."
                            if method == "transect" else "")))
    toc.append(("method", "Method"))
    cfgd = dict(info.get("configs", {}).get(presets[0], {}))
    parts.append(section("Configuration", config_tables(cfgd, info.get("config_difference")),
                         "config", f"Values of {esc(presets[0])}; where the two differ, both "
                         "are shown as A / B."))
    toc.append(("config", "Configuration"))
    timing = info.get("timing") or {}
    hw = info.get("hardware") or {}
    kv = [("device", esc(hw.get("device", "&ndash;"))), ("CPU", esc(hw.get("cpu", "&ndash;"))),
          ("CPU count", fmt_num(hw.get("cpu_count"))),
          ("samples", fmt_num(timing.get("units"))),
          ("evaluations", fmt_num(timing.get("evaluations"))),
          ("model-steps", fmt_num(timing.get("model_steps"))),
          ("training time, all samples", fmt_seconds(timing.get("training_s"))),
          ("model-steps/s", fmt_num(timing.get("model_steps_per_s"), 1)),
          ("data", esc(hw.get("data_source", "&ndash;")))]
    parts.append(section("Hardware and timing", kv_table(kv), "hardware"))
    toc.append(("hardware", "Hardware"))
    return page(f"{presets[0]} vs {presets[1]}", f"architecture comparison ({method})",
                subtitle, "".join(parts), toc, display or folder)


def _arch_span(i: int, text: str) -> str:
    return f'<span class="arch-{"ab"[i]}">{esc(text)}</span>'


def compare_report(folder: Path, display=None) -> str:
    info = _json(folder / "compare.json")
    if info.get("method") in ("uncertainty", "transect"):
        return sampled_compare_report(folder, info, display)
    presets = info["presets"]
    results = info.get("results") or []
    main = next((r for r in results if r.get("depth") == info.get("main_depth")),
                results[0] if results else {})
    labels = info.get("labels") or {p: p for p in presets}
    settings = info.get("settings") or {}
    diff = info.get("difference") or {}
    verdict = info.get("verdict", NO_DIFFERENCE)
    toc, parts = [], []
    cfg_a = info.get("configs", {}).get(presets[0], {})
    res = cfg_a.get("resolution")
    subtitle = (f"{_arch_span(0, labels.get(presets[0], presets[0]))} vs "
                f"{_arch_span(1, labels.get(presets[1], presets[1]))} &middot; "
                f"{fmt_num(settings.get('seeds'))} seeds &times; {fmt_num(settings.get('windows'))} "
                f"windows (&times;{_value(settings.get('factor'))} zoom)"
                + (f" &times; depths {', '.join(map(str, settings['depths']))}" if settings.get("depths") else "")
                + f" &middot; {fmt_num(res)}&times;{fmt_num(res)} grids")

    found = verdict != NO_DIFFERENCE
    word = {"smaller": f"{presets[0]}: smaller dimension", "larger": f"{presets[0]}: larger dimension"}.get(
        verdict, "No difference detectable at this resolution")
    where = f" (depth {main['depth']})" if main.get("depth") is not None else ""
    pval = diff.get("p_permutation")
    ptext = (f" Permutation test over seeds and windows alone: p = {pval:.3g}." if pval is not None else "")
    parts.append(f'<div class="verdict {"found" if found else "none"}"><div class="word">{esc(word)}{esc(where)}</div>'
                 f'<p>{esc(info.get("sentence", ""))}</p>'
                 + (f'<p class="small">{esc(diff["note"][0].upper() + diff["note"][1:])}.</p>'
                    if diff.get("note") else "") +
                 f'<p class="small muted">Verdict from the 95% interval of D(A) &minus; D(B): '
                 f'&ldquo;smaller&rdquo; or &ldquo;larger&rdquo; only when it excludes 0.{esc(ptext)}</p></div>')

    # dimension table: per window and pooled, both architectures
    rows = []
    pw = {p: main["archs"][p]["per_window"] for p in presets} if main else {}
    n_win = len(pw.get(presets[0], []))
    for j in range(n_win):
        mag = (settings.get("factor") or 2) ** j
        rows.append([f"window {j}" + (" (preset's)" if j == 0 else f" (&times;{_value(float(mag))}, on each boundary)")]
                    + [fmt_est(pw[p][j], counts=True) for p in presets])
    if main:
        rows.append(["<strong>pooled</strong>"] + [fmt_est(main["archs"][p]["pooled"], counts=True)
                                                    for p in presets])
        caveat = ""
        if isinstance(res, int) and res < MIN_RESOLUTION:
            caveat = (f'<br><span class="small">no scaling-range check: at {res} px not a '
                      'measurement</span>')
        rows.append([f"paper's estimator, pooled{caveat}"]
                    + [fmt_est(main["archs"][p].get("paper_pooled")) for p in presets])
        d = main.get("difference") or {}
        dtxt = (f'<span class="num">{d["estimate"]:+.3f}</span> <span class="ci">[{d["ci_low"]:+.3f}, '
                f'{d["ci_high"]:+.3f}]</span>' if d.get("ok") else
                f'<span class="na">{esc(d.get("reason", "n/a"))}</span>')
        rows.append(["<strong>difference D(A) &minus; D(B)</strong>", dtxt, esc(d.get("verdict", ""))])
    head = ["", _arch_span(0, labels.get(presets[0], presets[0])),
            _arch_span(1, labels.get(presets[1], presets[1]))]
    parts.append(section("Dimensions", table(head, rows, "dims") +
                         img(folder / "compare_dimensions.png", "dimensions",
                             "Dimension per window and pooled (bars, 95% intervals as whiskers), "
                             "and the difference with its 95% interval against 0.", "medium"),
                         "dims",
                         "Box-counting dimension of the trainability boundary with its 95% "
                         "interval; each window pools the seeds, &ldquo;pooled&rdquo; all seeds "
                         "and windows."))
    toc.append(("dims", "Dimensions"))

    if len(results) > 1:
        parts.append(_depth_sweep(folder, results, presets, head, with_p=False,
                                  caption="Pooled dimension against depth (95% intervals) and "
                                  "the difference; grey diamonds: interval includes 0."))
        toc.append(("depth", "Depth sweep"))

    figs = (img(folder / "compare_maps.png", "maps side by side",
                "Window 0, seed 0 of both architectures: same axes, one colour scale (the rank "
                "stretch over both maps). Dashed: the zoomed windows of seed 0; numbered: the pixels "
                "whose curves are shown below.")
            + img(folder / "compare_curves.png", "loss curves near the boundary",
                  "Training curves of the numbered pixel pairs: each converged pixel (solid) and "
                  "its diverged neighbour one pixel away (dashed).")
            + img(folder / "compare_boundaries.png", "boundaries overlaid",
                  "Both boundaries in one picture (window 0, seed 0).", "half"))
    if figs:
        parts.append(section("Maps, boundaries and curves", figs, "maps"))
        toc.append(("maps", "Maps"))

    ref = {p: next((u for u in info.get("units", []) if u["preset"] == p
                    and u.get("sweep_depth") == info.get("main_depth")
                    and u["seed_index"] == 0 and u["window"] == 0), None) for p in presets}
    vids = "".join(video(folder / u["dir"] / "epochs.mp4",
                         f'{_arch_span(i, labels.get(p, p))}: the map after each epoch.')
                   for i, (p, u) in enumerate(ref.items()) if u)
    if vids:
        parts.append(section("Training, epoch by epoch", f'<div class="grid2">{vids}</div>',
                             "videos"))
        toc.append(("videos", "Videos"))

    urows = []
    for u in info.get("units", []):
        i = presets.index(u["preset"]) if u["preset"] in presets else 0
        y0, y1, x0, x1 = u["mnmx"]
        link = f'<a href="{esc(u["dir"])}/report.html">{esc(u["dir"])}</a>' \
            if (folder / u["dir"] / REPORT_NAME).exists() else f'<code>{esc(u["dir"])}</code>'
        urows.append([_arch_span(i, u["preset"]), fmt_num(u.get("depth")), fmt_num(u.get("seed")),
                      fmt_num(u.get("window")), f"{_value([x0, x1])}", f"{_value([y0, y1])}",
                      fmt_est(u.get("dimension")),
                      f"{u['fraction_converged']:.1%}" if u.get("fraction_converged") is not None else "&ndash;",
                      fmt_num((u.get("dimension") or {}).get("n_boundary_pixels")),
                      fmt_seconds(u.get("wall_time_s")), link])
    parts.append(section("Every grid", table(["architecture", "depth", "seed", "window", "x window",
                                              "y window", "dimension [95% interval]", "converged",
                                              "boundary px", "training", "run folder"], urows),
                         "grids", "Windows in the axis units of the config (base-10 exponents on "
                         "log axes). Each row is a complete run folder."))
    toc.append(("grids", "Grids"))

    notes = info.get("notes") or []
    method = [diff.get("method", ""),
              (main.get("archs", {}).get(presets[0], {}).get("pooled") or {}).get("method", "")] if main else []
    notes_html = ""
    if notes:
        notes_html += "<h3>notes</h3><ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
    notes_html += ("<h3>statistics</h3><p class=\"small muted\">" + esc(method[1] if len(method) > 1 else "")
                   + ".</p><p class=\"small muted\">" + esc(method[0] if method else "") + ".</p>")
    parts.append(section("Method", notes_html, "method",
                         "Both architectures ran the same experiment: the configuration below is "
                         f"shared except the architecture fields ({', '.join(info.get('arch_fields', []))}); "
                         "initial-weight seeds are identical."))
    toc.append(("method", "Method"))

    cfgd = dict(info.get("configs", {}).get(presets[0], {}))
    parts.append(section("Configuration", config_tables(cfgd, info.get("config_difference")),
                         "config", f"Values of {esc(presets[0])}; where the two differ, both are "
                         "shown as A / B. Seeds used: "
                         f"{', '.join(map(str, settings.get('seed_values', [])))}."))
    toc.append(("config", "Configuration"))

    timing = info.get("timing") or {}
    hw = info.get("hardware") or {}
    pairs = [("device", esc(hw.get("device", "&ndash;"))), ("CPU", esc(hw.get("cpu", "&ndash;"))),
             ("CPU count", fmt_num(hw.get("cpu_count"))),
             ("torch threads", fmt_num(hw.get("threads"))),
             ("grids", fmt_num(timing.get("grids"))),
             ("training wall time, all grids", fmt_seconds(timing.get("training_wall_s"))),
             ("model-steps", fmt_num(timing.get("model_steps"))),
             ("model-steps/s", fmt_num(timing.get("model_steps_per_s"), 1)),
             ("grids with their pictures", fmt_seconds(timing.get("grids_and_pictures_s"))),
             ("comparison figures", fmt_seconds(timing.get("figures_s"))),
             ("total", fmt_seconds(timing.get("total_s"))),
             ("data", esc(hw.get("data_source", "&ndash;")))]
    if hw.get("versions"):
        pairs.append(("versions", ", ".join(f"{esc(k)} {esc(v)}" for k, v in hw["versions"].items())))
    parts.append(section("Hardware and timing", kv_table(pairs), "hardware"))
    toc.append(("hardware", "Hardware"))
    title = f"{presets[0]} vs {presets[1]}"
    return page(title, "architecture comparison", subtitle, "".join(parts), toc,
                display or folder)


# ---- sample report ------------------------------------------------------------------------------

def sample_report(folder: Path, display=None) -> str:
    """A sample folder (nnfractal sample): the estimate with its evidence, the points, the
    parameters, and the source run's grid estimators beside it when the sample came from a run."""
    info = _json(folder / "sample.json")
    summary = _json(folder / "summary.json")
    cfg = _config(folder)
    est = info.get("estimate") or {}
    method = info.get("method", "?")
    label = {"uncertainty": "uncertainty exponent", "transect": "transect"}.get(method, method)
    toc, parts = [], []
    cards = [card(f"dimension ({esc(label)})", fmt_est(est) if est.get("ok") else
                  f'<span class="na small">{esc(_short_reason(est))}</span>',
                  "95% interval in brackets"),
             card("evaluations", fmt_num(info.get("evaluations")), "networks trained"),
             card("model-steps", fmt_num(info.get("model_steps"))),
             card("fit range", f"{fmt_num((est.get('extra') or {}).get('fit_decades'), 2)} decades"
                  if est.get("ok") else "&ndash;"),
             card("training time", fmt_seconds(summary.get("wall_time_s")),
                  f"{fmt_num(summary.get('model_steps_per_s'), 1)} model-steps/s"
                  if summary.get("model_steps_per_s") else ""),
             card("fraction converged", f"{summary['fraction_converged']:.1%}"
                  if summary.get("fraction_converged") is not None else "&ndash;",
                  "of the sampled points")]
    parts.append(section("Summary", f'<div class="cards">{"".join(cards)}</div>', "summary"))
    toc.append(("summary", "Summary"))
    rows = [[esc(label), fmt_est(est), fmt_num(info.get("evaluations"))]]
    source = info.get("source_run")
    if source and (Path(source) / "fractal.json").exists():
        from nnfractal.runner.run import estimates_of
        for name, other in estimates_of(Path(source)):
            rows.append([f"{esc(name)} (source run)", fmt_est(other), "grid"])
    parts.append(section("Every estimator", table(["estimator", "dimension [95%]", "evaluations"],
                                                  rows), "estimators",
                         "Each estimator this folder supports, and those of the run it sampled."))
    toc.append(("estimators", "Estimators"))
    figure = "uncertainty.png" if method == "uncertainty" else "transect.png"
    caption = ("Fraction f(eps) of point pairs eps apart whose outcomes differ, each stage rescaled "
               "onto one curve; the fit's slope is 2 - D. Below: local dimensions."
               if method == "uncertainty" else
               "Above: the outcome along each segment (red diverged). Below: sign changes between "
               "points a lag apart, per lag; the slope is -(D - 1).")
    parts.append(section("Estimate", img(folder / figure, label, caption) +
                         img(folder / "points.png", "sampled points",
                             "Where the sampled points fell, coloured by outcome."), "estimate"))
    toc.append(("estimate", "Estimate"))
    params = info.get("parameters") or {}
    parts.append(section("Parameters", kv_table([(esc(k), _value(v)) for k, v in params.items()])
                         + (config_tables(cfg.to_dict()) if cfg else ""), "parameters"))
    toc.append(("parameters", "Parameters"))
    parts.append(section("Hardware and timing", hardware_table(summary), "hardware"))
    title = cfg.preset if cfg else folder.name
    return page(f"{title}: {label}", "sample report",
                f"{esc(label)} &middot; {fmt_num(info.get('evaluations'))} evaluations",
                "".join(parts), toc, display or folder)


# ---- entry points ------------------------------------------------------------------------------

def folder_kind(folder) -> str:
    """'compare', 'zoom', 'sample' or 'run'; raises ReportError for anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"run_dir: {folder} does not exist or is not a folder")
    if (folder / "compare.json").exists():
        return "compare"
    if (folder / "zoom.json").exists():
        return "zoom"
    if (folder / "sample.json").exists():
        return "sample"
    if RunFolder(folder).holds_run():
        return "run"
    raise ReportError(f"run_dir: {folder} is not a run, zoom or comparison folder (no config.toml "
                      "+ store.zarr, zoom.json or compare.json)")


def build_html(folder, display_path=None) -> str:
    """The report of a run, zoom or comparison folder as one HTML string."""
    folder = Path(folder)
    kind = folder_kind(folder)
    return {"compare": compare_report, "zoom": zoom_report, "run": run_report,
            "sample": sample_report}[kind](
        folder, display_path)


def write_report(folder, out: Path | None = None, *, display_path=None,
                 force: bool = False) -> Path:
    """Write the folder's report (default ``folder/report.html``) and return its path.

    `display_path`: the folder's name to print in the footer, when the report is written before
    the folder reaches its final place (as compare does). An explicit `out` is checked first
    (`check_report_out`): an existing file is replaced only if it is a report nnfractal wrote,
    or with `force`. Every output error is a ReportError naming ``out``.
    """
    folder = Path(folder)
    if out is not None:
        check_report_out(Path(out), force)
    if folder_kind(folder) == "compare":
        _redraw_missing_compare_figures(folder)
    text = build_html(folder, display_path)
    path = Path(out) if out is not None else folder / REPORT_NAME
    try:
        write_text_atomic(path, text)
    except OSError as err:
        if out is None:
            raise
        raise ReportError(f"out: cannot write {path} ({err.strerror or err})") from None
    return path


def is_our_report(path: Path) -> bool:
    """True for an HTML file nnfractal wrote: its head has the title `... &middot; nnfractal`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b" &middot; nnfractal</title>" in head


def check_report_out(path: Path, force: bool = False) -> None:
    """Refuse an --out that cannot take the report, before anything is built or written: a
    folder, a missing or unwritable parent, or an existing file that is not a report of ours
    (unless `force`)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ReportError(f"out: {path} is a folder (allowed: an HTML file name, new or a report "
                          "nnfractal wrote)")
    if not parent.is_dir():
        raise ReportError(f"out: {parent} does not exist or is not a folder (allowed: a file in "
                          "an existing folder)")
    if path.exists() and not force and not is_our_report(path):
        raise ReportError(f"out: {path} exists and is not a report nnfractal wrote (allowed: a "
                          "new file, a report of ours, or --force to replace it)")
    if path.exists() and not os.access(path, os.W_OK) and os.geteuid() != 0:
        raise ReportError(f"out: {path} is not writable")
    import tempfile
    try:                    # a real write: root ignores permission bits, not a read-only mount
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ReportError(f"out: cannot write {path} ({parent} is not writable: "
                          f"{err.strerror or err})") from None


def _redraw_missing_compare_figures(folder: Path) -> None:
    """A comparison whose drawing failed has compare.json but no figures: draw them first (and
    the grids' own reports), so `nnfractal report` completes it."""
    info = compare.read_compare_json(folder)
    if info.get("method") in ("uncertainty", "transect"):
        return         # drawn by the comparison itself; `nnfractal compare --resume` redraws
    names = info.get("figures") or {}
    if names and all((folder / f).exists() for f in names.values()):
        return
    units = info.get("units", [])
    if not units or not all(RunFolder(folder / u["dir"]).store_dir.is_dir() for u in units):
        return                       # nothing to draw from (e.g. a folder of numbers only)
    info["figures"] = compare.draw_figures(folder, info)
    write_json_atomic(folder / "compare.json", info)
    for u in units:
        unit = folder / u["dir"]
        if not (unit / REPORT_NAME).exists():
            write_report(unit)


def write_report_safely(folder, *, display_path=None, log=print) -> Path | None:
    """`write_report` for the end of a run, sample or comparison: a failure is logged in one
    line, not raised, so a finished computation is never lost to its report. Returns the path
    or None."""
    return run_folder.write_report_safely(write_report, folder, display_path=display_path, log=log)
