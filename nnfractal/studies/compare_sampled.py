"""`nnfractal compare --method uncertainty|transect`: two architectures, one sampling estimator.

The experiment is the box comparison's (`comparison.pair_configs`: B is A with B's architecture
fields only, so data, batches, optimiser, window and initial-weight seeds are the same). For every
depth and initialisation seed ``cfg.seed + i`` each architecture gets one *sample* folder
(`nnfractal sample`, the estimator's points trained by the engine into a resumable store):

* ``transect``: both architectures are measured on **the same points**. A 16 x 16 grid of each
  (``coarse/``, a normal run folder) shows where the boundaries are; the segments go through the
  densest boundary of the two maps together (`sampling.densest_edge_cell` on the sum of both
  boundaries), so they cross both, and (unless ``--angle``/``--direction`` is given) run at one
  angle for both, from the two maps' sign fluxes added (`sampling.transect_angle`). The per-seed
  difference is a difference on identical points.
* ``uncertainty``: the estimator zooms into each architecture's own boundary, so the points
  agree only in its 64 x 64 coarse map (same seed, same coarse points, same pair offsets drawn);
  the pairing is by seed: the same initial weights, data and batches.

The difference is `stats.paired_difference` over seeds; each architecture's dimension is
`stats.pool` of its seeds' estimates.

A resumable study on the skeleton of study.py (`SampledCompareStudy`): ``plan.json``
(`SampledPlan`, every input) is written first, each sample folder resumes as `nnfractal sample
--resume` does (`sample.ensure_sample`), and ``nnfractal compare --resume DIR`` finishes the units
that are not done. The estimators are deterministic given their seed and the curves, so a resumed
comparison gives the numbers of an uninterrupted one, bit for bit.

Folder::

    plan.json                      the inputs (written first; --resume reads it)
    compare.json                   `comparison.SampledComparison`: settings, configs, every unit,
                                   dimensions, difference, verdict
    report.html                    the report (nnfractal/report/compare.py)
    compare_maps.png               coarse maps of both architectures side by side (seed 0)
    compare_fits.png               f(eps) or sign-change counts of both, with their fits
    compare_dimensions.png         dimension per seed and pooled; the paired difference
    compare_depth.png              dimension against depth (with --depths)
    <preset>/[depth<d>/]seed<i>/sample/   the sample folder of one unit
    <preset>/[depth<d>/]seed<i>/coarse/   transect: the 16 x 16 map that placed the segments
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nnfractal.config import Config, ConfigError
from nnfractal.estimators.boxcount import boundary
from nnfractal.estimators.sampling import SamplingError, densest_edge_cell, transect_angle
from nnfractal.estimators.stats import paired_difference, pool
from nnfractal.storage.records import JsonRecord
from nnfractal.storage.run_folder import SUMMARY_FILE, RunFolder, score_map_of
from nnfractal.training.grid import axis_labels
from nnfractal.training.measure import point_scores
from nnfractal.window import CENTRES, Window

from .comparison import (
    RESULT_FILE,
    SAMPLED_METHODS,
    PairGroup,
    SampledArch,
    SampledComparison,
    SampledGroup,
    SampledSettings,
    SampledTiming,
    SampledUnit,
    SignChanges,
    default_compare_dir,
    design_pairs,
    hardware_of,
    label_of,
    main_group,
)
from .quantities import CHAOS_CHOICE, EPS_STAR_CHOICE, TRANSECT_NOTE, analyse_quantities
from .sample import (
    SampleSpec,
    check_sample_budget,
    ensure_sample,
    read_sample,
    read_spec,
    resolve_spec,
)
from .study import Study, StudyOptions, check_out, read_plan, resume, start

__all__ = ["SAMPLED_METHODS", "SampledPlan", "plan", "compare_sampled", "resume_compare",
           "read_plan", "shared_centre", "analyse", "draw_figures", "unit_map"]

PLAN_JSON = "plan.json"
PLAN_FORMAT = "nnfractal-compare-plan"
QUANTITIES_NOTE = f"{CHAOS_CHOICE}; {EPS_STAR_CHOICE}"
COARSE = 16                 # transect: points per side of each architecture's placing map (it only
                            # has to find the boundary; 256 points against a segment's 1024+)


@dataclass(kw_only=True)
class SampledPlan(JsonRecord):
    """plan.json: every input of a sampled comparison (written first; --resume reads it)."""
    json_format = PLAN_FORMAT
    format: str = PLAN_FORMAT
    presets: list[str]
    method: str
    seeds: int
    depths: list[int] | None = None
    spec: SampleSpec
    groups: list[PairGroup]
    notes: list[str]
    overrides: dict[str, Any]
    config_difference: dict[str, list]
    out: str


def _unit_root(preset: str, depth, seed_index: int) -> str:
    return "/".join([preset] + ([f"depth{depth}"] if depth is not None else [])
                    + [f"seed{seed_index}"])


def _resolve(spec: SampleSpec, cfg: Config) -> SampleSpec:
    try:
        return resolve_spec(spec, cfg)
    except SamplingError as err:
        raise ConfigError(err.field, str(err).split(": ", 1)[1]) from None


def plan(presets, *, method: str, seeds: int, depths=None, out=None, spec: SampleSpec,
         max_storage: float | None = None, **overrides) -> SampledPlan:
    """Check every input before anything is written; the plan as plan.json stores it.

    Raises ConfigError or RunFolderError naming the field.
    """
    if method not in SAMPLED_METHODS:
        raise ConfigError("method", f"{method!r} is not allowed (allowed: box, "
                          f"{', '.join(SAMPLED_METHODS)})")
    design = design_pairs(presets, seeds, depths, overrides)
    cfg_a = design.base[0]
    if cfg_a.adaptive:
        raise ConfigError("adaptive", "--adaptive refines a grid (allowed with --method "
                          f"{method}: leave it out)")
    spec = _resolve(replace(spec, method=method), cfg_a)
    out = Path(out) if out is not None else default_compare_dir(*design.presets)
    check_out(SampledCompareStudy, out)
    for group in design.groups:
        for cfg in group.pair():
            _resolve(spec, cfg)
            check_sample_budget(cfg, spec, out, max_storage)
    return SampledPlan(presets=list(design.presets), method=method, seeds=seeds,
                       depths=design.depths, spec=spec, groups=design.groups, notes=design.notes,
                       overrides=design.overrides, config_difference=design.config_difference,
                       out=str(out))


# ---- the study -----------------------------------------------------------------------------------

class SampledCompareStudy(Study[SampledPlan, SampledComparison]):
    """The sampled comparison on the study skeleton: its units are the samples (and, for a
    transect, the coarse maps that place them), one pair of architectures per seed and depth."""
    command = "compare"
    what = "sampled comparison"
    plan_type = SampledPlan
    plan_file = PLAN_JSON
    result_type = SampledComparison
    result_file = RESULT_FILE

    def announce(self) -> None:
        p, spec = self.plan, self.plan.spec
        for note in p.notes:
            self.log(f"note: {note}")
        n_units = 2 * len(p.groups) * p.seeds
        per_unit = (spec.points * spec.lines + (COARSE * COARSE if _needs_maps(spec) else 0)
                    if p.method == "transect" else spec.evaluations)
        self.log(f"compare ({p.method}): {p.presets[0]} vs {p.presets[1]}; {p.seeds} seed(s)"
                 f"{'' if not p.depths else ' x depths ' + str(p.depths)}: {n_units} samples of "
                 f"up to {per_unit:,} evaluations")

    def train(self) -> list[SampledUnit]:
        units = []
        for group in self.plan.groups:
            cfg_a, cfg_b = group.pair()
            labels = {c.preset: label_of(c) for c in (cfg_a, cfg_b)}
            for i in range(self.plan.seeds):
                self.check_stop("comparison interrupted")
                pair = (cfg_a.replace(seed=cfg_a.seed + i), cfg_b.replace(seed=cfg_b.seed + i))
                units += self._pair(pair, group.depth, i, labels)
        return units

    def _pair(self, pair, depth, i: int, labels) -> list[SampledUnit]:
        """Both architectures' samples at seed index i (transect: on shared segments)."""
        root, spec = self.folder, self.plan.spec
        base = [root / _unit_root(c.preset, depth, i) for c in pair]
        if _needs_maps(spec):
            spec = self._shared_segments(pair, base, spec, i)
        out = []
        for cfg, d in zip(pair, base):
            ulog = self.unit_log(f"[{cfg.preset}{'' if depth is None else f' depth {depth}'} "
                                 f"seed {cfg.seed}]")
            if spec.method == "transect" and spec.center is None:
                ulog("no boundary in either coarse map: no segments")
                out.append(unit_record(root, None, cfg, labels, depth, i, spec))
                continue
            ensure_sample(spec, cfg, d / "sample", self.options.logging_to(ulog))
            out.append(unit_record(root, d / "sample", cfg, labels, depth, i, spec))
        return out

    def _shared_segments(self, pair, base, spec: SampleSpec, i: int) -> SampleSpec:
        """A transect's centre and angle from both architectures' coarse maps, so that both
        samples evaluate the same points."""
        maps = [self._coarse_map(c, d / "coarse") for c, d in zip(pair, base)]
        centre = shared_centre(*maps) if spec.center is None else None
        if centre is not None:
            axis = Window.of(pair[0]).to_axis(np.array([centre]))[0]
            spec = replace(spec, center=(float(axis[0]), float(axis[1])))
        if spec.angle is None and spec.center is not None:
            unit = Window.of(pair[0]).to_unit(np.array([spec.center], dtype=np.float64))[0]
            angle, how = transect_angle(maps, centre=unit, lines=spec.lines,
                                        length=spec.length, endpoints=True)
            spec = replace(spec, angle=float(angle))
            self.log(f"seed index {i}: chords at {angle:.1f} degrees ({how['angle_source']}"
                     + ("" if how["trend_deg"] is None else
                        f": both maps' trend {how['trend_deg']:.1f} degrees") + ")")
        return spec

    def _coarse_map(self, cfg: Config, folder: Path) -> np.ndarray:
        """The COARSE x COARSE score map of `cfg`'s window (trained once; a rerun reads it, and
        resumes one that a stop or a kill cut short, as `nnfractal run --resume` would)."""
        from nnfractal.runner.run import execute, resume
        o = self.options
        if RunFolder(folder).config_file.exists() and not RunFolder(folder).summary_file.exists():
            resume(folder, data_dir=o.data_dir, progress=False, log=lambda *_: None,
                   epoch_maps=False, report=o.report)
            self.log(f"coarse map {folder} (resumed)")
        elif not RunFolder(folder).summary_file.exists():
            if folder.exists():              # claimed, killed before its config: start again
                shutil.rmtree(folder)
            execute(cfg.replace(resolution=COARSE, adaptive=False), folder, data_dir=o.data_dir,
                    progress=False, log=lambda *_: None, epoch_maps=False,
                    warn_resolution=False, report=o.report)
            self.log(f"coarse map {folder}")
        return score_map_of(folder)[1]

    def analyse(self, units: list[SampledUnit]) -> SampledComparison:
        p = self.plan
        seconds = self.elapsed()
        if p.method == "transect":
            self.log(f"note: {TRANSECT_NOTE}")
        results = []
        for group in p.groups:
            labels = {c.preset: label_of(c) for c in group.pair()}
            results.append(analyse([u for u in units if u.sweep_depth == group.depth],
                                   p.presets, labels, group.depth))
            prefix = "" if group.depth is None else f"depth {group.depth}: "
            self.log(prefix + results[-1].difference["sentence"])
            for q in results[-1].quantities.values():
                self.log(prefix + q.sentence)
        cfg_a, cfg_b = p.groups[0].pair()
        main = main_group(results, cfg_a.depth)
        wall = sum(u.wall_time_s for u in units)
        steps = sum(u.model_steps for u in units)
        first = next((u for u in units if u.dir), None)
        return SampledComparison(
            method=p.method, presets=p.presets,
            labels={pr: main.archs[pr].label for pr in p.presets},
            settings=SampledSettings(method=p.method, seeds=p.seeds, depths=p.depths, spec=p.spec,
                                     overrides=p.overrides,
                                     seed_values=[cfg_a.seed + i for i in range(p.seeds)]),
            configs={c.preset: c.to_dict() for c in (cfg_a, cfg_b)},
            config_difference=p.config_difference, notes=p.notes, units=units, results=results,
            main_depth=main.depth, difference=main.difference,
            verdict=main.difference["verdict"], sentence=main.difference["sentence"],
            verdicts={"dimension": main.difference["verdict"],
                      **{k: q.difference["verdict"] for k, q in main.quantities.items()}},
            sentences={"dimension": main.difference["sentence"],
                       **{k: q.sentence for k, q in main.quantities.items()}},
            quantities_note=QUANTITIES_NOTE if p.method == "uncertainty" else TRANSECT_NOTE,
            timing=SampledTiming(units=len(units),
                                 evaluations=int(sum(u.evaluations for u in units)),
                                 model_steps=int(steps), training_s=round(wall, 3),
                                 model_steps_per_s=round(steps / wall, 2) if wall > 0 else None,
                                 this_session_s=round(seconds, 3)),
            hardware=hardware_of(self.folder / first.dir if first else None))

    def draw(self, result: SampledComparison) -> SampledComparison:
        result.figures = draw_figures(self.folder, result)
        self.log(f"verdict: {result.sentence}")
        self.log(f"wrote {self.shown}  ({len(result.units)} samples, "
                 f"{result.timing.evaluations:,} evaluations, {result.timing.model_steps:,} "
                 "model-steps; report.html)")
        return result


def _needs_maps(spec: SampleSpec) -> bool:
    """A transect with its centre or angle left to the coarse maps of both architectures."""
    return spec.method == "transect" and (spec.center is None or spec.angle is None)


def shared_centre(map_a: np.ndarray, map_b: np.ndarray):
    """(u, v), window units, where the two maps' boundaries are densest together; None when
    neither map has a boundary. The maps are grid runs: pixel k sits at k / (n - 1)."""
    edges = boundary(map_a).astype(np.int64) + boundary(map_b).astype(np.int64)
    n = map_a.shape[0]
    return densest_edge_cell(edges, lambda k: (k + 0.5) / (n - 1))


def compact(est: dict | None) -> dict | None:
    """The fields of a sampling estimate that compare.json keeps per unit."""
    if est is None:
        return None
    keep = ("dimension", "ci_low", "ci_high", "ok", "reason", "method")
    out = {k: est.get(k) for k in keep}
    chaos = (est.get("extra") or {}).get("counting_chaos")
    if chaos is not None:
        out["counting_chaos"] = {k: chaos.get(k) for k in ("dimension", "ci_low", "ci_high",
                                                          "ok")}
    extra = est.get("extra") or {}
    if extra.get("chaos_floor") is not None:
        # per stage: F, its Wilson interval, the points moved and the squares' side
        for key in ("chaos_floor", "chaos_interval", "floor_points", "stage_side"):
            out[key] = extra.get(key)
    for key in ("eps_star", "eps_star_low", "eps_star_high"):
        if est.get(key) is not None:
            out[key] = est[key]
    return out


def unit_record(root: Path, folder: Path | None, cfg: Config, labels, depth, i: int,
                spec: SampleSpec) -> SampledUnit:
    """A unit as compare.json records it: its sample (None: no boundary to sample) and, for a
    transect, the coarse map's training."""
    rec = SampledUnit(preset=cfg.preset, label=labels[cfg.preset], depth=cfg.depth,
                      sweep_depth=depth, seed_index=i, seed=cfg.seed, mnmx=list(cfg.mnmx),
                      estimate={"dimension": None, "ci_low": None, "ci_high": None, "ok": False,
                                "reason": "no boundary in either coarse map",
                                "method": spec.method})
    coarse = root / _unit_root(cfg.preset, depth, i) / "coarse"
    if (coarse / SUMMARY_FILE).exists():
        summary = json.loads((coarse / SUMMARY_FILE).read_text())
        rec.coarse_dir = str(coarse.relative_to(root))
        rec.model_steps += int(summary.get("model_steps") or 0)
        rec.wall_time_s += float(summary.get("wall_time_s") or 0.0)
    if folder is None:
        return rec
    result = read_sample(folder)
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    center = result.parameters.center
    rec.dir, rec.estimate = str(folder.relative_to(root)), compact(result.estimate)
    rec.center = list(center) if center is not None else None
    rec.angle, rec.evaluations = result.parameters.angle, int(result.evaluations)
    rec.device, rec.data_source = summary.get("device"), summary.get("data_source")
    rec.model_steps += int(result.model_steps)
    rec.wall_time_s += float(summary.get("tile_seconds") or 0.0)
    rec.model_steps_per_s = summary.get("model_steps_per_s")
    est = result.estimate
    if spec.method == "transect" and est.get("values"):
        # raw data beside the estimate, even where the fit rule gives no dimension: sign changes
        # per lag (the finest lag first) along the segment both architectures share
        rec.sign_changes = SignChanges(lags=est["scales"], changes=est["values"])
    return rec


def compare_sampled(presets, *, method: str, seeds: int, depths=None, out=None,
                    spec: SampleSpec | None = None, options: StudyOptions | None = None,
                    data_dir=None, progress: bool = True, log=print,
                    max_storage: float | None = None, report=None, **overrides) -> Path:
    """Plan, claim the folder, and run every unit (see the module docstring); returns it."""
    options = options or StudyOptions(data_dir=data_dir, progress=progress, log=log,
                                      max_storage=max_storage, report=report)
    p = plan(presets, method=method, seeds=seeds, depths=depths, out=out,
             spec=spec or SampleSpec(method=method), max_storage=options.max_storage, **overrides)
    return start(SampledCompareStudy, p, Path(p.out), options)


def resume_compare(root, options: StudyOptions | None = None, **option_values: Any) -> Path:
    """Finish a killed sampled comparison: every unit not done is trained or resumed. The
    units get no storage limit: it was checked when the comparison began."""
    options = replace(options or StudyOptions(**option_values), max_storage=None)
    return resume(SampledCompareStudy, Path(root), options)


def analyse(units: list[SampledUnit], presets, labels: dict, depth) -> SampledGroup:
    """Per-seed and pooled dimensions of both architectures and their paired difference."""
    a, b = presets
    archs = {}
    for k, p in enumerate(presets):
        mine = sorted((u for u in units if u.preset == p), key=lambda u: u.seed_index)
        archs[p] = SampledArch(label=labels[p], pooled=pool([u.estimate for u in mine], seed=k + 1,
                                                             what="dimension"),
                               per_seed=[{"seed": u.seed, **u.estimate} for u in mine],
                               n_units=len(mine))
    by_seed: dict[int, dict] = {}
    for u in units:
        by_seed.setdefault(u.seed_index, {})[u.preset] = u.estimate
    pairs = [(s[a], s[b]) for _, s in sorted(by_seed.items()) if a in s and b in s]
    method = next((u.estimate.get("method") for u in units), None)
    return SampledGroup(depth=depth, archs=archs,
                        difference=paired_difference(pairs, label_a=labels[a], label_b=labels[b],
                                                     name_a=a, name_b=b),
                        quantities=analyse_quantities(units, presets, labels)
                        if method == "uncertainty" else {})


# ---- figures ---------------------------------------------------------------------------------

def unit_map(root: Path, unit: SampledUnit):
    """(score map (n, n), extent (x0, x1, y0, y1) in axis units) to show for a unit: its coarse
    grid (transect) or the estimator's coarse map, block 0 of the sample (uncertainty)."""
    window = Window.from_mnmx(unit.mnmx)
    if unit.coarse_dir:
        return score_map_of(root / unit.coarse_dir)[1], window.extent
    if not unit.dir:
        return None, None
    spec, cfg = read_spec(root / unit.dir)
    if spec.method != "uncertainty" or not spec.coarse:
        return None, None
    store = RunFolder(root / unit.dir).open_store()
    block = store.attrs["blocks"][0]
    cols = store.tile_grid.cols
    curves = {m: store.group[f"curves/{m}"][block["row"]:block["row"] + block["rows"]]
              .reshape(block["rows"] * cols, -1)[:block["n"]] for m in store.metrics}
    scores = point_scores(cfg, curves, int(store.attrs["schedule"]["steps_per_epoch"]))
    n = spec.coarse
    # the coarse points are the pixel centres (j + 0.5) / n: the map spans half a pixel less
    return scores.reshape(n, n), window.pixel_extent(n, CENTRES)


def draw_figures(root, info: SampledComparison) -> dict[str, str]:
    from nnfractal.render import compare_plots as cp
    root = Path(root)
    presets = info.presets
    main = info.main
    labels = [main.archs[p].label for p in presets]
    found = info.reference_units()
    ref = [found.get(p) for p in presets]
    written = {}
    shown = [unit_map(root, u) if u else (None, None) for u in ref]
    if all(m is not None for m, _ in shown):
        cfg0 = RunFolder(root / (ref[0].dir or ref[0].coarse_dir)).read_config()
        xlabel, ylabel = axis_labels(cfg0)
        segments = [_segment_of(root, u) for u in ref]
        cp.plot_maps_side_by_side([m for m, _ in shown], shown[0][1], labels, xlabel, ylabel,
                                  cfg0.axis_scale, root / "compare_maps.png",
                                  segments=segments)
        written["maps"] = "compare_maps.png"
    ests = [read_sample(root / u.dir).estimate if u and u.dir else None for u in ref]
    cp.plot_sampled_fits(ests, labels, root / "compare_fits.png")
    written["fits"] = "compare_fits.png"
    cp.plot_seed_dimensions(main.to_json(), presets, root / "compare_dimensions.png")
    written["dimensions"] = "compare_dimensions.png"
    if info.settings.depths and len(info.results) > 1:
        cp.plot_dimension_vs_depth([r.to_json() for r in info.results], presets,
                                   root / "compare_depth.png")
        written["depth"] = "compare_depth.png"
    if info.results[0].quantities:
        cp.plot_quantities([r.to_json() for r in info.results], presets,
                           root / "compare_quantities.png")
        written["quantities"] = "compare_quantities.png"
    return written


def _segment_of(root: Path, unit: SampledUnit | None):
    """The first transect segment of a unit in axis units ((x0, y0), (x1, y1)), or None."""
    if not unit or not unit.dir:
        return None
    seg = (read_sample(root / unit.dir).estimate.get("extra") or {}).get("segment")
    if not seg:
        return None
    return [tuple(p) for p in Window.from_mnmx(unit.mnmx).to_axis(np.asarray(seg, dtype=float))]


def read_compare_plan(root) -> SampledPlan:
    """The plan.json of a sampled comparison (StoreError, one line, for any other folder)."""
    return read_plan(SampledCompareStudy, root)
