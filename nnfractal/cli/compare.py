"""`nnfractal compare`: its flags, its refusals and the report it writes. `--method
box|uncertainty|transect` picks the study (nnfractal/studies/compare.py or compare_sampled.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnfractal.config import ConfigError
from nnfractal.errors import DataError, RunFolderError, refuse
from nnfractal.report import write_report
from nnfractal.studies import compare
from nnfractal.studies.comparison import pair_configs, plan_method

from .common import (
    CONFIG_FLAGS,
    add_run_flags,
    config_from_args,
    refuse_given_with_resume,
    repair_for_resume,
    run_resumable,
)
from .sample import ESTIMATOR_FLAGS, add_estimator_flags, spec_from_args

# What --resume reads from the folder, so refuses as a flag (with every config flag).
RESUME_REFUSED = ("presets", "depths", "out", "windows", "factor", "method", "seeds",
                  "max_storage", "sample_seed",
                  *(name for names in ESTIMATOR_FLAGS.values() for name in names))


def add_compare_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="compare the boundary dimension of two architectures on the same grid, "
        "data and initial weights (default resnet20-mnist vs plain20-mnist)",
        description="Train both presets on the same experiment (B takes only its architecture: "
        f"{', '.join(compare.ARCH_FIELDS)}) over several seeds and windows, and compare the "
        "fractal dimension of their trainability boundaries with a 95% interval and a verdict.")
    p.add_argument("presets", nargs="*", metavar="PRESET",
                   help=f"preset A and preset B (default {' '.join(compare.DEFAULT_PRESETS)})")
    p.add_argument("--method", default=None,
                   help="box (default: grids, box counting per window) | uncertainty | transect "
                   "(sampling estimators of `nnfractal sample`, paired by seed; transect: the "
                   "same points for both architectures)")
    p.add_argument("--resume", type=Path, metavar="COMPARE_DIR",
                   help="finish an interrupted comparison (any --method; its settings are in "
                   "the folder)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"initialisation seeds per architecture, seed = cfg.seed + i "
                   f"(default {compare.DEFAULT_SEEDS})")
    p.add_argument("--windows", type=int, default=None,
                   help=f"--method box: windows per seed: the preset's window plus zoom frames "
                   f"centred on each architecture's boundary (default {compare.DEFAULT_WINDOWS})")
    p.add_argument("--factor", type=float, default=None,
                   help=f"--method box: zoom factor between windows (default "
                   f"{compare.DEFAULT_FACTOR:g})")
    p.add_argument("--depths", nargs="+", type=int, metavar="DEPTH",
                   help="depth sweep: repeat the comparison at each depth (e.g. 8 14 20 32)")
    add_estimator_flags(p)
    add_run_flags(p)
    # --preset comes with the run flags; here the presets are positional.
    p.set_defaults(preset=None)
    for action in p._actions:
        if action.dest == "preset":
            action.help = argparse.SUPPRESS


def compare_overrides_from_args(args, preset: str) -> dict:
    """The config fields given on the command line, as the run command would read them.

    The run command's own parsing (``cli.common.config_from_args``) resolves the flags against
    `preset`; every field a flag touched is then an override for both presets.
    """
    explicit = {k for k in CONFIG_FLAGS if getattr(args, k, None) is not None}
    if getattr(args, "readout", None):
        explicit |= {"readout", "metric"}   # --readout takes a readout and/or a metric name
    if not explicit:
        return {}
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "preset": preset}))
    return {k: getattr(cfg, k) for k in sorted(explicit)}


def cmd_compare(args) -> int:
    if getattr(args, "preset", None) is not None:
        return refuse("preset: give the presets as positional arguments "
                      "(nnfractal compare PRESET_A PRESET_B)")
    try:
        work = _compare_work(args)
    except (ConfigError, DataError, RunFolderError) as err:
        return refuse(err)
    # a study's stops and failures say how to resume it
    return run_resumable(work, [], "nnfractal compare --resume")


def _compare_work(args):
    """The comparison the flags ask for, as a callable; ConfigError for flags that do not fit."""
    # Here, not at the top: compare_sampled loads torch (seconds), which commands that need
    # none (presets, --help) should not pay for.
    from nnfractal.studies import compare_sampled as cs
    if args.resume is not None:
        refuse_given_with_resume(args, RESUME_REFUSED, "nnfractal compare --resume COMPARE_DIR "
                                 "[--data-dir DIR] [--no-progress]")

        def resume() -> None:
            repair_for_resume(args.resume)
            finish = (cs.resume_compare if plan_method(args.resume) in cs.SAMPLED_METHODS
                      else compare.resume_box)     # box: also refuses a folder that is neither
            finish(args.resume, data_dir=args.data_dir, progress=not args.no_progress,
                   report=write_report)
        return resume
    method = args.method or "box"
    seeds = compare.DEFAULT_SEEDS if args.seeds is None else args.seeds
    if method not in ("box",) + cs.SAMPLED_METHODS:
        raise ConfigError("method", f"{method!r} is not allowed (allowed: box, "
                          f"{', '.join(cs.SAMPLED_METHODS)})")
    presets = args.presets or list(compare.DEFAULT_PRESETS)
    _check_input_files(presets, compare_overrides_from_args(args, presets[0]))
    if method == "box":
        for name in tuple(n for ns in ESTIMATOR_FLAGS.values() for n in ns):
            if getattr(args, name, None) is not None:
                raise ConfigError(name, "applies to --method uncertainty|transect only "
                                  "(allowed: leave it out with --method box)")
        windows = compare.DEFAULT_WINDOWS if args.windows is None else args.windows
        factor = compare.DEFAULT_FACTOR if args.factor is None else args.factor
        return lambda: compare.compare(
            presets, seeds=seeds, windows=windows, factor=factor, depths=args.depths,
            out=args.out, data_dir=args.data_dir, progress=not args.no_progress,
            max_storage=args.max_storage, report=write_report,
            **compare_overrides_from_args(args, presets[0]))
    for name in ("windows", "factor"):
        if getattr(args, name) is not None:
            raise ConfigError(name, f"applies to --method box only (allowed: leave it out with "
                              f"--method {method})")
    spec = spec_from_args(args)
    overrides = compare_overrides_from_args(args, presets[0])
    plan = cs.plan(presets, method=method, seeds=seeds, depths=args.depths, out=args.out,
                   spec=spec, max_storage=args.max_storage, **overrides)
    check_sampled_total(plan, spec, args.max_storage)
    return lambda: cs.compare_sampled(
        presets, method=method, seeds=seeds, depths=args.depths, out=args.out, spec=spec,
        data_dir=args.data_dir, progress=not args.no_progress, max_storage=args.max_storage,
        report=write_report, **overrides)


def check_sampled_total(plan, spec, max_storage: float | None) -> None:
    """Refuse a sampled comparison (`plan`: compare_sampled.SampledPlan, `spec` the estimator's
    SampleSpec) whose samples and transect placing maps together exceed the storage limit
    (ConfigError 'seeds'), as a single sample or a box comparison is: the study checks each
    sample alone."""
    from nnfractal.studies.compare_sampled import COARSE
    from nnfractal.studies.sample import resolve_spec, store_layout
    from nnfractal.training.budget import check_max_storage, check_storage
    from nnfractal.training.budget import estimate as budget_estimate
    per_seed, samples = 0.0, 0
    for group in plan.groups:
        for cfg in group.pair():
            rows, cols, _ = store_layout(cfg, resolve_spec(spec, cfg).evaluations)
            per_seed += rows * cols * budget_estimate(cfg).values_per_point * (
                8 if cfg.precision == "float64" else 4)
            if spec.method == "transect":
                per_seed += budget_estimate(cfg.replace(resolution=COARSE)).curves_bytes
            samples += 1
    seeds = plan.seeds
    check_storage(per_seed * seeds, "seeds", seeds, Path(plan.out),
                  f"the comparison: {samples * seeds:,} samples", check_max_storage(max_storage))


def _check_input_files(presets: list[str], overrides: dict) -> None:
    """An init file is refused (the comparison's seeds draw each architecture's weights, and two
    architectures have different parameters); a data file is read and checked against both
    architectures before anything trains (ConfigError / DataError naming the array)."""
    if overrides.get("init_file"):
        raise ConfigError("init_file", "is not allowed with compare, whose seeds draw each "
                          "architecture's initial weights (allowed: leave it out; nnfractal run "
                          "--init-file trains one map from given weights)")
    if overrides.get("data_file") and len(presets) == 2:
        from nnfractal.runner.run import resolve_input_files
        for cfg in pair_configs(*presets, **overrides)[:2]:
            resolve_input_files(cfg)
