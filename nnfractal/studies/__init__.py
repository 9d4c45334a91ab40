"""Studies: many runs or sampled points that make one result.

``zoom`` (frames shrinking around the boundary), ``compare`` (two architectures on the same
grids), ``compare_sampled`` (two architectures by a sampling estimator), ``sample`` (the points a
sampling estimator asks for, trained into one folder).
"""
