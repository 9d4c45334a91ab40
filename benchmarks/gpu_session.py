"""Everything a session with a lent GPU runs, in one call, inside a fixed time budget.

Steps, most important first; each gets a deadline so that a slow one cannot starve the rest:
  1. tests/test_gpu.py                       CUDA equals CPU, TF32/bf16 opt-in, auto chunk size
  2. benchmarks/gpu_sweep.py                 ResNet-20 model-steps/s by chunk size and option
  3. nnfractal compare (skip study)          ResNet-20 vs the same net without skips, sized from
                                             the rate measured in step 2 to fit what time is left
  4. nnfractal bench --device cuda --quick   if time is still left
Logs and results go to $OUT (default ./gpu_check_out); the comparison folder is packed as
skipstudy.tar.gz (its zarr stores are left out if the archive would pass --max-archive-mb).

    python benchmarks/gpu_session.py --budget 540
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def run_step(name: str, cmd: list[str], timeout: float, log: Path) -> int:
    """Run cmd with output to log (and a summary line to stdout); returns its exit code (124 = timeout)."""
    t = time.perf_counter()
    print(f"== {name}: {' '.join(cmd)} (timeout {timeout:.0f} s)", flush=True)
    with open(log, "a") as f:
        f.write(f"\n== {name}: {' '.join(cmd)}\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                timeout=max(timeout, 1)).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    print(f"   {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
    return rc


def study_size(rate: float, seconds: float, steps: int, grids: int,
               sizes=(256, 192, 160, 128)) -> tuple[int, int]:
    """(grid side, steps): the largest side in `sizes` whose `grids` runs of `steps` steps fit
    `seconds` at `rate` model-steps/s (with a 0.7 margin for start-up, drawing and the per-tile
    store); failing that, 128 px with as many steps as fit, down to half of `steps`; else (0, 0).
    128 px is the least that gives the box-counting estimator a scaling range."""
    for n in sizes:
        if grids * n * n * steps <= 0.7 * seconds * rate:
            return n, steps
    fit = int(0.7 * seconds * rate / (grids * 128 * 128))
    return (128, fit) if fit >= steps // 2 else (0, 0)


def pack(folder: Path, archive: Path, max_mb: float) -> None:
    """Tar folder; without the zarr stores if the full archive would be larger than max_mb."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    if archive.stat().st_size > max_mb * 2 ** 20:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname=folder.name,
                    filter=lambda ti: None if "store.zarr" in ti.name else ti)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=540, help="seconds for all steps together")
    ap.add_argument("--study-steps", type=int, default=40,
                    help="SGD steps of the skip study (40 = 8 epochs of resnet20-mnist)")
    ap.add_argument("--max-archive-mb", type=float, default=15)
    args = ap.parse_args()
    out = Path(os.environ.get("OUT") or ROOT / "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "session.log"
    deadline = time.perf_counter() + args.budget
    left = lambda: deadline - time.perf_counter()  # noqa: E731

    run_step("tests", [PY, "-m", "pytest", "-q", "tests/test_gpu.py"], min(150, left()), log)
    run_step("sweep", [PY, "benchmarks/gpu_sweep.py", "--steps", "5", "--repeats", "2",
                       "--max-seconds", str(int(min(150, left() * 0.35))),
                       "--json", str(out / "gpu_sweep.json")], min(240, left() * 0.45), log)
    rate, use_compile = 0.0, "off"
    try:
        rows = {r["setting"]: r for r in json.loads((out / "gpu_sweep.json").read_text())["rows"]}
        plain = rows.get("tile auto (free memory)", {}).get("model_steps_per_s", 0.0)
        compiled = rows.get("tile auto + compile", {})
        rate = plain
        # torch.compile only where it paid by a clear margin and compiles fast (two compiles: one per net)
        if compiled and compiled["model_steps_per_s"] > 1.25 * plain and compiled["warmup_seconds"] < 40:
            rate, use_compile = compiled["model_steps_per_s"], "on"
    except (OSError, ValueError, KeyError) as e:
        print(f"   no sweep result ({e}); skip study sized for 2000 model-steps/s", flush=True)
        rate = 2000.0
    n, steps = study_size(rate, left() - 60, args.study_steps, grids=2)
    summary = {"rate_used": rate, "compile": use_compile, "resolution": n, "steps": steps}
    if n:
        study = ROOT / "skipstudy_gpu"
        rc = run_step("skipstudy", [PY, "-m", "nnfractal", "compare", "resnet20-mnist", "plain20-mnist",
                                    "--seeds", "1", "--windows", "1", "--resolution", str(n),
                                    "--steps", str(steps), "--eval_every", "0",
                                    "--device", "cuda", "--tile_batch", "0", "--compile", use_compile,
                                    "--no-progress", "--out", str(study)],
                      left() - 60, log)
        summary["exit"] = rc
        if study.exists():
            pack(study, out / "skipstudy.tar.gz", args.max_archive_mb)
    if left() > 60:   # the CUDA bench (quick) only with time to spare
        run_step("bench", [PY, "-m", "nnfractal", "bench", "--device", "cuda", "--quick",
                           "--json", str(out / "bench_cuda.json")], left() - 10, log)
    (out / "session.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
