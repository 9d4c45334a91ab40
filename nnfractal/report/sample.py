"""The report of a sample folder (``nnfractal sample``): the estimate with its evidence, the
points, the parameters, and the source run's grid estimators beside it when the sample came from
a run; read from sample.json (`studies.sample.SampleResult`) and its summary.json."""
from __future__ import annotations

from pathlib import Path

from nnfractal.storage.run_folder import SUMMARY_FILE
from nnfractal.studies.sample import SampleSummary, read_sample

from .html import card, esc, fmt_est, fmt_num, fmt_seconds, fmt_value, img, kv_table, page, section, short_reason, table
from .parts import config_tables, hardware_table, read_config, read_json

LABELS = {"uncertainty": "uncertainty exponent", "transect": "transect"}


def sample_report(folder: Path, display=None) -> str:
    info = read_sample(folder)
    raw_summary = read_json(folder / SUMMARY_FILE)
    summary = SampleSummary.from_json(raw_summary) if raw_summary else None
    cfg = read_config(folder)
    est = info.estimate
    label = LABELS.get(info.method, info.method)
    toc, parts = [], []
    parts.append(section("Summary", _cards(info, summary, label), "summary"))
    toc.append(("summary", "Summary"))
    rows = [[esc(label), fmt_est(est), fmt_num(info.evaluations)]]
    if info.source_run and (Path(info.source_run) / "fractal.json").exists():
        from nnfractal.runner.run import estimates_of
        for name, other in estimates_of(Path(info.source_run)):
            rows.append([f"{esc(name)} (source run)", fmt_est(other), "grid"])
    parts.append(section("Every estimator", table(["estimator", "dimension [95%]", "evaluations"],
                                                  rows), "estimators",
                         "Each estimator this folder supports, and those of the run it sampled."))
    toc.append(("estimators", "Estimators"))
    figure = "uncertainty.png" if info.method == "uncertainty" else "transect.png"
    caption = ("Fraction f(eps) of point pairs eps apart whose outcomes differ, each stage rescaled "
               "onto one curve; the fit's slope is 2 - D. Below: local dimensions."
               if info.method == "uncertainty" else
               "Above: the outcome along each segment (red diverged). Below: sign changes between "
               "points a lag apart, per lag; the slope is -(D - 1).")
    parts.append(section("Estimate", img(folder / figure, label, caption) +
                         img(folder / "points.png", "sampled points",
                             "Where the sampled points fell, coloured by outcome."), "estimate"))
    toc.append(("estimate", "Estimate"))
    params = info.parameters.to_json()
    parts.append(section("Parameters", kv_table([(esc(k), fmt_value(v)) for k, v in params.items()])
                         + (config_tables(cfg.to_dict()) if cfg else ""), "parameters"))
    toc.append(("parameters", "Parameters"))
    parts.append(section("Hardware and timing", hardware_table(raw_summary), "hardware"))
    title = cfg.preset if cfg else folder.name
    return page(f"{title}: {label}", "sample report",
                f"{esc(label)} &middot; {fmt_num(info.evaluations)} evaluations",
                "".join(parts), toc, display or folder)


def _cards(info, summary: SampleSummary | None, label: str) -> str:
    est = info.estimate
    rate = summary.model_steps_per_s if summary else None
    converged = summary.fraction_converged if summary else None
    cards = [card(f"dimension ({esc(label)})", fmt_est(est) if est.get("ok") else
                  f'<span class="na small">{esc(short_reason(est))}</span>',
                  "95% interval in brackets"),
             card("evaluations", fmt_num(info.evaluations), "networks trained"),
             card("model-steps", fmt_num(info.model_steps)),
             card("fit range", f"{fmt_num((est.get('extra') or {}).get('fit_decades'), 2)} decades"
                  if est.get("ok") else "&ndash;"),
             card("training time", fmt_seconds(summary.wall_time_s if summary else None),
                  f"{fmt_num(rate, 1)} model-steps/s" if rate else ""),
             card("fraction converged", f"{converged:.1%}" if converged is not None else "&ndash;",
                  "of the sampled points")]
    return f'<div class="cards">{"".join(cards)}</div>'
