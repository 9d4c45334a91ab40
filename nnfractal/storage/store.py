"""A run's results in a zarr v3 store: loss curves, axes, tile done-flags, config and versions.

Layout of ``store.zarr``::

    curves/<metric>   (rows, cols, T) float32 or float64, chunks (tile_rows, cols, T')  e.g. train_loss
    axes/x            (cols,) float64   hyperparameter values of the columns (axis units)
    axes/y            (rows,) float64
    points/xy         (rows, cols, 2) float64, only in a store of sampled points (nnfractal sample):
                      the (x, y) hyperparameters of every point, NaN until planned; axes/x and
                      axes/y then only number the columns and rows
    tiles/stored      (tiles,) int32, chunks (1,): how many of a tile's points (row-major) have
                      their curves stored; the tile is done when this equals its point count
    tiles/attempts    (tiles,) int32, chunks (1,): how often its training started
    tiles/seconds     (tiles,) float64, chunks (1,): compute time of its stored points
    tiles/checksums   (tiles, 2 + metrics) uint64, chunks (1, 2 + metrics): per tile, the number
                      of points the record covers, then the CRC-32 of those points' curves for
                      each metric (sorted by name), then of the tile's points/xy (0 without
                      points); attrs["checksum"] names the columns
    attrs             format, format_version, config, schedule, tile_rows, complete, sessions,
                      versions, checksum

**Tiles are bands of whole rows**, ``tile_rows`` rows each (the last one shorter), holding a whole
number of chunks of ``tile_batch`` models. A tile's points are therefore exactly the chunks that
one `engine.train` call over the whole grid would form, at the same positions inside their chunks.
That matters: on a GPU, cuBLAS and cuDNN round a model's numbers differently depending on its
position in the chunk, so only chunk-aligned tiles give a map that does not depend on the tiling
on every device. A tile is one zarr chunk of every curves array in (row, col) (curves longer
than ~64 MB per tile are also split along T).

A tile's curves are written first, its ``stored`` flag after them, so a flag never claims curves
that are not on disk. Every flag is its own chunk file, so Ray tasks on different tiles never write
the same file.

**Atomic writes.** zarr >= 3.1.3 writes every chunk file to a temporary name and renames it into
place (zarr-python PR 3412): a process killed mid-write leaves the old file (or none), never a torn
one. `RunStore.create` builds the whole store under a temporary name and renames it, so a store
either exists with all its arrays or not at all.

**Checksums.** A tile's record is written after its curves and before its flags, in one chunk
file, over exactly the data written: a chunk file deleted later (read back as NaN), replaced by
another or truncated no longer matches, and `damaged_tiles` finds it; `read_curves` and
`read_tile` refuse such a tile (StoreError) instead of reading NaN as "diverged". A checksum of
the decoded values kept apart from the chunk rather than zarr's crc32c codec inside each chunk,
because only a record kept apart finds a chunk that is missing (zarr reads it as the fill value)
or replaced by another valid chunk. CRC-32 rather than a cryptographic hash: it is there to find
damage, not forgery, and is the fastest check in the standard library. Stores written before
checksums have no ``tiles/checksums`` and are read as before (`checksummed` is False).

**One read for a checked folder.** A command that checks a folder's stores before it reads their
curves (`integrity.checked_folder`, e.g. ``nnfractal dimension``) reads each metric once:
`damaged_tiles(keep=True)` reads it whole, checks every tile against its record and keeps the
array (read-only, up to KEEP_BYTES in all) until the block ends, and `read_curves` hands it out
again instead of reading and checking it a second time. What is kept is what was checked: a write
to the store in this process drops it, and one by another process is read as a read a moment
earlier would have read it (readers take no lock, before this as now).

Readers (render, report, explorer) only ever read this store; they never train.

Test hook (documented, minimal): with ``NNFRACTAL_TEST_SIGNAL_AFTER_WRITE=N:SIG`` (SIG a signal's
name without SIG: INT, TERM, KILL, STOP), the N-th `write_tile` of the process sends the process
that signal once the tile's flags are written: a real signal at a known point of training, so the
fault tests need no timing.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfractal.errors import StoreError, one_line
from nnfractal.training.grid import grid_points

from .folders import new_staging_folder

FORMAT = "nnfractal-run"
FORMAT_VERSION = 2          # 2: tiles (1: one band-chunked write at the end; still readable)
TILE_POINTS = 1024          # a default tile holds about this many points
MAX_CHUNK_BYTES = 64 << 20  # one curves chunk file at most (split along T beyond it)
CHECKSUM_HASH = "crc32"
SIGNAL_ENV = "NNFRACTAL_TEST_SIGNAL_AFTER_WRITE"
_writes = [0]               # write_tile calls in this process (the test hook counts them)
KEEP_BYTES = 1 << 30        # verified curves a `keep_verified` block holds at most (more: read again)


@dataclass
class _Kept:
    """The curves checked inside one `keep_verified` block: resolved store path -> metric ->
    read-only (rows, cols, T) curves."""
    room: int
    stores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


_keeping: list[_Kept] = []  # the open keep_verified blocks, innermost last


@contextmanager
def keep_verified(max_bytes: int = KEEP_BYTES) -> Iterator[None]:
    """While the block runs, the curves that `RunStore.damaged_tiles(keep=True)` checked are
    kept (up to `max_bytes`), and `read_curves` returns them instead of reading and checking
    them again; they are dropped when the block ends."""
    _keeping.append(_Kept(room=max_bytes))
    try:
        yield
    finally:
        _keeping.pop()


def digest(values: np.ndarray) -> int:
    """CRC-32 (zlib) of an array's bytes (C order): what a tile's checksum record holds."""
    return zlib.crc32(np.ascontiguousarray(values).view(np.uint8).reshape(-1))


@dataclass(frozen=True)
class TileGrid:
    """Bands of `tile_rows` whole rows over a rows x cols grid; tile i holds rows
    i*tile_rows .. min((i+1)*tile_rows, rows) - 1, all columns."""
    rows: int
    cols: int
    tile_rows: int

    @property
    def count(self) -> int:
        return -(-self.rows // self.tile_rows)

    def tiles(self) -> list[int]:
        return list(range(self.count))

    def bounds(self, tile: int) -> tuple[int, int]:
        """(r0, r1): the tile's rows r0 .. r1-1."""
        return tile * self.tile_rows, min((tile + 1) * self.tile_rows, self.rows)

    def n_points(self, tile: int) -> int:
        r0, r1 = self.bounds(tile)
        return (r1 - r0) * self.cols

    def points(self, tile: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The tile's (x, y) hyperparameter points, row-major: (n, 2) float64."""
        r0, r1 = self.bounds(tile)
        return grid_points(np.asarray(x), np.asarray(y)[r0:r1])

    def describe(self, tile: int) -> str:
        r0, r1 = self.bounds(tile)
        return f"tile {tile} (rows {r0}-{r1 - 1})"


def tile_rows_step(cols: int, tile_batch: int) -> int:
    """Tiles must hold whole chunks: tile_rows * cols a multiple of tile_batch, i.e. tile_rows a
    multiple of this."""
    return tile_batch // math.gcd(cols, tile_batch)


def default_tile_rows(rows: int, cols: int, tile_batch: int) -> int:
    """The fewest rows, a multiple of `tile_rows_step`, that hold TILE_POINTS points (at most
    all rows)."""
    step = tile_rows_step(cols, tile_batch)
    wanted = -(-TILE_POINTS // cols)
    return min(rows, step * -(-wanted // step))


def curve_chunks(tile_rows: int, cols: int, length: int, itemsize: int) -> tuple[int, int, int]:
    """Chunk shape of a curves array: one tile in (row, col), all of T unless a chunk would
    exceed MAX_CHUNK_BYTES (then T is split)."""
    t = max(1, min(length, MAX_CHUNK_BYTES // max(1, tile_rows * cols * itemsize)))
    return tile_rows, cols, t


class RunStore:
    def __init__(self, group, path: Path):
        self.group, self.path = group, Path(path)

    # ---- creation and opening --------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, *, config: dict, x: np.ndarray, y: np.ndarray,
               curve_lengths: dict[str, int], schedule: dict, dtype: str,
               extra: dict | None = None, tile_rows: int | None = None,
               with_points: bool = False) -> RunStore:
        """A new, empty store for a grid of len(y) x len(x) points; curve_lengths: metric -> T.

        Built under a temporary name beside `path` and renamed into place, so a crash never
        leaves a store without its arrays. `tile_rows`: rows per tile (default: all rows, one
        tile, as a store written in one go needs; `run.execute` passes its own). `with_points`:
        a store of arbitrary points (`points/xy`, written block by block with `write_points`)
        instead of the grid of the axes.
        """
        import zarr
        path = Path(path)
        rows, cols = len(y), len(x)
        tile = max(1, min(int(tile_rows or rows), rows))
        grid = TileGrid(rows, cols, tile)
        tmp = new_staging_folder(path)
        try:
            group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
            axes = group.create_group("axes")
            axes.create_array("x", data=np.asarray(x, dtype=np.float64))
            axes.create_array("y", data=np.asarray(y, dtype=np.float64))
            curves = group.create_group("curves")
            itemsize = np.dtype(dtype).itemsize
            for metric, length in curve_lengths.items():
                curves.create_array(metric, shape=(rows, cols, length),
                                    chunks=curve_chunks(tile, cols, length, itemsize),
                                    dtype=dtype, fill_value=np.nan)
            if with_points:
                group.create_group("points").create_array(
                    "xy", shape=(rows, cols, 2), chunks=(tile, cols, 2), dtype="float64",
                    fill_value=np.nan)
            tiles = group.create_group("tiles")
            for name, kind in (("stored", "int32"), ("attempts", "int32"), ("seconds", "float64")):
                tiles.create_array(name, shape=(grid.count,), chunks=(1,), dtype=kind, fill_value=0)
            columns = ["count", *sorted(curve_lengths), "points"]
            tiles.create_array("checksums", shape=(grid.count, len(columns)),
                               chunks=(1, len(columns)), dtype="uint64", fill_value=0)
            group.attrs.update({
                "format": FORMAT, "format_version": FORMAT_VERSION, "config": config,
                "schedule": schedule, "tile_rows": tile, "complete": False, "sessions": [],
                "checksum": {"hash": CHECKSUM_HASH, "columns": columns},
                **(extra or {}),
            })
            os.chmod(tmp, 0o777 & ~_umask())           # mkdtemp makes it private (0700)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(path, mode="r+")

    @classmethod
    def open(cls, path: Path, mode: str = "r") -> RunStore:
        import zarr
        path = Path(path)
        if not path.exists():
            raise StoreError(f"store: {path} does not exist")
        try:
            group = zarr.open_group(str(path), mode=mode, zarr_format=3)
            fmt = group.attrs.get("format")
        except Exception as err:  # zarr raises many kinds for a damaged store
            raise StoreError(f"store: {path} is not a readable zarr v3 store ({type(err).__name__})") from None
        if fmt != FORMAT:
            raise StoreError(f"store: {path} is not an nnfractal run store (format {fmt!r})")
        return cls(group, path)

    # ---- contents ----------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.group.attrs["config"])

    @property
    def x(self) -> np.ndarray:
        return self.group["axes/x"][:]

    @property
    def y(self) -> np.ndarray:
        return self.group["axes/y"][:]

    @property
    def metrics(self) -> list[str]:
        return sorted(name for name, _ in self.group["curves"].arrays())

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete", False))

    def write_curves(self, metric: str, flat_start: int, curves: np.ndarray) -> None:
        """Write curves (k, T) of points flat_start .. flat_start+k (row-major) into the store.

        Whole rows go in one assignment (one write per chunk); a ragged start or end row is
        written on its own."""
        self._forget_kept()
        arr = self.group[f"curves/{metric}"]
        rows, cols, _ = arr.shape
        curves = np.asarray(curves)
        i, end = flat_start, flat_start + len(curves)
        while i < end:
            r, c = divmod(i, cols)
            if c == 0 and end - i >= cols:
                n_rows = (end - i) // cols
                arr[r:r + n_rows] = curves[i - flat_start:i - flat_start + n_rows * cols].reshape(
                    n_rows, cols, -1)
                i += n_rows * cols
                continue
            n = min(cols - c, end - i)
            arr[r, c:c + n, :] = curves[i - flat_start:i - flat_start + n]
            i += n

    def read_curves(self, metric: str = "train_loss") -> np.ndarray:
        """All curves of a metric: (rows, cols, T); read-only when they were kept by a check
        (`keep_verified`)."""
        kept = self._kept_curves().get(metric)
        if kept is not None:
            return kept
        if f"curves/{metric}" not in self.group:
            raise StoreError(f"readout: {metric!r} was not recorded in {self.path} "
                             f"(allowed: {', '.join(self.metrics)})")
        checked = self._checked_state() if self.checksummed else None
        try:
            curves = self.group[f"curves/{metric}"][:]
        except Exception as err:
            raise StoreError(f"store: {self.path}/curves/{metric} cannot be read, a chunk file is "
                             f"damaged ({one_line(err)})") from None
        if checked is not None:
            grid = self.tile_grid

            def block(tile: int) -> dict[str, np.ndarray]:
                r0, r1 = grid.bounds(tile)
                return {metric: curves[r0:r1].reshape((r1 - r0) * grid.cols, -1)}
            self._check_tiles(block, grid.tiles(), checked)
        return curves

    @property
    def has_points(self) -> bool:
        return "points" in self.group

    def write_points(self, row: int, points: np.ndarray) -> None:
        """Store points (rows_k * cols, 2), row-major, from grid row `row` on (whole rows)."""
        cols = self.group["axes/x"].shape[0]
        self.group["points/xy"][row:row + len(points) // cols] = np.asarray(
            points, dtype=np.float64).reshape(-1, cols, 2)

    def read_points(self, row0: int, row1: int) -> np.ndarray:
        """The stored points of rows row0 .. row1-1: (n, 2) row-major (NaN where not planned)."""
        return self.group["points/xy"][row0:row1].reshape(-1, 2)

    def tile_points(self, tile: int) -> np.ndarray:
        """The (x, y) hyperparameters of a tile's points: from points/xy in a store of sampled
        points, else the grid of the axes. (n, 2) float64, row-major."""
        if self.has_points:
            return self.read_points(*self.tile_grid.bounds(tile))
        return self.tile_grid.points(tile, self.x, self.y)

    def update_attrs(self, **values: Any) -> None:
        self.group.attrs.update(values)

    def mark_complete(self) -> None:
        self.group.attrs["complete"] = True

    # ---- tiles ---------------------------------------------------------------------------------
    @property
    def has_tiles(self) -> bool:
        return "tiles" in self.group and "tile_rows" in self.group.attrs

    @property
    def tile_grid(self) -> TileGrid:
        if getattr(self, "_tile_grid", None) is None:      # array metadata only, no chunk read
            rows, cols = self.group["axes/y"].shape[0], self.group["axes/x"].shape[0]
            self._tile_grid = TileGrid(rows, cols, int(self.group.attrs["tile_rows"]))
        return self._tile_grid

    def tile_state(self) -> dict[str, np.ndarray]:
        """stored, attempts, seconds: (tiles,) each."""
        try:
            return {name: self.group[f"tiles/{name}"][:] for name in ("stored", "attempts", "seconds")}
        except Exception as err:
            raise StoreError(f"store: {self.path}/tiles cannot be read, a flag file is damaged "
                             f"({one_line(err)})") from None

    def tile_flags(self, tile: int) -> tuple[int, float]:
        """(stored points, compute seconds) of one tile: two small chunk files."""
        try:
            return (int(self.group["tiles/stored"][tile]), float(self.group["tiles/seconds"][tile]))
        except Exception as err:
            raise StoreError(f"store: {self.path}/tiles of tile {tile} cannot be read "
                             f"({one_line(err)})") from None

    def tile_counts(self) -> np.ndarray:
        """(tiles,) int: the number of points of each tile."""
        grid = self.tile_grid
        return np.array([grid.n_points(t) for t in grid.tiles()])

    def done_tiles(self) -> np.ndarray:
        """(tiles,) bool: tiles whose curves are all stored."""
        return self.tile_state()["stored"] >= self.tile_counts()

    def begin_tile(self, tile: int) -> int:
        """Count one more training attempt of a tile; returns the new count."""
        arr = self.group["tiles/attempts"]
        n = int(arr[tile]) + 1
        arr[tile] = n
        return n

    def read_tile(self, tile: int) -> dict[str, np.ndarray]:
        """The stored curves of a tile, metric -> (n, T) row-major."""
        r0, r1 = self.tile_grid.bounds(tile)
        out = {}
        for metric in self.metrics:
            try:
                block = self.group[f"curves/{metric}"][r0:r1]
            except Exception as err:
                raise StoreError(f"store: {self.path}/curves/{metric} {self.tile_grid.describe(tile)} "
                                 f"cannot be read, its chunk file is damaged ({one_line(err)})") from None
            out[metric] = block.reshape((r1 - r0) * self.tile_grid.cols, -1)
        if self.checksummed:
            self._check_tiles(lambda _: out, [tile], self._checked_state())
        return out

    def write_tile(self, tile: int, curves: dict[str, np.ndarray], stored: int,
                   seconds: float) -> None:
        """Write a tile's curves (metric -> (n, T), row-major), then its flags: `stored` points
        are now valid, after `seconds` of compute in all."""
        self._forget_kept()
        r0, r1 = self.tile_grid.bounds(tile)
        for metric, c in curves.items():
            self.group[f"curves/{metric}"][r0:r1] = c.reshape(r1 - r0, self.tile_grid.cols, -1)
        if self.checksummed:            # after the curves, before the flags: see the docstring
            self.group["tiles/checksums"][tile] = self._record(tile, curves, int(stored))
        # The flags go last: a crash before this line leaves the tile counted as before.
        self.group["tiles/seconds"][tile] = float(seconds)
        self.group["tiles/stored"][tile] = int(stored)
        _writes[0] += 1
        _signal_hook(_writes[0])

    def mark_all_tiles_stored(self) -> None:
        """Flag every tile as stored, with its checksum record of what is on disk (a run that
        wrote its curves without tiles: --adaptive, an explorer window)."""
        grid = self.tile_grid
        if self.checksummed:
            for tile in grid.tiles():
                r0, r1 = grid.bounds(tile)
                block = {m: self.group[f"curves/{m}"][r0:r1].reshape((r1 - r0) * grid.cols, -1)
                         for m in self.metrics}
                self.group["tiles/checksums"][tile] = self._record(tile, block, grid.n_points(tile))
        self.group["tiles/stored"][:] = self.tile_counts()

    def verify_tiles(self) -> None:
        """Read every stored tile once, so a damaged chunk file is found before training on."""
        stored = self.tile_state()["stored"]
        for tile in self.tile_grid.tiles():
            if stored[tile] > 0:
                self.read_tile(tile)

    # ---- checksums ------------------------------------------------------------------------------
    @property
    def checksummed(self) -> bool:
        """True for a store written with tile checksums of this version's kind (stores from
        before them have none)."""
        if getattr(self, "_checksummed", None) is None:
            kind = (self.group.attrs.get("checksum") or {}).get("hash")
            self._checksummed = (self.has_tiles and kind == CHECKSUM_HASH
                                 and "tiles/checksums" in self.group)
        return self._checksummed

    def _dtype(self, metric: str) -> np.dtype:
        if getattr(self, "_dtypes", None) is None:
            self._dtypes = {m: self.group[f"curves/{m}"].dtype for m in self.metrics}
        return self._dtypes[metric]

    def _columns(self) -> list[str]:
        return list(self.group.attrs["checksum"]["columns"])

    def _digests(self, tile: int, curves: dict[str, np.ndarray], count: int,
                 points: bool) -> dict[str, int]:
        """Digests of the first `count` points of `curves` (metric -> (n, T)), and with `points`
        of the tile's points/xy (a store of sampled points)."""
        out = {m: digest(np.asarray(c, dtype=self._dtype(m))[:count]) for m, c in curves.items()}
        if points and self.has_points:
            out["points"] = digest(self.read_points(*self.tile_grid.bounds(tile)))
        return out

    def _record(self, tile: int, curves: dict[str, np.ndarray], count: int) -> np.ndarray:
        """The checksum record of a tile whose first `count` points (row-major) hold `curves`
        (every metric): [count, digest per metric, digest of the tile's points or 0]."""
        got = self._digests(tile, curves, count, points=True)
        return np.array([count] + [got.get(name, 0) for name in self._columns()[1:]],
                        dtype=np.uint64)

    def _checked_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(stored flags (tiles,), checksum records (tiles, columns)): what a check of the curves
        compares them with."""
        try:
            return self.group["tiles/stored"][:], self.group["tiles/checksums"][:]
        except Exception as err:
            raise StoreError(f"store: {self.path}/tiles cannot be read, a flag or checksum file "
                             f"is damaged ({one_line(err)})") from None

    def _kept_curves(self) -> dict[str, np.ndarray]:
        """The curves of this store that the innermost `keep_verified` block keeps ({} if none)."""
        return _keeping[-1].stores.get(str(self.path.resolve()), {}) if _keeping else {}

    def _keep(self, curves: dict[str, np.ndarray]) -> None:
        """Keep checked curves (metric -> (rows, cols, T)) for `read_curves`, if the innermost
        `keep_verified` block has room for them."""
        size = sum(c.nbytes for c in curves.values())
        if not _keeping or size > _keeping[-1].room:
            return
        for c in curves.values():
            c.flags.writeable = False       # handed out to every reader: none may change it
        _keeping[-1].room -= size
        _keeping[-1].stores[str(self.path.resolve())] = curves

    def _forget_kept(self) -> None:
        """Drop the curves kept for this store (it is being written), in every open block."""
        for block in _keeping:
            block.stores.pop(str(self.path.resolve()), None)

    def _check_tiles(self, curves_of, tiles: list[int], checked) -> None:
        """Refuse (StoreError) the first of `tiles` whose curves (`curves_of(tile)`: metric ->
        (n, T), some metrics or all) do not match its checksum record (`checked`: the store's
        `_checked_state`)."""
        stored, records = checked
        for tile in tiles:
            why = self._mismatch(tile, curves_of(tile), records[tile], int(stored[tile]))
            if why:
                raise StoreError(f"store: {self.path} {self.tile_grid.describe(tile)} is damaged "
                                 f"({why})")

    def _mismatch(self, tile: int, curves: dict[str, np.ndarray], record: np.ndarray,
                  stored: int, points: bool = False) -> str | None:
        """Why a tile's data does not match its record, or None. `stored`: its flag. A record
        behind the flag, or one that differs from it in a complete store, was lost; one ahead of
        it in an unfinished store is a write that a kill cut between record and flag (the data
        it covers is checked)."""
        count = int(record[0])
        if count < stored or (self.complete and count != stored):
            return f"its checksum record covers {count} points, its flag {stored}"
        if count == 0:
            return None
        columns = self._columns()
        got = self._digests(tile, curves, count, points)
        bad = [name for name, value in got.items() if value != int(record[columns.index(name)])]
        if bad:
            return (f"{', '.join(bad)} do{'es' if len(bad) == 1 else ''} not match the checksum "
                    "recorded when it was written: a chunk file is missing, replaced or damaged")
        return None

    def planned_tiles(self) -> list[int]:
        """The tiles a complete store must hold: every tile of a grid; the tiles of the blocks
        of a store of sampled points (the rest is room never used)."""
        grid = self.tile_grid
        if not self.has_points:
            return grid.tiles()
        tiles: set[int] = set()
        for block in self.attrs.get("blocks", []):
            r0, r1 = int(block["row"]), int(block["row"]) + int(block["rows"])
            tiles.update(range(r0 // grid.tile_rows, -(-r1 // grid.tile_rows)))
        return sorted(tiles)

    def damaged_tiles(self, keep: bool = False) -> list[tuple[int, str]]:
        """Every tile whose stored data does not match its checksum record, as (tile, why), read
        tile by tile (one chunk each). [] for a store without checksums. A store whose flags or
        records cannot be read at all raises StoreError. `keep`: inside a `keep_verified` block
        with room for them, each metric is read whole instead and, with no tile damaged, kept for
        `read_curves`."""
        if not self.checksummed:
            return []
        flags, records = self._checked_state()
        grid, planned, out = self.tile_grid, set(self.planned_tiles()), []
        arrays = {m: self.group[f"curves/{m}"] for m in self.metrics}   # metadata: raises whole
        whole = self._read_whole(arrays) if keep else {}
        sources = {m: whole.get(m, a) for m, a in arrays.items()}      # an array or zarr's
        for tile in grid.tiles():
            stored = int(flags[tile])
            if self.complete and tile in planned and stored < grid.n_points(tile):
                out.append((tile, f"the store is complete but its flag says {stored} of "
                                  f"{grid.n_points(tile)} points are stored"))
                continue
            if stored == 0 and int(records[tile][0]) == 0:
                continue
            r0, r1 = grid.bounds(tile)
            try:
                curves = {m: a[r0:r1].reshape((r1 - r0) * grid.cols, -1) for m, a in sources.items()}
                why = self._mismatch(tile, curves, records[tile], stored, points=True)
            except Exception as err:            # zarr/zstd raise many kinds for a torn chunk
                why = f"a chunk file cannot be read: {one_line(err, 120)}"
            if why:
                out.append((tile, why))
        if not out and len(whole) == len(arrays):
            self._keep(whole)
        return out

    def _read_whole(self, arrays: dict) -> dict[str, np.ndarray]:
        """Each metric's curves (rows, cols, T) in one read, where the innermost `keep_verified`
        block has room for all of them ({} otherwise); a metric with a chunk file that cannot be
        read is left out (read tile by tile, so that the damaged tile is named)."""
        size = sum(math.prod(a.shape) * a.dtype.itemsize for a in arrays.values())
        if not _keeping or size > _keeping[-1].room:
            return {}
        whole = {}
        for metric, a in arrays.items():
            try:
                whole[metric] = a[:]
            except Exception:                   # noqa: BLE001 - found again per tile, named
                pass
        return whole

    def reset_tiles(self, tiles: list[int]) -> None:
        """Mark `tiles` as not trained (flags, records and seconds to 0, curves to NaN, the store
        incomplete), so that a resume trains them again."""
        self._forget_kept()
        for tile in tiles:
            self.group["tiles/stored"][tile] = 0
            self.group["tiles/seconds"][tile] = 0.0
            self.group["tiles/checksums"][tile] = np.zeros(len(self._columns()), dtype=np.uint64)
            r0, r1 = self.tile_grid.bounds(tile)
            for metric in self.metrics:             # a torn chunk file would still fail reads
                self.group[f"curves/{metric}"][r0:r1] = np.nan
        if tiles:
            self.group.attrs["complete"] = False

    def remove_partial_files(self) -> int:
        """Delete temporary files that a killed write left (zarr's '*.partial'); returns how many."""
        n = 0
        for p in self.path.rglob("*.partial"):
            p.unlink(missing_ok=True)
            n += 1
        return n


def _signal_hook(n_writes: int) -> None:
    """The test hook of the module docstring: send the signal after the N-th tile write."""
    wanted = os.environ.get(SIGNAL_ENV)
    if not wanted:
        return
    count, name = wanted.split(":")
    if n_writes == int(count):
        os.kill(os.getpid(), getattr(signal, f"SIG{name}"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
