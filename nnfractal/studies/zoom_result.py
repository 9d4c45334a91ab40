"""zoom.json and zoom_plan.json as records (`ZoomResult`, `ZoomPlan`), and the zoom's pooled
dimension (`pooled_dimension`, `POOLED_METHOD`): what a zoom folder holds, apart from the study
that writes it (zoom.py), so that readers (the report) need only this."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnfractal.estimators.boxcount import DimensionEstimate, local_slopes
from nnfractal.storage.records import OMIT_NONE, JsonRecord, read_record
from nnfractal.storage.run_folder import ZOOM_FILE
from nnfractal.storage.store import StoreError
from nnfractal.window import Window as Rect  # zoom.json's own Window is a record

FORMAT = "nnfractal-zoom"
FORMAT_VERSION = 1
PLAN_FORMAT = "nnfractal-zoom-plan"
RESULT_FILE = ZOOM_FILE

POOLED_METHOD = (
    "pooled: inverse-variance weighted mean of the box-counting dimensions of the frames that "
    "have one (variance from each frame's 95% interval: (half-width / 1.96)**2). A frame's error "
    "is mostly systematic (scaling range, pixelisation) and shared by all frames, so pooling does "
    "not shrink it: the interval is the weighted mean of the frames' lower and upper half-widths "
    "around the pooled value, widened to include every frame's estimate (a dimension that drifts "
    "with magnification shows up as a wide interval). pooled_paper: the paper's estimator, median "
    "of the local slopes pooled over all frames' boundaries.")


# ---- the files: zoom_plan.json and zoom.json ----------------------------------------------------

@dataclass(kw_only=True)
class ZoomPlan(JsonRecord):
    """zoom_plan.json: the inputs as given (`center` None: automatic) and, as a check against a
    run changed since, the centre and windows they gave."""
    json_format = PLAN_FORMAT
    format: str = PLAN_FORMAT
    format_version: int = FORMAT_VERSION
    run_dir: str
    factor: float
    depth: float
    center: list[float] | None = None
    center_source: str
    resolution: int | None = None
    max_storage: float | None = None
    planned_center: list[float]
    planned_windows: list[list[float]]


@dataclass(kw_only=True)
class Centre(JsonRecord):
    """A centre in axis units; `source` ("given" or "auto") for the zoom's own."""
    x: float
    y: float
    source: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(kw_only=True)
class Window(JsonRecord):
    """A frame's window in axis units: [x_min, x_max], [y_min, y_max]."""
    x: list[float]
    y: list[float]


@dataclass(kw_only=True)
class FloatLimit(JsonRecord):
    precision: str
    min_ulps_per_pixel: float
    stopped_early: bool
    message: str | None
    ulps_per_pixel_requested_frames: list[float]


@dataclass(kw_only=True)
class ZoomFrame(JsonRecord):
    """One frame of zoom.json; the last three fields come from the analysis."""
    index: int
    dir: str                             # relative to the zoom folder
    mnmx: list[float]
    window: Window
    center: Centre
    magnification: float
    decades: float
    ulps_per_pixel: float
    copied_from_run: bool = False
    dimension: dict | None = field(default=None, metadata=OMIT_NONE)
    fraction_converged: float | None = field(default=None, metadata=OMIT_NONE)
    n_boundary_pixels: int | None = field(default=None, metadata=OMIT_NONE)

    @property
    def window_xy(self) -> tuple[float, float, float, float]:
        return Rect.from_mnmx(self.mnmx).extent


@dataclass(kw_only=True)
class ZoomResult(JsonRecord):
    """zoom.json: windows, centre, factor, float limit, per-frame and pooled dimension.
    `training_and_frames_s`: this session's training (a resumed zoom: the resumed part only)."""
    json_format = FORMAT
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    source_run: str
    preset: str = ""
    axis_scale: str = "log"
    axis_units: str = "base-10 exponents"
    center: Centre
    center_follows_boundary: bool = False     # auto: each frame centred on the one before's boundary
    factor: float
    depth_requested: float
    depth_reached: float
    resolution: int
    n_frames: int
    n_frames_requested: int
    float_limit: FloatLimit | None = None
    frames: list[ZoomFrame]
    training_and_frames_s: float | None = None
    fit_range: list[float] | None = None
    pooled: dict | None = None
    pooled_paper: dict | None = None
    pooled_method: str = POOLED_METHOD
    complete: bool = False


def read_zoom(zoom_dir: Path) -> ZoomResult:
    """The zoom.json of a zoom folder (StoreError, one line, for anything else)."""
    result = read_record(ZoomResult, Path(zoom_dir) / RESULT_FILE, "zoom description", "zoom")
    if not result.frames:
        raise StoreError(f"zoom: {Path(zoom_dir) / RESULT_FILE} is not an nnfractal zoom "
                         "description (no frames)")
    return result


def pooled_dimension(estimates):
    """One dimension for a zoom from the frames' `estimate_dimension` results (see POOLED_METHOD).

    Returns a DimensionEstimate with method "zoom-weighted-mean"; ok=False with a plain reason
    when no frame has an estimate.
    """

    ests = list(estimates)
    if not ests:
        raise ValueError("pooled_dimension needs at least one frame's estimate")
    n_pix = int(sum(e.n_boundary_pixels for e in ests))
    ok = [e for e in ests if e.ok]
    # Box counts: the mean over the frames with a boundary (all frames share one shape).
    ref = next((e for e in ests if e.n_boundary_pixels), ests[0])
    sizes = np.asarray(ref.sizes, dtype=int)
    shaped = [e for e in ests if e.n_boundary_pixels and np.array_equal(e.sizes, sizes)]
    counts = np.mean([e.counts for e in shaped], axis=0) if shaped else np.zeros(len(sizes))
    slopes = local_slopes(sizes, counts) if len(sizes) > 1 else np.zeros(0)
    slope_sizes = np.sqrt(sizes[1:] * sizes[:-1].astype(float)) if len(sizes) > 1 else np.zeros(0)
    common = dict(sizes=sizes, counts=counts, local_slopes=slopes, slope_sizes=slope_sizes,
                  method="zoom-weighted-mean", n_boundary_pixels=n_pix, n_frames=len(ests))
    if not ok:
        reasons = sorted({e.reason for e in ests}) or ["no frames"]
        return DimensionEstimate(dimension=None, ci_low=None, ci_high=None,
                                 fit_sizes=np.zeros(0, dtype=int), ok=False,
                                 reason=f"no zoom frame has a dimension estimate "
                                        f"({'; '.join(reasons)})", **common)
    d = np.array([e.dimension for e in ok])
    lo = np.array([e.ci_low for e in ok])
    hi = np.array([e.ci_high for e in ok])
    sigma = np.maximum((hi - lo) / (2 * 1.96), 1e-6)
    w = 1.0 / sigma ** 2
    dim = float(np.sum(w * d) / np.sum(w))
    lo_half = float(np.sum(w * (d - lo)) / np.sum(w))
    hi_half = float(np.sum(w * (hi - d)) / np.sum(w))
    fit = sorted(set.intersection(*(set(int(s) for s in e.fit_sizes) for e in ok)))
    used = [i for i, e in enumerate(ests) if e.ok]
    chi2 = float(np.sum(w * (d - dim) ** 2) / (len(d) - 1)) if len(d) > 1 else None
    return DimensionEstimate(
        dimension=dim, ci_low=float(min(dim - lo_half, d.min())),
        ci_high=float(max(dim + hi_half, d.max())), fit_sizes=np.asarray(fit, dtype=int),
        ok=True, reason="", stderr=float(1.0 / math.sqrt(np.sum(w))), intercept=None,
        extra={"frames_used": used, "weights": (w / w.sum()).tolist(),
               "frame_dimensions": d.tolist(), "spread": float(d.max() - d.min()),
               "chi2_per_dof": chi2},
        **common)
