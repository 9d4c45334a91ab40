"""The chaos map of a run (``--chaos``): every trained pixel trained again as a *twin* whose
hyperparameters are moved by a few rounding units, and the pixels whose outcome flips.

Near a trainability boundary the outcome after a fixed number of steps is partly chaotic: moving
both hyperparameters by a few units in the last place of the training precision changes whether
some pixels converge. The twin of a pixel has both of its axis values (the hyperparameter values
training sees: ``10 ** a`` on log axes) rounded to the run's precision, as the engine rounds
them, then moved up by ``ulps`` representable numbers of that precision (`moved_by_ulps`), the
same notion of "a few rounding units" as the sampling estimator's chaos floor. A pixel *flips*
when its twin's outcome (the sign of the map's score) differs from its own.

Only trained pixels get a twin: every pixel of a full grid, the trained ones of an adaptive run
(``adaptive/trained``). The twins cost one more training of those pixels, so a run with
``--chaos`` trains twice. They are trained in row-major order in chunks of the run's
``tile_batch``, so on a full grid each twin sits in its chunk at the same position as its pixel
did in the run (ulps = 0 gives the run's curves back).

Layout inside the run's ``store.zarr`` (readers that do not know the group see the run as
before)::

    chaos/index            (n,) int64    flat row-major indices of the twinned pixels
    chaos/points           (n, 2) float64 the twins' (x, y) hyperparameter values
    chaos/curves/<metric>  (n, T)        the twins' curves of the run's metric, chunks (tile_batch, T)
    chaos/stored           (1,) int64    twins whose curves are stored (a prefix, whole chunks)
    attrs                  ulps, precision, metric, n, tile_batch, complete, sessions

Each chunk's curves are written, then the ``stored`` count, so an interrupted run keeps every
finished chunk and ``--resume`` trains only the rest: the same twins, in the same chunks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from nnfractal.config import Config, ConfigError
from nnfractal.errors import RunInterrupted, StoreError, is_int, one_line
from nnfractal.estimators.boxcount import boundary
from nnfractal.models import build_family
from nnfractal.render.chaos_plots import chaos_figure
from nnfractal.storage.store import RunStore
from nnfractal.training import engine  # engine.train looked up per call: tests spy on it
from nnfractal.training.cpu_usage import NO_USAGE
from nnfractal.training.grid import grid_points
from nnfractal.training.measure import point_scores

from .backends import graceful_interrupt

GROUP = "chaos"
CHAOS_FILE = "chaos.png"
DEFAULT_ULPS = 4
MAX_ULPS = 1 << 20


def check_ulps(value) -> int:
    """The twin distance in rounding units as an int; ConfigError('chaos_ulps') for anything but
    a whole number 1..MAX_ULPS (below one rounding unit a twin would be its pixel)."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    ok = (is_int(number) or (isinstance(number, float) and number.is_integer())) \
        and not isinstance(number, bool) and 1 <= number <= MAX_ULPS
    if not ok:
        raise ConfigError("chaos_ulps", f"{value!r} is not allowed (allowed: a whole number of "
                          f"rounding units of the run's precision, 1 to {MAX_ULPS}; below 1 a "
                          "twin is its own pixel)")
    return int(number)


def moved_by_ulps(values: np.ndarray, ulps: int, precision: str) -> np.ndarray:
    """`values` rounded to `precision` (float32 or float64, as training rounds them) and moved up
    by `ulps` representable numbers of it; (k,) float64, each exactly representable in
    `precision`.

    Works on the numbers' ordered integer codes, so that k units cost one addition and a move
    across zero counts the numbers in between (the subnormals) as units too.
    """
    float_t, uint_t, bits = ((np.float64, np.uint64, 64) if precision == "float64"
                             else (np.float32, np.uint32, 32))
    code = np.asarray(values, dtype=float_t).view(uint_t).astype(np.uint64)
    magnitude = (code & np.uint64((1 << (bits - 1)) - 1)).astype(np.int64)
    negative = (code >> np.uint64(bits - 1)) == 1
    ordinal = np.where(negative, -magnitude, magnitude) + int(ulps)
    sign = np.uint64(1 << (bits - 1))
    moved = np.where(ordinal < 0, np.abs(ordinal).astype(np.uint64) | sign,
                     ordinal.astype(np.uint64))
    return moved.astype(uint_t).view(float_t).astype(np.float64)


def twinned_pixels(store: RunStore) -> np.ndarray:
    """Flat row-major indices of the pixels the run trained: those of ``adaptive/trained`` in an
    adaptive run, else every pixel. (n,) int64."""
    if "adaptive" in store.group:
        return np.flatnonzero(store.group["adaptive/trained"][:]).astype(np.int64)
    return np.arange(len(store.y) * len(store.x), dtype=np.int64)


def twin_points(store: RunStore, index: np.ndarray, ulps: int, precision: str) -> np.ndarray:
    """The twins' (x, y) hyperparameter values of the pixels `index`: (n, 2) float64."""
    points = grid_points(store.x, store.y)[index]
    return np.stack([moved_by_ulps(points[:, 0], ulps, precision),
                     moved_by_ulps(points[:, 1], ulps, precision)], axis=1)


# ---- the twin store ------------------------------------------------------------------------------

def twin_group(store: RunStore):
    """The store's chaos group, or None when it has none (or only a half-created one)."""
    if GROUP not in store.group:
        return None
    group = store.group[GROUP]
    return group if "ulps" in group.attrs else None


def twins_complete(store: RunStore) -> bool:
    group = twin_group(store)
    return group is not None and bool(group.attrs.get("complete", False))


def ulps_to_train(store: RunStore | None, ulps: int | None, wanted: bool = False) -> int | None:
    """The twin distance a resume must train twins at, None when there is nothing to train.

    `ulps`: given with --chaos-ulps (None: not given); `wanted`: --chaos, at the run's own
    distance or DEFAULT_ULPS. A store with unfinished twins finishes them at their own distance;
    twins at one distance are never mixed with another (ConfigError).
    """
    group = twin_group(store) if store is not None else None
    if group is None:
        return ulps if ulps is not None else (DEFAULT_ULPS if wanted else None)
    stored = int(group.attrs["ulps"])
    if ulps is not None and ulps != stored:
        raise ConfigError("chaos_ulps", f"{ulps} differs from the run's twins ({stored} rounding "
                          f"units in {store.path}/{GROUP}; allowed: leave it out or give {stored})")
    return None if group.attrs.get("complete") else stored


def _create_group(store: RunStore, cfg: Config, ulps: int, chunk: int):
    """The chaos group with its index, points and empty curves; ``ulps`` goes in last, so a group
    without it was cut off while being made and is made again."""
    if GROUP in store.group:
        del store.group[GROUP]
    index = twinned_pixels(store)
    group = store.group.create_group(GROUP)
    group.create_array("index", data=index)
    group.create_array("points", data=twin_points(store, index, ulps, cfg.precision))
    source = store.group[f"curves/{cfg.metric}"]
    group.create_group("curves").create_array(
        cfg.metric, shape=(len(index), source.shape[2]), chunks=(chunk, source.shape[2]),
        dtype=source.dtype, fill_value=np.nan)
    group.create_array("stored", shape=(1,), chunks=(1,), dtype="int64", fill_value=0)
    group.attrs.update({"precision": cfg.precision, "metric": cfg.metric, "n": int(len(index)),
                        "tile_batch": int(chunk), "complete": False, "sessions": [],
                        "direction": "both axes up"})
    group.attrs["ulps"] = int(ulps)
    return group


class _Stop(Exception):
    pass


def train_twins(run_dir: Path, store: RunStore, cfg: Config, data, ulps: int,
                progress: bool = True, log=print,
                resume: str = "nnfractal run --resume") -> None:
    """Train the twins of the run's trained pixels that are not stored yet, chunk by chunk, in
    this process (whatever backend trained the run); mark the group complete.

    Raises RunInterrupted after Ctrl-C, with every finished chunk stored.
    """
    from tqdm.auto import tqdm

    family = build_family(cfg)
    chunk = engine.resolve_tile_batch(cfg, family, data)
    # A map of a training metric needs no held-out evaluation: it never changes the weights, so
    # the twins skip it (an MNIST run evaluates after every epoch: ~15% of its training).
    train_cfg = cfg if cfg.metric.startswith("test") else cfg.replace(eval_every=0)
    group = twin_group(store) or _create_group(store, cfg, ulps, chunk)
    n, start = int(group.attrs["n"]), int(group["stored"][0])
    if start >= n:
        group.attrs["complete"] = True
        return
    curves = group[f"curves/{cfg.metric}"]
    steps = int(store.attrs["schedule"]["steps"])
    log(f"chaos: training {n - start} twins x {steps} steps, both hyperparameters moved by "
        f"{ulps} rounding units of {cfg.precision}"
        + (f"; {start} of {n} were stored" if start else ""))
    done = start
    t0 = time.perf_counter()

    def on_chunk(lo: int, hi: int, chunk_curves: dict[str, np.ndarray]) -> None:
        nonlocal done
        curves[start + lo:start + hi] = chunk_curves[cfg.metric]
        group["stored"][0] = start + hi           # after the curves: never claims more
        done = start + hi
        bar.update((hi - lo) * steps)
        if done < n and stop.is_set():
            raise _Stop()

    outcome, result = "complete", None
    try:
        with graceful_interrupt() as stop, \
                tqdm(total=(n - start) * steps, unit="model-step", unit_scale=True,
                     desc="chaos twins", disable=not progress, dynamic_ncols=True) as bar:
            result = engine.train(train_cfg, family, data, group["points"][start:],
                                  on_chunk=on_chunk)
    except _Stop:
        outcome = "interrupted"
        raise RunInterrupted(f"interrupted after {done} of {n} chaos twins; resume with: "
                             f"{resume} {run_dir}") from None
    finally:
        _record_twin_session(group, time.perf_counter() - t0, done - start, outcome, result)
    group.attrs["complete"] = True


def _record_twin_session(group, wall_s: float, trained: int, outcome: str, result) -> None:
    """Append one twin-training session to the group's attributes (best effort)."""
    usage = result.usage if result is not None else NO_USAGE
    try:
        sessions = list(group.attrs.get("sessions", []))
        sessions.append({"wall_s": round(wall_s, 3), "twins": int(trained), "outcome": outcome,
                         "device": result.device if result is not None else None,
                         "cpu_s": round(usage.cpu_s, 3),
                         "ended": datetime.now().isoformat(timespec="seconds")})
        group.attrs["sessions"] = sessions
    except Exception:
        pass


# ---- the map -----------------------------------------------------------------------------------

@dataclass
class ChaosMap:
    """Which pixels flip. All (rows, cols) bool: `twinned` pixels have a twin, `flipped` ones a
    twin of the other outcome, `near_boundary` ones are a corner of a boundary cell (a 2 x 2
    neighbourhood that holds both outcomes, `boxcount.boundary`)."""
    twinned: np.ndarray
    flipped: np.ndarray
    near_boundary: np.ndarray
    ulps: int
    precision: str
    twin_seconds: float

    def summary(self) -> dict:
        """summary.json["chaos_fraction"]: flip fractions of the twinned pixels, all and on the
        boundary, with their counts and 95% (Wilson) intervals."""
        n_all, k_all = int(self.twinned.sum()), int(self.flipped.sum())
        on = self.twinned & self.near_boundary
        n_b, k_b = int(on.sum()), int((self.flipped & on).sum())
        return {"all": k_all / n_all if n_all else None, "all_ci95": wilson(k_all, n_all),
                "boundary": k_b / n_b if n_b else None, "boundary_ci95": wilson(k_b, n_b),
                "n_twinned": n_all, "n_flipped": k_all, "n_boundary": n_b,
                "n_boundary_flipped": k_b, "ulps": self.ulps, "precision": self.precision,
                "twin_seconds": round(self.twin_seconds, 3)}


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson interval [lo, hi] of a fraction k / n (None for n = 0): honest at k = 0."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def near_boundary(scores: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: pixels that are a corner of a boundary cell of the score map."""
    rows, cols = scores.shape
    out = np.zeros((rows, cols), dtype=bool)
    if rows < 2 or cols < 2:
        return out
    edges = boundary(scores)
    for dr in (0, 1):
        for dc in (0, 1):
            out[dr:dr + rows - 1, dc:dc + cols - 1] |= edges
    return out


def chaos_map(store: RunStore, cfg: Config, scores: np.ndarray) -> ChaosMap | None:
    """The flips of a run whose twins are all stored (None otherwise); `scores` (rows, cols) is
    the run's final map of its metric (`run.score_map`)."""
    if not twins_complete(store):
        return None
    group = store.group[GROUP]
    try:
        index = group["index"][:]
        curves = group[f"curves/{group.attrs['metric']}"][:]
    except Exception as err:
        raise StoreError(f"store: {store.path}/{GROUP} cannot be read ({one_line(err)})") from None
    per_epoch = int(store.attrs["schedule"]["steps_per_epoch"])
    twin_scores = point_scores(cfg, {cfg.metric: curves}, per_epoch)
    twinned = np.zeros(scores.shape, dtype=bool)
    twinned.flat[index] = True
    flipped = np.zeros(scores.shape, dtype=bool)
    flipped.flat[index] = (twin_scores < 0) != (scores.flat[index] < 0)
    seconds = sum(float(s.get("wall_s", 0.0)) for s in group.attrs.get("sessions", []))
    return ChaosMap(twinned, flipped, near_boundary(scores), int(group.attrs["ulps"]),
                    str(group.attrs["precision"]), seconds)


def render_chaos(run_dir: Path, store: RunStore, cfg: Config, scores: np.ndarray, extent,
                 xlabel: str, ylabel: str, title: str, log=print) -> dict:
    """chaos.png and summary.json's "chaos_fraction" of a run with stored twins ({} without)."""
    cmap = chaos_map(store, cfg, scores)
    if cmap is None:
        return {}
    info = cmap.summary()
    fig = chaos_figure(scores, cmap.flipped, cmap.twinned, cmap.near_boundary, extent, xlabel,
                       ylabel, cfg.axis_scale, title=f"{title}\n{chaos_line(info)}",
                       figsize=cfg.figsize, dpi=cfg.dpi)
    fig.savefig(Path(run_dir) / CHAOS_FILE)
    log(f"chaos: {chaos_line(info)} (chaos.png)")
    return {"chaos_fraction": info}


def chaos_line(info: dict) -> str:
    """'flips at 4 ulps: 0.8% of 4096 pixels, 5.1% of 310 boundary pixels'."""
    def part(frac, n, what):
        return f"{frac:.1%} of {n} {what}" if frac is not None else f"none of 0 {what}"
    return (f"flips at {info['ulps']} ulps of {info['precision']}: "
            f"{part(info['all'], info['n_twinned'], 'pixels')}, "
            f"{part(info['boundary'], info['n_boundary'], 'boundary pixels')}")
