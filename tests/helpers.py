"""Helpers that several test modules drive the same way: a headless Chromium page, a command
interrupted at a line of its output, and two processes racing for the same output folders."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import BROWSER_SKIP  # the skips conftest.py counts

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def assert_picture(path: Path, *, min_ink: float = 0.02, outcomes: bool = False) -> np.ndarray:
    """Check that a PNG shows a figure, from its pixels: it decodes, at least `min_ink` of it is
    not white (a map fills most of its figure; a line plot's axes and text give a few percent),
    and it has more than a handful of colours. With `outcomes`, a convergence map's both sides:
    blue (converged) and red (diverged) pixels, at least 1% of the picture each. Returns the
    RGB pixels (rows, cols, 3) in [0, 1]."""
    from matplotlib.image import imread
    rgb = imread(path)[..., :3]
    ink = float((rgb.min(axis=2) < 0.95).mean())
    assert ink >= min_ink, f"{path}: {ink:.3f} of the picture is not white (expected >= {min_ink})"
    colours = len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colours > 8, f"{path}: {colours} colours"
    if outcomes:
        blue = float((rgb[..., 2] > rgb[..., 0] + 0.15).mean())
        red = float((rgb[..., 0] > rgb[..., 2] + 0.15).mean())
        assert blue >= 0.01 and red >= 0.01, f"{path}: blue {blue:.3f}, red {red:.3f} of the picture"
    return rgb


def assert_animation(path: Path, frames: int | None = None) -> None:
    """Check that a GIF or an H.264 MP4 decodes into `frames` frames (at least 1) that are not all
    alike, and an MP4 is H.264 (browsers play it)."""
    import imageio.v3 as iio
    video = iio.imread(path, index=None, **({"plugin": "FFMPEG"} if path.suffix == ".mp4" else {}))
    assert len(video) >= 1 and (frames is None or len(video) == frames), (path, len(video))
    assert video.std() > 0, f"{path}: every pixel alike"
    if path.suffix == ".mp4":
        assert b"avc1" in path.read_bytes()


def run_args(preset: str, overrides: dict) -> list[str]:
    """The `nnfractal run` flags of a preset with config overrides (``--name value`` each)."""
    return ["--preset", preset, *(f for k, v in overrides.items() for f in (f"--{k}", str(v)))]


def quiet(*_) -> None:
    """A log function that says nothing."""


@contextmanager
def chromium_page(width: int, height: int = 900) -> Iterator[tuple[object, list[str]]]:
    """(page, problems): a page of Debian's Chromium (else the one Playwright installed) and the
    list its console errors and uncaught page errors go to. Skips when there is no Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"{BROWSER_SKIP}: playwright is "
                                   "not installed (pip install -e '.[test]')")
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else None,
                                        args=CHROMIUM_ARGS)
        except sync_api.Error as err:
            pytest.skip(f"{BROWSER_SKIP}: {str(err).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            yield page, problems
        finally:
            browser.close()


def interrupt_at(args: list[str], at_line: Callable[[str], bool], sig: str) -> tuple[int, str]:
    """Run ``python -m nnfractal *args``, send it `sig` 0.3 s after the first line of its output
    for which `at_line` holds, and wait: (exit code, all it printed)."""
    proc = subprocess.Popen([sys.executable, "-m", "nnfractal", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if at_line(line):
            time.sleep(0.3)
            proc.send_signal(getattr(signal, sig))
            break
    rest, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(seen) + rest


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


RACE_BARRIER = '''
import sys as _sys


def barrier(i):
    """Wait until the other racer reaches rep i too: the parent lets both go at once. Blocks on
    stdin (a polling wait starved a racer under load)."""
    print(f"ready {i}", flush=True)
    _sys.stdin.readline()
'''


def race(tmp_path: Path, script: str, prefix: str, reps: int, *extra: str,
         timeout: float = 600) -> tuple[Path, list]:
    """Two processes ("a" and "b") run `script` on the same folders ``root/<prefix><i>``, i <
    `reps`, half of which exist empty (an empty folder is a new one too): (root, each process's
    JSON output, printed last on a line of its own). The script calls ``barrier(i)`` (defined
    for it) before rep i: the parent releases both racers when both have reached it. Neither
    racer outlives the call."""
    path = tmp_path / "racer.py"
    path.write_text(RACE_BARRIER + script)
    root = tmp_path / "race"
    root.mkdir()
    for i in range(0, reps, 2):
        (root / f"{prefix}{i}").mkdir()
    procs = [subprocess.Popen([sys.executable, str(path), str(root), name, str(reps), *extra],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for name in "ab"]
    outs = []
    try:
        for i in range(reps):
            for p in procs:
                _wait_ready(p, i)
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            assert p.returncode == 0, stderr
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return root, outs


def _wait_ready(proc: subprocess.Popen, i: int) -> None:
    """Read `proc`'s stdout up to its line "ready i" (other lines, a kernel build's note, are
    skipped); fail with its stderr if it ends first."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while line and line != f"ready {i}\n":
        line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"racer ended before rep {i}: {proc.communicate()[1]}")
