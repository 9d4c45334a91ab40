"""A run's results in a zarr v3 store: loss curves, axes, schedule, config and versions.

Layout of ``store.zarr``::

    curves/<metric>   (rows, cols, T) float32 or float64   e.g. curves/train_loss
    axes/x            (cols,) float64   hyperparameter values of the columns (axis units)
    axes/y            (rows,) float64
    attrs             format, format_version, config, schedule, complete, versions

Readers (render, report, explorer) only ever read this store; they never train.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "nnfractal-run"
FORMAT_VERSION = 1


class StoreError(Exception):
    """A store that is missing, foreign or corrupt. The message is one line naming the path."""


class RunStore:
    def __init__(self, group, path: Path):
        self.group, self.path = group, Path(path)

    # ---- creation and opening --------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, *, config: dict, x: np.ndarray, y: np.ndarray,
               curve_lengths: dict[str, int], schedule: dict, dtype: str,
               extra: dict | None = None) -> "RunStore":
        """A new store for a grid of len(y) x len(x) points; curve_lengths: metric -> T."""
        import zarr
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        axes = group.create_group("axes")
        axes.create_array("x", data=np.asarray(x, dtype=np.float64))
        axes.create_array("y", data=np.asarray(y, dtype=np.float64))
        curves = group.create_group("curves")
        rows, cols = len(y), len(x)
        for metric, length in curve_lengths.items():
            # A band of whole rows per chunk keeps chunks ~1-10 MB for typical grids.
            band = max(1, min(rows, int(2**22 // max(1, cols * length))))
            curves.create_array(metric, shape=(rows, cols, length), chunks=(band, cols, length),
                                dtype=dtype, fill_value=np.nan)
        group.attrs.update({
            "format": FORMAT, "format_version": FORMAT_VERSION, "config": config,
            "schedule": schedule, "complete": False, **(extra or {}),
        })
        return cls(group, path)

    @classmethod
    def open(cls, path: Path, mode: str = "r") -> "RunStore":
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
        """Write curves (k, T) of points flat_start .. flat_start+k (row-major) into the store."""
        arr = self.group[f"curves/{metric}"]
        rows, cols, _ = arr.shape
        k = len(curves)
        i = flat_start
        while i < flat_start + k:
            r, c = divmod(i, cols)
            n = min(cols - c, flat_start + k - i)
            arr[r, c:c + n, :] = curves[i - flat_start:i - flat_start + n]
            i += n

    def read_curves(self, metric: str = "train_loss") -> np.ndarray:
        """All curves of a metric: (rows, cols, T)."""
        if f"curves/{metric}" not in self.group:
            raise StoreError(f"readout: {metric!r} was not recorded in {self.path} "
                             f"(allowed: {', '.join(self.metrics)})")
        return self.group[f"curves/{metric}"][:]

    def update_attrs(self, **values: Any) -> None:
        self.group.attrs.update(values)

    def mark_complete(self) -> None:
        self.group.attrs["complete"] = True
