"""`nnfractal sample`: train exactly the points a sampling estimator asks for, into a run folder.

The estimators of `sampling.py` call ``evaluate(points)`` with whole batches (a coarse map, then
one batch per stage; a transect is one batch). Here each batch is a *block* of the run's store:
its points are written to ``points/xy`` first, then trained tile by tile with the same engine and
backends as a grid run (`run.train_tiles`), and scored with the grid's scoring rule. The
estimators are deterministic given their seed and the scores, so replaying one against the store
(`evaluate` finds every block already there) gives the same points, which is how `--resume`
finishes a killed sample and `nnfractal dimension` recomputes a finished one without training.

A sample is one run folder (not a study of many: its units are the estimator's blocks, driven by
the estimator), claimed, locked and resumed as a run is: `SampleSpec` (its parameters, stored in
the store's attributes) is its plan, `SampleResult` (sample.json) its result, `StudyOptions` how it
runs. `ensure_sample` is a sample as the unit of a study (the sampled comparison).

A sample folder::

    config.toml       the network's config (its window mnmx is the sampled window)
    store.zarr/       curves of every point, points/xy their hyperparameters, blocks in attrs
    sample.json       `SampleResult`: the estimator's parameters and its estimate with evidence
    fractal.json      {"method": ..., "final": estimate}, as in a grid run
    uncertainty.png   f(eps), the fit and local slopes   |  transect.png  barcode and count fit
    points.png        where the points fell, coloured by outcome
    summary.json, report.html
"""
from __future__ import annotations

import math
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from nnfractal.config import Config, ConfigError, build_config, config_from_dict, preset_names
from nnfractal.errors import RunFailed, RunFolderError, StoreError, one_line
from nnfractal.estimators.sampling import (
    EPS_CAP,
    REASON_NO_BOUNDARY,
    SAMPLING_METHODS,
    TRANSECT_COARSE,
    SamplingError,
    check_transect_args,
    check_uncertainty_args,
    floor_points_for,
    scale_picture,
    transect_dimension,
    uncertainty_exponent,
)
from nnfractal.storage.records import JsonRecord, read_record
from nnfractal.storage.run_folder import FRACTAL_FILE, RunFolder, write_report_safely
from nnfractal.storage.store import default_tile_rows
from nnfractal.training.budget import check_max_storage, check_memory, check_storage
from nnfractal.training.budget import estimate as budget_estimate
from nnfractal.training.grid import axis_labels
from nnfractal.training.measure import point_scores
from nnfractal.window import MIN_ULPS_APART, Window

from .study import StudyOptions

# run, backends and render are imported in the functions that use them (see studies/zoom.py).

SAMPLE_JSON = "sample.json"
MAX_BLOCKS = 64                 # the store's capacity: the uncertainty estimator's stages + coarse
DEFAULT_EPS_MIN = 1e-9
RESUME_COMMAND = "nnfractal sample --resume"


@dataclass(frozen=True)
class SampleSpec(JsonRecord):
    """The estimator's parameters, exactly as they ran (stored in sample.json and the store)."""
    method: str
    seed: int = 0
    budget: int = 1 << 18               # uncertainty: evaluations in all
    eps_min: float | None = None        # uncertainty: window units (None: from the precision)
    coarse: int = 64                    # uncertainty: coarse map points per side (0: uniform)
    floor_points: int | None = None     # uncertainty: base points per stage for the chaos floor
                                        # (None: floor_points_for(budget))
    points: int = 1 << 14               # transect: points per segment
    lines: int = 16                     # transect: parallel segments
    angle: float | None = None          # transect: degrees from the x axis (window units;
                                        # None: sampling.TREND_OFFSET_DEG from the boundary's trend)
    direction: tuple[float, float] | None = None   # transect: (dx, dy) in axis units, or angle
    center: tuple[float, float] | None = None   # transect: axis units (default: window centre)
    length: float | None = None         # transect: window units (default: the chord)

    @property
    def evaluations(self) -> int:
        """At most this many points: a transect's placing coarse map counts unless both its
        centre and its direction are given (then the estimator runs none)."""
        if self.method == "uncertainty":
            return self.budget
        placed = self.center is not None and (self.angle is not None
                                              or self.direction is not None)
        return self.points * self.lines + (0 if placed else TRANSECT_COARSE ** 2)


@dataclass(kw_only=True)
class SampleResult(JsonRecord):
    """sample.json: the estimator's parameters, its estimate (`SamplingEstimate.to_dict()`, with
    its evidence) and how many points it trained."""
    method: str
    parameters: SampleSpec
    estimate: dict
    evaluations: int
    model_steps: int
    source_run: str | None = None

    @classmethod
    def from_json(cls, data):
        if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
            # written before the chaos floor existed: it had none
            data = {**data, "parameters": {"floor_points": 0, **data["parameters"]}}
        return super().from_json(data)


def read_sample(folder: Path) -> SampleResult:
    """The sample.json of a finished sample folder (StoreError, one line, for anything else)."""
    return read_record(SampleResult, Path(folder) / SAMPLE_JSON, "sample.json", "run_dir")


def precision_eps_floor(cfg: Config) -> float:
    """Smallest pair distance (window units) at which the two points' hyperparameters still
    differ by MIN_ULPS_APART rounding units of the training precision, on the worse axis."""
    # ulps per pixel at resolution 2 is the ulps across the whole window; eps scales it.
    return MIN_ULPS_APART / Window.of(cfg).ulps_per_pixel(2, cfg.precision)


def resolve_spec(spec: SampleSpec, cfg: Config) -> SampleSpec:
    """Check every parameter (SamplingError / ConfigError naming the field); fill eps_min."""
    if spec.method not in SAMPLING_METHODS:
        raise ConfigError("method", f"{spec.method!r} is not allowed (allowed: "
                          f"{', '.join(SAMPLING_METHODS)})")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0:
        raise ConfigError("sample_seed", f"{spec.seed!r} is not allowed (allowed: an integer >= 0)")
    if spec.method == "uncertainty":
        floor = precision_eps_floor(cfg)
        eps_min = spec.eps_min if spec.eps_min is not None else max(DEFAULT_EPS_MIN, floor)
        check_uncertainty_args(spec.budget, float(eps_min), spec.coarse)
        if spec.floor_points is None:
            spec = replace(spec, floor_points=floor_points_for(spec.budget))
        if isinstance(spec.floor_points, bool) or not isinstance(spec.floor_points, int) or \
                not 0 <= spec.floor_points <= 4096:
            raise SamplingError("floor_points", f"{spec.floor_points!r} is not allowed (allowed: "
                                "0 = no chaos floor, up to 4096 base points per stage)")
        if eps_min < floor:
            raise SamplingError("eps_min", f"{eps_min:g} is not allowed: {cfg.precision} resolves "
                                f"pairs down to {floor:.2g} window units in this window "
                                f"(allowed: {floor:.2g} <= eps_min <= 1e-3)")
        largest_eps = EPS_CAP / spec.coarse if spec.coarse else EPS_CAP
        if math.log10(largest_eps) - math.log10(eps_min) < 2:
            raise SamplingError("eps_min", f"{eps_min:g} leaves less than 2 decades of eps below "
                                "the coarse cells (allowed: smaller eps_min, or a finer --coarse)")
        return replace(spec, eps_min=float(eps_min))
    if spec.direction is not None:
        dx, dy = (float(v) for v in spec.direction)
        width, height = Window.of(cfg).size
        du, dv = dx / width, dy / height
        norm = math.hypot(du, dv)
        check_transect_args(spec.points, spec.lines, spec.angle, spec.length,
                            direction_norm=norm if math.isfinite(norm) else 0.0)
        spec = replace(spec, angle=math.degrees(math.atan2(dv, du)))
    check_transect_args(spec.points, spec.lines, spec.angle, spec.length)
    if spec.center is not None:
        w = Window.of(cfg)
        if not w.contains(*(float(c) for c in spec.center)):
            raise SamplingError("center", f"{list(spec.center)} is outside the window (allowed: "
                                f"x in [{w.x0}, {w.x1}], y in [{w.y0}, {w.y1}], axis units)")
    return spec


# ---- the store as an evaluator -----------------------------------------------------------------

def store_layout(cfg: Config, evaluations: int) -> tuple[int, int, int]:
    """(rows, cols, tile_rows) of a sample store: cols a whole number of chunks, tiles of about
    1024 points, and room for every block to start on a tile of its own."""
    m = max(1, cfg.tile_batch)
    cols = m * max(1, -(-256 // m))
    rows = -(-evaluations // cols)
    tile_rows = default_tile_rows(max(rows, 1), cols, m)
    return rows + MAX_BLOCKS * tile_rows, cols, tile_rows


class StoreEvaluator:
    """``evaluate(points)`` for the estimators, backed by a sample store.

    Block i of the store answers the i-th call. A block already planned must hold exactly the
    requested points (else the store belongs to another sample: StoreError); its tiles that are
    not done are trained with `train` (a callable taking the tile list), or, with
    ``train=None``, the call fails (a reader never trains).
    """

    def __init__(self, store, cfg: Config, train=None):
        self.store, self.cfg, self.train = store, cfg, train
        self.calls = 0
        self.unit_points: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        store, cfg = self.store, self.cfg
        unit = np.asarray(unit, dtype=np.float64)
        hp = Window.of(cfg).to_values(unit)
        blocks = list(store.attrs.get("blocks", []))
        grid = store.tile_grid
        k = len(hp)
        if self.calls < len(blocks):
            block = blocks[self.calls]
            stored = store.read_points(block["row"], block["row"] + block["rows"])[:k]
            if block["n"] != k or not np.array_equal(stored, hp):
                raise StoreError(f"store: {store.path} block {self.calls} holds other points than "
                                 "this sample asks for (allowed: the folder's own sample.json "
                                 "parameters)")
        else:
            if self.train is None:
                raise StoreError(f"store: {store.path} holds {len(blocks)} blocks of points; the "
                                 "sample is unfinished (resume it with nnfractal sample --resume)")
            row = blocks[-1]["row"] + blocks[-1]["rows"] if blocks else 0
            n_rows = -(-k // grid.cols)
            n_rows = -(-n_rows // grid.tile_rows) * grid.tile_rows
            if row + n_rows > grid.rows:
                raise StoreError(f"store: {store.path} has no room for block {self.calls}")
            padded = np.concatenate([hp, np.repeat(hp[-1:], n_rows * grid.cols - k, axis=0)])
            store.write_points(row, padded)          # the points first, then the block's record
            block = {"row": int(row), "rows": int(n_rows), "n": int(k)}
            store.update_attrs(blocks=blocks + [block])
        t0, t1 = block["row"] // grid.tile_rows, (block["row"] + block["rows"]) // grid.tile_rows
        tiles = list(range(t0, t1))
        done = store.done_tiles()
        todo = [t for t in tiles if not done[t]]
        if todo:
            if self.train is None:
                raise StoreError(f"store: {store.path} block {self.calls} is not fully trained "
                                 "(resume it with nnfractal sample --resume)")
            self.train(todo)
        curves = {m: store.group[f"curves/{m}"][block["row"]:block["row"] + block["rows"]]
                  .reshape(block["rows"] * grid.cols, -1)[:k] for m in store.metrics}
        per_epoch = int(store.attrs["schedule"]["steps_per_epoch"])
        scores = point_scores(cfg, curves, per_epoch)
        self.calls += 1
        self.unit_points.append(unit)
        self.scores.append(scores)
        return scores


def estimate(spec: SampleSpec, cfg: Config, evaluate):
    """Run the spec's estimator against `evaluate` (window units)."""
    if spec.method == "uncertainty":
        # the chaos floor moves points by the smallest distance the precision resolves
        return uncertainty_exponent(evaluate, budget=spec.budget, eps_min=spec.eps_min,
                                    coarse=spec.coarse, seed=spec.seed,
                                    floor_points=spec.floor_points,
                                    eps_floor=min(precision_eps_floor(cfg), spec.eps_min / 100))
    centre = None if spec.center is None else tuple(
        Window.of(cfg).to_unit(np.array([spec.center], dtype=np.float64))[0])
    return transect_dimension(evaluate, n_points=spec.points, lines=spec.lines,
                              angle_deg=spec.angle, centre=centre, length=spec.length,
                              seed=spec.seed)


# ---- the command ------------------------------------------------------------------------------

def default_sample_dir(cfg: Config, method: str) -> Path:
    return Path("runs") / f"{cfg.preset}-{method}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def source_config(source: str, overrides: dict) -> tuple[Config, Path | None]:
    """The config to sample: a preset name, or a run folder's config.toml (its window and
    network), with the flags given applied on top. A source's own ``adaptive`` is dropped (it
    refines a grid, and a sample has none), so ``nnfractal sample quickstart`` samples the quick
    start's network and window; ``--adaptive`` given on the command line is still refused."""
    path = Path(source)
    if RunFolder(path).config_file.is_file():
        cfg = RunFolder(path).read_config()
        changes = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()
                   if v is not None}
        return _without_own_adaptive(config_from_dict({**cfg.to_dict(), **changes}, "overrides"),
                                     overrides), path
    if source in preset_names():
        return _without_own_adaptive(build_config(source, **overrides), overrides), None
    raise ConfigError("source", f"{source!r} is neither a preset nor a run folder (allowed: "
                      f"{', '.join(preset_names())}, or a folder with a config.toml)")


def _without_own_adaptive(cfg: Config, overrides: dict) -> Config:
    return cfg.replace(adaptive=False) if cfg.adaptive and not overrides.get("adaptive") else cfg


def sample(spec: SampleSpec, cfg: Config, out: Path | None = None, *, source_run=None,
           options: StudyOptions | None = None, **option_values: Any) -> Path:
    """Train the points of `spec`'s estimator for the network of `cfg` into `out`; returns it.

    Everything that can be refused is checked before the folder is created; from then on the
    sample lives in `out` and `resume_sample(out)` finishes it after a kill. `options` (or its
    fields as keywords: data_dir, progress, log, backend, address, max_storage, report) say how
    it runs.
    """
    from nnfractal.runner.backends import make_backend
    from nnfractal.runner.run import resolve_auto_tile_batch
    o = options or StudyOptions(**option_values)
    spec = resolve_spec(spec, cfg)
    if cfg.adaptive:
        raise ConfigError("adaptive", "--adaptive refines a grid (allowed with sample: leave "
                          "it out)")
    if cfg.tile_batch == 0:
        cfg = resolve_auto_tile_batch(cfg, o.data_dir, o.log)
    out = Path(out) if out is not None else default_sample_dir(cfg, spec.method)
    check_sample_budget(cfg, spec, out, o.max_storage)
    RunFolder(out).check_out(cfg, resume_command=RESUME_COMMAND)
    runner = make_backend(o.backend, o.address)
    try:
        plan = _plan(cfg, spec, o.data_dir, runner, o.log)
        with _claim_new_sample(out, plan, spec, source_run):
            return _run_held(out, plan, spec, runner, o)
    finally:
        runner.close()


@contextmanager
def _claim_new_sample(out: Path, plan, spec: SampleSpec, source_run):
    """Create a new sample at `out` atomically and hold its lock while the block runs
    (`RunFolder.claim_new`: of two processes started on one `out` at the same instant exactly
    one gets it; the other is refused in one line as a later start would be)."""
    with RunFolder.claim_new(
            out, lambda work: _create_sample(work, plan, spec, source_run, shown=out),
            lambda: RunFolder(out).check_out(plan.cfg, resume_command=RESUME_COMMAND)) as claimed:
        yield claimed


def check_sample_budget(cfg: Config, spec: SampleSpec, out: Path,
                        max_storage: float | None = None) -> None:
    """The run budget (budget.py) for a sample: memory per chunk, and the curves of every point
    the store can hold, before anything is written (ConfigError naming the field)."""
    est = budget_estimate(cfg)
    check_memory(cfg, est)
    rows, cols, _ = store_layout(cfg, spec.evaluations)
    per_point = est.curves_bytes / (cfg.resolution * cfg.resolution)
    field = "budget" if spec.method == "uncertainty" else "points"
    check_storage(rows * cols * per_point, field, getattr(spec, field), out,
                  f"{rows * cols:,} points' curves", check_max_storage(max_storage))


def resume_sample(run_dir: Path, options: StudyOptions | None = None,
                  **option_values: Any) -> Path:
    """Finish a killed sample: replay its estimator, training only the tiles not stored."""
    from nnfractal.runner.backends import make_backend
    o = options or StudyOptions(**option_values)
    run_dir = Path(run_dir)
    spec, cfg = read_spec(run_dir)
    RunFolder(run_dir).check_writable()
    runner = make_backend(o.backend, o.address)
    try:
        plan = _plan(cfg, spec, o.data_dir, runner, o.log,
                     shape=_store_shape(RunFolder(run_dir).open_store()))
        with RunFolder(run_dir).lock():        # a second process is refused in one line
            return _run_held(run_dir, plan, spec, runner, o)
    finally:
        runner.close()


def ensure_sample(spec: SampleSpec, cfg: Config, folder: Path, options: StudyOptions) -> None:
    """A sample as the unit of a study: read if finished, resumed if started, else trained from
    scratch (a folder killed before its store existed is cleared first). A window without
    boundary is data (the folder keeps its curves), not a refusal."""
    folder = Path(folder)
    if (folder / SAMPLE_JSON).exists():
        return
    try:
        if RunFolder(folder).store_dir.is_dir() and RunFolder(folder).config_file.is_file():
            resume_sample(folder, options)
        else:
            if folder.exists():
                shutil.rmtree(folder)
            sample(spec, cfg, folder, options=options)
    except ConfigError as err:
        if err.field != "window" or not (folder / SAMPLE_JSON).exists():
            raise


def read_spec(run_dir: Path) -> tuple[SampleSpec, Config]:
    """The spec and config of a sample folder (StoreError if it is not one)."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    if not folder.config_file.is_file() or not folder.store_dir.is_dir():
        raise StoreError(f"run_dir: {run_dir} is not a sample folder (no config.toml or "
                         "store.zarr)")
    attrs = folder.open_store().attrs
    if "sampling" not in attrs:
        raise StoreError(f"run_dir: {run_dir} is a grid run, not a sample (allowed: a folder "
                         "written by nnfractal sample)")
    raw = dict(attrs["sampling"])
    raw.setdefault("floor_points", 0)           # written before the chaos floor existed
    return SampleSpec.from_json(raw), folder.read_config()


def is_sample_folder(folder: Path) -> bool:
    return (Path(folder) / SAMPLE_JSON).exists() or _store_has_sampling(Path(folder))


def _store_has_sampling(folder: Path) -> bool:
    try:
        return "sampling" in RunFolder(folder).open_store().attrs
    except Exception:
        return False


def _plan(cfg, spec, data_dir, runner, log, shape: tuple[int, int] | None = None):
    """The run plan of a sample whose store has `shape` (rows, cols); None: a new store's
    (`store_layout`). A resume passes its store's own: one written before a layout change
    keeps the shape it has."""
    from nnfractal.runner.run import plan_run
    plan = plan_run(cfg, data_dir, runner, log)
    rows, cols = shape if shape is not None else store_layout(cfg, spec.evaluations)[:2]
    return replace(plan, x=np.arange(cols, dtype=np.float64), y=np.arange(rows, dtype=np.float64))


def _store_shape(store) -> tuple[int, int]:
    """(rows, cols) of a sample store's points."""
    return len(store.y), len(store.x)


def _create_sample(out: RunFolder, plan, spec: SampleSpec, source_run,
                   shown: Path | None = None) -> None:
    """config.toml and the empty store in the (staging) folder `out`; `shown`: the folder's name
    in the error line. A failure (a full disk) raises RunFolderError; the caller removes `out`."""
    _, _, tile_rows = store_layout(plan.cfg, spec.evaluations)
    try:
        out.write_config(plan.cfg)
        out.create_store(plan.cfg, x=plan.x, y=plan.y, curve_lengths=plan.lengths,
                         dtype=plan.dtype, schedule=plan.store_schedule, tile_rows=tile_rows,
                         with_points=True,
                         extra={"data_source": plan.data.source, "sampling": spec.to_json(),
                                "blocks": [], "source_run": str(source_run) if source_run else None})
    except OSError as err:
        raise RunFolderError(f"out: cannot write {shown or out} "
                             f"({err.strerror or one_line(err)})") from None


def _run_held(run_dir: Path, plan, spec: SampleSpec, runner, o: StudyOptions) -> Path:
    """Train what the estimator asks for and finish the folder; the caller holds its lock."""
    from nnfractal.runner.run import train_tiles
    store = RunFolder(run_dir).open_store(mode="r+")
    store.remove_partial_files()

    def train(tiles):
        train_tiles(run_dir, store, plan, runner, o.progress, o.log, only=tiles,
                    resume=RESUME_COMMAND)

    evaluator = StoreEvaluator(store, plan.cfg, train)
    o.log(f"sampling {spec.method} for {plan.cfg.preset}: {spec.evaluations:,} evaluations at "
          f"most ({plan.cfg.model}, {plan.cfg.precision}, {plan.device})")
    est = estimate(spec, plan.cfg, evaluator)
    store.mark_complete()
    try:
        finish_sample(run_dir, store, plan.cfg, spec, est, evaluator, o)
    except Exception as err:          # every point is stored: `nnfractal dimension` redraws
        raise RunFailed(f"drawing stopped: {one_line(err)}; every point is stored (redraw "
                        f"with: nnfractal dimension {run_dir})", run_dir,
                        RESUME_COMMAND) from None
    if not est.ok and est.reason == REASON_NO_BOUNDARY:
        outcome = "converged" if np.all(np.concatenate(evaluator.scores) < 0) else "diverged"
        raise ConfigError("window", f"no boundary in this window: every sampled point {outcome} "
                          f"(allowed: mnmx holding both outcomes; {run_dir} keeps the curves)")
    return run_dir


@dataclass(kw_only=True)
class SampleSummary(JsonRecord):
    """summary.json of a sample folder: what it trained, how fast, on which machine."""
    kind: str = "sample"
    method: str
    evaluations: int
    fraction_converged: float | None = None
    steps: int | None = None
    model_steps: int | None = None
    tile_seconds: float | None = None
    model_steps_per_s: float | None = None
    wall_time_s: float | None = None
    sessions: int | None = None
    device: str | None = None
    data_source: str | None = None
    versions: dict[str, str] | None = None
    cpu: str | None = None


def finish_sample(run_dir: Path, store, cfg: Config, spec: SampleSpec, est, evaluator,
                  options: StudyOptions) -> Path:
    """Pictures, sample.json, fractal.json, summary.json and report.html of a finished sample."""
    from nnfractal.runner.run import cpu_name, describe, library_versions
    unit = np.concatenate(evaluator.unit_points)
    signs = np.sign(np.concatenate(evaluator.scores))
    _draw_sample(run_dir, cfg, spec, est, evaluator, unit, signs)
    sessions = store.attrs.get("sessions", [])
    seconds = float(store.tile_state()["seconds"].sum())
    steps = int(store.attrs["schedule"]["steps"])
    folder = RunFolder(run_dir)
    SampleResult(method=spec.method, parameters=spec, estimate=est.to_dict(),
                 evaluations=int(len(unit)), model_steps=int(len(unit) * steps),
                 source_run=store.attrs.get("source_run")).write(folder / SAMPLE_JSON)
    folder.write_json(FRACTAL_FILE, {"method": spec.method, "final": est.to_dict()})
    summary = SampleSummary(
        method=spec.method, evaluations=int(len(unit)),
        fraction_converged=float(np.mean(signs < 0)), steps=steps,
        model_steps=int(len(unit) * steps), tile_seconds=round(seconds, 3),
        model_steps_per_s=round(len(unit) * steps / seconds, 2) if seconds else None,
        wall_time_s=round(sum(float(s.get("wall_s", 0)) for s in sessions), 3),
        sessions=len(sessions), device=sessions[-1]["device"] if sessions else None,
        data_source=store.attrs.get("data_source"), versions=library_versions(), cpu=cpu_name())
    summary.write(folder.summary_file)
    write_report_safely(options.report, run_dir, log=options.log)
    rate = f", {summary.model_steps_per_s:.1f} model-steps/s" if summary.model_steps_per_s else ""
    picture = (scale_picture(est.to_dict()) if spec.method == "uncertainty"
               else f"{describe(est.to_dict())}; {len(unit):,} evaluations")
    options.log(f"{spec.method} dimension: {picture}{rate}")
    options.log(f"wrote {run_dir}")
    return run_dir


def _draw_sample(run_dir: Path, cfg: Config, spec: SampleSpec, est, evaluator, unit, signs) -> None:
    """uncertainty.png or transect.png (the estimate's evidence) and points.png."""
    from nnfractal.render.sample_plots import plot_sample_points, plot_transect, plot_uncertainty
    title = f"{cfg.preset}: {spec.method}"
    if spec.method == "uncertainty":
        plot_uncertainty(est, run_dir / "uncertainty.png", title=title)
    else:
        segments = np.sign(evaluator.scores[-1])          # the last block: the segments,
        if segments.size != spec.lines * spec.points:      # unless the coarse map found none
            segments = np.zeros((spec.lines, 0))
        plot_transect(est, segments.reshape(spec.lines, -1), run_dir / "transect.png",
                      title=title)
    window = Window.of(cfg)
    xl, yl = axis_labels(cfg)
    plot_sample_points(window.to_axis(unit), signs, window.extent, xl, yl,
                       run_dir / "points.png", title=f"{title}: {len(unit):,} points")


def dimension_of_sample(run_dir: Path, log=lambda *_: None, report=None) -> dict:
    """Recompute a finished sample's estimate from its stored curves (no training); rewrites its
    figures, sample.json, fractal.json and report (`report`: the writer). Returns the estimate
    as a dict."""
    spec, cfg = read_spec(run_dir)
    store = RunFolder(run_dir).open_store()
    evaluator = StoreEvaluator(store, cfg, train=None)
    est = estimate(spec, cfg, evaluator)
    finish_sample(Path(run_dir), store, cfg, spec, est, evaluator,
                  StudyOptions(log=log, report=report))
    return est.to_dict()
