"""Resource budget of a run, checked before anything is written.

`estimate(cfg)` computes, from the config alone (nothing is allocated):

- the curves' storage: every point of the grid records one value per step (training loss,
  training accuracy) or per held-out evaluation, in the run's precision (uncompressed bytes);
- a lower bound on the host memory one chunk of ``tile_batch`` models needs: its curves, the
  parameters with their gradients and optimizer state (4 copies), the activations of one batch,
  the shared batch order (int64, steps x batch) and the training data.

`check_run(cfg, out)` refuses, with one line naming the flag that changes it and the estimate
(ConfigError, exit 2), a run whose curves exceed the free space where `out` will be, or
`DEFAULT_MAX_STORAGE` (``--max-storage`` sets another limit on purpose), or whose chunk needs
more memory than the machine has. The limits are generous: they stop runs that can never finish
(a 100000-pixel grid, a billion steps), not big real ones (the customer's full presets need
about 94 GiB of curves at most).
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nnfractal.config import Config, ConfigError, recorded_metrics
from nnfractal.models import family_spec

GIB = 2 ** 30
DEFAULT_MAX_STORAGE = 512 * GIB      # a sane cap on one run's (uncompressed) curves
MNIST_PIXELS = 784


def gib(n: float) -> str:
    """Bytes as '1.5 GiB' (or MiB/KiB below one GiB)."""
    for unit, size in (("PiB", 2 ** 50), ("TiB", 2 ** 40), ("GiB", GIB), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def n_train_of(cfg: Config) -> int:
    """Training examples of the run (data.py's rule, without loading anything)."""
    if cfg.dataset != "gaussian":
        return cfg.train_size
    if cfg.train_size:
        return cfg.train_size
    if cfg.nonlinearity == "identity":
        return cfg.width
    return max(1, n_params(cfg) // cfg.target_dim)


def n_params(cfg: Config) -> int:
    """Parameters of one model, as its family estimates them from the config alone."""
    return family_spec(cfg.model).n_params(cfg)


def activations_per_example(cfg: Config) -> int:
    """Values one example leaves saved for the backward pass (a lower bound, by its family)."""
    return family_spec(cfg.model).activations_per_example(cfg)


def schedule_of(cfg: Config) -> tuple[int, int, int]:
    """(steps, steps per epoch, held-out evaluations) as engine.make_schedule will make them."""
    n = n_train_of(cfg)
    if cfg.full_batch:
        per_epoch = 1
    elif cfg.minibatch_replacement:
        per_epoch = max(1, n // cfg.batch_size)
    else:
        per_epoch = max(1, n // cfg.batch_size)
    steps = cfg.steps or cfg.num_epochs * per_epoch
    evals = 0
    if cfg.dataset != "gaussian" and cfg.eval_every > 0:
        evals = len(range(0, steps // per_epoch + 1, cfg.eval_every))
    return steps, per_epoch, evals


@dataclass(frozen=True)
class Estimate:
    values_per_point: int           # curve values stored per grid point, all metrics
    curves_bytes: int               # the store's curves, uncompressed
    chunk_parts: dict               # name -> bytes of one chunk's memory (a lower bound)

    @property
    def chunk_bytes(self) -> int:
        return sum(self.chunk_parts.values())


def estimate(cfg: Config) -> Estimate:
    """Storage and per-chunk memory of a run of `cfg` (see the module docstring)."""
    item = 8 if cfg.precision == "float64" else 4
    steps, _, evals = schedule_of(cfg)
    per_point = sum(evals if m.startswith("test") else steps for m in recorded_metrics(cfg))
    batch = cfg.batch_size or n_train_of(cfg)
    tb = max(1, cfg.tile_batch)
    input_dim = cfg.width if cfg.dataset == "gaussian" else MNIST_PIXELS
    parts = {
        "curves": tb * per_point * item,
        "parameters": tb * 4 * n_params(cfg) * item,
        "activations": tb * batch * activations_per_example(cfg) * item,
        "batch order": 0 if cfg.full_batch else steps * batch * 8,
        "data": n_train_of(cfg) * input_dim * item,
    }
    return Estimate(per_point, cfg.resolution ** 2 * per_point * item, parts)


def machine_memory() -> int:
    """Physical memory of this machine (bytes)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 64 * GIB


def free_disk(out: Path) -> int:
    """Free bytes on the filesystem where `out` is (or will be created)."""
    probe = Path(out)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe if str(probe) else ".").free
    except OSError:
        return 2 ** 62


def check_max_storage(value) -> float | None:
    """--max-storage in GiB: None (the default limits) or a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ConfigError("max_storage", f"{value!r} is not allowed (allowed: a positive number "
                          "of GiB)")
    return float(value)


def _storage_field(cfg: Config, est: Estimate) -> str:
    """The flag most to blame for too much storage: the grid, or the curve length."""
    if cfg.resolution ** 2 >= est.values_per_point:
        return "resolution"
    return "steps" if cfg.steps else "num_epochs"


_PER_MODEL_FIELD = {"curves": None, "parameters": "width", "activations": "width",
                    "batch order": None, "data": "train_size"}


def _memory_field(cfg: Config, est: Estimate, memory: int) -> tuple[str, str]:
    """The flag most to blame for a chunk too big for `memory`, and what it allows."""
    from dataclasses import replace
    one = estimate(replace(cfg, tile_batch=1))
    fixed = one.chunk_parts["batch order"] + one.chunk_parts["data"]
    fits = int((memory - fixed) // max(1, one.chunk_bytes - fixed)) if memory > fixed else 0
    if fits >= MIN_SENSIBLE_CHUNK:                 # small models, too many at once
        return "tile_batch", f"at most {fits} models per chunk"
    worst = max(one.chunk_parts, key=one.chunk_parts.get)
    field = _PER_MODEL_FIELD[worst] or ("steps" if cfg.steps else "num_epochs")
    if worst == "activations" and one.chunk_parts["parameters"] * 4 < one.chunk_parts["activations"]:
        field = "batch_size" if not cfg.full_batch else "train_size"   # the batch, not the model
    if field == "width":
        field = family_spec(cfg.model).width_field    # e.g. a ResNet's widths are c_hidden
    if field == "train_size" and cfg.dataset == "gaussian" and not cfg.train_size:
        field = "width"                            # 0: as many points as parameters
    return field, f"an estimate up to {gib(memory)}"


def check_storage(total_bytes: float, field: str, value, out: Path, what: str,
                  max_storage_gib: float | None = None) -> None:
    """Refuse `total_bytes` of curves above the limit: --max-storage, else the smaller of the
    free disk at `out` and DEFAULT_MAX_STORAGE."""
    if max_storage_gib is not None:
        limit, why = max_storage_gib * GIB, f"--max-storage {max_storage_gib:g}"
    else:
        free = free_disk(out)
        limit, why = min(free, DEFAULT_MAX_STORAGE), (
            f"{gib(free)} free where {out} goes" if free < DEFAULT_MAX_STORAGE
            else f"the default cap {gib(DEFAULT_MAX_STORAGE)}")
    if total_bytes > limit:
        raise ConfigError(field, f"{value!r} makes {what} of about {gib(total_bytes)} "
                          f"(uncompressed), more than {why} (allowed: an estimate up to "
                          f"{gib(limit)}; lower --{field}, or set --max-storage GIB to allow "
                          "a big run on purpose)")


def check_memory(cfg: Config, est: Estimate | None = None, memory: int | None = None) -> None:
    """Refuse a chunk that needs more memory than the machine has."""
    est = est or estimate(cfg)
    memory = memory or machine_memory()
    if est.chunk_bytes > memory:
        field, allowed = _memory_field(cfg, est, memory)
        parts = ", ".join(f"{k} {gib(v)}" for k, v in est.chunk_parts.items() if v >= 2 ** 20)
        value = getattr(cfg, field)
        value = list(value) if isinstance(value, tuple) else value
        raise ConfigError(field, f"{value!r} needs about {gib(est.chunk_bytes)} of memory per "
                          f"chunk of {max(1, cfg.tile_batch)} models ({parts}), more than this "
                          f"machine's {gib(memory)} (allowed: {allowed}; lower --{field})")


MIN_SENSIBLE_CHUNK = 64       # fewer models per chunk than this: blame what makes a model big
PER_GRID_FILES = 512 * 2 ** 10      # pictures, report and metadata of one finished grid (about)


def check_run(cfg: Config, out: Path, max_storage_gib: float | None = None) -> Estimate:
    """Every budget of one run (storage at `out`, memory per chunk); returns the estimate."""
    est = estimate(cfg)
    check_memory(cfg, est)
    field = _storage_field(cfg, est)
    check_storage(est.curves_bytes, field, getattr(cfg, field), out,
                  f"{cfg.resolution}x{cfg.resolution} points x {est.values_per_point} curve "
                  "values", max_storage_gib)
    return est


def check_many(cfg: Config, n_grids: int, field: str, value, out: Path, what: str,
               max_storage_gib: float | None = None) -> None:
    """Zoom and compare: one grid of `cfg` must fit (memory, storage), and `n_grids` of them
    with their pictures must fit the storage limit (`field` = the flag that sets n_grids)."""
    est = check_run(cfg, out, max_storage_gib)
    check_storage(n_grids * (est.curves_bytes + PER_GRID_FILES), field, value, out,
                  f"{what}: {n_grids} grids of {cfg.resolution}x{cfg.resolution} points",
                  max_storage_gib)
