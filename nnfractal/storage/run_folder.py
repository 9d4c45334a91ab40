"""A run folder as one object: where each file of a run lives, and how a folder is created,
claimed, locked, read and written, so that two processes, a crash or a signal never lose anything.

A run folder (``nnfractal run``, a zoom frame, a comparison grid, a sample, an explorer window)::

    config.toml      the resolved config; flock'ed while a process trains the run
    store.zarr/      curves, axes, tile flags, metadata (store.py)
    summary.json     what the run measured and on which machine
    fractal.json     every dimension estimate
    report.html      the self-contained report
    map.png, ...     pictures (render.py)
    error.log        only after a failure: its traceback

`RunFolder` names these paths (this module is the only one that spells them), reads and writes
the config, opens or creates the store, writes files atomically (folders.py), holds the lock, and
creates a folder in one step:

- `RunFolder.staged(out)`: a result folder is built under a hidden name beside `out` and renamed
  into place when complete; on any exception it is removed;
- `RunFolder.claim_new(out, create, refuse)`: a new run's config and empty store are made in a
  staging folder, locked, then renamed to `out`; of two processes claiming one `out`, one wins.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnfractal.config import Config, config_from_toml, to_toml
from nnfractal.errors import RunFolderError, StoreError, one_line
from nnfractal.training.measure import metric_scores, prefix_metric_scores, readout_curves

from .folders import (
    claim_folder,
    json_text,
    keep_unclaimed,
    new_staging_folder,
    remove_staging_folder,
    unrenamable_reason,
    write_text_atomic,
)
from .store import RunStore

CONFIG_FILE = "config.toml"
STORE_DIR = "store.zarr"
SUMMARY_FILE = "summary.json"
FRACTAL_FILE = "fractal.json"
REPORT_FILE = "report.html"
ERROR_LOG = "error.log"
MAP_FILE = "map.png"
BOUNDARY_FILE = "boundary.png"
BOXCOUNT_FILE = "boxcount.png"
DIMENSION_PER_EPOCH_FILE = "fd_per_epoch.png"
ZOOM_FILE = "zoom.json"          # a zoom folder's description: marks a folder as a zoom

# How a report is written into a finished folder: write_report(folder, display_path=None) -> the
# report's path, raising on failure. The command layer passes report.write_report down, so that
# the studies below it never import the report (which reads them).
ReportWriter = Callable[..., Path]


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run; `path` need not exist yet. ``folder / name`` is any other file."""
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    # ---- paths --------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def store_dir(self) -> Path:
        return self.path / STORE_DIR

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def fractal_file(self) -> Path:
        return self.path / FRACTAL_FILE

    @property
    def report_file(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def error_log(self) -> Path:
        return self.path / ERROR_LOG

    def holds_run(self) -> bool:
        """True when the folder has a config.toml and a store.zarr (finished or not)."""
        return self.config_file.exists() and self.store_dir.exists()

    # ---- config and store ---------------------------------------------------------------------
    def read_config(self) -> Config:
        """The run's config (ConfigError naming what is wrong in config.toml)."""
        return config_from_toml(self.config_file)

    def write_config(self, cfg: Config) -> None:
        write_text_atomic(self.config_file, to_toml(cfg))

    def open_store(self, mode: str = "r") -> RunStore:
        return RunStore.open(self.store_dir, mode=mode)

    def create_store(self, cfg: Config, **layout: Any) -> RunStore:
        """An empty store for `cfg` (`layout`: RunStore.create's x, y, curve_lengths, ...)."""
        return RunStore.create(self.store_dir, config=cfg.to_dict(), **layout)

    # ---- files --------------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        """Write `name` atomically (folders.write_text_atomic); returns its path."""
        write_text_atomic(self.path / name, text)
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        """Strict JSON (non-finite floats as null), written atomically; returns its path."""
        return self.write_text(name, json_text(data))

    # ---- the lock -----------------------------------------------------------------------------
    @contextmanager
    def lock(self, shown: Path | None = None) -> Iterator[RunFolder]:
        """Hold an exclusive lock on the run (flock on its config.toml: no new file, released by
        the OS when the process dies) so two processes never train one run; a second one is
        refused (RunFolderError naming `shown`, default the folder)."""
        with lock_file(self.config_file, shown or self.path):
            yield self

    def score_map(self, metric: str | None = None) -> tuple[Config, np.ndarray]:
        """The run's config and its final score map (rows = y, cols = x), as its map.png shows."""
        cfg = self.read_config()
        return cfg, score_map(self.open_store(), cfg, metric)

    def locked_by_another(self) -> bool:
        """True while another process holds the run's lock."""
        try:
            with open(self.config_file, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        return False

    # ---- refusals before any work -------------------------------------------------------------
    def check_new(self) -> None:
        """Refuse an output folder that is not new or empty, or cannot be created."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"out: {out} exists and is not a folder (allowed: a new or empty folder)")
        if out.exists() and any(out.iterdir()):
            raise RunFolderError(f"out: {out} is not empty (allowed: a new or empty folder)")
        reason = unrenamable_reason(out)     # the result is renamed onto it: refuse now, not after
        if reason:
            raise RunFolderError(f"out: {out} is an empty folder that cannot be replaced{reason} "
                                 "(allowed: a new folder, or an empty one that is no mount point "
                                 "and not immutable)")
        # The run is renamed into place, so the parent must be writable; nothing is written into
        # `out` itself (a probe file there would make it non-empty for a concurrent start).
        probe = out.parent if str(out.parent) else Path(".")
        while not probe.exists():
            probe = probe.parent
        try:
            _write_probe(probe)
        except OSError as err:
            raise RunFolderError(f"out: {out} cannot be created ({probe} is not writable: "
                                 f"{err.strerror or one_line(err)})") from None

    def check_out(self, cfg: Config, resume_command: str = "nnfractal run --resume") -> None:
        """Refuse a folder that already holds another run (or anything else) before any work.
        `resume_command`: how the refusal of an unfinished run says to finish it."""
        out = self.path
        if out.is_dir() and any(out.iterdir()):
            if not self.config_file.exists():
                raise RunFolderError(f"out: {out} is not empty and holds no run (allowed: a new or empty folder)")
            try:
                other = self.read_config()
            except Exception:
                raise RunFolderError(f"out: {out} holds a run whose config.toml is unreadable") from None
            if other.to_dict() != cfg.to_dict():
                raise RunFolderError(f"out: {out} already holds a different run (allowed: a new or empty folder)")
            if self.locked_by_another():
                raise RunFolderError(f"out: {out} is being trained by another nnfractal process "
                                     "(allowed: a new or empty folder)")
            if not self.summary_file.exists():
                raise RunFolderError(f"out: {out} already holds this run, unfinished "
                                     f"(resume with: {resume_command} {out})")
            raise RunFolderError(f"out: {out} already holds this run (allowed: a new or empty folder)")
        self.check_new()

    def check_writable(self) -> None:
        """Refuse a folder this process cannot write."""
        try:
            _write_probe(self.path)
        except OSError as err:
            raise RunFolderError(f"out: {self.path} is not writable "
                                 f"({err.strerror or one_line(err)})") from None

    def check_finished_run(self) -> None:
        """Refuse a folder that is not a finished run (StoreError, one line naming run_dir)."""
        run_dir = self.path
        if not run_dir.is_dir():
            raise StoreError(f"run_dir: {run_dir} does not exist or is not a folder")
        if not self.holds_run():
            raise StoreError(f"run_dir: {run_dir} is not a run folder (no config.toml or store.zarr)")
        if not self.open_store().complete:
            raise StoreError(f"run_dir: {run_dir} holds an incomplete run")

    # ---- creating a folder in one step ----------------------------------------------------------
    @classmethod
    @contextmanager
    def staged(cls, out: Path) -> Iterator[RunFolder]:
        """Build a result folder under a unique temporary name beside `out` (the folder yielded)
        and rename it to `out` (absent or empty) when the block succeeds; on any exception,
        Ctrl-C and SIGTERM included, remove it. A crash never leaves a half-written folder at
        `out`, and a process never removes what another made. If `out` was taken by another
        process while the block ran, the finished result is kept under a visible sibling name
        and RunFolderError says where."""
        work = new_staging_folder(out)
        try:
            yield cls(work)
        except BaseException:
            remove_staging_folder(work)
            raise
        try:
            claimed = claim_folder(work, out)
        except BaseException:
            remove_staging_folder(work)
            raise
        if not claimed:
            kept = keep_unclaimed(work, out)
            raise RunFolderError(f"out: {out} was filled by another process while this one ran "
                                 f"(allowed: a new or empty folder); the result is kept in {kept}")

    @classmethod
    @contextmanager
    def claim_new(cls, out: Path, create: Callable[[RunFolder], Any],
                  refuse_as_later_start: Callable[[], None],
                  lock_name: str = CONFIG_FILE) -> Iterator[RunFolder]:
        """Create a new run or sample folder at `out` atomically and hold its lock while the
        block runs.

        `create(staging)` writes config.toml and the empty store into a unique staging folder
        beside `out`; its config.toml (`lock_name`: the file a folder of another kind, a zoom,
        is locked by) is locked (the flock stays with the open file across the
        rename), and the folder is renamed to `out`, which succeeds only while `out` is absent or
        empty. Of two processes started on the same `out` at the same instant exactly one gets
        it; the other removes only its own staging folder and is refused as a sequential second
        start would be (`refuse_as_later_start()` raises that line). A failure while writing (a
        full disk) leaves nothing behind."""
        try:
            work = new_staging_folder(out)
        except OSError as err:
            raise RunFolderError(f"out: cannot write {out} ({err.strerror or one_line(err)})") from None
        lock = None
        try:
            create(cls(work))
            lock = open(work / lock_name, "rb")
            _flock_or_refuse(lock, out)
            if not claim_folder(work, out):
                refuse_as_later_start()
                raise RunFolderError(f"out: {out} was taken by another process (allowed: a new or "
                                     "empty folder)")
        except BaseException:
            if lock is not None:
                lock.close()
            remove_staging_folder(work)
            raise
        try:
            yield cls(out)
        finally:
            lock.close()


def score_map_of(run_dir: Path) -> tuple[Config, np.ndarray]:
    """A finished run's config and its final score map (rows=y, cols=x), as its map.png shows."""
    return RunFolder(run_dir).score_map()


# ---- the store read as maps ----------------------------------------------------------------------

def metric_curves(store: RunStore, cfg: Config, metric: str) -> tuple[np.ndarray, list[int]]:
    """A metric's curves as the map reads them, and the epoch each curve value ends.

    Training curves have one value per step (or per epoch with readout "epoch"); held-out curves
    one per evaluation. Returns (curves (rows, cols, T'), epoch_of_value (T',)).
    """
    curves = store.read_curves(metric)
    schedule = store.attrs["schedule"]
    if metric.startswith("test"):
        return curves, list(schedule["eval_epochs"])
    per_epoch = int(schedule["steps_per_epoch"])
    curves = readout_curves(curves, metric, cfg.readout, per_epoch)
    if cfg.readout == "epoch":
        return curves, list(range(1, curves.shape[-1] + 1))
    return curves, [t // per_epoch + 1 for t in range(curves.shape[-1])]   # value t: before step t


def map_epochs(store: RunStore, cfg: Config, metric: str | None = None) -> list[int]:
    """The epochs after which a metric has a map (1, 2, ... or the evaluation epochs)."""
    _, value_epoch = metric_curves(store, cfg, metric or cfg.metric)
    return sorted({int(e) for e in value_epoch if e >= 1})


def score_map(store: RunStore, cfg: Config, metric: str | None = None,
              epochs: list[int] | None = None) -> np.ndarray:
    """Scores (rows, cols) of a metric at the end of training, or a stack (len(epochs), rows, cols)
    of the scores the run had after each of `epochs`."""
    final, by_epoch = score_maps(store, cfg, metric, epochs or [])
    return final if epochs is None else by_epoch


def score_maps(store: RunStore, cfg: Config, metric: str | None,
               epochs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """`score_map` at the end of training and after each of `epochs`, from one read of the
    curves: (rows, cols) and (len(epochs), rows, cols)."""
    metric = metric or cfg.metric
    curves, value_epoch = metric_curves(store, cfg, metric)
    value_epoch = np.asarray(value_epoch)
    per_epoch = int(store.attrs["schedule"]["steps_per_epoch"])
    rows, cols = curves.shape[:2]
    ends = [int(np.searchsorted(value_epoch, e, side="right")) for e in epochs]
    by_epoch = (prefix_metric_scores(curves, ends, metric, cfg, per_epoch) if ends
                else np.empty((0, rows, cols)))
    return metric_scores(curves, metric, cfg, per_epoch), by_epoch.reshape(len(ends), rows, cols)


# ---- locks ---------------------------------------------------------------------------------------

@contextmanager
def lock_file(path: Path, shown: Path) -> Iterator[None]:
    """Hold an exclusive flock on the existing file `path` while the block runs; a second process
    is refused (RunFolderError: `shown` is being trained by another nnfractal process)."""
    with open(path, "rb") as f:
        _flock_or_refuse(f, shown)
        yield


def _flock_or_refuse(f, shown: Path) -> None:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise RunFolderError(f"out: {shown} is being trained by another nnfractal process "
                             "(allowed: one process per run folder)") from None


def _write_probe(folder: Path) -> None:
    """Create and remove a file in `folder`: a real write, since root ignores permission bits
    but not a read-only filesystem (OSError when it cannot)."""
    fd, name = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
    os.close(fd)
    os.unlink(name)


def write_report_safely(write_report: ReportWriter | None, folder: Path, *,
                        display_path: Path | None = None, log=print) -> Path | None:
    """`write_report` for the end of a run or zoom: a failure is logged in one line, not raised,
    so a finished computation is never lost to its report. None: no report, nothing logged.
    Returns the report's path or None."""
    if write_report is None:
        return None
    try:
        path = write_report(folder, display_path=display_path)
    except Exception as err:  # noqa: BLE001 - the report is a convenience, the run is the result
        log(f"{REPORT_FILE} not written ({type(err).__name__}: {err}); "
            f"`nnfractal report {display_path or folder}` retries")
        return None
    log(f"report: {Path(display_path) / REPORT_FILE if display_path else path}")
    return path
