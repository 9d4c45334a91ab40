"""What the commands share: the run's config flags (derived from `Config`), the parser whose
errors are the one refusal line, and the guard that turns a refused input or a failed run into
that line (errors.py) and its exit code.

cli.py and the command modules (zoom, compare, sample, report, explore, bench) take these from
here, so that no command imports cli.py (which imports them all).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from nnfractal.config import (
    DEFAULT_PRESET,
    INPUT_FILE_FACTS,
    METRICS,
    READOUTS,
    Config,
    ConfigError,
    preset_names,
    resolve_config,
)
from nnfractal.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DataError,
    RunFailed,
    RunFolderError,
    RunInterrupted,
    StoreError,
    refuse,
)
from nnfractal.models import families_reading, family_spec, model_names
from nnfractal.storage.run_folder import RunFolder

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "refuse", "OneLineParser", "add_run_flags",
           "add_max_storage_flag", "CONFIG_FLAGS", "DEFAULT_PRESET", "overrides_from_args",
           "config_from_args", "run_guarded", "is_out_of_memory", "refuse_given_with_resume",
           "resume_command_of", "folder_write_error"]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) with exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise SystemExit(refuse(message))


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.description = ("Every flag left out takes the preset's value (nnfractal presets lists them); "
                     "a flag given wins over the preset, and a flag the config would not read is "
                     "refused.")
    p.add_argument("--preset", default=None,
                   help=f"preset name (default {DEFAULT_PRESET}): {', '.join(preset_names())}")
    p.add_argument("--out", type=Path, help="run folder (default runs/<preset>-<timestamp>)")
    add_data_dir_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_max_storage_flag(p)
    g = p.add_argument_group("model")
    g.add_argument("--model", help=" | ".join(model_names()))
    g.add_argument("--depth", type=int, help="; ".join(f"{name}: {family_spec(name).depth_help}"
                                                       for name in model_names()))
    g.add_argument("--skip", dest="skip", action="store_true", default=None,
                   help=f"residual (default; {_models_reading('skip')})")
    g.add_argument("--no-skip", dest="skip", action="store_false", help="no shortcuts")
    g.add_argument("--c_hidden", "--c-hidden", nargs="+", type=int, dest="c_hidden",
                   help=f"channels of the 3 stages, e.g. 16 32 64 ({_models_reading('c_hidden')})")
    g.add_argument("--nonlinearity", help="relu | leaky | tanh | identity")
    g.add_argument("--width", type=int, help=f"hidden width ({_models_reading('width')})")
    g.add_argument("--target-dim", "--target_dim", type=int, dest="target_dim",
                   help=f"regression target dimension ({_models_reading('target_dim')})")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="mnist | fashion-mnist | gaussian")
    g.add_argument("--train-size", "--train_size", type=int, dest="train_size",
                   help="training examples (gaussian data: 0 = as many as parameters)")
    g.add_argument("--batch_size", "--batch-size", type=int, dest="batch_size", help="0 = full batch")
    g.add_argument("--data-seed", "--data_seed", type=int, dest="data_seed",
                   help="seed of the training subset and the minibatch order")
    g.add_argument("--data-file", "--data_file", dest="data_file", metavar="NPZ",
                   help="train on these arrays instead of drawing data (e.g. another tool's, to "
                   "compare maps pixel by pixel): x (N, width) and y (N, target_dim) floats for "
                   "regression; x (N, 1, 28, 28), y (N,) labels 0-9 and optionally x_test, "
                   "y_test for images. The run records its path and sha256")
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
    g.add_argument("--init-file", "--init_file", dest="init_file", metavar="NPZ",
                   help="initial weights of every model instead of drawing them from --seed: one "
                   "array per parameter, named and shaped as the model's (weights.0 (width, "
                   "width), weights.1 (width, target_dim) for meanfield-mlp). The run records "
                   "its path and sha256")
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


def _models_reading(field_name: str) -> str:
    """'model resnet' / 'models meanfield-mlp, mlp': the families whose size a flag sets."""
    names = families_reading(field_name)
    return f"model{'s' if len(names) > 1 else ''} {', '.join(names)}"


def add_data_dir_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", "--data_dir", type=Path, dest="data_dir",
                   help="folder holding MNIST's four IDX files, gzip or not (in it, in mnist/ or "
                   "in torchvision's MNIST/raw/); a folder without them is refused. Default "
                   "~/.cache/nnfractal, where the offline 5,000-image subset stands in")


def add_max_storage_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-storage", "--max_storage", type=float, dest="max_storage",
                   metavar="GIB", help="curves (uncompressed) allowed on disk, in GiB (default: "
                   "the free disk, at most 512): set it to allow a big run on purpose")


# Config fields without a flag of their own: the preset names the run; --readout sets readout
# and metric; minibatch sampling with replacement is a preset-only choice; the input files'
# hashes are recorded, not chosen.
NOT_FLAGS = ("preset", "readout", "metric", "minibatch_replacement", *INPUT_FILE_FACTS)
CONFIG_FLAGS = tuple(f.name for f in fields(Config) if f.name not in NOT_FLAGS)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The config values given as flags (field -> value; --readout split into metric/readout)."""
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


def run_guarded(work, keyboard: bool = True, resumable: bool = False) -> int:
    """Call work(); a refused input or a failed run becomes one line on stderr and exit code 2,
    Ctrl-C exit 130 (with keyboard=False, Ctrl-C propagates to the caller). resumable: a failed
    run's line says how to resume it."""
    try:
        work()
    except (ConfigError, DataError, RunFolderError, StoreError) as err:
        return refuse(err)
    except RunFailed as err:
        return refuse(err if resumable else err.brief)
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        return refuse(f"memory: out of memory ({' '.join(str(err).split())[:200]}) (allowed: a run "
                      "whose chunks fit; lower --tile_batch, --resolution or --steps)")
    except KeyboardInterrupt:
        if not keyboard:
            raise
        sys.stderr.write("nnfractal: interrupted; nothing was written\n")
        return EXIT_INTERRUPTED
    return 0


def run_resumable(work, folder: list, resume_command: str) -> int:
    """`run_guarded` for a command whose folder survives a stop (run, sample, zoom, compare):
    a failure says how to resume; Ctrl-C after a chunk exits 130 with the interrupt's own line
    (RunInterrupted); a Ctrl-C before that says how to resume once `folder[0]` has its
    config.toml, else that nothing was written."""
    try:
        return run_guarded(work, keyboard=False, resumable=True)
    except RunInterrupted as err:
        sys.stderr.write(f"nnfractal: {err}\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        started = folder and RunFolder(folder[0]).config_file.exists()
        sys.stderr.write("nnfractal: interrupted; " + (
            f"resume with: {resume_command} {folder[0]}\n" if started else "nothing was written\n"))
        return EXIT_INTERRUPTED


def refuse_given_with_resume(args: argparse.Namespace, names: tuple[str, ...], usage: str) -> None:
    """Refuse (ConfigError naming the first) any of `names` and any config flag given with
    --resume: a resumed folder's settings are in the folder, and a flag that would be ignored is
    refused, never silently dropped. `usage`: the allowed command line."""
    given = [n for n in names if getattr(args, n, None) not in (None, [], False)]
    given += [k for k in CONFIG_FLAGS if getattr(args, k, None) is not None]
    if getattr(args, "readout", None):
        given.append("readout")
    if given:
        raise ConfigError(given[0], f"not allowed with --resume (allowed: {usage}; the settings "
                          "are in the folder)")


# A result folder's kind by the file that only it holds -> the command that resumes it.
RESUMED_BY = (("zoom_plan.json", "nnfractal zoom --resume"), ("zoom.json", "nnfractal zoom --resume"),
              ("plan.json", "nnfractal compare --resume"), ("sample.json", "nnfractal sample --resume"))


def resume_command_of(folder: Path) -> str | None:
    """The command that resumes (and so trains again the damaged tiles of) a result folder, or
    None for one that cannot be resumed (a box comparison written before it had plan.json, an
    explorer session)."""
    folder = Path(folder)
    for name, command in RESUMED_BY:
        if (folder / name).exists():
            return command
    from nnfractal.studies.sample import is_sample_folder
    if is_sample_folder(folder):
        return "nnfractal sample --resume"
    if (folder / "compare.json").exists():
        return None
    return "nnfractal run --resume" if RunFolder(folder).holds_run() else None


STUDY_LOCKS = ("zoom_plan.json", "plan.json")     # the file a zoom's or comparison's lock is on


def repair_for_resume(folder: Path, log=print) -> None:
    """Before a --resume of `folder`: the damaged tiles of every store in it are marked as not
    trained (one line per store, `integrity.repair_folder`), and a unit nested in a study (a
    zoom's frame, a comparison's grid or sample) is trained again at once, by its own resume,
    so that a study that had finished holds whole units again before it is read. The study's
    lock is held meanwhile (a study another process holds is refused in one line)."""
    from contextlib import nullcontext

    from nnfractal.storage.integrity import repair_folder
    from nnfractal.storage.run_folder import lock_file
    folder = Path(folder)
    study_lock = next((folder / n for n in STUDY_LOCKS if (folder / n).is_file()), None)
    with lock_file(study_lock, folder) if study_lock else nullcontext():
        for store, _ in repair_folder(folder, log):
            if store.parent != folder:
                _resume_unit(store.parent, folder, log)


def _resume_unit(unit: Path, folder: Path, log) -> None:
    """Train the damaged tiles of a study's unit (a grid run or a sample) by its own resume; a
    stop or failure says how to resume the study."""
    from nnfractal.report import write_report
    from nnfractal.runner.run import resume
    from nnfractal.studies.sample import is_sample_folder, resume_sample
    command = resume_command_of(folder)
    try:
        if is_sample_folder(unit):
            resume_sample(unit, progress=False, log=log, report=write_report)
        else:
            resume(unit, progress=False, log=log, epoch_maps=False, report=write_report)
    except RunInterrupted:
        raise RunInterrupted(f"interrupted while training {unit} again; resume with: {command} "
                             f"{folder}") from None
    except RunFailed as err:
        raise RunFailed(err.brief, folder, command) from None


def folder_write_error(field_name: str, folder: Path, err: OSError, what: str) -> str:
    """The one line of a result folder that cannot be written (read-only, full)."""
    return (f"{field_name}: {folder} cannot be written ({err.strerror or type(err).__name__}) "
            f"(allowed: a folder this user can write; {what})")


def is_out_of_memory(err: BaseException) -> bool:
    """A MemoryError, or torch's CUDA out-of-memory error (a RuntimeError subclass)."""
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


