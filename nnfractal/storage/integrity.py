"""Every store of a result folder checked before a command reads or resumes it.

A result folder holds one store (a run, a sample) or many (a zoom's frames, a comparison's grids
and samples). Before `dimension`, `report`, the explorer or a zoom read one, `check_folder`
verifies every store in it against its tile checksums (store.py) and its config.toml against
the config the store was written with: a damaged tile or an edited config.toml is refused in one
line (StoreError), never read as data. Before a `--resume`, `repair_folder` does the same under
each run's lock, but marks the damaged tiles as not trained, so that the resume trains them again
(one line per store says which) and gives the numbers of an undamaged run.

Both read every stored tile once: the price of finding a chunk file that a study reads directly
from zarr (a sample's blocks) before it is read as NaN, i.e. "diverged". A command that reads the
curves anyway checks the folder with `checked_folder`: the curves checked are kept for its reads
(`store.keep_verified`), so that each is read once.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnfractal.errors import ConfigError, StoreError, one_line

from .run_folder import STORE_DIR, RunFolder
from .store import RunStore, keep_verified

NOT_CHECKSUMMED = "not checksummed (written before nnfractal checked its stores)"


def stores_under(folder: Path) -> list[Path]:
    """The stores of a result folder (its own and those of its frames, grids and samples), in
    path order; hidden staging folders are not part of it."""
    folder = Path(folder)
    found = [folder / STORE_DIR] if (folder / STORE_DIR).is_dir() else []
    found += [p for p in folder.rglob(STORE_DIR) if p != folder / STORE_DIR and p.is_dir()
              and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found)


def check_folder(folder: Path, resume_hint: str | None = None, log=print,
                 keep: bool = False) -> None:
    """Refuse (StoreError, one line) a folder holding a store with a damaged tile or a
    config.toml that differs from its store's config. `resume_hint`: the command that trains a
    damaged tile again, named in the refusal. Stores without checksums are read (one line
    logged: they cannot be checked). `keep`: keep the curves checked for `read_curves` (inside
    `store.keep_verified`; `checked_folder` does both)."""
    unchecked = []
    for path in stores_under(folder):
        store = RunStore.open(path)
        check_config(RunFolder(path.parent), store)
        if not store.checksummed:
            unchecked.append(path)
            continue
        damaged = _damaged_tiles(store, keep)
        if damaged:
            tile, why = damaged[0]
            more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
            hint = f"; train it again with: {resume_hint} {folder}" if resume_hint else ""
            raise StoreError(f"store: {path} {store.tile_grid.describe(tile)}{more} is damaged "
                             f"({why}){hint}")
    if unchecked:
        log(f"note: {_names(unchecked)} {'is' if len(unchecked) == 1 else 'are'} {NOT_CHECKSUMMED}; "
            "a damaged chunk file there cannot be found")


@contextmanager
def checked_folder(folder: Path, resume_hint: str | None = None, log=print,
                   keep: bool = True) -> Iterator[None]:
    """`check_folder`, for a command that then reads the folder's curves in the block: with
    `keep`, the curves checked are kept until the block ends and `RunStore.read_curves` returns
    them, so that each is read from disk once (as many as `store.KEEP_BYTES` allow; the rest is
    read again)."""
    with keep_verified():
        check_folder(folder, resume_hint, log, keep=keep)
        yield


def repair_folder(folder: Path, log=print) -> list[tuple[Path, list[int]]]:
    """Before a resume: mark the damaged tiles of every store in `folder` as not trained, each
    store under its run's lock (a run another process trains is refused in one line and left
    alone). Returns (store, tiles) for each store repaired, each logged in one line. A damaged
    point set (a sample's points/xy) or an edited config.toml is refused (StoreError): training
    again could not give the run's numbers."""
    repaired = []
    for path in stores_under(folder):
        run = RunFolder(path.parent)
        if not run.config_file.is_file():
            continue                    # a unit killed before its config: resume makes it
        with run.lock():
            store = RunStore.open(path, mode="r+")
            check_config(run, store)
            damaged = _damaged_tiles(store)
            if not damaged:
                continue
            points = [t for t, why in damaged if why.startswith("points")]
            if points:
                raise StoreError(f"store: {path} {store.tile_grid.describe(points[0])} has damaged "
                                 "points/xy: the points to train cannot be known again (allowed: "
                                 "a new sample)")
            tiles = [t for t, _ in damaged]
            store.reset_tiles(tiles)
            repaired.append((path, tiles))
            log(f"{path}: {_tiles(store, tiles)} damaged ({damaged[0][1]}): training "
                f"{'it' if len(tiles) == 1 else 'them'} again")
    return repaired


def check_config(run: RunFolder, store: RunStore) -> None:
    """Refuse (StoreError) a config.toml that differs from the config its store was written with
    (a field either lacks, e.g. from an older version, is not compared)."""
    try:
        mine = run.read_config().to_dict()
    except ConfigError as err:
        raise StoreError(f"config: {run.config_file} cannot be read ({err})") from None
    theirs = store.config
    diff = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    if diff:
        raise StoreError(f"config: {run.config_file} differs from the config its store was "
                         f"written with (in: {', '.join(diff)}) (allowed: the config.toml the run "
                         "was trained with)")


def _damaged_tiles(store: RunStore, keep: bool = False) -> list[tuple[int, str]]:
    """`store.damaged_tiles(keep)`, with a store whose arrays cannot even be listed (a torn
    zarr.json) refused in one line (StoreError) instead of zarr's own error."""
    try:
        return store.damaged_tiles(keep)
    except StoreError:
        raise
    except Exception as err:            # zarr raises many kinds for damaged metadata
        raise StoreError(f"store: {store.path} cannot be read ({one_line(err, 160)})") from None


def _tiles(store: RunStore, tiles: list[int]) -> str:
    if len(tiles) == 1:
        return f"{store.tile_grid.describe(tiles[0])} was"
    return f"tiles {', '.join(map(str, tiles))} were"


def _names(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
