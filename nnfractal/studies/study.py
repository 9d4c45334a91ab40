"""The skeleton every study is written on: a plan written first, one folder claimed and locked,
units trained under one interrupt guard with one resume line, typed results.

A study trains many runs (its *units*: zoom frames, comparison grids, samples) into one folder
and makes one result of them. A kind of study is a `Study` subclass that brings only its own
part: its plan and result types (`JsonRecord` dataclasses: the definition of its plan and result
files), `train` (its units, each through `ensure_run` or its own helper, so that a finished unit is
read, an unfinished one resumed, a new one trained), `analyse` (the numbers), `draw` (the
figures) and a report section (nnfractal/report/). The rest is here, the same for every study:

- `start(kind, plan, out, options)`: once every input is accepted (the caller's planning writes
  nothing), `out` appears in one step holding the plan file (a staging folder renamed: of two
  processes started on one `out`, exactly one gets it) and stays locked (flock on the plan file)
  while this process works: a second process is refused in one line. A refusal from a unit (its
  data, say) before any unit holds training removes `out` again: a refused input writes nothing.
- `resume(kind, folder, options)`: reads the plan back (a folder of another kind is refused in one
  line), locks the folder, and runs the study again: finished units are read, unfinished ones
  resumed, so a resumed study gives an uninterrupted one's numbers, bit for bit.
- One interrupt guard (`run_study`): Ctrl-C or SIGTERM stops the unit in training after its
  current chunk and no other unit starts; the stop becomes RunInterrupted (exit 130) and a failure
  RunFailed (exit 2), both saying ``resume with: nnfractal <command> --resume DIR``. Errors are
  typed (errors.py): the study re-addresses a unit's stop to its own folder, never parsing text.
- After training: `analyse` -> the result file -> `draw` -> the result file again -> the report. A
  drawing failure keeps every unit, writes error.log and says how to redraw.

`StudyOptions` is how a study runs (data folder, progress bar, log, storage limit, report writer,
backend), the same for all its units and never part of its plan.
"""
from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from nnfractal.config import Config
from nnfractal.errors import (
    ConfigError,
    DataError,
    RunFailed,
    RunFolderError,
    RunInterrupted,
    StoreError,
    one_line,
)
from nnfractal.storage.records import JsonRecord, read_record
from nnfractal.storage.run_folder import ReportWriter, RunFolder, lock_file, write_report_safely

# run and backends are imported in the functions that use them: they load torch (seconds),
# and `nnfractal` imports the studies at start, before its allocator restart.

PlanT = TypeVar("PlanT", bound=JsonRecord)
ResultT = TypeVar("ResultT", bound=JsonRecord)

# Refusals that a unit can raise after the folder exists (its data, its window): with no unit
# trained yet, the study's folder is removed again.
REFUSALS = (ConfigError, DataError, RunFolderError, StoreError)


@dataclass(frozen=True)
class StudyOptions:
    """How a study runs, the same for all its units (never part of its plan).

    `report`: writes report.html into a finished folder (the command layer passes
    nnfractal.report.write_report; None: no reports). `max_storage`: GiB of curves allowed per
    unit (None: the free disk)."""
    data_dir: Path | None = None
    progress: bool = True
    log: Callable[[str], None] = print
    max_storage: float | None = None
    report: ReportWriter | None = None
    backend: str = "local"
    address: str | None = None

    def logging_to(self, log: Callable[[str], None]) -> StudyOptions:
        return replace(self, log=log)


class Study(Generic[PlanT, ResultT]):
    """One kind of study (see the module docstring). A subclass sets the class attributes and
    writes `train` and `analyse` (and, where it has figures, `draw`)."""
    command: ClassVar[str]                  # "zoom": resumed by `nnfractal zoom --resume DIR`
    what: ClassVar[str]                     # "zoom": "zoom interrupted before ..."
    unit_name: ClassVar[str] = "unit"       # "frame": "finished frames and tiles are kept"
    plan_type: ClassVar[type[JsonRecord]]
    plan_file: ClassVar[str] = "plan.json"
    result_type: ClassVar[type[JsonRecord]]
    result_file: ClassVar[str]
    redraw_command: ClassVar[str | None] = None   # default: the resume command

    def __init__(self, folder: Path, plan: PlanT, options: StudyOptions, shown: Path | None = None):
        self.folder = Path(folder)          # where the study works
        self.shown = Path(shown or folder)  # its name in messages and reports
        self.plan = plan
        self.options = options
        self.log = options.log
        self.began = time.perf_counter()

    # ---- the study's own part --------------------------------------------------------------------
    def announce(self) -> None:
        """Log what is about to be trained (before any training)."""

    def train(self) -> Any:
        """Train every unit not finished (`ensure_run`, `check_stop` before each); returns the
        units' records for `analyse`."""
        raise NotImplementedError

    def analyse(self, units: Any) -> ResultT:
        """The result (numbers only) from the units' records and folders."""
        raise NotImplementedError

    def draw(self, result: ResultT) -> ResultT:
        """Draw the study's figures; returns the result with their names (default: no figures)."""
        return result

    @classmethod
    def finished(cls, folder: Path) -> bool:
        """True when the study in `folder` is complete: a resume has nothing left to do and a new
        start there is refused as "not empty" (default: never; a resume analyses and draws
        again)."""
        return False

    def has_training(self) -> bool:
        """True once a unit holds training (a refusal then keeps the folder)."""
        return any(not p.name.startswith(".") and p.name != self.plan_file
                   for p in self.folder.iterdir())

    # ---- helpers for `train` ---------------------------------------------------------------------
    @property
    def resume_command(self) -> str:
        return f"nnfractal {self.command} --resume"

    def elapsed(self) -> float:
        """Seconds since this session of the study began."""
        return time.perf_counter() - self.began

    def check_stop(self, where: str) -> None:
        """Raise KeyboardInterrupt(`where`) once Ctrl-C or SIGTERM arrived: no other unit starts."""
        from nnfractal.runner.backends import stop_if_requested
        stop_if_requested(where)

    def unit_log(self, prefix: str) -> Callable[[str], None]:
        """A log that prefixes each line with `prefix` and says paths relative to the folder."""
        inside = str(self.folder) + "/"

        def log(msg: object) -> None:
            self.log(f"{prefix} " + str(msg).replace(inside, ""))
        return log

    def ensure_run(self, cfg: Config, folder: Path, log: Callable[[str], None], *,
                   epoch_maps: bool = False, warn_resolution: bool = False) -> bool:
        """The grid run of `cfg` in `folder`: trained when new, resumed when unfinished (its
        finished tiles kept), read when finished. A folder holding another window is refused
        (StoreError). Returns True when this call trained."""
        from nnfractal.runner.run import execute, resume
        o = self.options
        run = RunFolder(folder)
        if not folder.exists():
            execute(cfg, folder, data_dir=o.data_dir, progress=o.progress, log=log,
                    epoch_maps=epoch_maps, warn_resolution=warn_resolution,
                    max_storage=o.max_storage, report=o.report, backend=o.backend,
                    address=o.address)
            return True
        check_unit_config(run, cfg)
        if run.summary_file.exists() and run.open_store().complete:
            return False
        resume(folder, data_dir=o.data_dir, progress=o.progress, log=log, epoch_maps=epoch_maps,
               report=o.report, backend=o.backend, address=o.address)
        return True


S = TypeVar("S", bound=Study)


def check_unit_config(run: RunFolder, cfg: Config) -> None:
    """An existing unit folder must hold the window and grid the study computes for it."""
    try:
        have = run.read_config()
    except (ConfigError, OSError):
        raise StoreError(f"resume: {run} is not a unit of this study (no readable "
                         "config.toml)") from None
    if list(have.mnmx) != list(cfg.mnmx) or have.resolution != cfg.resolution:
        raise StoreError(f"resume: {run} holds window {list(have.mnmx)} at {have.resolution} px; "
                         f"the study computes {list(cfg.mnmx)} at {cfg.resolution} px")


# ---- starting and resuming ------------------------------------------------------------------------

def check_out(kind: type[Study], out: Path) -> None:
    """Refuse an output folder that is not new (RunFolderError, one line): one that holds an
    unfinished study of this kind says how to resume it."""
    if (Path(out) / kind.plan_file).is_file() and not kind.finished(out):
        raise RunFolderError(f"out: {out} holds an unfinished {kind.what} (resume with: "
                             f"nnfractal {kind.command} --resume {out})")
    RunFolder(out).check_new()


def start(kind: type[S], plan: PlanT, out: Path, options: StudyOptions, **state: Any) -> Path:
    """Run a new study of `kind` into `out` (see the module docstring); returns `out`.

    The caller has checked every input (`plan` is accepted, `out` is new: `check_out`). `state`:
    keyword arguments for the study's constructor (what planning computed)."""
    out = Path(out)

    def create(folder: RunFolder) -> None:
        plan.write(folder / kind.plan_file)

    with RunFolder.claim_new(out, create, lambda: check_out(kind, out),
                             lock_name=kind.plan_file):
        study = kind(out, plan, options, **state)
        try:
            failure = run_study(study)
        except REFUSALS:
            if not study.has_training():
                shutil.rmtree(out, ignore_errors=True)      # ours, locked: nothing was trained
            raise
    if failure is not None:
        raise failure
    return out


def read_plan(kind: type[Study], folder: Path) -> JsonRecord:
    """The plan of a study folder of `kind`; StoreError (one line) for any other folder."""
    path = Path(folder) / kind.plan_file
    if not path.is_file():
        raise StoreError(f"resume: {folder} is not a {kind.what} (no {kind.plan_file}; allowed: "
                         f"a folder written by nnfractal {kind.command})")
    return read_record(kind.plan_type, path, f"{kind.what} plan", "resume")


def resume(kind: type[S], folder: Path, options: StudyOptions) -> Path:
    """Finish a stopped study: its units not finished are trained or resumed, then it is analysed
    and drawn. A finished study (`Study.finished`) is left as it is. Refuses (one line, nothing
    written) a folder of another kind and one another process holds."""
    folder = Path(folder)
    study = kind(folder, read_plan(kind, folder), options)
    RunFolder(folder).check_writable()
    with lock_file(folder / kind.plan_file, folder):
        if kind.finished(folder):
            options.log(f"{folder} is complete: nothing to train or draw")
            return folder
        options.log(f"{kind.what}: resuming {folder}")
        failure = run_study(study)
    if failure is not None:
        raise failure
    return folder


# ---- one session of a study -------------------------------------------------------------------------

def run_study(study: Study) -> RunFailed | None:
    """Train, analyse, write the result, draw, write it again, write the report. The caller
    holds the folder. Returns a drawing failure (every unit is kept; the caller raises it once
    the folder is in place), None when all went well."""
    with _training_guard(study):
        study.announce()
        units = study.train()
        study.check_stop(f"{study.what} interrupted after its {study.unit_name}s, before drawing")
    try:
        result = study.analyse(units)
        result.write(study.folder / study.result_file)
        result = study.draw(result)
        result.write(study.folder / study.result_file)
    except KeyboardInterrupt:
        raise RunInterrupted(f"{study.what} interrupted while drawing", study.shown,
                             study.resume_command, f"every {study.unit_name} is kept") from None
    except Exception as err:  # noqa: BLE001 - the trained units are the result; keep them
        return _drawing_failure(study, err)
    write_report_safely(study.options.report, study.folder, log=study.log)
    return None


@contextmanager
def _training_guard(study: Study) -> Iterator[None]:
    """Ctrl-C or SIGTERM: the unit in training stops after its chunk and no other starts. Every
    stop and failure is said for the study's folder and resume command."""
    from nnfractal.runner.backends import graceful_interrupt
    kept = f"finished {study.unit_name}s and tiles are kept"
    try:
        with graceful_interrupt():
            yield
    except RunInterrupted as err:
        raise err.for_folder(study.shown, study.resume_command, kept) from None
    except RunFailed as err:
        raise err.for_folder(study.shown, study.resume_command) from None
    except KeyboardInterrupt as err:
        raise RunInterrupted(str(err) or f"{study.what} interrupted", study.shown,
                             study.resume_command, kept) from None


def _drawing_failure(study: Study, err: Exception) -> RunFailed:
    """The failure of analysing or drawing, as one line: its traceback goes to error.log (best
    effort), every unit and the result file so far are kept."""
    run = RunFolder(study.folder)
    where = ""
    try:
        run.error_log.write_text(traceback.format_exc())
        where = f"; traceback in {RunFolder(study.shown).error_log}"
    except OSError:
        pass
    return RunFailed(f"drawing stopped: {one_line(err)}; every {study.unit_name} is kept{where}",
                     study.shown, study.redraw_command or study.resume_command,
                     verb="redraw" if study.redraw_command else "resume")
