"""Studies: many runs or sampled points that make one result.

``study`` (the skeleton every study is written on: plan written first, folder claimed and locked,
units trained under one interrupt guard, typed results), ``zoom`` (frames shrinking around the
boundary), ``comparison`` (what both comparisons share: the pair of configs, compare.json),
``compare`` (two architectures on the same grids, box counting), ``compare_sampled`` (two
architectures by a sampling estimator), ``sample`` (the points a sampling estimator asks for,
trained into one folder).
"""
