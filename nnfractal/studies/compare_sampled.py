"""`nnfractal compare --method uncertainty|transect`: two architectures, one sampling estimator.

The experiment is the box comparison's (`compare.pair_configs`: B is A with B's architecture
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

A comparison is resumable: ``plan.json`` (every input) is written first, each sample folder
resumes as `nnfractal sample --resume` does, and ``nnfractal compare --resume DIR`` finishes the
units that are not done. The estimators are deterministic given their seed and the curves, so a
resumed comparison gives the numbers of an uninterrupted one, bit for bit.

Folder::

    plan.json                      the inputs (written first; --resume reads it)
    compare.json                   settings, configs, every unit, dimensions, difference, verdict
    report.html                    the report (nnfractal.report.pages)
    compare_maps.png               coarse maps of both architectures side by side (seed 0)
    compare_fits.png               f(eps) or sign-change counts of both, with their fits
    compare_dimensions.png         dimension per seed and pooled; the paired difference
    compare_depth.png              dimension against depth (with --depths)
    <preset>/[depth<d>/]seed<i>/sample/   the sample folder of one unit
    <preset>/[depth<d>/]seed<i>/coarse/   transect: the 16 x 16 map that placed the segments
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nnfractal.config import Config, ConfigError
from nnfractal.errors import RunFailed, RunFolderError, RunInterrupted
from nnfractal.estimators.boxcount import boundary
from nnfractal.estimators.sampling import SamplingError, densest_edge_cell, transect_angle
from nnfractal.estimators.stats import paired_difference, pool
from nnfractal.runner.adaptive import point_scores
from nnfractal.runner.backends import graceful_interrupt, one_line
from nnfractal.runner.run import execute, resume
from nnfractal.storage.folders import claim_folder, new_staging_folder, remove_staging_folder, write_json_atomic
from nnfractal.storage.run_folder import SUMMARY_FILE, ReportWriter, RunFolder, lock_file, write_report_safely
from nnfractal.storage.store import StoreError
from nnfractal.training.grid import axis_labels

from .compare import (
    FORMAT,
    FORMAT_VERSION,
    _check_int,
    _hardware,
    _main_group,
    config_difference,
    default_compare_dir,
    label_of,
    pair_configs,
)
from .sample import (
    SAMPLE_JSON,
    SampleSpec,
    _check_budget,
    _spec_dict,
    read_spec,
    resolve_spec,
    resume_sample,
    sample,
    to_axis_units,
    to_unit,
)
from .zoom import score_map_of, stop_if_requested

PLAN_JSON = "plan.json"
PLAN_FORMAT = "nnfractal-compare-plan"
SAMPLED_METHODS = ("uncertainty", "transect")
COARSE = 16                 # transect: points per side of each architecture's placing map (it only
                            # has to find the boundary; 256 points against a segment's 1024+)


def _unit_root(preset: str, depth, seed_index: int) -> str:
    return "/".join([preset] + ([f"depth{depth}"] if depth is not None else [])
                    + [f"seed{seed_index}"])


def _resolve(spec: SampleSpec, cfg: Config) -> SampleSpec:
    try:
        return resolve_spec(spec, cfg)
    except SamplingError as err:
        raise ConfigError(err.field, str(err).split(": ", 1)[1]) from None


def plan(presets, *, method: str, seeds: int, depths=None, out=None, spec: SampleSpec,
         max_storage: float | None = None, **overrides) -> dict:
    """Check every input before anything is written; the plan as plan.json stores it.

    Raises ConfigError or RunFolderError naming the field.
    """
    if method not in SAMPLED_METHODS:
        raise ConfigError("method", f"{method!r} is not allowed (allowed: box, "
                          f"{', '.join(SAMPLED_METHODS)})")
    presets = tuple(presets)
    if len(presets) != 2:
        raise ConfigError("presets", f"{len(presets)} given ({' '.join(presets)}) "
                          "(allowed: exactly two presets, A and B)")
    _check_int("seeds", seeds, 1)
    if depths is not None:
        depths = list(depths)
        if not depths or len(set(depths)) != len(depths):
            raise ConfigError("depths", f"{depths} (allowed: one or more distinct depths)")
        if overrides.get("depth") is not None:
            raise ConfigError("depth", "give either --depth or --depths, not both")
    cfg_a, cfg_b, notes = pair_configs(*presets, **overrides)
    if cfg_a.adaptive:
        raise ConfigError("adaptive", "--adaptive refines a grid (allowed with --method "
                          f"{method}: leave it out)")
    spec = _resolve(replace(spec, method=method), cfg_a)
    out = Path(out) if out is not None else default_compare_dir(*presets)
    RunFolder(out).check_new()
    groups = []
    for depth in (depths or [None]):
        pair = (cfg_a, cfg_b) if depth is None else (cfg_a.replace(depth=depth),
                                                     cfg_b.replace(depth=depth))
        for cfg in pair:
            _resolve(spec, cfg)
            _check_budget(cfg, spec, out, max_storage)
        groups.append({"depth": depth, "configs": [c.to_dict() for c in pair]})
    return {"format": PLAN_FORMAT, "presets": list(presets), "method": method,
            "seeds": seeds, "depths": depths, "spec": _spec_dict(spec), "groups": groups,
            "notes": notes, "overrides": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in overrides.items() if v is not None},
            "config_difference": config_difference(cfg_a, cfg_b), "out": str(out)}


def read_plan(root) -> dict:
    path = Path(root) / PLAN_JSON
    try:
        p = json.loads(path.read_text())
    except (OSError, ValueError):
        raise StoreError(f"resume: {root} is not a sampled comparison (no readable "
                         f"{PLAN_JSON}; allowed: a folder written by nnfractal compare "
                         "--method uncertainty|transect)") from None
    if not isinstance(p, dict) or p.get("format") != PLAN_FORMAT:
        raise StoreError(f"resume: {path} is not a comparison plan")
    return p


def _spec_of(raw: dict) -> SampleSpec:
    raw = dict(raw)
    for key in ("center", "direction"):
        if raw.get(key) is not None:
            raw[key] = tuple(raw[key])
    return SampleSpec(**raw)


def _configs(group: dict) -> tuple[Config, Config]:
    a, b = (Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
            for c in group["configs"])
    return a, b


# ---- running ---------------------------------------------------------------------------------

def compare_sampled(presets, *, method: str, seeds: int, depths=None, out=None,
                    spec: SampleSpec | None = None, data_dir=None, progress: bool = True,
                    log=print, max_storage: float | None = None,
                    report: ReportWriter | None = None, **overrides) -> Path:
    """Plan, create the folder, and run every unit (see the module docstring); returns it."""
    p = plan(presets, method=method, seeds=seeds, depths=depths, out=out,
             spec=spec or SampleSpec(method=method), max_storage=max_storage, **overrides)
    root = Path(p["out"])
    # the folder appears with its plan in one step; of two comparisons racing for it, one wins
    work = new_staging_folder(root)
    write_json_atomic(work / PLAN_JSON, p)
    if not claim_folder(work, root):
        remove_staging_folder(work)
        raise RunFolderError(f"out: {root} was created by another process a moment ago "
                             "(allowed: a new folder)")
    for note in p["notes"]:
        log(f"note: {note}")
    return _run(root, p, data_dir, progress, log, max_storage, report)


def resume_compare(root, *, data_dir=None, progress: bool = True, log=print,
                   report: ReportWriter | None = None) -> Path:
    """Finish a killed sampled comparison: every unit not done is trained or resumed."""
    root = Path(root)
    p = read_plan(root)
    RunFolder(root).check_writable()
    log(f"compare: resuming {root}")
    return _run(root, p, data_dir, progress, log, None, report)


def _run(root: Path, p: dict, data_dir, progress, log, max_storage, report) -> Path:
    presets, spec, method = p["presets"], _spec_of(p["spec"]), p["method"]
    start = time.perf_counter()
    n_units = 2 * len(p["groups"]) * p["seeds"]
    per_unit = (spec.points * spec.lines + (COARSE * COARSE if _needs_maps(spec) else 0)
                if method == "transect" else spec.evaluations)
    log(f"compare ({method}): {presets[0]} vs {presets[1]}; {p['seeds']} seed(s)"
        f"{'' if not p['depths'] else ' x depths ' + str(p['depths'])}: {n_units} samples of up to "
        f"{per_unit:,} evaluations")
    with lock_file(root / PLAN_JSON, root):     # one process per comparison
        units, results = _train_units(root, p, spec, data_dir, progress, log, max_storage,
                                      report)
        _finish(root, _info(root, p, units, results, time.perf_counter() - start), log, report)
    return root


def _train_units(root: Path, p: dict, spec: SampleSpec, data_dir, progress, log, max_storage,
                 report):
    """Every unit, group by group; a stop or failure says how to resume the comparison."""
    units, results = [], []
    try:
        with graceful_interrupt():
            for group in p["groups"]:
                cfg_a, cfg_b = _configs(group)
                labels = {c.preset: label_of(c) for c in (cfg_a, cfg_b)}
                group_units = []
                for i in range(p["seeds"]):
                    stop_if_requested("comparison interrupted")
                    pair = (cfg_a.replace(seed=cfg_a.seed + i), cfg_b.replace(seed=cfg_b.seed + i))
                    group_units += _run_pair(root, pair, group["depth"], i, spec, labels,
                                             data_dir, progress, log, max_storage, report)
                units += group_units
                results.append(analyse(group_units, p["presets"], labels, group["depth"]))
                prefix = "" if group["depth"] is None else f"depth {group['depth']}: "
                log(prefix + results[-1]["difference"]["sentence"])
    except RunInterrupted as err:
        raise RunInterrupted(f"{str(err).split(';')[0]}; resume with: nnfractal compare "
                             f"--resume {root}") from None
    except RunFailed as err:
        raise RunFailed(err.brief.split(" (resume")[0], root, "nnfractal compare --resume") \
            from None
    except KeyboardInterrupt:
        raise RunInterrupted(f"comparison interrupted; finished units are kept; resume with: "
                             f"nnfractal compare --resume {root}") from None
    return units, results


def _run_pair(root: Path, pair, depth, i: int, spec: SampleSpec, labels, data_dir, progress,
              log, max_storage, report) -> list[dict]:
    """Both architectures' samples at seed index i (transect: on shared segments)."""
    base = [root / _unit_root(c.preset, depth, i) for c in pair]
    if _needs_maps(spec):
        maps = [_coarse_map(c, d / "coarse", data_dir, log, report) for c, d in zip(pair, base)]
        centre = shared_centre(*maps) if spec.center is None else None
        if centre is not None:
            axis = to_axis_units(pair[0], np.array([centre]))[0]
            spec = replace(spec, center=(float(axis[0]), float(axis[1])))
        if spec.angle is None and spec.center is not None:
            # one angle for both, so that both samples evaluate the same points
            unit = to_unit(pair[0], np.array([spec.center], dtype=np.float64))[0]
            angle, how = transect_angle(maps, centre=unit, lines=spec.lines,
                                        length=spec.length, endpoints=True)
            spec = replace(spec, angle=float(angle))
            log(f"seed index {i}: chords at {angle:.1f} degrees ({how['angle_source']}"
                + ("" if how["trend_deg"] is None else
                   f": both maps' trend {how['trend_deg']:.1f} degrees") + ")")
    out = []
    for cfg, d in zip(pair, base):
        tag = f"{cfg.preset}{'' if depth is None else f' depth {depth}'} seed {cfg.seed}"

        def ulog(m, tag=tag):
            log(f"[{tag}] " + str(m).replace(str(root) + os.sep, ""))
        if spec.method == "transect" and spec.center is None:
            ulog("no boundary in either coarse map: no segments")
            out.append(_unit_record(root, None, cfg, labels, depth, i, spec))
            continue
        _ensure_sample(spec, cfg, d / "sample", data_dir, progress, ulog, max_storage, report)
        out.append(_unit_record(root, d / "sample", cfg, labels, depth, i, spec))
    return out


def _needs_maps(spec: SampleSpec) -> bool:
    """A transect with its centre or angle left to the coarse maps of both architectures."""
    return spec.method == "transect" and (spec.center is None or spec.angle is None)


def _coarse_map(cfg: Config, folder: Path, data_dir, log, report) -> np.ndarray:
    """The COARSE x COARSE score map of `cfg`'s window (trained once; a rerun reads it, and
    resumes one that a stop or a kill cut short, as `nnfractal run --resume` would)."""
    if RunFolder(folder).config_file.exists() and not RunFolder(folder).summary_file.exists():
        resume(folder, data_dir=data_dir, progress=False, log=lambda *_: None, epoch_maps=False,
               report=report)
        log(f"coarse map {folder} (resumed)")
    elif not RunFolder(folder).summary_file.exists():
        if folder.exists():                  # claimed, killed before its config: start again
            shutil.rmtree(folder)
        execute(cfg.replace(resolution=COARSE, adaptive=False), folder, data_dir=data_dir,
                progress=False, log=lambda *_: None, epoch_maps=False, warn_resolution=False,
                report=report)
        log(f"coarse map {folder}")
    return score_map_of(folder)[1]


def shared_centre(map_a: np.ndarray, map_b: np.ndarray):
    """(u, v), window units, where the two maps' boundaries are densest together; None when
    neither map has a boundary. The maps are grid runs: pixel k sits at k / (n - 1)."""
    edges = boundary(map_a).astype(np.int64) + boundary(map_b).astype(np.int64)
    n = map_a.shape[0]
    return densest_edge_cell(edges, lambda k: (k + 0.5) / (n - 1))


def _ensure_sample(spec: SampleSpec, cfg: Config, folder: Path, data_dir, progress, log,
                   max_storage, report) -> None:
    """The unit's sample: read if finished, resumed if started, else trained from scratch."""
    if (folder / SAMPLE_JSON).exists():
        return
    try:
        if RunFolder(folder).store_dir.is_dir() and RunFolder(folder).config_file.is_file():
            resume_sample(folder, data_dir=data_dir, progress=progress, log=log, report=report)
        else:
            if folder.exists():              # killed before its store existed
                shutil.rmtree(folder)
            sample(spec, cfg, folder, data_dir=data_dir, progress=progress, log=log,
                   max_storage=max_storage, report=report)
    except ConfigError as err:
        # a window without boundary is data (the folder keeps its curves), not a refusal
        if err.field != "window" or not (folder / SAMPLE_JSON).exists():
            raise


def _compact(est: dict | None) -> dict | None:
    if est is None:
        return None
    keep = ("dimension", "ci_low", "ci_high", "ok", "reason", "method")
    out = {k: est.get(k) for k in keep}
    chaos = (est.get("extra") or {}).get("counting_chaos")
    if chaos is not None:
        out["counting_chaos"] = {k: chaos.get(k) for k in ("dimension", "ci_low", "ci_high",
                                                          "ok")}
    floors = (est.get("extra") or {}).get("chaos_floor")
    if floors is not None:
        out["chaos_floor"] = floors
    return out


def _unit_record(root: Path, folder: Path | None, cfg: Config, labels, depth, i: int,
                 spec: SampleSpec) -> dict:
    rec = {"preset": cfg.preset, "label": labels[cfg.preset], "depth": cfg.depth,
           "sweep_depth": depth, "seed_index": i, "seed": cfg.seed,
           "dir": None, "coarse_dir": None, "mnmx": list(cfg.mnmx), "center": None,
           "angle": None,
           "estimate": {"dimension": None, "ci_low": None, "ci_high": None, "ok": False,
                        "reason": "no boundary in either coarse map", "method": spec.method},
           "evaluations": 0, "model_steps": 0, "wall_time_s": 0.0, "model_steps_per_s": None}
    base = root / _unit_root(cfg.preset, depth, i)
    if (base / "coarse" / SUMMARY_FILE).exists():
        coarse = json.loads((base / "coarse" / SUMMARY_FILE).read_text())
        rec["coarse_dir"] = str((base / "coarse").relative_to(root))
        rec["model_steps"] += int(coarse.get("model_steps") or 0)
        rec["wall_time_s"] += float(coarse.get("wall_time_s") or 0.0)
    if folder is None:
        return rec
    result = json.loads((folder / SAMPLE_JSON).read_text())
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    rec.update(dir=str(folder.relative_to(root)), estimate=_compact(result["estimate"]),
               center=result["parameters"].get("center"),
               angle=result["parameters"].get("angle"),
               evaluations=int(result["evaluations"]),
               device=summary.get("device"), data_source=summary.get("data_source"))
    rec["model_steps"] += int(result["model_steps"])
    rec["wall_time_s"] += float(summary.get("tile_seconds") or 0.0)
    rec["model_steps_per_s"] = summary.get("model_steps_per_s")
    est = result["estimate"]
    if spec.method == "transect" and est.get("values"):
        # raw data beside the estimate, even where the fit rule gives no dimension: sign changes
        # per lag (the finest lag first) along the segment both architectures share
        rec["sign_changes"] = {"lags": est["scales"], "changes": est["values"]}
    return rec


def analyse(units: list[dict], presets, labels: dict, depth) -> dict:
    """Per-seed and pooled dimensions of both architectures and their paired difference."""
    a, b = presets
    out = {"depth": depth, "archs": {}}
    for k, p in enumerate(presets):
        mine = sorted((u for u in units if u["preset"] == p), key=lambda u: u["seed_index"])
        out["archs"][p] = {"label": labels[p],
                           "pooled": pool([u["estimate"] for u in mine], seed=k + 1),
                           "per_seed": [{"seed": u["seed"], **u["estimate"]} for u in mine],
                           "n_units": len(mine)}
    by_seed = {}
    for u in units:
        by_seed.setdefault(u["seed_index"], {})[u["preset"]] = u["estimate"]
    pairs = [(s[a], s[b]) for _, s in sorted(by_seed.items()) if a in s and b in s]
    out["difference"] = paired_difference(pairs, label_a=labels[a], label_b=labels[b],
                                          name_a=a, name_b=b)
    return out


def _info(root: Path, p: dict, units: list[dict], results: list[dict], seconds: float) -> dict:
    cfg_a, cfg_b = _configs(p["groups"][0])
    main = _main_group(results, cfg_a.depth)
    evaluations = sum(u["evaluations"] for u in units)
    steps = sum(u["model_steps"] for u in units)
    wall = sum(u["wall_time_s"] for u in units)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": p["method"],
        "presets": p["presets"],
        "labels": {pr: main["archs"][pr]["label"] for pr in p["presets"]},
        "settings": {"method": p["method"], "seeds": p["seeds"], "depths": p["depths"],
                     "spec": p["spec"], "overrides": p["overrides"],
                     "seed_values": [cfg_a.seed + i for i in range(p["seeds"])]},
        "configs": {c.preset: c.to_dict() for c in (cfg_a, cfg_b)},
        "config_difference": p["config_difference"], "notes": p["notes"],
        "units": units, "results": results, "main_depth": main["depth"],
        "difference": main["difference"], "verdict": main["difference"]["verdict"],
        "sentence": main["difference"]["sentence"], "figures": {},
        "timing": {"units": len(units), "evaluations": int(evaluations),
                   "model_steps": int(steps), "training_s": round(wall, 3),
                   "model_steps_per_s": round(steps / wall, 2) if wall > 0 else None,
                   "this_session_s": round(seconds, 3)},
        "hardware": _hardware(root, [u for u in units if u["dir"]]),
    }


def _finish(root: Path, info: dict, log, report) -> None:
    write_json_atomic(root / "compare.json", info)
    try:
        info["figures"] = draw_figures(root, info)
    except Exception as err:  # noqa: BLE001 - the samples are the result; keep them
        log(f"compare: drawing failed ({one_line(err)}); redraw with: nnfractal report {root}")
    write_json_atomic(root / "compare.json", info)
    write_report_safely(report, root, log=log)
    log(f"verdict: {info['sentence']}")
    log(f"wrote {root}  ({len(info['units'])} samples, {info['timing']['evaluations']:,} "
        f"evaluations, {info['timing']['model_steps']:,} model-steps; report.html)")


# ---- figures ---------------------------------------------------------------------------------

def unit_map(root: Path, unit: dict):
    """(score map (n, n), extent (x0, x1, y0, y1) in axis units) to show for a unit: its coarse
    grid (transect) or the estimator's coarse map, block 0 of the sample (uncertainty)."""
    y0, y1, x0, x1 = unit["mnmx"]
    if unit.get("coarse_dir"):
        return score_map_of(root / unit["coarse_dir"])[1], (x0, x1, y0, y1)
    if not unit.get("dir"):
        return None, None
    spec, cfg = read_spec(root / unit["dir"])
    if spec.method != "uncertainty" or not spec.coarse:
        return None, None
    store = RunFolder(root / unit["dir"]).open_store()
    block = store.attrs["blocks"][0]
    cols = store.tile_grid.cols
    curves = {m: store.group[f"curves/{m}"][block["row"]:block["row"] + block["rows"]]
              .reshape(block["rows"] * cols, -1)[:block["n"]] for m in store.metrics}
    scores = point_scores(cfg, curves, int(store.attrs["schedule"]["steps_per_epoch"]))
    n = spec.coarse
    # the coarse points are the pixel centres (j + 0.5) / n: the map spans half a pixel less
    du, dv = (x1 - x0) / (2 * n), (y1 - y0) / (2 * n)
    return scores.reshape(n, n), (x0 + du, x1 - du, y0 + dv, y1 - dv)


def draw_figures(root, info: dict) -> dict[str, str]:
    from nnfractal.render import compare_plots as cp
    root = Path(root)
    presets = info["presets"]
    main = next(r for r in info["results"] if r["depth"] == info["main_depth"])
    labels = [main["archs"][p]["label"] for p in presets]
    ref = [next((u for u in info["units"] if u["preset"] == p and u["seed_index"] == 0
                 and u["sweep_depth"] == info["main_depth"]), None) for p in presets]
    written = {}
    shown = [unit_map(root, u) if u else (None, None) for u in ref]
    if all(m is not None for m, _ in shown):
        cfg0 = RunFolder(root / (ref[0]["dir"] or ref[0]["coarse_dir"])).read_config()
        xlabel, ylabel = axis_labels(cfg0)
        segments = [_segment_of(root, u) for u in ref]
        cp.plot_maps_side_by_side([m for m, _ in shown], shown[0][1], labels, xlabel, ylabel,
                                  cfg0.axis_scale, root / "compare_maps.png",
                                  segments=segments)
        written["maps"] = "compare_maps.png"
    ests = []
    for u in ref:
        ests.append(json.loads((root / u["dir"] / SAMPLE_JSON).read_text())["estimate"]
                    if u and u["dir"] else None)
    cp.plot_sampled_fits(ests, labels, root / "compare_fits.png")
    written["fits"] = "compare_fits.png"
    cp.plot_seed_dimensions(main, presets, root / "compare_dimensions.png")
    written["dimensions"] = "compare_dimensions.png"
    if info["settings"].get("depths") and len(info["results"]) > 1:
        cp.plot_dimension_vs_depth(info["results"], presets, root / "compare_depth.png")
        written["depth"] = "compare_depth.png"
    return written


def _segment_of(root: Path, unit: dict | None):
    """The first transect segment of a unit in axis units ((x0, y0), (x1, y1)), or None."""
    if not unit or not unit.get("dir"):
        return None
    est = json.loads((root / unit["dir"] / SAMPLE_JSON).read_text())["estimate"]
    seg = (est.get("extra") or {}).get("segment")
    if not seg:
        return None
    y0, y1, x0, x1 = unit["mnmx"]
    return [(x0 + s[0] * (x1 - x0), y0 + s[1] * (y1 - y0)) for s in seg]


def is_sampled(info: dict) -> bool:
    return info.get("method") in SAMPLED_METHODS
