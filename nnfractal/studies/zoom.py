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
the densest boundary cell of frame k-1 near the current centre (`windows.follow_boundary`), since
a centre picked on the first map is only as precise as its pixels. The geometry (windows, centre,
float limit) is windows.py, the files it writes zoom_result.py; this module is the study.

Every frame is a full grid run (``run.execute``) with the run's config except ``mnmx`` (and
``resolution`` with --resolution), in ``OUT/frames/frame_NN/``. When the resolution is the run's,
frame 0 *is* the run (same config, same numbers: training is deterministic per point), so its
folder is copied from the run instead of trained again.

A study on the skeleton of study.py (`ZoomStudy`): once every input is accepted (`plan_zoom`:
nothing is written on a refusal), OUT appears in one step holding ``zoom_plan.json`` (`ZoomPlan`:
the inputs as given, and the centre and windows they gave) and stays locked while the zoom works.
Ctrl-C, SIGTERM and failures say ``resume with: nnfractal zoom --resume OUT``: it plans again from
zoom_plan.json (refusing a run that no longer gives the same windows), trains only what is missing
and draws. With the automatic centre, frame k's window is recomputed from frame k-1's stored map,
which is deterministic, so a resumed zoom has an uninterrupted one's windows and curves, bit for
bit. A finished zoom (``"complete": true`` in zoom.json, set after the animation) resumed is left
unchanged.

An output folder holds::

    zoom_plan.json             the inputs (written first; --resume reads them)
    zoom.json                  `ZoomResult`: windows, centre, factor, float limit, per-frame and
                               pooled dimension
    dimension_per_frame.png    dimension and 95% interval per frame, pooled estimates as bands
    zoom.mp4, zoom.gif         smooth zoom through the frames (the paper's window interpolation)
    frames/frame_NN/           one run folder per frame (map.png, boundary.png, fractal.json, ...)

The default OUT is a sibling of the run folder, ``<RUN_DIR>-zoom-<timestamp>`` (next to the run it
came from, but not inside it: a run folder keeps its fixed layout).

Float limit. Windows are computed in float64. Before anything is trained, each frame's pixel
spacing is compared with the rounding of the numbers training sees (the run's precision: the
engine casts learning rates and offsets to it; `Window.ulps_per_pixel`). A frame needs at least
`window.MIN_ULPS_APART` rounding units between neighbouring pixels (so they differ and are
evenly spaced to 1%); the sequence stops at the last frame that has them, with one log line
saying at which decade the precision runs out, rather than drawing blocky frames.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from nnfractal.config import Config, ConfigError
from nnfractal.estimators.boxcount import boundary, estimate_dimension, paper_dimension
from nnfractal.estimators.resolution import resolution_warning
from nnfractal.models import arch_label
from nnfractal.storage.run_folder import (
    BOUNDARY_FILE,
    FRACTAL_FILE,
    MAP_FILE,
    STORE_DIR,
    RunFolder,
    score_map_of,
)
from nnfractal.storage.store import StoreError
from nnfractal.training.budget import check_many, check_max_storage
from nnfractal.training.grid import axis_labels
from nnfractal.training.measure import converged_fraction
from nnfractal.window import MIN_ULPS_APART
from nnfractal.window import Window as Rect  # zoom.json's own Window is a record

from .study import Study, StudyOptions, check_out, resume, start
from .windows import (
    auto_center,
    follow_boundary,
    frame_count,
    frame_windows,
    resolvable_frames,
)
from .zoom_result import (
    POOLED_METHOD,
    RESULT_FILE,
    Centre,
    FloatLimit,
    Window,
    ZoomFrame,
    ZoomPlan,
    ZoomResult,
    pooled_dimension,
    read_zoom,
)

# run, backends and render are imported in the functions that use them: they load torch and
# matplotlib (seconds), and `nnfractal` imports this module at start, before its allocator
# restart, also for commands that need neither (presets, report, --help).

PLAN_FILE = "zoom_plan.json"
RESUME_COMMAND = "nnfractal zoom --resume"
DEFAULT_FACTOR = 2.0
DEFAULT_DEPTH = 2.0
MAX_ZOOM_FRAMES = 1000

# Frame 0, when it is the run itself, takes over the run's top-level files and these folders
# (not other folders, such as a zoom written inside the run folder).
RUN_FOLDERS = (STORE_DIR, "epochs")
RUN_PICTURES = (MAP_FILE, BOUNDARY_FILE, FRACTAL_FILE)



# the automatic centre (windows.auto_center, windows.follow_boundary), as the log says it
AUTO_CENTRE_WORDS = "auto: densest point of the largest connected boundary, then following the boundary"


# ---- planning: every check before anything is written ----------------------------------------

@dataclass
class ZoomLayout:
    """What planning computed from the inputs: the run, the frames' configs and windows."""
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

    def plan(self, center, resolution: int | None, max_storage: float | None) -> ZoomPlan:
        """zoom_plan.json for these inputs (`center` as given: None for automatic)."""
        return ZoomPlan(run_dir=str(self.run_dir.resolve()), factor=self.factor, depth=self.depth,
                        center=None if center is None else [float(v) for v in center],
                        center_source=self.center_source, resolution=resolution,
                        max_storage=max_storage, planned_center=list(self.center),
                        planned_windows=[list(c.mnmx) for c in self.frame_cfgs])


def _fmt(v: float) -> str:
    return repr(float(v))


def default_zoom_dir(run_dir: Path) -> Path:
    base = run_dir if run_dir.name else run_dir.resolve()
    return base.parent / f"{base.name}-zoom-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _check_numbers(factor, depth, resolution) -> int:
    """The number of frames asked for; ConfigError naming a bad factor, depth or resolution."""
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
    return n_req


def _centre(run_dir: Path, cfg: Config, center) -> tuple[tuple[float, float], str]:
    """The zoom's first centre and where it came from ("given" or "auto"); ConfigError for a
    centre outside the run's window, or a run without boundary to find one on."""
    w = Rect.of(cfg)
    allowed = f"allowed: x in [{_fmt(w.x0)}, {_fmt(w.x1)}], y in [{_fmt(w.y0)}, {_fmt(w.y1)}]"
    units = "base-10 exponents" if cfg.axis_scale == "log" else "axis values"
    if center is not None:
        if len(center) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                       for v in center):
            raise ConfigError("center", f"{list(center)} is not allowed (allowed: two finite "
                              f"numbers X Y, {units})")
        cx, cy = float(center[0]), float(center[1])
        if not w.contains(cx, cy):
            raise ConfigError("center", f"({_fmt(cx)}, {_fmt(cy)}) is outside the run's window "
                              f"({allowed}; {units})")
        return (cx, cy), "given"
    _, smap = score_map_of(run_dir)
    found = auto_center(cfg, smap)
    if found is None:
        raise ConfigError("center", f"the run {run_dir} has no boundary to zoom into; give "
                          f"--center X Y ({allowed}; {units})")
    return found, "auto"


def plan_zoom(run_dir, factor: float = DEFAULT_FACTOR, depth: float = DEFAULT_DEPTH,
              center=None, resolution: int | None = None, out=None,
              max_storage: float | None = None, resuming: bool = False) -> ZoomLayout:
    """Check every input and compute every window; raises ConfigError, StoreError or
    RunFolderError (one line naming the field) and writes nothing. `resuming`: `out` is the
    zoom's own folder (not checked as new; the budget was checked when it began)."""
    n_req = _check_numbers(factor, depth, resolution)
    run_dir = Path(run_dir)
    RunFolder(run_dir).check_finished_run()
    cfg = RunFolder(run_dir).read_config()
    (cx, cy), source = _centre(run_dir, cfg, center)
    res = resolution or cfg.resolution
    windows = frame_windows(cfg.mnmx, (cx, cy), factor, n_req)
    n_ok, ulps = resolvable_frames(windows, res, cfg.axis_scale, cfg.precision)
    step = math.log10(factor)
    limit = ""
    if n_ok < n_req:
        k = n_ok
        limit = (f"{cfg.precision} runs out of digits at decade {k * step:.2f} of the zoom: frame "
                 f"{k} would have {ulps[k]:.3g} rounding units between neighbouring pixels (needs "
                 f">= {MIN_ULPS_APART:g}), so the zoom stops at frame {k - 1} "
                 f"({(k - 1) * step:.2f} decades) instead of {n_req - 1} ({depth:g} decades)")
    if n_ok < 2:
        raise ConfigError("depth", f"{cfg.precision} cannot resolve a single zoom step of this run: "
                          f"frame {n_ok} (decade {n_ok * step:.2f}) would have {ulps[n_ok]:.3g} "
                          f"rounding units between neighbouring pixels (allowed: windows with >= "
                          f"{MIN_ULPS_APART:g}; use a wider run window, a smaller --factor or "
                          "a lower --resolution)")
    out = Path(out) if out is not None else default_zoom_dir(run_dir)
    frame_cfgs = [cfg.replace(mnmx=w, resolution=res) for w in windows[:n_ok]]
    if not resuming:
        check_out(ZoomStudy, out)
        check_many(frame_cfgs[-1], len(frame_cfgs), "resolution" if resolution else "depth",
                   resolution or depth, out, "the zoom", check_max_storage(max_storage))
    return ZoomLayout(run_dir=run_dir, out=out, cfg=cfg, frame_cfgs=frame_cfgs, center=(cx, cy),
                      center_source=source, factor=float(factor), depth=float(depth),
                      n_requested=n_req, ulps=ulps, limit_message=limit,
                      reuse_run=frame_cfgs[0].to_dict() == cfg.to_dict())


def replan(zoom_dir: Path, plan: ZoomPlan) -> ZoomLayout:
    """The layout of an existing zoom, computed again from its plan; StoreError when the run it
    zooms into no longer gives the same centre and windows."""
    layout = plan_zoom(plan.run_dir, plan.factor, plan.depth, plan.center, plan.resolution,
                       zoom_dir, plan.max_storage, resuming=True)
    if list(layout.center) != plan.planned_center or \
            [list(c.mnmx) for c in layout.frame_cfgs] != plan.planned_windows:
        raise StoreError(f"resume: the run {plan.run_dir} gives other zoom windows than "
                         f"when {zoom_dir} began (allowed: the unchanged run)")
    return layout


# ---- the study --------------------------------------------------------------------------------

def frame_name(k: int, n: int) -> str:
    return f"frame_{k:0{max(2, len(str(n - 1)))}d}"


class ZoomStudy(Study[ZoomPlan, ZoomResult]):
    """A zoom on the study skeleton: its units are the frames, trained one after the other."""
    command = "zoom"
    what = "zoom"
    unit_name = "frame"
    plan_type = ZoomPlan
    plan_file = PLAN_FILE
    result_type = ZoomResult
    result_file = RESULT_FILE

    def __init__(self, folder: Path, plan: ZoomPlan, options: StudyOptions,
                 shown: Path | None = None, layout: ZoomLayout | None = None):
        # the frames get the storage limit the zoom was planned with, also when resumed
        super().__init__(folder, plan, replace(options, max_storage=plan.max_storage), shown)
        self.layout = layout or replan(self.folder, plan)

    @classmethod
    def finished(cls, folder: Path) -> bool:
        try:
            return read_zoom(folder).complete
        except StoreError:
            return False

    def has_training(self) -> bool:
        """Frame folders that hold training (frame 0 copied from the run does not)."""
        frames = self.folder / "frames"
        copied = frame_name(0, self.layout.n_frames) if self.layout.reuse_run else None
        return frames.is_dir() and any(d.name != copied for d in frames.iterdir())

    def announce(self) -> None:
        layout, n = self.layout, self.layout.n_frames
        if layout.limit_message:
            self.log(layout.limit_message)
        warning = resolution_warning(layout.frame_cfgs[0].resolution, "each zoom frame")
        if warning:                           # before minutes of training, not after
            self.log(f"warning: {warning}")
        cx, cy = layout.center
        res = layout.frame_cfgs[0].resolution
        self.log(f"zoom: {n} frames of {res}x{res}, factor {layout.factor:g} per frame, "
                 f"{depth_words(n, layout.factor, layout.depth)}, centre x={_fmt(cx)} y={_fmt(cy)} "
                 f"({'given' if layout.center_source == 'given' else AUTO_CENTRE_WORDS})")

    def train(self) -> list[ZoomFrame]:
        """Each frame's record, training the frames not finished. With an automatic centre frame
        k's window is computed from frame k-1's stored map (`_follow`, deterministic), so a
        resumed zoom trains exactly the windows an uninterrupted one does."""
        layout, n = self.layout, self.layout.n_frames
        frames: list[ZoomFrame] = []
        centre = layout.center
        for k, fcfg in enumerate(layout.frame_cfgs):
            self.check_stop(f"zoom interrupted before frame {k} of {n}")
            if k > 0 and layout.center_source == "auto":
                fcfg, centre = self._follow(fcfg, frames[-1], centre)
            self._frame(k, fcfg)
            frame = Rect.of(fcfg)
            frames.append(ZoomFrame(
                index=k, dir=f"frames/{frame_name(k, n)}", mnmx=list(fcfg.mnmx),
                window=Window(x=list(frame.extent[:2]), y=list(frame.extent[2:])),
                center=Centre(x=centre[0], y=centre[1]), magnification=layout.factor ** k,
                decades=k * math.log10(layout.factor),
                ulps_per_pixel=frame.ulps_per_pixel(fcfg.resolution, fcfg.precision),
                copied_from_run=bool(k == 0 and layout.reuse_run)))
        return frames

    def _frame(self, k: int, fcfg: Config) -> None:
        """Frame k in its folder: copied from the run (frame 0 at the run's resolution), or
        trained, resumed or read (`ensure_run`); its map titled with its place in the zoom."""
        layout, n = self.layout, self.layout.n_frames
        fdir = self.folder / "frames" / frame_name(k, n)
        flog = self.unit_log(f"[frame {k}/{n - 1}]")
        if k == 0 and layout.reuse_run:
            if not fdir.exists():
                _copy_run(layout.run_dir, fdir, flog)
                flog(f"the run's own window: copied from {layout.run_dir} (no training)")
            trained = False
        else:
            trained = self.ensure_run(fcfg, fdir, flog)
        if trained or not _titled(fdir):              # finished, killed before its title
            title_frame_map(fdir, k, n, layout.factor)

    def _follow(self, fcfg: Config, prev: ZoomFrame, centre) -> tuple[Config, tuple[float, float]]:
        """Frame k's config and centre when the centre follows the boundary (see
        `follow_boundary`): centred on frame k-1's boundary near the current centre, inside frame
        k-1, with the planned size. Without boundary to follow, or where float64 could not
        resolve the moved window, the centre stays (the window still inside frame k-1, which may
        itself have moved)."""
        pcfg, pmap = score_map_of(self.folder / prev.dir)
        size, previous = Rect.of(fcfg).size, Rect.of(pcfg)
        half = max(1, round(pmap.shape[1] / (2 * self.layout.factor)))
        new, found = follow_boundary(pcfg, pmap, centre, size, half)
        if not found:
            self.log(f"[frame {prev.index + 1}] frame {prev.index} has no boundary: the centre stays")
        elif previous.nested(new, size).ulps_per_pixel(fcfg.resolution, fcfg.precision) \
                >= MIN_ULPS_APART:
            return fcfg.replace(mnmx=previous.nested(new, size).mnmx), new
        return fcfg.replace(mnmx=previous.nested(centre, size).mnmx), centre

    def analyse(self, frames: list[ZoomFrame]) -> ZoomResult:
        layout, n = self.layout, len(frames)
        cfg = layout.cfg
        cx, cy = layout.center
        result = ZoomResult(
            source_run=str(layout.run_dir.resolve()), preset=cfg.preset, axis_scale=cfg.axis_scale,
            axis_units="base-10 exponents" if cfg.axis_scale == "log" else "values",
            center=Centre(x=cx, y=cy, source=layout.center_source),
            center_follows_boundary=layout.center_source == "auto",
            factor=layout.factor, depth_requested=layout.depth,
            depth_reached=(n - 1) * math.log10(layout.factor),
            resolution=layout.frame_cfgs[0].resolution, n_frames=n,
            n_frames_requested=layout.n_requested,
            float_limit=FloatLimit(precision=cfg.precision, min_ulps_per_pixel=MIN_ULPS_APART,
                                   stopped_early=n < layout.n_requested,
                                   message=layout.limit_message or None,
                                   ulps_per_pixel_requested_frames=layout.ulps),
            frames=frames, training_and_frames_s=round(self.elapsed(), 3))
        return analyse_frames(result, self.folder, log=self.log)

    def draw(self, result: ZoomResult) -> ZoomResult:
        import time
        draw_dimension_per_frame(result, self.folder)
        t0 = time.perf_counter()
        n_anim = render_zoom_animation(self.folder, result)
        self.log(f"zoom.gif, zoom.mp4: {n_anim} animation frames ({time.perf_counter() - t0:.1f} s)")
        result.complete = True
        return result


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


def _titled(frame_dir: Path) -> bool:
    from PIL import Image
    try:
        with Image.open(Path(frame_dir) / MAP_FILE) as im:
            return "zoom frame" in im.text.get("Title", "")
    except OSError:
        return False


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
    from nnfractal.render.maps import map_figure
    cfg, smap = score_map_of(frame_dir)
    xlabel, ylabel = axis_labels(cfg)
    # the run map's own title (run.render_run), then the frame's place in the zoom
    title = (f"{cfg.preset}: {arch_label(cfg)}, {cfg.optimizer}\nzoom frame {k}/{n - 1}: x{factor ** k:g} "
             f"({k * math.log10(factor):.2f} decades), {cfg.metric}")
    fig = map_figure(smap, Rect.of(cfg).extent, xlabel, ylabel,
                     cfg.axis_scale, title, figsize=cfg.figsize, dpi=cfg.dpi, metric=cfg.metric,
                     measure=cfg.measure, acc_threshold=cfg.acc_threshold)
    fig.savefig(Path(frame_dir) / MAP_FILE, metadata={"Title": title.replace("\n", " ")})


# ---- the commands ------------------------------------------------------------------------------

def zoom(run_dir, factor: float = DEFAULT_FACTOR, depth: float = DEFAULT_DEPTH, center=None,
         resolution: int | None = None, out=None, options: StudyOptions | None = None,
         **option_values: Any) -> Path:
    """Train the zoom sequence of a finished run, analyse it and draw it; returns the folder.

    Every refusable input is checked (`plan_zoom`) before anything is written; then the study
    skeleton (`study.start`) claims `out`, trains the frames, analyses and draws. `options` (or
    its fields as keywords: data_dir, progress, log, max_storage, report) say how it runs.
    """
    options = options or StudyOptions(**option_values)
    layout = plan_zoom(run_dir, factor, depth, center, resolution, out, options.max_storage)
    plan = layout.plan(center, resolution, options.max_storage)
    import time
    t0 = time.perf_counter()
    start(ZoomStudy, plan, layout.out, options, layout=layout)
    options.log(f"wrote {layout.out}  ({layout.n_frames} frames, {time.perf_counter() - t0:.1f} s)")
    return layout.out


def resume_zoom(zoom_dir, options: StudyOptions | None = None, **option_values: Any) -> Path:
    """Finish an interrupted zoom (`study.resume`): the frames not finished are trained (an
    unfinished frame keeps its tiles), then the analysis, animation and report are made as by
    `zoom`. A finished zoom is left as it is. Refuses (one line, nothing written) a folder that
    is not a zoom, a run that no longer gives the zoom's windows, and a zoom another process
    holds."""
    return resume(ZoomStudy, Path(zoom_dir), options or StudyOptions(**option_values))


# ---- analysis and drawing ----------------------------------------------------------------------

def render_zoom_animation(zoom_dir, result: ZoomResult | None = None) -> int:
    """(Re)draw zoom.gif and zoom.mp4 from the frames' stores; returns the animation's length."""
    from nnfractal.render.zoom_video import write_zoom_animation
    zoom_dir = Path(zoom_dir)
    result = result or read_zoom(zoom_dir)
    maps = []
    for fr in result.frames:
        cfg, smap = score_map_of(zoom_dir / fr.dir)
        maps.append(smap)
    xlabel, ylabel = axis_labels(cfg)
    return write_zoom_animation(maps, [fr.window_xy for fr in result.frames], zoom_dir / "zoom.gif",
                                zoom_dir / "zoom.mp4", xlabel=xlabel, ylabel=ylabel,
                                title=f"{result.preset}: ")



# ---- dimension -------------------------------------------------------------------------------

def analyse_frames(result: ZoomResult, zoom_dir: Path, fit_range=None, log=print) -> ZoomResult:
    """Dimension of every frame and pooled over the frames, from the frames' stores (no
    training); fills the frames' "dimension", "fraction_converged", "n_boundary_pixels" and the
    result's pooled estimates. The frames' own fractal.json are left as they are (default fit
    range). StoreError for a frame that is not a finished run."""
    from nnfractal.runner.run import describe
    zoom_dir = Path(zoom_dir)
    fit = tuple(float(v) for v in fit_range) if fit_range is not None else None
    edges_all, ests = [], []
    for fr in result.frames:
        fdir = zoom_dir / fr.dir
        RunFolder(fdir).check_finished_run()
        _, smap = score_map_of(fdir)
        edges = boundary(smap)
        est = estimate_dimension(edges, fit_range=fit)
        edges_all.append(edges)
        ests.append(est)
        fr.dimension = est.to_dict()
        fr.fraction_converged = converged_fraction(smap)
        fr.n_boundary_pixels = int(edges.sum())
    result.fit_range = list(fit) if fit else None
    result.pooled = pooled_dimension(ests).to_dict()
    result.pooled_paper = paper_dimension(edges_all).to_dict()
    result.pooled_method = POOLED_METHOD
    empty = [fr.index for fr in result.frames if not fr.n_boundary_pixels]
    if empty:
        log(f"frames without boundary (the zoom left the boundary): {empty}")
    log(f"zoom dimension over {len(ests)} frames: {describe(result.pooled)}; paper's "
        f"median-slope estimator pooled: {describe(result.pooled_paper)}")
    return result


def draw_dimension_per_frame(result: ZoomResult, zoom_dir: Path) -> None:
    """dimension_per_frame.png: each frame's dimension and 95% interval, the pooled ones as bands."""
    from nnfractal.render.zoom_video import plot_dimension_per_frame
    plot_dimension_per_frame([fr.decades for fr in result.frames],
                             [fr.dimension for fr in result.frames],
                             Path(zoom_dir) / "dimension_per_frame.png", pooled=result.pooled,
                             pooled_paper=result.pooled_paper,
                             title=f"{result.preset}: boundary dimension through the "
                                   f"zoom (x{result.factor:g} per frame)")


def analyse_zoom(zoom_dir, fit_range=None, log=print) -> ZoomResult:
    """`nnfractal dimension` of a zoom folder: every frame's and the pooled dimension again
    (`fit_range`: box sizes in pixels), dimension_per_frame.png and zoom.json rewritten. Raises
    StoreError for a folder that is not a zoom."""
    zoom_dir = Path(zoom_dir)
    result = analyse_frames(read_zoom(zoom_dir), zoom_dir, fit_range, log)
    draw_dimension_per_frame(result, zoom_dir)
    result.write(zoom_dir / RESULT_FILE)
    return result
