"""Command line: ``nnfractal run [--preset NAME] [flags]``.

The CLI only parses flags into a validated `Config` and calls the library. Every refused input
prints one line, ``nnfractal: error: <field>: <what is wrong> (allowed: ...)``, and exits with 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, preset_names, resolve_config

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) with exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"nnfractal: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.description = ("Every flag left out takes the preset's value (nnfractal presets lists them); "
                     "a flag given wins over the preset, and a flag the config would not read is "
                     "refused.")
    p.add_argument("--preset", default=None,
                   help=f"preset name (default {DEFAULT_PRESET}): {', '.join(preset_names())}")
    p.add_argument("--out", type=Path, help="run folder (default runs/<preset>-<timestamp>)")
    p.add_argument("--data-dir", "--data_dir", type=Path, dest="data_dir",
                   help="folder holding MNIST's four IDX files, gzip or not (in it, in mnist/ or "
                   "in torchvision's MNIST/raw/); a folder without them is refused. Default "
                   "~/.cache/nnfractal, where the offline 5,000-image subset stands in")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_max_storage_flag(p)
    g = p.add_argument_group("model")
    g.add_argument("--model", help="resnet | meanfield-mlp | mlp")
    g.add_argument("--depth", type=int, help="ResNet depth 6n+2 (8, 14, 20, 32, 44, 56); MLP layers")
    g.add_argument("--skip", dest="skip", action="store_true", default=None, help="residual (default)")
    g.add_argument("--no-skip", dest="skip", action="store_false", help="plain network, no shortcuts")
    g.add_argument("--c_hidden", "--c-hidden", nargs="+", type=int, dest="c_hidden",
                   help="channels of the 3 stages, e.g. 16 32 64")
    g.add_argument("--nonlinearity", help="relu | leaky | tanh | identity")
    g.add_argument("--width", type=int, help="MLP hidden width")
    g.add_argument("--target-dim", "--target_dim", type=int, dest="target_dim",
                   help="mean-field MLP: regression target dimension")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="mnist | fashion-mnist | gaussian")
    g.add_argument("--train-size", "--train_size", type=int, dest="train_size",
                   help="training examples (gaussian data: 0 = as many as parameters)")
    g.add_argument("--batch_size", "--batch-size", type=int, dest="batch_size", help="0 = full batch")
    g.add_argument("--data-seed", "--data_seed", type=int, dest="data_seed",
                   help="seed of the training subset and the minibatch order")
    g = p.add_argument_group("training")
    g.add_argument("--num_epochs", "--num-epochs", type=int, dest="num_epochs",
                   help="passes over the training subset (one step for full-batch presets)")
    g.add_argument("--steps", type=int, help="optimisation steps (instead of --num_epochs; "
                   "either one replaces the preset's length of training)")
    g.add_argument("--optimizer", help="sgd | momentum | adam")
    g.add_argument("--momentum", type=float, help="--optimizer momentum: its coefficient")
    g.add_argument("--phase-space", "--phase_space", dest="phase_space", help="offset_vs_lr | lr_vs_lr")
    g.add_argument("--offset-target", "--offset_target", dest="offset_target", help="all | input")
    g.add_argument("--offset-mode", "--offset_mode", dest="offset_mode", help="init | every-step")
    g.add_argument("--base-lr", "--base_lr", type=float, dest="base_lr",
                   help="lr_vs_lr: learning rate of the hidden layers")
    g.add_argument("--precision", help="float32 | float64")
    g.add_argument("--device", help="cpu | cuda | auto")
    g.add_argument("--tile_batch", "--tile-batch", type=int, dest="tile_batch",
                   help="models trained together in one chunk (0 = auto: the measured best on "
                   "CPU, as many as fit in free memory on CUDA)")
    g.add_argument("--chunk-workers", "--chunk_workers", type=int, dest="chunk_workers",
                   help="CPU: chunks trained side by side, the torch threads split between them "
                   "(0 = auto: one per thread where measured faster, the ResNets)")
    g.add_argument("--matmul-precision", "--matmul_precision", dest="matmul_precision",
                   help="highest (default) | tf32 (CUDA) | bfloat16 (autocast): faster products "
                   "that move the boundary")
    g.add_argument("--compile", help="auto | on | off: torch.compile the fused kernels (auto: "
                   "runs large enough to repay the compile time)")
    g.add_argument("--no-fast-path", dest="fast_path", action="store_false", default=None,
                   help="autograd instead of the model's hand-written gradient")
    g.add_argument("--seed", type=int, help="initial weights seed")
    g.add_argument("--no-early-exit", dest="early_exit", action="store_false", default=None,
                   help="keep computing models whose weights turned NaN (same map, slower)")
    g = p.add_argument_group("grid and measure")
    g.add_argument("--mnmx", nargs="+", type=float,
                   help="lr_min lr_max offset_min offset_max (log10 exponents on log axes)")
    g.add_argument("--axis-scale", "--axis_scale", dest="axis_scale", help="log | linear")
    g.add_argument("--resolution", type=int, help="pixels per side")
    g.add_argument("--adaptive", action="store_true", default=None,
                   help="adaptive refinement: train a coarse lattice, then only the cells near the "
                   "boundary, down to the full resolution; fill the rest (trained.png shows which)")
    g.add_argument("--adaptive-coarse", "--adaptive_coarse", type=int, dest="adaptive_coarse",
                   help="points per side of the coarse lattice")
    g.add_argument("--adaptive-guard", "--adaptive_guard", type=int, dest="adaptive_guard",
                   help="guard band: pixels trained on each side of the boundary found")
    g.add_argument("--measure", help="paper (mean of the last 20 normalised losses < 1) | "
                   "customer (mean normalised loss < 1)")
    g.add_argument("--readout", nargs="+", help="the curve the map shows: train_loss | test_loss | "
                   "train_acc | test_acc, and/or step | epoch (per-step values or epoch means)")
    g.add_argument("--acc-threshold", "--acc_threshold", type=float, dest="acc_threshold",
                   help="accuracy maps: above the threshold iff final accuracy > this")
    g.add_argument("--eval_every", "--eval-every", type=int, dest="eval_every",
                   help="epochs between held-out evaluations (0 = none)")
    g.add_argument("--test-size", "--test_size", type=int, dest="test_size",
                   help="held-out images")
    g = p.add_argument_group("figures")
    g.add_argument("--dpi", type=int, help="dots per inch of the figures")
    g.add_argument("--figsize", nargs="+", type=float, help="width height (inches)")


def add_max_storage_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-storage", "--max_storage", type=float, dest="max_storage",
                   metavar="GIB", help="curves (uncompressed) allowed on disk, in GiB (default: "
                   "the free disk, at most 512): set it to allow a big run on purpose")


def _add_tile_flags(p: argparse.ArgumentParser) -> None:
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


CONFIG_FLAGS = ("model", "depth", "skip", "c_hidden", "nonlinearity", "width", "target_dim", "dataset",
                "train_size", "batch_size", "data_seed", "num_epochs", "steps", "optimizer",
                "momentum", "phase_space", "offset_target", "offset_mode", "base_lr", "precision",
                "device", "tile_batch", "chunk_workers", "seed", "mnmx", "axis_scale", "resolution",
                "measure", "dpi", "figsize", "acc_threshold", "eval_every", "test_size", "early_exit",
                "matmul_precision", "compile", "fast_path",
                "adaptive", "adaptive_coarse", "adaptive_guard")


DEFAULT_PRESET = "resnet20-mnist"


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The config values given as flags (field -> value; --readout split into metric/readout)."""
    from .config import METRICS, READOUTS
    overrides = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    for value in args.readout or ():
        if value in READOUTS:
            overrides["readout"] = value
        elif value in METRICS:
            overrides["metric"] = value
        else:
            raise ConfigError("readout", f"{value!r} is not allowed "
                              f"(allowed: {', '.join(METRICS + READOUTS)})")
    return overrides


def config_from_args(args: argparse.Namespace, log=None):
    """The run's config: the preset with every given flag winning over it (one line on stdout
    for each preset value a flag replaced in another field; stderr holds only the one line of a
    refusal); a flag the config would not read is refused (ConfigError), never ignored."""
    cfg, notes = resolve_config(args.preset or DEFAULT_PRESET, overrides_from_args(args), strict=True)
    for note in notes:
        (log or (lambda line: print(f"nnfractal: {line}")))(note)
    return cfg


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nnfractal",
                           description="Fractal trainability boundaries of neural networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="train a grid of networks and draw its convergence map")
    _add_run_flags(run)
    _add_tile_flags(run)
    sub.add_parser("presets", help="list the presets, what each trains, and the default")
    dim = sub.add_parser("dimension", help="recompute the fractal dimension of a finished run or "
                         "zoom sequence, without training")
    dim.add_argument("run_dir", type=Path)
    dim.add_argument("--fit-range", "--fit_range", nargs=2, type=float, dest="fit_range",
                     metavar=("S_MIN", "S_MAX"), help="box sizes (pixels) to fit between")
    dim.add_argument("--force", action="store_true", help="with --fit-range: give a dimension "
                     "even where the estimator's rule finds the boundary too short (labelled)")
    dim.add_argument("--method", default="box", help="box (default: least squares over the scaling "
                     "range, 95%% interval) | paper (median of local slopes)")
    dim.add_argument("--write", action="store_true",
                     help="with --fit-range: make this the run's dimension (rewrites fractal.json, "
                     "its figures, summary.json and report.html); without it the fit goes to a "
                     "named analysis folder <run>/dimension-fit-S_MIN-S_MAX/")
    for name in COMMAND_MODULES:
        module = _command_module(name)
        if module is not None:
            getattr(module, f"add_{name}_parser")(sub)
    return parser


# Subcommands that live in their own module: each defines add_<name>_parser(subparsers) and
# cmd_<name>(args) -> exit code.
COMMAND_MODULES = ("zoom", "compare", "sample", "report", "explore", "bench")


def _command_module(name: str):
    import importlib
    try:
        return importlib.import_module(f"nnfractal.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"nnfractal.{name}":
            raise
        return None


def run_guarded(work, keyboard: bool = True, resumable: bool = False) -> int:
    """Call work(); a refused input or a failed run becomes one line on stderr and exit code 2,
    Ctrl-C exit 130 (with keyboard=False, Ctrl-C propagates to the caller). resumable: a failed
    run's line says how to resume it (`nnfractal run`; zoom and compare folders do not survive)."""
    from .data import DataError
    from .run import RunFailed, RunFolderError
    from .store import StoreError
    try:
        work()
    except (ConfigError, DataError, RunFolderError, StoreError) as err:
        sys.stderr.write(f"nnfractal: error: {err}\n")
        return EXIT_USAGE
    except RunFailed as err:
        sys.stderr.write(f"nnfractal: error: {err if resumable else err.brief}\n")
        return EXIT_USAGE
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        sys.stderr.write(f"nnfractal: error: memory: out of memory ({' '.join(str(err).split())[:200]}) "
                         "(allowed: a run whose chunks fit; lower --tile_batch, --resolution or "
                         "--steps)\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        if not keyboard:
            raise
        sys.stderr.write("nnfractal: interrupted; nothing was written\n")
        return 130
    return 0


def is_out_of_memory(err: BaseException) -> bool:
    """A MemoryError, or torch's CUDA out-of-memory error (a RuntimeError subclass)."""
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def cmd_run(args) -> int:
    """`nnfractal run`: a new run, or --resume RUN_DIR. Ctrl-C stops after the current chunk
    (exit 130, saying how to resume); a failure mid-run is one line, exit 2, tiles kept."""
    from .run import RunInterrupted, default_out_dir, execute, resume
    folder: list[Path] = []          # the run folder, once known

    def work() -> None:
        options = dict(data_dir=args.data_dir, progress=not args.no_progress,
                       tile_rows=args.tile_rows, backend=args.backend, address=args.address)
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
            resume(args.resume, overrides_from_args(args), args.preset, **options)
        else:
            cfg = config_from_args(args)
            out = args.out if args.out is not None else default_out_dir(cfg)
            folder.append(out)
            execute(cfg, out, max_storage=args.max_storage, **options)

    try:
        return run_guarded(work, keyboard=False, resumable=True)
    except RunInterrupted as err:
        sys.stderr.write(f"nnfractal: {err}\n")
        return 130
    except KeyboardInterrupt:
        started = folder and (folder[0] / "config.toml").exists()
        sys.stderr.write("nnfractal: interrupted; " + (
            f"resume with: nnfractal run --resume {folder[0]}\n" if started else "nothing was written\n"))
        return 130


def cmd_dimension(args) -> int:
    from .run import describe, dimension_of
    from .store import StoreError
    try:
        result = dimension_of(args.run_dir, args.method, args.fit_range, write=args.write,
                              force=args.force, log=print)
    except (ConfigError, StoreError) as err:
        sys.stderr.write(f"nnfractal: error: {err}\n")
        return EXIT_USAGE
    print(f"{args.run_dir}: {describe(result)}")
    from .run import estimates_of
    for label, est in estimates_of(args.run_dir):        # every estimator, side by side
        print(f"  {label}: {describe(est)}")
    return 0


def preset_line(name: str) -> str:
    """One line of `nnfractal presets`: the name, '(default)' for the default, and what it trains,
    e.g. 'paper-tanh  meanfield-mlp tanh width 16, gaussian data, 500 steps, 64 x 64 grid of
    lr_vs_lr, float64'."""
    from .config import load_preset
    cfg = load_preset(name)
    if cfg.model == "resnet":
        arch = f"resnet-{cfg.depth}{'' if cfg.skip else ' plain'} {cfg.nonlinearity}"
    else:
        arch = f"{cfg.model} {cfg.nonlinearity} width {cfg.width}"
    length = f"{cfg.steps} steps" if cfg.steps else f"{cfg.num_epochs} epochs"
    extra = ", adaptive" if cfg.adaptive else ""
    tag = " (default)" if name == DEFAULT_PRESET else ""
    examples = ("as many examples as parameters" if not cfg.train_size else
                f"{cfg.train_size} example{'s' if cfg.train_size != 1 else ''}")
    return (f"{name + tag:30} {arch}, {cfg.dataset} data, {examples}, "
            f"{length}, {cfg.resolution} x {cfg.resolution} grid of {cfg.phase_space}, "
            f"{cfg.precision}{extra}")


def console_main() -> int:
    """The `nnfractal` command and `python -m nnfractal`: `main` on tcmalloc where it is installed
    (allocator.py restarts the process once). A call of `main` from Python never restarts."""
    from .allocator import restart_with_tcmalloc
    restart_with_tcmalloc()
    return main()


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGTERM is handled as Ctrl-C (clean-up runs, exit 130)."""
    from .backends import sigterm_as_interrupt
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
    if args.command in COMMAND_MODULES:
        return getattr(_command_module(args.command), f"cmd_{args.command}")(args)
    return cmd_run(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(console_main())
