"""Compare the trainability boundary of two architectures: ``nnfractal compare PRESET_A PRESET_B``.

The two presets are trained on exactly the same experiment (`comparison.pair_configs`: B is A
with only B's architecture fields). For each architecture, each initialisation seed
``cfg.seed + i`` (``--seeds``) and each window (``--windows``), one grid is trained:

* window 0 is the preset's window;
* window j >= 1 is frame j of a zoom (``zoom.frame_windows``, ``--factor`` per frame) centred on
  the densest boundary pixel of that architecture's and seed's window 0 (``zoom.auto_center``),
  so each architecture is zoomed into its own boundary. Windows that the float precision cannot
  resolve are left out (``zoom.resolvable_frames``), as in ``nnfractal zoom``.

With ``--depths`` the whole design is repeated for every depth (both presets at that depth).

A resumable study on the skeleton of study.py (`BoxCompareStudy`): the folder appears in one step
holding ``plan.json`` (`BoxPlan`, every input) and stays locked while a process works on it; each
grid is a run folder that resumes as `nnfractal run --resume` does (`Study.ensure_run`), and
``nnfractal compare --resume DIR`` finishes the grids that are not done. Training and the
estimators are deterministic given the config, so a resumed comparison gives the numbers of an
uninterrupted one, bit for bit. Output folder::

    plan.json                       the inputs (written first; --resume reads it)
    compare.json                    `comparison.BoxComparison`: settings, configs, every grid,
                                    pooled dimensions, difference and verdict
    report.html                     the self-contained report (nnfractal/report/compare.py)
    compare_maps.png                window 0, seed 0 of both, same axes and colour scale
    compare_boundaries.png          both boundaries overlaid in two colours
    compare_dimensions.png          dimension per window and pooled, 95% intervals; difference
    compare_curves.png              loss curves of pixels on both sides of each boundary
    compare_depth.png               dimension against depth (with --depths)
    <preset>/seed<i>/window<j>/     one run folder per grid (with --depths:
                                    <preset>/depth<d>/seed<i>/window<j>/)

Statistics are in `nnfractal.estimators.stats`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nnfractal.config import Config, ConfigError
from nnfractal.errors import StoreError, check_int_at_least
from nnfractal.estimators.boxcount import boundary, paper_dimension
from nnfractal.estimators.stats import difference, pool
from nnfractal.storage.records import JsonRecord
from nnfractal.storage.run_folder import RunFolder, score_map_of
from nnfractal.training.budget import check_many, check_max_storage
from nnfractal.training.grid import axis_labels
from nnfractal.window import Window

from .comparison import (
    ARCH_FIELDS,
    DEFAULT_PRESETS,
    FORMAT,
    FORMAT_VERSION,
    RESULT_FILE,
    BoxArch,
    BoxComparison,
    BoxGroup,
    BoxSettings,
    BoxTiming,
    BoxUnit,
    PairGroup,
    check_presets,
    default_compare_dir,
    design_pairs,
    hardware_of,
    label_of,
    main_group,
    read_comparison,
)
from .study import Study, StudyOptions, check_out, resume, start
from .windows import auto_center, frame_windows, resolvable_frames

# run, backends and render are imported in the functions that use them: they load torch and
# matplotlib (seconds), and `nnfractal` imports this module at start, before
# its allocator restart, also for commands that need neither (presets, report, --help).

__all__ = ["ARCH_FIELDS", "DEFAULT_PRESETS", "FORMAT", "FORMAT_VERSION", "BoxPlan", "plan",
           "compare", "resume_box", "analyse", "reanalyse", "draw_figures"]

DEFAULT_SEEDS = 3
DEFAULT_WINDOWS = 3
DEFAULT_FACTOR = 2.0
PLAN_JSON = "plan.json"
PLAN_FORMAT = "nnfractal-compare-plan"      # the sampled comparison's too; `method` tells them apart

FIGURES = {
    "maps": "compare_maps.png",
    "boundaries": "compare_boundaries.png",
    "dimensions": "compare_dimensions.png",
    "curves": "compare_curves.png",
    "depth": "compare_depth.png",
}


# ---- the plan ------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class BoxPlan(JsonRecord):
    """plan.json of a box comparison: every input, checked (written first; --resume reads it)."""
    json_format = PLAN_FORMAT
    format: str = PLAN_FORMAT
    method: str = "box"
    presets: list[str]
    seeds: int
    windows: int
    factor: float
    depths: list[int] | None = None
    groups: list[PairGroup]
    notes: list[str]
    overrides: dict[str, Any]
    config_difference: dict[str, list]
    base: PairGroup                   # A and B at the presets' own depth
    out: str


def plan(presets=DEFAULT_PRESETS, *, seeds: int = DEFAULT_SEEDS, windows: int = DEFAULT_WINDOWS,
         factor: float = DEFAULT_FACTOR, depths=None, out=None, max_storage=None,
         **overrides) -> BoxPlan:
    """Check every input before anything is trained; returns the plan (configs per depth).

    Raises ConfigError or RunFolderError with a one-line message naming the field.
    """
    presets = check_presets(presets or DEFAULT_PRESETS)
    check_int_at_least("seeds", seeds, 1)
    check_int_at_least("windows", windows, 1)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
            or not math.isfinite(factor) or factor <= 1:
        raise ConfigError("factor", f"{factor!r} is not allowed (allowed: a number > 1, the "
                          "zoom factor between windows)")
    design = design_pairs(presets, seeds, depths, overrides)
    out = Path(out) if out is not None else default_compare_dir(*presets)
    check_out(BoxCompareStudy, out)
    n_grids = 2 * len(design.groups) * seeds * windows
    field, value = ("seeds", seeds) if seeds >= windows else ("windows", windows)
    for group in design.groups:
        for cfg in group.pair():
            check_many(cfg, n_grids, field, value, out, "the comparison",
                       check_max_storage(max_storage))
    return BoxPlan(presets=list(presets), seeds=seeds, windows=windows, factor=float(factor),
                   depths=design.depths, groups=design.groups, notes=design.notes,
                   overrides=design.overrides, config_difference=design.config_difference,
                   base=PairGroup(configs=[c.to_dict() for c in design.base]), out=str(out))


# ---- the study -----------------------------------------------------------------------------------

def _unit_dir(preset: str, depth, seed_index: int, window: int) -> str:
    parts = [preset] + ([f"depth{depth}"] if depth is not None else []) + \
        [f"seed{seed_index}", f"window{window}"]
    return "/".join(parts)


def compact(est: dict | None) -> dict | None:
    """The fields of a box-counting estimate that compare.json keeps per grid."""
    if est is None:
        return None
    keep = ("dimension", "ci_low", "ci_high", "ok", "reason", "n_boundary_pixels", "fit_sizes",
            "method")
    return {k: est.get(k) for k in keep}


def unit_record(run_dir: Path, root: Path, *, preset: str, label: str, depth, seed_index: int,
                seed: int, window: int, cfg: Config, center, magnification: float) -> BoxUnit:
    """A finished grid as compare.json records it (from its fractal.json and summary.json)."""
    folder = RunFolder(run_dir)
    fractal = json.loads(folder.fractal_file.read_text())
    summary = json.loads(folder.summary_file.read_text())
    return BoxUnit(
        preset=preset, label=label, depth=cfg.depth, sweep_depth=depth, seed_index=seed_index,
        seed=seed, window=window, dir=str(run_dir.relative_to(root)), mnmx=list(cfg.mnmx),
        center=list(center) if center is not None else None, magnification=magnification,
        metric=fractal.get("metric", "train_loss"), dimension=compact(fractal["final"]),
        paper=compact(fractal.get("paper_method")),
        metrics={m: compact(v.get("final")) for m, v in fractal.get("metrics", {}).items()},
        fraction_converged=summary.get("fraction_converged"),
        wall_time_s=summary.get("wall_time_s"), model_steps=summary.get("model_steps"),
        model_steps_per_s=summary.get("model_steps_per_s"), device=summary.get("device"))


class BoxCompareStudy(Study[BoxPlan, BoxComparison]):
    """The box comparison on the study skeleton: its units are the grids."""
    command = "compare"
    what = "comparison"
    unit_name = "grid"
    plan_type = BoxPlan
    plan_file = PLAN_JSON
    result_type = BoxComparison
    result_file = RESULT_FILE
    redraw_command = "nnfractal report"

    @classmethod
    def finished(cls, folder: Path) -> bool:
        """compare.json is written before the figures and again with them: complete once it
        names its figures."""
        try:
            info = read_comparison(folder)
        except StoreError:
            return False
        return isinstance(info, BoxComparison) and bool(info.figures)

    def announce(self) -> None:
        p = self.plan
        for note in p.notes:
            self.log(f"note: {note}")
        n_grids = 2 * len(p.groups) * p.seeds * p.windows
        differ = ', '.join(f'{k} {v[0]!r} / {v[1]!r}' for k, v in p.config_difference.items()
                           if k != 'preset')
        res = p.groups[0].pair()[0].resolution
        self.log(f"compare: {p.presets[0]} vs {p.presets[1]}; differ in "
                 f"{differ or 'nothing but the name'}; "
                 f"{p.seeds} seed(s) x {p.windows} window(s)"
                 f"{'' if not p.depths else f' x depths {p.depths}'}: "
                 f"up to {n_grids} grids of {res}x{res}")

    def train(self) -> tuple[list[BoxUnit], list[str]]:
        units, notes = [], list(self.plan.notes)
        for group in self.plan.groups:
            for cfg in group.pair():
                for i in range(self.plan.seeds):
                    u, n = self._seed(cfg, group.depth, i)
                    units += u
                    notes += n
        return units, notes

    def _seed(self, cfg: Config, depth, i: int) -> tuple[list[BoxUnit], list[str]]:
        """The grids of one architecture at one seed: its window 0, then the zoomed windows
        centred on its own boundary. Returns their records and notes."""
        p, work = self.plan, self.folder
        seed = cfg.seed + i
        base = cfg.replace(seed=seed)
        tag = f"{cfg.preset}{'' if depth is None else f' depth {depth}'} seed {seed}"
        record = dict(preset=cfg.preset, label=label_of(cfg), depth=depth, seed_index=i, seed=seed)
        d0 = work / _unit_dir(cfg.preset, depth, i, 0)
        self.check_stop(f"comparison interrupted before {tag}")
        # Epoch maps and videos only where the report shows them (seed 0's preset window): the
        # other grids need only their final map, which saves most of the drawing time.
        log0 = self.unit_log(f"[{tag} window 0]")
        self.ensure_run(base, d0, log0, epoch_maps=i == 0, warn_resolution=True)
        units = [unit_record(d0, work, window=0, cfg=base, center=None, magnification=1.0,
                             **record)]
        if p.windows < 2:
            return units, []
        center = auto_center(base, score_map_of(d0)[1])
        if center is None:
            log0("no boundary in this window: no zoomed windows for this seed")
            return units, [f"{tag}: no boundary in the preset's window, so no zoomed windows"]
        wins = frame_windows(base.mnmx, center, p.factor, p.windows)
        n_ok, _ = resolvable_frames(wins, base.resolution, base.axis_scale, base.precision)
        notes = [] if n_ok == p.windows else [
            f"{tag}: {base.precision} resolves only {n_ok} of {p.windows} windows at factor "
            f"{p.factor:g}; the deeper ones are left out"]
        for j in range(1, n_ok):
            wcfg = base.replace(mnmx=tuple(float(v) for v in wins[j]))
            dj = work / _unit_dir(cfg.preset, depth, i, j)
            self.check_stop(f"comparison interrupted before {tag} window {j}")
            self.ensure_run(wcfg, dj, self.unit_log(f"[{tag} window {j}]"), warn_resolution=True)
            units.append(unit_record(dj, work, window=j, cfg=wcfg, center=center,
                                     magnification=p.factor ** j, **record))
        return units, notes

    def analyse(self, trained: tuple[list[BoxUnit], list[str]]) -> BoxComparison:
        units, notes = trained
        p = self.plan
        train_s = self.elapsed()
        results = []
        for group in p.groups:
            mine = [u for u in units if u.sweep_depth == group.depth]
            labels = {c.preset: label_of(c) for c in group.pair()}
            results.append(analyse(mine, p.presets, labels, group.depth, p.windows,
                                   root=self.folder))
            prefix = "" if group.depth is None else f"depth {group.depth}: "
            self.log(prefix + results[-1].difference["sentence"])
        cfg_a, cfg_b = p.base.pair()
        main = main_group(results, cfg_a.depth)
        main_pair = next(g for g in p.groups if g.depth == main.depth).pair()
        return BoxComparison(
            presets=list(p.presets), labels={c.preset: label_of(c) for c in main_pair},
            settings=BoxSettings(seeds=p.seeds, windows=p.windows, factor=p.factor,
                                 depths=p.depths, overrides=p.overrides,
                                 seed_values=[cfg_a.seed + i for i in range(p.seeds)]),
            configs={c.preset: c.to_dict() for c in (cfg_a, cfg_b)},
            config_difference=p.config_difference, arch_fields=list(ARCH_FIELDS), notes=notes,
            units=units, results=results, main_depth=main.depth, difference=main.difference,
            verdict=main.difference["verdict"], sentence=main.difference["sentence"],
            timing=_timing(units, train_s), hardware=hardware_of(self.folder / units[0].dir
                                                                 if units else None))

    def draw(self, result: BoxComparison) -> BoxComparison:
        """The figures, then the grids' reports (named by their final place)."""
        import time
        self.log(f"verdict: {result.sentence}")
        t0 = time.perf_counter()
        result.figures = draw_figures(self.folder, result)
        result.timing.figures_s = round(time.perf_counter() - t0, 3)
        result.timing.total_s = round(self.elapsed(), 3)
        if self.options.report is not None:
            for u in result.units:
                self.options.report(self.folder / u.dir, display_path=self.shown / u.dir)
        return result


def compare(presets=DEFAULT_PRESETS, *, seeds: int = DEFAULT_SEEDS,
            windows: int = DEFAULT_WINDOWS, factor: float = DEFAULT_FACTOR, depths=None,
            out=None, options: StudyOptions | None = None, data_dir=None, progress: bool = True,
            log=print, max_storage: float | None = None, report=None, **overrides) -> Path:
    """Train and compare; returns the comparison folder (see the module docstring).

    `overrides` are config fields applied to both presets (e.g. resolution=8, steps=30).
    `options` (or data_dir, progress, log, max_storage, report): how it runs; `report` writes the
    report of the comparison and of each grid. Every refusable input is checked first.
    """
    options = options or StudyOptions(data_dir=data_dir, progress=progress, log=log,
                                      max_storage=max_storage, report=report)
    p = plan(presets, seeds=seeds, windows=windows, factor=factor, depths=depths, out=out,
             max_storage=options.max_storage, **overrides)
    out = start(BoxCompareStudy, p, Path(p.out), options)
    options.log(f"wrote {out}  ({len(read_comparison(out).units)} grids; report.html)")
    return out


def resume_box(root, options: StudyOptions | None = None, **option_values: Any) -> Path:
    """Finish a stopped box comparison (`study.resume`): the grids not finished are trained (an
    unfinished grid keeps its tiles), then it is analysed and drawn as by `compare`. A finished
    comparison is left as it is. The grids get no storage limit: it was checked when the
    comparison began."""
    options = replace(options or StudyOptions(**option_values), max_storage=None)
    root = Path(root)
    finished = BoxCompareStudy.finished(root)
    out = resume(BoxCompareStudy, root, options)
    if not finished:
        options.log(f"wrote {out}  ({len(read_comparison(out).units)} grids; report.html)")
    return out


def analyse(units: list[BoxUnit], presets, labels: dict, depth, n_windows: int,
            root: Path | None = None) -> BoxGroup:
    """Pooled and per-window dimensions of both architectures, their difference and verdict."""
    a, b = presets
    archs = {}
    for p in presets:
        mine = [u for u in units if u.preset == p]
        per_window = []
        for j in range(n_windows):
            ests = [u.dimension for u in mine if u.window == j]
            per_window.append({"window": j, **pool(ests, seed=j + 1)} if ests else
                              {"window": j, "dimension": None, "ci_low": None, "ci_high": None,
                               "ok": False, "reason": "not trained (no boundary to zoom into)",
                               "n_units": 0, "n_ok": 0})
        archs[p] = BoxArch(label=labels[p], pooled=pool([u.dimension for u in mine]),
                           per_window=per_window, n_grids=len(mine),
                           paper_pooled=_paper_pooled(root, mine) if root is not None else None)
    ua = [u for u in units if u.preset == a]
    ub = [u for u in units if u.preset == b]
    diff = difference([u.dimension for u in ua], [u.dimension for u in ub],
                      strata_a=[u.window for u in ua], strata_b=[u.window for u in ub],
                      label_a=labels[a], label_b=labels[b], name_a=a, name_b=b)
    return BoxGroup(depth=depth, archs=archs, difference=diff)


def _paper_pooled(root: Path, units: list[BoxUnit]) -> dict | None:
    """The paper's estimator (median local slope) pooled over all of an architecture's grids."""
    edges = [boundary(score_map_of(root / u.dir)[1]) for u in units]
    return compact(paper_dimension(edges).to_dict()) if edges else None


def _timing(units: list[BoxUnit], train_s: float) -> BoxTiming:
    walls = [u.wall_time_s or 0.0 for u in units]
    steps = [u.model_steps or 0 for u in units]
    return BoxTiming(grids=len(units), training_wall_s=round(float(sum(walls)), 3),
                     model_steps=int(sum(steps)),
                     model_steps_per_s=round(sum(steps) / sum(walls), 2) if sum(walls) > 0 else None,
                     grids_and_pictures_s=round(train_s, 3))


def reanalyse(root, log=print, report=None) -> BoxComparison:
    """Recompute the statistics of a finished comparison from its grids' fractal.json (no
    training); rewrites compare.json, the figures and (with `report`) report.html."""
    root = Path(root)
    info = read_comparison(root)
    for unit in info.units:
        fractal = json.loads(RunFolder(root / unit.dir).fractal_file.read_text())
        unit.dimension = compact(fractal["final"])
        unit.paper = compact(fractal.get("paper_method"))
    info.results = [analyse([u for u in info.units if u.sweep_depth == old.depth], info.presets,
                            {p: old.archs[p].label for p in info.presets}, old.depth,
                            info.settings.windows, root=root)
                    for old in info.results]
    main = info.main
    info.difference, info.verdict = main.difference, main.difference["verdict"]
    info.sentence = main.difference["sentence"]
    info.figures = draw_figures(root, info)
    info.write(root / RESULT_FILE)
    if report is not None:
        report(root)
    log(f"verdict: {info.sentence}")
    return info


# ---- figures ---------------------------------------------------------------------------------

def draw_figures(root, info: BoxComparison | None = None) -> dict[str, str]:
    """(Re)draw the comparison figures from compare.json and the run folders; returns name -> file."""
    from nnfractal.render import compare_plots as cp

    root = Path(root)
    info = info or read_comparison(root)
    presets = info.presets
    main = info.main
    ref = info.reference_units()
    written = {}
    if len(ref) == 2:
        written.update(_draw_maps(root, info, ref))
    cp.plot_dimension_bars(main.to_json(), presets, root / FIGURES["dimensions"])
    written["dimensions"] = FIGURES["dimensions"]
    if info.settings.depths and len(info.results) > 1:
        cp.plot_dimension_vs_depth([r.to_json() for r in info.results], presets,
                                   root / FIGURES["depth"])
        written["depth"] = FIGURES["depth"]
    return written


def _draw_maps(root: Path, info: BoxComparison, ref: dict[str, BoxUnit]) -> dict[str, str]:
    """The maps side by side, the boundaries overlaid and the curves near them (seed 0)."""
    from nnfractal.render import compare_plots as cp
    from nnfractal.storage.run_folder import metric_curves
    presets = info.presets
    cfgs, maps, edges, picks, curves = {}, {}, {}, {}, {}
    for p, u in ref.items():
        cfgs[p], maps[p] = score_map_of(root / u.dir)
        edges[p] = boundary(maps[p])
        picks[p] = cp.boundary_pixel_pairs(maps[p], k=3)
        curves[p] = metric_curves(RunFolder(root / u.dir).open_store(), cfgs[p], cfgs[p].metric)
    cfg0 = cfgs[presets[0]]
    store0 = RunFolder(root / ref[presets[0]].dir).open_store()
    extent = Window.of(cfg0).extent
    xlabel, ylabel = axis_labels(cfg0)
    labels = [info.main.archs[p].label for p in presets]
    zooms = {p: [u.mnmx for u in info.units if u.preset == p and u.sweep_depth == info.main_depth
                 and u.seed_index == 0 and u.window > 0] for p in presets}
    cp.plot_maps_side_by_side([maps[p] for p in presets], extent, labels, xlabel, ylabel,
                              cfg0.axis_scale, root / FIGURES["maps"],
                              marks=[picks[p] for p in presets],
                              windows=[zooms[p] for p in presets])
    cp.plot_boundaries_overlay([edges[p] for p in presets], extent, labels, xlabel, ylabel,
                               cfg0.axis_scale, root / FIGURES["boundaries"])
    cp.plot_pixel_curves([curves[p] for p in presets], [picks[p] for p in presets], labels,
                         [cfgs[p] for p in presets], (store0.x, store0.y), root / FIGURES["curves"])
    return {k: FIGURES[k] for k in ("maps", "boundaries", "curves")}
