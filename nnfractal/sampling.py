"""The sampling estimators' public path: ``nnfractal.sampling.uncertainty_exponent`` and friends.

The code lives in `nnfractal.estimators` (`.uncertainty`, `.transect`, `.sampling_fit`); this
module re-exports `nnfractal.estimators.sampling`'s names so that scripts written against the
documented path keep working however the estimators are split inside.
"""
from nnfractal.estimators.sampling import *  # noqa: F403
from nnfractal.estimators.sampling import __all__  # noqa: F401
