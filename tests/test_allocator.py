"""tcmalloc preloaded by restarting the console command (allocator.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nnfractal import allocator
from nnfractal.store import RunStore

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
        assert (out / "epochs.mp4").stat().st_size > 0
        assert f"memory allocator</th><td>{expected}" in (out / "report.html").read_text()
        curves[switch] = RunStore.open(out / "store.zarr").read_curves()
    assert np.isfinite(curves["0"]).any()
    np.testing.assert_array_equal(curves["1"], curves["0"])
