"""Zoom sequences: train ever smaller windows around a point of a finished run's boundary.

``nnfractal zoom RUN_DIR [--factor 2] [--depth 2] [--center X Y] [--resolution N] [--out DIR]``,
``nnfractal zoom --resume OUT``

Frame 0 is the run's own window; frame k has 1/factor**k of its width and height (so the same
aspect ratio in axis units), down to ``depth`` decades of magnification:
``floor(depth * ln 10 / ln factor) + 1`` frames. Frame k (k >= 1) is centred on the centre and,
where that would leave frame k-1, shifted by the least amount that keeps it inside frame k-1: every
frame lies inside the one before (the animation never needs area nobody trained). A given centre
(``--center``, axis units: x then y; base-10 exponents on log axes) stays fixed. By default the
centre starts at the run's boundary pixel with the most boundary pixels around it (ties: nearest
the window's middle, then lowest row/column) and then follows the boundary: frame k is centred on
the densest boundary cell of frame k-1 near the current centre (`follow_boundary`), since a centre
picked on the first map is only as precise as its pixels.

Every frame is a full grid run (``run.execute``) with the run's config except ``mnmx`` (and
``resolution`` with --resolution), in ``OUT/frames/frame_NN/``. When the resolution is the run's,
frame 0 *is* the run (same config, same numbers: training is deterministic per point), so its
folder is copied from the run instead of trained again.

Resumable, as `nnfractal run` is. Once every input is accepted (`plan_zoom`: nothing is written
on a refusal), OUT appears in one step holding ``zoom_plan.json`` (the inputs as given, and the
centre and windows they gave) and stays locked (flock on that file) while the zoom works: a second
process on OUT is refused. Frames are trained one after the other with the run machinery: a new
frame with ``run.execute``, an unfinished one with ``run.resume`` (its finished tiles are kept). Ctrl-C
or SIGTERM (after the current chunk) and failures leave OUT as it is and say ``resume with:
nnfractal zoom --resume OUT`` (`resume_zoom`): it plans again from zoom_plan.json (refusing a run
that no longer gives the same windows), trains only what is missing and draws. With the automatic
centre, frame k's window is recomputed from frame k-1's stored map, which is deterministic, so a
resumed zoom has an uninterrupted one's windows and curves, bit for bit. A finished zoom
(``"complete": true`` in zoom.json, set after the animation) resumed is left unchanged.

An output folder holds::

    zoom_plan.json             the inputs (written first; --resume reads them)
    zoom.json                  windows, centre, factor, float limit, per-frame and pooled dimension
    dimension_per_frame.png    dimension and 95% interval per frame, pooled estimates as bands
    zoom.mp4, zoom.gif         smooth zoom through the frames (the paper's window interpolation)
    frames/frame_NN/           one run folder per frame (map.png, boundary.png, fractal.json, ...)

The default OUT is a sibling of the run folder, ``<RUN_DIR>-zoom-<timestamp>`` (next to the run it
came from, but not inside it: a run folder keeps its fixed layout).

Float limit. Windows are computed in float64. Before anything is trained, each frame's pixel
spacing is compared with the rounding of the numbers training sees (the run's precision: the
engine casts learning rates and offsets to it): on a log axis a pixel is a relative step of
``width * ln 10 / (resolution - 1)`` in the hyperparameter 10**v, and v itself is rounded to
``|v| * eps``; on a linear axis the step is ``spacing / max|value|``. A frame needs at least
`MIN_ULPS_PER_PIXEL` rounding units between neighbouring pixels (so they differ and are evenly
spaced to 1%); the sequence stops at the last frame that has them, with one log line saying at
which decade the precision runs out, rather than drawing blocky frames.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from nnfractal.config import Config, ConfigError
from nnfractal.errors import DataError, RunFailed, RunFolderError, RunInterrupted, one_line
from nnfractal.estimators.boxcount import DimensionEstimate, boundary, estimate_dimension, local_slopes, paper_dimension
from nnfractal.estimators.resolution import resolution_warning
from nnfractal.storage.folders import write_json_atomic
from nnfractal.storage.run_folder import (
    FRACTAL_FILE,
    MAP_FILE,
    STORE_DIR,
    ReportWriter,
    RunFolder,
    lock_file,
    write_report_safely,
)
from nnfractal.storage.store import StoreError
from nnfractal.training.budget import check_many, check_max_storage
from nnfractal.training.grid import axis_labels
from nnfractal.training.measure import converged_fraction

# run, backends and render are imported in the functions that use them: they load torch and
# matplotlib (3.7 s and 1.5 s measured), and `nnfractal` imports this module at start, before
# its allocator restart, also for commands that need neither (presets, report, --help).

FORMAT = "nnfractal-zoom"
FORMAT_VERSION = 1
PLAN_FILE = "zoom_plan.json"
PLAN_FORMAT = "nnfractal-zoom-plan"
RESUME_COMMAND = "nnfractal zoom --resume"
DEFAULT_FACTOR = 2.0
DEFAULT_DEPTH = 2.0
MIN_ULPS_PER_PIXEL = 100.0
MAX_ZOOM_FRAMES = 1000

# Frame 0, when it is the run itself, takes over the run's top-level files and these folders
# (not other folders, such as a zoom written inside the run folder).
RUN_FOLDERS = (STORE_DIR, "epochs")
RUN_PICTURES = (MAP_FILE, "boundary.png", FRACTAL_FILE)

POOLED_METHOD = (
    "pooled: inverse-variance weighted mean of the box-counting dimensions of the frames that "
    "have one (variance from each frame's 95% interval: (half-width / 1.96)**2). A frame's error "
    "is mostly systematic (scaling range, pixelisation) and shared by all frames, so pooling does "
    "not shrink it: the interval is the weighted mean of the frames' lower and upper half-widths "
    "around the pooled value, widened to include every frame's estimate (a dimension that drifts "
    "with magnification shows up as a wide interval). pooled_paper: the paper's estimator, median "
    "of the local slopes pooled over all frames' boundaries.")


# ---- windows --------------------------------------------------------------------------------

AUTO_CENTRE_WORDS = "auto: densest point of the largest connected boundary, then following the boundary"


def frame_count(depth: float, factor: float) -> int:
    """Frames of a zoom `depth` decades deep at `factor` per frame, the run's own window included."""
    return int(math.floor(depth * math.log(10) / math.log(factor) + 1e-9)) + 1


def frame_windows(mnmx, center, factor: float, n: int) -> list[tuple[float, float, float, float]]:
    """The `n` windows (y_min, y_max, x_min, x_max) of a zoom, in float64.

    Frame 0 is `mnmx` itself. Frame k has 1/factor**k of its width and height, is centred on
    `center` = (x, y) and, where that would leave frame k-1, is shifted (not shrunk) to lie inside
    frame k-1.
    """
    y0, y1, x0, x1 = (float(v) for v in mnmx)
    cx, cy = float(center[0]), float(center[1])
    wins = [(y0, y1, x0, x1)]
    for k in range(1, n):
        scale = float(factor) ** -k
        py0, py1, px0, px1 = wins[-1]
        xs = _nested(cx, (x1 - x0) * scale, px0, px1)
        ys = _nested(cy, (y1 - y0) * scale, py0, py1)
        wins.append((ys[0], ys[1], xs[0], xs[1]))
    return wins


def _nested(c: float, width: float, lo_prev: float, hi_prev: float) -> tuple[float, float]:
    lo = c - width / 2
    if lo < lo_prev:
        return lo_prev, lo_prev + width
    if lo + width > hi_prev:
        return hi_prev - width, hi_prev
    return lo, lo + width


def ulps_per_pixel(mnmx, resolution: int, axis_scale: str, precision: str = "float64") -> float:
    """Rounding units of `precision` between neighbouring pixels, the worse of the two axes."""
    eps = float(np.finfo(np.dtype(precision)).eps)
    y0, y1, x0, x1 = (float(v) for v in mnmx)
    worst = math.inf
    for lo, hi in ((x0, x1), (y0, y1)):
        spacing = (hi - lo) / (resolution - 1)
        big = max(abs(lo), abs(hi))
        if axis_scale == "log":
            # value 10**v: relative step spacing*ln10; v's own rounding |v|*eps moves the value by
            # ln10*|v|*eps relative, the power's rounding by ~eps.
            steps = spacing * math.log(10) / (eps * max(1.0, math.log(10) * big))
        else:
            steps = spacing / (eps * big) if big > 0 else math.inf
        worst = min(worst, steps)
    return worst


def resolvable_frames(windows, resolution: int, axis_scale: str,
                      precision: str = "float64") -> tuple[int, list[float]]:
    """How many leading windows `precision` can resolve, and each window's ulps per pixel."""
    ulps = [ulps_per_pixel(w, resolution, axis_scale, precision) for w in windows]
    n = 0
    while n < len(ulps) and ulps[n] >= MIN_ULPS_PER_PIXEL:
        n += 1
    return n, ulps


def axis_units(cfg: Config, resolution: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column and row coordinates of a grid in axis units (exponents on log axes), float64."""
    n = resolution or cfg.resolution
    y0, y1, x0, x1 = cfg.mnmx
    return np.linspace(x0, x1, n), np.linspace(y0, y1, n)


def score_map_of(run_dir: Path) -> tuple[Config, np.ndarray]:
    """A finished run's config and its final score map (rows=y, cols=x), as its map.png shows."""
    from nnfractal.runner.run import score_map
    folder = RunFolder(run_dir)
    cfg = folder.read_config()
    return cfg, score_map(folder.open_store(), cfg)


def densest_boundary_pixel(edges: np.ndarray, half: int | None = None) -> tuple[int, int]:
    """(row, col) of the boundary pixel with the most boundary pixels in a box around it.

    The box is (2*half+1) pixels square, half = max(1, min(shape) // 16). Ties go to the pixel
    nearest the image's middle, then to the lowest row and column: the choice is deterministic.
    """
    edges = np.asarray(edges, dtype=bool)
    if not edges.any():
        raise ValueError("no boundary pixel")
    rows, cols = edges.shape
    h = max(1, min(rows, cols) // 16) if half is None else int(half)
    table = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(edges, axis=0), axis=1)
    r0 = np.clip(np.arange(rows) - h, 0, rows)
    r1 = np.clip(np.arange(rows) + h + 1, 0, rows)
    c0 = np.clip(np.arange(cols) - h, 0, cols)
    c1 = np.clip(np.arange(cols) + h + 1, 0, cols)
    density = (table[np.ix_(r1, c1)] - table[np.ix_(r0, c1)] - table[np.ix_(r1, c0)]
               + table[np.ix_(r0, c0)])
    ii, jj = np.nonzero(edges)
    dist = (ii - (rows - 1) / 2) ** 2 + (jj - (cols - 1) / 2) ** 2
    best = np.lexsort((jj, ii, dist, -density[ii, jj]))[0]
    return int(ii[best]), int(jj[best])


def largest_component(edges: np.ndarray) -> np.ndarray:
    """The largest 8-connected set of boundary pixels (rows, cols) bool: the main boundary, not an
    isolated filament or a speck of diverged dust. Ties go to the component found first in row
    order (deterministic)."""
    from collections import deque
    edges = np.asarray(edges, dtype=bool)
    label = np.zeros(edges.shape, dtype=np.int32)
    rows, cols = edges.shape
    best, best_size, current = 0, 0, 0
    for r0, c0 in zip(*np.nonzero(edges)):
        if label[r0, c0]:
            continue
        current += 1
        label[r0, c0] = current
        queue, size = deque([(r0, c0)]), 0
        while queue:
            r, c = queue.popleft()
            size += 1
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < rows and 0 <= cc < cols and edges[rr, cc] and not label[rr, cc]:
                        label[rr, cc] = current
                        queue.append((rr, cc))
        if size > best_size:
            best, best_size = current, size
    return label == best if best else np.zeros_like(edges)


def auto_center(cfg: Config, score_map: np.ndarray) -> tuple[float, float] | None:
    """Centre (x, y) in axis units of the densest pixel of the run's main boundary (its largest
    connected component); None without boundary.

    A boundary pixel (i, j) stands for the cell between grid rows i, i+1 and columns j, j+1; the
    centre is that cell's middle.
    """
    edges = boundary(score_map)
    if not edges.any():
        return None
    i, j = densest_boundary_pixel(largest_component(edges))
    xs, ys = axis_units(cfg, score_map.shape[1])
    return float((xs[j] + xs[j + 1]) / 2), float((ys[i] + ys[i + 1]) / 2)


def follow_boundary(cfg: Config, score_map: np.ndarray, center, next_width,
                    half: int) -> tuple[tuple[float, float], bool]:
    """Centre of the next frame of an automatic zoom, from this frame's map: the boundary cell
    with the most boundary within ``half`` pixels of it, among the cells inside the next frame
    as planned around ``center`` (the nearest boundary cell when none is).

    A centre chosen on the first map is only as precise as that map's pixels: once the frames are
    smaller than those pixels, a fixed centre leaves the boundary (the paper's single-datapoint
    configuration at 128 px: frame 3 of x8 frames was 0% converged). Following the boundary frame
    by frame keeps every frame on it, as the paper's hand-picked zooms are.

    Parameters
    ----------
    cfg : Config
        This frame's config (its ``mnmx`` places the pixels; axis units).
    score_map : (n, n) ndarray
        This frame's scores (rows = y, cols = x).
    center : (x, y)
        The current centre, axis units.
    next_width : (width_x, width_y)
        The next frame's width and height, axis units.

    Returns
    -------
    ((x, y), found) : the next centre (``center`` itself when this frame has no boundary) and
    whether there was boundary to follow.
    """
    from nnfractal.estimators.boxcount import boundary
    edges = boundary(score_map)
    if not edges.any():
        return (float(center[0]), float(center[1])), False
    xs, ys = axis_units(cfg, score_map.shape[1])
    mid_x, mid_y = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    ii, jj = np.nonzero(edges)
    dx, dy = mid_x[jj] - center[0], mid_y[ii] - center[1]
    inside = (np.abs(dx) <= next_width[0] / 2) & (np.abs(dy) <= next_width[1] / 2)
    # distance in pixels of this frame, so the two axes weigh alike
    dist = (dx / (xs[1] - xs[0])) ** 2 + (dy / (ys[1] - ys[0])) ** 2
    if inside.any():
        rows, cols = edges.shape
        table = np.zeros((rows + 1, cols + 1), dtype=np.int64)
        table[1:, 1:] = np.cumsum(np.cumsum(edges, axis=0), axis=1)
        r0, r1 = np.clip(ii - half, 0, rows), np.clip(ii + half + 1, 0, rows)
        c0, c1 = np.clip(jj - half, 0, cols), np.clip(jj + half + 1, 0, cols)
        density = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
        best = np.lexsort((jj, ii, dist, -np.where(inside, density, -1)))[0]
    else:
        best = np.lexsort((jj, ii, dist))[0]
    return (float(mid_x[jj[best]]), float(mid_y[ii[best]])), True


# ---- planning: every check before anything is written ----------------------------------------

@dataclass
class ZoomPlan:
    run_dir: Path
    out: Path
    cfg: Config                      # the run's config
    frame_cfgs: list[Config]
    center: tuple[float, float]
    center_source: str               # "given" or "auto"
    factor: float
    depth: float
    n_requested: int
    ulps: list[float]                # per requested frame
    limit_message: str = ""
    reuse_run: bool = False

    @property
    def n_frames(self) -> int:
        return len(self.frame_cfgs)


def _fmt(v: float) -> str:
    return repr(float(v))


def default_zoom_dir(run_dir: Path) -> Path:
    base = run_dir if run_dir.name else run_dir.resolve()
    return base.parent / f"{base.name}-zoom-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def plan_zoom(run_dir, factor: float = DEFAULT_FACTOR, depth: float = DEFAULT_DEPTH,
              center=None, resolution: int | None = None, out=None,
              max_storage: float | None = None, resuming: bool = False) -> ZoomPlan:
    """Check every input and compute every window; raises ConfigError, StoreError or
    RunFolderError (one line naming the field) and writes nothing. `resuming`: `out` is the
    zoom's own folder (not checked as new; the budget was checked when it began)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
            or factor <= 1:
        raise ConfigError("factor", f"{factor!r} is not allowed (allowed: a number > 1, the "
                          "shrink factor per frame)")
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not math.isfinite(depth) \
            or depth <= 0:
        raise ConfigError("depth", f"{depth!r} is not allowed (allowed: a number of decades > 0)")
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                   or resolution < 2):
        raise ConfigError("resolution", f"{resolution!r} is not allowed (allowed: an integer >= 2)")
    n_req = frame_count(depth, factor)
    if n_req < 2:
        raise ConfigError("depth", f"{depth!r} decades is less than one zoom step of factor "
                          f"{factor!r} (allowed: depth >= log10(factor) = {math.log10(factor):.4g})")
    if n_req > MAX_ZOOM_FRAMES:
        raise ConfigError("depth", f"{depth!r} decades at factor {factor!r} needs {n_req} frames "
                          f"(allowed: at most {MAX_ZOOM_FRAMES} frames; raise --factor or lower "
                          "--depth)")
    run_dir = Path(run_dir)
    RunFolder(run_dir).check_finished_run()
    cfg = RunFolder(run_dir).read_config()
    y0, y1, x0, x1 = cfg.mnmx
    allowed = f"allowed: x in [{_fmt(x0)}, {_fmt(x1)}], y in [{_fmt(y0)}, {_fmt(y1)}]"
    units = "base-10 exponents" if cfg.axis_scale == "log" else "axis values"
    if center is not None:
        if len(center) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                       for v in center):
            raise ConfigError("center", f"{list(center)} is not allowed (allowed: two finite "
                              f"numbers X Y, {units})")
        cx, cy = float(center[0]), float(center[1])
        if not (x0 <= cx <= x1 and y0 <= cy <= y1):
            raise ConfigError("center", f"({_fmt(cx)}, {_fmt(cy)}) is outside the run's window "
                              f"({allowed}; {units})")
        source = "given"
    else:
        _, smap = score_map_of(run_dir)
        found = auto_center(cfg, smap)
        if found is None:
            raise ConfigError("center", f"the run {run_dir} has no boundary to zoom into; give "
                              f"--center X Y ({allowed}; {units})")
        cx, cy = found
        source = "auto"
    res = resolution or cfg.resolution
    windows = frame_windows(cfg.mnmx, (cx, cy), factor, n_req)
    n_ok, ulps = resolvable_frames(windows, res, cfg.axis_scale, cfg.precision)
    step = math.log10(factor)
    limit = ""
    if n_ok < n_req:
        k = n_ok
        limit = (f"{cfg.precision} runs out of digits at decade {k * step:.2f} of the zoom: frame "
                 f"{k} would have {ulps[k]:.3g} rounding units between neighbouring pixels (needs "
                 f">= {MIN_ULPS_PER_PIXEL:g}), so the zoom stops at frame {k - 1} "
                 f"({(k - 1) * step:.2f} decades) instead of {n_req - 1} ({depth:g} decades)")
    if n_ok < 2:
        raise ConfigError("depth", f"{cfg.precision} cannot resolve a single zoom step of this run: "
                          f"frame {n_ok} (decade {n_ok * step:.2f}) would have {ulps[n_ok]:.3g} "
                          f"rounding units between neighbouring pixels (allowed: windows with >= "
                          f"{MIN_ULPS_PER_PIXEL:g}; use a wider run window, a smaller --factor or "
                          "a lower --resolution)")
    out = Path(out) if out is not None else default_zoom_dir(run_dir)
    frame_cfgs = [cfg.replace(mnmx=w, resolution=res) for w in windows[:n_ok]]
    if not resuming:
        if (out / PLAN_FILE).is_file() and not _zoom_finished(out):
            raise RunFolderError(f"out: {out} holds an unfinished zoom (resume with: "
                                 f"{RESUME_COMMAND} {out})")
        RunFolder(out).check_new()
        check_many(frame_cfgs[-1], len(frame_cfgs), "resolution" if resolution else "depth",
                   resolution or depth, out, "the zoom", check_max_storage(max_storage))
    return ZoomPlan(run_dir=run_dir, out=out, cfg=cfg, frame_cfgs=frame_cfgs, center=(cx, cy),
                    center_source=source, factor=float(factor), depth=float(depth),
                    n_requested=n_req, ulps=ulps, limit_message=limit,
                    reuse_run=frame_cfgs[0].to_dict() == cfg.to_dict())


# ---- running -------------------------------------------------------------------------------

def frame_name(k: int, n: int) -> str:
    return f"frame_{k:0{max(2, len(str(n - 1)))}d}"


def _copy_run(src: Path, dst: Path, log) -> None:
    """Frame 0 when it is the run itself: copy the run's files; draw what is missing. Built under
    a temporary name and renamed, so `dst` exists only complete (a resume then skips it)."""
    from nnfractal.runner.run import render_run
    with RunFolder.staged(dst) as staged:
        work = staged.path
        for p in sorted(src.iterdir()):
            if p.name.startswith("."):
                continue                               # temporary folders, ours included
            if p.is_dir() and p.name in RUN_FOLDERS:
                shutil.copytree(p, work / p.name)
            elif p.is_file():
                shutil.copy2(p, work / p.name)
        if not all((work / name).exists() for name in RUN_PICTURES):
            render_run(work, log=log)


# ---- the plan: what `zoom --resume` needs to continue identically ----------------------------

def plan_record(plan: ZoomPlan, center, resolution: int | None,
                max_storage: float | None) -> dict:
    """zoom_plan.json: the inputs as given (`center` None: automatic) and, as a check against a
    run changed since, the centre and windows they gave."""
    return {"format": PLAN_FORMAT, "format_version": FORMAT_VERSION,
            "run_dir": str(plan.run_dir.resolve()), "factor": plan.factor, "depth": plan.depth,
            "center": None if center is None else [float(v) for v in center],
            "center_source": plan.center_source, "resolution": resolution,
            "max_storage": max_storage,
            "planned_center": list(plan.center),
            "planned_windows": [list(c.mnmx) for c in plan.frame_cfgs]}


def read_plan(zoom_dir: Path) -> dict:
    """The zoom_plan.json of a zoom folder; StoreError (one line) for any other folder."""
    path = Path(zoom_dir) / PLAN_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        raise StoreError(f"resume: {zoom_dir} is not a resumable zoom folder (no readable "
                         f"{PLAN_FILE}; allowed: a folder written by nnfractal zoom)") from None
    if not isinstance(record, dict) or record.get("format") != PLAN_FORMAT:
        raise StoreError(f"resume: {path} is not a zoom plan (allowed: a folder written by "
                         "nnfractal zoom)")
    return record


def _replan(zoom_dir: Path, record: dict) -> ZoomPlan:
    """The plan of an existing zoom, computed again from its inputs; StoreError when the run it
    zooms into no longer gives the same centre and windows."""
    plan = plan_zoom(record["run_dir"], record["factor"], record["depth"], record["center"],
                     record["resolution"], zoom_dir, record["max_storage"], resuming=True)
    if list(plan.center) != record["planned_center"] or \
            [list(c.mnmx) for c in plan.frame_cfgs] != record["planned_windows"]:
        raise StoreError(f"resume: the run {record['run_dir']} gives other zoom windows than "
                         f"when {zoom_dir} began (allowed: the unchanged run)")
    return plan


# ---- running -------------------------------------------------------------------------------

def zoom(run_dir, factor: float = DEFAULT_FACTOR, depth: float = DEFAULT_DEPTH, center=None,
         resolution: int | None = None, out=None, data_dir=None, progress: bool = True,
         log=print, max_storage: float | None = None, report: ReportWriter | None = None) -> Path:
    """Train the zoom sequence of a finished run, analyse it and draw it; returns the folder.

    Every refusable input is checked (`plan_zoom`) before anything is written. Then `out` appears
    in one step with its zoom_plan.json (of two processes claiming it, one wins) and stays locked
    while the frames are trained. Ctrl-C, SIGTERM (after the current chunk) or a failure keep
    every finished frame and tile and raise RunInterrupted / RunFailed saying how to resume
    (`resume_zoom`). A refusal from a frame (e.g. its data) before any frame was trained removes
    `out` again. `report`: writes the report of the zoom and of each frame (the command layer
    passes report.write_report; None: no reports).
    """
    plan = plan_zoom(run_dir, factor, depth, center, resolution, out, max_storage)
    out = plan.out
    record = plan_record(plan, center, resolution, max_storage)

    def create(folder: RunFolder) -> None:
        (folder / "frames").mkdir()
        write_json_atomic(folder / PLAN_FILE, record)

    with RunFolder.claim_new(out, create, lambda: RunFolder(out).check_new(),
                             lock_name=PLAN_FILE):
        try:
            return _run_zoom(plan, data_dir, progress, log, max_storage, report)
        except (ConfigError, DataError, RunFolderError, StoreError):
            if not _trained_frames(plan):
                shutil.rmtree(out, ignore_errors=True)      # ours, locked: nothing was trained
            raise


def resume_zoom(zoom_dir, data_dir=None, progress: bool = True, log=print,
                report: ReportWriter | None = None) -> Path:
    """Finish an interrupted zoom: the frames not finished are trained (an unfinished frame keeps
    its tiles: `run.resume`), then the analysis, animation and report are made as by `zoom`. A
    finished zoom is left as it is. Refuses (StoreError, RunFolderError; nothing written) a folder
    that is not a zoom, a run that no longer gives the zoom's windows, and a zoom another process
    holds."""
    zoom_dir = Path(zoom_dir)
    record = read_plan(zoom_dir)
    plan = _replan(zoom_dir, record)
    RunFolder(zoom_dir).check_writable()
    with lock_file(zoom_dir / PLAN_FILE, zoom_dir):
        if _zoom_finished(zoom_dir):
            log(f"{zoom_dir} is complete: nothing to train or draw")
            return zoom_dir
        log(f"zoom: resuming {zoom_dir}")
        return _run_zoom(plan, data_dir, progress, log, record["max_storage"], report)


def _zoom_finished(zoom_dir: Path) -> bool:
    try:
        return bool(read_zoom_json(zoom_dir).get("complete"))
    except StoreError:
        return False


def _trained_frames(plan: ZoomPlan) -> list[Path]:
    """Frame folders that hold training (frame 0 copied from the run does not)."""
    frames = plan.out / "frames"
    copied = frame_name(0, plan.n_frames) if plan.reuse_run else None
    return [d for d in frames.iterdir() if d.name != copied] if frames.is_dir() else []


def _run_zoom(plan: ZoomPlan, data_dir, progress: bool, log, max_storage, report) -> Path:
    """Train every frame not finished, then analyse and draw; the caller holds the lock. Stops
    and failures become RunInterrupted / RunFailed naming `nnfractal zoom --resume`."""
    from nnfractal.runner.backends import graceful_interrupt

    out, n = plan.out, plan.n_frames
    if plan.limit_message:
        log(plan.limit_message)
    warning = resolution_warning(plan.frame_cfgs[0].resolution, "each zoom frame")
    if warning:                           # before minutes of training, not after
        log(f"warning: {warning}")
    cx, cy = plan.center
    log(f"zoom: {n} frames of {plan.frame_cfgs[0].resolution}x{plan.frame_cfgs[0].resolution}, "
        f"factor {plan.factor:g} per frame, {depth_words(n, plan.factor, plan.depth)}, "
        f"centre x={_fmt(cx)} y={_fmt(cy)} "
        f"({'given' if plan.center_source == 'given' else AUTO_CENTRE_WORDS})")
    start = time.perf_counter()
    try:
        # Ctrl-C or SIGTERM: the frame in training stops after its chunk, and no other starts.
        with graceful_interrupt():
            frames = _train_frames(plan, data_dir, progress, log, max_storage, report)
            stop_if_requested(f"zoom interrupted after its {n} frames, before drawing")
    except RunInterrupted as err:
        raise RunInterrupted(f"{str(err).split('; resume with')[0]}; finished frames and tiles "
                             f"are kept; resume with: {RESUME_COMMAND} {out}") from None
    except RunFailed as err:
        raise RunFailed(err.brief, out, RESUME_COMMAND) from None
    except KeyboardInterrupt as err:
        raise RunInterrupted(f"{err or 'zoom interrupted'}; finished frames and tiles are kept; "
                             f"resume with: {RESUME_COMMAND} {out}") from None
    train_s = time.perf_counter() - start
    info = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "source_run": str(plan.run_dir.resolve()),
        "preset": plan.cfg.preset, "axis_scale": plan.cfg.axis_scale,
        "axis_units": "base-10 exponents" if plan.cfg.axis_scale == "log" else "values",
        "center": {"x": cx, "y": cy, "source": plan.center_source},
        # auto: each frame is centred on the boundary of the one before (`follow_boundary`)
        "center_follows_boundary": plan.center_source == "auto",
        "factor": plan.factor, "depth_requested": plan.depth,
        "depth_reached": (n - 1) * math.log10(plan.factor),
        "resolution": plan.frame_cfgs[0].resolution, "n_frames": n,
        "n_frames_requested": plan.n_requested,
        "float_limit": {"precision": plan.cfg.precision,
                        "min_ulps_per_pixel": MIN_ULPS_PER_PIXEL,
                        "stopped_early": n < plan.n_requested,
                        "message": plan.limit_message or None,
                        "ulps_per_pixel_requested_frames": plan.ulps},
        # this session's training (a resumed zoom: the resumed part only)
        "frames": frames, "training_and_frames_s": round(train_s, 3),
    }
    try:
        write_json_atomic(out / "zoom.json", info)
        info = analyse_zoom(out, log=log)
        t0 = time.perf_counter()
        n_anim = render_zoom_animation(out)
        log(f"zoom.gif, zoom.mp4: {n_anim} animation frames ({time.perf_counter() - t0:.1f} s)")
        write_json_atomic(out / "zoom.json", {**info, "complete": True})
    except KeyboardInterrupt:
        raise RunInterrupted(f"zoom interrupted while drawing; every frame is kept; resume "
                             f"with: {RESUME_COMMAND} {out}") from None
    except (MemoryError, OSError, RuntimeError, ValueError) as err:
        raise RunFailed(f"drawing stopped: {one_line(err)}; every frame is kept", out,
                        RESUME_COMMAND) from None
    write_report_safely(report, out, log=log)
    log(f"wrote {out}  ({n} frames, {time.perf_counter() - start:.1f} s)")
    return out


def _train_frames(plan: ZoomPlan, data_dir, progress: bool, log, max_storage,
                  report) -> list[dict]:
    """Each frame's record for zoom.json, training the frames not finished: a new frame with
    `run.execute`, an unfinished one with `run.resume`, a finished one read. With an automatic
    centre frame k's window is computed from frame k-1's stored map (`_follow`, deterministic),
    so a resumed zoom trains exactly the windows an uninterrupted one does."""
    from nnfractal.runner.run import execute, resume

    out, n = plan.out, plan.n_frames
    frames, centre = [], plan.center
    for k, fcfg in enumerate(plan.frame_cfgs):
        stop_if_requested(f"zoom interrupted before frame {k} of {n}")
        name = frame_name(k, n)
        fdir = out / "frames" / name
        if k > 0 and plan.center_source == "auto":
            fcfg, centre = _follow(plan, fcfg, frames[-1], out, centre, log)

        def flog(msg, k=k):
            log(f"[frame {k}/{n - 1}] {msg}")
        folder = RunFolder(fdir)
        if k == 0 and plan.reuse_run:
            if not fdir.exists():
                _copy_run(plan.run_dir, fdir, flog)
                flog(f"the run's own window: copied from {plan.run_dir} (no training)")
            if not _titled(fdir):
                title_frame_map(fdir, k, n, plan.factor)
        elif not fdir.exists():
            execute(fcfg, fdir, data_dir=data_dir, progress=progress, log=flog, epoch_maps=False,
                    warn_resolution=False, max_storage=max_storage, report=report)
            title_frame_map(fdir, k, n, plan.factor)
        else:
            _check_frame(folder, fcfg)
            if not (folder.summary_file.exists() and folder.open_store().complete):
                resume(fdir, data_dir=data_dir, progress=progress, log=flog, epoch_maps=False,
                       report=report)
                title_frame_map(fdir, k, n, plan.factor)
            elif not _titled(fdir):                   # finished, killed before its title
                title_frame_map(fdir, k, n, plan.factor)
        frames.append({
            "index": k, "dir": f"frames/{name}", "mnmx": list(fcfg.mnmx),
            "window": {"x": list(fcfg.mnmx[2:]), "y": list(fcfg.mnmx[:2])},
            "center": {"x": centre[0], "y": centre[1]},
            "magnification": plan.factor ** k, "decades": k * math.log10(plan.factor),
            "ulps_per_pixel": ulps_per_pixel(fcfg.mnmx, fcfg.resolution, fcfg.axis_scale,
                                              fcfg.precision),
            "copied_from_run": bool(k == 0 and plan.reuse_run),
        })
    return frames


def _check_frame(folder: RunFolder, fcfg: Config) -> None:
    """An existing frame folder must hold the window the zoom computes for it."""
    try:
        have = folder.read_config()
    except (ConfigError, OSError):
        raise StoreError(f"resume: {folder} is not a zoom frame (no readable config.toml)") from None
    if list(have.mnmx) != list(fcfg.mnmx) or have.resolution != fcfg.resolution:
        raise StoreError(f"resume: {folder} holds window {list(have.mnmx)} at {have.resolution} "
                         f"px; the zoom computes {list(fcfg.mnmx)} at {fcfg.resolution} px")


def _titled(frame_dir: Path) -> bool:
    from PIL import Image
    try:
        with Image.open(Path(frame_dir) / MAP_FILE) as im:
            return "zoom frame" in im.text.get("Title", "")
    except OSError:
        return False


def _follow(plan: ZoomPlan, fcfg: Config, prev: dict, work: Path, centre, log):
    """Frame k's config and centre when the centre follows the boundary (see `follow_boundary`):
    centred on frame k-1's boundary near the current centre, inside frame k-1, with the planned
    size. Without boundary to follow, or where float64 could not resolve the moved window, the
    centre stays (the window still inside frame k-1, which may itself have moved)."""
    pcfg, pmap = score_map_of(work / prev["dir"])
    y0, y1, x0, x1 = fcfg.mnmx
    py0, py1, px0, px1 = pcfg.mnmx

    def window_at(c):
        xs, ys = _nested(c[0], x1 - x0, px0, px1), _nested(c[1], y1 - y0, py0, py1)
        return (ys[0], ys[1], xs[0], xs[1])

    half = max(1, round(pmap.shape[1] / (2 * plan.factor)))
    new, found = follow_boundary(pcfg, pmap, centre, (x1 - x0, y1 - y0), half)
    if not found:
        log(f"[frame {prev['index'] + 1}] frame {prev['index']} has no boundary: the centre stays")
    elif ulps_per_pixel(window_at(new), fcfg.resolution, fcfg.axis_scale,
                        fcfg.precision) >= MIN_ULPS_PER_PIXEL:
        return fcfg.replace(mnmx=window_at(new)), new
    return fcfg.replace(mnmx=window_at(centre)), centre


def depth_words(n_frames: int, factor: float, asked: float) -> str:
    """The decades a zoom of whole frames reaches, said against those asked: frames shrink by a
    whole `factor`, so 2 decades at factor 2 is 6 steps, 1.81 decades."""
    step = math.log10(factor)
    reached = (n_frames - 1) * step
    if abs(reached - asked) < 1e-9:
        return f"{reached:.2f} decades"
    return (f"{reached:.2f} decades reached of {asked:g} asked (whole frames of factor "
            f"{factor:g}; --depth {reached + step:.2f} adds a frame)")


def title_frame_map(frame_dir: Path, k: int, n: int, factor: float) -> None:
    """Redraw a frame's map.png titled with its frame number and scale (every frame's map would
    otherwise carry the same title)."""
    from nnfractal.render.maps import extent_of, map_figure
    from nnfractal.runner.run import _title
    cfg, smap = score_map_of(frame_dir)
    store = RunFolder(frame_dir).open_store()
    xlabel, ylabel = axis_labels(cfg)
    title = (f"{_title(cfg)}\nzoom frame {k}/{n - 1}: x{factor ** k:g} "
             f"({k * math.log10(factor):.2f} decades), {cfg.metric}")
    fig = map_figure(smap, extent_of(store.x, store.y, cfg.axis_scale), xlabel, ylabel,
                     cfg.axis_scale, title, figsize=cfg.figsize, dpi=cfg.dpi, metric=cfg.metric,
                     measure=cfg.measure, acc_threshold=cfg.acc_threshold)
    fig.savefig(Path(frame_dir) / MAP_FILE, metadata={"Title": title.replace("\n", " ")})


def stop_if_requested(where: str) -> None:
    """Raise KeyboardInterrupt once Ctrl-C or SIGTERM arrived (the callers keep what is done)."""
    from nnfractal.runner.backends import stop_requested
    if stop_requested():
        raise KeyboardInterrupt(where)


def read_zoom_json(zoom_dir: Path) -> dict:
    path = Path(zoom_dir) / "zoom.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"zoom: {path} is not a readable zoom.json ({type(err).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or not info.get("frames"):
        raise StoreError(f"zoom: {path} is not an nnfractal zoom description")
    return info


def _frame_window_xy(fr: dict) -> tuple[float, float, float, float]:
    y0, y1, x0, x1 = fr["mnmx"]
    return x0, x1, y0, y1


def render_zoom_animation(zoom_dir) -> int:
    """(Re)draw zoom.gif and zoom.mp4 from the frames' stores; returns the animation's length."""
    from nnfractal.render.zoom_video import write_zoom_animation
    zoom_dir = Path(zoom_dir)
    info = read_zoom_json(zoom_dir)
    maps = []
    for fr in info["frames"]:
        cfg, smap = score_map_of(zoom_dir / fr["dir"])
        maps.append(smap)
    xlabel, ylabel = axis_labels(cfg)
    windows = [_frame_window_xy(fr) for fr in info["frames"]]
    return write_zoom_animation(maps, windows, zoom_dir / "zoom.gif", zoom_dir / "zoom.mp4",
                                xlabel=xlabel, ylabel=ylabel, title=f"{info.get('preset', '')}: ")


# ---- dimension -------------------------------------------------------------------------------

def pooled_dimension(estimates):
    """One dimension for a zoom from the frames' `estimate_dimension` results (see POOLED_METHOD).

    Returns a DimensionEstimate with method "zoom-weighted-mean"; ok=False with a plain reason
    when no frame has an estimate.
    """

    ests = list(estimates)
    if not ests:
        raise ValueError("pooled_dimension needs at least one frame's estimate")
    n_pix = int(sum(e.n_boundary_pixels for e in ests))
    ok = [e for e in ests if e.ok]
    # Box counts: the mean over the frames with a boundary (all frames share one shape).
    ref = next((e for e in ests if e.n_boundary_pixels), ests[0])
    sizes = np.asarray(ref.sizes, dtype=int)
    shaped = [e for e in ests if e.n_boundary_pixels and np.array_equal(e.sizes, sizes)]
    counts = np.mean([e.counts for e in shaped], axis=0) if shaped else np.zeros(len(sizes))
    slopes = local_slopes(sizes, counts) if len(sizes) > 1 else np.zeros(0)
    slope_sizes = np.sqrt(sizes[1:] * sizes[:-1].astype(float)) if len(sizes) > 1 else np.zeros(0)
    common = dict(sizes=sizes, counts=counts, local_slopes=slopes, slope_sizes=slope_sizes,
                  method="zoom-weighted-mean", n_boundary_pixels=n_pix, n_frames=len(ests))
    if not ok:
        reasons = sorted({e.reason for e in ests}) or ["no frames"]
        return DimensionEstimate(dimension=None, ci_low=None, ci_high=None,
                                 fit_sizes=np.zeros(0, dtype=int), ok=False,
                                 reason=f"no zoom frame has a dimension estimate "
                                        f"({'; '.join(reasons)})", **common)
    d = np.array([e.dimension for e in ok])
    lo = np.array([e.ci_low for e in ok])
    hi = np.array([e.ci_high for e in ok])
    sigma = np.maximum((hi - lo) / (2 * 1.96), 1e-6)
    w = 1.0 / sigma ** 2
    dim = float(np.sum(w * d) / np.sum(w))
    lo_half = float(np.sum(w * (d - lo)) / np.sum(w))
    hi_half = float(np.sum(w * (hi - d)) / np.sum(w))
    fit = sorted(set.intersection(*(set(int(s) for s in e.fit_sizes) for e in ok)))
    used = [i for i, e in enumerate(ests) if e.ok]
    chi2 = float(np.sum(w * (d - dim) ** 2) / (len(d) - 1)) if len(d) > 1 else None
    return DimensionEstimate(
        dimension=dim, ci_low=float(min(dim - lo_half, d.min())),
        ci_high=float(max(dim + hi_half, d.max())), fit_sizes=np.asarray(fit, dtype=int),
        ok=True, reason="", stderr=float(1.0 / math.sqrt(np.sum(w))), intercept=None,
        extra={"frames_used": used, "weights": (w / w.sum()).tolist(),
               "frame_dimensions": d.tolist(), "spread": float(d.max() - d.min()),
               "chi2_per_dof": chi2},
        **common)


def analyse_zoom(zoom_dir, fit_range=None, log=print) -> dict:
    """Dimension of every frame and pooled over the frames, from the stores; no training.

    Rewrites zoom.json (per-frame "dimension", "pooled", "pooled_paper", "fit_range") and
    dimension_per_frame.png, and returns the zoom.json content. The frames' own fractal.json are
    left as they are (default fit range). Raises StoreError for a folder that is not a zoom.
    """
    from nnfractal.render.zoom_video import plot_dimension_per_frame
    from nnfractal.runner.run import describe

    zoom_dir = Path(zoom_dir)
    info = read_zoom_json(zoom_dir)
    fit = tuple(float(v) for v in fit_range) if fit_range is not None else None
    edges_all, ests = [], []
    for fr in info["frames"]:
        fdir = zoom_dir / fr["dir"]
        RunFolder(fdir).check_finished_run()
        _, smap = score_map_of(fdir)
        edges = boundary(smap)
        est = estimate_dimension(edges, fit_range=fit)
        edges_all.append(edges)
        ests.append(est)
        fr["dimension"] = est.to_dict()
        fr["fraction_converged"] = converged_fraction(smap)
        fr["n_boundary_pixels"] = int(edges.sum())
    pooled = pooled_dimension(ests)
    paper = paper_dimension(edges_all)
    info.update(fit_range=list(fit) if fit else None, pooled=pooled.to_dict(),
                pooled_paper=paper.to_dict(), pooled_method=POOLED_METHOD)
    decades = [fr["decades"] for fr in info["frames"]]
    plot_dimension_per_frame(decades, ests, zoom_dir / "dimension_per_frame.png", pooled=pooled,
                             pooled_paper=paper,
                             title=f"{info.get('preset', '')}: boundary dimension through the "
                                   f"zoom (x{info['factor']:g} per frame)")
    write_json_atomic(zoom_dir / "zoom.json", info)
    empty = [fr["index"] for fr in info["frames"] if not fr["n_boundary_pixels"]]
    if empty:
        log(f"frames without boundary (the zoom left the boundary): {empty}")
    log(f"zoom dimension over {len(ests)} frames: {describe(info['pooled'])}; paper's "
        f"median-slope estimator pooled: {describe(info['pooled_paper'])}")
    return info
