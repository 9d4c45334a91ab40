"""Compare the trainability boundary of two architectures: ``nnfractal compare PRESET_A PRESET_B``.

The two presets are trained on exactly the same experiment: the configuration of B is A's with
only the architecture fields (``ARCH_FIELDS``: model, depth, skip, c_hidden, nonlinearity, width)
taken from B, so the grid, window, data, batch order, optimiser, measure and initial-weight seeds
are identical. (A shared layer gets the same initial weights in both: the models draw their
parameters from the same seed; a residual net's projection shortcuts are the only extra weights.)
Every other field where preset B differs from A is reported as a note and taken from A.

For each architecture, each initialisation seed ``cfg.seed + i`` (``--seeds``) and each window
(``--windows``), one grid is trained with ``run.execute``:

* window 0 is the preset's window;
* window j >= 1 is frame j of a zoom (``zoom.frame_windows``, ``--factor`` per frame) centred on
  the densest boundary pixel of that architecture's and seed's window 0 (``zoom.auto_center``),
  so each architecture is zoomed into its own boundary. Windows that the float precision cannot
  resolve are left out (``zoom.resolvable_frames``), as in ``nnfractal zoom``.

With ``--depths`` the whole design is repeated for every depth (both presets at that depth).

Output folder::

    compare.json                    everything: settings, configs, every grid, pooled dimensions,
                                    difference and verdict (see `compare`)
    report.html                     the self-contained report (nnfractal.report.pages)
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
import os
import platform
import time
import traceback
from datetime import datetime
from pathlib import Path

from nnfractal.config import Config, ConfigError, build_config
from nnfractal.errors import RunFailed, StoreError
from nnfractal.estimators.boxcount import boundary, paper_dimension
from nnfractal.estimators.stats import difference, pool
from nnfractal.models import arch_label
from nnfractal.storage.folders import write_json_atomic as _write_json
from nnfractal.storage.run_folder import ReportWriter, RunFolder
from nnfractal.training.budget import check_many, check_max_storage
from nnfractal.training.grid import axis_labels

from .zoom import auto_center, frame_windows, resolvable_frames, score_map_of, stop_if_requested

# run, backends and render are imported in the functions that use them: they load torch and
# matplotlib (3.7 s and 1.5 s measured), and `nnfractal` imports this module at start, before
# its allocator restart, also for commands that need neither (presets, report, --help).

FORMAT = "nnfractal-compare"
FORMAT_VERSION = 1
DEFAULT_PRESETS = ("resnet20-mnist", "plain20-mnist")
DEFAULT_SEEDS = 3
DEFAULT_WINDOWS = 3
DEFAULT_FACTOR = 2.0

# What "architecture" means here: the fields taken from preset B. Everything else is A's.
ARCH_FIELDS = ("model", "depth", "skip", "c_hidden", "nonlinearity", "width")
# Fields that only name or display a run; a difference there is not worth a note.
_QUIET_FIELDS = ("preset",)

FIGURES = {
    "maps": "compare_maps.png",
    "boundaries": "compare_boundaries.png",
    "dimensions": "compare_dimensions.png",
    "curves": "compare_curves.png",
    "depth": "compare_depth.png",
}


# ---- configuration ---------------------------------------------------------------------------

def label_of(cfg: Config) -> str:
    """The preset and its architecture, e.g. 'resnet20-mnist (ResNet-20, residual, relu)'."""
    return f"{cfg.preset} ({arch_label(cfg)})"


def pair_configs(preset_a: str, preset_b: str, **overrides) -> tuple[Config, Config, list[str]]:
    """The two configs of a comparison and the notes on fields taken from A.

    Both presets get the same overrides; then B becomes A with B's ``ARCH_FIELDS`` (and B's preset
    name). Raises ConfigError for an unknown preset or a combination that does not validate.
    """
    if preset_a == preset_b:
        raise ConfigError("presets", f"{preset_a!r} twice (allowed: two different presets)")
    cfg_a = build_config(preset_a, **overrides)
    raw_b = build_config(preset_b, **overrides)
    cfg_b = cfg_a.replace(preset=preset_b, **{f: getattr(raw_b, f) for f in ARCH_FIELDS})
    notes = []
    for key, value in raw_b.to_dict().items():
        if key in ARCH_FIELDS or key in _QUIET_FIELDS:
            continue
        mine = cfg_b.to_dict()[key]
        if mine != value:
            notes.append(f"{preset_b}: {key} = {_short(value)} in its preset; the comparison uses "
                         f"{preset_a}'s {_short(mine)} so that only the architecture differs")
    return cfg_a, cfg_b, notes


def _short(v) -> str:
    return json.dumps(v) if isinstance(v, (list, tuple, str)) else repr(v)


def config_difference(cfg_a: Config, cfg_b: Config) -> dict[str, list]:
    a, b = cfg_a.to_dict(), cfg_b.to_dict()
    return {k: [a[k], b[k]] for k in a if a[k] != b[k]}


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(name, f"{value!r} is not allowed (allowed: an integer >= {minimum})")


def default_compare_dir(preset_a: str, preset_b: str) -> Path:
    return Path("runs") / f"compare-{preset_a}-vs-{preset_b}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def plan(presets=DEFAULT_PRESETS, *, seeds: int = DEFAULT_SEEDS, windows: int = DEFAULT_WINDOWS,
         factor: float = DEFAULT_FACTOR, depths=None, out=None, max_storage=None,
         **overrides) -> dict:
    """Check every input before anything is trained; returns the plan (configs per depth).

    Raises ConfigError or RunFolderError with a one-line message naming the field.
    """
    presets = tuple(presets) if presets else DEFAULT_PRESETS
    if len(presets) != 2:
        raise ConfigError("presets", f"{len(presets)} given ({' '.join(presets)}) "
                          "(allowed: exactly two presets, A and B)")
    _check_int("seeds", seeds, 1)
    _check_int("windows", windows, 1)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) \
            or factor <= 1:
        raise ConfigError("factor", f"{factor!r} is not allowed (allowed: a number > 1, the zoom "
                          "factor between windows)")
    if depths is not None:
        depths = list(depths)
        if not depths:
            raise ConfigError("depths", "empty (allowed: one or more depths)")
        if len(set(depths)) != len(depths):
            raise ConfigError("depths", f"{depths} repeats a depth (allowed: distinct depths)")
        if overrides.get("depth") is not None:
            raise ConfigError("depth", "give either --depth or --depths, not both")
    cfg_a, cfg_b, notes = pair_configs(*presets, **overrides)
    groups = []
    for depth in (depths or [None]):
        if depth is None:
            a, b = cfg_a, cfg_b
        else:
            a, b = cfg_a.replace(depth=depth), cfg_b.replace(depth=depth)
        groups.append({"depth": depth, "configs": (a, b)})
    out = Path(out) if out is not None else default_compare_dir(*presets)
    RunFolder(out).check_new()
    n_grids = 2 * len(groups) * seeds * windows
    field, value = ("seeds", seeds) if seeds >= windows else ("windows", windows)
    for group in groups:
        for cfg in group["configs"]:
            check_many(cfg, n_grids, field, value, out, "the comparison",
                       check_max_storage(max_storage))
    return {"presets": presets, "seeds": seeds, "windows": windows, "factor": float(factor),
            "depths": depths, "groups": groups, "notes": notes, "out": out,
            "config_difference": config_difference(cfg_a, cfg_b), "base": (cfg_a, cfg_b)}


# ---- running ---------------------------------------------------------------------------------

def _unit_dir(preset: str, depth, seed_index: int, window: int) -> str:
    parts = [preset] + ([f"depth{depth}"] if depth is not None else []) + \
        [f"seed{seed_index}", f"window{window}"]
    return "/".join(parts)


def _compact(est: dict | None) -> dict | None:
    if est is None:
        return None
    keep = ("dimension", "ci_low", "ci_high", "ok", "reason", "n_boundary_pixels", "fit_sizes",
            "method")
    return {k: est.get(k) for k in keep}


def _unit_record(run_dir: Path, root: Path, *, preset: str, label: str, depth, seed_index: int,
                 seed: int, window: int, cfg: Config, center, magnification: float) -> dict:
    folder = RunFolder(run_dir)
    fractal = json.loads(folder.fractal_file.read_text())
    summary = json.loads(folder.summary_file.read_text())
    metrics = {m: _compact(v.get("final")) for m, v in fractal.get("metrics", {}).items()}
    return {
        "preset": preset, "label": label, "depth": cfg.depth, "sweep_depth": depth,
        "seed_index": seed_index, "seed": seed, "window": window,
        "dir": str(run_dir.relative_to(root)), "mnmx": list(cfg.mnmx),
        "center": list(center) if center is not None else None, "magnification": magnification,
        "metric": fractal.get("metric", "train_loss"),
        "dimension": _compact(fractal["final"]), "paper": _compact(fractal.get("paper_method")),
        "metrics": metrics,
        "fraction_converged": summary.get("fraction_converged"),
        "wall_time_s": summary.get("wall_time_s"), "model_steps": summary.get("model_steps"),
        "model_steps_per_s": summary.get("model_steps_per_s"), "device": summary.get("device"),
    }


def _run_architecture(cfg: Config, label: str, depth, seeds: int, n_windows: int, factor: float,
                      work: Path, data_dir, progress: bool, log,
                      max_storage: float | None = None,
                      report: ReportWriter | None = None) -> tuple[list[dict], list[str]]:
    """Every grid of one architecture (at one depth): seeds x windows. Returns units and notes."""
    from nnfractal.runner.run import execute

    units, notes = [], []
    for i in range(seeds):
        seed = cfg.seed + i
        base = cfg.replace(seed=seed)
        tag = f"{cfg.preset}{'' if depth is None else f' depth {depth}'} seed {seed}"

        def ulog(msg, w=0, tag=tag):
            log(f"[{tag} window {w}] " + str(msg).replace(str(work) + os.sep, ""))
        d0 = work / _unit_dir(cfg.preset, depth, i, 0)
        stop_if_requested(f"comparison interrupted before {tag}")
        # Epoch maps and videos only where the report shows them (seed 0's preset window): the
        # other grids need only their final map, which saves most of the drawing time.
        execute(base, d0, data_dir=data_dir, progress=progress, log=ulog, epoch_maps=i == 0,
                max_storage=max_storage, report=report)
        units.append(_unit_record(d0, work, preset=cfg.preset, label=label, depth=depth,
                                  seed_index=i, seed=seed, window=0, cfg=base, center=None,
                                  magnification=1.0))
        if n_windows < 2:
            continue
        _, smap = score_map_of(d0)
        center = auto_center(base, smap)
        if center is None:
            notes.append(f"{tag}: no boundary in the preset's window, so no zoomed windows")
            ulog("no boundary in this window: no zoomed windows for this seed")
            continue
        wins = frame_windows(base.mnmx, center, factor, n_windows)
        n_ok, _ = resolvable_frames(wins, base.resolution, base.axis_scale, base.precision)
        if n_ok < n_windows:
            notes.append(f"{tag}: {base.precision} resolves only {n_ok} of {n_windows} windows at "
                         f"factor {factor:g}; the deeper ones are left out")
        for j in range(1, n_ok):
            wcfg = base.replace(mnmx=tuple(float(v) for v in wins[j]))
            dj = work / _unit_dir(cfg.preset, depth, i, j)
            stop_if_requested(f"comparison interrupted before {tag} window {j}")
            execute(wcfg, dj, data_dir=data_dir, progress=progress,
                    log=lambda m, j=j: ulog(m, j), epoch_maps=False, max_storage=max_storage,
                    report=report)
            units.append(_unit_record(dj, work, preset=cfg.preset, label=label, depth=depth,
                                      seed_index=i, seed=seed, window=j, cfg=wcfg, center=center,
                                      magnification=factor ** j))
    return units, notes


def analyse(units: list[dict], presets, labels: dict, depth, n_windows: int,
            root: Path | None = None) -> dict:
    """Pooled and per-window dimensions of both architectures, their difference and verdict."""
    a, b = presets
    out = {"depth": depth, "archs": {}}
    for p in presets:
        mine = [u for u in units if u["preset"] == p]
        per_window = []
        for j in range(n_windows):
            ests = [u["dimension"] for u in mine if u["window"] == j]
            per_window.append({"window": j, **pool(ests, seed=j + 1)} if ests else
                              {"window": j, "dimension": None, "ci_low": None, "ci_high": None,
                               "ok": False, "reason": "not trained (no boundary to zoom into)",
                               "n_units": 0, "n_ok": 0})
        entry = {"label": labels[p], "pooled": pool([u["dimension"] for u in mine]),
                 "per_window": per_window, "n_grids": len(mine)}
        if root is not None:
            entry["paper_pooled"] = _paper_pooled(root, mine)
        out["archs"][p] = entry
    ua = [u for u in units if u["preset"] == a]
    ub = [u for u in units if u["preset"] == b]
    out["difference"] = difference([u["dimension"] for u in ua], [u["dimension"] for u in ub],
                                   strata_a=[u["window"] for u in ua],
                                   strata_b=[u["window"] for u in ub],
                                   label_a=labels[a], label_b=labels[b], name_a=a, name_b=b)
    return out


def _paper_pooled(root: Path, units: list[dict]) -> dict:
    """The paper's estimator (median local slope) pooled over all of an architecture's grids."""
    edges = [boundary(score_map_of(root / u["dir"])[1]) for u in units]
    return _compact(paper_dimension(edges).to_dict()) if edges else None


def _main_group(results: list[dict], base_depth: int) -> dict:
    for r in results:
        if r["depth"] == base_depth:
            return r
    return results[0]


def compare(presets=DEFAULT_PRESETS, *, seeds: int = DEFAULT_SEEDS,
            windows: int = DEFAULT_WINDOWS, factor: float = DEFAULT_FACTOR, depths=None,
            out=None, data_dir=None, progress: bool = True, log=print,
            max_storage: float | None = None, report: ReportWriter | None = None,
            **overrides) -> Path:
    """Train and compare; returns the comparison folder (see the module docstring).

    `overrides` are config fields applied to both presets (e.g. resolution=8, steps=30).
    `report`: writes the report of the comparison and of each grid (the command layer passes
    report.write_report; None: no reports).
    Every refusable input is checked first; the folder is built under a temporary name beside
    `out` and renamed when complete, so a refused, crashed or interrupted comparison leaves
    nothing at `out`.
    """
    p = plan(presets, seeds=seeds, windows=windows, factor=factor, depths=depths, out=out,
             max_storage=max_storage, **overrides)
    out = p["out"]
    presets = p["presets"]
    for note in p["notes"]:
        log(f"note: {note}")
    n_grids = 2 * len(p["groups"]) * seeds * windows
    differ = ', '.join(f'{k} {v[0]!r} / {v[1]!r}' for k, v in p['config_difference'].items() if k != 'preset')
    log(f"compare: {presets[0]} vs {presets[1]}; differ in "
        f"{differ or 'nothing but the name'}; "
        f"{seeds} seed(s) x {windows} window(s){'' if not depths else f' x depths {depths}'}: "
        f"up to {n_grids} grids of {p['base'][0].resolution}x{p['base'][0].resolution}")
    from nnfractal.runner.backends import graceful_interrupt
    start = time.perf_counter()
    # Ctrl-C or SIGTERM: the grid in training stops after its chunk, and no other grid starts.
    with graceful_interrupt(), RunFolder.staged(out) as staged:
        work = staged.path
        units, notes, results = [], list(p["notes"]), []
        for group in p["groups"]:
            group_units = []
            for cfg in group["configs"]:
                u, n = _run_architecture(cfg, label_of(cfg), group["depth"], seeds, windows,
                                         p["factor"], work, data_dir, progress, log,
                                         max_storage, report)
                group_units += u
                notes += n
            units += group_units
            glabels = {c.preset: label_of(c) for c in group["configs"]}
            res = analyse(group_units, presets, glabels, group["depth"], windows, root=work)
            results.append(res)
            prefix = "" if group["depth"] is None else f"depth {group['depth']}: "
            log(prefix + res["difference"]["sentence"])
        stop_if_requested("comparison interrupted before drawing")
        train_s = time.perf_counter() - start
        cfg_a, cfg_b = p["base"]
        main = _main_group(results, cfg_a.depth)
        info = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "presets": list(presets),
            "labels": {c.preset: label_of(c) for c in main_configs(p, main)},
            "settings": {"seeds": seeds, "windows": windows, "factor": p["factor"],
                         "depths": p["depths"],
                         "overrides": {k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in overrides.items() if v is not None},
                         "seed_values": [cfg_a.seed + i for i in range(seeds)]},
            "configs": {c.preset: c.to_dict() for c in (cfg_a, cfg_b)},
            "config_difference": p["config_difference"],
            "arch_fields": list(ARCH_FIELDS), "notes": notes,
            "units": units, "results": results,
            "main_depth": main["depth"],
            "difference": main["difference"], "verdict": main["difference"]["verdict"],
            "sentence": main["difference"]["sentence"],
            "figures": {},
            "timing": _timing(units, train_s),
            "hardware": _hardware(work, units),
        }
        _write_json(work / "compare.json", info)
        # From here on the grids and the statistics exist: a failure while drawing must not throw
        # them away with the staged folder. It is noted in error.log and raised once the folder
        # is in place, with how to redraw.
        drawing_error = _draw_and_report(work, out, info, units, start, report)
    log(f"verdict: {info['sentence']}")
    if drawing_error:
        raise RunFailed(f"compare: drawing the figures or reports failed ({drawing_error}); the "
                        f"grids and compare.json are kept in {out}; redraw with: nnfractal report "
                        f"{out} (traceback in {RunFolder(out).error_log})", out)
    log(f"wrote {out}  ({len(units)} grids, {time.perf_counter() - start:.1f} s; report.html)")
    return out


def _draw_and_report(work: Path, out: Path, info: dict, units: list[dict], start: float,
                     report: ReportWriter | None = None) -> str:
    """Figures, compare.json with their names, and every report (with `report`); '' or the
    error in one line."""
    try:
        t0 = time.perf_counter()
        info["figures"] = draw_figures(work, info)
        info["timing"]["figures_s"] = round(time.perf_counter() - t0, 3)
        info["timing"]["total_s"] = round(time.perf_counter() - start, 3)
        _write_json(work / "compare.json", info)
        if report is not None:
            for u in units:
                report(work / u["dir"], display_path=out / u["dir"])
            report(work, display_path=out)
    except Exception as err:  # noqa: BLE001 - the trained grids are the result; keep them
        RunFolder(work).error_log.write_text(traceback.format_exc())
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return ""


def reanalyse(root, log=print, report: ReportWriter | None = None) -> dict:
    """Recompute the statistics of a finished comparison from its grids' fractal.json (no
    training); rewrites compare.json, the figures and (with `report`) report.html. Returns
    compare.json's content.
    """
    root = Path(root)
    info = read_compare_json(root)
    presets = info["presets"]
    for unit in info["units"]:
        fractal = json.loads(RunFolder(root / unit["dir"]).fractal_file.read_text())
        unit["dimension"] = _compact(fractal["final"])
        unit["paper"] = _compact(fractal.get("paper_method"))
    results = []
    for old in info["results"]:
        group = [u for u in info["units"] if u.get("sweep_depth") == old["depth"]]
        labels = {p: old["archs"][p]["label"] for p in presets}
        results.append(analyse(group, presets, labels, old["depth"],
                               info["settings"]["windows"], root=root))
    info["results"] = results
    main = next(r for r in results if r["depth"] == info["main_depth"])
    info.update(difference=main["difference"], verdict=main["difference"]["verdict"],
                sentence=main["difference"]["sentence"])
    info["figures"] = draw_figures(root, info)
    _write_json(root / "compare.json", info)
    if report is not None:
        report(root)
    log(f"verdict: {info['sentence']}")
    return info


def main_configs(p: dict, main: dict) -> tuple[Config, Config]:
    for g in p["groups"]:
        if g["depth"] == main["depth"]:
            return g["configs"]
    return p["groups"][0]["configs"]


def _timing(units: list[dict], train_s: float) -> dict:
    walls = [u["wall_time_s"] or 0.0 for u in units]
    steps = [u["model_steps"] or 0 for u in units]
    return {"grids": len(units), "training_wall_s": round(float(sum(walls)), 3),
            "model_steps": int(sum(steps)),
            "model_steps_per_s": round(sum(steps) / sum(walls), 2) if sum(walls) > 0 else None,
            "grids_and_pictures_s": round(train_s, 3)}


def _hardware(root: Path, units: list[dict]) -> dict:
    hw = {"machine": platform.machine(), "system": platform.system(),
          "cpu_count": os.cpu_count()}
    if units:
        summary = json.loads((root / units[0]["dir"] / "summary.json").read_text())
        for key in ("device", "cpu", "threads", "versions", "data_source"):
            if key in summary:
                hw[key] = summary[key]
    return hw


# ---- figures ---------------------------------------------------------------------------------

def draw_figures(root, info: dict | None = None) -> dict[str, str]:
    """(Re)draw the comparison figures from compare.json and the run folders; returns name -> file."""
    from nnfractal.render import compare_plots as cp
    from nnfractal.render.maps import extent_of
    from nnfractal.runner.run import metric_curves

    root = Path(root)
    info = info or read_compare_json(root)
    presets = info["presets"]
    main = next(r for r in info["results"] if r["depth"] == info["main_depth"])
    ref = {}
    for p in presets:
        u = next((u for u in info["units"] if u["preset"] == p
                  and u["sweep_depth"] == info["main_depth"]
                  and u["seed_index"] == 0 and u["window"] == 0), None)
        if u is not None:
            ref[p] = u
    written = {}
    if len(ref) == 2:
        cfgs, maps, edges = {}, {}, {}
        for p, u in ref.items():
            cfgs[p], maps[p] = score_map_of(root / u["dir"])
            edges[p] = boundary(maps[p])
        cfg0 = cfgs[presets[0]]
        store0 = RunFolder(root / ref[presets[0]]["dir"]).open_store()
        extent = extent_of(store0.x, store0.y, cfg0.axis_scale)
        xlabel, ylabel = axis_labels(cfg0)
        labels = [main["archs"][p]["label"] for p in presets]
        picks, curves = {}, {}
        for p, u in ref.items():
            picks[p] = cp.boundary_pixel_pairs(maps[p], k=3)
            store = RunFolder(root / u["dir"]).open_store()
            c, value_epoch = metric_curves(store, cfgs[p], cfgs[p].metric)
            curves[p] = (c, value_epoch)
        zooms = {p: [u["mnmx"] for u in info["units"] if u["preset"] == p
                     and u["sweep_depth"] == info["main_depth"] and u["seed_index"] == 0
                     and u["window"] > 0]
                 for p in presets}
        cp.plot_maps_side_by_side([maps[p] for p in presets], extent, labels, xlabel, ylabel,
                                  cfg0.axis_scale, root / FIGURES["maps"],
                                  marks=[picks[p] for p in presets],
                                  windows=[zooms[p] for p in presets])
        written["maps"] = FIGURES["maps"]
        cp.plot_boundaries_overlay([edges[p] for p in presets], extent, labels, xlabel, ylabel,
                                   cfg0.axis_scale, root / FIGURES["boundaries"])
        written["boundaries"] = FIGURES["boundaries"]
        cp.plot_pixel_curves([curves[p] for p in presets], [picks[p] for p in presets], labels,
                             [cfgs[p] for p in presets], (store0.x, store0.y),
                             root / FIGURES["curves"])
        written["curves"] = FIGURES["curves"]
    cp.plot_dimension_bars(main, presets, root / FIGURES["dimensions"])
    written["dimensions"] = FIGURES["dimensions"]
    if info["settings"].get("depths") and len(info["results"]) > 1:
        cp.plot_dimension_vs_depth(info["results"], presets, root / FIGURES["depth"])
        written["depth"] = FIGURES["depth"]
    return written


def read_compare_json(root) -> dict:
    path = Path(root) / "compare.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"compare: {path} is not a readable compare.json ({type(err).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise StoreError(f"compare: {path} is not an nnfractal comparison")
    return info
