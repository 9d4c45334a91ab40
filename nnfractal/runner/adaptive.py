"""Adaptive refinement (``--adaptive``): train the pixels near the boundary, fill the rest.

A full grid trains every pixel, although most pixels lie deep inside a converged or a diverged
region. Adaptive refinement trains a coarse lattice first, then repeatedly halves the lattice's
stride and trains the new lattice points only inside cells whose corners disagree in sign (and in
a guard band around them), down to stride 1. Every other pixel is *filled*.

* **Trained pixels are pixels of the final grid.** The lattice of stride ``s`` holds the row (and
  column) indices ``0, s, 2s, ...`` plus the last one, so a trained pixel has exactly the
  hyperparameters of the full grid's pixel and, since the engine runs fixed-size chunks whose
  models never see each other, exactly the same curve, bit for bit.
* **Batched engine calls.** A level's new points go to the engine together (one call, plus one
  per boundary-following round), so every chunk but the last of each call is full.
* **Filling copies a curve.** The store keeps raw curves and every map recomputes scores from
  them, so a filled pixel gets the curves of its *nearest trained pixel* (Euclidean distance in
  pixels). Inside a region this gives the map flat patches (a Voronoi mosaic of the trained
  pixels' scores), i.e. the picture shows which pixels were measured instead of inventing
  texture; near the boundary everything is trained, so the boundary and its dimension come from
  real curves. Interpolating curves would look smoother but would be made-up numbers whose sign
  can differ from both neighbours.
* **Guard band and boundary following.** The boundary has structure at every scale: a cell whose
  four corners agree can still hide a filament, an island, or the "dust" of isolated diverged
  pixels that lies a few pixels off the boundary of the paper's maps. Around every cell with
  disagreeing corners, every cell within ``guard`` pixels (of the final grid) is refined too, and
  after each level the new boundary is followed: cells that became mixed get their own guard
  band, round after round, until nothing new turns up. Corners of guard cells that were
  themselves filled get trained as well, so each sign test starts from what the refined region
  really holds. What no refinement can find is an island smaller than the coarse lattice's
  spacing farther than the guard band from every other boundary.

The store records which pixels were trained (``adaptive/trained`` (rows, cols) bool), the stride
of the level that trained each (``adaptive/stride``, 0 = filled) and which trained pixel each
filled one copies (``adaptive/source``, flat row-major index); readers that do not know the
group still see an ordinary full grid of curves.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnfractal.config import Config
from nnfractal.render.maps import trained_figure
from nnfractal.training.cpu_usage import NO_USAGE
from nnfractal.training.engine import TrainResult, train
from nnfractal.training.measure import point_scores  # the refinement's sign test is the map's rule

GROUP = "adaptive"


# ---- lattices and cells ------------------------------------------------------------------------

def lattice(n: int, stride: int) -> np.ndarray:
    """Indices 0, stride, 2*stride, ... of an axis of n pixels, plus the last index n - 1."""
    return np.unique(np.append(np.arange(0, n, stride), n - 1))


def coarse_stride(n: int, coarse: int) -> int:
    """The largest power of two whose lattice on an axis of n pixels has >= `coarse` points
    (1 when n <= coarse: the "coarse" grid is then the full grid)."""
    s = 1
    while len(lattice(n, 2 * s)) >= coarse and 2 * s < n:
        s *= 2
    return s


def _cells_of(n: int, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel index 0..n-1, the two lattice cells whose closed interval holds it.

    Cell a spans [lat[a], lat[a+1]]. `lo` is the cell with lat[a] <= r < lat[a+1] (the last cell
    for r = n - 1), `hi` the cell with lat[a] < r <= lat[a+1] (cell 0 for r = 0); they differ only
    for pixels on an interior lattice line, which belong to both neighbouring cells. (n,) each.
    """
    r = np.arange(n)
    last = len(lat) - 2
    lo = np.clip(np.searchsorted(lat, r, side="right") - 1, 0, last)
    hi = np.clip(np.searchsorted(lat, r, side="left") - 1, 0, last)
    return lo, hi


def _dilate(mask: np.ndarray, g: int) -> np.ndarray:
    """Grow a (m, n) bool mask by g cells in every direction (a (2g+1)^2 square)."""
    if g <= 0:
        return mask
    out = mask.copy()
    for axis in (0, 1):
        src, out = out, out.copy()
        n = src.shape[axis]
        for d in range(1, min(g, n - 1) + 1):
            lead = [slice(None)] * 2
            trail = [slice(None)] * 2
            lead[axis], trail[axis] = slice(d, None), slice(None, -d)
            out[tuple(lead)] |= src[tuple(trail)]
            out[tuple(trail)] |= src[tuple(lead)]
    return out


def nearest_trained(trained: np.ndarray, rows_at: np.ndarray | None = None,
                    cols_at: np.ndarray | None = None) -> np.ndarray:
    """For every pixel, the flat (row-major) index of the nearest trained pixel: (rows, cols) int64,
    or only at the pixels rows_at x cols_at: (len(rows_at), len(cols_at)).

    Exact Euclidean nearest neighbour in two separable passes (no scipy): first the nearest trained
    row within each column, then, per row, the column minimising dcol^2 + drow^2. Ties go to the
    smaller index. A trained pixel is its own nearest.
    """
    rows, cols = trained.shape
    if not trained.any():
        raise ValueError("nearest_trained needs at least one trained pixel")
    rows_at = np.arange(rows) if rows_at is None else np.asarray(rows_at)
    cols_at = np.arange(cols) if cols_at is None else np.asarray(cols_at)
    big = 4 * (rows + cols)
    r = np.arange(rows)[:, None]
    up = np.maximum.accumulate(np.where(trained, r, -big), axis=0)[rows_at]      # at or above
    down = np.minimum.accumulate(np.where(trained, r, big)[::-1], axis=0)[::-1][rows_at]
    q = rows_at[:, None]
    use_up = (q - up) <= (down - q)
    near_row = np.where(use_up, up, down)                                        # (rq, cols)
    # Squared distances are integers < 2^24 for grids up to ~2800 px: float32 is exact.
    drow = np.where(use_up, q - up, down - q).astype(np.float32)
    drow2 = np.where(drow >= big // 2, np.float32(np.inf), drow ** 2)             # empty column
    dcol2 = (cols_at[:, None].astype(np.float32) - np.arange(cols, dtype=np.float32)[None, :]) ** 2
    out = np.empty((len(rows_at), len(cols_at)), dtype=np.int64)
    step = max(1, int(2**23 // (len(cols_at) * cols)))
    for lo in range(0, len(rows_at), step):
        d2 = dcol2[None, :, :] + drow2[lo:lo + step, None, :]               # (b, cq, cols)
        best = np.argmin(d2, axis=2)                                         # (b, cq)
        out[lo:lo + step] = near_row[lo:lo + step][np.arange(len(best))[:, None], best] * cols + best
    return out


# ---- the refinement, independent of how points are trained ------------------------------------

@dataclass
class Refinement:
    """Which pixels a refinement trained, in which order and level, and what fills the rest."""
    shape: tuple[int, int]              # (rows, cols)
    order: np.ndarray                   # (k,) flat indices of the trained pixels, training order
    stride: np.ndarray                  # (rows, cols) int32: stride of the level that trained it, 0 = filled
    source: np.ndarray                  # (rows, cols) int64: flat index of the trained pixel it holds
    levels: list[dict] = field(default_factory=list)   # per level: stride, cells, flagged, new points

    @property
    def trained(self) -> np.ndarray:
        """(rows, cols) bool."""
        return self.stride > 0

    @property
    def fraction_trained(self) -> float:
        return len(self.order) / (self.shape[0] * self.shape[1])


MAX_FOLLOW = 32     # boundary-following rounds per level (each one engine call)


def refine(rows: int, cols: int, stride0: int, guard: int,
           converged_of: Callable[[np.ndarray, int], np.ndarray], log=lambda *_: None) -> Refinement:
    """Run the refinement on a rows x cols grid, starting from the lattice of stride `stride0`.

    `converged_of(flat_indices (k,), stride) -> (k,) bool` trains those pixels (row-major flat
    indices, all new) and says which converged. A cell of the stride-s lattice is *mixed* when its
    four corners disagree (trained sign, or the sign of the nearest trained pixel for a corner
    that is filled); mixed cells grown by the guard band are *flagged*. Each level:

    1. refine: train every lattice point of the halved stride h inside a flagged s-cell;
    2. follow: at stride h, train the h-lattice points of flagged h-cells that are still untrained,
       and repeat until none is left (at most MAX_FOLLOW rounds). This follows boundary that the
       coarser lattice could not see (a filament leaving the refined band, an island found at
       the edge of the band) and gives it its guard band too.

    The guard band is `guard` pixels of the final grid wide on every side: ceil(guard / s) cells
    at stride s, so at the last level every pixel within `guard` pixels of a mixed 2x2 cell is
    trained.
    """
    stride = np.zeros((rows, cols), dtype=np.int32)
    conv = np.zeros((rows, cols), dtype=bool)          # valid where trained
    order: list[np.ndarray] = []
    levels: list[dict] = []

    def train_new(new: np.ndarray, s: int) -> int:
        flat = np.flatnonzero(new)
        if len(flat):
            conv.flat[flat] = np.asarray(converged_of(flat, s), dtype=bool)
            stride.flat[flat] = s
            order.append(flat)
        return len(flat)

    def cells_guard(s: int) -> int:
        return -(-guard // s)

    def near_mixed(s: int, h: int) -> tuple[np.ndarray, int, int, int]:
        """Untrained stride-h lattice points inside flagged stride-s cells: (rows, cols) bool,
        and the numbers of cells, mixed cells and flagged cells."""
        lr, lc = lattice(rows, s), lattice(cols, s)
        corners = conv.flat[nearest_trained(stride > 0, lr, lc)]        # trained or nearest sign
        quad = np.stack([corners[:-1, :-1], corners[1:, :-1], corners[:-1, 1:], corners[1:, 1:]])
        mixed = quad.any(0) & ~quad.all(0)                              # (cells_r, cells_c)
        flagged = _dilate(mixed, cells_guard(s))
        (rlo, rhi), (clo, chi) = _cells_of(rows, lr), _cells_of(cols, lc)
        inside = (flagged[np.ix_(rlo, clo)] | flagged[np.ix_(rlo, chi)]
                  | flagged[np.ix_(rhi, clo)] | flagged[np.ix_(rhi, chi)])   # (rows, cols)
        on_lattice = np.zeros((rows, cols), dtype=bool)
        on_lattice[np.ix_(lattice(rows, h), lattice(cols, h))] = True
        return inside & on_lattice & (stride == 0), int(mixed.size), int(mixed.sum()), int(flagged.sum())

    s = stride0
    first = np.zeros((rows, cols), dtype=bool)
    first[np.ix_(lattice(rows, s), lattice(cols, s))] = True
    n0 = train_new(first, s)
    levels.append({"stride": s, "cells": None, "mixed": None, "flagged": None, "new_points": n0,
                   "follow_points": 0, "follow_rounds": 0})
    log(f"adaptive: stride {s}: {n0} points (coarse lattice)")
    while s > 1:
        h = s // 2
        new, cells, mixed, flagged = near_mixed(s, h)
        n_new = train_new(new, h)
        n_follow = rounds = 0
        while rounds < MAX_FOLLOW:
            more = near_mixed(h, h)[0]
            if not more.any():
                break
            n_follow += train_new(more, h)
            rounds += 1
        levels.append({"stride": h, "cells": cells, "mixed": mixed, "flagged": flagged,
                       "new_points": n_new, "follow_points": n_follow, "follow_rounds": rounds})
        log(f"adaptive: stride {h}: {mixed} of {cells} cells of stride {s} mixed, {flagged} with "
            f"the guard band: {n_new} points; following the boundary: {n_follow} more in "
            f"{rounds} round(s)")
        s = h
    trained_order = np.concatenate(order)
    return Refinement((rows, cols), trained_order, stride, nearest_trained(stride > 0), levels)


# ---- with the engine ---------------------------------------------------------------------------

@dataclass
class AdaptiveResult:
    train: TrainResult              # curves of the trained pixels only, rows in refinement.order
    refinement: Refinement


def train_adaptive(cfg: Config, family, data, x: np.ndarray, y: np.ndarray,
                   progress: bool = False, log=lambda *_: None) -> AdaptiveResult:
    """Refine the grid x (cols,) by y (rows,) with the engine; curves of the trained pixels only.

    The coarse stride comes from cfg.adaptive_coarse (points per side of the coarse lattice), the
    guard band from cfg.adaptive_guard. Wall time counts training and the refinement's own work.
    """
    rows, cols = len(y), len(x)
    parts: list[dict[str, np.ndarray]] = []
    schedule, device, usage = None, None, NO_USAGE

    def converged_of(flat: np.ndarray, s: int) -> np.ndarray:
        nonlocal schedule, device, usage
        r, c = np.divmod(flat, cols)
        points = np.stack([x[c], y[r]], axis=1)
        res = train(cfg, family, data, points, progress=progress, desc=f"stride {s}")
        schedule, device, usage = res.schedule, res.device, usage + res.usage
        parts.append(res.curves)
        return point_scores(cfg, res.curves, res.schedule.steps_per_epoch) < 0

    start = time.perf_counter()
    s0 = coarse_stride(min(rows, cols), cfg.adaptive_coarse)
    ref = refine(rows, cols, s0, cfg.adaptive_guard, converged_of, log=log)
    curves = {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}
    result = TrainResult(curves, schedule, time.perf_counter() - start, device,
                         cpu_time=usage.cpu_s, threads=usage.threads, wait_time=usage.wait_s)
    log(f"adaptive: trained {len(ref.order)} of {rows * cols} pixels ({ref.fraction_trained:.1%}), "
        f"filled the rest from the nearest trained pixel")
    return AdaptiveResult(result, ref)


def write_adaptive(store, result: AdaptiveResult, cfg: Config) -> None:
    """Write every pixel's curves (trained or copied) and the refinement's arrays into the store."""
    ref = result.refinement
    rows, cols = ref.shape
    where = np.full(rows * cols, -1, dtype=np.int64)        # flat pixel -> row in the curves
    where[ref.order] = np.arange(len(ref.order))
    take = where[ref.source.ravel()]
    for metric, curves in result.train.curves.items():
        band = max(1, int(2**22 // max(1, cols * curves.shape[1])))
        for r0 in range(0, rows, band):
            lo, hi = r0 * cols, min(rows, r0 + band) * cols
            store.write_curves(metric, lo, curves[take[lo:hi]])
    group = store.group.create_group(GROUP)
    group.create_array("trained", data=ref.trained)
    group.create_array("stride", data=ref.stride)
    group.create_array("source", data=ref.source)
    store.update_attrs(adaptive={
        "coarse": cfg.adaptive_coarse, "coarse_stride": int(ref.levels[0]["stride"]),
        "guard": cfg.adaptive_guard, "n_trained": int(len(ref.order)),
        "n_pixels": int(rows * cols), "fraction_trained": ref.fraction_trained,
        "levels": ref.levels, "fill": "curves of the nearest trained pixel"})


def run_adaptive(cfg: Config, family, data, store, x: np.ndarray, y: np.ndarray,
                 progress: bool = False, log=print) -> TrainResult:
    """run.execute's training step for --adaptive: refine, then write curves and the mask to the
    store. Returns the trained pixels' TrainResult (len(result.losses) = trained pixels)."""
    result = train_adaptive(cfg, family, data, x, y, progress=progress, log=log)
    write_adaptive(store, result, cfg)
    return result.train


# ---- readers -----------------------------------------------------------------------------------

def read_refinement(store) -> dict | None:
    """{'trained', 'stride', 'source': (rows, cols) arrays, 'info': attrs} of an adaptive run,
    or None for a full grid."""
    if GROUP not in store.group:
        return None
    g = store.group[GROUP]
    return {"trained": g["trained"][:], "stride": g["stride"][:], "source": g["source"][:],
            "info": dict(store.attrs.get("adaptive") or {})}


def render_adaptive(run_dir: Path, store, final: np.ndarray, extent, xlabel: str, ylabel: str,
                    axis_scale: str, title: str, figsize=(6.0, 5.0), dpi: int = 100) -> dict:
    """trained.png of an adaptive run (nothing for a full grid); returns summary figures."""
    info = read_refinement(store)
    if info is None:
        return {}
    fig = trained_figure(final, info["stride"], extent, xlabel, ylabel, axis_scale, title,
                         figsize=(2 * figsize[0], figsize[1]), dpi=dpi)
    fig.savefig(Path(run_dir) / "trained.png")
    meta = info["info"]
    n, k = int(info["trained"].size), int(info["trained"].sum())
    return {"adaptive": {"n_trained": k, "n_pixels": n, "fraction_trained": k / n,
                         "work_saving": n / k, "coarse": meta.get("coarse"),
                         "coarse_stride": meta.get("coarse_stride"), "guard": meta.get("guard"),
                         "levels": meta.get("levels"), "fill": meta.get("fill")}}
