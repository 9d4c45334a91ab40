"""The run folder as one object (run_folder.py), directly: where each file lives, that a config and
a store written through it read back the same, that a folder appears at its place in one step or
not at all, and that of two claimers of one place exactly one gets it. The commands' own races are
in test_sample_folders.py and test_faults.py."""
import json
import os
import subprocess
import sys
from contextlib import ExitStack

import numpy as np
import pytest
from helpers import dead_pid

from nnfractal.config import build_config
from nnfractal.errors import RunFolderError, StoreError
from nnfractal.storage.folders import read_json_or_empty, write_json_atomic
from nnfractal.storage.run_folder import CONFIG_FILE, STORE_DIR, RunFolder, lock_file, write_report_safely

CFG = build_config("paper-tanh", resolution=4, steps=6, tile_batch=4)


def make_run(folder: RunFolder, cfg=CFG) -> None:
    """config.toml and an empty 3 x 4 store of `cfg` in `folder`."""
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.write_config(cfg)
    folder.create_store(cfg, x=np.linspace(0.0, 1.0, 4), y=np.linspace(-1.0, 0.0, 3),
                        curve_lengths={"train_loss": 6}, dtype="float64",
                        schedule={"steps": 6, "steps_per_epoch": 6, "eval_epochs": []})


def hidden(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ---- JSON files ------------------------------------------------------------------------------------

def test_json_is_written_strict_and_an_optional_file_reads_as_empty(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"d": float("nan"), "xs": np.array([1.5, np.inf]), "n": np.int64(3),
                             "ok": np.bool_(True), "pair": (1, 2)})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == \
        {"d": None, "xs": [1.5, None], "n": 3, "ok": True, "pair": [1, 2]}
    assert read_json_or_empty(path)["n"] == 3
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{ not json")
    for name in ("missing.json", "list.json", "bad.json"):
        assert read_json_or_empty(tmp_path / name) == {}


# ---- paths, config and store ---------------------------------------------------------------------

def test_paths_are_the_documented_names_and_round_trip(tmp_path):
    folder = RunFolder(str(tmp_path / "run"))             # a str is taken as a path
    assert folder.path == tmp_path / "run" and str(folder) == str(tmp_path / "run")
    assert folder.config_file == tmp_path / "run" / "config.toml" == folder / CONFIG_FILE
    assert folder.store_dir == tmp_path / "run" / "store.zarr" == folder / STORE_DIR
    assert folder.summary_file.name == "summary.json" and folder.fractal_file.name == "fractal.json"
    assert folder.report_file.name == "report.html" and folder.error_log.name == "error.log"
    assert RunFolder(folder.path) == folder                # a value: equal folders compare equal
    assert not folder.holds_run()


def test_config_and_store_written_through_it_read_back_the_same(tmp_path):
    folder = RunFolder(tmp_path / "run")
    make_run(folder)
    assert folder.holds_run()
    assert folder.read_config() == CFG
    store = folder.open_store()
    assert store.config == CFG.to_dict() and store.read_curves().shape == (3, 4, 6)
    np.testing.assert_array_equal(store.x, np.linspace(0.0, 1.0, 4))
    path = folder.write_json("numbers.json", {"d": float("nan"), "n": 1})
    assert json.loads(path.read_text()) == {"d": None, "n": 1}        # strict JSON: NaN is null
    assert hidden(folder.path) == []                                  # no temporary file left


def test_a_finished_run_is_told_from_an_unfinished_one(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(StoreError, match="does not exist"):
        folder.check_finished_run()
    make_run(folder)
    with pytest.raises(StoreError, match="holds an incomplete run"):
        folder.check_finished_run()
    folder.open_store(mode="r+").mark_complete()
    folder.check_finished_run()


def test_a_folder_holding_this_run_unfinished_says_how_to_resume(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.check_new()                                    # absent: fine, nothing written
    assert not folder.path.exists()
    make_run(folder)
    with pytest.raises(RunFolderError) as err:
        folder.check_out(CFG, resume_command="nnfractal sample --resume")
    assert str(err.value) == (f"out: {folder} already holds this run, unfinished "
                              f"(resume with: nnfractal sample --resume {folder})")
    with pytest.raises(RunFolderError, match="already holds a different run"):
        folder.check_out(CFG.replace(steps=7))


# ---- staged creation: at its place complete, or not at all -----------------------------------

def test_a_staged_folder_appears_only_when_complete(tmp_path):
    out = tmp_path / "result"
    with RunFolder.staged(out) as work:
        make_run(work)
        assert not out.exists()                           # nothing at `out` while it is built
        assert work.path.parent == tmp_path and work.path.name.startswith(".result.")
    assert RunFolder(out).read_config() == CFG and RunFolder(out).open_store().x.shape == (4,)
    assert hidden(tmp_path) == []


def test_a_failure_in_a_staged_folder_leaves_nothing_anywhere(tmp_path):
    out = tmp_path / "result"
    with pytest.raises(KeyboardInterrupt):
        with RunFolder.staged(out) as work:
            make_run(work)
            raise KeyboardInterrupt                       # Ctrl-C half way
    assert list(tmp_path.iterdir()) == []


def test_a_staged_result_whose_place_was_taken_is_kept_beside_it(tmp_path):
    out = tmp_path / "result"
    with pytest.raises(RunFolderError, match="filled by another process") as err:
        with RunFolder.staged(out) as work:
            make_run(work)
            out.mkdir()
            (out / "theirs.txt").write_text("another process's file")
    kept = tmp_path / str(err.value).rsplit("/", 1)[-1]          # "... the result is kept in DIR"
    assert (out / "theirs.txt").read_text() == "another process's file"   # theirs untouched
    assert RunFolder(kept).read_config() == CFG and hidden(tmp_path) == []


# ---- claiming a new run: one claimer wins, the other is refused --------------------------------

def _refuse(out):
    return lambda: RunFolder(out).check_out(CFG)


def test_a_claimed_folder_is_locked_while_held_and_free_after(tmp_path):
    out = tmp_path / "run"
    with RunFolder.claim_new(out, make_run, _refuse(out)) as folder:
        assert folder == RunFolder(out) and folder.read_config() == CFG
        assert hidden(tmp_path) == []                     # the staging folder became `out`
        assert folder.locked_by_another()
        # another process sees the lock too (flock, released by the OS when the holder dies)
        probe = subprocess.run([sys.executable, "-c", "import sys; from nnfractal.storage.run_folder import "
                                "RunFolder; print(RunFolder(sys.argv[1]).locked_by_another())",
                                str(out)], capture_output=True, text=True, timeout=120)
        assert probe.stdout.strip() == "True", probe.stderr
        with pytest.raises(RunFolderError) as err:
            with RunFolder(out).lock():
                pass
        assert str(err.value) == (f"out: {out} is being trained by another nnfractal process "
                                  "(allowed: one process per run folder)")
    assert not RunFolder(out).locked_by_another()
    with RunFolder(out).lock():
        pass


def test_a_second_claimer_of_a_held_folder_is_refused_and_removes_only_its_own(tmp_path):
    out = tmp_path / "run"
    with RunFolder.claim_new(out, make_run, _refuse(out)):
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        with pytest.raises(RunFolderError) as err:
            with RunFolder.claim_new(out, make_run, _refuse(out)):
                pytest.fail("the second claimer got the folder")
        assert str(err.value) == (f"out: {out} is being trained by another nnfractal process "
                                  "(allowed: a new or empty folder)")
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
        assert hidden(tmp_path) == []                     # the loser's staging folder is gone


def test_of_two_claimers_at_the_same_instant_exactly_one_gets_the_folder(tmp_path):
    """B has written its staging folder when A claims `out`: B's rename then fails, and B is
    refused as a later start would be; A's run is what stands at `out`."""
    out = tmp_path / "run"
    cfg_b = CFG.replace(steps=7)
    with ExitStack() as a_holds:
        def b_writes_while_a_claims(work):
            make_run(work, cfg_b)
            a_holds.enter_context(RunFolder.claim_new(out, make_run, _refuse(out)))

        with pytest.raises(RunFolderError, match="already holds a different run"):
            with RunFolder.claim_new(out, b_writes_while_a_claims,
                                     lambda: RunFolder(out).check_out(cfg_b)):
                pytest.fail("both claimers got the folder")
        assert RunFolder(out).read_config() == CFG and RunFolder(out).locked_by_another()
        assert hidden(tmp_path) == []


def test_a_claim_whose_writing_fails_leaves_nothing(tmp_path):
    out = tmp_path / "run"

    def disk_full(work):
        work.write_config(CFG)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        with RunFolder.claim_new(out, disk_full, _refuse(out)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_lock_file_refuses_a_second_holder(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    with lock_file(plan, tmp_path):
        with pytest.raises(RunFolderError, match="being trained by another nnfractal process"):
            with lock_file(plan, tmp_path):
                pass


# ---- the report at the end of a run ------------------------------------------------------------

def test_report_writing_never_fails_the_run_and_none_writes_nothing(tmp_path):
    logs = []
    assert write_report_safely(None, tmp_path, log=logs.append) is None and logs == []

    def broken(folder, display_path=None):
        raise ValueError("no figures")

    assert write_report_safely(broken, tmp_path, display_path=tmp_path / "final",
                               log=logs.append) is None
    assert logs == [f"report.html not written (ValueError: no figures); "
                    f"`nnfractal report {tmp_path / 'final'}` retries"]

    def fine(folder, display_path=None):
        (folder / "report.html").write_text("<html></html>")
        return folder / "report.html"

    logs.clear()
    assert write_report_safely(fine, tmp_path, log=logs.append) == tmp_path / "report.html"
    assert logs == [f"report: {tmp_path / 'report.html'}"]


# ---- stale staging folders ------------------------------------------------------------------------

def test_a_staging_folder_names_its_process_and_a_dead_ones_is_removed_at_the_next_start(tmp_path):
    """A process killed with -9 leaves its staging folder; the next staging folder made in the
    same parent removes it (one line), whatever its destination's name."""
    from nnfractal.storage.folders import STAGING, _host, _start_time, new_staging_folder
    mine = new_staging_folder(tmp_path / "a", log=lambda *_: None)
    owner = STAGING.match(mine.name)
    assert owner and int(owner["pid"]) == os.getpid() and owner["host"] == _host()
    assert int(owner["start"]) == _start_time(os.getpid())
    stale = tmp_path / f".b.stage-{dead_pid()}-12345-abcdefgh@{_host()}"
    (stale / "store.zarr").mkdir(parents=True)
    said = []
    new_staging_folder(tmp_path / "c", log=said.append)
    assert not stale.exists() and mine.exists()       # the live one (this process) stays
    assert len(said) == 1 and str(stale) in said[0] and "no longer running" in said[0]


def test_a_staging_folder_of_a_live_process_or_another_host_is_never_touched(tmp_path):
    from nnfractal.storage.folders import _host, _start_time, new_staging_folder
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".b.stage-{sleeper.pid}-{_start_time(sleeper.pid)}-abcdefgh@{_host()}"
        reused = tmp_path / f".c.stage-{sleeper.pid}-1-abcdefgh@{_host()}"  # pid reused since
        foreign = tmp_path / f".d.stage-{dead_pid()}-1-abcdefgh@other-host.example"
        for folder in (live, reused, foreign):
            folder.mkdir()
        new_staging_folder(tmp_path / "e", log=lambda *_: None)
        assert live.exists() and foreign.exists() and not reused.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_empty_folder_that_cannot_be_renamed_onto_is_refused_up_front(tmp_path):
    """A mount point (or an immutable folder) cannot be replaced by the finished result's rename:
    refused before any work, in one line, not a PermissionError after training."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount")
    out = tmp_path / "mnt"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(out)]).returncode:
        pytest.skip("mount failed")
    try:
        with pytest.raises(RunFolderError, match="cannot be replaced: a mount point"):
            RunFolder(out).check_new()
        with pytest.raises(RunFolderError, match=r"out: .* cannot be made the result folder"):
            with RunFolder.staged(out) as work:
                (work / "x").write_text("x")
        assert hidden(tmp_path) == []
    finally:
        subprocess.run(["umount", str(out)], check=True)
