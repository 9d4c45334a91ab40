"""One validated configuration for a run, built from a TOML preset plus overrides.

Every field is checked once, here; the rest of the code trusts a `Config`. A bad value raises
`ConfigError`, whose message is one line naming the field and the allowed values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from nnfractal.models.registry import DEFAULT_MODEL, check_family_fields, family_spec, model_names

from .errors import ConfigError, check_choice, check_int_at_least, is_int
from .window import Window

PRESET_PACKAGE = "nnfractal.presets"
DEFAULT_PRESET = "resnet20-mnist"      # what `nnfractal run` trains when no preset is named

NONLINEARITIES = ("relu", "leaky", "tanh", "identity")
OPTIMIZERS = ("sgd", "momentum", "adam")
PHASE_SPACES = ("offset_vs_lr", "lr_vs_lr")
OFFSET_TARGETS = ("all", "input")
OFFSET_MODES = ("init", "every-step")
DATASETS = ("mnist", "fashion-mnist", "gaussian")
MEASURES = ("paper", "customer")
READOUTS = ("step", "epoch")
METRICS = ("train_loss", "test_loss", "train_acc", "test_acc")
PRECISIONS = ("float32", "float64")
DEVICES = ("cpu", "cuda", "auto")
AXIS_SCALES = ("log", "linear")
COMPILE_MODES = ("auto", "on", "off")
MATMUL_PRECISIONS = ("highest", "tf32", "bfloat16")
__all__ = ["Config", "ConfigError", "validate"]   # ConfigError: defined in errors.py, raised here


@dataclass(frozen=True)
class Config:
    """Everything that determines a run's numbers (and a few display settings).

    Axes follow the paper's code: ``mnmx = (y_min, y_max, x_min, x_max)``. The y axis (rows) is the
    learning rate (for ``lr_vs_lr``: the output layer's), the x axis (columns) is the weight offset
    (for ``lr_vs_lr``: the input layer's learning rate). With ``axis_scale = "log"`` the four numbers
    are base-10 exponents, as in the paper's ``gen_img``; with ``"linear"`` they are plain values.
    """

    preset: str = "custom"
    # model
    model: str = DEFAULT_MODEL   # a registered model family (models/registry.py)
    depth: int = 20
    skip: bool = True
    c_hidden: tuple[int, ...] = (16, 32, 64)
    nonlinearity: str = "relu"
    width: int = 16            # mean-field MLP: hidden width (= input dimension, as in the paper)
    target_dim: int = 1        # mean-field MLP: regression target dimension
    # data
    dataset: str = "mnist"
    train_size: int = 160      # MNIST images, or regression points (0 = number of parameters)
    batch_size: int = 32       # 0 = full batch
    minibatch_replacement: bool = False
    data_seed: int = 0
    # Replaying another tool's experiment: the data (x, y arrays) and initial weights (one array
    # per parameter) read from .npz files instead of drawn (training/data.py, models/input_files.py).
    # The run records each file's absolute path and sha256; a changed file is refused on resume.
    data_file: str = ""        # "" = the dataset above
    data_sha256: str = ""      # recorded when the run is planned (runs/run.py)
    init_file: str = ""        # "" = weights drawn from `seed`
    init_sha256: str = ""
    # training
    num_epochs: int = 5
    steps: int = 0             # optimisation steps; 0 = num_epochs passes over the training set
    optimizer: str = "sgd"
    momentum: float = 0.9
    phase_space: str = "offset_vs_lr"
    offset_target: str = "all"
    offset_mode: str = "init"
    base_lr: float = 0.1       # lr_vs_lr: learning rate of the layers between input and output
    precision: str = "float32"
    device: str = "cpu"
    tile_batch: int = 16       # models trained together in one chunk (0 = auto: fit memory)
    chunk_workers: int = 0     # CPU: chunks trained side by side, threads split (0 = auto)
    early_exit: bool = True    # stop computing models whose weights turned NaN (same map, less work)
    fast_path: bool = True     # the model's hand-written gradient where it has one (else autograd)
    compile: str = "auto"      # torch.compile the fast path's fused kernels: auto | on | off
    # Products (convolutions, matmuls) in the storage precision ("highest"), or, only on request
    # because it moves the boundary, TF32 tensor cores (CUDA) or bfloat16 autocast (CUDA, CPU).
    matmul_precision: str = "highest"
    seed: int = 0              # initial weights
    # grid
    mnmx: tuple[float, float, float, float] = (-3.0, 0.0, -3.0, 0.0)
    axis_scale: str = "log"
    resolution: int = 16
    # adaptive refinement (adaptive.py): train a coarse lattice, refine only near the boundary
    adaptive: bool = False
    adaptive_coarse: int = 64  # points per side of the coarse lattice (its stride: a power of two)
    adaptive_guard: int = 12   # pixels trained on each side of the boundary (the guard band)
    # held-out evaluation
    eval_every: int = 1        # epochs between held-out evaluations (0 = none)
    test_size: int = 1000      # held-out MNIST test images
    # measure
    measure: str = "paper"
    readout: str = "step"      # step: per-step curve; epoch: mean over each epoch's steps
    metric: str = "train_loss"  # which recorded curve the map shows
    acc_threshold: float = 0.9  # accuracy metrics: converged iff final accuracy > this
    # display
    dpi: int = 100
    figsize: tuple[float, float] = (6.0, 5.0)

    # ---- derived values -------------------------------------------------------------------
    @property
    def full_batch(self) -> bool:
        return self.batch_size == 0

    def replace(self, **changes: Any) -> Config:
        return validate(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


def _check_window(cfg: Config) -> None:
    """mnmx: four finite numbers in the order y_min y_max x_min x_max, each range increasing,
    within float64's exponents on log axes, positive learning rates on linear ones."""
    if len(cfg.mnmx) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and math.isfinite(v) for v in cfg.mnmx):
        raise ConfigError("mnmx", f"{list(cfg.mnmx)} is not allowed (allowed: four finite numbers "
                          "lr_min lr_max offset_min offset_max)")
    window = Window.from_mnmx(cfg.mnmx, cfg.axis_scale)
    if not (window.y0 < window.y1 and window.x0 < window.x1):
        raise ConfigError("mnmx", f"{list(cfg.mnmx)} is not allowed (allowed: lr_min < lr_max and "
                          "offset_min < offset_max, in the order lr_min lr_max offset_min offset_max)")
    if cfg.axis_scale == "log" and max(abs(v) for v in cfg.mnmx) > 300:
        raise ConfigError("mnmx", f"{list(cfg.mnmx)} is not allowed (allowed: base-10 exponents "
                          "between -300 and 300 with axis_scale log)")
    if cfg.axis_scale == "linear" and cfg.phase_space == "lr_vs_lr" and min(window.x0, window.y0) <= 0:
        raise ConfigError("mnmx", f"{list(cfg.mnmx)} is not allowed (allowed: positive learning "
                          "rates with a linear lr_vs_lr grid)")
    if cfg.axis_scale == "linear" and window.y0 <= 0:
        raise ConfigError("mnmx", f"{list(cfg.mnmx)} is not allowed (allowed: positive learning "
                          "rates lr_min lr_max)")


def validate(cfg: Config) -> Config:
    """Check every field; return `cfg` unchanged or raise `ConfigError`."""
    check_choice("model", cfg.model, model_names())
    check_choice("nonlinearity", cfg.nonlinearity, NONLINEARITIES)
    check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    check_choice("phase_space", cfg.phase_space, PHASE_SPACES)
    check_choice("offset_target", cfg.offset_target, OFFSET_TARGETS)
    check_choice("offset_mode", cfg.offset_mode, OFFSET_MODES)
    check_choice("dataset", cfg.dataset, DATASETS)
    check_choice("measure", cfg.measure, MEASURES)
    check_choice("readout", cfg.readout, READOUTS)
    check_choice("metric", cfg.metric, METRICS)
    check_choice("precision", cfg.precision, PRECISIONS)
    check_choice("device", cfg.device, DEVICES)
    check_choice("axis_scale", cfg.axis_scale, AXIS_SCALES)
    check_choice("compile", cfg.compile, COMPILE_MODES)
    check_choice("matmul_precision", cfg.matmul_precision, MATMUL_PRECISIONS)
    if cfg.matmul_precision != "highest" and cfg.precision == "float64":
        raise ConfigError("matmul_precision", f"{cfg.matmul_precision!r} is not allowed with "
                          "precision float64 (allowed: highest)")
    if cfg.matmul_precision == "tf32" and cfg.device == "cpu":
        raise ConfigError("matmul_precision", "'tf32' is not allowed with device cpu: TF32 is a "
                          "CUDA tensor-core format (allowed on cpu: highest, bfloat16)")
    if not isinstance(cfg.skip, bool):
        raise ConfigError("skip", f"{cfg.skip!r} is not allowed (allowed: true, false)")
    if not isinstance(cfg.early_exit, bool):
        raise ConfigError("early_exit", f"{cfg.early_exit!r} is not allowed (allowed: true, false)")
    if not isinstance(cfg.fast_path, bool):
        raise ConfigError("fast_path", f"{cfg.fast_path!r} is not allowed (allowed: true, false)")
    if not isinstance(cfg.minibatch_replacement, bool):
        raise ConfigError("minibatch_replacement", f"{cfg.minibatch_replacement!r} is not allowed "
                          "(allowed: true, false)")
    if not isinstance(cfg.adaptive, bool):
        raise ConfigError("adaptive", f"{cfg.adaptive!r} is not allowed (allowed: true, false)")
    check_int_at_least("adaptive_coarse", cfg.adaptive_coarse, 2)
    check_int_at_least("adaptive_guard", cfg.adaptive_guard, 0)
    check_family_fields(cfg)             # the family's own fields (depth, c_hidden) and its data
    check_int_at_least("width", cfg.width, 1)
    check_int_at_least("target_dim", cfg.target_dim, 1)
    check_int_at_least("train_size", cfg.train_size, 0 if cfg.dataset == "gaussian" else 1)
    check_int_at_least("batch_size", cfg.batch_size, 0)
    check_int_at_least("data_seed", cfg.data_seed, 0)
    _check_input_file(cfg, "data_file", "data_sha256")
    _check_input_file(cfg, "init_file", "init_sha256")
    check_int_at_least("seed", cfg.seed, 0)
    # num_epochs = 0 is how a config that counts in steps records "not used" (see _normalised)
    check_int_at_least("num_epochs", cfg.num_epochs, 0 if cfg.steps else 1)
    check_int_at_least("steps", cfg.steps, 0)
    check_int_at_least("tile_batch", cfg.tile_batch, 0)
    check_int_at_least("chunk_workers", cfg.chunk_workers, 0)
    check_int_at_least("resolution", cfg.resolution, 2)
    check_int_at_least("dpi", cfg.dpi, 10)
    check_int_at_least("eval_every", cfg.eval_every, 0)
    check_int_at_least("test_size", cfg.test_size, 1)
    if not isinstance(cfg.acc_threshold, (int, float)) or not 0 < cfg.acc_threshold < 1:
        raise ConfigError("acc_threshold", f"{cfg.acc_threshold!r} is not allowed (allowed: 0 < x < 1)")
    recorded = recorded_metrics(cfg)
    if cfg.metric not in recorded:
        raise ConfigError("readout", f"{cfg.metric!r} is not recorded by this run "
                          f"(allowed: {', '.join(recorded)})")
    if cfg.minibatch_replacement and cfg.full_batch:
        raise ConfigError("batch_size", "0 (full batch) is not allowed with minibatch_replacement "
                          "(allowed: an integer >= 1)")
    if cfg.dataset != "gaussian" and cfg.batch_size > cfg.train_size:
        raise ConfigError("batch_size", f"{cfg.batch_size} is not allowed "
                          f"(allowed: 0 (full batch) to train_size = {cfg.train_size})")
    for name in ("momentum", "base_lr"):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(name, f"{value!r} is not allowed (allowed: a finite number)")
    _check_window(cfg)
    if len(cfg.figsize) != 2 or not all(isinstance(v, (int, float)) and 0 < v <= 100
                                        for v in cfg.figsize):
        raise ConfigError("figsize", f"{list(cfg.figsize)} is not allowed "
                          "(allowed: two positive numbers, inches)")
    _check_picture_size(cfg.dpi, cfg.figsize)
    return cfg


def _check_input_file(cfg: Config, name: str, sha_name: str) -> None:
    """A path (str) and its recorded sha256: 64 lowercase hex digits, or "" (not recorded yet)."""
    path, sha = getattr(cfg, name), getattr(cfg, sha_name)
    if not isinstance(path, str):
        raise ConfigError(name, f"{path!r} is not allowed (allowed: the path of an .npz file)")
    if not isinstance(sha, str) or (sha and not _is_sha256(sha)):
        raise ConfigError(sha_name, f"{sha!r} is not allowed (allowed: 64 hex digits, or empty)")
    if sha and not path:
        raise ConfigError(sha_name, f"{sha[:12]}... is recorded without a {name} (allowed: "
                          f"empty without {name})")


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


# Recorded facts of the input files, not choices: filled in when a run is planned, so a config
# built again from its preset lacks them (resume compares choices only).
INPUT_FILE_FACTS = ("data_sha256", "init_sha256")
# Set from the data file's arrays when it is given (the number of examples it holds).
DATA_FILE_SIZES = ("train_size", "test_size")


# A picture can be drawn when its larger side is at most this many pixels (an RGBA canvas of
# 16384 x 16384 is 1 GiB; Agg refuses sides of 2**16 and more).
MAX_PICTURE_PIXELS = 16384
# Fields that only change how the pictures look: they may change on --resume.
DRAWING_FIELDS = ("dpi", "figsize")


def _check_picture_size(dpi: int, figsize) -> None:
    """Refuse dpi x figsize beyond MAX_PICTURE_PIXELS a side (a picture that can never be drawn)."""
    side = max(figsize) * dpi
    if side > MAX_PICTURE_PIXELS:
        top = int(MAX_PICTURE_PIXELS // max(figsize))
        raise ConfigError("dpi", f"{dpi} with figsize {figsize[0]:g} x {figsize[1]:g} inches makes "
                          f"pictures {int(figsize[0] * dpi)} x {int(figsize[1] * dpi)} pixels "
                          f"(allowed: at most {MAX_PICTURE_PIXELS} pixels a side: dpi 10 to {top} "
                          f"at this figsize)")


def recorded_metrics(cfg: Config) -> tuple[str, ...]:
    """The curves a run of `cfg` records: training loss always; accuracy for classifiers; held-out
    loss and accuracy when eval_every > 0 and a held-out set exists (MNIST-like data)."""
    if cfg.dataset == "gaussian":
        return ("train_loss",)
    if cfg.eval_every == 0:
        return ("train_loss", "train_acc")
    return METRICS


# ---- presets --------------------------------------------------------------------------------

def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir()
                  if p.name.endswith(".toml"))


def _coerce(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Check keys and types of a TOML table against the dataclass; tuples for list fields."""
    known = {f.name: f for f in fields(Config)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(key, f"unknown key in {where} (allowed: {', '.join(sorted(known))})")
        default = known[key].default
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise ConfigError(key, f"{value!r} is not allowed (allowed: a list)")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(key, f"{value!r} is not allowed (allowed: true, false)")
        elif isinstance(default, int):
            if not is_int(value):
                raise ConfigError(key, f"{value!r} is not allowed (allowed: an integer)")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(key, f"{value!r} is not allowed (allowed: a number)")
            value = float(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(key, f"{value!r} is not allowed (allowed: a string)")
        if key in ("data_file", "init_file") and value:
            value = absolute_path(value)
        out[key] = value
    return out


def absolute_path(path: str | Path) -> str:
    """`path` made absolute (~ expanded, symlinks resolved): a run records where its input files
    are, so that --resume, `nnfractal sample RUN_DIR` and Ray workers find them from any folder."""
    return str(Path(path).expanduser().resolve())


def load_preset(name: str) -> Config:
    """The preset `name` (a TOML file in nnfractal/presets), validated."""
    names = preset_names()
    if name not in names:
        raise ConfigError("preset", f"{name!r} is not allowed (allowed: {', '.join(names)})")
    text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text()
    raw = tomllib.loads(text)
    return _normalised(validate(Config(preset=name, **_coerce(raw, f"preset {name}"))))


def _normalised(cfg: Config) -> Config:
    """A config that counts in steps records num_epochs = 0, so that config.toml never holds a
    num_epochs that did not run (steps > 0 decides the length of training)."""
    return dataclasses.replace(cfg, num_epochs=0) if cfg.steps and cfg.num_epochs else cfg


def config_from_toml(path: Path) -> Config:
    """A resolved config written by `to_toml` (e.g. a run folder's config.toml)."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError("config", f"{path} is not a readable TOML file ({err})") from None
    return validate(Config(**_coerce(raw, str(path))))


def config_from_dict(raw: dict[str, Any], where: str = "config") -> Config:
    """A config from its fields as `Config.to_dict` (or JSON) gives them, checked as config.toml
    is (ConfigError naming the field)."""
    return validate(Config(**_coerce(raw, where)))


def build_config(preset: str = DEFAULT_PRESET, **overrides: Any) -> Config:
    """Preset values, then every override that is not None (the override wins; see
    `resolve_config`)."""
    return resolve_config(preset, overrides)[0]


def resolve_config(preset: str, overrides: dict[str, Any], strict: bool = False
                   ) -> tuple[Config, list[str]]:
    """The preset with `overrides` (field -> value; None = not given) applied, and one line per
    preset value that an override replaced in another field.

    The more specific word wins: an override beats the preset, also across the two ways of
    giving the length of training: num_epochs given on a preset that sets steps clears the
    preset's steps, and steps given on a preset that sets num_epochs makes num_epochs unused (0).
    Both given is refused. With `strict` (the command line), an override of a field this config
    never reads (`unused_fields`) is refused too: no flag is ever silently ignored.
    """
    base = load_preset(preset)
    given = {k: v for k, v in overrides.items() if v is not None}
    notes: list[str] = []
    if given.get("steps") and "num_epochs" in given:
        raise ConfigError("steps", f"{given['steps']} and num_epochs {given['num_epochs']} are both "
                          "given (allowed: one of them: --steps counts optimisation steps, "
                          "--num_epochs passes over the training set)")
    if "num_epochs" in given and base.steps and "steps" not in given:
        given["steps"] = 0
        notes.append(f"num_epochs = {given['num_epochs']} replaces preset {preset}'s "
                     f"steps = {base.steps}")
    elif given.get("steps") and base.num_epochs and not base.steps:
        notes.append(f"steps = {given['steps']} replaces preset {preset}'s "
                     f"num_epochs = {base.num_epochs}")
    changes = _coerce({k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items()},
                      "overrides")
    if "steps" in changes and changes["steps"] == 0 and not base.num_epochs and "num_epochs" not in changes:
        changes["num_epochs"] = Config.num_epochs     # counting in epochs again: the default
    cfg = _normalised(base.replace(**changes))
    if strict:
        unused = unused_fields(cfg)
        for name in changes:
            if name in unused:
                raise ConfigError(name, f"{_shown_value(changes[name])} is not used {unused[name]}")
    return cfg, notes


def _shown_value(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def unused_fields(cfg: Config) -> dict[str, str]:
    """Fields whose value a run of `cfg` never reads -> why and what is allowed, e.g.
    'by model <name> (allowed: leave it out; its size is --width and --depth)'.

    The command line refuses a flag that sets one of them rather than ignoring it silently."""
    unused: dict[str, str] = {}

    def mark(names: tuple[str, ...], why: str) -> None:
        for name in names:
            unused.setdefault(name, why)

    family = family_spec(cfg.model)
    mark(family.unused_fields, family.unused_reason())
    if cfg.dataset == "gaussian":
        mark(("test_size", "eval_every", "acc_threshold"), "with the gaussian regression data, "
             "which has no held-out set and no accuracy (allowed: leave it out)")
    if cfg.phase_space == "lr_vs_lr":
        mark(("offset_target", "offset_mode"), "with phase_space lr_vs_lr, which has no weight "
             "offset (allowed: leave it out, or --phase-space offset_vs_lr)")
    else:
        mark(("base_lr",), "with phase_space offset_vs_lr, where every layer trains at the row's "
             "learning rate (allowed: leave it out, or --phase-space lr_vs_lr)")
    if cfg.optimizer != "momentum":
        mark(("momentum",), f"by optimizer {cfg.optimizer} (allowed: leave it out, or "
             "--optimizer momentum)")
    if not cfg.adaptive:
        mark(("adaptive_coarse", "adaptive_guard"), "without --adaptive (allowed: leave it "
             "out, or add --adaptive)")
    if cfg.steps:
        mark(("num_epochs",), f"with steps = {cfg.steps} (allowed: leave it out)")
    if cfg.init_file:
        mark(("seed",), "with init_file, which gives the initial weights (allowed: leave it out)")
    if cfg.data_file:
        mark(DATA_FILE_SIZES, "with data_file, whose arrays give the examples (allowed: leave "
             "it out)")
        if cfg.full_batch:
            mark(("data_seed",), "with data_file and full batch: nothing is drawn (allowed: "
                 "leave it out)")
    return unused


def to_toml(cfg: Config) -> str:
    """Serialise a config as TOML (floats always with a decimal point, so types round-trip)."""
    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int,)):
            return str(v)
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        raise TypeError(type(v))
    return "".join(f"{k} = {fmt(v)}\n" for k, v in cfg.to_dict().items())
