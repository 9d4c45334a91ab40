"""A tiny study written on the skeleton of nnfractal/studies/study.py, as a new kind of study is:
only its plan, unit and result types, its analysis and its report section.

The twin study trains a grid run and its twin, the same grid with every hyperparameter moved by
`ulps` rounding units of float64 (the window's bounds, in axis units, moved by that many units in
the last place), and counts the pixels whose outcome (converged or diverged) differs: on a chaotic
boundary a few rounding units flip outcomes.

Run as a script it is a command (``python twin_study.py OUT`` / ``--resume OUT``) whose exit codes
and lines are the CLI's (cli/common.run_resumable): used by test_study.py with a real SIGINT.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnfractal.config import Config, build_config, config_from_dict
from nnfractal.report.html import esc, fmt_num, page, section, table
from nnfractal.storage.records import JsonRecord
from nnfractal.storage.run_folder import REPORT_FILE, score_map_of
from nnfractal.studies.study import Study, StudyOptions, check_out, resume, start

UNITS = ("run", "twin")


# ---- the plan, unit and result types ---------------------------------------------------------------

@dataclass(kw_only=True)
class TwinPlan(JsonRecord):
    """twin_plan.json: the run's config and how far its twin is moved."""
    json_format = "nnfractal-twin-plan"
    format: str = "nnfractal-twin-plan"
    config: dict
    ulps: int

    def configs(self) -> dict[str, Config]:
        cfg = config_from_dict(self.config)
        moved = [float(v) for v in np.asarray(cfg.mnmx, dtype=np.float64)
                 + self.ulps * np.spacing(np.asarray(cfg.mnmx, dtype=np.float64))]
        return {"run": cfg, "twin": cfg.replace(mnmx=tuple(moved))}


@dataclass(kw_only=True)
class TwinUnit(JsonRecord):
    name: str                  # "run" or "twin"
    dir: str
    mnmx: list[float]
    trained_now: bool


@dataclass(kw_only=True)
class TwinResult(JsonRecord):
    """twin.json: how many outcomes the move flipped."""
    json_format = "nnfractal-twin"
    format: str = "nnfractal-twin"
    ulps: int
    units: list[TwinUnit]
    n_pixels: int
    n_differ: int
    differ: list[list[bool]]   # (rows, cols): the pixels whose outcome differs

    @property
    def fraction(self) -> float:
        return self.n_differ / self.n_pixels


# ---- the study: its units and its analysis ----------------------------------------------------------

class TwinStudy(Study[TwinPlan, TwinResult]):
    command = "twin"
    what = "twin study"
    plan_type = TwinPlan
    plan_file = "twin_plan.json"
    result_type = TwinResult
    result_file = "twin.json"

    def train(self) -> list[TwinUnit]:
        units = []
        for name, cfg in self.plan.configs().items():
            self.check_stop(f"twin study interrupted before the {name}")
            trained = self.ensure_run(cfg, self.folder / name, self.unit_log(f"[{name}]"))
            units.append(TwinUnit(name=name, dir=name, mnmx=list(cfg.mnmx), trained_now=trained))
        return units

    def analyse(self, units: list[TwinUnit]) -> TwinResult:
        run, twin = (score_map_of(self.folder / u.dir)[1] for u in units)
        differ = (run < 0) != (twin < 0)
        self.log(f"twin study: {int(differ.sum())} of {differ.size} outcomes differ")
        return TwinResult(ulps=self.plan.ulps, units=units, n_pixels=int(differ.size),
                          n_differ=int(differ.sum()), differ=differ.tolist())


# ---- its report section -----------------------------------------------------------------------------

def write_twin_report(folder, display_path=None) -> Path:
    """The report writer this study hands the skeleton (StudyOptions.report)."""
    from nnfractal.storage.records import read_record
    folder = Path(folder)
    if not (folder / TwinStudy.result_file).exists():          # a unit's own folder
        from nnfractal.report import write_report
        return write_report(folder, display_path=display_path)
    result = read_record(TwinResult, folder / TwinStudy.result_file, "twin.json")
    rows = [[esc(u.name), esc(str(u.mnmx))] for u in result.units]
    body = section("Outcomes", f"<p>{fmt_num(result.n_differ)} of {fmt_num(result.n_pixels)} "
                   f"outcomes differ ({result.fraction:.1%}) after moving every hyperparameter by "
                   f"{result.ulps} rounding units.</p>" + table(["unit", "window"], rows),
                   "outcomes")
    path = folder / REPORT_FILE
    path.write_text(page("twin study", "twin report", "", body, [("outcomes", "Outcomes")],
                         display_path or folder))
    return path


# ---- as a command ----------------------------------------------------------------------------------

def twin(out: Path, cfg: Config, ulps: int, options: StudyOptions) -> Path:
    check_out(TwinStudy, out)                      # planning: refuse before anything is written
    return start(TwinStudy, TwinPlan(config=cfg.to_dict(), ulps=ulps), out, options)


def main(argv: list[str]) -> int:
    from nnfractal.cli.common import run_resumable
    options = StudyOptions(progress=False, report=write_twin_report)
    if argv[0] == "--resume":
        return run_resumable(lambda: resume(TwinStudy, Path(argv[1]), options), [],
                             "twin --resume")
    return run_resumable(lambda: twin(Path(argv[0]), slow_config(int(argv[1])), 3, options), [],
                         "twin --resume")


def slow_config(steps: int) -> Config:
    """Each unit one chunk of 64 models of the paper's single-datapoint MLP (seconds at 600
    steps): a signal lands while a unit trains."""
    return build_config("paper-single", resolution=8, steps=steps, tile_batch=64)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
