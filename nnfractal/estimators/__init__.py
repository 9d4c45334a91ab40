"""Estimators: dimensions of boundaries from score maps or score callbacks, pure functions on arrays.

``boxcount`` (boundary pixels, box counting, the paper's median of local slopes), ``sampling``
(the uncertainty exponent and transects, which evaluate only the points they ask for), ``stats``
(pooling and paired differences with intervals), ``known_sets`` (boundaries of known dimension,
the validation), ``resolution`` (the smallest map that gives a dimension). Nothing here trains.
"""
