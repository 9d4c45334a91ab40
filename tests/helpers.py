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

import pytest

BROWSER_SKIP = "no Chromium to drive"      # conftest.py counts the skips that start with it
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


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


def race(tmp_path: Path, script: str, prefix: str, reps: int, *extra: str,
         timeout: float = 600) -> tuple[Path, list]:
    """Two processes ("a" and "b") run `script` on the same folders ``root/<prefix><i>``, i <
    `reps`, half of which exist empty (an empty folder is a new one too): (root, each process's
    JSON output). Neither racer outlives the call."""
    path = tmp_path / "racer.py"
    path.write_text(script)
    root = tmp_path / "race"
    root.mkdir()
    for i in range(0, reps, 2):
        (root / f"{prefix}{i}").mkdir()
    procs = [subprocess.Popen([sys.executable, str(path), str(root), name, str(reps), *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in "ab"]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            assert p.returncode == 0, stderr
            outs.append(json.loads(stdout))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return root, outs
