"""What --chaos costs: `nnfractal run` with and without its twins, side by side.

For each case, rounds alternate the two variants (which goes first alternates too), each a new
run folder through `runner.run.execute` as the command calls it (epoch maps and report
included). Per variant: the wall time of the whole run, its training time (the run's tiles, from
the store's sessions) and the twins' training time; the medians and the ratios chaos / plain,
with the load average before and after every run.

    python benchmarks/bench_chaos.py --rounds 3
    python benchmarks/bench_chaos.py --cases paper-tanh --rounds 5 --json chaos_cost.json
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

from nnfractal.config import build_config
from nnfractal.report import write_report
from nnfractal.runner.run import execute
from nnfractal.storage.store import RunStore

CASES = {
    "paper-tanh": ("paper-tanh", {}),                                        # 64 x 64, 500 steps
    "mlp300-mnist": ("mlp300-mnist", {"resolution": 8, "num_epochs": 2}),     # 64 MLPs, MNIST
}


def one_run(preset: str, overrides: dict, chaos: bool, folder: Path) -> dict:
    """Wall time of one whole run, and its training times from the store."""
    cfg = build_config(preset, **overrides)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    execute(cfg, folder, progress=False, log=lambda *_: None, report=write_report,
            chaos_ulps=4 if chaos else None)
    wall = time.perf_counter() - start
    store = RunStore.open(folder / "store.zarr")
    sessions = store.attrs.get("sessions", [])
    twin_sessions = store.group["chaos"].attrs.get("sessions", []) if chaos else []
    training = sum(float(s["wall_s"]) for s in sessions)
    twins = sum(float(s["wall_s"]) for s in twin_sessions)
    cpu = sum(float(s.get("cpu_s", 0.0)) for s in sessions + twin_sessions)
    summary = json.loads((folder / "summary.json").read_text())
    return {"wall_s": wall, "training_s": training + twins, "run_training_s": training,
            "training_cpu_s": cpu,
            "twin_s": twins, "load_before": load, "load_after": os.getloadavg()[0],
            "chaos_fraction": summary.get("chaos_fraction")}


def bench_case(name: str, rounds: int, work: Path) -> dict:
    preset, overrides = CASES[name]
    results: dict[str, list[dict]] = {"plain": [], "chaos": []}
    for r in range(rounds):
        order = ("plain", "chaos") if r % 2 == 0 else ("chaos", "plain")
        for variant in order:
            folder = work / f"{name}-{variant}-{r}"
            results[variant].append(one_run(preset, overrides, variant == "chaos", folder))
            shutil.rmtree(folder, ignore_errors=True)
            last = results[variant][-1]
            print(f"{name} round {r} {variant:5s}: wall {last['wall_s']:.1f} s, training "
                  f"{last['training_s']:.1f} s (twins {last['twin_s']:.1f} s; CPU "
                  f"{last['training_cpu_s']:.1f} s), load "
                  f"{last['load_before']:.1f} -> {last['load_after']:.1f}", flush=True)
    keys = ("wall_s", "training_s", "training_cpu_s")
    med = {v: {k: statistics.median(x[k] for x in runs) for k in keys} for v, runs in results.items()}
    ratios = {k: med["chaos"][k] / med["plain"][k] for k in keys}
    # per round, chaos against the plain run beside it: the ratio load changes least
    paired = [c["training_s"] / p["training_s"] for p, c in zip(results["plain"], results["chaos"])]
    return {"case": name, "preset": preset, "overrides": overrides, "rounds": rounds,
            "median": med, "ratio_chaos_over_plain": ratios,
            "paired_training_ratios": paired, "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        for name in args.cases:
            res = bench_case(name, args.rounds, Path(tmp))
            out.append(res)
            m, q = res["median"], res["ratio_chaos_over_plain"]
            print(f"{name}: median wall {m['plain']['wall_s']:.1f} s plain, "
                  f"{m['chaos']['wall_s']:.1f} s chaos (x{q['wall_s']:.2f}); training "
                  f"{m['plain']['training_s']:.1f} s plain, {m['chaos']['training_s']:.1f} s chaos "
                  f"(x{q['training_s']:.2f}); training CPU x{q['training_cpu_s']:.2f}; paired "
                  "training ratios "
                  f"{', '.join(f'{p:.2f}' for p in res['paired_training_ratios'])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
