"""Regenerate the documentation's figures from the project's own commands.

    python docs/make_figures.py               # the quick start's figures (~2-5 min on 2 cores)
    python docs/make_figures.py --expensive   # also the results figures (hours of CPU)
    python docs/make_figures.py --list        # print every command, run nothing

Every figure under docs/figures/ is a file that an `nnfractal` command wrote (or a headless
Chromium screenshot of a page it wrote or served), copied unchanged. docs/figures/manifest.json
records, per figure, the command, the file it came from, and the commit and date of the tree
that ran it, so the site can say which code drew each picture. Nothing here edits an image.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
NNFRACTAL = [sys.executable, "-m", "nnfractal"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# The quick start, drawn at 128 px (its preset's size): the pictures the guide explains.
QUICKSTART = ["run", "--preset", "quickstart", "--no-progress"]
QUICKSTART_FIGURES = {           # run folder file -> docs/figures/quickstart/<name>
    "map.png": "map.png",
    "boundary.png": "boundary.png",
    "boxcount.png": "boxcount.png",
    "fd_per_epoch.png": "fd_per_epoch.png",
    "trained.png": "trained.png",
}

# The results pages' figures: hours of CPU each, so only with --expensive. Each entry: the
# figure (under docs/), the commands (RUN, ZOOM, OUT stand for the folders they make) and the file
# of the last command's folder it is.
EXPENSIVE = [
    ("paper/tanh-uncertainty.png",
     ["sample paper-tanh --method uncertainty --budget 65536 --out OUT"], "uncertainty.png"),
    ("paper/single-uncertainty.png",
     ["sample paper-single --method uncertainty --budget 262144 --out OUT"], "uncertainty.png"),
    ("paper/linear-uncertainty.png",
     ["sample paper-linear --method uncertainty --budget 262144 --out OUT"], "uncertainty.png"),
    ("paper/linear-points.png",
     ["sample paper-linear --method uncertainty --budget 262144 --out OUT"], "points.png"),
    ("paper/offset-uncertainty.png",
     ["sample paper-offset --method uncertainty --budget 32768 --out OUT"], "uncertainty.png"),
    ("paper/tanh-protocol-x2.png",
     ["run --preset paper-tanh --resolution 128 --out RUN",
      "zoom RUN --factor 2 --decades 2.7 --out OUT"], "dimension_per_frame.png"),
    ("paper/tanh-protocol-frame5.png",
     ["run --preset paper-tanh --resolution 128 --out RUN",
      "zoom RUN --factor 2 --decades 2.7 --out OUT"], "frames/frame_05/map.png"),
    ("skip/d8-compare_maps.png",
     ["compare skipstudy-mnist-resnet skipstudy-mnist-plain --method transect --points 2048 "
      "--length 0.05 --angle 60 --seeds 3 --depth 8 --out OUT"], "compare_maps.png"),
    ("skip/d8-compare_fits.png", ["(the same comparison)"], "compare_fits.png"),
    ("skip/d8-compare_dimensions.png", ["(the same comparison)"], "compare_dimensions.png"),
    ("skip/d20-compare_maps.png",
     ["compare skipstudy-mnist-resnet skipstudy-mnist-plain --method transect --points 2048 "
      "--length 0.05 --angle 60 --seeds 1 --depths 20 --out OUT"], "compare_maps.png"),
    ("skip/d20-compare_fits.png", ["(the same comparison)"], "compare_fits.png"),
    ("skip/d20-compare_dimensions.png", ["(the same comparison)"], "compare_dimensions.png"),
    ("skip/len96-maps.png",
     ["compare skipstudy-mnist-resnet skipstudy-mnist-plain --method transect --points 2048 "
      "--length 0.05 --angle 60 --seeds 1 --depth 8 --steps 96 --out OUT"], "compare_maps.png"),
]


def tree_state() -> dict:
    """The commit that draws the figures, and whether the tree differs from it (outside
    docs/figures, which this script writes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    changed = [line for line in git("status", "--porcelain").splitlines()
               if "docs/figures/" not in line]
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "tree_clean": not changed,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def nnfractal(args: list[str], log: Path) -> str:
    """Run one nnfractal command; its stdout (also saved to `log`) is returned. Fails loudly."""
    print("$ nnfractal " + " ".join(args), flush=True)
    done = subprocess.run(NNFRACTAL + args, cwd=ROOT, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"make_figures: `nnfractal {' '.join(args)}` exited {done.returncode}:\n"
                         f"{done.stderr[-2000:]}")
    return done.stdout


def screenshot(url: str, png: Path, width: int = 1280, height: int = 900) -> None:
    """Headless Chromium's picture of a page (the file tool's way to look at the report)."""
    if CHROMIUM is None:
        raise SystemExit("make_figures: chromium is needed for the page screenshots "
                         "(apt install chromium)")
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", "--virtual-time-budget=8000",
                    f"--screenshot={png}", url], check=True, capture_output=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def explorer_screenshot(run_dir: Path, png: Path) -> str:
    """Serve the explorer on `run_dir` (a copy: the explorer may write a session there), take a
    screenshot of its page, stop the server. Returns the command."""
    port = free_port()
    args = ["explore", str(run_dir), "--port", str(port)]
    server = subprocess.Popen(NNFRACTAL + args, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:          # the server prints its URL once it listens
            line = server.stdout.readline()
            if "http://" in line or server.poll() is not None:
                break
        if server.poll() is not None:
            raise SystemExit(f"make_figures: the explorer did not start: {line}")
        time.sleep(2)
        screenshot(f"http://127.0.0.1:{port}/", png, 1280, 820)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return "nnfractal explore RUN --port PORT  (a headless Chromium screenshot of the page)"


def quickstart(work: Path, state: dict) -> dict:
    """The quick start's figures, its report's and its explorer's screenshots."""
    out = FIGURES / "quickstart"
    out.mkdir(parents=True, exist_ok=True)
    run_dir = work / "quickstart"
    started = time.monotonic()
    stdout = nnfractal(QUICKSTART + ["--out", str(run_dir)], work / "quickstart.log")
    wall = time.monotonic() - started
    command = "nnfractal " + " ".join(QUICKSTART)
    figures = {}
    for source, name in QUICKSTART_FIGURES.items():
        if (run_dir / source).exists():
            shutil.copyfile(run_dir / source, out / name)
            figures[f"quickstart/{name}"] = {"command": command, "file": f"RUN/{source}"}
    screenshot((run_dir / "report.html").as_uri(), out / "report.png", 1280, 1400)
    figures["quickstart/report.png"] = {
        "command": command, "file": "RUN/report.html (a headless Chromium screenshot, 1280 px wide)"}
    figures["quickstart/explorer.png"] = {
        "command": explorer_screenshot(run_dir, out / "explorer.png"), "file": "the served page"}
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"figures": figures, "printed": stdout.strip().splitlines()[-6:],
            "wall_s": round(wall, 1), "load_average": os.getloadavg(),
            "summary": {k: summary.get(k) for k in ("fraction_converged", "model_steps_per_s",
                                                     "device", "wall_time_s")}}


def expensive(work: Path) -> dict:
    """The results pages' figures (hours): each command as `EXPENSIVE` lists it."""
    figures, folders = {}, {}
    for target, commands, source in EXPENSIVE:
        for command in commands:
            if command.startswith("("):
                continue                             # the comparison above, already run
            if command in folders:
                continue
            folder = work / f"job{len(folders)}"
            args = command.replace("RUN", str(work / "run-paper-tanh")).replace(
                "OUT", str(folder)).split()
            nnfractal(args + ["--no-progress"], work / f"job{len(folders)}.log")
            folders[command] = folder
        last = next(c for c in reversed(commands) if not c.startswith("("))
        shutil.copyfile(folders[last] / source, ROOT / "docs" / target)
        figures[target] = {"command": "; ".join("nnfractal " + c for c in commands),
                           "file": f"OUT/{source}"}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expensive", action="store_true",
                        help="also redraw docs/paper/* and docs/skip/* (hours of CPU)")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("nnfractal " + " ".join(QUICKSTART) + "   -> docs/figures/quickstart/")
        for target, commands, source in EXPENSIVE:
            print(f"docs/{target} <- {source} of: " + "; ".join(commands))
        return 0
    state = tree_state()
    manifest_path = FIGURES / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="nnfractal-figures-") as tmp:
        result = quickstart(Path(tmp), state)
        manifest["quickstart"] = {**state, **result}
        if args.expensive:
            manifest["results"] = {**tree_state(), "figures": expensive(Path(tmp))}
    FIGURES.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"make_figures: wrote {manifest_path.relative_to(ROOT)} (commit {state['commit'][:10]}"
          f"{'' if state['tree_clean'] else ', tree with uncommitted changes'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
