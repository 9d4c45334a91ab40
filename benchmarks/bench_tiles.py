"""What tiles cost: the old single-call path vs tiled runs of several tile sizes, and the Ray backend.

Variants, timed side by side in one process, repeats interleaved, median reported:

- ``single``: what `run.execute` did before tiles: one `engine.train` call over the whole grid,
  then the curves written to a store in one go.
- ``tiles-N``: `run.execute(..., tile_rows=N, draw=False)`: tile by tile, each written with its
  done flag (store creation and writes included, drawing excluded, as for `single`).
- ``ray-N`` (with ``--ray``): the same on a local Ray cluster (``ray.init(num_cpus=--ray-cpus)``,
  started before timing; the first repeat also pays for starting the workers, reported apart).

Usage::

    python benchmarks/bench_tiles.py                        # paper-tanh 32 x 32, 200 steps, CPU
    python benchmarks/bench_tiles.py --ray --ray-cpus 2
    python benchmarks/bench_tiles.py --device cuda --resolution 64 --steps 500 --tile_batch 1024 --tile-rows 32 64
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="paper-tanh")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--tile_batch", type=int, default=64)
    p.add_argument("--precision", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tile-rows", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--ray", action="store_true", help="also time --backend ray")
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    import torch

    from nnfractal.config import build_config
    from nnfractal.models import build_family
    from nnfractal.runner.backends import LocalBackend
    from nnfractal.runner.run import execute, plan_run
    from nnfractal.storage.store import RunStore
    from nnfractal.training.engine import train
    from nnfractal.training.grid import grid_points

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = dict(resolution=args.resolution, steps=args.steps, tile_batch=args.tile_batch,
                     device=args.device)
    if args.precision:
        overrides["precision"] = args.precision
    cfg = build_config(args.preset, **overrides)
    quiet = lambda *_: None  # noqa: E731
    tmp = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    plan = plan_run(cfg, None, LocalBackend(), log=quiet)
    family = build_family(cfg)
    points = grid_points(plan.x, plan.y)

    def single(out: Path) -> None:
        result = train(cfg, family, plan.data, points)
        store = RunStore.create(out, config=cfg.to_dict(), x=plan.x, y=plan.y,
                                curve_lengths=plan.lengths, dtype=plan.dtype,
                                schedule=plan.store_schedule, tile_rows=args.resolution)
        for metric, c in result.curves.items():
            store.write_curves(metric, 0, c)
        if cfg.device == "cuda":
            torch.cuda.synchronize()

    def tiled(out: Path, size: int, backend: str = "local") -> None:
        execute(cfg, out, progress=False, log=quiet, tile_rows=size, backend=backend, draw=False)

    variants = {"single": single}
    for size in args.tile_rows:
        variants[f"tiles-{size}"] = lambda out, s=size: tiled(out, s)
    if args.ray:
        import ray
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="error")
        for size in args.tile_rows:
            variants[f"ray-{size}"] = lambda out, s=size: tiled(out, s, "ray")

    single(tmp / "warmup")                                 # first-call costs out of the timings
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.repeats):
        for name, fn in variants.items():
            out = tmp / f"{name}-{r}"
            t0 = time.perf_counter()
            fn(out)
            times[name].append(time.perf_counter() - t0)
            shutil.rmtree(out, ignore_errors=True)
    base = statistics.median(times["single"])
    k = len(points)
    print(f"{cfg.preset} {args.resolution}x{args.resolution}, {args.steps} steps, chunks of "
          f"{args.tile_batch}, {cfg.precision}, {args.device}, torch threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':>10} {'median s':>9} {'vs single':>9} {'model-steps/s':>14}  repeats")
    for name, ts in times.items():
        med = statistics.median(ts[1:] if name.startswith("ray") and len(ts) > 1 else ts)
        print(f"{name:>10} {med:9.3f} {med / base:9.3f} {k * args.steps / med:14.0f}  "
              + " ".join(f"{t:.3f}" for t in ts))
    if args.json:
        args.json.write_text(json.dumps({"config": cfg.to_dict(), "times": times}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
