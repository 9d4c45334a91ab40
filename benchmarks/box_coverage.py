"""Coverage of the box-counting intervals on regions of known dimension.

Each *case* is the region under a rough graph of dimension D -- the Weierstrass function
``W(x) = sum a^k cos(2 pi 3^k x)`` (``--family weierstrass``, the family the intervals were
calibrated on) or the Takagi-Landsberg function ``T(x) = sum c^k dist(2^k x, Z)``
(``--family takagi``, held out) -- in a window ``x in [c, c + L]``, ``y`` over the range of the
function there widened by a margin ``m`` of that range on each side, scored at ``n x n`` pixel
centres. Variants draw ``c`` uniformly, ``L`` from {1, 1/2, 1/4} and ``m`` from [0, 0.5]
(seeded), so the crossover from the smooth to the rough regime sits at different box sizes.
Prints one line per case and the coverage per estimator.

    PYTHONPATH=$PWD python benchmarks/box_coverage.py --n 1024 --variants 6
    PYTHONPATH=$PWD python benchmarks/box_coverage.py --family takagi --n 512 1024 --variants 6
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nnfractal.estimators.boxcount import boundary, estimate_dimension, paper_dimension
from nnfractal.estimators.known_sets import takagi, weierstrass

FAMILIES = {"weierstrass": weierstrass, "takagi": takagi}


def graph_case(dimension, n, variant, family="weierstrass"):
    """Score map ``(n, n)`` of one case of `family` and its window parameters (c, L, m)."""
    fn = FAMILIES[family]
    rng = np.random.default_rng([int(round(dimension * 1000)), variant])
    c = float(rng.uniform())
    length = float((1.0, 0.5, 0.25)[variant % 3])
    margin = float(rng.uniform(0.0, 0.5))
    u = c + (np.arange(n) + 0.5) / n * length
    w = fn(u, dimension)
    dense = fn(np.linspace(c, c + length, 1 << 16), dimension)
    lo, hi = float(dense.min()), float(dense.max())
    lo, hi = lo - margin * (hi - lo), hi + margin * (hi - lo)
    v = lo + (np.arange(n) + 0.5) / n * (hi - lo)
    return v[:, None] - w[None, :], (c, length, margin)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, nargs="+", default=[1024])
    p.add_argument("--dims", type=float, nargs="+",
                   default=[1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])
    p.add_argument("--variants", type=int, default=6)
    p.add_argument("--no-paper", action="store_true")
    p.add_argument("--family", choices=sorted(FAMILIES), default="weierstrass")
    a = p.parse_args(argv)
    for n in a.n:
        rows = []
        t0 = time.time()
        for d in a.dims:
            for k in range(a.variants):
                scores, (c, length, margin) = graph_case(d, n, k, a.family)
                e = boundary(scores)
                ests = {"box": estimate_dimension(e)}
                if not a.no_paper:
                    ests["paper"] = paper_dimension([e])
                line = f"{a.family} n={n} D={d:.2f} c={c:.3f} L={length:.2f} m={margin:.2f}"
                for name, est in ests.items():
                    cov = est.ok and est.ci_low <= d <= est.ci_high
                    rows.append((name, d, est.dimension, est.ci_low, est.ci_high, cov))
                    line += (f" | {name} {est.dimension:.3f} [{est.ci_low:.3f},{est.ci_high:.3f}]"
                             f" {'ok' if cov else 'MISS'}" if est.ok else f" | {name} -")
                print(line, flush=True)
        for name in ("box", "paper"):
            r = [x for x in rows if x[0] == name]
            if not r:
                continue
            cov = np.mean([x[5] for x in r])
            half = np.median([(x[4] - x[3]) / 2 for x in r if x[2] is not None])
            err = np.array([x[2] - x[1] for x in r if x[2] is not None])
            print(f"n={n} {name}: coverage {cov:.0%} of {len(r)}, median half-width {half:.3f}, "
                  f"mean error {err.mean():+.3f}, max |error| {np.abs(err).max():.3f}")
        print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
