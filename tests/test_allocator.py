"""tcmalloc preloaded by restarting the console command (allocator.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_animation

from nnfractal.storage.store import RunStore
from nnfractal.training import allocator

pytestmark = pytest.mark.slow  # starts the command in new processes

LIB = "/opt/lib/libtcmalloc_minimal.so.4"


def test_restart_plan_preloads_only_where_it_should():
    env = {"PATH": "/bin", "LD_PRELOAD": "libother.so"}
    plan = allocator.restart_plan(env, "linux", LIB)
    assert plan["LD_PRELOAD"] == f"{LIB}:libother.so"          # ours first, the user's kept
    assert plan["PATH"] == "/bin" and plan[allocator._RESTARTED] == LIB
    assert allocator.restart_plan({}, "linux", LIB)["LD_PRELOAD"] == LIB
    assert allocator.restart_plan(env, "linux", None) is None                 # not installed
    assert allocator.restart_plan(env, "darwin", LIB) is None
    assert allocator.restart_plan(dict(env, NNFRACTAL_TCMALLOC="0"), "linux", LIB) is None
    assert allocator.restart_plan(plan, "linux", LIB) is None                 # never twice
    assert allocator.restart_plan({"LD_PRELOAD": "/x/libtcmalloc.so.4"}, "linux", LIB) is None
    assert allocator.restart_plan({"LD_PRELOAD": "libjemalloc.so.2"}, "linux", LIB) is None


def test_find_tcmalloc_looks_in_the_given_folders(tmp_path):
    assert allocator.find_tcmalloc([str(tmp_path)]) is None
    (tmp_path / "libtcmalloc.so.4").write_bytes(b"")
    assert allocator.find_tcmalloc([str(tmp_path)]) == str(tmp_path / "libtcmalloc.so.4")
    (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"")                # the minimal one first
    assert allocator.find_tcmalloc([str(tmp_path)]) == str(tmp_path / "libtcmalloc_minimal.so.4")


def test_the_restarted_process_takes_the_preload_out_of_its_environment(monkeypatch):
    """So that ffmpeg, git and the other programs it starts run with the user's environment."""
    monkeypatch.setenv(allocator._RESTARTED, LIB)
    monkeypatch.setenv("LD_PRELOAD", f"{LIB}:libother.so")
    monkeypatch.setenv("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", "1")
    allocator.restart_with_tcmalloc()                                          # returns, no exec
    assert os.environ["LD_PRELOAD"] == "libother.so"
    assert allocator._RESTARTED not in os.environ
    assert "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD" not in os.environ


def test_the_command_runs_on_tcmalloc_where_installed_with_the_same_numbers(tmp_path):
    """The real command, run twice: its run record names the allocator its process ran on (read
    from /proc/self/maps), the video (ffmpeg, started by the restarted process) is written, and
    the curves do not depend on the allocator, bit for bit."""
    if sys.platform != "linux":
        pytest.skip("LD_PRELOAD is Linux's")
    curves = {}
    for switch in ("1", "0"):
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator._RESTARTED)}
        env[allocator.SWITCH] = switch
        out = tmp_path / f"run{switch}"
        proc = subprocess.run([sys.executable, "-m", "nnfractal", "run", "--resolution", "3",
                               "--num_epochs", "1", "--depth", "8", "--c_hidden", "16", "16", "16",
                               "--train-size", "64", "--batch_size", "32", "--no-progress",
                               "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "tcmalloc: large alloc" not in proc.stderr
        summary = json.loads((out / "summary.json").read_text())
        expected = "tcmalloc" if switch == "1" and allocator.find_tcmalloc() else "system malloc"
        assert summary["allocator"] == expected
        assert_animation(out / "epochs.mp4")
        assert f"memory allocator</th><td>{expected}" in (out / "report.html").read_text()
        curves[switch] = RunStore.open(out / "store.zarr").read_curves()
    assert np.isfinite(curves["0"]).any()
    np.testing.assert_array_equal(curves["1"], curves["0"])


# ---- threads (issue 21) ------------------------------------------------------------------------

def test_usable_cpus_follow_affinity_and_the_cgroup_quota(tmp_path):
    assert allocator.usable_cpus({0, 1, 2, 3}, None) == 4
    assert allocator.usable_cpus({0, 1, 2, 3}, 1.5) == 2          # docker --cpus 1.5: 2 threads
    assert allocator.usable_cpus({0, 1, 2, 3}, 0.2) == 1
    assert allocator.usable_cpus({3}, 8.0) == 1                    # taskset -c 3
    limit = allocator.cgroup_cpu_limit()
    here = len(os.sched_getaffinity(0))
    assert allocator.usable_cpus() == (min(here, max(1, int(-(-limit // 1)))) if limit else here)
    (tmp_path / "cpu.max").write_text("150000 100000\n")           # cgroup v2
    assert allocator.cgroup_cpu_limit(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert allocator.cgroup_cpu_limit(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()                                      # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert allocator.cgroup_cpu_limit(str(tmp_path)) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert allocator.cgroup_cpu_limit(str(tmp_path)) is None
    assert allocator.cgroup_cpu_limit(str(tmp_path / "missing")) is None


def test_thread_env_keeps_the_users_own_settings():
    env = allocator.thread_env({"PATH": "/bin"}, 3)
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0",
                   "OMP_NUM_THREADS": "3"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "7", "KMP_BLOCKTIME": "200"}
    assert allocator.thread_env(mine, 3) == mine


def test_the_command_sets_passive_openmp_and_threads_from_its_cpus_before_torch_loads():
    """The real entry point in a process pinned to one CPU: torch then runs 1 thread, OpenMP
    waits passively; a user's own OMP_WAIT_POLICY wins."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("CPU affinity is Linux's")
    code = ("import os, sys; from nnfractal.training.allocator import set_thread_env; "
            "assert set_thread_env(); import torch; "
            "print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'], set_thread_env())")
    first_cpu = min(os.sched_getaffinity(0))
    for policy, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=600,
                              preexec_fn=lambda: os.sched_setaffinity(0, {first_cpu}))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["1", expected, "False"]      # False: torch was loaded


_ENDING = """
import atexit, sys
import nnfractal.cli.main as cli_main
from nnfractal.cli import start

class Teardown:                       # a module-level object: freed only by a full teardown
    def __del__(self, open=open, path=sys.argv[1] + ".teardown"):   # builtins go first
        open(path, "w").write("ran")

keep = Teardown()

def command():
    atexit.register(lambda: open(sys.argv[1] + ".atexit", "w").write("ran"))
    print("x" * 100000)               # buffered: must still reach the file
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")
    return int(sys.argv[2])

cli_main.console_main = command
sys.exit(start.console_main())
"""


@pytest.mark.parametrize("status", ["0", "3", "raise"])
def test_the_command_ends_without_teardown_after_a_normal_exits_steps(tmp_path, status):
    """cli/start.py: after the command, handlers registered during it run and buffered output is
    written; the interpreter's teardown (a module object's __del__) is skipped when the command
    returned a status, which is the exit status; a command that raised exits the usual way."""
    script, mark = tmp_path / "ending.py", str(tmp_path / "mark")
    script.write_text(_ENDING)
    env = dict(os.environ, NNFRACTAL_TCMALLOC="0")
    done = subprocess.run([sys.executable, str(script), mark, status], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.stdout.strip() == "x" * 100000
    assert (tmp_path / "mark.atexit").read_text() == "ran"
    if status == "raise":
        assert done.returncode == 1 and "RuntimeError: boom" in done.stderr
        assert (tmp_path / "mark.teardown").exists()
    else:
        assert done.returncode == int(status) and done.stderr == ""
        assert not (tmp_path / "mark.teardown").exists()
