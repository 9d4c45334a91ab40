"""Command line: ``nnfractal run [--preset NAME] [flags]``.

The CLI only parses flags into a validated `Config` and calls the library. Every refused input
prints one line, ``nnfractal: error: <field>: <what is wrong> (allowed: ...)``, and exits with 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nnfractal.config import ConfigError, load_preset, preset_names
from nnfractal.errors import RunFolderError, StoreError, refuse
from nnfractal.estimators.sampling import SAMPLING_METHODS as SAMPLE_METHODS
from nnfractal.models import arch_label

from . import bench, compare, explore, report, sample, zoom
from . import run as run_cmd
from .common import (
    CONFIG_FLAGS,
    DEFAULT_PRESET,
    EXIT_USAGE,
    OneLineParser,
    add_max_storage_flag,
    add_run_flags,
    config_from_args,
    folder_write_error,
    is_out_of_memory,
    overrides_from_args,
    resume_command_of,
    run_guarded,
)

# The names commands and tests knew from here; their home is cli/common.py.
__all__ = ["CONFIG_FLAGS", "DEFAULT_PRESET", "EXIT_USAGE", "OneLineParser", "add_max_storage_flag",
           "config_from_args", "is_out_of_memory", "overrides_from_args", "run_guarded", "main",
           "console_main", "make_parser"]
_add_run_flags = add_run_flags

# 128 + SIGPIPE: the status a shell reports for a tool that SIGPIPE ended because its reader went
# away (`yes | head -1`). Not 0: the output was cut, and `set -o pipefail` should see it as for
# any other tool.
EXIT_BROKEN_PIPE = 141

# Subcommands defined in their own module: name -> (add its parser to the subparsers, run it
# from the parsed flags -> exit code).
SUBCOMMANDS = {
    "zoom": (zoom.add_zoom_parser, zoom.cmd_zoom),
    "compare": (compare.add_compare_parser, compare.cmd_compare),
    "sample": (sample.add_sample_parser, sample.cmd_sample),
    "report": (report.add_report_parser, report.cmd_report),
    "explore": (explore.add_explore_parser, explore.cmd_explore),
    "bench": (bench.add_bench_parser, bench.cmd_bench),
}

# The commands that train a result folder, each with its variants (its --method values): every
# one holds the fault table of docs/reference/faults.md, and tests/test_fault_table.py has a
# row for each variant. Every other command is in OTHER_COMMANDS; the test fails for a command
# in neither, so a new command that trains cannot join without its row.
TRAINING_COMMANDS = {
    "run": ("grid",),
    "zoom": ("grid",),
    "compare": ("box",) + SAMPLE_METHODS,
    "sample": SAMPLE_METHODS,
}
OTHER_COMMANDS = {
    "presets": "lists presets",
    "dimension": "reads a result folder (refuses a damaged or edited store)",
    "report": "reads a result folder (refuses a damaged or edited store)",
    "explore": "an interactive server; its windows are tested in test_explore.py",
    "bench": "timings; writes no result folder",
}


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nnfractal",
                           description="Fractal trainability boundaries of neural networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="train a grid of networks and draw its convergence map")
    add_run_flags(run)
    run_cmd.add_tile_flags(run)
    sub.add_parser("presets", help="list the presets, what each trains, and the default")
    dim = sub.add_parser("dimension", help="recompute the fractal dimension of a finished run or "
                         "zoom sequence, without training")
    dim.add_argument("run_dir", type=Path)
    dim.add_argument("--fit-range", "--fit_range", nargs=2, type=float, dest="fit_range",
                     metavar=("S_MIN", "S_MAX"), help="box sizes (pixels) to fit between")
    dim.add_argument("--force", action="store_true", help="with --fit-range: give a dimension "
                     "even where the estimator's rule finds the boundary too short (labelled)")
    dim.add_argument("--method", default=None, help="box (default: least squares over the scaling "
                     "range, 95%% interval) | paper (median of local slopes)")
    dim.add_argument("--write", action="store_true",
                     help="with --fit-range: make this the run's dimension (rewrites fractal.json, "
                     "its figures, summary.json and report.html); without it the fit goes to a "
                     "named analysis folder <run>/dimension-fit-S_MIN-S_MAX/")
    for add_parser, _ in SUBCOMMANDS.values():
        add_parser(sub)
    return parser


def cmd_dimension(args) -> int:
    from nnfractal.runner.run import describe, estimates_of
    from nnfractal.storage.integrity import checked_folder
    from nnfractal.studies.sample import is_sample_folder

    from .dimension import dimension_of  # torch: as cmd_run
    try:
        sample = is_sample_folder(args.run_dir)
        if sample:
            _check_sample_dimension_flags(args)
        # a sample reads its blocks from zarr, not through read_curves: keeping them is no use
        with checked_folder(args.run_dir, resume_command_of(args.run_dir), keep=not sample):
            result = dimension_of(args.run_dir, args.method or "box", args.fit_range,
                                  write=args.write, force=args.force, log=print)
    except (ConfigError, StoreError, RunFolderError) as err:
        return refuse(err)
    except OSError as err:
        return refuse(folder_write_error("run_dir", args.run_dir, err, "dimension rewrites the "
                                         "folder's fractal.json, figures and report.html"))
    print(f"{args.run_dir}: {describe(result)}")
    for label, est in estimates_of(args.run_dir):        # every estimator, side by side
        print(f"  {label}: {describe(est)}")
    return 0


def _check_sample_dimension_flags(args) -> None:
    """A sample folder recomputes its own estimator: --method, --write and --force, which choose
    among the box-counting estimates of a grid, are refused rather than ignored."""
    for name in ("method", "write", "force"):
        if getattr(args, name) not in (None, False):
            raise ConfigError(name, "does not apply to a sample folder, which recomputes its own "
                              "estimator (allowed: nnfractal dimension SAMPLE_DIR alone)")


def preset_line(name: str) -> str:
    """One line of `nnfractal presets`: the name, '(default)' for the default, and what it trains,
    e.g. 'paper-tanh  meanfield-mlp (mean-field MLP, 2 layers x 16, tanh), gaussian data,
    500 steps, 64 x 64 grid of lr_vs_lr, float64'."""
    cfg = load_preset(name)
    arch = f"{cfg.model} ({arch_label(cfg)})"
    length = f"{cfg.steps} steps" if cfg.steps else f"{cfg.num_epochs} epochs"
    extra = ", adaptive" if cfg.adaptive else ""
    tag = " (default)" if name == DEFAULT_PRESET else ""
    examples = ("as many examples as parameters" if not cfg.train_size else
                f"{cfg.train_size} example{'s' if cfg.train_size != 1 else ''}")
    return (f"{name + tag:30} {arch}, {cfg.dataset} data, {examples}, "
            f"{length}, {cfg.resolution} x {cfg.resolution} grid of {cfg.phase_space}, "
            f"{cfg.precision}{extra}")


def console_main() -> int:
    """`main` as the `nnfractal` command runs it (cli/start.py calls it, after the allocator's
    restart). A call of `main` from Python never restarts.

    Output piped into a reader that stopped reading (``nnfractal presets | head -1``) ends the
    command quietly with EXIT_BROKEN_PIPE, as SIGPIPE ends other Unix tools, instead of a
    BrokenPipeError traceback."""
    try:
        try:
            return main()
        finally:
            sys.stdout.flush()          # buffered lines meet a closed pipe here, or at exit
    except BrokenPipeError:
        # Python flushes stdout once more at exit: point it at /dev/null so that this flush
        # cannot fail (and print "Exception ignored ... BrokenPipeError") again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGTERM is handled as Ctrl-C (clean-up runs, exit 130)."""
    from nnfractal.runner.backends import sigterm_as_interrupt  # torch: as cmd_run
    args = make_parser().parse_args(argv)
    with sigterm_as_interrupt():
        return _dispatch(args)


def _dispatch(args) -> int:
    if args.command == "presets":
        for name in preset_names():
            print(preset_line(name))
        return 0
    if args.command == "dimension":
        return cmd_dimension(args)
    if args.command in SUBCOMMANDS:
        return SUBCOMMANDS[args.command][1](args)
    return run_cmd.cmd_run(args)


if __name__ == "__main__":  # pragma: no cover
    from nnfractal.cli.start import console_main as start
    raise SystemExit(start())
