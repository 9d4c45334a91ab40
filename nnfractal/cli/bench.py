"""``nnfractal bench``: the engine's speed, side by side with the naive loop and older versions.

Every timed run happens in a worker process (`bench_worker.py`): one on the current code and,
with ``--against GIT_REF``, one on a temporary git worktree of that ref. The main process sends
the same requests to each in turn, rotating the order every repeat, so that load from other
processes on a shared machine hits every variant alike; ratios measured this way are the reliable
numbers, absolute rates are not. The matmul peak is measured in the same run (float32 for the
ResNet, float64 for the paper's MLP), after every repeat, and its best value is used.

Extra rows: the paper MLP's engine without its C++ kernel ("torch-fast-path", the step-by-step
torch path, with its ratio to the kernel); end to end, `nnfractal run` as a user types it on a
grid of about the engine row's size in the same window ("run", its rate from its summary.json:
model-steps / the tiles' compute seconds), with its ratio to the engine on exactly that grid
("engine-grid", target >= 0.80) and the command's whole wall time; and, with ``--contention K`` (default 1), the current
engine beside K busy processes (one core each, started and stopped around each of those timed
calls) with its ratio to the quiet rate measured in the same run and to the fair share (quiet
rate x fraction of the usable cores left; issue 21's target: >= 0.7 of that).

Columns: model-steps/s (median of the repeats, and the best), GFLOP/s (model-steps/s x FLOPs per
model-step: products only, a multiply-add = 2), % of the matmul peak of the workload's precision,
peak memory (resident set during the timed call, or CUDA max allocated), and the ratios against
the naive loop (`reference.train_single`), against GIT_REF and against ``--compare OLD.json``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nnfractal.errors import EXIT_INTERRUPTED, refuse
from nnfractal.storage.run_folder import SUMMARY_FILE
from nnfractal.training import allocator

from .common import OneLineParser

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The paper's own JAX code (jit + vmap), paper-tanh in float64, 500 steps, 64 x 64 grid, measured
# on this project's 2-core Xeon (not in this run): the yardstick of the MLP fast path.
PAPER_JAX_MODEL_STEPS_PER_S = 17_600

# workload -> variant -> (models, steps), per mode
SIZES = {
    "normal": {"resnet20": {"engine": (16, 5), "naive": (2, 5)},
               "paper-tanh": {"engine": (1024, 500), "naive": (16, 500)}},
    "quick": {"resnet20": {"engine": (8, 2), "naive": (1, 2)},
              "paper-tanh": {"engine": (512, 50), "naive": (4, 50)}},
}
PRECISION = {"resnet20": "float32", "paper-tanh": "float64"}


class BenchError(ValueError):
    """A refused bench option (one line)."""


# ---- machine ----------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_gflops(dtype: str, n: int = 1024, tries: int = 5, device: str = "cpu") -> float:
    """Best GFLOP/s of an n x n x n torch.matmul in `dtype` over `tries` calls (2 n^3 FLOPs)."""
    import torch
    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, dtype=dt, device=device), torch.randn(n, n, dtype=dt, device=device)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(tries):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def gflop_per_model_step(workload: str) -> float:
    """FLOPs of one training step of one model, GFLOP (products only, multiply-add = 2).

    A family that counts its own FLOPs (`flops_per_model_step`, the paper MLP's: forward, input
    gradients but the first layer's, weight gradients, on the preset's training points) says it;
    otherwise (ResNet-20) torch's FlopCounterMode counts forward + backward of the reference
    module on one batch."""
    import torch  # here, as matmul_peak: `nnfractal bench --help` and its refusals need no torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnfractal.config import build_config
    from nnfractal.models import build_family

    from .bench_worker import WORKLOADS
    cfg = build_config(WORKLOADS[workload][0])
    family = build_family(cfg)
    if hasattr(family, "flops_per_model_step"):
        return family.flops_per_model_step(cfg.train_size) / 1e9
    net = family.reference(family.init_params(cfg.seed))
    x = torch.rand(cfg.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (cfg.batch_size,))
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(net(x), y).backward()
    return fc.get_total_flops() / 1e9


# ---- workers ----------------------------------------------------------------------------------

class Worker:
    """A bench_worker.py process measuring the nnfractal package found under `root`."""

    def __init__(self, label: str, root: Path, threads: int):
        self.label, self.root = label, root
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bench_worker.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=self.environment(root, threads), text=True, cwd=str(root))

    @staticmethod
    def environment(root: Path, threads: int) -> dict[str, str]:
        """This process's environment with `root` first on PYTHONPATH (this version's package
        wins; the rest, e.g. wheels unpacked with pip --target, stays reachable), `threads`
        OpenMP threads and this process's allocator."""
        path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(threads))
        library = allocator.find_tcmalloc()
        if allocator.in_use() == "tcmalloc" and library:
            env = allocator.preload_env(env, library)        # the allocator this process runs on
        return env

    def run(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the worker for {self.label} ({self.root}) stopped")
        reply = json.loads(line)
        if "error" in reply:
            raise BenchError(f"{self.label}: {reply['error']}")
        return reply

    def close(self) -> None:
        """Stop the worker, also in the middle of a request (Ctrl-C, SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def git_worktree(ref: str) -> Path:
    """A temporary detached worktree of `ref` of the repository this package lives in."""
    if shutil.which("git") is None:
        raise BenchError("--against: git is not installed")
    top = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True)
    if top.returncode != 0:
        raise BenchError(f"--against: {PACKAGE_ROOT} is not in a git repository")
    sha = subprocess.run(["git", "-C", top.stdout.strip(), "rev-parse", "--verify", "--quiet",
                          f"{ref}^{{commit}}"], capture_output=True, text=True)
    if sha.returncode != 0:
        raise BenchError(f"--against: {ref!r} is not a commit of {top.stdout.strip()} "
                         "(allowed: a branch, tag or commit hash)")
    path = Path(tempfile.mkdtemp(prefix="nnfractal-bench-")) / "tree"
    subprocess.run(["git", "-C", top.stdout.strip(), "worktree", "add", "--detach", "--quiet", str(path),
                    sha.stdout.strip()], check=True, capture_output=True)
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(path), "worktree", "remove", "--force", str(path)],
                   capture_output=True)
    shutil.rmtree(path.parent, ignore_errors=True)


# ---- measuring --------------------------------------------------------------------------------

class BusyLoad:
    """`n` processes that each keep one core busy (a pure-Python loop), started and stopped by the
    bench around a contended measurement: the competing load of the contention rows."""

    def __init__(self, n: int):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(n)]
        time.sleep(0.3)                     # let them start before the timed call

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)


def run_grid(models: int) -> int:
    """Points per side of the `nnfractal run` grid of the end-to-end row: about `models` points."""
    return max(2, round(models ** 0.5))


def run_command(root: Path, workload: str, models: int, steps: int, threads: int, device: str) -> dict:
    """`nnfractal run` on the workload's preset, a run_grid(models)^2 grid of its window, in a
    subprocess with the bench workers' environment; a reply as a worker's (seconds: the tiles'
    compute seconds from summary.json; warmup_seconds: the rest of the command's wall time)."""
    from nnfractal.config import build_config

    from .bench_worker import WORKLOADS
    side = run_grid(models)
    preset, overrides = WORKLOADS[workload]
    cfg = build_config(preset, steps=steps, resolution=side, **overrides)
    with tempfile.TemporaryDirectory(prefix="nnfractal-bench-run-") as tmp:
        out = Path(tmp) / "run"
        args = [sys.executable, "-m", "nnfractal", "run", "--preset", preset, "--resolution", str(side),
                "--steps", str(steps), "--out", str(out), "--no-progress", "--device", device,
                *[a for k, v in overrides.items() for a in (f"--{k}", str(v))]]
        env = Worker.environment(root, threads)
        if allocator.in_use() != "tcmalloc":
            env[allocator.SWITCH] = "0"          # the allocator of the workers, not the command's own
        t = time.perf_counter()
        done = subprocess.run(args, env=env, cwd=str(root), capture_output=True, text=True)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise BenchError(f"nnfractal run ({workload}) failed: {done.stderr.strip()[-300:]}")
        summary = json.loads((out / SUMMARY_FILE).read_text())
    seconds = summary["tile_seconds"] or summary["wall_time_s"]
    return {"seconds": seconds, "warmup_seconds": wall - seconds, "command_seconds": wall,
            "model_steps": side * side * steps, "models": side * side, "steps": steps,
            "tile_batch": cfg.tile_batch, "chunk_workers": (summary.get("chunk_threads") or [1])[0],
            "training_threads": summary.get("training_threads"), "allocator": summary.get("allocator"),
            "peak_rss_mb": None, "base_rss_mb": None, "cuda_peak_mb": None, "version": str(root)}


def measure(workloads: list[str], sizes: dict, workers: dict[str, Worker], repeats: int,
            threads: int, device: str, log, contention: int = 0) -> tuple[dict, dict]:
    """Interleaved repeats of every (workload, variant, version). Returns the replies by variant
    label and the matmul peak samples by precision. Variants: the naive loop, the engine of each
    version, for the paper MLP the current engine without its C++ kernel ("torch"), and with
    `contention` > 0 the current engine beside that many busy processes ("busy")."""
    variants = []
    for w in workloads:
        variants.append((w, "naive", "current"))
        for label in workers:
            variants.append((w, "engine", label))
        if w == "paper-tanh":
            variants.append((w, "torch", "current"))
            variants += [(w, "engine-grid", "current"), (w, "run", "current")]
        if contention:
            variants.append((w, "busy", "current"))
    replies: dict[str, list[dict]] = {}
    peaks: dict[str, list[float]] = {p: [matmul_gflops(p, device=device)]
                                     for p in sorted({PRECISION[w] for w in workloads})}
    for r in range(repeats):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for w, kind, label in order:
            models, steps = sizes[w]["naive" if kind == "naive" else "engine"]
            overrides = {"device": device} if device != "cpu" else {}
            if kind == "engine-grid":              # the end-to-end row's grid, every point of it
                overrides["resolution"] = run_grid(models)
                models = overrides["resolution"] ** 2
            request = {"workload": w, "variant": "naive" if kind == "naive" else "engine",
                       "models": models, "steps": steps, "threads": threads, "overrides": overrides}
            if kind == "torch":
                request["mlp_kernel"] = False
            busy = BusyLoad(contention) if kind == "busy" else None
            try:
                if kind == "run":
                    reply = run_command(workers[label].root, w, models, steps, threads, device)
                else:
                    reply = workers[label].run(request)
            finally:
                if busy is not None:
                    busy.stop()
            name = _name(w, kind, label, contention)
            replies.setdefault(name, []).append(reply)
            log(f"  repeat {r + 1}/{repeats}  {name:32s} {reply['seconds']:8.2f} s "
                f"{reply['model_steps'] / reply['seconds']:11.1f} model-steps/s "
                f"(warm-up {reply['warmup_seconds']:.1f} s, load {_load()})")
        for p in peaks:
            peaks[p].append(matmul_gflops(p, device=device))
    return replies, peaks


def _name(workload: str, kind: str, label: str, contention: int = 0) -> str:
    if kind == "naive":
        return f"{workload} naive"
    if kind == "torch":
        return f"{workload} torch-fast-path@{label}"
    if kind == "busy":
        return f"{workload} engine@{label}+{contention}busy"
    if kind in ("run", "engine-grid"):
        return f"{workload} {kind}@{label}"
    return f"{workload} engine@{label}"


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def summarise(replies: dict, peaks: dict, gflop: dict, previous: dict | None, threads: int = 1,
              contention: int = 0, cores: int | None = None) -> list[dict]:
    cores = cores or allocator.usable_cpus()
    rows = []
    medians = {}
    for name, reps in replies.items():
        rates = [r["model_steps"] / r["seconds"] for r in reps]
        medians[name] = statistics.median(rates)
    for name, reps in replies.items():
        workload = name.split()[0]
        rates = [r["model_steps"] / r["seconds"] for r in reps]
        med = medians[name]
        precision = PRECISION[workload]
        peak = max(peaks[precision])
        row = {
            "name": name, "workload": workload, "variant": name.split()[1],
            "models": reps[0]["models"], "steps": reps[0]["steps"], "tile_batch": reps[0]["tile_batch"],
            "chunk_workers": reps[0].get("chunk_workers", 1), "precision": precision,
            "allocator": reps[0].get("allocator"),
            "seconds": [r["seconds"] for r in reps],
            "warmup_seconds": [r["warmup_seconds"] for r in reps],
            "model_steps_per_s": med, "model_steps_per_s_best": max(rates),
            "gflop_per_model_step": gflop[workload],
            "gflop_per_s": med * gflop[workload],
            "matmul_peak_gflop_per_s": peak,
            "percent_of_matmul_peak": 100 * med * gflop[workload] / peak,
            "peak_rss_mb": max((r["peak_rss_mb"] or 0) for r in reps) or None,
            "cuda_peak_mb": reps[0]["cuda_peak_mb"],
            "ratio_vs_naive": med / medians[f"{workload} naive"],
            "version": reps[0]["version"],
        }
        row["cpu_share"] = statistics.median(r.get("cpu_seconds", 0) / r["seconds"] / max(1, threads)
                                             for r in reps) if reps[0].get("cpu_seconds") else None
        others = [n for n in medians if n.startswith(f"{workload} engine@") and n != name
                  and not n.endswith("busy")]
        if row["variant"].startswith("engine@") and not name.endswith("busy"):
            row["ratios_vs_versions"] = {n.split("@", 1)[1]: med / medians[n] for n in others}
        if name.endswith("busy"):
            # Target (issue 21): >= 70% of the quiet rate x the fraction of cores left.
            quiet = medians[f"{workload} engine@current"]
            row["ratio_vs_quiet"] = med / quiet
            row["fair_share"] = max(0.0, (cores - contention) / cores)
            row["ratio_vs_fair_share"] = row["ratio_vs_quiet"] / row["fair_share"] if row["fair_share"] else None
        if row["variant"].startswith("run@"):
            # Target (issue 28): the command trains at >= 80% of the engine's rate on its grid.
            row["ratio_vs_engine_grid"] = med / medians[f"{workload} engine-grid@current"]
            row["command_seconds"] = [r["command_seconds"] for r in reps]
            row["training_threads"] = reps[0].get("training_threads")
        if name.startswith("paper-tanh torch-fast-path"):
            row["ratio_vs_kernel"] = med / medians["paper-tanh engine@current"]
        if workload == "paper-tanh" and row["variant"].startswith("engine@") and "busy" not in name:
            row["ratio_vs_paper_jax_not_measured_here"] = med / PAPER_JAX_MODEL_STEPS_PER_S
        if previous is not None:
            old = {r["name"]: r for r in previous.get("results", [])}.get(name)
            if old is not None:
                row["ratio_vs_compare_json"] = med / old["model_steps_per_s"]
        rows.append(row)
    return rows


def print_table(rows: list[dict], out=None) -> None:
    out = out or sys.stdout
    head = (f"{'variant':30s} {'models x steps':>15s} {'chunk (at once)':>15s} "
            f"{'model-steps/s':>14s} {'(best)':>10s} "
            f"{'GFLOP/s':>8s} {'% peak':>7s} {'peak MiB':>9s} {'x naive':>8s}  other ratios")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        extra = [f"x {v:.2f} vs {k}" for k, v in r.get("ratios_vs_versions", {}).items()]
        if "ratio_vs_compare_json" in r:
            extra.append(f"x {r['ratio_vs_compare_json']:.2f} vs --compare")
        if "ratio_vs_quiet" in r:
            share = f" = {r['ratio_vs_fair_share']:.2f} of the fair share" if r["ratio_vs_fair_share"] else ""
            extra.append(f"x {r['ratio_vs_quiet']:.2f} vs engine@current without the load{share} "
                         f"(target >= 0.70)")
        if "ratio_vs_engine_grid" in r:
            extra.append(f"x {r['ratio_vs_engine_grid']:.2f} vs engine-grid@current, the engine on "
                         f"this grid (target >= 0.80); the whole command "
                         f"{statistics.median(r['command_seconds']):.0f} s; "
                         f"{r['training_threads']} thread(s) trained")
        if "ratio_vs_kernel" in r:
            extra.append(f"x {r['ratio_vs_kernel']:.2f} vs engine@current (the C++ kernel)")
        if r.get("cpu_share") is not None and "ratio_vs_quiet" in r:
            extra.append(f"CPU share {r['cpu_share']:.2f}")
        if "ratio_vs_paper_jax_not_measured_here" in r:
            extra.append(f"x {r['ratio_vs_paper_jax_not_measured_here']:.2f} vs paper JAX (17.6k, earlier)")
        mem = r["cuda_peak_mb"] if r["cuda_peak_mb"] is not None else r["peak_rss_mb"]
        mem = f"{mem:9.0f}" if mem is not None else f"{'-':>9s}"
        chunk = "1" if r["variant"] == "naive" else f"{r['tile_batch']} ({r.get('chunk_workers', 1)})"
        print(f"{r['name']:30s} {str(r['models']) + ' x ' + str(r['steps']):>15s} {chunk:>15s} "
              f"{r['model_steps_per_s']:14.1f} {r['model_steps_per_s_best']:10.1f} "
              f"{r['gflop_per_s']:8.1f} {r['percent_of_matmul_peak']:6.1f}% "
              f"{mem} {r['ratio_vs_naive']:8.2f}  {'; '.join(extra)}", file=out)


# ---- command ----------------------------------------------------------------------------------

def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time the training engine: model-steps/s, GFLOP/s, %% of "
                       "matmul peak, memory, ratios vs the naive loop and older versions")
    p.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: a smoke run")
    p.add_argument("--repeats", type=int, help="timed repeats per variant (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per worker (default 2)")
    p.add_argument("--only", nargs="+", help="workloads: resnet20 paper-tanh (default both)")
    p.add_argument("--against", metavar="GIT_REF", nargs="+", default=[],
                   help="also time the engine of these git refs, interleaved (e.g. HEAD~3 main)")
    p.add_argument("--compare", type=Path, metavar="OLD.json", help="ratios against an earlier --json")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write all results as JSON")
    p.add_argument("--device", default="cpu", help="cpu | cuda (matmul peak and CUDA memory)")
    p.add_argument("--contention", type=int, default=1, metavar="K",
                   help="also time the engine beside K busy processes (one core each), started "
                   "and stopped by the bench, interleaved with the quiet runs (default 1; 0: off)")


def cmd_bench(args) -> int:
    try:
        return run_bench(args)
    except BenchError as err:
        return refuse(err)
    except KeyboardInterrupt:
        sys.stderr.write("nnfractal: interrupted; the temporary worktrees were removed\n")
        return EXIT_INTERRUPTED


def _check(args) -> tuple[list[str], int, dict | None]:
    workloads = args.only or list(PRECISION)
    bad = [w for w in workloads if w not in PRECISION]
    if bad:
        raise BenchError(f"--only: {bad[0]!r} is not allowed (allowed: {', '.join(PRECISION)})")
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        raise BenchError(f"--repeats: {repeats} is not allowed (allowed: an integer >= 1)")
    if args.threads < 1:
        raise BenchError(f"--threads: {args.threads} is not allowed (allowed: an integer >= 1)")
    if args.contention < 0:
        raise BenchError(f"--contention: {args.contention} is not allowed (allowed: an integer >= 0)")
    if args.device not in ("cpu", "cuda"):
        raise BenchError(f"--device: {args.device!r} is not allowed (allowed: cpu, cuda)")
    previous = None
    if args.compare is not None:
        try:
            previous = json.loads(Path(args.compare).read_text())
        except (OSError, ValueError) as err:
            raise BenchError(f"--compare: {args.compare} is not a readable bench JSON ({err})") from None
    if args.json is not None and not Path(args.json).parent.exists():
        raise BenchError(f"--json: the folder of {args.json} does not exist")
    return workloads, repeats, previous


def run_bench(args) -> int:
    import torch
    workloads, repeats, previous = _check(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device: 'cuda' is not available on this machine (allowed here: cpu)")
    torch.set_num_threads(args.threads)
    log = lambda s: print(s, flush=True)          # noqa: E731
    mode = "quick" if args.quick else "normal"
    meta = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "python": platform.python_version(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "threads": args.threads, "device": args.device, "mode": mode, "repeats": repeats,
            "loadavg_start": _load(), "against": args.against, "allocator": allocator.in_use(),
            "usable_cpus": allocator.usable_cpus(), "contention": args.contention,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "cuda_device": torch.cuda.get_device_name() if args.device == "cuda" else None}
    log(f"nnfractal bench ({mode}, {repeats} repeat(s), {args.threads} threads): {meta['cpu']}, "
        f"torch {meta['torch']}, {meta['allocator']}, load {meta['loadavg_start']}")
    trees, workers = [], {}
    import signal

    def stop(signum, frame):                       # SIGTERM: still remove the worktrees
        raise KeyboardInterrupt
    previous_handler = signal.signal(signal.SIGTERM, stop)
    try:
        workers["current"] = Worker("current", PACKAGE_ROOT, args.threads)
        for ref in args.against:
            tree = git_worktree(ref)
            trees.append(tree)
            workers[ref] = Worker(ref, tree, args.threads)
        gflop = {w: gflop_per_model_step(w) for w in workloads}
        t0 = time.perf_counter()
        replies, peaks = measure(workloads, SIZES[mode], workers, repeats, args.threads,
                                 args.device, log, args.contention)
        total = time.perf_counter() - t0
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        for w in workers.values():
            w.close()
        for tree in trees:
            remove_worktree(tree)
    rows = summarise(replies, peaks, gflop, previous, args.threads, args.contention)
    print()
    for p, samples in peaks.items():
        print(f"{p} matmul peak (1024^3, best of {5 * len(samples)} calls spread over the run): "
              f"{max(samples):.1f} GFLOP/s")
    print_table(rows)
    meta["loadavg_end"] = _load()
    print(f"timed section {total:.0f} s; load average {meta['loadavg_start']} -> {meta['loadavg_end']}")
    if args.json is not None:
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "matmul_peak_gflop_per_s": {p: {"best": max(s), "samples": s}
                                                       for p, s in peaks.items()},
             "results": rows, "timed_seconds": total}, indent=2))
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    parser = OneLineParser(prog="nnfractal")
    add_bench_parser(parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser))
    return cmd_bench(parser.parse_args(["bench", *(argv if argv is not None else sys.argv[1:])]))
