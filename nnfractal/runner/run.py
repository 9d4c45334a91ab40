"""One grid run from config to run folder: data -> models -> engine -> store -> pictures.

A run folder holds::

    config.toml      the resolved config, exactly what ran (read again by --resume)
    store.zarr/      loss curves, axes, tile done-flags, metadata (see store.py)
    map.png          the convergence map
    epochs/          one map per epoch (at most MAX_FRAMES = 60, evenly spaced); epochs.gif, epochs.mp4
    summary.json     fraction converged, steps, wall time, device, library versions
    error.log        only after a failed tile: its traceback

A run lives in its folder while it trains: the grid is cut into tiles (store.py), each written
with its done flag as it finishes, so `resume` can compute only what is missing.
"""
from __future__ import annotations

import json
import platform
import shutil
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from nnfractal import __version__
from nnfractal.config import (
    DATA_FILE_SIZES,
    DRAWING_FIELDS,
    INPUT_FILE_FACTS,
    Config,
    ConfigError,
    _coerce,
    absolute_path,
    build_config,
    recorded_metrics,
)
from nnfractal.errors import RunFailed, RunFolderError, RunInterrupted, one_line
from nnfractal.estimators.boxcount import (
    REASON_SHORT,
    boundary,
    estimate_dimension,
    paper_dimension,
    refusal_by_shape,
)
from nnfractal.estimators.resolution import chance_note, resolution_warning, too_small_note
from nnfractal.models import arch_label, build_family
from nnfractal.models.input_files import checked_sha256
from nnfractal.render.fractal_plots import plot_boundary, plot_boxcount, plot_dimension_per_epoch
from nnfractal.render.maps import MapFrames, Mp4Writer, cdf_restretch, map_figure, write_gif, write_png
from nnfractal.storage.folders import write_text_atomic
from nnfractal.storage.run_folder import (  # noqa: F401 - the map readers: run.py's API too
    BOUNDARY_FILE,
    BOXCOUNT_FILE,
    DIMENSION_PER_EPOCH_FILE,
    ERROR_LOG,
    FRACTAL_FILE,
    MAP_FILE,
    SUMMARY_FILE,
    ZOOM_FILE,
    ReportWriter,
    RunFolder,
    map_epochs,
    metric_curves,
    score_map,
    score_maps,
    write_report_safely,
)
from nnfractal.storage.store import FORMAT_VERSION as STORE_FORMAT_VERSION
from nnfractal.storage.store import RunStore, StoreError, default_tile_rows, tile_rows_step
from nnfractal.training.allocator import in_use as allocator_in_use
from nnfractal.training.budget import check_max_storage, check_run
from nnfractal.training.cpu_usage import NO_USAGE, Usage
from nnfractal.training.data import Dataset, load_data_file, load_mnist, synthetic_regression
from nnfractal.training.engine import (
    cpu_busy_warning,
    make_schedule,
    prepare_kernels,
    resolve_chunk_workers,
    resolve_tile_batch,
)
from nnfractal.training.grid import axes, axis_labels
from nnfractal.training.measure import converged_fraction
from nnfractal.window import Window

from . import chaos
from .adaptive import render_adaptive, run_adaptive
from .backends import CHECKPOINT_S, TileFailed, TileJob, fail_tile_from_env, graceful_interrupt, make_backend

MAX_FRAMES = 60


def default_out_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def load_data(cfg: Config, family, data_dir: Path | None = None) -> Dataset:
    """The run's fixed data set: the data file's arrays (cfg.data_file), else the MNIST subset or
    the paper's Gaussian regression data."""
    if cfg.data_file:
        return _read_data_file(cfg, family)[0]
    if cfg.dataset == "gaussian":
        if cfg.train_size:
            n = cfg.train_size
        elif cfg.nonlinearity == "identity":
            n = cfg.width                     # as the paper: a linear net needs only width points
        else:
            n = family.n_params() // cfg.target_dim
        return synthetic_regression(n, cfg.width, cfg.target_dim, seed=cfg.data_seed)
    return load_mnist(data_dir, train_size=cfg.train_size, test_size=cfg.test_size,
                      seed=cfg.data_seed, dataset=cfg.dataset)


def _read_data_file(cfg: Config, family) -> tuple[Dataset, str]:
    """The data file of `cfg`, checked against the shapes its model family trains on (the drawn
    data's: x (N, width) and y (N, target_dim) for regression, MNIST-like images otherwise)."""
    label = f"model {cfg.model} ({arch_label(cfg)})"
    return load_data_file(cfg.data_file, family.task, cfg.width, cfg.target_dim,
                          sha256=cfg.data_sha256, label=label)


def resolve_input_files(cfg: Config) -> Config:
    """`cfg` with its data and init files recorded: absolute paths, each file's sha256 (a file
    that differs from a recorded hash is refused: DataError), and train_size / test_size set to
    the number of examples the data file holds. Reads and checks both files; writes nothing."""
    if not cfg.data_file and not cfg.init_file:
        return cfg
    changes: dict = {}
    if cfg.init_file:
        changes["init_file"] = absolute_path(cfg.init_file)
        changes["init_sha256"] = checked_sha256("init_file", changes["init_file"], cfg.init_sha256)
    if cfg.data_file:
        changes["data_file"] = absolute_path(cfg.data_file)
        data, changes["data_sha256"] = _read_data_file(replace(cfg, **changes),
                                                      build_family(replace(cfg, **changes)))
        changes["train_size"] = data.n_train
        if data.n_test:
            changes["test_size"] = data.n_test
    return cfg.replace(**changes)


def library_versions() -> dict[str, str]:
    import matplotlib
    import torch
    import zarr
    return {"nnfractal": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "zarr": zarr.__version__, "matplotlib": matplotlib.__version__}


@dataclass
class RunPlan:
    """Everything a run needs, computed (and refused where wrong) before anything is written."""
    cfg: Config
    data: Dataset
    x: np.ndarray                   # (cols,) axis values
    y: np.ndarray                   # (rows,)
    schedule: object                # engine.Schedule
    lengths: dict[str, int]         # metric -> curve length T
    dtype: str
    device: str                     # what the backend will train on

    @property
    def store_schedule(self) -> dict:
        s = self.schedule
        return {"steps": s.steps, "steps_per_epoch": s.steps_per_epoch,
                "eval_epochs": list(s.eval_epochs)}


def plan_run(cfg: Config, data_dir: Path | None, backend, log=print) -> RunPlan:
    """Device, data, axes and schedule of a run, its compiled kernel built or loaded (local
    backend); raises ConfigError / DataError, writes nothing."""
    cfg = resolve_input_files(cfg)        # recorded in config.toml: resume checks the files
    device = backend.device(cfg)
    family = build_family(cfg)
    data = load_data(cfg, family, data_dir)
    log(f"data: {data.source}")
    x, y = axes(cfg)
    schedule = make_schedule(cfg, data.n_train, has_test=data.n_test > 0)
    lengths = {m: (len(schedule.eval_epochs) if m.startswith("test") else schedule.steps)
               for m in recorded_metrics(cfg)}
    dtype = "float64" if cfg.precision == "float64" else "float32"
    if backend.name == "local":
        prepare_kernels(cfg, family)        # a first build is not training time
    return RunPlan(cfg, data, x, y, schedule, lengths, dtype, device)


def check_tile_rows(tile_rows, cfg: Config) -> int | None:
    """Refuse a --tile-rows that is not a whole number of chunks per tile (unless it takes every
    row: one tile is always the whole grid's chunking); None stays None (the default)."""
    if tile_rows is None:
        return None
    step = tile_rows_step(cfg.resolution, cfg.tile_batch)
    if isinstance(tile_rows, bool) or not isinstance(tile_rows, int) or tile_rows < 1 or (
            tile_rows % step and tile_rows < cfg.resolution):
        raise ConfigError("tile_rows", f"{tile_rows!r} is not allowed (allowed: a multiple of {step}, "
                          f"so that a tile of rows x {cfg.resolution} columns holds whole chunks of "
                          f"--tile_batch {cfg.tile_batch}; or >= {cfg.resolution}, one tile)")
    return min(tile_rows, cfg.resolution)


def default_tile_rows_of(cfg: Config) -> int:
    """Rows per tile: the fewest whole-chunk rows that hold ~1024 points (store.default_tile_rows)."""
    return default_tile_rows(cfg.resolution, cfg.resolution, cfg.tile_batch)


def resolve_auto_tile_batch(cfg: Config, data_dir: Path | None, log=print) -> Config:
    """`tile_batch = 0` (auto) fixed to a size before anything is written: chunk sizes change
    roundoff and tiles hold whole chunks, so config.toml (and every resume) must name the size."""
    family = build_family(cfg)
    size = resolve_tile_batch(cfg, family, load_data(cfg, family, data_dir))
    log(f"tile_batch: auto chose {size}")
    return replace(cfg, tile_batch=size)


def execute(cfg: Config, out: Path | None = None, data_dir: Path | None = None,
            progress: bool = True, log=print, epoch_maps: bool = True, *,
            tile_rows: int | None = None, backend: str = "local", address: str | None = None,
            checkpoint_s: float = CHECKPOINT_S, draw: bool = True,
            warn_resolution: bool = True, max_storage: float | None = None,
            report: ReportWriter | None = None, chaos_ulps: int | None = None) -> Path:
    """Train the grid of `cfg` tile by tile into `out`, then draw the pictures; returns `out`.

    Once every input is accepted, and before training, a resolution too small for a dimension is
    said in one logged line (`warn_resolution=False`: the caller said it, e.g. once per zoom).

    `epoch_maps=False` skips the per-epoch maps and animation (zoom frames and comparison windows
    need only the final map; drawing is then a few seconds instead of a minute); `draw=False`
    only trains and stores (a later `resume` draws). `tile_rows`: grid rows per tile (default
    `default_tile_rows_of`); `backend`: local or ray (`address`: the Ray cluster);
    `checkpoint_s`: seconds between checkpoints of an unfinished tile; `max_storage`: GiB of
    curves allowed (default: the free disk, at most budget.DEFAULT_MAX_STORAGE); `report`:
    writes report.html once the run is drawn (the command layer passes report.write_report;
    None: no report); `chaos_ulps`: also train a twin of every trained pixel moved by this many
    rounding units and draw the chaos map (chaos.py; None: no twins).

    Everything that can be refused (config, backend, device, data, output folder) is checked
    before the folder is created, so a refused run leaves nothing behind. From then on the run
    lives in `out`: config.toml, an incomplete store, then the tiles as they finish. A crash,
    kill or full disk keeps every finished tile, and `resume(out)` computes only the rest
    (RunFailed / RunInterrupted say so in one line).
    """
    out = Path(out) if out is not None else default_out_dir(cfg)
    chaos_ulps = chaos.check_ulps(chaos_ulps) if chaos_ulps is not None else None
    cfg = resolve_input_files(cfg)        # the data file's size counts in the budget
    check_run(cfg, out, check_max_storage(max_storage))     # before anything is allocated
    if cfg.tile_batch == 0:
        cfg = resolve_auto_tile_batch(cfg, data_dir, log)
    tile = check_tile_rows(tile_rows, cfg) or default_tile_rows_of(cfg)
    RunFolder(out).check_out(cfg)
    _check_adaptive_backend(cfg, backend)
    runner = make_backend(backend, address)
    try:
        plan = plan_run(cfg, data_dir, runner, log)
        warning = resolution_warning(cfg.resolution) if warn_resolution else None
        if warning:                     # before minutes of training, not after
            log(f"warning: {warning}")
        with _claim_new_run(out, plan, tile):
            return _train_and_finish(out, plan, runner, progress, log, epoch_maps, checkpoint_s,
                                     draw, report, chaos_ulps)
    finally:
        runner.close()


def resume(run_dir: Path, given: dict | None = None, preset: str | None = None,
           data_dir: Path | None = None, progress: bool = True, log=print,
           epoch_maps: bool = True, *, tile_rows: int | None = None, backend: str = "local",
           address: str | None = None, checkpoint_s: float = CHECKPOINT_S,
           draw: bool = True, report: ReportWriter | None = None,
           chaos_ulps: int | None = None, chaos_wanted: bool = False) -> Path:
    """Finish an interrupted run: train only the tiles (and points) not stored yet, then draw.

    `given`: config values given with --resume (field -> value, as for build_config); each must
    equal the run's, and with `preset` the whole config built from preset + given must. Refusals
    (bad or different config, foreign or damaged store, read-only folder, bad data) change
    nothing. A finished run is only re-drawn if its pictures are missing, or with new drawing
    flags (dpi, figsize: the only fields that may differ from the run's; config.toml is updated).
    `report`: as for `execute`; `chaos_ulps`: add (or finish) the chaos map's twins at this
    distance (chaos.py); `chaos_wanted`: at the run's own distance, else the default. A run with
    unfinished twins finishes them without being asked.
    """
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    cfg = _run_config(folder)
    check_resume_config(cfg, given or {}, preset, run_dir)
    drawing = drawing_changes(cfg, given or {})
    tile_rows = check_tile_rows(tile_rows, cfg)
    store = _resumable_store(folder, cfg, tile_rows)
    chaos_ulps = chaos.ulps_to_train(store, chaos.check_ulps(chaos_ulps)
                                     if chaos_ulps is not None else None, chaos_wanted)
    folder.check_writable()
    _check_adaptive_backend(cfg, backend)
    if store is not None and store.complete and folder.summary_file.exists() and not drawing \
            and chaos_ulps is None:
        log(f"{run_dir} is complete: nothing to train or draw")
        return run_dir
    runner = make_backend(backend, address)
    try:
        with folder.lock(), ExitStack() as held:
            if drawing:
                cfg = _apply_drawing(folder, cfg, drawing, store, held, log)
            return _resume_locked(run_dir, cfg, store, runner, data_dir, progress, log, epoch_maps,
                                  tile_rows, checkpoint_s, draw, report, chaos_ulps)
    finally:
        runner.close()


def drawing_changes(cfg: Config, given: dict) -> dict:
    """The drawing fields (config.DRAWING_FIELDS: dpi, figsize) given with --resume whose values
    differ from the run's: they change only the pictures, so a resume may change them."""
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items()
             if k in DRAWING_FIELDS and v is not None}
    wanted = cfg.replace(**_coerce(given, "overrides"))
    return {k: getattr(wanted, k) for k in given if getattr(wanted, k) != getattr(cfg, k)}


def _apply_drawing(folder: RunFolder, cfg: Config, drawing: dict, store, held: ExitStack,
                   log) -> Config:
    """Write the new drawing fields into config.toml (and the store's copy of the config) while
    the run is locked; the new config.toml is locked too. Returns the new config."""
    new = cfg.replace(**drawing)
    folder.write_config(new)
    held.enter_context(folder.lock())
    if store is not None:
        store.update_attrs(config=new.to_dict())
    log("drawing with " + ", ".join(f"{k} = {_shown(v)}" for k, v in drawing.items())
        + f" (was {', '.join(_shown(getattr(cfg, k)) for k in drawing)})")
    return new


def _resume_locked(run_dir, cfg, store, runner, data_dir, progress, log, epoch_maps, tile_rows,
                   checkpoint_s, draw, report, chaos_ulps=None) -> Path:
    """resume() once the run is locked: load, check the store's layout, train, draw."""
    plan = plan_run(cfg, data_dir, runner, log)
    if store is None:                   # killed before its store existed: nothing trained
        _create_run(RunFolder(run_dir), plan, tile_rows or default_tile_rows_of(cfg),
                    config_written=True)
    elif store.complete:                # trained, but killed while drawing
        log(f"{run_dir}: every tile is stored; drawing")
        if chaos_ulps is not None:
            chaos.train_twins(run_dir, store, plan.cfg, plan.data, chaos_ulps, progress, log)
        return _draw_or_fail(run_dir, store, plan, log, epoch_maps, report) if draw else run_dir
    else:
        _check_store_layout(store, plan)
        store.verify_tiles()
        store.remove_partial_files()
    return _train_and_finish(run_dir, plan, runner, progress, log, epoch_maps, checkpoint_s,
                             draw, report, chaos_ulps)


@contextmanager
def _claim_new_run(out: Path, plan: RunPlan, tile: int):
    """Create a new run at `out` atomically and hold its lock while the block runs
    (`RunFolder.claim_new` with the run's config.toml and empty store)."""
    with RunFolder.claim_new(out, lambda work: _create_run(work, plan, tile, shown=out),
                             lambda: RunFolder(out).check_out(plan.cfg)) as claimed:
        yield claimed


def _create_run(folder: RunFolder, plan: RunPlan, tile: int, config_written: bool = False,
                shown: Path | None = None) -> RunStore:
    """config.toml, then an empty store (built under a temporary name and renamed). A failure
    here (a full disk, a read-only folder) removes what this call made: nothing was trained."""
    out = folder.path
    made_dir = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not config_written:
            folder.write_config(plan.cfg)
        return folder.create_store(plan.cfg, x=plan.x, y=plan.y, curve_lengths=plan.lengths,
                                   dtype=plan.dtype, schedule=plan.store_schedule, tile_rows=tile,
                                   extra={"data_source": plan.data.source})
    except OSError as err:
        if made_dir:
            shutil.rmtree(out, ignore_errors=True)
        elif not config_written:
            folder.config_file.unlink(missing_ok=True)
        raise RunFolderError(f"out: cannot write {shown or out} "
                             f"({err.strerror or one_line(err)})") from None


def _train_and_finish(run_dir: Path, plan: RunPlan, runner, progress: bool, log,
                      epoch_maps: bool, checkpoint_s: float, draw: bool = True,
                      report: ReportWriter | None = None, chaos_ulps: int | None = None) -> Path:
    """Train the missing tiles of the run in `run_dir` (and with `chaos_ulps` the missing chaos
    twins), then draw it and write its summary."""
    store = RunFolder(run_dir).open_store(mode="r+")
    if plan.cfg.adaptive:
        _train_adaptive(store, plan, progress, log)
    else:
        train_tiles(run_dir, store, plan, runner, progress, log, checkpoint_s)
    store.mark_complete()
    if chaos_ulps is not None:          # after the run's tiles: a chaos run is a run first
        chaos.train_twins(run_dir, store, plan.cfg, plan.data, chaos_ulps, progress, log)
    if not draw:
        return run_dir
    return _draw_or_fail(run_dir, store, plan, log, epoch_maps, report)


def _train_adaptive(store: RunStore, plan: RunPlan, progress: bool, log) -> None:
    """--adaptive: train the coarse lattice and the refined cells (adaptive.py) into the store.

    Refinement levels depend on each other, so an adaptive run is one local session, not tiles
    farmed out: a killed adaptive run is resumed by refining again from the start."""
    start = time.perf_counter()
    result = run_adaptive(plan.cfg, build_family(plan.cfg), plan.data, store, plan.x, plan.y,
                          progress=progress, log=log)
    store.mark_all_tiles_stored()
    _record_session(store, "local", [result.device], time.perf_counter() - start, "complete",
                    result.usage)
    if result.device == "cpu" and result.busy_warning:
        log(result.busy_warning.removeprefix("nnfractal: "))


def _check_adaptive_backend(cfg: Config, backend: str) -> None:
    if cfg.adaptive and backend != "local":
        raise ConfigError("backend", f"{backend!r} cannot run --adaptive, whose refinement levels "
                          "depend on each other (allowed with --adaptive: local)")


def _draw_or_fail(run_dir: Path, store: RunStore, plan: RunPlan, log, epoch_maps: bool,
                  report: ReportWriter | None = None) -> Path:
    """`_finish_run`, with a failure (a full disk, a bug in a figure) as one line: every tile is
    stored, so --resume only draws again."""
    try:
        return _finish_run(run_dir, store, plan, log, epoch_maps, report)
    except Exception as err:
        where = f"; traceback in {run_dir / ERROR_LOG}" if _log_error(run_dir, err) else ""
        raise RunFailed(f"drawing stopped: {one_line(err)}; every tile is stored{where}",
                        run_dir) from None


def train_tiles(run_dir: Path, store: RunStore, plan: RunPlan, runner, progress: bool, log,
                checkpoint_s: float = CHECKPOINT_S, only: list[int] | None = None,
                resume: str = "nnfractal run --resume") -> None:
    """Train every tile of the store that is not done, with `runner` (local or Ray).

    `only`: these tiles only (a sample trains its store block by block); `resume`: the command
    the messages give for resuming.

    Raises RunInterrupted after Ctrl-C (finished tiles and chunks kept) and RunFailed when a tile
    cannot be trained or written; both say in one line how to resume. Each session's wall time,
    backend and device are appended to the store's `sessions` attribute.
    """
    from tqdm.auto import tqdm

    grid, state, counts = store.tile_grid, store.tile_state(), store.tile_counts()
    tiles = grid.tiles() if only is None else list(only)
    total = len(tiles)
    todo = [t for t in tiles if state["stored"][t] < counts[t]]
    if not todo:
        log(f"all {total} tiles are stored: nothing to train")
        return
    n_done = total - len(todo)
    missing = int(sum(counts[t] - state["stored"][t] for t in todo))
    partly = sum(1 for t in todo if state["stored"][t] > 0)
    steps = plan.schedule.steps
    cfg = plan.cfg
    already = "" if not n_done and not partly else (
        f"; {n_done} of {total} tiles were done" + (f", {partly} partly" if partly else ""))
    log(f"training {missing} models x {steps} steps{already} ({cfg.model}, {cfg.precision}, {plan.device}, "
        f"{total} tile{'s' if total != 1 else ''} of {grid.tile_rows} rows, "
        f"chunks of {cfg.tile_batch}, "
        f"backend {runner.name}"
        + (f", held-out evaluation every {cfg.eval_every} epoch(s) on {plan.data.n_test} images"
           if plan.schedule.eval_epochs else "") + ")")
    job = TileJob(str(store.path), cfg, plan.data, plan.x, plan.y, checkpoint_s, fail_tile_from_env())
    start = time.perf_counter()
    outcome_note, devices, usage = "complete", set(), NO_USAGE
    try:
        with graceful_interrupt() as stop, \
                tqdm(total=missing * steps, unit="model-step", unit_scale=True, desc="training",
                     disable=not progress, dynamic_ncols=True) as bar:
            try:
                for outcome in runner.run(job, todo, lambda k: bar.update(k * steps), stop):
                    devices.add(outcome.device)
                    usage += outcome.usage
                    if not outcome.stopped:
                        n_done += 1
            except TileFailed as err:
                outcome_note = "failed"
                where = f"; traceback in {run_dir / ERROR_LOG}" if _log_error(run_dir, err) else ""
                raise RunFailed(f"training stopped: {err}; {n_done} of {total} tiles are "
                                f"done and kept{where}", run_dir, resume) from None
            if stop.is_set():           # also after the last tile: the caller trains on
                outcome_note = "interrupted"
                raise RunInterrupted(f"interrupted after {n_done} of {total} tiles", run_dir,
                                     resume)
    except KeyboardInterrupt:
        outcome_note = "interrupted" if outcome_note == "complete" else outcome_note
        raise
    finally:
        _record_session(store, runner.name, sorted(d for d in devices if d) or [plan.device],
                        time.perf_counter() - start, outcome_note, usage)
    on_this_cpu = runner.name == "local" and plan.device == "cpu"
    busy = cpu_busy_warning(usage, time.perf_counter() - start) if on_this_cpu else None
    if busy:
        log(busy.removeprefix("nnfractal: "))


def _log_error(run_dir: Path, err: BaseException) -> bool:
    """Write the traceback of a failed tile to run_dir/error.log (best effort: the disk may be
    full); True if written."""
    cause = err.__cause__ or err
    path = RunFolder(run_dir).error_log
    try:
        old = path.read_text() if path.exists() else ""
        write_text_atomic(path, old + f"--- {datetime.now().isoformat(timespec='seconds')} {err}\n"
                           + "".join(traceback.format_exception(cause)))
        return True
    except OSError:
        return False


def _record_session(store: RunStore, backend: str, devices: list[str], wall_s: float,
                    outcome: str, usage: Usage = NO_USAGE) -> None:
    """Append one training session to the store's attributes (best effort: the disk may be full):
    with the threads that computed, their CPU seconds and their seconds waiting for a CPU
    (`cpu_usage`; those of Ray tasks are not counted)."""
    try:
        sessions = list(store.attrs.get("sessions", []))
        sessions.append({"backend": backend, "device": ",".join(devices),
                         "wall_s": round(wall_s, 3), "outcome": outcome,
                         "threads": usage.threads, "cpu_s": round(usage.cpu_s, 3),
                         "wait_s": round(usage.wait_s, 3),
                         "ended": datetime.now().isoformat(timespec="seconds")})
        store.update_attrs(sessions=sessions)
    except Exception:
        pass


def _finish_run(run_dir: Path, store: RunStore, plan: RunPlan, log, epoch_maps: bool,
                report: ReportWriter | None = None) -> Path:
    """Pictures, fractal analysis, summary.json and report.html (with `report`) of a complete
    store."""
    sessions = store.attrs.get("sessions", [])
    wall = sum(float(s.get("wall_s", 0.0)) for s in sessions)
    device = sessions[-1]["device"] if sessions else plan.device
    tile_seconds = float(store.tile_state()["seconds"].sum()) if store.has_tiles else None
    n_points = len(plan.x) * len(plan.y)
    store.update_attrs(wall_time_s=wall, device=device)
    summary = render_run(run_dir, log=log, epoch_maps=epoch_maps)
    # An adaptive run trained only part of the grid (adaptive.py fills the rest).
    n_trained = summary.get("adaptive", {}).get("n_trained", n_points)
    model_steps = int(n_trained * plan.schedule.steps)
    # The rate counts the compute time of the stored tiles (every session's, a killed one's too;
    # parallel Ray tasks added up): the wall time of a killed session is not known.
    compute = tile_seconds if tile_seconds else wall
    summary.update(wall_time_s=round(wall, 3), device=device, model_steps=model_steps,
                   model_steps_per_s=round(model_steps / compute, 2) if compute else None,
                   tile_seconds=round(tile_seconds, 3) if tile_seconds is not None else None,
                   tile_rows=store.tile_grid.tile_rows if store.has_tiles else None,
                   tiles=store.tile_grid.count if store.has_tiles else None, sessions=len(sessions),
                   backend=sessions[-1]["backend"] if sessions else None,
                   data_source=plan.data.source, versions=library_versions(),
                   cpu=cpu_name(), threads=_threads(),
                   training_threads=sessions[-1].get("threads") if sessions else None,
                   chunk_threads=_chunk_threads(plan.cfg, device)
                   if not sessions or sessions[-1]["backend"] == "local" else None,
                   allocator=allocator_in_use()
                   if not sessions or sessions[-1]["backend"] == "local" else None,
                   gpu=_gpu_name(device))
    RunFolder(run_dir).write_json(SUMMARY_FILE, summary)
    write_report_safely(report, run_dir, log=log)
    for note in summary.get("notes", []):
        log(f"note: {note}")
    rate = f", {summary['model_steps_per_s']:.1f} model-steps/s" if summary["model_steps_per_s"] else ""
    log(f"wrote {run_dir}  (converged {summary['fraction_converged']:.1%}{rate})")
    return run_dir


# ---- resume checks ---------------------------------------------------------------------------

def _run_config(folder: RunFolder) -> Config:
    """The config of the run in `folder` (RunFolderError / ConfigError naming what is wrong)."""
    if not folder.path.is_dir():
        raise RunFolderError(f"resume: {folder} does not exist or is not a folder "
                             "(allowed: a run folder written by nnfractal run)")
    if not folder.config_file.is_file():
        raise RunFolderError(f"resume: {folder} holds no {folder.config_file.name} "
                             "(allowed: a run folder written by nnfractal run)")
    return folder.read_config()


def _flag(field_name: str) -> str:
    return {"metric": "--readout", "readout": "--readout", "early_exit": "--no-early-exit",
            "skip": "--skip/--no-skip"}.get(field_name, f"--{field_name}")


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_resume_config(cfg: Config, given: dict, preset: str | None, run_dir: Path) -> None:
    """Refuse config values given with --resume that differ from the run's (ConfigError 'resume',
    naming the flag, the value given and the run's)."""
    given = {k: v for k, v in given.items() if v is not None}
    if preset is not None:
        wanted = build_config(preset, **given)
        # The files' hashes and sizes are recorded facts, checked against the files when the run
        # is planned; the preset cannot give them.
        derived = INPUT_FILE_FACTS + (DATA_FILE_SIZES if wanted.data_file else ())
        names = [f.name for f in fields(Config) if f.name not in derived]
    else:
        changes = _coerce({k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items()},
                          "overrides")
        wanted = cfg.replace(**changes)
        names = list(changes)
    for name in names:
        mine, theirs = getattr(wanted, name), getattr(cfg, name)
        if mine != theirs and name not in DRAWING_FIELDS:     # drawing may change: pictures only
            flag = "--preset" if name == "preset" else _flag(name)
            raise ConfigError("resume", f"{flag} {_shown(mine)} differs from the run's config "
                              f"({name} = {_shown(theirs)} in {RunFolder(run_dir).config_file}; "
                              "allowed: leave it out or give the run's value)")


def _resumable_store(folder: RunFolder, cfg: Config, tile_rows: int | None) -> RunStore | None:
    """The run's store opened for writing, or None when it was never created (a run killed
    between writing config.toml and creating its store). Refuses a foreign, damaged, old-format or
    other-config store and a --tile-rows that is not the store's."""
    path = folder.store_dir
    if not path.exists():
        return None
    store = folder.open_store(mode="r")
    attrs = store.attrs
    if attrs.get("format_version") != STORE_FORMAT_VERSION or not store.has_tiles:
        if store.complete:
            return folder.open_store(mode="r+")
        raise StoreError(f"store: {path} has format version {attrs.get('format_version')!r} and "
                         f"cannot be resumed (allowed: version {STORE_FORMAT_VERSION})")
    diff = sorted(k for k in set(cfg.to_dict()) | set(attrs.get("config") or {})
                  if (attrs.get("config") or {}).get(k) != cfg.to_dict().get(k)
                  and k not in DRAWING_FIELDS)
    if diff:
        raise StoreError(f"store: {path} was written for another config than "
                         f"{folder.config_file} (differs in: {', '.join(diff)})")
    if tile_rows is not None and tile_rows != store.tile_grid.tile_rows:
        raise ConfigError("resume", f"--tile-rows {tile_rows} differs from the run's "
                          f"({store.tile_grid.tile_rows}; allowed: leave it out or give the run's value)")
    return folder.open_store(mode="r+")


def _check_store_layout(store: RunStore, plan: RunPlan) -> None:
    """Refuse a store whose axes or arrays do not fit the run's config (a damaged or edited one)."""
    path = store.path
    try:
        x, y = store.x, store.y
        shapes = {m: store.group[f"curves/{m}"].shape for m in store.metrics}
        dtypes = {m: str(store.group[f"curves/{m}"].dtype) for m in store.metrics}
        flags = store.group["tiles/stored"].shape
    except Exception as err:
        raise StoreError(f"store: {path} is damaged ({one_line(err)})") from None
    if not (np.array_equal(x, plan.x) and np.array_equal(y, plan.y)):
        raise StoreError(f"store: {path}/axes do not match the config's window and resolution")
    wanted = {m: (len(plan.y), len(plan.x), t) for m, t in plan.lengths.items()}
    if shapes != wanted or set(dtypes.values()) != {plan.dtype}:
        raise StoreError(f"store: {path}/curves hold {shapes} ({', '.join(sorted(set(dtypes.values())))}), "
                         f"the config needs {wanted} ({plan.dtype})")
    if flags != (store.tile_grid.count,):
        raise StoreError(f"store: {path}/tiles/stored has shape {flags}, the tile rows need "
                         f"({store.tile_grid.count},)")


def cpu_name() -> str:
    """The CPU model (Linux /proc/cpuinfo), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name(device: str) -> str | None:
    """The GPU's name where this process sees the one the run used (a Ray driver may not)."""
    import torch
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name()


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def _chunk_threads(cfg: Config, device: str | None) -> list[int] | None:
    """[chunks trained side by side, torch threads per chunk] of this process's settings."""
    import torch
    try:
        return list(resolve_chunk_workers(cfg, torch.device(device or cfg.device), 1 << 30))
    except (RuntimeError, ValueError):
        return None


def frame_epochs(available: list[int], max_frames: int = MAX_FRAMES) -> list[int]:
    """Epochs that get a map: all available ones, or max_frames evenly spaced ending at the last."""
    if len(available) <= max_frames:
        return list(available)
    picks = np.unique(np.round(np.linspace(0, len(available) - 1, max_frames)).astype(int))
    return [available[i] for i in picks]


def _write_frame(frame: np.ndarray, mp4: Mp4Writer, png: Path) -> None:
    """One epoch frame into its PNG and the animation's MP4 (on the writer thread)."""
    write_png(png, frame)
    mp4.add(frame)


def _title(cfg: Config) -> str:
    return f"{cfg.preset}: {arch_label(cfg)}, {cfg.optimizer}"


def render_run(run_dir: Path, log=print, epoch_maps: bool = True) -> dict:
    """Draw every picture of a finished run from its store; returns summary figures.

    map.png and the epoch animation show the config's metric; map_<metric>.png every recorded one.
    """
    run_dir = Path(run_dir)
    cfg, store = _read_run(run_dir)
    extent = Window.of(cfg).extent
    xlabel, ylabel = axis_labels(cfg)
    title = _title(cfg)
    step_word = "step" if cfg.full_batch else "epoch"     # full batch: one step per epoch
    available = map_epochs(store, cfg)
    epochs = frame_epochs(available) if epoch_maps else [available[-1]]
    finals, figures = {}, {}
    for metric in store.metrics:
        if metric == cfg.metric:                  # one read of the curves for both
            finals[metric], maps_by_epoch = score_maps(store, cfg, metric, epochs)
        else:
            finals[metric] = score_map(store, cfg, metric)
        figures[metric] = map_figure(finals[metric], extent, xlabel, ylabel, cfg.axis_scale,
                                     f"{title}\n{metric}", figsize=cfg.figsize, dpi=cfg.dpi,
                                     metric=metric, measure=cfg.measure,
                                     acc_threshold=cfg.acc_threshold)
        figures[metric].savefig(run_dir / f"map_{metric}.png")
    final, fig = finals[cfg.metric], figures[cfg.metric]
    shutil.copyfile(run_dir / f"map_{cfg.metric}.png", run_dir / MAP_FILE)   # the same picture

    # PNG, GIF and H.264 encoding run outside the GIL (Pillow, ffmpeg in its own process): one
    # thread writes each frame as it is drawn, while this one draws the next ones, the other
    # pictures, and counts boxes. Leaving the block, the writer finishes before the MP4 closes.
    fps = max(2.0, min(10.0, len(epochs) / 6))
    with Mp4Writer(run_dir / "epochs.mp4", fps) as mp4, ThreadPoolExecutor(max_workers=1) as writer:
        written = []
        if epoch_maps:
            (run_dir / "epochs").mkdir(exist_ok=True)
            drawer, frames = MapFrames(fig), []
            for e, m in zip(epochs, maps_by_epoch):
                frames.append(drawer.render(cdf_restretch(m), f"{step_word} {e}/{available[-1]}"))
                written.append(writer.submit(_write_frame, frames[-1], mp4,
                                             run_dir / "epochs" / f"epoch_{e:04d}.png"))
            written.append(writer.submit(write_gif, frames, run_dir / "epochs.gif", fps))
            written.append(writer.submit(mp4.close))
        log(f"maps: map.png ({cfg.metric}), map_<metric>.png for {', '.join(store.metrics)}"
            + (f", {len(epochs)} epoch maps in epochs/, epochs.gif, epochs.mp4" if epoch_maps else ""))
        adaptive = render_adaptive(run_dir, store, final, extent, xlabel, ylabel, cfg.axis_scale,
                                   title, figsize=cfg.figsize, dpi=cfg.dpi)  # trained.png; {} if full
        flips = chaos.render_chaos(run_dir, store, cfg, final, extent, xlabel, ylabel, title,
                                   log)                                   # chaos.png; {} without twins
        fractal = analyse_fractal(run_dir, log=log, final_score_maps=finals,
                                  epoch_score_maps=(epochs, maps_by_epoch) if epoch_maps else None)
        for job in written:
            job.result()                          # an encoding error is raised here, not lost
    medians = _final_medians(store)
    notes = [n for n in (fractal.get("note", ""),
                         chance_note(medians, converged_fraction(final), cfg.metric)) if n]
    return {**adaptive, **flips, "fractal_dimension": fractal["final"]["dimension"],
            "fractal_dimension_ci95": [fractal["final"]["ci_low"], fractal["final"]["ci_high"]],
            "preset": cfg.preset, "resolution": cfg.resolution, "metric": cfg.metric,
            "steps": int(store.attrs["schedule"]["steps"]), "epochs": available[-1],
            "readout": cfg.readout, "measure": cfg.measure,
            "fraction_converged": converged_fraction(final),
            "fraction_converged_by_metric": {m: converged_fraction(v) for m, v in finals.items()},
            "final_metrics_median": medians, "notes": notes,
            "fraction_converged_per_epoch": {str(e): converged_fraction(m)
                                             for e, m in zip(epochs, maps_by_epoch)}}


def _final_medians(store: RunStore) -> dict[str, float | None]:
    """Median over the grid of each metric's last value (train/test side by side in summaries)."""
    out = {}
    for metric in store.metrics:
        last = store.read_curves(metric)[..., -1]
        finite = last[np.isfinite(last)]
        out[metric] = float(np.median(finite)) if finite.size else None
    return out


def describe(est: dict) -> str:
    """'1.234 (95% CI 1.10-1.35)' or the plain reason there is no estimate."""
    if not est["ok"]:
        return est["reason"]
    forced = f" [{est['reason']}]" if (est.get("extra") or {}).get("forced") else ""
    return f"{est['dimension']:.3f} (95% CI {est['ci_low']:.3f}-{est['ci_high']:.3f}){forced}"


def analyse_fractal(run_dir: Path, fit_range: tuple[float, float] | None = None, log=print,
                    out_dir: Path | None = None, force: bool = False,
                    epoch_score_maps: tuple[list[int], np.ndarray] | None = None,
                    final_score_maps: dict[str, np.ndarray] | None = None) -> dict:
    """Boundary, box counts and dimension of a finished run, final and per epoch; no training.

    Writes boundary.png, boxcount.png, fd_per_epoch.png (the config's metric), boundary_<metric>.png
    for the other recorded metrics, and fractal.json into `out_dir` (default: the run folder);
    returns the fractal.json content. `epoch_score_maps` (the frame epochs and their score maps)
    and `final_score_maps` (metric -> final score map), as `render_run` already computed them,
    save scoring the curves again.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    cfg, store = _read_run(run_dir)
    xlabel, ylabel = (label.replace("log10 ", "log10 of ") for label in axis_labels(cfg))
    extent = Window.of(cfg).extent
    by_metric = {}
    small = too_small_note((len(store.y), len(store.x)))   # '' when the map is large enough
    for metric in store.metrics:
        final_map = (final_score_maps[metric] if final_score_maps and metric in final_score_maps
                     else score_map(store, cfg, metric))
        edges = boundary(final_map)
        est = estimate_with_fit_range(edges, fit_range, force)
        by_metric[metric] = {"final": est.to_dict(), "paper_method": paper_dimension([edges]).to_dict()}
        name = BOUNDARY_FILE if metric == cfg.metric else f"boundary_{metric}.png"
        plot_boundary(edges, extent, xlabel, ylabel, out_dir / name,
                      title=f"{cfg.preset}: {metric} boundary ({int(edges.sum())} pixels)",
                      axis_scale=cfg.axis_scale)
        if metric == cfg.metric:
            plot_boxcount(est, out_dir / BOXCOUNT_FILE, title=f"{cfg.preset}: box counting ({metric})",
                          note=small)
    if epoch_score_maps is None:
        epochs = frame_epochs(map_epochs(store, cfg))
        epoch_maps = score_map(store, cfg, cfg.metric, epochs=epochs)
    else:
        epochs, epoch_maps = epoch_score_maps
    per_epoch_est = [_epoch_estimate(boundary(m), fit_range, force) for m in epoch_maps]
    step_label = "step" if cfg.full_batch else "epoch"      # full batch: one step per epoch
    plot_dimension_per_epoch(epochs, per_epoch_est, out_dir / DIMENSION_PER_EPOCH_FILE,
                             title=f"{cfg.preset}: dimension of the {cfg.metric} boundary during training",
                             note=small, xlabel=step_label)
    result = {
        "resolution": cfg.resolution, "metric": cfg.metric, "readout": cfg.readout,
        "measure": cfg.measure, "fit_range": list(fit_range) if fit_range else None,
        **by_metric[cfg.metric],
        "note": f"no dimension: {small}" if small and not by_metric[cfg.metric]["final"]["ok"] else "",
        "metrics": by_metric,
        "per_epoch": [{"epoch": e, **est.to_dict()} for e, est in zip(epochs, per_epoch_est)],
    }
    RunFolder(out_dir).write_json(FRACTAL_FILE, result)
    log(f"fractal dimension ({cfg.metric}): {describe(result['final'])}; paper's median-slope "
        f"estimator: {describe(result['paper_method'])}")
    for metric in store.metrics:
        if metric != cfg.metric:
            log(f"  {metric}: {describe(by_metric[metric]['final'])}")
    return result


def _epoch_estimate(edges: np.ndarray, fit_range, force: bool):
    """One frame's estimate (50 bootstrap resamples); on a map too small for any dimension, the
    estimator's refusal without counting boxes (`refusal_by_shape`)."""
    refused = refusal_by_shape(edges) if fit_range is None else None
    return refused or estimate_with_fit_range(edges, fit_range, force, n_boot=50)


def _read_run(run_dir: Path) -> tuple[Config, RunStore]:
    """The config and the store (read-only) of the run in `run_dir`."""
    folder = RunFolder(run_dir)
    return folder.read_config(), folder.open_store()


def check_run_dir(run_dir: Path) -> None:
    """Refuse a folder that is not a finished run (StoreError, one line naming run_dir)."""
    RunFolder(run_dir).check_finished_run()


ESTIMATOR_LABELS = {"final": "box counting", "paper_method": "paper's median of local slopes",
                    "pooled": "box counting, pooled over frames",
                    "pooled_paper": "paper's median of local slopes, pooled over frames",
                    "uncertainty": "uncertainty exponent", "transect": "transect"}


def estimates_of(run_dir: Path) -> list[tuple[str, dict]]:
    """Every dimension estimate a finished folder holds, (label, estimate dict), side by side:
    a grid run's box count and the paper's estimator, a zoom's pooled ones, a sample's own."""
    run_dir = Path(run_dir)
    for name in (ZOOM_FILE, FRACTAL_FILE):
        path = run_dir / name
        if path.exists():
            info = json.loads(path.read_text())
            if "method" in info and "final" in info:          # a sample folder
                return [(ESTIMATOR_LABELS.get(info["method"], info["method"]), info["final"])]
            return [(label, info[key]) for key, label in ESTIMATOR_LABELS.items()
                    if isinstance(info.get(key), dict) and "ok" in info[key]]
    return []


def estimate_with_fit_range(edges, fit_range=None, force: bool = False, **options):
    """fractal.estimate_dimension, where a given fit range never overrules the estimator's own
    rule: if that rule finds the boundary too short, the result is its refusal (ok=False), or
    with `force` the fit-range estimate labelled ``extra["forced"]``."""
    est = estimate_dimension(edges, fit_range=fit_range, **options)
    if fit_range is None or not est.ok:
        return est
    own = estimate_dimension(edges, n_boot=1)
    if own.ok or own.reason != REASON_SHORT:
        return est
    if not force:
        return own
    est.extra = {**(est.extra or {}), "forced": True}
    est.reason = f"forced with --fit-range: the estimator's rule says {REASON_SHORT}"
    return est
