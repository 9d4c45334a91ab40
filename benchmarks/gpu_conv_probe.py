"""Why is float32 ResNet-20 slow on a GPU? Probes for a session with CUDA (about 2 minutes).

1. One 3x3 convolution of the first stage (16 -> 16 channels, 28 x 28, batch 32) for M models,
   forward + backward, in float32 without TF32, written four ways:
     grouped NCHW / grouped channels_last  (what the engine does: one group per model), each with
     cudnn.benchmark off and on, and im2col + batched matmul (unfold, then one GEMM per model and
     image).
2. The whole engine (ResNet-20, `engine.train`, chunk 1024, 5 steps): channels_last vs NCHW,
   cudnn.benchmark off / on / on with deterministic algorithms.
3. The top CUDA kernels of one engine step (torch.profiler).

    python benchmarks/gpu_conv_probe.py --json probe.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnfractal.config import build_config  # noqa: E402
from nnfractal.models import build_family  # noqa: E402
from nnfractal.training.data import load_mnist  # noqa: E402
from nnfractal.training.engine import train  # noqa: E402
from nnfractal.training.grid import axes, grid_points  # noqa: E402

DEVICE = "cuda"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int = 5) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_probe(m: int, b: int = 32, c: int = 16, hw: int = 28) -> list[dict]:
    dev = DEVICE
    gflop = 3 * 2 * m * b * hw * hw * c * c * 9 / 1e9        # forward + 2 backward GEMMs
    x0 = torch.randn(b, m * c, hw, hw, device=dev)
    w0 = torch.randn(m * c, c, 3, 3, device=dev) * 0.1
    rows = []

    def grouped(fmt):
        x = x0.contiguous(memory_format=fmt).requires_grad_()
        w = w0.clone().requires_grad_()

        def step():
            out = F.conv2d(x, w, padding=1, groups=m)
            out.backward(torch.ones_like(out))
        return step

    def im2col():
        x = x0.view(b, m, c, hw, hw).transpose(0, 1).contiguous().requires_grad_()   # (M, B, C, H, W)
        w = w0.view(m, c, c * 9).clone().requires_grad_()

        def step():
            cols = F.unfold(x.reshape(m * b, c, hw, hw), 3, padding=1).view(m, b, c * 9, hw * hw)
            out = torch.matmul(w.unsqueeze(1), cols)                                   # (M, B, C, HW)
            out.backward(torch.ones_like(out))
        return step

    for label, make in (("grouped NCHW", lambda: grouped(torch.contiguous_format)),
                        ("grouped channels_last", lambda: grouped(torch.channels_last))):
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            s = timed(make())
            rows.append({"conv": label, "cudnn_benchmark": bench, "seconds": s, "tflops": gflop / s / 1e3})
    torch.backends.cudnn.benchmark = False
    s = timed(im2col())
    rows.append({"conv": "im2col + matmul", "cudnn_benchmark": None, "seconds": s, "tflops": gflop / s / 1e3})
    for r in rows:
        print(f"conv M={m:5d} {r['conv']:24s} benchmark={r['cudnn_benchmark']!s:5s} "
              f"{r['seconds'] * 1e3:8.2f} ms  {r['tflops']:6.2f} TFLOP/s", flush=True)
    return rows


def engine_probe(models: int, steps: int) -> tuple[list[dict], str]:
    base = build_config("resnet20-mnist", eval_every=0, steps=steps, device=DEVICE, tile_batch=min(1024, models),
                        compile="off")
    data = load_mnist(train_size=base.train_size, seed=base.data_seed, download=False)
    x, y = axes(base)
    pts = np.resize(grid_points(x, y), (models, 2))
    rows = []
    for label, channels_last, bench, det in (("channels_last", True, False, False),
                                             ("channels_last + benchmark", True, True, False),
                                             ("channels_last + benchmark + deterministic", True, True, True),
                                             ("NCHW", False, False, False),
                                             ("NCHW + benchmark", False, True, False)):
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = bench, det
        family = build_family(base)
        family.channels_last = channels_last
        first = train(base, family, data, pts).losses      # also the warm-up (cuDNN autotuning)
        sync()
        t = time.perf_counter()
        train(base, family, data, pts)
        sync()
        s = time.perf_counter() - t
        rate = models * steps / s
        rows.append({"engine": label, "model_steps_per_s": rate, "first_loss_mean": float(np.nanmean(first[:, 0]))})
        print(f"engine {label:44s} {rate:8.1f} model-steps/s", flush=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, False
    family = build_family(base)
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CUDA] if DEVICE == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        train(base.replace(steps=2), family, data, pts[:min(1024, models)])
        sync()
    table = prof.key_averages().table(
        sort_by="cuda_time_total" if DEVICE == "cuda" else "cpu_time_total", row_limit=18)
    print(table, flush=True)
    return rows, table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--models", type=int, default=1024)
    ap.add_argument("--conv-models", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--dry-run-cpu", action="store_true", help="check the script on a CPU (tiny sizes)")
    args = ap.parse_args()
    global DEVICE
    if args.dry_run_cpu:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_conv_probe: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    out = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
           "torch": torch.__version__, "cudnn": torch.backends.cudnn.version()}
    out["conv"] = [row for m in args.conv_models for row in conv_probe(m)]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    out["engine"], out["profile"] = engine_probe(args.models, 5)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
