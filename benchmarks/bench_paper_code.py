"""The paper's own code and `nnfractal run --preset paper-tanh`, side by side, end to end.

The paper's code is its colab notebook (github.com/Sohl-Dickstein/fractal), read at run time and
executed **unmodified** under JAX with float64 enabled, as the paper runs it: its hyperparameter
cell, its import cell (google.colab, absent outside colab, is an empty stand-in), the cells that
define the network, training and `gen_img`, and the assignments of its "tanh full batch" cell
(width 16, full batch, tanh, lr_vs_lr). Cells that run experiments or plot are not executed;
nothing of the notebook is copied here. `train` is wrapped (the call passes through unchanged)
only to keep the data and initial weights that `gen_img` drew.

Measured, alternating the two implementations in each round (median of the rounds):

* end to end: wall time of a subprocess computing a 64 x 64 map of 500 steps: the notebook's
  `gen_img(mnmx, 64)` (JAX start, compile, train), and `nnfractal run --preset paper-tanh`
  through the CLI (start, training, pictures, report), both giving model-steps/s;
* the same experiment: nnfractal replays the notebook's data and initial weights
  (`--data-file`, `--init-file`), so both train exactly the same 4096 networks;
* the maps pixel by pixel (converged = the notebook's V < 0, our score < 0), and, for every
  pixel that differs and a sample of boundary pixels that agree, whether it is chaotic: retrained
  with both learning rates moved by a few ulps, in both implementations, does its outcome flip?
* the converged fraction of the notebook's map against nnfractal's over several data/weight
  seeds (what different random data explain).

Usage (JAX in a venv of its own, outside the repository)::

    git -C <mirror of Sohl-Dickstein/fractal> show \\
        HEAD:the_boundary_of_neural_network_trainability_is_fractal.ipynb > /tmp/paper.ipynb
    python3 -m venv /work/jaxenv && /work/jaxenv/bin/pip install jax numpy scipy matplotlib
    python benchmarks/bench_paper_code.py /tmp/paper.ipynb --jax-python /work/jaxenv/bin/python \\
        --out /tmp/paper-bench --figure docs/paper_code_replay.png --markdown /tmp/paper.md

The worker modes (``--worker grid|points``) run under the JAX python and import nothing of
nnfractal.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

PRESET = "paper-tanh"
FULL_WINDOW = (-3.0, 6.0, -3.0, 6.0)
# One decade a side on the boundary inside the full window (log10 lr: output rows, input cols):
# of the half-decade-aligned decades, the one where the notebook's data gives the longest
# boundary (both outcomes, speckled).
BOUNDARY_WINDOW = (1.5, 2.5, 5.0, 6.0)
# The chaos check moves both learning rates by these directions (input, output) times a number
# of ulps: first 2; a pixel that does not flip is tried again at 16, then 128 ulps.
ULP_MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
ULP_TIERS = (2, 16, 128)
DEFINITIONS = {"net", "init", "loss", "train_step", "train", "convergence_measure", "gen_img"}
TANH_FULL_BATCH_TITLE = "## tanh full batch"


# ---- the notebook, under JAX (worker side: no nnfractal imports) -----------------------------

def notebook_cells(path: str) -> list[tuple[str, str]]:
    """(cell type, source) of every cell of the notebook at `path`."""
    nb = json.loads(Path(path).read_text())
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def _defined_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _parsed(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:              # cells with colab magics (!pip, %matplotlib)
        return None


def notebook_namespace(path: str, steps: int) -> dict:
    """The notebook's functions, defined by executing its own cells unmodified, configured as its
    "tanh full batch" experiment with `steps` optimisation steps."""
    import jax  # noqa: F401 - before the stand-in: JAX probes google.colab for itself
    colab = types.ModuleType("google.colab")
    colab.files, colab.drive = types.SimpleNamespace(), types.SimpleNamespace()
    sys.modules.setdefault("google", types.ModuleType("google")).colab = colab
    sys.modules["google.colab"] = colab
    os.environ.setdefault("MPLBACKEND", "Agg")
    cells = notebook_cells(path)
    ns: dict = {"__name__": "paper_notebook"}
    code = [(kind, src, _parsed(src)) for kind, src in cells]
    code = [(kind, src, tree) for kind, src, tree in code if kind == "code" and tree is not None]
    hyper = next(src for _, src, tree in code if "opt_steps" in _defined_names(tree))
    imports = next(src for _, src, tree in code if "jax_enable_x64" in src
                   and any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body))
    exec(compile(hyper, "notebook:hyperparameters", "exec"), ns)
    exec(compile(imports, "notebook:imports", "exec"), ns)
    for _, src, tree in code:
        if all(isinstance(n, (ast.FunctionDef, ast.Assign)) for n in tree.body) \
                and _defined_names(tree) & DEFINITIONS:
            exec(compile(src, "notebook:definitions", "exec"), ns)
    experiment = _experiment_assignments(cells)
    exec(compile(experiment, "notebook:tanh full batch", "exec"), ns)
    ns["opt_steps"] = steps
    return ns


def _experiment_assignments(cells: list[tuple[str, str]]) -> ast.Module:
    """The assignments (not the call) of the code cell under the "tanh full batch" heading."""
    titles = [i for i, (kind, src) in enumerate(cells)
              if kind == "markdown" and src.strip() == TANH_FULL_BATCH_TITLE]
    if not titles:
        raise SystemExit(f"no '{TANH_FULL_BATCH_TITLE}' cell in the notebook")
    src = next(src for kind, src in cells[titles[0] + 1:] if kind == "code")
    tree = ast.parse(src)
    tree.body = [n for n in tree.body if isinstance(n, ast.Assign)]
    return tree


def worker_grid(notebook: str, mnmx, resolution: int, steps: int, save: str) -> None:
    """Time the notebook's `gen_img(mnmx, resolution)`; save its map V, the lr grid, the data
    and the initial weights it drew, and the time."""
    ns = notebook_namespace(notebook, steps)
    seen: dict = {}
    original = ns["train"]

    def train(theta, hparams, X, Y, num_steps, *rest, **kw):
        seen.setdefault("args", (theta, hparams, X, Y))       # the outermost call
        return original(theta, hparams, X, Y, num_steps, *rest, **kw)

    ns["train"] = train
    start = time.perf_counter()
    v = np.asarray(ns["gen_img"](list(mnmx), resolution=resolution))
    seconds = time.perf_counter() - start
    theta, hparams, x, y = seen["args"]
    np.savez(save, V=v, hparams=np.asarray(hparams), x=np.asarray(x), y=np.asarray(y),
             seconds=seconds, **{f"theta{i}": np.asarray(w) for i, w in enumerate(theta)})


class _Drawn(Exception):
    """Raised by the wrapped `train` once gen_img has drawn its data: nothing is trained."""


def worker_draw(notebook: str, key: int, save: str) -> None:
    """The data and initial weights the notebook's `gen_img` draws when its PRNGKey(0) is
    PRNGKey(`key`): gen_img runs unmodified with `jax.random.PRNGKey` answering `key`, and stops
    at its call of `train`."""
    ns = notebook_namespace(notebook, 1)
    jax = ns["jax"]
    real_key = jax.random.PRNGKey
    seen: dict = {}

    def train(theta, hparams, X, Y, num_steps, *rest, **kw):
        seen["args"] = (theta, X, Y)
        raise _Drawn

    ns["train"] = train
    jax.random.PRNGKey = lambda seed: real_key(key)
    try:
        ns["gen_img"]([0.0, 1.0, 0.0, 1.0], resolution=2)
    except _Drawn:
        pass
    finally:
        jax.random.PRNGKey = real_key
    theta, x, y = seen["args"]
    np.savez(save, x=np.asarray(x), y=np.asarray(y),
             **{f"theta{i}": np.asarray(w) for i, w in enumerate(theta)})


def worker_points(notebook: str, inputs: str, points: str, steps: int, save: str) -> None:
    """The notebook's `train` on its own data and weights at the given (input lr, output lr)
    points: V (k,)."""
    ns = notebook_namespace(notebook, steps)
    jnp = ns["jnp"]
    got = np.load(inputs)
    theta = [jnp.asarray(got[f"theta{i}"]) for i in range(sum(k.startswith("theta")
                                                              for k in got.files))]
    hparams = jnp.asarray(np.load(points))
    v = ns["train"](theta, hparams, jnp.asarray(got["x"]), jnp.asarray(got["y"]), steps)
    np.save(save, np.asarray(v))


# ---- the converter: the notebook's arrays as nnfractal's data and init files -----------------

def notebook_to_npz(got, folder: Path) -> tuple[Path, Path]:
    """The notebook's X, Y and theta as a data file and an init file.

    The conventions match, so nothing is transposed or rescaled: the notebook's layer i is
    ``X @ theta[i] / sqrt(fan_in)`` with theta[i] of shape (fan_in, fan_out), as our
    ``weights.i``; both apply tanh(sqrt(2) z) and divide the readout by sqrt(fan_in) once more.
    """
    data, init = folder / "notebook_data.npz", folder / "notebook_init.npz"
    np.savez(data, x=got["x"], y=got["y"])
    n = sum(k.startswith("theta") for k in got.files)
    np.savez(init, **{f"weights.{i}": got[f"theta{i}"] for i in range(n)})
    return data, init


# ---- the two implementations, end to end (orchestrator side) ---------------------------------

def run_paper(args, window, save: Path) -> dict:
    """The notebook's gen_img in a fresh JAX process: wall and inner seconds, and its arrays."""
    cmd = [args.jax_python, __file__, "--worker", "grid", args.notebook, "--mnmx",
           *map(str, window), "--resolution", str(args.resolution), "--steps", str(args.steps),
           "--save", str(save)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    got = np.load(save)
    return {"wall": wall, "inner": float(got["seconds"]), "got": got}


def run_ours(args, window, out: Path, files=None, seed: int | None = None) -> dict:
    """`nnfractal run --preset paper-tanh` in a subprocess (the files: the notebook's data and
    weights): wall seconds, the compute rate it reports, and its score map."""
    cmd = [sys.executable, "-m", "nnfractal", "run", "--preset", PRESET, "--resolution",
           str(args.resolution), "--steps", str(args.steps), "--mnmx", *map(str, window),
           "--out", str(out), "--no-progress"]
    if files:
        cmd += ["--data-file", str(files[0]), "--init-file", str(files[1])]
    if seed is not None:
        cmd += ["--seed", str(seed), "--data-seed", str(seed)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "compute_rate": summary["model_steps_per_s"], "scores": scores_of(out)}


def scores_of(run_dir: Path) -> np.ndarray:
    from nnfractal.config import config_from_toml
    from nnfractal.runner.run import score_map
    from nnfractal.storage.store import RunStore
    cfg = config_from_toml(run_dir / "config.toml")
    return score_map(RunStore.open(run_dir / "store.zarr"), cfg)


def time_rounds(args, windows: dict, work: Path) -> dict:
    """`args.rounds` rounds; in each, per window, the notebook and nnfractal (replaying the
    notebook's data and weights, the same in every window: gen_img draws them from PRNGKey(0))
    one after the other, the order alternating by round (round 0: the notebook first)."""
    results = {name: {"paper": [], "ours": []} for name in windows}
    files = None
    for r in range(args.rounds):
        for name, window in windows.items():
            for who in (("paper", "ours") if r % 2 == 0 else ("ours", "paper")):
                load = os.getloadavg()[0]
                if who == "paper":
                    res = run_paper(args, window, work / f"paper-{name}-{r}.npz")
                    files = files or notebook_to_npz(res["got"], work)
                else:
                    res = run_ours(args, window, work / f"ours-{name}-{r}", files)
                res["load"] = load
                results[name][who].append(res)
                print(f"round {r} {name} {who}: {res['wall']:.1f} s end to end "
                      f"(load {load:.2f})", flush=True)
    results["files"] = files
    return results


# ---- pixel by pixel ---------------------------------------------------------------------------

def ours_at_points(args, files, points: np.ndarray) -> np.ndarray:
    """Converged (k,) of nnfractal trained on the notebook's data and weights at `points` (k, 2)
    = (input lr, output lr), exactly these values (the engine, not a grid)."""
    from nnfractal.config import build_config
    from nnfractal.models import build_family
    from nnfractal.runner.run import load_data
    from nnfractal.training.engine import train
    from nnfractal.training.measure import point_scores
    cfg = build_config(PRESET, steps=args.steps, data_file=str(files[0]),
                       init_file=str(files[1]))
    family = build_family(cfg)
    result = train(cfg, family, load_data(cfg, family), points)
    return point_scores(cfg, result.curves, result.schedule.steps_per_epoch) < 0


def paper_at_points(args, paper_npz: Path, points: np.ndarray, work: Path) -> np.ndarray:
    """Converged (k,) of the notebook's own `train` at `points`, on its data and weights."""
    pts, out = work / "points.npy", work / "points-V.npy"
    np.save(pts, points)
    subprocess.run([args.jax_python, __file__, "--worker", "points", args.notebook,
                    "--inputs", str(paper_npz), "--points", str(pts), "--steps", str(args.steps),
                    "--save", str(out)], check=True, capture_output=True, text=True)
    return np.load(out) < 0


def moved(points: np.ndarray, ulps: int, moves=ULP_MOVES) -> np.ndarray:
    """Each point with its learning rates moved by `ulps` times each direction of `moves`:
    (len(moves) * k, 2)."""
    out = []
    for di, do in moves:
        p = points.copy()
        for col, n in ((0, di * ulps), (1, do * ulps)):
            for _ in range(abs(n)):
                p[:, col] = np.nextafter(p[:, col], np.inf if n > 0 else 0.0)
        out.append(p)
    return np.concatenate(out)


def chaotic(args, files, paper_npz, points: np.ndarray, work: Path) -> dict:
    """The smallest move (ULP_TIERS, in ulps) of each point's learning rates that flips its
    outcome in either implementation: (k,) ints, 0 where none does."""
    tier = np.zeros(len(points), int)
    for ulps in ULP_TIERS:
        todo = np.flatnonzero(tier == 0)
        if len(todo) == 0:
            break
        base = points[todo]
        batch = np.concatenate([base, moved(base, ulps)])
        flips = np.zeros(len(todo), bool)
        for outcome in (paper_at_points(args, paper_npz, batch, work),
                        ours_at_points(args, files, batch)):
            grid = outcome.reshape(-1, len(todo))           # (1 + moves, k)
            flips |= grid.min(0) != grid.max(0)
        tier[todo[flips]] = ulps
    return tier


def boundary_pixels(converged: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of the other outcome: (rows, cols) booleans."""
    edge = np.zeros_like(converged)
    dy = converged[1:] != converged[:-1]
    dx = converged[:, 1:] != converged[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge


def compare_window(args, name: str, timing: dict, files, work: Path) -> dict:
    """The maps of one window pixel by pixel: the CLI replay (our log axes) and the replay at the
    notebook's exact learning rates; the chaos check of the differing pixels and of a sample of
    agreeing boundary pixels."""
    paper_res = timing[name]["paper"][0]
    got, paper_npz = paper_res["got"], work / f"paper-{name}-0.npz"
    paper = got["V"] < 0
    ours_grid = timing[name]["ours"][0]["scores"] < 0
    hparams = got["hparams"]                              # (res*res, 2) = (input, output) lr
    ours_exact = ours_at_points(args, files, hparams).reshape(paper.shape)
    from nnfractal.config import build_config
    from nnfractal.training.grid import axes
    x, y = axes(build_config(PRESET, resolution=args.resolution,
                             mnmx=tuple(timing[name]["window"])))
    lr_in, lr_out = hparams[:, 0].reshape(paper.shape), hparams[:, 1].reshape(paper.shape)
    differing_lr = int(np.sum((lr_in != x[None, :]) | (lr_out != y[:, None])))
    diff = np.flatnonzero(paper.ravel() != ours_exact.ravel())
    diff_grid = np.flatnonzero(paper.ravel() != ours_grid.ravel())
    checked = np.union1d(diff, diff_grid)
    rng = np.random.default_rng(0)
    agree = boundary_pixels(paper).ravel() & (paper.ravel() == ours_exact.ravel()) \
        & (paper.ravel() == ours_grid.ravel())
    control = rng.choice(np.flatnonzero(agree), size=min(args.control, int(agree.sum())),
                         replace=False)
    tier = chaotic(args, files, paper_npz, hparams[np.concatenate([checked, control])], work)
    of = dict(zip(checked.tolist(), tier[:len(checked)].tolist()))

    def counts(idx) -> list[int]:            # flipped within each tier, cumulative
        t = np.array([of[i] for i in idx.tolist()], int)
        return [int(np.sum((t > 0) & (t <= u))) for u in ULP_TIERS]

    ctrl = tier[len(checked):]
    return {"paper": paper, "ours_grid": ours_grid, "ours_exact": ours_exact,
            "differ_grid": len(diff_grid), "differ_exact": len(diff), "differing_lr": differing_lr,
            "boundary": int(boundary_pixels(paper).sum()), "chaotic_grid": counts(diff_grid),
            "chaotic_exact": counts(diff), "control": len(control),
            "chaotic_control": [int(np.sum((ctrl > 0) & (ctrl <= u))) for u in ULP_TIERS]}


def notebook_draw_spread(args, work: Path) -> list[float]:
    """nnfractal's converged fraction in the full window on the data and weights the notebook
    draws with PRNGKey(1), PRNGKey(2), ... instead of 0 (`args.keys` of them): the spread of
    the notebook's own draws, trained by nnfractal (whose replay agrees outside chaotic pixels)."""
    from nnfractal.config import build_config
    from nnfractal.runner.run import execute
    fractions = []
    for key in range(1, args.keys + 1):
        drawn = work / f"draw-{key}.npz"
        subprocess.run([args.jax_python, __file__, "--worker", "draw", args.notebook, "--key",
                        str(key), "--save", str(drawn)], check=True, capture_output=True)
        folder = work / f"draw-{key}"
        folder.mkdir(exist_ok=True)
        data, init = notebook_to_npz(np.load(drawn), folder)
        cfg = build_config(PRESET, resolution=args.resolution, steps=args.steps,
                           mnmx=FULL_WINDOW, data_file=str(data), init_file=str(init))
        if not (folder / "run" / "store.zarr").exists():
            execute(cfg, folder / "run", progress=False, log=lambda *_: None, draw=False)
        fractions.append(float(np.mean(scores_of(folder / "run") < 0)))
        print(f"notebook draw PRNGKey({key}): converged {fractions[-1]:.3f}", flush=True)
    return fractions


def stored_round(windows: dict, work: Path) -> dict:
    """Round 0 of an earlier run in `work` (the notebook's arrays, nnfractal's run folders), in
    the form `time_rounds` returns, without times."""
    timing: dict = {"files": (work / "notebook_data.npz", work / "notebook_init.npz")}
    for name in windows:
        timing[name] = {"paper": [{"got": np.load(work / f"paper-{name}-0.npz")}],
                        "ours": [{"scores": scores_of(work / f"ours-{name}-0")}]}
    return timing


def seed_spread(args, work: Path) -> list[float]:
    """nnfractal's converged fraction in the full window over `args.seeds` data/weight seeds
    (what different random data explain), trained in this process without pictures."""
    from nnfractal.config import build_config
    from nnfractal.runner.run import execute
    fractions = []
    for seed in range(args.seeds):
        cfg = build_config(PRESET, resolution=args.resolution, steps=args.steps, seed=seed,
                           data_seed=seed, mnmx=FULL_WINDOW)
        out = work / f"seed-{seed}"
        if not (out / "store.zarr").exists():         # kept from an earlier run in `work`
            execute(cfg, out, progress=False, log=lambda *_: None, draw=False)
        fractions.append(float(np.mean(scores_of(out) < 0)))
        print(f"seed {seed}: converged {fractions[-1]:.3f}", flush=True)
    return fractions


# ---- report -----------------------------------------------------------------------------------

def draw_figure(windows: dict, comparisons: dict, path: Path) -> None:
    """Per window: the notebook's map, nnfractal's (CLI replay), and the pixels that differ."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    outcome = ListedColormap(["#d7301f", "#2b8cbe"])           # diverged, converged
    fig, axes = plt.subplots(len(windows), 3, figsize=(7.5, 2.6 * len(windows)), squeeze=False)
    for row, (name, window) in enumerate(windows.items()):
        c = comparisons[name]
        extent = [window[2], window[3], window[0], window[1]]
        diff = (c["paper"] != c["ours_grid"]) + 2 * (c["paper"] != c["ours_exact"])
        panels = ((c["paper"], outcome, "notebook (JAX)"),
                  (c["ours_grid"], outcome, "nnfractal run (replay)"),
                  (diff, ListedColormap(["white", "#fdae61", "#756bb1", "black"]),
                   f"differ: {c['differ_grid']} grid, {c['differ_exact']} exact lr"))
        for ax, (img, cmap, title) in zip(axes[row], panels):
            ax.imshow(img, origin="lower", extent=extent, cmap=cmap, vmin=0,
                      vmax=cmap.N - 1, interpolation="nearest", aspect="auto")
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
        axes[row][0].set_ylabel(f"{name}: log10 output lr", fontsize=8)
        axes[row][1].set_xlabel("log10 input lr", fontsize=8)
    fig.text(0.5, 0.005, "blue: converged, red: diverged. Differing pixels: orange in the grid "
             "replay only, purple at the notebook's exact learning rates only, black in both",
             ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _median(values) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def markdown(args, windows: dict, timing: dict, comparisons: dict, spread: list[float],
             draws: list[float]) -> str:
    """The docs section: the speed table with its command, and the pixel-by-pixel comparison."""
    steps = args.resolution ** 2 * args.steps
    lines = ["### paper-tanh: the paper's code and `nnfractal run`, side by side",
             "", f"{args.resolution} x {args.resolution} grid, {args.steps} steps "
             f"({steps:,} model-steps), float64, median of {args.rounds} interleaved rounds; "
             f"the notebook unmodified under JAX {_jax_version(args)}, nnfractal replaying its "
             f"data and initial weights (the same {args.resolution ** 2} networks).", "",
             "| window (log10 lr) | notebook, end to end | `nnfractal run`, end to end | ratio "
             "| notebook, training only | nnfractal, training only | ratio | load average |",
             "|---|---|---|---|---|---|---|---|"]
    for name, window in windows.items():
        p, o = timing[name]["paper"], timing[name]["ours"]
        pe, oe = steps / _median([r["wall"] for r in p]), steps / _median([r["wall"] for r in o])
        pi, oi = steps / _median([r["inner"] for r in p]), _median([r["compute_rate"] for r in o])
        loads = [r["load"] for r in p + o]
        lines.append(f"| {name} {list(window)} | {pe:,.0f}/s | {oe:,.0f}/s | {oe / pe:.1f}x "
                     f"| {pi:,.0f}/s | {oi:,.0f}/s | {oi / pi:.1f}x "
                     f"| {min(loads):.1f}-{max(loads):.1f} |")
    lines += ["", "End to end: the wall time of the process (the notebook's `gen_img`: JAX start, "
              "compile, training; `nnfractal run`: start, training, pictures, report). Training "
              "only: the notebook's `gen_img` call; nnfractal's tile compute time "
              "(summary.json `model_steps_per_s`).", "", "```",
              f"python benchmarks/bench_paper_code.py NOTEBOOK --jax-python JAXENV/bin/python "
              f"--rounds {args.rounds}", "```", ""]
    lines += _pixel_lines(args, windows, timing, comparisons, spread, draws)
    return "\n".join(lines) + "\n"


def _tiers(counts: list[int]) -> str:
    return " / ".join(map(str, counts))


def _jax_version(args) -> str:
    return subprocess.run([args.jax_python, "-c", "import jax; print(jax.__version__)"],
                          capture_output=True, text=True).stdout.strip()


def _pixel_lines(args, windows, timing, comparisons, spread, draws) -> list[str]:
    lines = ["#### Pixel by pixel, replaying the notebook's data and initial weights", "",
             "| window | pixels | boundary pixels | learning rates not bit-equal (our axes vs "
             "the notebook's) | differ: grid replay | differ: notebook's exact lrs "
             "| agreeing boundary pixels (sample) |", "|---|---|---|---|---|---|---|"]
    for name in windows:
        c = comparisons[name]
        lines.append(f"| {name} | {c['paper'].size} | {c['boundary']} | {c['differing_lr']} "
                     f"| {c['differ_grid']}, chaotic {_tiers(c['chaotic_grid'])} "
                     f"| {c['differ_exact']}, chaotic {_tiers(c['chaotic_exact'])} "
                     f"| {c['control']}, chaotic {_tiers(c['chaotic_control'])} |")
    lines += ["", "Chaotic a / b / c: pixels whose outcome flips, in either implementation, "
              f"when both learning rates move by {' / '.join(map(str, ULP_TIERS))} ulps "
              f"({len(ULP_MOVES)} directions), cumulative."]
    if "full" in comparisons and (spread or draws):
        lines += [f"Converged fraction in the full window: the notebook's map "
                  f"{np.mean(comparisons['full']['paper']):.4f}, nnfractal's replay of it "
                  f"{np.mean(comparisons['full']['ours_grid']):.4f}."]
        for values, what in ((spread, "nnfractal's own data and weights (seeds 0-"
                              f"{len(spread) - 1})"),
                             (draws, f"the notebook's draws PRNGKey(1-{len(draws)}), trained "
                              "by nnfractal")):
            if values:
                lines.append(f"Over {what}: {np.mean(values):.4f} +- "
                             f"{np.std(values, ddof=1) if len(values) > 1 else 0:.4f} "
                             f"(range {min(values):.4f}-{max(values):.4f}).")
    return lines + [""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebook", help="the paper's .ipynb (git show HEAD:<path> of its repository)")
    p.add_argument("--worker", choices=("grid", "points", "draw"), help=argparse.SUPPRESS)
    p.add_argument("--key", type=int, help=argparse.SUPPRESS)
    p.add_argument("--keys", type=int, default=5,
                   help="notebook draws PRNGKey(1..KEYS) trained by nnfractal, for the spread")
    p.add_argument("--jax-python", default="python3", help="a python with jax installed")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=5, help="nnfractal seeds for the fraction spread")
    p.add_argument("--control", type=int, default=64, help="agreeing boundary pixels checked")
    p.add_argument("--boundary-window", type=float, nargs=4, default=BOUNDARY_WINDOW)
    p.add_argument("--mnmx", type=float, nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    p.add_argument("--points", help=argparse.SUPPRESS)
    p.add_argument("--save", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    p.add_argument("--figure", type=Path, help="write the maps and differing pixels (PNG)")
    p.add_argument("--markdown", type=Path, help="write the docs section here too")
    p.add_argument("--compare-only", nargs="+", metavar="WINDOW", choices=("full", "boundary"),
                   help="no timing: compare the maps of round 0 already in --out")
    args = p.parse_args(argv)
    if args.worker == "grid":
        worker_grid(args.notebook, args.mnmx, args.resolution, args.steps, args.save)
        return 0
    if args.worker == "draw":
        worker_draw(args.notebook, args.key, args.save)
        return 0
    if args.worker == "points":
        worker_points(args.notebook, args.inputs, args.points, args.steps, args.save)
        return 0
    work = args.out or Path(tempfile.mkdtemp(prefix="paper-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    windows = {"full": FULL_WINDOW, "boundary": tuple(args.boundary_window)}
    print(f"working in {work}; load average {os.getloadavg()}", flush=True)
    if args.compare_only:
        windows = {name: windows[name] for name in args.compare_only}
        timing = stored_round(windows, work)
    else:
        timing = time_rounds(args, windows, work)
    for name, window in windows.items():
        timing[name]["window"] = window
    comparisons = {name: compare_window(args, name, timing, timing["files"], work)
                   for name in windows}
    spread = seed_spread(args, work) if args.seeds else []
    draws = notebook_draw_spread(args, work) if args.keys else []
    if args.figure:
        draw_figure(windows, comparisons, args.figure)
    text = ("\n".join(_pixel_lines(args, windows, timing, comparisons, spread, draws)) + "\n"
            if args.compare_only else markdown(args, windows, timing, comparisons, spread, draws))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
