"""Where tiles are trained: in this process (``local``, the default) or as Ray tasks (``ray``).

Both backends run the same function, `train_tile`: it trains the points of one tile (a band of
whole rows, see store.py) that are not stored yet, row-major, through `engine.train`, in chunks of
exactly ``cfg.tile_batch`` (the last one padded), and writes the tile into the run's store itself.
Tiles and resume points are aligned to chunks, so every point is trained in the same chunk, at the
same position, as one `engine.train` call over the whole grid would train it: the map does not
depend on the tile size, on where a resumed tile was cut off, or on the backend (bit for bit, on a
CPU and on a GPU).

Finished chunks of an unfinished tile are written as a checkpoint every `checkpoint_s` seconds
(at least 20 times the last write's duration apart, so writing costs < 5%) and when the run is
stopped with Ctrl-C, so a crash loses at most that much work.

Ray (an optional extra: ``pip install -e ".[ray]"``) is imported only when ``--backend ray`` is
asked for. Each task trains one tile, on one GPU (``num_gpus=1``) when the run's device is cuda,
or auto on a cluster with GPUs, else on one CPU slot, and writes to the same store: the run
folder must be on a filesystem every node sees at the same path. A failed task is retried
(`MAX_RETRIES`); the driver's progress bar counts the finished chunks of every task.

Test hook (documented, minimal): when the driver runs with the environment variable
``NNFRACTAL_TEST_FAIL_TILE=i``, the first training attempt of tile i raises
`InjectedFailure` (the store's attempts counter decides "first"; the tile travels in the
`TileJob`, so Ray workers need not see the variable). Tests use it to watch a real task fail
and be retried.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from nnfractal.config import Config, ConfigError
from nnfractal.errors import one_line
from nnfractal.models import build_family
from nnfractal.storage.store import RunStore
from nnfractal.training import engine  # engine.train looked up per call: tests spy on it
from nnfractal.training.cpu_usage import NO_USAGE, Usage
from nnfractal.training.data import Dataset

BACKENDS = ("local", "ray")
CHECKPOINT_S = 60.0       # default seconds between checkpoints of an unfinished tile
MAX_RETRIES = 3           # Ray: retries of a failed tile task
FAIL_TILE_ENV = "NNFRACTAL_TEST_FAIL_TILE"


class InjectedFailure(RuntimeError):
    """Raised by the test hook (see the module docstring)."""


class TileFailed(Exception):
    """Training or writing a tile failed; `cause` is one line."""

    def __init__(self, tile: int, cause: str, attempts: int | None = None):
        self.tile, self.cause, self.attempts = tile, cause, attempts
        tries = f" after {attempts} attempts" if attempts and attempts > 1 else ""
        super().__init__(f"tile {tile} failed{tries}: {cause}")


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to train tiles of one run (pickled once for Ray)."""
    store_path: str
    cfg: Config
    data: Dataset
    x: np.ndarray                   # (cols,) axis values
    y: np.ndarray                   # (rows,)
    checkpoint_s: float = CHECKPOINT_S
    fail_tile: int | None = None    # the test hook's tile (see the module docstring)


def fail_tile_from_env() -> int | None:
    """The test hook's tile from NNFRACTAL_TEST_FAIL_TILE=i, else None."""
    wanted = os.environ.get(FAIL_TILE_ENV)
    return int(wanted) if wanted else None


@dataclass
class TileOutcome:
    tile: int
    trained: int                    # points trained by this call
    seconds: float                  # compute time of this call
    device: str | None
    stopped: bool = False           # stopped after a chunk (Ctrl-C) before the tile was done
    usage: Usage = NO_USAGE         # CPU time, run-queue wait and threads of its training


class _StopAfterChunk(Exception):
    pass


def train_tile(job: TileJob, tile: int, on_points: Callable[[int], None] | None = None,
               should_stop: Callable[[], bool] | None = None, device: str | None = None) -> TileOutcome:
    """Train the points of `tile` that are not stored yet and write them into the store.

    on_points(k): called after each chunk with its number of points. should_stop(): checked after
    each chunk; when true, the finished chunks are written and the call returns stopped=True.
    device: overrides cfg.device (a Ray task's GPU). Any exception leaves the tile's finished
    chunks written (best effort) and its flag counting only what is on disk.
    """

    cfg = job.cfg if device is None else job.cfg.replace(device=device)
    store = RunStore.open(job.store_path, mode="r+")
    grid = store.tile_grid
    n = grid.n_points(tile)
    start_at, seconds_before = store.tile_flags(tile)
    if start_at >= n:
        return TileOutcome(tile, 0, 0.0, None)
    if should_stop is not None and should_stop():      # e.g. a queued Ray task after Ctrl-C
        return TileOutcome(tile, 0, 0.0, None, stopped=True)
    attempt = store.begin_tile(tile)
    if job.fail_tile == tile and attempt == 1:
        raise InjectedFailure(f"{FAIL_TILE_ENV}: first attempt of tile {tile} fails")
    if start_at > 0:
        buf = store.read_tile(tile)            # keep the checkpointed points, train the rest
    else:
        buf = {m: np.full((n, store.group[f"curves/{m}"].shape[2]), np.nan,
                          dtype=store.group[f"curves/{m}"].dtype) for m in store.metrics}
    points = (store.tile_points(tile) if store.has_points
              else grid.points(tile, job.x, job.y))[start_at:]
    t0 = time.perf_counter()
    done = flushed = start_at
    last_flush, flush_cost = t0, 0.0

    def flush() -> None:
        nonlocal flushed, last_flush, flush_cost
        began = time.perf_counter()
        store.write_tile(tile, buf, done, seconds_before + began - t0)
        flushed, last_flush, flush_cost = done, time.perf_counter(), time.perf_counter() - began

    def on_chunk(lo: int, hi: int, curves: dict[str, np.ndarray]) -> None:
        nonlocal done
        for metric, c in curves.items():
            if metric in buf:
                buf[metric][start_at + lo:start_at + hi] = c
        done = start_at + hi
        if on_points is not None:
            on_points(hi - lo)
        if done < n and should_stop is not None and should_stop():
            raise _StopAfterChunk()
        if done < n and time.perf_counter() - last_flush >= max(job.checkpoint_s, 20 * flush_cost):
            flush()

    try:
        with _deterministic_cudnn(cfg.device):
            result = engine.train(cfg, build_family(cfg), job.data, points, on_chunk=on_chunk)
    except _StopAfterChunk:
        flush()
        return TileOutcome(tile, done - start_at, time.perf_counter() - t0, None, stopped=True)
    except BaseException:
        if done > flushed:
            try:
                flush()
            except Exception:
                pass                                # e.g. the disk is full: keep what is on disk
        raise
    flush()
    return TileOutcome(tile, n - start_at, time.perf_counter() - t0, result.device, usage=result.usage)


@contextmanager
def _deterministic_cudnn(device: str):
    """cuDNN's default convolution algorithms are not deterministic: measured on an H200, the same
    float32 ResNet chunk trained twice gave different curves (0.35% of map signs flipped). With
    deterministic algorithms, reruns and tiles are bit for bit equal, ~4% slower (2.08 vs 2.00 s
    for 256 ResNet-20 models x 20 steps). Restored afterwards: other callers keep their setting."""
    import torch
    if device == "cpu":
        yield
        return
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = before


# ---- Ctrl-C ------------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_ACTIVE: list[threading.Event] = []     # the outermost graceful_interrupt's event, while inside


@contextmanager
def graceful_interrupt(log=print) -> Iterator[threading.Event]:
    """While inside, the first Ctrl-C (SIGINT) or SIGTERM (``kill``, ``timeout``) only sets the
    yielded event (training stops after the current chunk); a second one raises
    KeyboardInterrupt at once. Nested uses share the outermost event, so a zoom or comparison
    that trains many grids sees a stop that arrived during any of them (`stop_requested`).
    Outside the main thread (no signal handlers there) the event is never set and Ctrl-C works
    as usual."""
    if _ACTIVE:
        yield _ACTIVE[0]
        return
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        sys.stderr.write(f"\nnnfractal: {what}: stopping after the current chunk (Ctrl-C again "
                         "to stop now)\n")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    _ACTIVE.append(stop)
    try:
        yield stop
    finally:
        _ACTIVE.remove(stop)
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_requested() -> bool:
    """True once a Ctrl-C or SIGTERM arrived inside the current graceful_interrupt."""
    return bool(_ACTIVE) and _ACTIVE[0].is_set()


def stop_if_requested(where: str) -> None:
    """Raise KeyboardInterrupt(`where`) once Ctrl-C or SIGTERM arrived inside the current
    graceful_interrupt: a study that trains many runs calls it before each, so that no other run
    starts after a stop (the callers keep what is done)."""
    if stop_requested():
        raise KeyboardInterrupt(where)


@contextmanager
def sigterm_as_interrupt():
    """While inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does by default, so every clean-up
    (staged folders, temporary files) runs for ``kill`` and ``timeout`` too. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- backends ----------------------------------------------------------------------------------

def make_backend(name: str, address: str | None = None):
    """The backend called `name`; refuses an unknown one, or ray when Ray is not installed."""
    if name not in BACKENDS:
        raise ConfigError("backend", f"{name!r} is not allowed (allowed: {', '.join(BACKENDS)})")
    if address is not None and name != "ray":
        raise ConfigError("address", f"{address!r} is not allowed with backend {name!r} "
                          "(allowed: --address only with --backend ray)")
    return LocalBackend() if name == "local" else RayBackend(address)


class LocalBackend:
    """Tiles one after the other in this process."""
    name = "local"

    def device(self, cfg: Config) -> str:
        return str(engine.resolve_device(cfg.device))

    def run(self, job: TileJob, tiles: list[int], on_points: Callable[[int], None],
            stop: threading.Event) -> Iterator[TileOutcome]:
        """Yield each tile's outcome as it finishes; stops after a stopped one."""
        for tile in tiles:
            try:
                outcome = train_tile(job, tile, on_points, stop.is_set)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:
                raise TileFailed(tile, one_line(err)) from err
            yield outcome
            if outcome.stopped or stop.is_set():
                return

    def close(self) -> None:
        pass


class RayBackend:
    """One Ray task per tile; tasks write the store themselves (shared filesystem)."""
    name = "ray"

    def __init__(self, address: str | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("backend", "'ray' needs Ray, which is not installed (install it with: "
                              "pip install 'nnfractal[ray]'; allowed without it: local)") from None
        self.address, self._started, self.use_gpu = address, False, False

    def connect(self) -> None:
        """Join the cluster at `address` (or RAY_ADDRESS), else start a local one; a Ray session
        that is already initialised in this process is used as it is."""
        import ray
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level="error")
        except Exception as err:
            raise ConfigError("address", f"cannot connect to a Ray cluster at "
                              f"{self.address or os.environ.get('RAY_ADDRESS') or 'a new local one'} "
                              f"({one_line(err)})") from None
        self._started = True

    def device(self, cfg: Config) -> str:
        import ray
        self.connect()
        gpus = ray.cluster_resources().get("GPU", 0)
        if cfg.device == "cuda" and gpus < 1:
            raise ConfigError("device", "'cuda' is not available: the Ray cluster has no GPU "
                              "(allowed here: cpu, auto)")
        self.use_gpu = cfg.device == "cuda" or (cfg.device == "auto" and gpus >= 1)
        return "cuda" if self.use_gpu else "cpu"

    def run(self, job: TileJob, tiles: list[int], on_points: Callable[[int], None],
            stop: threading.Event) -> Iterator[TileOutcome]:
        import ray
        self.connect()
        progress = ray.remote(_Progress).options(num_cpus=0).remote()
        task = ray.remote(_ray_train_tile).options(
            num_gpus=1 if self.use_gpu else 0, num_cpus=1,
            max_retries=MAX_RETRIES, retry_exceptions=True)
        job_ref = ray.put(job)
        device = "cuda" if self.use_gpu else "cpu"
        pending = {task.remote(job_ref, tile, progress, device): tile for tile in tiles}
        stopping = False
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5,
                                    fetch_local=False)
                k = ray.get(progress.take.remote())
                if k:
                    on_points(k)
                if stop.is_set() and not stopping:
                    stopping = True
                    ray.get(progress.stop.remote())        # tasks stop after their current chunk
                for ref in ready:
                    tile = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = err.cause if getattr(err, "cause", None) is not None else err
                        raise TileFailed(tile, one_line(cause), _attempts(job, tile)) from None
                    except ray.exceptions.RayError as err:
                        raise TileFailed(tile, one_line(err), _attempts(job, tile)) from None
        except BaseException:
            # Failed or interrupted: the other tasks stop after their current chunk and write it.
            if pending:
                ray.get(progress.stop.remote())
                ray.wait(list(pending), num_returns=len(pending), timeout=120)
            raise
        finally:
            ray.kill(progress)

    def close(self) -> None:
        if self._started:
            import ray
            ray.shutdown()
            self._started = False


def _attempts(job: TileJob, tile: int) -> int | None:
    try:
        return int(RunStore.open(job.store_path).tile_state()["attempts"][tile])
    except Exception:
        return None


class _Progress:
    """A Ray actor: tasks add finished points, the driver takes them; also the stop flag."""

    def __init__(self):
        self.points, self.stopped = 0, False

    def add(self, k: int) -> None:
        self.points += k

    def take(self) -> int:
        k, self.points = self.points, 0
        return k

    def stop(self) -> None:
        self.stopped = True

    def should_stop(self) -> bool:
        return self.stopped


def _ray_train_tile(job: TileJob, tile: int, progress, device: str) -> TileOutcome:
    """A Ray task: train one tile on the task's GPU or CPU slot and write it to the store."""
    from pathlib import Path

    import ray
    import torch
    if not Path(job.store_path).exists():
        raise FileNotFoundError(f"{job.store_path} is not visible on this node "
                                "(the run folder must be on a filesystem shared by all nodes)")
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    return train_tile(job, tile, on_points=lambda k: progress.add.remote(k),
                      should_stop=lambda: ray.get(progress.should_stop.remote()), device=device)
