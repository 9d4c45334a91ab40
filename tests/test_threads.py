"""Every command trains on every thread it is given, and its busy-CPU warning is true.

The threads a training call computed with are measured (engine.TrainResult.threads: threads whose
CPU time grew, from the OS's per-thread counters, `cpu_usage`), not read from a setting: with
the paper MLP's kernel built without OpenMP, every command trained on one thread while the
settings said two. The busy warning compares the CPU time training got with the time its
threads waited in the run queue; it is checked on the real command, beside busy processes
pinned to its CPU, and on a machine measured idle while the test ran."""
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.models import build_family, meanfield_kernel  # noqa: F401 - named in the skipif condition
from nnfractal.storage.store import RunStore
from nnfractal.training import engine
from nnfractal.training.cpu_usage import CpuUsage
from nnfractal.training.data import synthetic_regression

pytestmark = [pytest.mark.slow, pytest.mark.compile,
              pytest.mark.skipif("not meanfield_kernel.available()",
                                 reason="the paper MLP kernel cannot be built here (no C++ compiler)")]

PAPER = ["--steps", "200", "--no-progress"]
# the smallest uncertainty sample (a 16 x 16 coarse map and one stage), at fewer steps
UNCERTAINTY = ["--method", "uncertainty", "--budget", "16256", "--coarse", "16", "--eps-min", "1e-5",
               "--floor-points", "0", "--steps", "50"]
BOUNDARY = ["--mnmx", "1.7", "2.7", "0.5", "1.5"]           # the quick start's window
CONVERGING = ["--mnmx", "0", "1", "0", "1"]                 # every model trains all its steps


@pytest.fixture
def threads():
    """The torch threads the commands get here (>= 2, or there is nothing to tell apart)."""
    n = torch.get_num_threads()
    if n < 2:
        pytest.skip("one torch thread: training on one thread or on all looks the same")
    return n


@pytest.fixture
def trained_threads(monkeypatch):
    """The measured threads of every engine.train call the command makes."""
    seen = []
    real = engine.train

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        seen.append(result.threads)
        return result
    monkeypatch.setattr(engine, "train", spy)
    return seen


def recorded_threads(folder) -> list[int]:
    """The threads each training session of a run or sample folder recorded in its store."""
    return [s["threads"] for s in RunStore.open(folder / "store.zarr").attrs["sessions"]]


def test_usage_measures_the_threads_that_compute():
    cfg = build_config("paper-tanh", steps=300, compile="off")
    family, data = build_family(cfg), synthetic_regression(cfg.train_size, 16, 1)
    pts = 10 ** np.c_[np.linspace(0, 1, 128), np.linspace(0, 1, 128)]        # all converge
    saved = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            result = engine.train(cfg, family, data, pts)
            assert result.threads == n
            assert result.cpu_time > 0 and result.wait_time >= 0
    finally:
        torch.set_num_threads(saved)
    usage = CpuUsage()
    time.sleep(0.2)                              # a sleeping thread neither computes nor waits
    assert usage.read().cpu_s < 0.1


def test_run_trains_on_every_thread(tmp_path, threads, trained_threads):
    out = tmp_path / "run"
    assert main(["run", "--preset", "paper-tanh", "--resolution", "16", *BOUNDARY, *PAPER,
                 "--out", str(out)]) == 0
    assert max(trained_threads) == threads
    assert recorded_threads(out) == [threads]


@pytest.mark.parametrize("method", [
    ["--method", "transect", "--points", "1024", "--lines", "1", "--center", "1.0", "2.2",
     "--angle", "80"],
    UNCERTAINTY], ids=["transect", "uncertainty"])
def test_sample_trains_on_every_thread(tmp_path, threads, trained_threads, method):
    out = tmp_path / "sample"
    assert main(["sample", "paper-tanh", *PAPER, *method, "--out", str(out)]) == 0
    assert max(trained_threads) == threads
    assert max(recorded_threads(out)) == threads


def test_zoom_trains_on_every_thread(tmp_path, threads, trained_threads):
    base = tmp_path / "base"
    assert main(["run", "--preset", "paper-tanh", "--resolution", "16", *BOUNDARY, *PAPER,
                 "--out", str(base)]) == 0
    trained_threads.clear()
    out = tmp_path / "zoom"
    assert main(["zoom", str(base), "--factor", "2", "--depth", "0.31", "--no-progress",
                 "--out", str(out)]) == 0
    assert len(trained_threads) >= 1 and max(trained_threads) == threads
    frames = sorted((out / "frames").iterdir())
    assert frames and all(max(recorded_threads(f)) == threads for f in frames)


@pytest.mark.parametrize("method", [
    ["--method", "box", "--windows", "1", "--resolution", "16"],
    ["--method", "transect", "--points", "1024", "--lines", "1"],
    UNCERTAINTY], ids=["box", "transect", "uncertainty"])
def test_compare_trains_on_every_thread(tmp_path, threads, trained_threads, method):
    out = tmp_path / "cmp"
    assert main(["compare", "paper-tanh", "paper-relu", "--seeds", "1", *PAPER, *method,
                 "--out", str(out)]) == 0
    assert max(trained_threads) == threads
    stores = [p.parent for p in out.rglob("store.zarr")]
    assert len(stores) >= 2 and all(max(recorded_threads(s)) == threads for s in stores)


def test_explorer_trains_on_every_thread(tmp_path, threads, trained_threads):
    """The session's worker thread trains the first window (as behind `nnfractal explore`)."""
    pytest.importorskip("fastapi")
    from nnfractal.explorer import Session
    cfg = build_config("paper-tanh", resolution=16, steps=200, mnmx=[1.7, 2.7, 0.5, 1.5])
    session = Session.new(cfg, tmp_path / "session", log=lambda *_: None)
    try:
        deadline = time.monotonic() + 300
        while session.window(0).status not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert session.window(0).status == "done"
    finally:
        session.close()
    assert trained_threads == [threads]


# ---- the busy-CPU warning, on the real command --------------------------------------------------

def _cli(args, tmp_path, cpus: set[int], extra_env=None) -> subprocess.CompletedProcess:
    """`python -m nnfractal ARGS` pinned to `cpus`, its thread count left to the command."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "nnfractal", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))


def _busy_jiffies(cpus: set[int]) -> tuple[int, int]:
    """(busy, total) clock ticks of these CPUs so far (/proc/stat; steal counts as busy)."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(v) for v in values[:8]]      # user nice system idle iowait irq softirq steal
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def _children_ticks() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc/stat")
def test_no_busy_warning_on_an_idle_machine(tmp_path):
    """The quick start, the first command a user runs, with its kernel built in this very run (a
    fresh build folder): no busy warning where nothing else ran. Whether anything else ran is
    measured (the CPUs' busy time minus this test's processes'); the test skips, saying so, on a
    machine that was busy meanwhile."""
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    before, ours_before = _busy_jiffies(cpus), _children_ticks()
    done = _cli(["run", "--preset", "quickstart", "--out", "qs", "--no-progress"],
                tmp_path, cpus, {"TORCH_EXTENSIONS_DIR": str(tmp_path / "build")})
    after, ours = _busy_jiffies(cpus), _children_ticks() - ours_before
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "build").is_dir()                      # the kernel was built in this run
    others = (after[0] - before[0] - ours) / max(1, after[1] - before[1])
    session = RunStore.open(tmp_path / "qs" / "store.zarr").attrs["sessions"][-1]
    assert session["threads"] == len(cpus) and session["wall_s"] >= engine.BUSY_MIN_SECONDS
    if others > 0.15:
        pytest.skip(f"the machine was busy: other programs used {others:.0%} of the {len(cpus)} "
                    "CPU(s) while the test ran, so the warning may be true")
    assert "busy" not in done.stdout + done.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_busy_warning_beside_busy_processes_on_the_same_cpu(tmp_path):
    """A run pinned to one CPU beside two busy loops pinned to the same CPU gets about a third of
    it: the warning says so (other load on the machine can only lower the share)."""
    cpu = {sorted(os.sched_getaffinity(0))[0]}
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=lambda: os.sched_setaffinity(0, cpu)) for _ in range(2)]
    try:
        done = _cli(["run", "--preset", "paper-tanh", "--resolution", "48", "--steps", "100",
                     *CONVERGING, "--out", "busy", "--no-progress"], tmp_path, cpu)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert done.returncode == 0, done.stderr
    assert "warning: the CPU was busy: training waited for a CPU" in done.stdout
    session = RunStore.open(tmp_path / "busy" / "store.zarr").attrs["sessions"][-1]
    assert session["threads"] == 1
    assert session["cpu_s"] / (session["cpu_s"] + session["wait_s"]) < engine.BUSY_CPU_SHARE
