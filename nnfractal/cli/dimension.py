"""`nnfractal dimension`: the dimension of a finished result folder, recomputed without training.

A run folder gets its box-counting (or the paper's) estimate again, with the default scaling
range or a given fit range; a zoom folder its per-frame and pooled dimensions; a sample folder its
own estimator from its curves. Above run, zoom, sample and report: it dispatches to them.
"""
from __future__ import annotations

import math
from pathlib import Path

from nnfractal.config import ConfigError
from nnfractal.report import write_report, write_report_safely
from nnfractal.runner.run import analyse_fractal, check_run_dir, describe
from nnfractal.storage.folders import read_json_or_empty, write_json_atomic
from nnfractal.storage.run_folder import (
    BOUNDARY_FILE,
    BOXCOUNT_FILE,
    DIMENSION_PER_EPOCH_FILE,
    FRACTAL_FILE,
    SUMMARY_FILE,
    ZOOM_FILE,
)
from nnfractal.studies.sample import dimension_of_sample, is_sample_folder
from nnfractal.studies.zoom import analyse_zoom

ANALYSED_FILES = (FRACTAL_FILE, BOXCOUNT_FILE, DIMENSION_PER_EPOCH_FILE, BOUNDARY_FILE)


def analysis_name(fit_range) -> str:
    """The folder of a named analysis: 'dimension-fit-4-32' for --fit-range 4 32."""
    return "dimension-fit-" + "-".join(f"{float(v):g}" for v in fit_range)


def check_fit_range(fit_range) -> None:
    """Refuse a --fit-range that is not two finite box sizes 1 <= S_MIN < S_MAX (ConfigError)."""
    if fit_range is None:
        return
    values = list(fit_range)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   and math.isfinite(v) for v in values) \
            or not 1 <= values[0] < values[1]:
        raise ConfigError("fit_range", f"{values} is not allowed (allowed: two finite box sizes "
                          "in pixels, 1 <= S_MIN < S_MAX)")


def dimension_of(run_dir: Path, method: str = "box", fit_range=None, log=lambda *_: None,
                 write: bool = False, force: bool = False) -> dict:
    """Recompute a finished run's dimension (method box or paper) without training.

    Without `fit_range` (the default scaling-range rule), or with `write`, the result becomes the
    run's: fractal.json, its figures, summary.json's dimension and report.html are rewritten
    together, so that they (and the explorer, which reads fractal.json) never disagree. A
    `fit_range` without `write` is a named analysis beside the run, in
    `<run>/dimension-fit-<S_MIN>-<S_MAX>/` (fractal.json and the figures), and the run's own
    files are left as they are. Each written path is logged. A zoom folder's fit range rewrites
    zoom.json and its report, so it needs `write`. `force`: a fit range may give a dimension
    where the estimator's own rule finds the boundary too short (labelled). A sample folder
    (nnfractal sample) recomputes its own estimator from its curves.
    """
    if is_sample_folder(run_dir):
        if fit_range is not None:
            raise ConfigError("fit_range", "box sizes do not apply to a sample folder (allowed: "
                              "leave --fit-range out)")
        return dimension_of_sample(run_dir, log=log, report=write_report)
    if method not in ("box", "paper"):
        raise ConfigError("method", f"{method!r} is not allowed (allowed: box, paper)")
    check_fit_range(fit_range)
    run_dir = Path(run_dir)
    fit = tuple(float(v) for v in fit_range) if fit_range else None
    if (run_dir / ZOOM_FILE).exists():
        if fit is not None and not write:
            raise ConfigError("fit_range", "rewrites the zoom's zoom.json, dimension_per_frame.png "
                              "and report.html (allowed: add --write to do so)")
        result = analyse_zoom(run_dir, fit_range=fit, log=log)
        write_report_safely(run_dir, log=log)
        log(f"rewrote {run_dir}: zoom.json, dimension_per_frame.png, report.html")
        return result.pooled_paper if method == "paper" else result.pooled
    check_run_dir(run_dir)
    if fit is not None and not write:
        out = run_dir / analysis_name(fit)
        out.mkdir(exist_ok=True)
        result = analyse_fractal(run_dir, fit_range=fit, log=log, out_dir=out, force=force)
        own = read_json_or_empty(run_dir / FRACTAL_FILE).get("final") or {}
        log(f"wrote the named analysis {out}: {', '.join(ANALYSED_FILES)}; the run's own "
            f"dimension (summary.json, fractal.json, report.html, explorer) stays "
            f"{describe(own) if own else 'as it was'} (add --write to replace it)")
        return result["paper_method"] if method == "paper" else result["final"]
    result = analyse_fractal(run_dir, fit_range=fit, log=log, force=force)
    _update_summary_dimension(run_dir, result)
    write_report_safely(run_dir, log=log)          # the report shows the new figures
    log(f"rewrote {run_dir}: {', '.join(ANALYSED_FILES)}, summary.json (dimension), report.html"
        + (f" (fit range {fit[0]:g}-{fit[1]:g} px)" if fit else " (the default scaling range)"))
    return result["paper_method"] if method == "paper" else result["final"]


def _update_summary_dimension(run_dir: Path, fractal: dict) -> None:
    """summary.json's dimension fields from a new fractal.json (left alone if there is none)."""
    path = run_dir / SUMMARY_FILE
    summary = read_json_or_empty(path)
    if not summary:
        return
    final = fractal["final"]
    summary.update(fractal_dimension=final["dimension"],
                   fractal_dimension_ci95=[final["ci_low"], final["ci_high"]],
                   fit_range=fractal.get("fit_range"))
    write_json_atomic(path, summary)
