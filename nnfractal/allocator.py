"""The memory allocator: tcmalloc where it is installed, preloaded by re-executing the CLI.

glibc's malloc gives large freed blocks back to the kernel, so each training step page-faults its
activations back in and the kernel zeroes every page again (~2,000 page faults per ResNet-20
model-step); tcmalloc keeps them for the next step. Measured on a 2-core Xeon, alternating
processes: ResNet-20 1.065x (median of 6 rounds, faster in all 6), the paper's MLP 1.14-1.55x
with less memory (benchmarks/README.md).

A process cannot change its allocator once it runs, so the `nnfractal` command and `python -m
nnfractal` (cli.console_main; not `cli.main` called from Python, not a library import)
re-execute themselves once with LD_PRELOAD set, before importing anything heavy.
NNFRACTAL_TCMALLOC=0 turns that off; where tcmalloc is not installed nothing changes (Debian and
Ubuntu: `apt install libtcmalloc-minimal4`; conda: `gperftools`). The preload is taken out of
the environment again after the restart, so that the programs nnfractal starts (ffmpeg, git)
run as usual; the benchmark's worker processes get it back through `preload_env`. Ray's worker
processes keep the system's malloc (their run records leave the allocator out).
"""
from __future__ import annotations

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


def restart_with_tcmalloc() -> None:
    """Re-execute this command (same interpreter, same arguments) with tcmalloc preloaded, where
    `restart_plan` says so; after the restart, take the preload out of os.environ again."""
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
