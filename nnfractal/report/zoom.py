"""The report of a zoom folder (``nnfractal zoom``): pooled dimensions, dimension per frame, the
zoom video, every frame's map and numbers, read from zoom.json (`studies.zoom_result.ZoomResult`)."""
from __future__ import annotations

from pathlib import Path

from nnfractal.storage.run_folder import SUMMARY_FILE
from nnfractal.studies.zoom_result import ZoomResult, read_zoom

from .html import card, esc, fmt_est, fmt_num, fmt_seconds, fmt_value, img, page, section, short_reason, table, video
from .parts import config_tables, hardware_table, read_config, read_json
from .run import run_title_bits

MAX_GALLERY = 24                 # zoom frames shown as maps (evenly spaced beyond that)


def zoom_report(folder: Path, display=None) -> str:
    info = read_zoom(folder)
    frames = info.frames
    cfg = read_config(folder / frames[0].dir)
    first_summary = read_json(folder / frames[0].dir / SUMMARY_FILE)
    toc, parts = [], []
    c = info.center
    subtitle = (f"{esc(run_title_bits(cfg)[0]) if cfg else ''} &middot; {len(frames)} frames of "
                f"{fmt_num(info.resolution)}&times;{fmt_num(info.resolution)}, "
                f"&times;{fmt_value(info.factor)} per frame, "
                f"{fmt_num(info.depth_reached, 2)} decades, centre x = "
                f"{fmt_num(c.x, 4)}, y = {fmt_num(c.y, 4)} ({esc(info.axis_units)}, "
                f"{esc(c.source or '')})")
    parts.append(section("Summary", _cards(info, first_summary), "summary"))
    toc.append(("summary", "Summary"))
    if info.float_limit and info.float_limit.message:
        parts.append(f'<p class="muted">{esc(info.float_limit.message)}</p>')
    figs = video(folder / "zoom.mp4", "Zoom through the frames (H.264).") + \
        img(folder / "dimension_per_frame.png", "dimension per frame",
            "Dimension and 95% interval of every frame, pooled estimates as bands.")
    parts.append(section("Zoom", f'<div class="grid2">{figs}</div>', "zoom"))
    toc.append(("zoom", "Zoom"))
    parts.append(section("Frames", _frames_table(info), "frames",
                         f"Windows in {esc(info.axis_units)}."))
    toc.append(("frames", "Frames"))
    parts.append(_gallery(folder, info))
    toc.append(("gallery", "Frame maps"))
    if cfg is not None:
        parts.append(section("Configuration", config_tables(cfg.to_dict()), "config",
                             "Frame 0's configuration; the other frames differ only in "
                             "<code>mnmx</code>."))
        toc.append(("config", "Configuration"))
    if first_summary:
        total = sum((read_json(folder / fr.dir / SUMMARY_FILE).get("wall_time_s") or 0)
                    for fr in frames)
        parts.append(section("Hardware and timing", hardware_table(
            first_summary, [("training wall time, all frames", fmt_seconds(total))]), "hardware",
            "Frame 0's run (training time and throughput are frame 0's unless stated)."))
        toc.append(("hardware", "Hardware"))
    return page(f"{info.preset or folder.name}: zoom", "zoom report", subtitle, "".join(parts),
                toc, display or folder)


def _estimate_card(label: str, est: dict | None, note: str) -> str:
    est = est or {}
    return card(label, fmt_est(est) if est.get("ok") else
                f'<span class="na small">{esc(short_reason(est))}</span>', note)


def _cards(info: ZoomResult, first_summary: dict) -> str:
    cards = [_estimate_card("pooled dimension", info.pooled, "inverse-variance weighted over frames"),
             _estimate_card("paper's estimator, pooled", info.pooled_paper,
                            "median local slope over all frames"),
             card("frames", fmt_num(len(info.frames)), f"of {fmt_num(info.n_frames_requested)} requested"),
             card("training and frames", fmt_seconds(info.training_and_frames_s))]
    notes = "".join(f'<div class="verdict none"><b>Note:</b> {esc(n)}</div>'
                    for n in first_summary.get("notes") or [])
    return f'<div class="cards">{"".join(cards)}</div>{notes}'


def _frames_table(info: ZoomResult) -> str:
    rows = []
    for fr in info.frames:
        converged = f"{fr.fraction_converged:.1%}" if fr.fraction_converged is not None else "&ndash;"
        rows.append([fmt_num(fr.index), f"&times;{fmt_value(float(fr.magnification or 1))}",
                     fmt_value(fr.window.x), fmt_value(fr.window.y), fmt_est(fr.dimension),
                     converged, fmt_num(fr.n_boundary_pixels),
                     f'<a href="{esc(fr.dir)}/">{esc(fr.dir)}</a>'])
    return (table(["frame", "magnification", "x window", "y window", "dimension [95% interval]",
                   "converged", "boundary px", "folder"], rows)
            + f'<p class="small muted">{esc(info.pooled_method)}</p>')


def _gallery(folder: Path, info: ZoomResult) -> str:
    frames = info.frames
    pick = list(range(len(frames)))
    if len(pick) > MAX_GALLERY:
        pick = sorted({round(i * (len(frames) - 1) / (MAX_GALLERY - 1)) for i in range(MAX_GALLERY)})
    gallery = "".join(img(folder / frames[i].dir / "map.png", f"frame {i}",
                          f"frame {i}: &times;{fmt_value(float(frames[i].magnification or 1))}, "
                          f"{fmt_est(frames[i].dimension)}") for i in pick)
    return section("Frame maps", f'<div class="grid3">{gallery}</div>', "gallery",
                   "" if len(pick) == len(frames) else
                   f"{len(pick)} of {len(frames)} frames, evenly spaced.")
