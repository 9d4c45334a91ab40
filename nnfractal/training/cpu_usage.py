"""CPU time the threads of this process got while training, the time they waited for a CPU, and
how many of them computed.

Linux keeps, for every thread, the time it ran and the time it sat in a run queue, ready but
waiting for a CPU (``/proc/self/task/<tid>/schedstat``: on-CPU ns, run-queue ns, time slices).
That wait is contention and nothing else: a thread with nothing to do (an OpenMP thread between
kernel calls, the main thread while a kernel builds in a compiler process, every thread but one
in a chunk's single-threaded parts) sleeps and accrues neither. So CPU / (CPU + wait) is the
share of the CPU time training asked for that it got, whatever parallelism the work offered;
CPU time / (wall time x threads) is not (single-threaded stretches read as contention).

Threads that exit before `read` take their numbers with them: the engine reads before its chunk
workers exit. Where schedstat is missing (not Linux), the process's CPU time stands in, with no
wait and one thread.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TASKS = "/proc/self/task"
# A thread counts as computing if it ran at least this fraction of the busiest thread's CPU time:
# threads that share the work run about as long as the busiest; an idle OpenMP thread spinning
# briefly after each parallel region, or a server thread answering requests beside training
# (the explorer), stays far below.
COMPUTING_FRACTION = 1 / 3


@dataclass(frozen=True)
class Usage:
    cpu_s: float        # CPU seconds of this process's threads
    wait_s: float       # seconds they were ready to run but waited for a CPU
    threads: int        # threads that computed (at least COMPUTING_FRACTION of the busiest one's CPU)

    @property
    def share(self) -> float:
        """CPU / (CPU + wait): 1 where every ready thread had a CPU; 1 / (k + 1) beside k busy
        programs per core."""
        return self.cpu_s / (self.cpu_s + self.wait_s) if self.cpu_s + self.wait_s > 0 else 1.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_s + other.cpu_s, self.wait_s + other.wait_s,
                     max(self.threads, other.threads))


NO_USAGE = Usage(0.0, 0.0, 0)


def _snapshot() -> dict[int, tuple[int, int]] | None:
    """{thread id: (on-CPU ns, run-queue ns)} of this process's threads, None without schedstat."""
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return None
    out = {}
    for tid in tids:
        try:
            with open(f"{_TASKS}/{tid}/schedstat") as f:
                cpu, wait = f.read().split()[:2]
        except (OSError, ValueError):
            continue                          # the thread exited meanwhile
        out[int(tid)] = (int(cpu), int(wait))
    return out or None


class CpuUsage:
    """Measures from construction to each `read()`."""

    def __init__(self):
        self._start = _snapshot()
        self._cpu_start = time.process_time()

    def read(self) -> Usage:
        now = _snapshot() if self._start is not None else None
        if now is None:
            return Usage(time.process_time() - self._cpu_start, 0.0, 1)
        cpu, wait = {}, {}
        for tid, (c, w) in now.items():
            c0, w0 = self._start.get(tid, (0, 0))
            if c < c0 or w < w0:                  # a new thread with a recycled id
                c0 = w0 = 0
            cpu[tid], wait[tid] = c - c0, w - w0
        busiest = max(cpu.values(), default=0)
        computing = sum(1 for c in cpu.values() if busiest and c >= COMPUTING_FRACTION * busiest)
        return Usage(sum(cpu.values()) / 1e9, sum(wait.values()) / 1e9, computing)
