"""What the store's tile checksums cost on a paper-tanh run (64 x 64, 500 steps, float64).

Writes the run's tiles into a store with checksums and one without (the same store layout, the
`tiles/checksums` array removed), interleaved, median of `--rounds`; then reads each back the way
`nnfractal dimension` does (every store checked first, then `read_curves`) against a plain read:
"check+read" as dimension reads now (`integrity.checked_folder`: the curves checked are kept, so
read once) and "check, read" as it did before (`check_folder` reading every tile, then
`read_curves` reading and checking them again), in alternating order. The training time of the
same run is measured once (`--train`), to put the write cost in proportion.

    python benchmarks/bench_checksums.py --rounds 7 [--train]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nnfractal.config import build_config
from nnfractal.storage.integrity import check_folder, checked_folder
from nnfractal.storage.run_folder import RunFolder
from nnfractal.storage.store import default_tile_rows


def make_store(folder: Path, cfg, curves: np.ndarray, checksums: bool):
    run = RunFolder(folder)
    folder.mkdir(parents=True)
    run.write_config(cfg)
    n = cfg.resolution
    tile_rows = default_tile_rows(n, n, cfg.tile_batch)
    store = run.create_store(cfg, x=np.arange(n, dtype=float), y=np.arange(n, dtype=float),
                             curve_lengths={"train_loss": curves.shape[-1]}, dtype="float64",
                             schedule={"steps": 500, "steps_per_epoch": 1, "eval_epochs": []},
                             tile_rows=tile_rows)
    if not checksums:
        shutil.rmtree(store.path / "tiles" / "checksums")
        store = run.open_store(mode="r+")
    return store


def write_all(store, curves: np.ndarray) -> float:
    grid = store.tile_grid
    start = time.perf_counter()
    for tile in grid.tiles():
        r0, r1 = grid.bounds(tile)
        block = curves[r0:r1].reshape((r1 - r0) * grid.cols, -1)
        store.write_tile(tile, {"train_loss": block}, stored=len(block), seconds=0.0)
    store.mark_complete()
    return time.perf_counter() - start


def read_all(folder: Path, how: str) -> float:
    """Seconds to read the curves of `folder` ("read": no check; "check+read": checked while
    read once; "check, read": checked, then read and checked again)."""
    start = time.perf_counter()
    if how == "check+read":
        with checked_folder(folder, log=lambda *_: None):
            RunFolder(folder).open_store().read_curves()
    else:
        if how == "check, read":
            check_folder(folder, log=lambda *_: None)
        RunFolder(folder).open_store().read_curves()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--train", action="store_true", help="also time the run's training once")
    args = parser.parse_args()
    cfg = build_config("paper-tanh")
    n, steps = cfg.resolution, cfg.steps
    rng = np.random.default_rng(0)
    curves = np.exp(rng.standard_normal((n, n, steps)))        # incompressible, like real losses
    reads = ("read", "check+read", "check, read")
    times = {k: [] for k in ("write", "write+checksum", *reads)}
    root = Path(tempfile.mkdtemp(prefix="bench-checksums-"))
    load_at_start = os.getloadavg()[0]
    try:
        for r in range(args.rounds):
            for checksums in ((False, True) if r % 2 else (True, False)):
                folder = root / f"r{r}-{checksums}"
                store = make_store(folder, cfg, curves, checksums)
                times["write+checksum" if checksums else "write"].append(write_all(store, curves))
            for how in reads[r % 3:] + reads[:r % 3]:           # each order in turn
                times[how].append(read_all(root / f"r{r}-{how != 'read'}", how))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"load average {os.getloadavg()[0]:.1f} (1 min; at start "
              f"{load_at_start:.1f}); paper-tanh store: {n}x{n} points x {steps} "
              f"float64 = {curves.nbytes / 2**20:.1f} MiB, {store.tile_grid.count} tiles; "
              f"median of {args.rounds}")
        for k, v in med.items():
            print(f"  {k:15} {v * 1000:8.1f} ms")
        print(f"  checksums add {1000 * (med['write+checksum'] - med['write']):.1f} ms to writing "
              f"({med['write+checksum'] / med['write']:.2f}x) and "
              f"{1000 * (med['check+read'] - med['read']):.1f} ms to a checked read "
              f"({med['check+read'] / med['read']:.2f}x; checked, then read: "
              f"{med['check, read'] / med['read']:.2f}x)")
        if args.train:
            from nnfractal.runner.run import execute
            start = time.perf_counter()
            execute(cfg, root / "trained", progress=False, log=lambda *_: None, draw=False)
            train = time.perf_counter() - start
            print(f"  training the run: {train:.1f} s; the write overhead is "
                  f"{100 * (med['write+checksum'] - med['write']) / train:.3f}% of it")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
