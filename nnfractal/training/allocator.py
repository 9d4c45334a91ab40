"""The memory allocator: tcmalloc where it is installed, preloaded by re-executing the CLI.

glibc's malloc gives large freed blocks back to the kernel, so each training step page-faults its
activations back in and the kernel zeroes every page again (~2,000 page faults per ResNet-20
model-step); tcmalloc keeps them for the next step, which is faster for every model timed
(benchmarks/README.md, "Measurements behind the code").

A process cannot change its allocator once it runs, so the `nnfractal` command and `python -m
nnfractal` (cli/start.py; not `cli.main` called from Python, not a library import)
re-execute themselves once with LD_PRELOAD set, before importing anything heavy.
NNFRACTAL_TCMALLOC=0 turns that off; where tcmalloc is not installed nothing changes (Debian and
Ubuntu: `apt install libtcmalloc-minimal4`; conda: `gperftools`). The preload is taken out of
the environment again after the restart, so that the programs nnfractal starts (ffmpeg, git)
run as usual; the benchmark's worker processes get it back through `preload_env`. Ray's worker
processes keep the system's malloc (their run records leave the allocator out).

The same entry point sets OpenMP's thread count and wait policy before torch loads
(`set_thread_env`): threads from the CPUs this process may use (affinity, cgroup quota), and
waiting threads that sleep rather than spin, so that a run shares a busy machine gracefully.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

LIBRARIES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
SEARCH_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
               "/usr/local/lib")
SWITCH = "NNFRACTAL_TCMALLOC"            # "0": keep the system's malloc
_RESTARTED = "NNFRACTAL_TCMALLOC_PRELOADED"  # set across the restart: what was added, never twice


def find_tcmalloc(search_dirs=None) -> str | None:
    """The path of an installed tcmalloc library, or None."""
    dirs = list(search_dirs if search_dirs is not None else SEARCH_DIRS)
    if search_dirs is None:
        dirs.append(os.path.join(sys.prefix, "lib"))          # conda's gperftools
    for directory in dirs:
        for name in LIBRARIES:
            path = Path(directory) / name
            if path.is_file():
                return str(path)
    return None


def in_use() -> str:
    """"tcmalloc" if this process runs on it, else "system malloc" (for run records)."""
    try:
        with open("/proc/self/maps") as maps:
            if any("libtcmalloc" in line for line in maps):
                return "tcmalloc"
    except OSError:
        pass
    return "system malloc"


def preload_env(env: dict[str, str], library: str) -> dict[str, str]:
    """`env` with `library` preloaded (ahead of any LD_PRELOAD already there) and tcmalloc's
    reports of allocations over 1 GB silenced (a zarr read of a large run is not news)."""
    preload = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    return dict(env, LD_PRELOAD=preload, TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD=str(2 ** 62))


def restart_plan(env: dict[str, str], platform: str, library: str | None) -> dict[str, str] | None:
    """The environment to restart this command with, or None to carry on as it is: also where
    the user preloads an allocator of their own (jemalloc, mimalloc, tcmalloc)."""
    if (platform != "linux" or env.get(SWITCH, "1") == "0" or _RESTARTED in env
            or "malloc" in env.get("LD_PRELOAD", "") or library is None):
        return None
    return dict(preload_env(env, library), **{_RESTARTED: library})


# ---- threads -----------------------------------------------------------------------------------
# OpenMP settings made before torch loads (OpenMP reads them once, when its library loads), each
# only where the user has not set it. PASSIVE: an OpenMP thread that waits for the others at the
# end of a parallel region sleeps instead of spinning: a spinning thread burns the time slice
# its partner, descheduled by another job, needs (benchmarks/README.md). KMP_BLOCKTIME=0 says the same to Intel's
# OpenMP (conda builds of torch).
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs this process's cgroup may use (quota / period), or None where unlimited or unknown:
    cgroup v2's cpu.max ("max 100000" or "150000 100000"), else v1's cpu.cfs_quota_us."""
    try:
        quota, period = Path(root, "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path(root, "cpu", "cpu.cfs_quota_us").read_text())
        period = int(Path(root, "cpu", "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus(affinity: set[int] | None = None, limit: float | None = -1.0) -> int:
    """The CPUs this process may run on: those in its affinity mask (taskset, a container's
    cpuset), capped by its cgroup CPU quota rounded up (docker --cpus), at least 1. Not the host's
    core count, which is what torch's default thread count follows."""
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except (AttributeError, OSError):                      # not Linux
            affinity = set(range(os.cpu_count() or 1))
    n = len(affinity) or 1
    limit = cgroup_cpu_limit() if limit == -1.0 else limit
    if limit is not None:
        n = min(n, max(1, math.ceil(limit - 1e-9)))
    return n


def thread_env(env: dict[str, str], cpus: int) -> dict[str, str]:
    """`env` with the OpenMP defaults and OMP_NUM_THREADS = cpus added where the user has not set
    them (a user's own value always wins)."""
    added = dict(OPENMP_DEFAULTS, OMP_NUM_THREADS=str(cpus))
    return dict(env, **{k: v for k, v in added.items() if not env.get(k)})


def set_thread_env() -> bool:
    """Apply `thread_env` to this process, if torch is not loaded yet (after that OpenMP has read
    its settings): True where it was applied."""
    if "torch" in sys.modules:
        return False
    for key, value in thread_env(dict(os.environ), usable_cpus()).items():
        os.environ.setdefault(key, value)
    return True


def restart_with_tcmalloc() -> None:
    """Re-execute this command (same interpreter, same arguments) with tcmalloc preloaded, where
    `restart_plan` says so; after the restart, take the preload out of os.environ again. Either
    way, the OpenMP settings and thread count of `set_thread_env` are in place before torch loads."""
    set_thread_env()
    library = os.environ.pop(_RESTARTED, None)
    if library is not None:                       # the restarted process
        rest = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p and p != library]
        if rest:
            os.environ["LD_PRELOAD"] = ":".join(rest)
        else:
            os.environ.pop("LD_PRELOAD", None)
        os.environ.pop("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", None)
        return
    env = restart_plan(dict(os.environ), sys.platform, find_tcmalloc())
    if env is None or in_use() == "tcmalloc":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
