"""Sampling estimators of a boundary's dimension: the uncertainty exponent and transects.

A box count needs a full grid, and on a finite grid most of its scaling range is made of boxes
larger than the boundary's local oscillation, which count a rough curve as if it were smooth (the
bias measured on Weierstrass boundaries). A sampling estimator never needs the grid: it evaluates
the outcome (the sign of the score) at chosen points only, so it reaches scales a million times
smaller than the window at a cost that does not grow with depth.

Both estimators take ``evaluate(points) -> scores``: points ``(k, 2)`` float64 ``(u, v)`` in
*window units* (the window is the unit square: u along x, v along y; on log axes a unit is the
window's width in decades), scores ``(k,)`` float, negative on one side of the boundary
(converged), positive on the other. Analytic boundaries (``known_sets.analytic_boundary``) give
it directly; ``studies.sample`` gives it by training networks with the engine. Each estimator
calls ``evaluate`` a few times with whole batches (a coarse map, then one batch per stage), so an
evaluator that trains can store every batch as it goes.

* :func:`uncertainty_exponent` (:mod:`.uncertainty`) -- pairs of points ``eps`` apart: the
  fraction that differ is a curve term ``A eps^(2 - D)`` plus a chaos term ``F`` measured by
  moves of a few rounding units; it reports ``D`` above the chaotic band, the chaos fraction of
  every stage and the band's scale ``eps*``.
* :func:`transect_dimension` (:mod:`.transect`) -- equally spaced points on segments across the
  boundary; sign changes between points ``s`` apart scale as ``s^-(D - 1)``.

Each states its own validity rule (hits per scale, scaling range in decades) and refuses to give a
number otherwise (``ok=False`` with the reason). This module gathers their public names.
"""
from __future__ import annotations

from .sampling_fit import (
    REASON_NO_BOUNDARY,
    REASON_TOO_FEW,
    SamplingError,
    SamplingEstimate,
    scale_picture,
)
from .transect import (
    TRANSECT_COARSE,
    TREND_OFFSET_DEG,
    check_transect_args,
    densest_boundary_cell,
    densest_edge_cell,
    sign_flux,
    transect_angle,
    transect_block_counts,
    transect_dimension,
    transect_estimate,
    transect_points,
)
from .uncertainty import (
    EPS_CAP,
    REASON_CHAOS,
    Stage,
    check_uncertainty_args,
    coarse_boundary_cells,
    floor_points_for,
    uncertainty_estimate,
    uncertainty_exponent,
)

SAMPLING_METHODS = ("uncertainty", "transect")   # the estimators' names, as commands take them

__all__ = [
    "EPS_CAP",
    "SAMPLING_METHODS",
    "REASON_CHAOS",
    "REASON_NO_BOUNDARY",
    "REASON_TOO_FEW",
    "TRANSECT_COARSE",
    "TREND_OFFSET_DEG",
    "SamplingError",
    "SamplingEstimate",
    "floor_points_for",
    "Stage",
    "check_transect_args",
    "check_uncertainty_args",
    "coarse_boundary_cells",
    "densest_boundary_cell",
    "densest_edge_cell",
    "scale_picture",
    "sign_flux",
    "transect_angle",
    "transect_block_counts",
    "transect_dimension",
    "transect_estimate",
    "transect_points",
    "uncertainty_estimate",
    "uncertainty_exponent",
]
