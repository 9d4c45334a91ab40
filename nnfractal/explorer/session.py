"""An explorer session: a tree of windows (each a run folder) and one worker that trains them.

A session lives in a folder::

    <session>/explore.json        which windows exist and their parents (ids only, never paths)
    <session>/explore.log         tracebacks of failed jobs
    <session>/windows/w000/       the first window (a new session; a session on a run uses the run)
    <session>/windows/w001/ ...   one run folder per zoomed window: config.toml, store.zarr, map.png

Window and job ids are integers made here; a folder name is always derived from an id
(``w{id:03d}``), so nothing a client sends ever becomes a path. One worker thread runs one job at
a time (training a window, or writing a report); other jobs wait in a bounded queue. A failing job
marks itself and its window failed and the worker carries on.

Windows are trained chunk by chunk with `engine.train_chunk`, exactly as `engine.train` does
(same padding to ``tile_batch``, so the numbers equal those of ``nnfractal run`` with the same
config), which gives per-step progress and lets the page draw each finished chunk at once.
"""
from __future__ import annotations

import io
import json
import math
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from nnfractal.config import Config, ConfigError, recorded_metrics
from nnfractal.errors import is_int, one_line
from nnfractal.estimators.boxcount import boundary, estimate_dimension
from nnfractal.models import arch_label, build_family
from nnfractal.render.maps import map_figure
from nnfractal.runner import chaos
from nnfractal.runner.run import describe, library_versions, load_data, render_run, score_map
from nnfractal.storage.folders import json_text, write_text_atomic
from nnfractal.storage.run_folder import MAP_FILE, SUMMARY_FILE, RunFolder
from nnfractal.storage.store import StoreError
from nnfractal.training import engine  # engine.train looked up per call: tests replace it
from nnfractal.training.grid import axes, axis_labels, grid_points
from nnfractal.training.measure import point_scores
from nnfractal.window import MIN_ULPS_APART, ulps_per_pixel_on_axis
from nnfractal.window import Window as AxisWindow  # the explorer's own Window is a tree node

RES_MIN, RES_MAX = 2, 512          # pixels per side of a window
MAX_QUEUED = 8                     # jobs waiting behind the running one
MAX_COORD = 1e300                  # |mnmx values|
MAX_ID = 10**6
SESSION_FILE = "explore.json"
LOG_FILE = "explore.log"
WINDOWS_DIR = "windows"
FORMAT = "nnfractal-explore"

# Defaults of a new session's first window for the MLP presets (seconds, not minutes, on a CPU).
NEW_SESSION_DEFAULTS = {"resolution": 64, "steps": 200}
WINDOW_RESOLUTION = 64       # px per side of a dragged window unless asked (4096 models)


class ExploreError(Exception):
    """A refused request or session: `status` is the HTTP status, `str(err)` one line."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class _Cancelled(Exception):
    pass


def check_window(mnmx, resolution, axis_scale: str, precision: str = "float64") -> None:
    """Refuse a window that cannot be drawn: a resolution outside RES_MIN..RES_MAX, numbers that
    are not finite, empty ranges, or neighbouring pixels too close for the run's precision to
    tell apart (the zoom command's rule: at least window.MIN_ULPS_APART rounding units)."""
    if not is_int(resolution) or not RES_MIN <= resolution <= RES_MAX:
        raise ExploreError(400, f"resolution: {resolution!r} is not allowed "
                           f"(allowed: an integer {RES_MIN}..{RES_MAX})")
    values = list(mnmx)
    if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   and math.isfinite(v) and abs(v) <= MAX_COORD for v in values):
        raise ExploreError(400, f"mnmx: {values!r} is not allowed (allowed: four finite numbers "
                           f"y_min y_max x_min x_max, each within +-{MAX_COORD:g})")
    window = AxisWindow.from_mnmx(values, axis_scale)
    for name, lo, hi in (("y", window.y0, window.y1), ("x", window.x0, window.x1)):
        if not lo < hi:
            raise ExploreError(400, f"mnmx: {name}_min {lo!r} is not below {name}_max {hi!r} "
                               "(allowed: y_min < y_max and x_min < x_max, in the order "
                               "y_min y_max x_min x_max)")
        ulps = ulps_per_pixel_on_axis(lo, hi, resolution, axis_scale, precision)
        if not ulps >= MIN_ULPS_APART:
            raise ExploreError(400, f"mnmx: the {name} range {lo!r}..{hi!r} is too narrow for "
                               f"{resolution} pixels in {precision} (neighbouring pixels are "
                               f"{ulps:.3g} rounding units apart; allowed: at least "
                               f"{MIN_ULPS_APART:g}; zoom out or lower the resolution)")


def _one_line(err: BaseException) -> str:
    """errors.one_line for a job's status, at most 400 characters of message, never empty."""
    return one_line(err, limit=403) if str(err).split() else f"{type(err).__name__}: (no message)"


# ---- windows and jobs ----------------------------------------------------------------------------

@dataclass
class Window:
    id: int
    parent: int | None
    cfg: Config
    folder: Path                      # server side only; never sent, never taken from a request
    status: str = "queued"            # queued | running | done | failed | cancelled
    job: int | None = None
    error: str | None = None
    scores: np.ndarray | None = None  # (rows, cols) once done
    partial: np.ndarray | None = None  # (rows * cols,) while training, NaN = not trained yet
    losses: list | None = None        # while training: [(lo, hi, train_loss (hi - lo, steps))]
    done_points: int = 0
    dimension: dict | None = None
    wall_time_s: float | None = None
    report: Path | None = None
    chaos: dict | None = None          # once done and read: the flips of its twins (chaos.py)

    @property
    def total_points(self) -> int:
        return self.cfg.resolution * self.cfg.resolution


@dataclass
class Job:
    id: int
    kind: str                         # window | report
    window: int
    status: str = "queued"            # queued | running | done | failed | cancelled
    phase: str = "queued"
    done: int = 0                     # model-steps (window) or phases (report) done
    total: int = 1
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self, position: int | None = None) -> dict[str, Any]:
        elapsed = None
        if self.started is not None:
            elapsed = round((self.finished or time.time()) - self.started, 3)
        return {"id": self.id, "kind": self.kind, "window": self.window, "status": self.status,
                "phase": self.phase, "progress": round(min(1.0, self.done / max(1, self.total)), 4),
                "error": self.error, "position": position, "elapsed_s": elapsed}


def _run_score_map(store, cfg: Config) -> np.ndarray:
    """The map of a run's metric, as the run draws it."""
    return score_map(store, cfg)


def schedule_of(cfg: Config, data) -> dict[str, Any]:
    """The schedule attributes a store of this run gets (as run.execute writes them)."""
    s = engine.make_schedule(cfg, data.n_train, has_test=data.n_test > 0 and cfg.eval_every > 0)
    return {"steps": s.steps, "steps_per_epoch": s.steps_per_epoch,
            "eval_epochs": list(s.eval_epochs)}


def dimension_summary(score_map: np.ndarray) -> dict[str, Any]:
    """The box-counting dimension of the map's boundary, with its interval or the reason."""
    try:
        est = estimate_dimension(boundary(score_map)).to_dict()
    except Exception as err:  # noqa: BLE001 - a picture without a number is still a picture
        est = {"ok": False, "reason": f"no estimate ({_one_line(err)})", "dimension": None,
               "ci_low": None, "ci_high": None, "n_boundary_pixels": None}
    keep = {k: est.get(k) for k in ("ok", "dimension", "ci_low", "ci_high", "reason",
                                    "n_boundary_pixels")}
    keep["text"] = describe(est)
    return keep


def map_png(cfg: Config, score_map: np.ndarray, title: str) -> bytes:
    """The convergence map as PNG bytes, drawn like a run's map.png."""
    xlabel, ylabel = axis_labels(cfg)
    fig = map_figure(score_map, AxisWindow.of(cfg).extent, xlabel, ylabel, cfg.axis_scale,
                     title, figsize=cfg.figsize, dpi=cfg.dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def map_title(cfg: Config, window_id: int) -> str:
    return f"{cfg.preset} w{window_id:03d}: {arch_label(cfg)}, {cfg.optimizer}\n{cfg.metric}"


# ---- the session -----------------------------------------------------------------------------------

class Session:
    """Windows, jobs and the worker thread. Thread-safe; every public method may be called from
    request threads while the worker trains."""

    def __init__(self, folder: Path, *, data_dir: Path | None = None, device: str | None = None,
                 default_resolution: int | None = None, log: Callable[[str], None] = print,
                 report: Callable[[Path], Path] | None = None, chaos_ulps: int | None = None):
        self.folder = Path(folder)
        # writes report.html into a window's folder: the command layer hands the explorer
        # nnfractal.report.write_report (the report sits on the explorer's floor); None: the
        # report button answers 503
        self.report = report
        self.chaos_ulps = chaos_ulps        # with --chaos: every new window trains its twins
        self.windows_dir = self.folder / WINDOWS_DIR
        self.data_dir = data_dir
        self.device = device
        if default_resolution is not None:
            check_window((0, 1, 0, 1), default_resolution, "linear")
        self.default_resolution = default_resolution
        self.log = log
        self.windows: dict[int, Window] = {}
        self.jobs: dict[int, Job] = {}
        self.root_is_run = False
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._next_window = 1
        self._next_job = 1
        self._closed = False
        self._created_folder = False
        self._worker = threading.Thread(target=self._work, name="nnfractal-explore", daemon=True)

    def report_writer(self) -> Callable[[Path], Path]:
        """The report writer this session was given, or ExploreError(503) saying there is none."""
        if not callable(self.report):
            raise ExploreError(503, "report: the HTML report is not available in this session "
                               "(no report writer was given)")
        return self.report

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def new(cls, cfg: Config, folder: Path | None = None, **kwargs) -> Session:
        """A new session whose first window (w000) is `cfg`, trained by the worker."""
        folder = Path(folder) if folder is not None else \
            Path("runs") / f"explore-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ExploreError(400, f"out: {folder} is not a new or empty folder "
                               "(allowed: a new or empty folder; to reopen a session pass it as RUN_DIR)")
        check_window(cfg.mnmx, cfg.resolution, cfg.axis_scale, cfg.precision)
        session = cls(folder, **kwargs)
        if session.device:
            cfg = cfg.replace(device=session.device)
        session._created_folder = not session.folder.exists()
        session.folder.mkdir(parents=True, exist_ok=True)
        root = Window(0, None, cfg, session.windows_dir / "w000")
        session.windows[0] = root
        session._enqueue("window", root)
        session._worker.start()
        return session

    @classmethod
    def open(cls, run_dir: Path, folder: Path | None = None, **kwargs) -> Session:
        """A session on a finished run (its map is window 0) or a saved explorer session folder."""
        run_dir = Path(run_dir)
        if (run_dir / SESSION_FILE).exists() and not RunFolder(run_dir).config_file.exists():
            root_dir, folder, root_is_run = run_dir / WINDOWS_DIR / "w000", run_dir, False
        else:
            root_dir, folder, root_is_run = run_dir, Path(folder) if folder else run_dir, True
        try:
            RunFolder(root_dir).check_finished_run()
            cfg = RunFolder(root_dir).read_config()
        except (StoreError, ConfigError) as err:
            raise ExploreError(400, str(err)) from None
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise ExploreError(400, f"out: {folder} is not writable, so zoomed windows cannot be "
                               "saved (allowed: a writable session folder, e.g. --out DIR)")
        session = cls(folder, **kwargs)
        session.root_is_run = root_is_run
        session.windows[0] = Window(0, None, cfg, root_dir, status="done")
        session._load_saved()
        session._worker.start()
        return session

    def _load_saved(self) -> None:
        """Windows of an earlier session in this folder (ids from explore.json, folders from ids)."""
        path = self.folder / SESSION_FILE
        ids = [int(p.name[1:]) for p in self.windows_dir.glob("w[0-9][0-9][0-9]*")
               if p.name[1:].isdigit()] if self.windows_dir.is_dir() else []
        self._next_window = max([0, *ids]) + 1
        if not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
            entries = saved["windows"] if saved.get("format") == FORMAT else []
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.log(f"explore: {path} is unreadable; starting without its windows")
            return
        for entry in entries:
            try:
                wid, parent = entry["id"], entry["parent"]
                if not (isinstance(wid, int) and isinstance(parent, int) and 1 <= wid <= MAX_ID
                        and parent in self.windows):
                    continue
                folder = RunFolder(self.windows_dir / f"w{wid:03d}")
                folder.check_finished_run()
                cfg = folder.read_config()
            except (KeyError, TypeError, StoreError, ConfigError):
                continue
            self.windows[wid] = Window(wid, parent, cfg, folder.path, status="done")
            self._next_window = max(self._next_window, wid + 1)

    def _save_session(self) -> None:
        with self._lock:
            entries = [{"id": w.id, "parent": w.parent} for w in sorted(self.windows.values(),
                                                                      key=lambda w: w.id)
                       if w.id > 0 and w.status == "done"]
        text = json_text({"format": FORMAT, "format_version": 1, "windows": entries},
                         indent=1).rstrip("\n")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / SESSION_FILE, text + "\n")

    def close(self, timeout: float = 5.0) -> bool:
        """Cancel what runs and waits, stop the worker. The running job stops after its chunk;
        after `timeout` seconds it is abandoned (the worker is a daemon thread; a window's folder
        only appears, by rename, once it is complete). Returns whether the worker stopped."""
        with self._lock:
            self._closed = True
            for job in self.jobs.values():
                if job.status in ("queued", "running"):
                    job.cancel.set()
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self._created_folder and not self._worker.is_alive():
            try:
                self.folder.rmdir()                # a new session that saved nothing
            except OSError:
                pass
        return not self._worker.is_alive()

    # ---- requests ------------------------------------------------------------------------------
    def window(self, wid: int) -> Window:
        return self._existing(self.windows, wid, "window")

    def job(self, jid: int) -> Job:
        return self._existing(self.jobs, jid, "job")

    def _existing(self, table: dict, key: int, field_name: str) -> Any:
        """table[key], read under the lock; a 404 naming `field_name` where there is none."""
        with self._lock:
            item = table.get(key)
        if item is None:
            raise ExploreError(404, f"{field_name}: {key} does not exist")
        return item

    def window_resolution(self, run_resolution: int) -> int:
        """A new window's side when none is asked: --resolution, else the run's capped at
        WINDOW_RESOLUTION (a casual drag on a 128 px run must not train 16k models)."""
        return self.default_resolution or min(run_resolution, WINDOW_RESOLUTION)

    def submit_window(self, parent_id: int, mnmx, resolution: int | None = None) -> tuple[Window, Job]:
        """Queue a window of `parent_id`'s config over `mnmx` (axis units of that config)."""
        parent = self.window(parent_id)
        if parent.status in ("failed", "cancelled"):
            raise ExploreError(409, f"parent: window {parent_id} {parent.status}; zoom from a "
                               "window that has a map")
        res = resolution or self.window_resolution(parent.cfg.resolution)
        check_window(mnmx, res, parent.cfg.axis_scale, parent.cfg.precision)
        changes: dict[str, Any] = {"mnmx": tuple(float(v) for v in mnmx), "resolution": res}
        if self.device:
            changes["device"] = self.device
        try:
            cfg = parent.cfg.replace(**changes)
        except ConfigError as err:
            raise ExploreError(400, str(err)) from None
        with self._lock:
            self._check_open()
            wid = self._next_window
            if wid > MAX_ID:
                raise ExploreError(400, f"window: this session holds {MAX_ID} windows already")
            win = Window(wid, parent_id, cfg, self.windows_dir / f"w{wid:03d}")
            job = self._enqueue("window", win)
            self._next_window += 1
            self.windows[wid] = win
        return win, job

    def submit_report(self, wid: int) -> Job:
        self.report_writer()                  # 503 now, not later in the worker
        win = self.window(wid)
        if win.status != "done":
            raise ExploreError(409, f"window: {wid} is {win.status}; a report needs a finished window")
        with self._lock:
            self._check_open()
            return self._enqueue("report", win)

    def cancel(self, jid: int) -> Job:
        job = self.job(jid)
        with self._lock:
            if job.status == "queued":
                job.cancel.set()
                self._finish(job, "cancelled")
            elif job.status == "running" and job.kind == "window":
                job.cancel.set()              # the worker stops after its current step
            elif job.status == "running":
                raise ExploreError(409, f"job: {jid} writes a report and cannot be stopped")
        return job

    def _check_open(self) -> None:
        if self._closed:
            raise ExploreError(503, "session: the explorer is shutting down")

    def _enqueue(self, kind: str, win: Window) -> Job:
        with self._lock:
            waiting = sum(j.status == "queued" for j in self.jobs.values())
            if waiting >= MAX_QUEUED:
                raise ExploreError(429, f"queue: {waiting} jobs are waiting already (allowed: "
                                   f"{MAX_QUEUED}; one job runs at a time - wait or cancel one)")
            job = Job(self._next_job, kind, win.id)
            self._next_job += 1
            self.jobs[job.id] = job
            if kind == "window":
                win.job = job.id
        self._queue.put(job)
        return job

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        job.status, job.error, job.finished = status, error, time.time()
        job.phase = status
        if job.kind == "window":
            win = self.windows.get(job.window)
            if win is not None and win.status != "done":
                win.status, win.error = status, error
                win.losses = None

    def queue_position(self, job: Job) -> int | None:
        with self._lock:
            if job.status != "queued":
                return None
            return sum(j.status == "queued" and j.id < job.id for j in self.jobs.values()) + 1

    def jobs_list(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.id)
            active = [j for j in jobs if j.status in ("queued", "running")]
            recent = [j for j in jobs if j.status not in ("queued", "running")][-limit:]
            return [j.to_dict(self.queue_position(j)) for j in sorted(active + recent, key=lambda j: j.id)]

    # ---- the worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.status != "queued":
                    continue                  # cancelled while waiting
                if self._closed:
                    self._finish(job, "cancelled")
                    continue
                job.status, job.started, job.phase = "running", time.time(), "starting"
            try:
                if job.kind == "window":
                    self._run_window(job)
                else:
                    self._run_report(job)
            except _Cancelled:
                with self._lock:
                    self._finish(job, "cancelled")
            except Exception as err:  # noqa: BLE001 - the worker and the server outlive any job
                message = _one_line(err)
                with self._lock:
                    self._finish(job, "failed", message)
                self.log(f"explore: job {job.id} ({job.kind} w{job.window:03d}) failed: {message}")
                try:
                    with open(self.folder / LOG_FILE, "a") as fh:
                        fh.write(f"--- {datetime.now().isoformat(timespec='seconds')} job {job.id} "
                                 f"({job.kind} w{job.window:03d})\n{traceback.format_exc()}\n")
                except OSError:
                    pass

    def _run_window(self, job: Job) -> None:

        win = self.windows[job.window]
        cfg = win.cfg
        with self._lock:
            win.status, job.phase = "running", "loading data"
        family = build_family(cfg)
        data = load_data(cfg, family, self.data_dir)
        x, y = axes(cfg)
        points = grid_points(x, y)
        k = len(points)
        partial = np.full(k, np.nan)
        chunks: list[tuple[int, int, np.ndarray]] = []
        schedule = schedule_of(cfg, data)

        def on_chunk(lo: int, hi: int, curves: dict[str, np.ndarray]) -> None:
            # Score the finished chunk exactly as the run's map scores it (run.score_map).
            chunk_scores = point_scores(cfg, curves, schedule["steps_per_epoch"])  # as the run's map
            with self._lock:
                chunks.append((lo, hi, curves["train_loss"]))
                partial[lo:hi] = chunk_scores
                win.done_points = job.done = hi
            if job.cancel.is_set():
                raise _Cancelled()

        with self._lock:
            win.partial, win.losses, win.done_points = partial, chunks, 0
            job.total, job.done, job.phase = k, 0, "training"

        def on_step() -> None:                 # cancelling takes effect within one step
            if job.cancel.is_set():
                raise _Cancelled()

        result = engine.train(cfg, family, data, points, progress=False, on_chunk=on_chunk,
                              on_step=on_step)
        with self._lock:
            job.phase = "saving"
        self._save_window(win, x, y, result, data.source)
        if self.chaos_ulps is not None:
            with self._lock:
                job.phase = "chaos twins"
            self._train_window_twins(win, data)
        score_map = self._final_scores(win)
        dimension = dimension_summary(score_map)
        with self._lock:
            win.scores, win.dimension, win.wall_time_s = score_map, dimension, result.wall_time
            win.status, win.losses, win.partial = "done", None, None
            win.done_points = k
            job.done = job.total
            self._finish(job, "done")
        self._save_session()

    def _save_window(self, win: Window, x, y, result, source: str) -> None:
        """Write the window's run folder (RunFolder: config.toml, store.zarr; pictures: map.png
        only) under a temporary name, then rename it into place."""
        cfg = win.cfg
        schedule = result.schedule
        if win.folder.exists():
            raise ExploreError(500, f"window: folder {win.folder.name} exists already")
        with RunFolder.staged(win.folder) as work:
            work.write_config(cfg)
            lengths = {m: result.curves[m].shape[1] for m in recorded_metrics(cfg)
                       if m in result.curves}
            store = work.create_store(cfg, x=x, y=y, curve_lengths=lengths,
                                      dtype="float64" if cfg.precision == "float64" else "float32",
                                      schedule={"steps": schedule.steps,
                                                "steps_per_epoch": schedule.steps_per_epoch,
                                                "eval_epochs": list(schedule.eval_epochs)},
                                      extra={"data_source": source,
                                             "explore": {"window": win.id, "parent": win.parent}})
            for metric in lengths:
                store.write_curves(metric, 0, result.curves[metric])
            store.mark_all_tiles_stored()             # flags and checksums of what is written
            store.update_attrs(wall_time_s=result.wall_time, device=result.device)
            store.mark_complete()
            score_map = _run_score_map(store, cfg)
            (work / MAP_FILE).write_bytes(map_png(cfg, score_map, map_title(cfg, win.id)))
            k = len(x) * len(y)
            info = {"window": win.id, "parent": win.parent, "mnmx": list(cfg.mnmx),
                    "resolution": cfg.resolution, "wall_time_s": round(result.wall_time, 3),
                    "device": result.device, "data_source": source,
                    "model_steps": int(k * schedule.steps),
                    "model_steps_per_s": round(k * schedule.steps / max(result.wall_time, 1e-9), 2)}
            work.write_json("window.json", info)

    def _train_window_twins(self, win: Window, data) -> None:
        """The chaos twins of a saved window, into its store (runner/chaos.py), as `nnfractal run
        --chaos` trains them."""
        store = RunFolder(win.folder).open_store(mode="r+")
        chaos.train_twins(win.folder, store, win.cfg, data, self.chaos_ulps, progress=False,
                          log=lambda *_: None)

    def chaos_layer(self, win: Window) -> dict | None:
        """{'flipped': (rows, cols) bool, 'info': summary.json's chaos_fraction} of a finished
        window whose store holds all its twins; None otherwise."""
        if win.status != "done":
            return None
        if win.chaos is None:
            self._ensure_loaded(win)
            store = RunFolder(win.folder).open_store()
            cmap = chaos.chaos_map(store, win.cfg, win.scores)
            win.chaos = {"flipped": cmap.flipped, "info": cmap.summary()} if cmap else {}
        return win.chaos or None

    def _final_scores(self, win: Window) -> np.ndarray:
        return _run_score_map(RunFolder(win.folder).open_store(), win.cfg)

    def _run_report(self, job: Job) -> None:
        write_report = self.report_writer()
        win = self.windows[job.window]
        folder = win.folder
        job.total = 2
        run = RunFolder(folder)
        if not run.summary_file.exists() or not run.fractal_file.exists():
            # An explorer window holds the map only; the report wants a full run folder.
            with self._lock:
                job.phase = "drawing the run's pictures"
            summary = render_run(folder, log=lambda *_: None)
            try:
                summary.update(json.loads((folder / "window.json").read_text()))
            except (OSError, ValueError):
                pass
            import platform

            import torch
            summary.update(versions=library_versions(), threads=torch.get_num_threads(),
                           cpu=platform.processor() or platform.machine())
            run.write_json(SUMMARY_FILE, summary)
        with self._lock:
            job.done, job.phase = 1, "writing the report"
        path = Path(write_report(folder))
        if not path.is_file():
            raise RuntimeError(f"write_report returned {path.name}, which is not a file")
        with self._lock:
            win.report = path
            job.done = 2
            self._finish(job, "done")

    # ---- reading windows -------------------------------------------------------------------------
    def _ensure_loaded(self, win: Window) -> None:
        """Scores and dimension of a finished window read from its folder (once)."""
        if win.scores is not None:
            return
        with self._load_lock:
            if win.scores is not None:
                return
            store = RunFolder(win.folder).open_store()
            score_map = _run_score_map(store, win.cfg)
            dimension = None
            fractal = RunFolder(win.folder).fractal_file
            if fractal.exists():
                try:
                    saved = json.loads(fractal.read_text())
                    # the run's recorded dimension, whatever its fit range (`nnfractal
                    # dimension --write` keeps fractal.json, summary.json and the report agreeing)
                    if saved.get("metric", win.cfg.metric) == win.cfg.metric:
                        final = saved["final"]
                        dimension = {k: final.get(k) for k in ("ok", "dimension", "ci_low",
                                                               "ci_high", "reason",
                                                               "n_boundary_pixels")}
                        dimension["text"] = describe(final)
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    dimension = None
            if dimension is None:
                dimension = dimension_summary(score_map)
            win.dimension, win.wall_time_s = dimension, store.attrs.get("wall_time_s")
            win.scores = score_map

    def score_map(self, win: Window) -> tuple[np.ndarray, int]:
        """(rows, cols) scores (NaN where not trained yet) and how many points are done."""
        rows = cols = win.cfg.resolution
        with self._lock:
            status = win.status
            if status in ("running", "queued") and win.partial is not None:
                return win.partial.reshape(rows, cols).copy(), win.done_points
        if status == "done":
            self._ensure_loaded(win)
            return win.scores, rows * cols
        return np.full((rows, cols), np.nan), 0

    def curve(self, win: Window, row: int, col: int) -> np.ndarray:
        """The training loss curve of one pixel."""
        n = win.cfg.resolution
        for name, v in (("row", row), ("col", col)):
            if not 0 <= v < n:
                raise ExploreError(400, f"{name}: {v} is out of range (allowed: 0..{n - 1})")
        flat = row * n + col
        with self._lock:
            if win.status == "running" and win.losses is not None:
                for lo, hi, losses in win.losses:
                    if lo <= flat < hi:
                        return np.array(losses[flat - lo], dtype=np.float64)
        if win.status != "done":
            raise ExploreError(409, f"pixel: row {row} col {col} of window {win.id} is not trained yet")
        store = RunFolder(win.folder).open_store()
        return np.asarray(store.group["curves/train_loss"][row, col, :], dtype=np.float64)

    def png(self, win: Window) -> bytes:
        if win.status != "done":
            raise ExploreError(409, f"window: {win.id} is {win.status}; its map is not ready")
        path = win.folder / MAP_FILE
        if path.is_file():
            return path.read_bytes()
        self._ensure_loaded(win)
        return map_png(win.cfg, win.scores, map_title(win.cfg, win.id))

    def steps_per_epoch(self, win: Window) -> int:
        if win.status == "done":
            try:
                return int(RunFolder(win.folder).open_store().attrs["schedule"]["steps_per_epoch"])
            except (StoreError, KeyError, TypeError, ValueError):
                return 1
        return 1
