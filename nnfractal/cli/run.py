"""`nnfractal run`: a new grid run or `--resume RUN_DIR`, its tile flags, and its report."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnfractal.config import ConfigError
from nnfractal.report import write_report
from nnfractal.storage.run_folder import RunFolder

from .common import config_from_args, overrides_from_args, repair_for_resume, run_resumable


def add_tile_flags(p: argparse.ArgumentParser) -> None:
    """Flags of `nnfractal run` only: how the grid is stored, resumed and spread over machines."""
    g = p.add_argument_group("tiles, resuming, clusters")
    g.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="finish an interrupted run: train only its missing tiles (config flags "
                        "given with it must match the run's config.toml)")
    g.add_argument("--tile-rows", "--tile_rows", type=int, dest="tile_rows",
                   help="grid rows per tile, the unit that is stored, resumed and sent to a Ray "
                        "task (default: whole chunks of about 1024 points)")
    g.add_argument("--backend", default="local",
                   help="local (default: this process) | ray (one Ray task per tile)")
    g.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local "
                   "Ray instance on this machine's CPUs and GPUs)")
    g.add_argument("--checkpoint-every", "--checkpoint_every", type=float, dest="checkpoint_every",
                   default=None, metavar="SECONDS",
                   help="write the finished chunks of an unfinished tile this often (default 60)")
    add_chaos_flags(p)


RUN_CHAOS_HELP = ("chaos.png, summary.json chaos_fraction; about doubles the training; with "
                  "--resume: add it to a run")


def add_chaos_flags(p: argparse.ArgumentParser, what: str = RUN_CHAOS_HELP,
                    title: str = "chaos map") -> None:
    """--chaos and --chaos-ulps: a twin of every trained pixel, and the map of the flips."""
    g = p.add_argument_group(title)
    g.add_argument("--chaos", action="store_true",
                   help="also train a twin of every trained pixel with both hyperparameters moved "
                        f"by a few rounding units, and map the pixels whose outcome flips ({what})")
    g.add_argument("--chaos-ulps", "--chaos_ulps", dest="chaos_ulps", default=None,
                   metavar="K", help="the twins' distance in rounding units of the run's "
                   "precision, a whole number >= 1 (default 4; implies --chaos)")


def cmd_run(args) -> int:
    """`nnfractal run`: a new run, or --resume RUN_DIR, and its report.html. Ctrl-C stops after
    the current chunk (exit 130, saying how to resume); a failure mid-run is one line, exit 2,
    tiles kept."""
    # Here, not at the top: run.py loads torch (seconds), which `nnfractal presets` and --help
    # need not load.
    from nnfractal.runner.chaos import DEFAULT_ULPS
    from nnfractal.runner.run import default_out_dir, execute, resume
    folder: list[Path] = []          # the run folder, once known

    def work() -> None:
        options = dict(data_dir=args.data_dir, progress=not args.no_progress,
                       tile_rows=args.tile_rows, backend=args.backend, address=args.address,
                       report=write_report, chaos_ulps=chaos_ulps_of(args))
        if args.resume is None and args.chaos and options["chaos_ulps"] is None:
            options["chaos_ulps"] = DEFAULT_ULPS
        if args.checkpoint_every is not None:
            if not args.checkpoint_every >= 0:
                raise ConfigError("checkpoint_every", f"{args.checkpoint_every} is not allowed "
                                  "(allowed: seconds >= 0)")
            options["checkpoint_s"] = args.checkpoint_every
        if args.resume is not None:
            if args.out is not None and args.out.resolve() != args.resume.resolve():
                raise ConfigError("out", f"{args.out} is not allowed with --resume "
                                  f"(allowed: leave it out; the run folder is {args.resume})")
            folder.append(args.resume)
            if RunFolder(args.resume).holds_run():      # else resume says what is missing
                repair_for_resume(args.resume)
            resume(args.resume, overrides_from_args(args), args.preset, chaos_wanted=args.chaos,
                   **options)
        else:
            cfg = config_from_args(args)
            out = args.out if args.out is not None else default_out_dir(cfg)
            folder.append(out)
            execute(cfg, out, max_storage=args.max_storage, **options)

    return run_resumable(work, folder, "nnfractal run --resume")




def chaos_ulps_of(args) -> int | None:
    """--chaos-ulps K checked (ConfigError for a distance below one rounding unit), else None."""
    from nnfractal.runner.chaos import check_ulps
    return check_ulps(args.chaos_ulps) if args.chaos_ulps is not None else None
