"""Model families: each builds M copies of one network and computes their losses at once.

The contract (`Family`) and the registry of families by name (`FamilySpec`, `register`) are in
registry.py, which this package exports and which loads no torch; the networks (resnet.py,
meanfield.py, mlp.py) load when `build_family` builds one. The engine does not know which family
it runs, and no module outside this package names one.
"""
from __future__ import annotations

from .registry import (
           DEFAULT_MODEL,
           Family,
           FamilySpec,
           arch_label,
           build_family,
           check_family_fields,
           families_reading,
           family_spec,
           model_names,
           register,
           unregister,
)

__all__ = ["DEFAULT_MODEL", "Family", "FamilySpec", "arch_label", "build_family",
           "check_family_fields", "families_reading", "family_spec", "model_names", "register",
           "unregister"]
