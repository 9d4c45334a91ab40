"""`nnfractal sample`: its flags, its refusals and the report it writes (nnfractal/studies/sample.py
trains and analyses)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnfractal.config import ConfigError
from nnfractal.estimators.sampling import SamplingError
from nnfractal.report import write_report
from nnfractal.studies.sample import (
    RESUME_COMMAND,
    SampleSpec,
    default_sample_dir,
    resume_sample,
    sample,
    source_config,
)

from .common import add_run_flags, overrides_from_args, refuse_given_with_resume, repair_for_resume, run_resumable

ESTIMATOR_FLAGS = {"uncertainty": ("budget", "eps_min", "coarse", "floor_points"),
                   "transect": ("points", "lines", "angle", "direction", "center", "length")}


# What --resume reads from the folder, so refuses as a flag (with every config flag).
RESUME_REFUSED = ("method", "out", "max_storage", "sample_seed",
                  *(name for names in ESTIMATOR_FLAGS.values() for name in names))
RESUME_USAGE = "nnfractal sample --resume SAMPLE_DIR [--data-dir DIR] [--no-progress]"


def add_estimator_flags(p) -> None:
    """The estimators' flags (shared by `nnfractal sample` and `nnfractal compare`)."""
    p.add_argument("--budget", type=int, default=None,
                   help="uncertainty: evaluations in all (default 262144, one 512 x 512 grid)")
    p.add_argument("--eps-min", "--eps_min", type=float, dest="eps_min",
                   help="uncertainty: smallest pair distance in window units (default: 1e-9, or "
                   "what the precision resolves)")
    p.add_argument("--coarse", type=int, default=None,
                   help="uncertainty: points per side of the coarse map whose boundary cells hold "
                   "the first base points (default 64; 0 = uniform in the window)")
    p.add_argument("--floor-points", "--floor_points", type=int, default=None,
                   dest="floor_points",
                   help="uncertainty: base points per stage moved by the precision's smallest "
                   "step to measure the chaos floor (default budget / 64 within 512..4096: 4096 at "
                   "the default budget; 0 = none)")
    p.add_argument("--points", type=int, default=None,
                   help="transect: points per segment (default 16384)")
    p.add_argument("--lines", type=int, default=None,
                   help="transect: parallel segments (default 16)")
    p.add_argument("--angle", type=float, default=None,
                   help="transect: direction in degrees from the x axis, window units (default: "
                   "20 degrees from the boundary's mean direction in the coarse map, 30 where it "
                   "has none)")
    p.add_argument("--direction", nargs=2, type=float, metavar=("DX", "DY"),
                   help="transect: direction as a vector in axis units (instead of --angle)")
    p.add_argument("--center", "--centre", nargs=2, type=float, metavar=("X", "Y"),
                   help="transect: centre in axis units (default: the densest boundary of a "
                   "32 x 32 coarse map)")
    p.add_argument("--length", type=float,
                   help="transect: segment length in window units (default: the window's chord)")
    p.add_argument("--sample-seed", "--sample_seed", type=int, default=None, dest="sample_seed",
                   help="seed of the estimator's random points (default 0)")


def spec_from_args(args) -> SampleSpec:
    """The SampleSpec of the flags given; a flag of the other estimator is refused (ConfigError),
    never silently ignored."""
    for method, names in ESTIMATOR_FLAGS.items():
        for name in names:
            if args.method != method and getattr(args, name, None) is not None \
                    and args.method in ESTIMATOR_FLAGS:
                raise ConfigError(name, f"applies to --method {method} only (allowed: "
                                  f"leave it out with --method {args.method})")
    if args.angle is not None and args.direction is not None:
        raise ConfigError("angle", "and --direction both set the transect's direction (allowed: "
                          "one of them)")
    given = {k: getattr(args, k) for k in ("budget", "eps_min", "coarse", "floor_points",
                                           "points", "lines", "angle", "length")
             if getattr(args, k, None) is not None}
    return SampleSpec(method=args.method, seed=0 if args.sample_seed is None else args.sample_seed,
                      direction=tuple(args.direction) if args.direction else None,
                      center=tuple(args.center) if args.center else None, **given)


def add_sample_parser(sub) -> None:
    p = sub.add_parser(
        "sample", help="dimension by a sampling estimator (uncertainty exponent or transects): "
        "train only the sampled points, over many decades of scale",
        description="Train exactly the points a sampling estimator needs, with the same engine "
        "and store as a grid run, and estimate the boundary's dimension with a 95% interval.")
    p.add_argument("source", nargs="?", metavar="PRESET|RUN_DIR",
                   help="a preset, or a run folder whose network and window to sample")
    p.add_argument("--method", default=None,
                   help="uncertainty (default: pairs eps apart, eps over many decades) | transect "
                   "(sign changes along segments)")
    add_estimator_flags(p)
    p.add_argument("--resume", type=Path, metavar="SAMPLE_DIR",
                   help="finish an interrupted sample: train only its missing tiles")
    add_run_flags(p)
    p.set_defaults(preset=None)
    for action in p._actions:
        if action.dest == "preset":
            action.help = argparse.SUPPRESS


def cmd_sample(args) -> int:
    """`nnfractal sample`: refused input is one line and exit 2; Ctrl-C stops after the current
    chunk (exit 130, saying how to resume)."""
    folder: list[Path] = []

    def work() -> None:
        options = dict(data_dir=args.data_dir, progress=not args.no_progress,
                       report=write_report)
        if args.preset is not None:
            raise ConfigError("preset", "give it as the first argument (allowed: nnfractal "
                              "sample PRESET|RUN_DIR)")
        if args.resume is not None:
            if args.source is not None:
                raise ConfigError("source", f"{args.source!r} is not allowed with --resume "
                                  "(allowed: nnfractal sample --resume SAMPLE_DIR alone)")
            refuse_given_with_resume(args, RESUME_REFUSED, RESUME_USAGE)
            folder.append(args.resume)
            repair_for_resume(args.resume)
            resume_sample(args.resume, **options)
            return
        if args.source is None:
            raise ConfigError("source", "missing (allowed: a preset or a run folder, e.g. "
                              "nnfractal sample paper-tanh)")
        args.method = args.method or "uncertainty"
        cfg, source_run = source_config(args.source, overrides_from_args(args))
        spec = spec_from_args(args)
        out = args.out if args.out is not None else default_sample_dir(cfg, spec.method)
        folder.append(out)
        sample(spec, cfg, out, source_run=source_run, max_storage=args.max_storage, **options)

    def checked() -> None:
        try:
            work()
        except SamplingError as err:        # the estimators' refusal, as the config's
            raise ConfigError(err.field, str(err).split(": ", 1)[1]) from None

    return run_resumable(checked, folder, RESUME_COMMAND)
