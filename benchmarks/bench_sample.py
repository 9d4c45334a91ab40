"""Sampled points train as fast as grid points: a grid run and a transect of the same number of
points and steps, alternated in one process, rates from the stored tiles' compute seconds.

    python benchmarks/bench_sample.py --points 4096 --steps 100 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from nnfractal.config import build_config
from nnfractal.runner.run import execute
from nnfractal.studies.sample import SampleSpec, sample


def rate(folder: Path) -> float:
    return json.loads((folder / "summary.json").read_text())["model_steps_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper-tanh")
    p.add_argument("--points", type=int, default=4096, help="a square number: the grid's points")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    side = int(math.isqrt(a.points))
    cfg = build_config(a.preset, steps=a.steps, resolution=side, mnmx=[-3.0, 6.0, -3.0, 6.0])
    spec = SampleSpec("transect", points=side * side // 4, lines=4, center=(1.5, 1.5))
    quiet = dict(progress=False, log=lambda *_: None)
    grid, sampled = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.rounds):
            for kind in ("grid", "sample") if k % 2 == 0 else ("sample", "grid"):
                out = Path(tmp) / f"{kind}{k}"
                if kind == "grid":
                    execute(cfg, out, epoch_maps=False, **quiet)
                    grid.append(rate(out))
                else:
                    sample(spec, cfg, out, **quiet)
                    sampled.append(rate(out))
                shutil.rmtree(out)
                print(f"round {k} {kind}: {(grid if kind == 'grid' else sampled)[-1]:,.0f} "
                      f"model-steps/s  (load {os.getloadavg()[0]:.1f})", flush=True)
    ratios = [s / g for s, g in zip(sampled, grid)]
    print(f"{a.preset}, {side * side} points x {a.steps} steps: grid median "
          f"{np.median(grid):,.0f}, sample median {np.median(sampled):,.0f} model-steps/s; "
          f"sample / grid per round {', '.join(f'{r:.2f}' for r in ratios)} "
          f"(median {np.median(ratios):.2f})")


if __name__ == "__main__":
    main()
