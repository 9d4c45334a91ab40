"""The report of a comparison folder (``nnfractal compare``), read from compare.json: the verdict,
the dimension table, the difference with its interval, every comparison figure, every grid or
sample, configuration, hardware and timing. `box_report` for `studies.comparison.BoxComparison`
(grids, box counting per window), `sampled_report` for `SampledComparison` (uncertainty or
transect, paired by seed).
"""
from __future__ import annotations

from pathlib import Path

from nnfractal.estimators.stats import min_detectable
from nnfractal.storage.run_folder import REPORT_FILE, RunFolder
from nnfractal.studies import compare as box_compare
from nnfractal.studies.comparison import BoxComparison, SampledComparison, read_comparison
from nnfractal.studies.quantities import CHAOS, EPS_STAR
from nnfractal.window import Window

from .html import esc, fmt_est, fmt_num, fmt_seconds, fmt_value, img, page, section, table, video
from .parts import (
    arch_span,
    comparison_hardware,
    config_tables,
    depth_sweep,
    difference_text,
    notes_and_statistics,
    verdict_box,
)
from .quantities import quantities_section, unit_cells

MIN_RESOLUTION = 114             # about the smallest map with a box-counting scaling range


def compare_report(folder: Path, display=None) -> str:
    info = read_comparison(folder)
    if isinstance(info, SampledComparison):
        return sampled_report(folder, info, display)
    return box_report(folder, info, display)


def _head(info) -> list[str]:
    return ["", arch_span(0, info.labels.get(info.presets[0], info.presets[0])),
            arch_span(1, info.labels.get(info.presets[1], info.presets[1]))]


def _depths(settings) -> str:
    return f" &times; depths {', '.join(map(str, settings.depths))}" if settings.depths else ""


def _method_section(info, methods: list[str], extra: str = "") -> str:
    return section("Method", notes_and_statistics(info.notes, methods), "method",
                   "Both architectures ran the same experiment: the configuration below is "
                   "shared except the architecture fields "
                   f"({', '.join(getattr(info, 'arch_fields', None) or box_compare.ARCH_FIELDS)}); "
                   "initial-weight seeds are identical." + extra)


def _config_section(info, intro_end: str = "") -> str:
    p0 = info.presets[0]
    return section("Configuration", config_tables(dict(info.configs.get(p0, {})),
                                                  info.config_difference), "config",
                   f"Values of {esc(p0)}; where the two differ, both are shown as A / B."
                   + intro_end)


def _unit_link(folder: Path, unit_dir: str | None) -> str:
    if unit_dir and (folder / unit_dir / REPORT_FILE).exists():
        return f'<a href="{esc(unit_dir)}/report.html">{esc(unit_dir)}</a>'
    return f'<code>{esc(unit_dir or "-")}</code>'


# ---- the box comparison ---------------------------------------------------------------------------

def box_report(folder: Path, info: BoxComparison, display=None) -> str:
    presets, main, s = info.presets, info.main, info.settings
    res = info.configs.get(presets[0], {}).get("resolution")
    head = _head(info)
    subtitle = (f"{head[1]} vs {head[2]} &middot; {fmt_num(s.seeds)} seeds &times; "
                f"{fmt_num(s.windows)} windows (&times;{fmt_value(s.factor)} zoom){_depths(s)}"
                f" &middot; {fmt_num(res)}&times;{fmt_num(res)} grids")
    diff = info.difference
    pval = diff.get("p_permutation")
    ptext = f" Permutation test over seeds and windows alone: p = {pval:.3g}." if pval is not None else ""
    parts = [verdict_box(presets, info.verdict, info.sentence,
                         f" (depth {main.depth})" if main.depth is not None else "",
                         "Verdict from the 95% interval of D(A) &minus; D(B): &ldquo;smaller&rdquo; "
                         f"or &ldquo;larger&rdquo; only when it excludes 0.{esc(ptext)}",
                         note=(diff["note"][0].upper() + diff["note"][1:] + ".") if diff.get("note") else "",
                         nothing="No difference detectable at this resolution"),
             section("Dimensions", table(head, _box_rows(info, res), "dims")
                     + img(folder / "compare_dimensions.png", "dimensions",
                           "Dimension per window and pooled (bars, 95% intervals as whiskers), and "
                           "the difference with its 95% interval against 0.", "medium"), "dims",
                     "Box-counting dimension of the trainability boundary with its 95% interval; "
                     "each window pools the seeds, &ldquo;pooled&rdquo; all seeds and windows.")]
    toc = [("dims", "Dimensions")]
    if len(info.results) > 1:
        parts.append(depth_sweep(folder, info.results, presets, head, with_p=False,
                                 caption="Pooled dimension against depth (95% intervals) and the "
                                 "difference; grey diamonds: interval includes 0."))
        toc.append(("depth", "Depth sweep"))
    for sid, title, body in _box_media(folder, info):
        parts.append(section(title, body, sid))
        toc.append((sid, sid.capitalize() if sid != "videos" else "Videos"))
    parts.append(_box_grids(folder, info))
    parts.append(_method_section(info, [main.archs[presets[0]].pooled.get("method", ""),
                                        diff.get("method", "")]))
    parts.append(_config_section(info, " Seeds used: "
                                 f"{', '.join(map(str, s.seed_values))}."))
    parts.append(_box_hardware(info))
    toc += [("grids", "Grids"), ("method", "Method"), ("config", "Configuration"),
            ("hardware", "Hardware")]
    return page(f"{presets[0]} vs {presets[1]}", "architecture comparison", subtitle,
                "".join(parts), toc, display or folder)


def _box_rows(info: BoxComparison, res) -> list[list[str]]:
    """Per window and pooled dimensions of both architectures, the paper's estimator, the
    difference."""
    presets, main = info.presets, info.main
    pw = {p: main.archs[p].per_window for p in presets}
    rows = []
    for j in range(len(pw[presets[0]])):
        mag = (info.settings.factor or 2) ** j
        rows.append([f"window {j}" + (" (preset's)" if j == 0 else
                                      f" (&times;{fmt_value(float(mag))}, on each boundary)")]
                    + [fmt_est(pw[p][j], counts=True) for p in presets])
    rows.append(["<strong>pooled</strong>"] + [fmt_est(main.archs[p].pooled, counts=True)
                                                for p in presets])
    caveat = ""
    if isinstance(res, int) and res < MIN_RESOLUTION:
        caveat = (f'<br><span class="small">no scaling-range check: at {res} px not a '
                  'measurement</span>')
    rows.append([f"paper's estimator, pooled{caveat}"]
                + [fmt_est(main.archs[p].paper_pooled) for p in presets])
    d = main.difference
    rows.append(["<strong>difference D(A) &minus; D(B)</strong>", difference_text(d),
                 esc(d.get("verdict", ""))])
    return rows


def _box_media(folder: Path, info: BoxComparison) -> list[tuple[str, str, str]]:
    """(section id, title, body) of the figures and the epoch videos that exist."""
    out = []
    figs = (img(folder / "compare_maps.png", "maps side by side",
                "Window 0, seed 0 of both architectures: same axes, one colour scale (the rank "
                "stretch over both maps). Dashed: the zoomed windows of seed 0; numbered: the "
                "pixels whose curves are shown below.")
            + img(folder / "compare_curves.png", "loss curves near the boundary",
                  "Training curves of the numbered pixel pairs: each converged pixel (solid) and "
                  "its diverged neighbour one pixel away (dashed).")
            + img(folder / "compare_boundaries.png", "boundaries overlaid",
                  "Both boundaries in one picture (window 0, seed 0).", "half"))
    if figs:
        out.append(("maps", "Maps, boundaries and curves", figs))
    vids = "".join(video(folder / u.dir / "epochs.mp4",
                         f'{arch_span(i, info.labels.get(p, p))}: the map after each epoch.')
                   for i, (p, u) in enumerate(info.reference_units().items()))
    if vids:
        out.append(("videos", "Training, epoch by epoch", f'<div class="grid2">{vids}</div>'))
    return out


def _box_grids(folder: Path, info: BoxComparison) -> str:
    rows = []
    for u in info.units:
        i = info.presets.index(u.preset) if u.preset in info.presets else 0
        window = Window.from_mnmx(u.mnmx)
        converged = f"{u.fraction_converged:.1%}" if u.fraction_converged is not None else "&ndash;"
        rows.append([arch_span(i, u.preset), fmt_num(u.depth), fmt_num(u.seed), fmt_num(u.window),
                     fmt_value([window.x0, window.x1]), fmt_value([window.y0, window.y1]),
                     fmt_est(u.dimension), converged,
                     fmt_num((u.dimension or {}).get("n_boundary_pixels")),
                     fmt_seconds(u.wall_time_s), _unit_link(folder, u.dir)])
    return section("Every grid", table(["architecture", "depth", "seed", "window", "x window",
                                        "y window", "dimension [95% interval]", "converged",
                                        "boundary px", "training", "run folder"], rows),
                   "grids", "Windows in the axis units of the config (base-10 exponents on log "
                   "axes). Each row is a complete run folder.")


def _box_hardware(info: BoxComparison) -> str:
    t = info.timing
    return comparison_hardware(info.hardware, [
        ("torch threads", fmt_num(info.hardware.threads)), ("grids", fmt_num(t.grids)),
        ("training wall time, all grids", fmt_seconds(t.training_wall_s)),
        ("model-steps", fmt_num(t.model_steps)),
        ("model-steps/s", fmt_num(t.model_steps_per_s, 1)),
        ("grids with their pictures", fmt_seconds(t.grids_and_pictures_s)),
        ("comparison figures", fmt_seconds(t.figures_s)), ("total", fmt_seconds(t.total_s))])


def redraw_missing_figures(folder: Path) -> None:
    """A box comparison whose drawing failed has compare.json but no figures: draw them first
    (and the grids' reports, with `write_report`), so `nnfractal report` completes it."""
    from . import write_report
    info = read_comparison(folder)
    if isinstance(info, SampledComparison):
        return         # drawn by the comparison itself; `nnfractal compare --resume` redraws
    if info.figures and all((folder / f).exists() for f in info.figures.values()):
        return
    if not info.units or not all(RunFolder(folder / u.dir).store_dir.is_dir() for u in info.units):
        return                       # nothing to draw from (e.g. a folder of numbers only)
    info.figures = box_compare.draw_figures(folder, info)
    info.write(folder / "compare.json")
    for u in info.units:
        if not (folder / u.dir / REPORT_FILE).exists():
            write_report(folder / u.dir)


# ---- the sampled comparison -----------------------------------------------------------------------

def sampled_report(folder: Path, info: SampledComparison, display=None) -> str:
    """The report of `nnfractal compare --method uncertainty|transect`."""
    presets, method, main, s = info.presets, info.method, info.main, info.settings
    spec, diff = s.spec, info.difference
    head = _head(info)
    size = (f"{fmt_num(spec.lines)} segment(s) &times; {fmt_num(spec.points)} points"
            if method == "transect" else f"up to {fmt_num(spec.budget)} evaluations")
    subtitle = (f"{head[1]} vs {head[2]} &middot; {esc(method)} ({size}) &middot; "
                f"{fmt_num(s.seeds)} seed(s){_depths(s)}")
    pval, md = diff.get("p_permutation"), min_detectable(diff)
    extra = f" Sign-flip test over seeds alone: p = {pval:.3g}." if pval is not None else ""
    extra += (f" Smallest difference this study could have detected: about {md:.3f} (the half-"
              "width of the difference's 95% interval)." if md is not None else "")
    others = " ".join(info.sentences.get(k, "") for k in (CHAOS, EPS_STAR))
    parts = [verdict_box(presets, info.verdict, info.sentence,
                         f" (depth {main.depth})" if main.depth is not None else "",
                         "Verdict from the 95% interval of the paired difference D(A) &minus; "
                         "D(B): &ldquo;smaller&rdquo; or &ldquo;larger&rdquo; only when it "
                         f"excludes 0, with at least 3 seeds.{esc(extra)}", note=others.strip()),
             section("Dimensions", table(head + ["D(A) &minus; D(B)"], _seed_rows(info), "dims")
                     + img(folder / "compare_dimensions.png", "dimensions",
                           "Dimension per seed and pooled (95% intervals); the paired "
                           "difference against 0.", "medium"), "dims",
                     f"{esc(method)} dimension of the trainability boundary with its 95% "
                     "interval, per initialisation seed (the same initial weights for both "
                     "architectures) and pooled over seeds.")]
    toc = [("dims", "Dimensions")]
    three = quantities_section(folder, info)
    if three:
        parts.append(three)
        toc.append(("quantities", "Curve, chaos, band"))
    if len(info.results) > 1:
        parts.append(depth_sweep(folder, info.results, presets, head, with_p=True,
                                 caption="Pooled dimension against depth (95% intervals) and "
                                 "the difference."))
        toc.append(("depth", "Depth sweep"))
    figs = _sampled_figures(folder, method)
    if figs:
        parts.append(section("Maps and fits", figs, "maps"))
        toc.append(("maps", "Maps"))
    parts += [_samples_table(folder, info),
              _method_section(info, [main.archs[presets[0]].pooled.get("method", ""),
                                     diff.get("method", "")],
                              " The transects of both architectures run through the same points."
                              if method == "transect" else ""),
              _config_section(info), _sampled_hardware(info)]
    toc += [("units", "Samples"), ("method", "Method"), ("config", "Configuration"),
            ("hardware", "Hardware")]
    return page(f"{presets[0]} vs {presets[1]}", f"architecture comparison ({method})",
                subtitle, "".join(parts), toc, display or folder)


def _seed_rows(info: SampledComparison) -> list[list[str]]:
    """Per seed and pooled dimensions of both architectures, and the paired difference."""
    presets, main, diff = info.presets, info.main, info.difference
    pairs = {r["pair"]: r for r in diff.get("pairs", [])}
    rows = []
    for k, (ea, eb) in enumerate(zip(main.archs[presets[0]].per_seed,
                                     main.archs[presets[1]].per_seed)):
        d = pairs.get(k, {})
        rows.append([f"seed {fmt_num(ea.get('seed'))}", fmt_est(ea), fmt_est(eb),
                     f"{d['difference']:+.3f}" if d.get("difference") is not None
                     else '<span class="na">&ndash;</span>'])
    rows.append(["<strong>pooled</strong>"] + [fmt_est(main.archs[p].pooled, counts=True)
                                                for p in presets] + [difference_text(diff, "")])
    return rows


def _sampled_figures(folder: Path, method: str) -> str:
    return (img(folder / "compare_maps.png", "maps side by side",
                "Seed 0 of both architectures: the coarse map each estimator started from "
                + ("(16 x 16 grid runs; the line: the first of the shared segments)."
                   if method == "transect" else "(the uncertainty exponent's 64 x 64 map)."))
            + img(folder / "compare_fits.png", "fits",
                  "Seed 0: " + ("f(eps), the fraction of pairs eps apart whose outcomes differ"
                                if method == "uncertainty" else
                                "sign changes along the segments per lag")
                  + ", and each architecture's fit."))


def _samples_table(folder: Path, info: SampledComparison) -> str:
    rows = []
    for u in info.units:
        i = info.presets.index(u.preset) if u.preset in info.presets else 0
        changes = u.sign_changes.changes if u.sign_changes else []
        middle = (unit_cells(u.estimate) if info.method == "uncertainty" else
                  [" / ".join(f"{c:.0f}" for c in changes[:6]) or "&ndash;"])
        rows.append([arch_span(i, u.preset), fmt_num(u.depth), fmt_num(u.seed),
                     fmt_est(u.estimate), *middle,
                     fmt_num(u.evaluations), fmt_num(u.model_steps), fmt_seconds(u.wall_time_s),
                     _unit_link(folder, u.dir)])
    middle_head = (["chaos fraction [95%]", "eps* [95%]"] if info.method == "uncertainty"
                   else ["sign changes at lags 1, 2, 4, ..."])
    return section("Every sample", table(["architecture", "depth", "seed",
                                          "dimension [95% interval]",
                                          *middle_head, "evaluations",
                                          "model-steps", "training", "sample folder"], rows),
                   "units", "Each row is a complete sample folder (nnfractal sample). Transects: "
                   "the sign changes along the shared segment per lag (lag 1 = the spacing of its "
                   "points), the raw data of the fit, shown also where the fit rule gives no "
                   "dimension.")


def _sampled_hardware(info: SampledComparison) -> str:
    t = info.timing
    return comparison_hardware(info.hardware, [
        ("samples", fmt_num(t.units)), ("evaluations", fmt_num(t.evaluations)),
        ("model-steps", fmt_num(t.model_steps)),
        ("training time, all samples", fmt_seconds(t.training_s)),
        ("model-steps/s", fmt_num(t.model_steps_per_s, 1))])
