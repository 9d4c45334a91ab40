"""The fault table of docs/reference/faults.md, run over every command that trains a result folder.

Each row is one command and variant (`ROWS`); `test_every_training_command_has_a_row` reads the
CLI's command table (cli/main.py: TRAINING_COMMANDS, OTHER_COMMANDS), so a new command, or a new
--method of one, fails until it has its row here. Each column is one fault, the same for every
row:

- bad input (a bad value, --out onto a file or onto a mount point, a flag given with --resume):
  one line, exit 2, nothing written;
- the chain (real processes, real signals): a start stopped (SIGSTOP) while it holds the folder;
  a second start and a --resume meanwhile are refused in one line; SIGTERM then stops the first
  after its chunk (exit 130, the resume line); a --resume killed with SIGKILL; a --resume stopped
  with Ctrl-C (SIGINT); a last --resume finishes, and the folder holds the numbers of an
  uninterrupted run, bit for bit, with no hidden folder left beside it;
- a damaged store (a chunk file deleted, replaced by another or truncated) and an edited
  config.toml: every reader refuses in one line and changes nothing; --resume trains a damaged
  tile again (one line says so) and gives the uninterrupted numbers;
- a read-only folder: every reader is one line.

Signals land at a known point: the store's test hook (NNFRACTAL_TEST_SIGNAL_AFTER_WRITE=N:SIG,
store.py) makes the process send itself SIG after its N-th tile write, so no case depends on
timing. Sizes are tiny (the paper's float64 MLP, a few steps): each process takes seconds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import dead_pid

from nnfractal.cli.main import OTHER_COMMANDS, TRAINING_COMMANDS, main, make_parser
from nnfractal.storage.integrity import stores_under
from nnfractal.storage.store import SIGNAL_ENV, RunStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

MLP = ["--steps", "4", "--no-progress"]
TRANSECT = ["--method", "transect", "--points", "1024"]
UNCERTAINTY = ["--method", "uncertainty", "--budget", "16064", "--coarse", "8", "--eps-min",
               "1e-4", "--floor-points", "0"]


@dataclass(frozen=True)
class Row:
    """One command and variant: how to start it on `out` (`base`: a finished grid run), and what
    reads its folder."""
    command: str
    variant: str
    start: Callable[[Path, Path], list[str]]
    readers: tuple[str, ...] = ("dimension", "report")
    bad: tuple[str, str, str] = ("--precision", "float16", "precision")  # flag, value, field
    xfail: dict = field(default_factory=dict)       # column -> what is missing

    @property
    def id(self) -> str:
        return f"{self.command}-{self.variant}"

    def resume(self, out: Path) -> list[str]:
        return [self.command, "--resume", str(out), "--no-progress"]


ROWS = [
    Row("run", "grid", lambda out, base: [
        "run", "--preset", "paper-tanh", "--resolution", "8", "--tile_batch", "16",
        "--tile-rows", "2", *MLP, "--out", str(out)],                       # 4 tiles
        readers=("dimension", "report", "explore")),
    Row("zoom", "grid", lambda out, base: [
        "zoom", str(base), "--resolution", "8", "--factor", "2", "--decades", "1",
        "--no-progress", "--out", str(out)],                                 # 4 frames
        bad=("--factor", "0.5", "factor")),
    Row("compare", "box", lambda out, base: [
        "compare", "paper-tanh", "paper-relu", "--resolution", "8", "--tile_batch", "16",
        "--seeds", "1", "--windows", "2", *MLP, "--out", str(out)],          # 4 grids
        readers=("report",)),
    Row("compare", "uncertainty", lambda out, base: [
        "compare", "paper-tanh", "paper-relu", *UNCERTAINTY, "--seeds", "1", *MLP,
        "--out", str(out)], readers=("report",)),
    Row("compare", "transect", lambda out, base: [
        "compare", "paper-tanh", "paper-relu", *TRANSECT, "--lines", "2", "--seeds", "1", *MLP,
        "--out", str(out)], readers=("report",)),                            # 2 maps + 2 x 2
    Row("sample", "uncertainty", lambda out, base: [
        "sample", "paper-tanh", *UNCERTAINTY, *MLP, "--out", str(out)]),     # 1 + 14 tiles
    Row("sample", "transect", lambda out, base: [
        "sample", "paper-tanh", *TRANSECT, "--lines", "4", *MLP, "--out", str(out)]),  # 1 + 4
]
IDS = [row.id for row in ROWS]


def xfail_for(column: str):
    """The rows as pytest params, each row that misses `column` marked xfail(strict)."""
    return [pytest.param(row, id=row.id, marks=[pytest.mark.xfail(strict=True,
                                                                   reason=row.xfail[column])]
                         if column in row.xfail else []) for row in ROWS]


def test_every_training_command_has_a_row():
    """The CLI's command table names every command either as training (with its variants) or as
    another kind; every training variant has a row, and no row is for something else."""
    parser = make_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    assert commands == set(TRAINING_COMMANDS) | set(OTHER_COMMANDS), \
        "a command is in neither TRAINING_COMMANDS nor OTHER_COMMANDS (cli/main.py)"
    assert not set(TRAINING_COMMANDS) & set(OTHER_COMMANDS)
    wanted = {(c, v) for c, variants in TRAINING_COMMANDS.items() for v in variants}
    assert {(r.command, r.variant) for r in ROWS} == wanted


# ---- helpers ------------------------------------------------------------------------------------

def cli(args, capsys) -> tuple[int, str, str]:
    """`nnfractal ARGS` in this process: (exit code, stdout, stderr), its own output only."""
    capsys.readouterr()                         # e.g. a reference folder trained just before
    try:
        code = main([str(a) for a in args])
    except SystemExit as done:                  # the parser's refusal of a flag it does not have
        code = done.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def process(args, signal_after: str | None = None, timeout: float = 600) -> tuple[int, str, str]:
    """`nnfractal ARGS` in a new process; `signal_after` 'N:SIG' arms the store's test hook."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(SIGNAL_ENV, None)
    if signal_after:
        env[SIGNAL_ENV] = signal_after
    done = subprocess.run([sys.executable, "-m", "nnfractal", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnfractal: error: "), err
    return lines[0]


def stored_tiles(folder: Path) -> int:
    """Tiles stored, over every store of the folder."""
    return sum(int((RunStore.open(p).tile_state()["stored"] > 0).sum()) for p in stores_under(folder))


# Keys of result files that hold times, machines or versions: not the numbers.
NOT_NUMBERS = {"seconds", "tile_seconds", "model_steps_per_s", "sessions", "device", "versions",
               "cpu", "hardware", "timing", "ended", "gpu", "created", "started", "finished",
               "out", "dir"}


def numbers(folder: Path) -> dict:
    """What a result folder measured: every store's curves, points and checksum records, and
    its result files (JSON) without times, machines and paths."""
    found = {}
    for path in stores_under(folder):
        store, key = RunStore.open(path), str(path.relative_to(folder))
        for metric in store.metrics:
            found[f"{key}/{metric}"] = store.read_curves(metric)
        if store.has_points:
            found[f"{key}/points"] = store.group["points/xy"][:]
        found[f"{key}/stored"] = store.tile_state()["stored"]
    for name in ("fractal.json", "sample.json", "compare.json", "zoom.json"):
        for path in sorted(folder.rglob(name)):
            found[str(path.relative_to(folder))] = _strip(json.loads(path.read_text()))
    return found


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if k not in NOT_NUMBERS and not k.endswith("_s")}      # *_s: seconds
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def assert_same_numbers(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key], equal_nan=True), key
        else:
            assert a[key] == b[key], key


def snapshot(root: Path) -> dict:
    """Every file under root: path -> bytes."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ---- fixtures: a base run, and each row's uninterrupted folder ------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished grid run to zoom into."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["run", "--preset", "paper-tanh", "--resolution", "16", "--steps", "20",
                 "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    """row id -> its uninterrupted folder (made on first use)."""
    made: dict[str, Path] = {}

    def get(row: Row) -> Path:
        if row.id not in made:
            out = tmp_path_factory.mktemp(f"ref-{row.id}") / "out"
            assert main(row.start(out, base)) == 0
            made[row.id] = out
        return made[row.id]
    return get


# ---- bad input ----------------------------------------------------------------------------------

def bad_value(row, out, base, tmp):
    flag, value, field_name = row.bad
    return [*row.start(out, base), flag, value], field_name


def out_is_a_file(row, out, base, tmp):
    out.write_text("not a folder")
    return row.start(out, base), "out"


def out_is_a_mount_point(row, out, base, tmp):
    out.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs",
                                            str(out)], capture_output=True).returncode:
        pytest.skip("needs root and mount: an empty folder that cannot be renamed onto")
    return row.start(out, base), "out"


BAD_INPUTS = [bad_value, out_is_a_file, out_is_a_mount_point]


@pytest.mark.parametrize("fault", BAD_INPUTS, ids=[f.__name__ for f in BAD_INPUTS])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_bad_input_is_one_line_and_writes_nothing(row, fault, base, tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    out = root / "out"
    args, field_name = fault(row, out, base, tmp_path)
    before = sorted(p.name for p in root.iterdir())
    try:
        code, _, err = cli(args, capsys)
        assert code == 2 and one_line(err).startswith(f"nnfractal: error: {field_name}:"), err
        assert sorted(p.name for p in root.iterdir()) == before
        assert not out.is_dir() or not any(out.iterdir())
    finally:
        if os.path.ismount(out):
            subprocess.run(["umount", str(out)], check=True)


@pytest.mark.parametrize("flag", [["--steps", "5"], ["--out", "elsewhere"], ["--points", "2048"],
                                  ["--method", "transect"], ["--seeds", "3"], ["--angle", "30"]],
                         ids=lambda f: f[0])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_flag_given_with_resume_is_refused_not_ignored(row, flag, reference, capsys):
    """--resume reads the folder's own settings: any other flag that would be ignored is refused
    in one line (those a command does not have at all are refused by its parser)."""
    folder = reference(row)
    before = snapshot(folder)
    code, _, err = cli([*row.resume(folder), *flag], capsys)
    assert code == 2 and one_line(err), err
    assert snapshot(folder) == before


# ---- the chain: a second process, SIGTERM, SIGKILL, Ctrl-C, resumed bit for bit -----------------

@pytest.mark.parametrize("row", xfail_for("chain"))
def test_a_held_folder_refuses_others_and_every_stop_resumes_bit_for_bit(row, reference, base,
                                                                         tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    out = root / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", SIGNAL_ENV: "1:STOP"}
    first = subprocess.Popen([sys.executable, "-m", "nnfractal", *map(str, row.start(out, base))],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_stopped(first.pid)
        # a second start and a --resume while the first holds the folder: one line each
        code, _, err = process(row.start(out, base), timeout=120)
        assert code == 2 and one_line(err).startswith(f"nnfractal: error: out: {out}"), err
        code, _, err = process(row.resume(out), timeout=120)
        assert code == 2 and "being trained by another nnfractal process" in one_line(err), err
        os.kill(first.pid, signal.SIGTERM)
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    resume_line = f"resume with: nnfractal {row.command} --resume {out}"
    assert first.returncode == 130 and resume_line in err.strip().splitlines()[-1], err
    assert "stopping after the current chunk" in err
    assert stored_tiles(out) == 1                   # the signal's chunk, and no other after it
    code, _, err = process(row.resume(out), signal_after="1:KILL")
    assert code == -signal.SIGKILL and stored_tiles(out) == 2, err
    code, _, err = process(row.resume(out), signal_after="1:INT")
    assert code == 130 and resume_line in err.strip().splitlines()[-1], err
    assert stored_tiles(out) == 3
    code, _, err = process(row.resume(out))
    assert code == 0, err
    assert_same_numbers(numbers(out), numbers(reference(row)))
    assert hidden(root) == []                       # nothing staged is left beside it


def _wait_stopped(pid: int, timeout: float = 300) -> None:
    """Wait until process `pid` is stopped (SIGSTOP from the test hook)."""
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            raise AssertionError(f"process {pid} ended before its first tile write") from None
        if state == "T":
            return
        time.sleep(0.2)
    raise AssertionError(f"process {pid} did not reach its first tile write in {timeout} s")


# ---- a damaged store, an edited config.toml, a read-only folder ----------------------------------

def damaged_chunk(folder: Path) -> tuple[Path, Path]:
    """(the curve chunk file of the last stored tile of the folder's store with the most stored
    tiles, that of another stored tile of the same shape: in that store, else in another)."""
    chunks = []
    for path in stores_under(folder):
        store = RunStore.open(path)
        for tile in np.nonzero(store.tile_state()["stored"])[0]:
            chunks.append((store.group["curves/train_loss"].shape, store.tile_grid.n_points(tile),
                           path / "curves" / "train_loss" / "c" / str(tile) / "0" / "0"))
    per_store = {c[2].parents[4]: 0 for c in chunks}
    for c in chunks:
        per_store[c[2].parents[4]] += 1
    target = [c for c in chunks if c[2].parents[4] == max(per_store, key=per_store.get)][-1]
    other = next(c for c in chunks if c[:2] == target[:2] and c[2] != target[2])
    return target[2], other[2]


def missing(chunk: Path, other: Path) -> None:
    chunk.unlink()


def replaced(chunk: Path, other: Path) -> None:
    shutil.copyfile(other, chunk)


def truncated(chunk: Path, other: Path) -> None:
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])


DAMAGE = [missing, replaced, truncated]


def edit_steps(config: Path) -> None:
    """One more training step in a config.toml, as a hand edit would make it."""
    text = config.read_text()
    steps = int(re.search(r"^steps = (\d+)$", text, re.M)[1])
    config.write_text(re.sub(r"^steps = \d+$", f"steps = {steps + 1}", text, flags=re.M))


def reader_args(reader: str, folder: Path) -> list[str]:
    return [reader, str(folder)] + (["--port", "0"] if reader == "explore" else [])


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
@pytest.mark.parametrize("row", xfail_for("damaged"))
def test_a_damaged_store_is_refused_by_every_reader_and_trained_again_on_resume(
        row, damage, reference, tmp_path, capsys):
    folder = shutil.copytree(reference(row), tmp_path / "out")
    damage(*damaged_chunk(folder))
    before = snapshot(folder)
    for reader in row.readers:
        code, _, err = cli(reader_args(reader, folder), capsys)
        assert code == 2 and "is damaged" in one_line(err), (reader, err)
        assert snapshot(folder) == before, reader
    code, out, err = cli(row.resume(folder), capsys)
    assert code == 0, err
    assert "damaged" in out and "training it again" in out
    assert_same_numbers(numbers(folder), numbers(reference(row)))


@pytest.mark.parametrize("row", xfail_for("edited"))
def test_an_edited_config_is_refused_by_every_reader_and_by_resume(row, reference, tmp_path,
                                                                   capsys):
    folder = shutil.copytree(reference(row), tmp_path / "out")
    edit_steps(stores_under(folder)[-1].parent / "config.toml")
    before = snapshot(folder)
    for args in [reader_args(r, folder) for r in row.readers] + [row.resume(folder)]:
        code, _, err = cli(args, capsys)
        assert code == 2 and "differs from the config its store was written with" in one_line(err), \
            (args, err)
        assert snapshot(folder) == before, args


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_read_only_folder_is_one_line_for_every_reader(row, reference, tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root: a read-only bind mount")
    folder = shutil.copytree(reference(row), tmp_path / "out")
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        for reader in row.readers:
            if reader == "explore":
                continue                    # reads only; its windows go to their own folder
            code, _, err = cli([reader, str(folder)], capsys)
            assert code == 2 and "Read-only file system" in one_line(err), (reader, err)
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# ---- the audit's cases (issue 30), each as the user ran it, at small sizes -----------------------

@pytest.fixture
def interrupted_sample(tmp_path, monkeypatch, capsys):
    """A transect sample stopped by Ctrl-C (a real SIGINT, this process) right after the last
    chunk of its first phase (the placing map, one tile): it must stop there, exit 130."""
    from nnfractal.storage import store as store_module
    monkeypatch.setattr(store_module, "_writes", [0])
    monkeypatch.setenv(SIGNAL_ENV, "1:INT")
    out = tmp_path / "s"
    code, _, err = cli(["sample", "paper-tanh", *TRANSECT, "--lines", "4", *MLP, "--out", out],
                       capsys)
    monkeypatch.delenv(SIGNAL_ENV)
    assert code == 130 and f"resume with: nnfractal sample --resume {out}" in err, err
    assert stored_tiles(out) == 1            # the next phase was not trained
    return out


def test_ctrl_c_in_the_last_chunk_of_a_sampling_phase_stops_the_sample(interrupted_sample, capsys):
    """Issue 30.1: the stop used to be forgotten at the phase's end; the next phase trained and
    the sample exited 0. The resume finishes it."""
    code, _, err = cli(["sample", "--resume", interrupted_sample, "--no-progress"], capsys)
    assert code == 0, err
    assert (interrupted_sample / "sample.json").exists()


def test_report_and_an_edited_config_of_an_unfinished_sample_are_one_line(interrupted_sample,
                                                                          capsys):
    """Issue 30.7: `report` wrote a grid run's page for an unfinished sample; an edited
    config.toml failed only mid-resume, in a tile error."""
    before = snapshot(interrupted_sample)
    code, _, err = cli(["report", interrupted_sample], capsys)
    assert code == 2 and "unfinished sample" in one_line(err) and "--resume" in err
    edit_steps(interrupted_sample / "config.toml")
    before = snapshot(interrupted_sample)
    code, out, err = cli(["sample", "--resume", interrupted_sample, "--no-progress"], capsys)
    assert code == 2 and "differs from the config its store was written with" in one_line(err)
    assert "training" not in out and snapshot(interrupted_sample) == before


def test_zoom_into_a_sample_folder_is_refused_and_writes_nothing(reference, tmp_path, capsys):
    """Issue 30.3: a sample folder was zoomed into as a grid run (NaN axis limits, traceback)
    and left zoom_plan.json and frames/ behind."""
    sample = reference(ROWS[IDS.index("sample-transect")])
    code, _, err = cli(["zoom", sample, "--out", tmp_path / "b1", "--no-progress"], capsys)
    assert code == 2 and one_line(err).startswith("nnfractal: error: run_dir:"), err
    assert not (tmp_path / "b1").exists()


@pytest.mark.parametrize("args,field_name", [
    (["--angle", "30", "--direction", "1", "1"], "angle"),   # the angle was dropped
    (["--angle", "1e308"], "angle"),                          # ran at another angle than its value
    (["--angle", "-400"], "angle"),
])
def test_transect_direction_flags_that_would_be_dropped_are_refused(args, field_name, tmp_path,
                                                                    capsys):
    for command in (["sample", "paper-tanh"], ["compare", "paper-tanh", "paper-relu"]):
        out = tmp_path / "out"
        code, _, err = cli([*command, *TRANSECT, *MLP, *args, "--out", out], capsys)
        assert code == 2 and one_line(err).startswith(f"nnfractal: error: {field_name}:"), err
        assert not out.exists()


@pytest.mark.parametrize("flags", [["--method", "foo"], ["--method", "paper"], ["--write"],
                                   ["--force"]], ids=lambda f: f[-1])
def test_dimension_flags_that_do_not_apply_to_a_sample_are_refused(flags, reference, capsys):
    """Issue 30.5: --method and --write were ignored on a sample folder (its own estimator)."""
    sample = reference(ROWS[IDS.index("sample-transect")])
    before = snapshot(sample)
    code, _, err = cli(["dimension", sample, *flags], capsys)
    assert code == 2 and one_line(err).startswith(f"nnfractal: error: {flags[0][2:]}:"), err
    assert snapshot(sample) == before


@pytest.mark.parametrize("seeds", ["200", "1000000"])
def test_a_sampled_comparison_too_big_in_all_is_refused_before_training(seeds, tmp_path):
    """Issue 30.6: each sample was checked alone; 200 seeds of default transects (about 2 GB of
    curves each, 420 GB in all) started training. --max-storage 100 makes the limit the same on
    every machine; a single sample (2 GB) is within it."""
    out = tmp_path / "out"
    code, stdout, err = process(["compare", "paper-tanh", "paper-relu", "--method", "transect",
                                 "--seeds", seeds, "--max-storage", "100", "--no-progress",
                                 "--out", out], timeout=120)
    assert code == 2 and one_line(err).startswith("nnfractal: error: seeds:"), err
    assert "samples" in err and "training" not in stdout and not out.exists()


def test_compare_resume_refuses_a_flag_before_any_other_line(reference, capsys):
    """Issue 30.5: compare --resume --steps printed a line about num_epochs before refusing."""
    folder = reference(ROWS[IDS.index("compare-transect")])
    code, out, err = cli(["compare", "--resume", folder, "--steps", "8"], capsys)
    assert code == 2 and out == "" and one_line(err).startswith("nnfractal: error: steps:")


def test_a_transect_with_centre_and_direction_is_sized_without_a_placing_map():
    """Known from earlier notes (issue 30): SampleSpec.evaluations counted the transect's placing
    map even with a centre and an angle given, so the store was sized for points never drawn."""
    from nnfractal.estimators.sampling import TRANSECT_COARSE
    from nnfractal.studies.sample import SampleSpec
    lines = dict(method="transect", points=1024, lines=4)
    assert SampleSpec(**lines, angle=30.0, center=(1.0, 1.0)).evaluations == 1024 * 4
    assert SampleSpec(**lines, direction=(1.0, 1.0), center=(1.0, 1.0)).evaluations == 1024 * 4
    coarse = 1024 * 4 + TRANSECT_COARSE ** 2
    assert SampleSpec(**lines).evaluations == coarse
    assert SampleSpec(**lines, angle=30.0).evaluations == coarse
    assert SampleSpec(**lines, center=(1.0, 1.0)).evaluations == coarse


def test_a_transect_sample_with_centre_and_angle_stores_only_its_segments(tmp_path, capsys):
    """The store of a transect given its centre and angle holds room for the segments only, and
    the sample trains them all (no placing map)."""
    from nnfractal.estimators.sampling import TRANSECT_COARSE
    from nnfractal.studies.sample import read_spec, store_layout
    out = tmp_path / "s"
    code, _, err = cli(["sample", "paper-tanh", *TRANSECT, "--lines", "2", "--center", "1", "1",
                        "--angle", "30", *MLP, "--out", out], capsys)
    assert code in (0, 2), err                   # 2: every point on one side, curves kept
    _, cfg = read_spec(out)
    store = RunStore.open(out / "store.zarr")
    with_map = store_layout(cfg, 2 * 1024 + TRANSECT_COARSE ** 2)[0]
    assert len(store.y) == store_layout(cfg, 2 * 1024)[0] < with_map
    assert int(store.tile_state()["stored"].sum()) == 2 * 1024


def test_a_zoom_frame_copy_killed_mid_way_is_cleaned_by_the_resume(base, tmp_path):
    """Known from earlier notes (issue 30): a SIGKILL while a zoom copied its frame 0 (the run
    itself) left a hidden staging folder in the zoom's folder that nothing cleaned. Here a zoom
    is killed after its first trained tile, with such a folder of a dead process planted beside
    its frames: the resume removes it, says so, and finishes the zoom."""
    from nnfractal.storage.folders import _host
    out = tmp_path / "z"
    start = ["zoom", base, "--factor", "2", "--decades", "1", "--no-progress", "--out", out]
    code, _, err = process(start, signal_after="1:KILL")
    frames = out / "frames"
    assert code == -signal.SIGKILL and (frames / "frame_00").is_dir(), err
    stale = frames / f".frame_00.stage-{dead_pid()}-12345-abcdefgh@{_host()}"
    (stale / "store.zarr").mkdir(parents=True)
    code, stdout, err = process(["zoom", "--resume", out, "--no-progress"])
    assert code == 0, err
    assert not stale.exists() and f"removed {stale}: a staging folder left by process" in stdout
    assert hidden(frames) == [] and (out / "zoom.json").is_file()
