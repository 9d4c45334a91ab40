"""The commands against the engine: `nnfractal run` and `nnfractal sample` beside `engine.train`,
paper-tanh, side by side in one run, quiet and beside one busy process.

    python benchmarks/bench_commands.py                       # the table (~1 h on 2 quiet cores)
    python benchmarks/bench_commands.py --only windows --rounds 1 --resolution 32 --steps 200
    python benchmarks/bench_commands.py --only windows --against /path/to/older/checkout

Rows, each a median over `--rounds` rounds whose variants run in a rotating order, so that load
from other programs hits every variant alike (only the ratios are reliable on a shared machine):

* ``windows``: `nnfractal run` on three windows of `--resolution`^2 points (mostly diverging,
  mostly converging, and the quick start's window on the boundary), as a user types it (its rate
  from summary.json: model-steps / the stored tiles' compute seconds), against one
  `engine.train` call on the same points in a warm `nnfractal bench` worker. The command's whole
  wall time (start, training, drawing) is printed beside it.
* ``transect``, ``uncertainty``: `nnfractal sample --method transect` (one block of
  `--resolution`^2 points across the boundary) and `--method uncertainty` (the smallest budget
  with a 16 x 16 coarse map: 16,256 points) against `nnfractal run` on the preset's window.
  Rates per *trained* model-step (a model stops at its first NaN, so points near the boundary
  cost more per nominal step than a grid's; nominal rates would compare the point sets rather
  than the commands).

Every variant also runs beside one `nice -n 0 python -c 'while True: pass'` process (started
before and stopped after that variant only) unless `--no-busy`. `--against ROOT` measures another
checkout's commands and engine in the same rotation (before / after a change).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# log10 windows [y_min, y_max, x_min, x_max] of paper-tanh (x: input layer lr, y: output layer lr)
WINDOWS = {"diverging": [3.0, 4.0, 0.0, 1.0], "converging": [0.0, 1.0, 0.0, 1.0],
           "mixed (quickstart)": [1.7, 2.7, 0.5, 1.5]}
PRESET_WINDOW = [-3.0, 6.0, -3.0, 6.0]
UNCERTAINTY = ["--budget", "16256", "--coarse", "16", "--floor-points", "0", "--eps-min", "1e-7"]


def load() -> float:
    return os.getloadavg()[0]


class Busy:
    """One busy-looping process beside a variant (none when `on` is false)."""

    def __init__(self, on: bool):
        self.proc = subprocess.Popen(["nice", "-n", "0", sys.executable, "-c", "while True: pass"]) \
            if on else None
        if on:
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def command(root: Path, args: list[str], out: Path) -> tuple[dict, float]:
    """Run `nnfractal ARGS --out OUT --no-progress` from `root`; its summary.json and wall seconds."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nnfractal", *args, "--out", str(out), "--no-progress"],
                          env=env, cwd=str(root), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"nnfractal {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text()), wall


def trained_steps(folder: Path) -> int:
    """Model-steps the engine computed for the points a command asked for (a sample's blocks
    without their padding; every point of a grid): every step up to and including a model's
    first NaN loss (the kernel stops a model there)."""
    from nnfractal.storage.store import RunStore
    store = RunStore.open(folder / "store.zarr")
    curves = np.asarray(store.group["curves/train_loss"])
    rows, cols, steps = curves.shape
    blocks = store.attrs.get("blocks") or [{"row": 0, "rows": rows, "n": rows * cols}]
    asked = np.concatenate([curves[b["row"]:b["row"] + b["rows"]].reshape(-1, steps)[:b["n"]]
                            for b in blocks])
    finite = np.isfinite(asked)
    return int(np.where(finite.all(1), steps, np.argmin(finite, axis=1) + 1).sum())


def variants(only: list[str]) -> list[tuple[str, str]]:
    out = []
    if "windows" in only:
        for name in WINDOWS:
            out += [("engine", name), ("run", name)]
    if "transect" in only or "uncertainty" in only:
        out.append(("grid", "preset"))
    out += [("sample", what) for what in ("transect", "uncertainty") if what in only]
    return out


def measure_one(kind: str, what: str, args, root: Path, worker, tmp: Path) -> dict:
    res, steps = args.resolution, args.steps
    common = ["--steps", str(steps)]
    if kind == "engine":
        reply = worker.run({"workload": "paper-tanh", "variant": "engine", "models": res * res,
                            "steps": steps, "threads": args.threads,
                            "overrides": {"mnmx": WINDOWS[what], "resolution": res}})
        return {"rate": reply["model_steps"] / reply["seconds"], "wall": reply["seconds"]}
    out = tmp / f"{kind}-{what}".replace(" ", "_")
    shutil.rmtree(out, ignore_errors=True)
    grid = ["run", "--preset", "paper-tanh", "--resolution", str(res), *common]
    if kind == "run":
        s, wall = command(root, [*grid, "--mnmx", *map(str, WINDOWS[what])], out)
        shutil.rmtree(out, ignore_errors=True)
        return {"rate": s["model_steps_per_s"], "wall": wall}
    if kind == "grid":
        s, wall = command(root, [*grid, "--mnmx", *map(str, PRESET_WINDOW)], out)
    elif what == "transect":
        lines = max(1, res * res // 1024)              # segments of 1024 points at least
        s, wall = command(root, ["sample", "paper-tanh", "--method", "transect", "--lines", str(lines),
                                 "--points", str(max(1024, res * res // lines)),
                                 "--center", "1.0", "2.2", "--angle", "80", *common], out)
    else:
        s, wall = command(root, ["sample", "paper-tanh", "--method", "uncertainty", *UNCERTAINTY,
                                 *common], out)
    result = {"rate": s["model_steps_per_s"], "wall": wall,
              "trained_rate": trained_steps(out) / s["tile_seconds"],
              "points": s.get("evaluations", res * res)}
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--resolution", type=int, default=64, help="points per side (default 64)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=None, help="engine worker threads (default: the "
                   "CPUs this process may use, as the commands take)")
    p.add_argument("--no-busy", dest="busy", action="store_false", help="skip the busy-process rows")
    p.add_argument("--against", type=Path, help="another nnfractal checkout, measured alongside")
    p.add_argument("--only", nargs="+", choices=["windows", "transect", "uncertainty"],
                   default=["windows", "transect", "uncertainty"])
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from nnfractal.cli.bench import Worker
    from nnfractal.training.allocator import usable_cpus
    args.threads = args.threads or usable_cpus()
    roots = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    modes = [False, True] if args.busy else [False]
    order = [(label, kind, what, busy) for kind, what in variants(args.only)
             for label in roots for busy in modes]
    print(f"bench_commands: {', '.join(f'{k} = {v}' for k, v in roots.items())}; paper-tanh "
          f"{args.resolution}^2 x {args.steps} steps, {args.rounds} round(s), {args.threads} threads, "
          f"load {load():.2f}", flush=True)
    workers = {label: Worker(label, root, args.threads) for label, root in roots.items()}
    results: dict[tuple, list[dict]] = {}
    loads, started = [load()], time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="nnfractal-bench-commands-") as tmp:
            for r in range(args.rounds):
                shift = (r * 3) % len(order)
                for label, kind, what, busy in order[shift:] + order[:shift]:
                    held = Busy(busy)
                    try:
                        m = measure_one(kind, what, args, roots[label], workers[label], Path(tmp))
                    finally:
                        held.stop()
                    m["load"] = load()
                    loads.append(m["load"])
                    results.setdefault((label, kind, what, busy), []).append(m)
                    print(f"  round {r + 1} {label:7s} {kind:6s} {what:20s} "
                          f"{'+1 busy' if busy else 'quiet':8s} {m['rate']:10,.0f} model-steps/s  "
                          f"wall {m['wall']:6.1f} s  load {m['load']:.2f}", flush=True)
    finally:
        for w in workers.values():
            w.close()
    print_tables(results, args, roots, modes, loads, time.perf_counter() - started)


def _ratios(results, a: tuple, b: tuple, key: str = "rate") -> list[float]:
    return [x[key] / y[key] for x, y in zip(results.get(a, []), results.get(b, []))]


def _med(values) -> float:
    return statistics.median(values) if values else float("nan")


def print_tables(results, args, roots, modes, loads, seconds) -> None:
    beside = {False: "nothing", True: "1 busy process"}
    print(f"\npaper-tanh, {args.resolution} x {args.resolution} points, {args.steps} steps, "
          f"{args.threads} threads; medians of {args.rounds} round(s); load average "
          f"{min(loads):.2f}-{max(loads):.2f}; {seconds / 60:.1f} min")
    if any(k[1] == "run" for k in results):
        print("\n| checkout | window | beside | engine model-steps/s | `nnfractal run` model-steps/s | "
              "run / engine | the whole command, s |")
        print("|---|---|---|---|---|---|---|")
    for label in roots:
        for name in WINDOWS:
            for busy in modes:
                e, r = results.get((label, "engine", name, busy)), results.get((label, "run", name, busy))
                if e and r:
                    ratio = _med(_ratios(results, (label, "run", name, busy), (label, "engine", name, busy)))
                    print(f"| {label} | {name} | {beside[busy]} | {_med([x['rate'] for x in e]):,.0f} | "
                          f"{_med([x['rate'] for x in r]):,.0f} | {ratio:.2f} | "
                          f"{_med([x['wall'] for x in r]):.0f} |")
    if len(roots) > 1 and any(k[1] == "run" for k in results):
        print("\n| window | beside | engine: this / against | run: this / against |")
        print("|---|---|---|---|")
        for name in WINDOWS:
            for busy in modes:
                e = _ratios(results, ("this", "engine", name, busy), ("against", "engine", name, busy))
                r = _ratios(results, ("this", "run", name, busy), ("against", "run", name, busy))
                print(f"| {name} | {beside[busy]} | {_med(e):.2f} | {_med(r):.2f} |")
    if any(k[1] == "sample" for k in results):
        print("\n| checkout | sample | beside | grid trained model-steps/s | sample trained model-steps/s "
              "| sample / grid | nominal: grid, sample |")
        print("|---|---|---|---|---|---|---|")
    for label in roots:
        for what in ("transect", "uncertainty"):
            for busy in modes:
                g = results.get((label, "grid", "preset", busy))
                s = results.get((label, "sample", what, busy))
                if g and s:
                    ratio = _med(_ratios(results, (label, "sample", what, busy), (label, "grid", "preset", busy),
                                         "trained_rate"))
                    print(f"| {label} | {what} ({s[0]['points']:,} points) | {beside[busy]} | "
                          f"{_med([x['trained_rate'] for x in g]):,.0f} | "
                          f"{_med([x['trained_rate'] for x in s]):,.0f} | {ratio:.2f} | "
                          f"{_med([x['rate'] for x in g]):,.0f}, {_med([x['rate'] for x in s]):,.0f} |")


if __name__ == "__main__":
    main()
