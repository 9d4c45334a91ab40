"""Tiled, resumable runs: the map does not depend on the tiling, chunk size or backend; kill -9 or
Ctrl-C and --resume give the uninterrupted run bit for bit, computing no finished tile twice;
the Ray backend (a real local Ray cluster) gives the local backend's map and retries a failed task.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import assert_animation, assert_picture, quiet, run_args

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.runner.run import execute, resume, score_map
from nnfractal.storage.store import RunStore, StoreError
from nnfractal.training import engine

# A float64 MLP grid that trains in ~1 s here: 12 x 12 points, 12 tiles of one row (3 chunks) at
# --tile-rows 1.
# 1500 steps: long enough that a kill lands mid-run with the paper-MLP kernel (~0.3 s a tile)
FLAGS = {"resolution": 12, "steps": 1500, "tile_batch": 4}
ARGS = run_args("paper-tanh", FLAGS)
CFG = build_config("paper-tanh", **FLAGS)


pytestmark = [pytest.mark.slow,  # trains grids, kills processes
              pytest.mark.usefixtures("one_torch_thread")]


def curves(run_dir):
    return RunStore.open(run_dir / "store.zarr").read_curves()


def tile_state(run_dir):
    """(done, stored, attempts), each (tiles,), of a run's store; None before the store exists."""
    try:
        store = RunStore.open(run_dir / "store.zarr")
        state = store.tile_state()
        return store.done_tiles(), state["stored"], state["attempts"]
    except (StoreError, KeyError, FileNotFoundError):
        return None


def test_the_reference_is_the_whole_float64_grid(reference):
    """conftest's `reference` of this module's CFG: curves (12, 12, 1500) float64."""
    assert reference.dtype == np.float64 and reference.shape == (12, 12, 1500)


class TrainSpy:
    """Counts the points every engine.train call trains (the real engine runs)."""

    def __init__(self, monkeypatch):
        self.points, real = [], engine.train

        def spy(cfg, family, data, points, *a, **k):
            self.points.append(len(points))
            return real(cfg, family, data, points, *a, **k)
        monkeypatch.setattr(engine, "train", spy)


# ---- tiling invariance -------------------------------------------------------------------------

@pytest.mark.parametrize("tile_rows,tile_batch", [(5, 4), (1, 4), (3, 3), (2, 8), (4, 16), (12, 3)])
def test_float64_curves_do_not_depend_on_tiles_or_chunk_size(tile_rows, tile_batch, reference,
                                                             tmp_path):
    """Ragged tiles (5+5+2 rows), one-row tiles, other chunk sizes >= 2 (the last chunk of the
    grid padded): every curve bit for bit equal to the whole grid's, in one tile, chunks of 4."""
    out = tmp_path / "run"
    execute(CFG.replace(tile_batch=tile_batch), out, progress=False, log=quiet,
            tile_rows=tile_rows, draw=False)
    store = RunStore.open(out / "store.zarr")
    assert store.tile_grid.tile_rows == tile_rows and store.done_tiles().all()
    assert store.group["curves/train_loss"].chunks[:2] == (tile_rows, 12)   # a tile = a chunk
    assert np.array_equal(curves(out), reference, equal_nan=True)
    signs = np.sign(score_map(store, CFG))
    assert (signs < 0).any() and (signs > 0).any()            # both outcomes are on this grid


def test_float32_map_signs_agree_across_tiles_and_chunk_sizes(tmp_path):
    """A float32 ResNet (oneDNN kernels, chaotic training): >= 99% of map signs agree between
    tilings and chunk sizes; the same chunk size in other tiles gives the same signs."""
    base = build_config("resnet20-mnist", depth=8, c_hidden=(4, 8, 8), train_size=32, batch_size=16,
                        num_epochs=2, resolution=10, eval_every=0, mnmx=(-2.0, 1.5, -3.0, 1.0))
    maps = {}
    for tile_rows, tile_batch in [(10, 8), (4, 8), (3, 5)]:
        out = tmp_path / f"t{tile_rows}-{tile_batch}"
        cfg = base.replace(tile_batch=tile_batch)
        execute(cfg, out, progress=False, log=quiet, tile_rows=tile_rows, draw=False)
        assert curves(out).dtype == np.float32
        maps[tile_rows, tile_batch] = np.sign(score_map(RunStore.open(out / "store.zarr"), cfg))
    ref = maps[10, 8]
    assert 0 < (ref < 0).mean() < 1                              # a boundary is on the grid
    for key, m in maps.items():
        assert (m == ref).mean() >= 0.99, key


# ---- kill -9 and Ctrl-C ----------------------------------------------------------------------------

def start_run(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nnfractal", "run", *ARGS, "--out", str(out),
                             "--no-progress", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for_done_tiles(proc, out, n, timeout=120):
    """Poll the store's done flags until n tiles are done; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = tile_state(out)
        if state is not None and state[0].sum() >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before {n} tiles were done: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("timed out waiting for tiles")


def test_kill_9_then_resume_is_bit_identical_and_computes_no_tile_twice(reference, tmp_path,
                                                                       monkeypatch):
    out = tmp_path / "run"
    # --checkpoint-every 0: a tile's finished chunks are written after every chunk, so the kill
    # usually lands in a partly stored tile, whose stored points must not be trained again.
    proc = start_run(out, "--tile-rows", "1", "--checkpoint-every", "0")
    wait_for_done_tiles(proc, out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done, stored, attempts = tile_state(out)
    assert 2 <= done.sum() < done.size, "the kill must land mid-run"
    assert not RunStore.open(out / "store.zarr").complete
    counts = RunStore.open(out / "store.zarr").tile_counts()
    missing = int((counts - stored).sum())

    spy = TrainSpy(monkeypatch)
    resume(out, progress=False, log=quiet, draw=False)
    assert sum(spy.points) == missing          # only the points not stored at the kill
    assert np.array_equal(curves(out), reference, equal_nan=True)
    done_after, stored_after, attempts_after = tile_state(out)
    assert done_after.all()
    assert (attempts_after[done] == attempts[done]).all()           # no finished tile recomputed
    assert (attempts_after[~done] == attempts[~done] + 1).all()     # each missing one once more
    assert RunStore.open(out / "store.zarr").complete


def test_ctrl_c_stops_after_the_chunk_says_how_to_resume_and_resume_finishes(reference, tmp_path,
                                                                              capsys):
    out = tmp_path / "run"
    proc = start_run(out, "--tile-rows", "1")
    wait_for_done_tiles(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    done, stored, attempts = tile_state(out)
    last = err.strip().splitlines()[-1]
    assert last == (f"nnfractal: interrupted after {done.sum()} of 12 tiles; "
                    f"resume with: nnfractal run --resume {out}"), err
    assert "Traceback" not in err and done.sum() < 12
    # The current chunk was finished and written: the stopped tile holds whole chunks.
    assert (stored % 4 == 0).all() or (stored == RunStore.open(out / "store.zarr").tile_counts()).all()

    # The user's own command again, plus --resume: its flags match the run's config.
    assert main(["run", *ARGS, "--resume", str(out), "--no-progress"]) == 0
    assert np.array_equal(curves(out), reference, equal_nan=True)
    for name in ("summary.json", "report.html", "fractal.json"):
        assert (out / name).is_file(), name
    assert_picture(out / "map.png", min_ink=0.3)
    assert_animation(out / "epochs.mp4")
    assert (tile_state(out)[2][done] == 1).all()                    # no finished tile recomputed
    capsys.readouterr()
    # Resuming a finished run only says so.
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert "is complete: nothing to train or draw" in capsys.readouterr().out


# ---- failures mid-run ------------------------------------------------------------------------------

def test_a_failing_tile_is_one_line_exit_2_keeps_finished_tiles_and_resumes(reference, tmp_path,
                                                                              capsys, monkeypatch):
    """An exception while training tile 4 (the documented test hook): one line naming the tile,
    exit 2, earlier tiles kept, the traceback in error.log; --resume finishes bit for bit."""
    out = tmp_path / "run"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "4")
    code = main(["run", *ARGS, "--tile-rows", "1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("nnfractal: error: training stopped: tile 4 failed: InjectedFailure")
    assert err.endswith(f"(resume with: nnfractal run --resume {out})")
    done, _, _ = tile_state(out)
    assert done.sum() == 4 and done[:4].all()                       # tiles 0-3 done, in order
    assert "InjectedFailure" in (out / "error.log").read_text()
    resume(out, progress=False, log=quiet, draw=False)             # attempt 2 succeeds
    assert np.array_equal(curves(out), reference, equal_nan=True)
    assert tile_state(out)[2][4] == 2


# ---- Ray ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    import ray  # in the test extra: this test runs in CI, never skipped
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_backend_gives_the_local_map_and_retries_a_failed_task(reference, local_ray, tmp_path,
                                                                   monkeypatch):
    out = tmp_path / "ray"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "1")       # its first attempt raises
    logs = []
    execute(CFG, out, progress=False, log=logs.append, tile_rows=2, backend="ray", draw=False)
    assert np.array_equal(curves(out), reference, equal_nan=True)
    done, _, attempts = tile_state(out)
    assert done.all() and attempts[1] == 2 and (attempts.sum() == attempts.size + 1)
    assert any("backend ray" in line for line in logs)
    session = RunStore.open(out / "store.zarr").attrs["sessions"][-1]
    assert session["backend"] == "ray" and session["outcome"] == "complete"


def test_auto_tile_batch_is_fixed_in_the_run_config(tmp_path):
    """tile_batch = 0 (auto) is resolved before the run is written: config.toml names the chunk
    size, so a resume trains with the same chunks (and the tiles hold whole chunks)."""
    from nnfractal.config import config_from_toml
    out = execute(build_config("paper-tanh", resolution=12, steps=20, tile_batch=0), tmp_path / "run",
                  progress=False, log=quiet, draw=False)
    stored = config_from_toml(out / "config.toml")
    assert stored.tile_batch > 0 and stored.tile_batch & (stored.tile_batch - 1) == 0
    assert RunStore.open(out / "store.zarr").done_tiles().all()
