"""Checks of tiled, resumable runs on a CUDA GPU (no test of the suite needs one).

1. kill -9 on the GPU: `nnfractal run --device cuda` (float64 MLP, 16 tiles) is killed after 3
   tiles, resumed, and compared bit for bit with an uninterrupted run in one tile; tiles done
   before the kill must not be trained again.
2. Tile rows and chunk size on the GPU, float64 MLP: curves vs the whole grid in one tile (tiles
   of other rows: bitwise expected; another chunk size: only the map's sign agreement).
3. float32 ResNet on the GPU (cuDNN): the same.

Prints one JSON object (also to $OUT/gpu_resume_check.json where OUT is set).
Usage: ``python benchmarks/gpu_resume_check.py [--quick | --smoke] [--cpu]``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    quick = "--quick" in sys.argv
    smoke = "--smoke" in sys.argv         # tiny sizes: does the script run (on a CPU, say)
    device = "cpu" if "--cpu" in sys.argv else "cuda"
    from nnfractal.config import build_config
    from nnfractal.runner.run import execute, resume, score_map
    from nnfractal.storage.store import RunStore

    quiet = lambda *_: None  # noqa: E731
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    report: dict = {"device": device}
    if device == "cuda":
        import torch
        report["gpu"] = torch.cuda.get_device_name()

    def curves(run):
        return RunStore.open(run / "store.zarr").read_curves()

    # 1. kill -9 and resume on the GPU -----------------------------------------------------------
    res, steps = (16, 40) if smoke else (32, 300) if quick else (64, 500)
    tb = res * res // 16                  # 16 tiles of one chunk each at --tile-rows res // 16
    flags = dict(resolution=res, steps=steps, tile_batch=tb, device=device)
    cfg = build_config("paper-tanh", **flags)
    t0 = time.perf_counter()
    execute(cfg, tmp / "whole", progress=False, log=quiet, tile_rows=res, draw=False)
    report["mlp_whole_grid_s"] = round(time.perf_counter() - t0, 3)
    ref = curves(tmp / "whole")
    out = tmp / "killed"
    argv = [sys.executable, "-m", "nnfractal", "run", "--preset", "paper-tanh", "--resolution",
            str(res), "--steps", str(steps), "--tile_batch", str(tb), "--device", device,
            "--tile-rows", str(res // 16), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = None
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            done = RunStore.open(out / "store.zarr").done_tiles()
        except Exception:
            done = None
        if done is not None and done.sum() >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    store = RunStore.open(out / "store.zarr")
    done, attempts = store.done_tiles(), store.tile_state()["attempts"]
    report["kill"] = {"tiles_done_at_kill": int(done.sum()), "tiles": int(done.size),
                      "returncode": proc.returncode}
    t0 = time.perf_counter()
    resume(out, progress=False, log=quiet, draw=False)
    report["kill"]["resume_s"] = round(time.perf_counter() - t0, 3)
    after = RunStore.open(out / "store.zarr").tile_state()["attempts"]
    report["kill"]["bitwise_equal_to_uninterrupted"] = bool(np.array_equal(curves(out), ref,
                                                                           equal_nan=True))
    report["kill"]["done_tiles_not_recomputed"] = bool((after[done] == attempts[done]).all())

    # 2. tiling and chunk size, float64 MLP -------------------------------------------------------
    ref_map = np.sign(score_map(RunStore.open(tmp / "whole" / "store.zarr"), cfg))
    report["mlp_float64"] = {}
    for tile, b in [(res // 8, tb), (res // 16, tb), (res, 4 * tb)]:
        run = tmp / f"mlp-{tile}-{b}"
        c = cfg.replace(tile_batch=b)
        t0 = time.perf_counter()
        execute(c, run, progress=False, log=quiet, tile_rows=tile, draw=False)
        m = np.sign(score_map(RunStore.open(run / "store.zarr"), c))
        report["mlp_float64"][f"tile rows {tile}, chunk {b}"] = {
            "bitwise": bool(np.array_equal(curves(run), ref, equal_nan=True)),
            "sign_agreement": float((m == ref_map).mean()), "s": round(time.perf_counter() - t0, 3)}

    # 3. float32 ResNet (cuDNN) -----------------------------------------------------------------
    rcfg = build_config("resnet20-mnist", resolution=6 if smoke else 12 if quick else 24,
                        num_epochs=1 if smoke else 2 if quick else 4, eval_every=0, device=device,
                        tile_batch=16, **({"depth": 8, "train_size": 32} if smoke else {}))
    maps, rcurves = {}, {}
    from nnfractal.storage.store import tile_rows_step
    for tile, tb in [(rcfg.resolution, 16), (tile_rows_step(rcfg.resolution, 16), 16),
                     (rcfg.resolution, 48)]:
        run = tmp / f"rn-{tile}-{tb}"
        c = rcfg.replace(tile_batch=tb)
        t0 = time.perf_counter()
        execute(c, run, progress=False, log=quiet, tile_rows=tile, draw=False)
        maps[tile, tb] = (np.sign(score_map(RunStore.open(run / "store.zarr"), c)),
                          round(time.perf_counter() - t0, 3))
        rcurves[tile, tb] = curves(run)
    base = (rcfg.resolution, 16)
    report["resnet_float32"] = {
        f"tile rows {t}, chunk {b}": {"sign_agreement": float((m == maps[base][0]).mean()),
                                 "bitwise": bool(np.array_equal(rcurves[t, b], rcurves[base],
                                                                equal_nan=True)),
                                 "converged": float((m < 0).mean()), "s": s}
        for (t, b), (m, s) in maps.items()}
    print(json.dumps(report, indent=2))
    out_dir = os.environ.get("OUT")
    if out_dir:
        Path(out_dir, "gpu_resume_check.json").write_text(json.dumps(report, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
