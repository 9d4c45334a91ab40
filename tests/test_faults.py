"""Bad input and faults around runs and --resume, one table (FAULTS): each gives exactly one line on
stderr naming the field or path, exit code 2, and leaves every file that was there unchanged.
Where the fault goes away (space freed, folder writable again), --resume then finishes the run bit
for bit. Config flag errors of a new run are in test_cli.py (BAD_INPUTS), not repeated here.

Full disk and read-only folder are real where the test runs as root with the right to mount (CI
and the dev machines: a tiny tmpfs filled to the last page, a tmpfs remounted read-only). Without
that they fall back to: chmod a-w when not root (root ignores permission bits), and else a patched
writer raising ENOSPC / EROFS, so the table still runs everywhere.
"""
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from helpers import assert_picture, quiet, race, run_args

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.runner.run import resume
from nnfractal.storage.store import RunStore

FLAGS = {"resolution": 12, "steps": 60, "tile_batch": 4}
ARGS = run_args("paper-tanh", FLAGS)
CFG = build_config("paper-tanh", **FLAGS)


pytestmark = [pytest.mark.slow,  # trains grids, fills disks
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    """A real unfinished run: training stopped by a failing tile (the documented test hook, tile
    4), so 4 of its 12 one-row tiles are done. Each test gets a copy."""
    out = tmp_path_factory.mktemp("partial") / "run"
    with mock.patch.dict(os.environ, {"NNFRACTAL_TEST_FAIL_TILE": "4"}):
        assert main(["run", *ARGS, "--tile-rows", "1", "--out", str(out), "--no-progress"]) == 2
    assert RunStore.open(out / "store.zarr").done_tiles().sum() == 4
    return out


# ---- a disk that is full or read-only ---------------------------------------------------------

def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path("/tmp") / f"nnfractal-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=True)
    probe.rmdir()
    return ok


# NNFRACTAL_TEST_NO_MOUNT=1 exercises the fallbacks on a machine that could mount.
CAN_MOUNT = not os.environ.get("NNFRACTAL_TEST_NO_MOUNT") and _can_mount()


class Disk:
    """A folder on its own tmpfs that can be filled up or made read-only, and put right again."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.mp, self.mounted = root, monkeypatch, False
        root.mkdir()
        if CAN_MOUNT:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)], check=True)
            self.mounted = True

    def fill(self, leave: int = 0) -> None:
        """No space left (but `leave` bytes): a ballast file takes every free page (or, without a
        tmpfs, zarr's writes raise ENOSPC once `leave` // 16384 more tiles were written)."""
        if self.mounted:
            block = b"\0" * 65536
            with open(self.root / "ballast", "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(block)
                except OSError as err:
                    assert err.errno == errno.ENOSPC
            for size in (4096, 512, 1):           # the last partial pages too
                try:
                    with open(self.root / "ballast", "ab", buffering=0) as f:
                        while True:
                            f.write(b"\0" * size)
                except OSError:
                    pass
            if leave:
                os.truncate(self.root / "ballast", os.path.getsize(self.root / "ballast") - leave)
        elif leave:
            tiles_left = [leave // 16384]
            real = RunStore.write_tile

            def write_tile(store, *a, **k):
                if tiles_left[0] <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                tiles_left[0] -= 1
                return real(store, *a, **k)
            self.mp.setattr(RunStore, "write_tile", write_tile)
        else:
            self._patch_writes(errno.ENOSPC)

    def free(self) -> None:
        if self.mounted:
            (self.root / "ballast").unlink()
        else:
            self.mp.undo()

    def read_only(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.root)], check=True)
        elif os.geteuid() != 0:
            for p in [self.root, *self.root.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o555)
        else:
            self._patch_writes(errno.EROFS)

    def writable(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(self.root)], check=True)
        elif os.geteuid() != 0:
            for p in [self.root, *self.root.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o755)
        else:
            self.mp.undo()

    def _patch_writes(self, code: int) -> None:
        """Fallback: the writers fail with `code`: zarr's file writer, the text files' writer and
        (read-only) the write probe."""
        import tempfile

        from zarr.storage import _local

        def fail(*_a, **_k):
            raise OSError(code, os.strerror(code))
        self.mp.setattr(_local, "_put", fail)
        self.mp.setattr(Path, "write_text", fail)
        if code == errno.EROFS:            # a full disk still takes an empty file (the probe)
            self.mp.setattr(tempfile, "mkstemp", fail)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)


@pytest.fixture
def disk(tmp_path, monkeypatch):
    d = Disk(tmp_path / "disk", monkeypatch)
    yield d
    monkeypatch.undo()
    d.close()


# ---- the table ------------------------------------------------------------------------------------
# Each setup gets (a copy of the partial run, a scratch folder, the disk) and returns the command
# line; `expect` is what the one error line must contain ({run}, {tmp} filled in).

def _resume(run, *extra):
    return ["run", "--resume", str(run), "--no-progress", *extra]


def corrupt_store_json(run, tmp, disk):
    (run / "store.zarr" / "zarr.json").write_text("{ this is not json")
    return _resume(run)


def corrupt_array_json(run, tmp, disk):
    (run / "store.zarr" / "curves" / "train_loss" / "zarr.json").write_bytes(b"\x00garbage")
    return _resume(run)


def corrupt_chunk(run, tmp, disk):
    chunk = run / "store.zarr" / "curves" / "train_loss" / "c" / "1" / "0" / "0"    # tile 1
    assert chunk.is_file()
    chunk.write_bytes(b"not a zstd frame" * 10)
    return _resume(run)


def foreign_store(run, tmp, disk):
    import zarr
    shutil.rmtree(run / "store.zarr")
    group = zarr.open_group(str(run / "store.zarr"), mode="w", zarr_format=3)
    group.create_array("temperature", data=np.arange(12.0))
    group.attrs["title"] = "someone else's data"
    return _resume(run)


def old_format_store(run, tmp, disk):
    store = RunStore.open(run / "store.zarr", mode="r+")
    store.update_attrs(format_version=1)
    return _resume(run)


def store_of_another_config(run, tmp, disk):
    toml = run / "config.toml"
    toml.write_text(toml.read_text().replace("steps = 60", "steps = 50"))
    return _resume(run)


def flag_differs(run, tmp, disk):
    return _resume(run, "--steps", "50")


def preset_differs(run, tmp, disk):
    return _resume(run, "--preset", "paper-relu", "--resolution", "12", "--steps", "60",
                   "--tile_batch", "4")


def tile_rows_differ(run, tmp, disk):
    return _resume(run, "--tile-rows", "2")


def out_differs(run, tmp, disk):
    return _resume(run, "--out", str(tmp / "elsewhere"))


def toml_unknown_key(run, tmp, disk):
    (run / "config.toml").write_text((run / "config.toml").read_text() + 'colour = "red"\n')
    return _resume(run)


def toml_wrong_type(run, tmp, disk):
    toml = run / "config.toml"
    toml.write_text(toml.read_text().replace("steps = 60", 'steps = "sixty"'))
    return _resume(run)


def toml_not_toml(run, tmp, disk):
    (run / "config.toml").write_text("steps = = 60\n")
    return _resume(run)


def not_a_run(run, tmp, disk):
    (tmp / "notes").mkdir()
    (tmp / "notes" / "todo.txt").write_text("buy milk")
    return _resume(tmp / "notes")


def _new_run(out, *flags):
    """`nnfractal run` of the module's grid into `out`, with `flags` added."""
    return ["run", *ARGS, *flags, "--out", str(out), "--no-progress"]


def _resume_on_faulty_disk(run, disk, fault):
    """Resume a copy of the finished run on the test disk after `fault` (disk.fill, ...)."""
    moved = shutil.copytree(run, disk.root / "run")
    fault()
    return _resume(moved)


def full_disk_resume(run, tmp, disk):
    return _resume_on_faulty_disk(run, disk, disk.fill)


def full_disk_new_run(run, tmp, disk):
    disk.fill()
    return _new_run(disk.root / "new")


def read_only_run(run, tmp, disk):
    return _resume_on_faulty_disk(run, disk, disk.read_only)


def read_only_parent(run, tmp, disk):
    disk.read_only()
    return _new_run(disk.root / "new")


def wrong_checksum(run, tmp, disk):
    mnist = tmp / "data" / "mnist"
    mnist.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (mnist / name).write_bytes(b"\x1f\x8b not the published file")
    return ["run", "--resolution", "2", "--num_epochs", "1", "--data-dir", str(tmp / "data"),
            "--out", str(tmp / "new"), "--no-progress"]


def ray_not_installed(run, tmp, disk):
    disk.mp.setitem(sys.modules, "ray", None)           # import ray -> ImportError
    return _new_run(tmp / "new", "--backend", "ray")


def unknown_backend(run, tmp, disk):
    return _new_run(tmp / "new", "--backend", "slurm")


def address_without_ray(run, tmp, disk):
    return _new_run(tmp / "new", "--address", "10.0.0.1:6379")


def bad_tile_rows(run, tmp, disk):
    return _new_run(tmp / "new", "--tile-rows", "0")


def tile_rows_not_whole_chunks(run, tmp, disk):
    return ["run", *ARGS, "--tile_batch", "16", "--tile-rows", "3", "--out", str(tmp / "new"),
            "--no-progress"]


def run_in_use(run, tmp, disk):
    import fcntl
    holder = open(run / "config.toml", "rb")          # another process training this run
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    disk.mp.setattr(disk, "lock_holder", holder, raising=False)
    return _resume(run)


def bad_checkpoint(run, tmp, disk):
    return _resume(run, "--checkpoint-every", "-5")


FAULTS = [
    # (setup, what the error line contains)
    (corrupt_store_json, "store: {run}/store.zarr is not a readable zarr v3 store"),
    (corrupt_array_json, "store: {run}/store.zarr"),
    (foreign_store, "store: {run}/store.zarr is not an nnfractal run store"),
    (old_format_store, "store: {run}/store.zarr has format version 1 and cannot be resumed"),
    (store_of_another_config, "config: {run}/config.toml differs from the config its store was "
                              "written with (in: steps)"),
    (flag_differs, "resume: --steps 50 differs from the run's config (steps = 60 in {run}/config.toml"),
    (preset_differs, "resume: --preset paper-relu differs from the run's config"),
    (tile_rows_differ, "resume: --tile-rows 2 differs from the run's (1;"),
    (out_differs, "out: {tmp}/elsewhere is not allowed with --resume"),
    (toml_unknown_key, "colour: unknown key in {run}/config.toml (allowed: "),
    (toml_wrong_type, "steps: 'sixty' is not allowed (allowed: an integer)"),
    (toml_not_toml, "config: {run}/config.toml is not a readable TOML file"),
    (not_a_run, "resume: {tmp}/notes holds no config.toml"),
    (full_disk_resume, "training stopped: tile 4 failed: OSError: [Errno 28] No space left on device"),
    # a full disk: the budget refuses a new run up front (a patched writer, where nothing can be
    # mounted, leaves the disk's free space as it is: then the write itself fails)
    (full_disk_new_run, "free where {disk}/new goes (allowed: an estimate up to " if CAN_MOUNT
     else "out: cannot write {disk}/new (No space left on device)"),
    (read_only_run, "out: {disk}/run is not writable (Read-only file system)"),
    (read_only_parent, "out: {disk}/new cannot be created ({disk} is not writable: Read-only file system)"),
    (wrong_checksum, "data_dir: {tmp}/data/mnist/train-labels-idx1-ubyte.gz has md5 "),
    (ray_not_installed, "backend: 'ray' needs Ray, which is not installed (install it with: "
                        "pip install 'nnfractal[ray]'"),
    (unknown_backend, "backend: 'slurm' is not allowed (allowed: local, ray)"),
    (address_without_ray, "address: '10.0.0.1:6379' is not allowed with backend 'local'"),
    (bad_tile_rows, "tile_rows: 0 is not allowed (allowed: a multiple of 1"),
    (tile_rows_not_whole_chunks, "tile_rows: 3 is not allowed (allowed: a multiple of 4, so that a "
                                 "tile of rows x 12 columns holds whole chunks of --tile_batch 16"),
    (bad_checkpoint, "checkpoint_every: -5.0 is not allowed (allowed: seconds >= 0)"),
    (run_in_use, "out: {run} is being trained by another nnfractal process"),
]


def snapshot(root: Path) -> dict:
    """Every file and folder under root: path -> bytes (None for folders)."""
    return {p.relative_to(root): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("setup,expect", FAULTS, ids=[f.__name__ for f, _ in FAULTS])
def test_fault_is_one_line_exit_2_and_nothing_changes(setup, expect, partial_run, tmp_path, disk,
                                                      capsys):
    if setup.__name__.startswith("read_only") and not disk.mounted and os.geteuid() != 0:
        expect = expect.replace("Read-only file system", "Permission denied")
    run = shutil.copytree(partial_run, tmp_path / "run")
    argv = setup(run, tmp_path, disk)
    before = snapshot(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("nnfractal: error: "), err
    wanted = expect.format(run=run, tmp=tmp_path, disk=disk.root)
    if setup in (full_disk_resume, read_only_run):
        wanted = wanted.replace(str(run), str(disk.root / "run"))
    assert wanted in lines[0]
    if disk.mounted or setup not in (full_disk_resume, full_disk_new_run):
        assert snapshot(tmp_path) == before            # nothing written, nothing lost


def test_a_corrupt_chunk_is_trained_again_on_resume_and_the_run_is_whole(partial_run, tmp_path,
                                                                         reference, capsys):
    """A tile whose chunk file is garbage no longer matches its checksum: --resume says so in
    one line, trains it again with the missing tiles, and the run equals an uninterrupted one.
    (Every command, and missing or replaced chunks: test_fault_table.py.)"""
    run = shutil.copytree(partial_run, tmp_path / "run")
    corrupt_chunk(run, tmp_path, None)
    assert main(_resume(run)) == 0
    out = capsys.readouterr().out
    assert f"{run}/store.zarr: tile 1 (rows 1-1) was damaged (" in out and "training it again" in out
    assert np.array_equal(RunStore.open(run / "store.zarr").read_curves(), reference,
                          equal_nan=True)


def test_disk_full_mid_run_keeps_the_tiles_written_and_resume_finishes_bit_for_bit(
        partial_run, tmp_path, disk, reference, capsys):
    """Room for a few more tiles only: the resume trains and writes some, then the disk is full.
    One line, exit 2, every tile written before stays; with space freed, --resume finishes."""
    run = Path(full_disk_resume(shutil.copytree(partial_run, tmp_path / "run"), tmp_path, disk)[2])
    disk.free()
    disk.fill(leave=48 * 1024)
    assert main(_resume(run)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err, err
    done_at_failure = RunStore.open(run / "store.zarr").done_tiles()
    attempts_at_failure = RunStore.open(run / "store.zarr").tile_state()["attempts"]
    assert 4 < done_at_failure.sum() < 12, "the disk must fill up mid-run"
    assert f"{done_at_failure.sum()} of 12 tiles are done and kept" in err
    chunks = run / "store.zarr" / "curves" / "train_loss" / "c"    # c/<tile>/0/0
    kept = {p: p.read_bytes() for p in chunks.rglob("*") if p.is_file()}
    disk.free()
    resume(run, progress=False, log=quiet, draw=False)
    store = RunStore.open(run / "store.zarr")
    assert np.array_equal(store.read_curves(), reference, equal_nan=True)
    attempts = store.tile_state()["attempts"]
    assert (attempts[done_at_failure] == attempts_at_failure[done_at_failure]).all()
    for p, data in kept.items():          # chunks of tiles done at the failure were not rewritten
        tile = int(p.relative_to(chunks).parts[0])
        if done_at_failure[tile]:
            assert p.read_bytes() == data


def test_a_failure_while_drawing_is_one_line_and_resume_draws_again(partial_run, tmp_path, capsys):
    run = shutil.copytree(partial_run, tmp_path / "run")
    resume(run, progress=False, log=quiet, draw=False)            # every tile stored, nothing drawn
    (run / "epochs").write_text("a file where the epoch maps' folder goes")
    curves = (run / "store.zarr" / "curves").rglob("*")
    before = {p: p.read_bytes() for p in curves if p.is_file()}
    assert main(_resume(run)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("nnfractal: error: drawing stopped: FileExistsError")
    assert err.endswith(f"every tile is stored; traceback in {run}/error.log "
                        f"(resume with: nnfractal run --resume {run})")
    assert {p: p.read_bytes() for p in before} == before
    (run / "epochs").unlink()
    assert main(_resume(run)) == 0
    assert_picture(run / "map.png", min_ink=0.3)
    assert (run / "summary.json").exists()


def test_drawing_flags_may_change_on_resume_and_nothing_else(partial_run, tmp_path, capsys):
    """--dpi and --figsize only change the pictures: a resume may change them (config.toml and
    the store follow), a bad one is refused up front, and a finished run is drawn again."""
    from PIL import Image

    from nnfractal.config import config_from_toml
    run = shutil.copytree(partial_run, tmp_path / "run")
    resume(run, progress=False, log=quiet, draw=False)            # every tile stored, nothing drawn
    curves = {p: p.read_bytes() for p in (run / "store.zarr" / "curves").rglob("*") if p.is_file()}
    assert main(_resume(run, "--dpi", "100000")) == 2
    assert capsys.readouterr().err.startswith("nnfractal: error: dpi: 100000 with figsize 6 x 5")
    assert main(_resume(run, "--dpi", "40")) == 0
    assert config_from_toml(run / "config.toml").dpi == 40
    assert RunStore.open(run / "store.zarr").attrs["config"]["dpi"] == 40
    assert Image.open(run / "map.png").size == (240, 200)          # 6 x 5 inches at 40 dpi
    assert main(_resume(run, "--figsize", "4", "4")) == 0          # a finished run: drawn again
    assert Image.open(run / "map.png").size == (160, 160)
    assert main(_resume(run)) == 0 and "nothing to train or draw" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in curves} == curves
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_read_only_folder_made_writable_resume_finishes_bit_for_bit(partial_run, tmp_path, disk,
                                                                      reference, capsys):
    run = read_only_run(shutil.copytree(partial_run, tmp_path / "run"), tmp_path, disk)[2]
    assert main(_resume(run)) == 2
    disk.writable()
    resume(Path(run), progress=False, log=quiet, draw=False)
    assert np.array_equal(RunStore.open(Path(run) / "store.zarr").read_curves(), reference,
                          equal_nan=True)


# ---- concurrent starts -----------------------------------------------------------------------

RACER = '''
import json, sys, time
from pathlib import Path
from nnfractal.config import build_config
from nnfractal.runner.run import RunFolderError, execute
root, me, reps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cfg = build_config("paper-tanh", resolution=4, steps=3, tile_batch=16)
results = []
for i in range(reps):
    barrier(i)                                     # both start rep i together
    if (i % 4 == 1 and me == "a") or (i % 4 == 3 and me == "b"):
        time.sleep(0.2)                            # the other one first: both orders happen
    try:
        execute(cfg, root / f"run{i}", progress=False, log=lambda *_: None, draw=False)
        results.append("won")
    except RunFolderError as err:
        results.append(str(err))
    except Exception as err:                       # anything else: a lost run
        results.append(f"{type(err).__name__}: {err}")
print(json.dumps(results))
'''


def test_two_runs_started_at_the_same_instant_on_one_out_one_wins_and_nothing_is_lost(tmp_path):
    """Two processes start the same run on the same --out at the same instant, 24 times (half on
    an empty folder that exists): exactly one trains it, the other is refused in one line and
    deletes nothing; the run is whole (config.toml, every tile) and --resume accepts it; no
    temporary file or staging folder is left."""
    from nnfractal.config import config_from_toml
    reps = 24
    root, outs = race(tmp_path, RACER, "run", reps)
    cfg = build_config("paper-tanh", resolution=4, steps=3, tile_batch=16)
    first = None
    for i in range(reps):
        got = [outs[0][i], outs[1][i]]
        assert got.count("won") == 1, (i, got)
        loser = got[1 - got.index("won")]
        run = root / f"run{i}"
        assert loser.startswith(f"out: {run} ") and ("being trained by another" in loser
                                                     or "already holds this run" in loser), loser
        assert config_from_toml(run / "config.toml") == cfg
        store = RunStore.open(run / "store.zarr")
        assert store.complete and store.done_tiles().all()
        curves = store.read_curves()
        first = curves if first is None else first
        assert np.array_equal(curves, first, equal_nan=True)
        assert sorted(p.name for p in run.iterdir()) == ["config.toml", "store.zarr"]
    assert {o.index("won") if "won" in o else -1 for o in outs} and \
        all("won" in o for o in outs), "each process must win some races (both orders)"
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
    resume(root / "run0", progress=False, log=quiet, draw=False)
    resume(root / "run1", progress=False, log=quiet, draw=False)
