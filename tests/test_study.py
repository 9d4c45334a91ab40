"""The study skeleton (nnfractal/studies/study.py) through a study written on it in tests/
(twin_study.py): claimed with its plan, locked, stopped by a real SIGINT or a failed tile, resumed
to the numbers of an uninterrupted study, bit for bit; and the typed records of its files."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from twin_study import TwinStudy, main, slow_config, twin, write_twin_report

from nnfractal.config import build_config
from nnfractal.errors import StoreError
from nnfractal.storage.records import OMIT_NONE, JsonRecord, read_record
from nnfractal.storage.run_folder import lock_file
from nnfractal.storage.store import RunStore
from nnfractal.studies.study import StudyOptions, resume

HERE = Path(__file__).parent
QUIET = StudyOptions(progress=False, log=lambda *_: None, report=write_twin_report)


# ---- typed records ---------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Inner(JsonRecord):
    x: float
    note: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(kw_only=True)
class Outer(JsonRecord):
    json_format = "outer"
    format: str = "outer"
    name: str
    inner: Inner
    inners: list[Inner] = field(default_factory=list)
    by_key: dict[str, Inner] = field(default_factory=dict)
    pair: tuple[float, float] | None = None
    added_later: int = 7


def test_a_record_is_its_json_and_reads_back():
    rec = Outer(name="a", inner=Inner(x=1.5), inners=[Inner(x=2.0, note="n")],
                by_key={"k": Inner(x=3.0)}, pair=(1.0, 2.0))
    data = rec.to_json()
    assert data == {"format": "outer", "name": "a", "inner": {"x": 1.5},       # None left out
                    "inners": [{"x": 2.0, "note": "n"}], "by_key": {"k": {"x": 3.0}},
                    "pair": [1.0, 2.0], "added_later": 7}
    assert list(data) == ["format", "name", "inner", "inners", "by_key", "pair", "added_later"]
    back = Outer.from_json(json.loads(json.dumps(data)))
    assert back == rec and isinstance(back.pair, tuple) and isinstance(back.by_key["k"], Inner)


def test_an_older_file_reads_and_a_foreign_one_is_refused_in_one_line(tmp_path):
    old = {"format": "outer", "name": "a", "inner": {"x": 1}, "gone": "a key no longer read"}
    rec = Outer.from_json(old)
    assert rec.added_later == 7 and rec.inners == [] and rec.inner.x == 1.0
    assert isinstance(rec.inner.x, float)
    for data, why in (({**old, "format": "other"}, "format is 'other', not 'outer'"),
                      ({k: v for k, v in old.items() if k != "name"}, "name: missing"),
                      ({**old, "inners": 3}, "inners: expected a list, got int")):
        path = tmp_path / "x.json"
        path.write_text(json.dumps(data))
        with pytest.raises(StoreError) as err:
            read_record(Outer, path, "outer file")
        assert str(err.value) == f"run_dir: {path} is not a readable outer file ({why})"
    with pytest.raises(StoreError, match="JSONDecodeError"):
        (tmp_path / "bad.json").write_text("{")
        read_record(Outer, tmp_path / "bad.json", "outer file")


# ---- a study on the skeleton --------------------------------------------------------------------------

def curves(folder):
    store = RunStore.open(folder / "store.zarr")
    return {m: store.read_curves(m) for m in store.metrics}


def same_numbers(a: Path, b: Path) -> None:
    """Two twin studies hold the same result and curves, bit for bit."""
    ra, rb = (json.loads((p / "twin.json").read_text()) for p in (a, b))
    for r in (ra, rb):
        for u in r["units"]:
            u.pop("trained_now")
    assert ra == rb
    for unit in ("run", "twin"):
        ca, cb = curves(a / unit), curves(b / unit)
        assert ca.keys() == cb.keys()
        for m in ca:
            assert np.array_equal(ca[m], cb[m], equal_nan=True), (unit, m)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted twin study of the SIGINT test's config."""
    out = tmp_path_factory.mktemp("twin") / "whole"
    twin(out, slow_config(600), 3, QUIET)
    return out


@pytest.mark.slow
def test_the_twin_study_writes_its_plan_result_and_report(whole):
    assert sorted(p.name for p in whole.iterdir()) == ["report.html", "run", "twin", "twin.json",
                                                       "twin_plan.json"]
    info = json.loads((whole / "twin.json").read_text())
    differ = np.array(info["differ"])
    assert differ.shape == (8, 8) and info["n_differ"] == int(differ.sum())
    assert [u["name"] for u in info["units"]] == ["run", "twin"]
    run, twin_ = (np.array(u["mnmx"]) for u in info["units"])
    assert np.all(twin_ != run) and np.all(np.abs(twin_ - run) <= 3 * np.spacing(np.abs(run)))
    assert "outcomes differ" in (whole / "report.html").read_text()
    assert (whole / "run" / "report.html").exists()         # the units' reports: the run writer


@pytest.mark.slow
def test_a_sigint_stops_the_study_between_units_and_resume_gives_the_same_numbers(
        whole, tmp_path):
    """A real Ctrl-C while the first unit trains: its chunk finishes and is kept, the second unit
    never starts, exit 130 with the study's resume line; the resume trains only the rest."""
    out = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, str(HERE / "twin_study.py"), str(out), "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=HERE)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[run] training"):
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    text = "".join(seen) + rest
    assert proc.returncode == 130, text
    assert "stopping after the current chunk" in text and "[twin]" not in text, text
    assert text.splitlines()[-1].endswith(f"resume with: nnfractal twin --resume {out}"), text
    assert RunStore.open(out / "run" / "store.zarr").complete       # the chunk was kept
    assert sorted(p.name for p in out.iterdir()) == ["run", "twin_plan.json"]
    # a second process is refused while one holds the study
    with lock_file(out / "twin_plan.json", out):
        with pytest.raises(Exception, match="is being trained by another nnfractal process"):
            resume(TwinStudy, out, QUIET)
    logs = []
    resume(TwinStudy, out, StudyOptions(progress=False, log=logs.append,
                                        report=write_twin_report))
    assert not any(line.startswith("[run] training") for line in logs), logs
    assert any(line.startswith("[twin] training") for line in logs), logs
    same_numbers(whole, out)


@pytest.mark.slow
def test_a_failed_tile_says_how_to_resume_and_resume_gives_the_same_numbers(
        tmp_path, capsys, monkeypatch):
    cfg = build_config("paper-tanh", resolution=8, steps=20)
    whole = twin(tmp_path / "whole", cfg, 3, QUIET)
    out = tmp_path / "failed"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "0")       # each unit's first attempt fails
    from nnfractal.cli.common import run_resumable
    code = run_resumable(lambda: twin(out, cfg, 3, QUIET), [], "twin --resume")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("nnfractal: error: training stopped")
    assert err.endswith(f"(resume with: nnfractal twin --resume {out})"), err
    assert main(["--resume", str(out)]) == 2                  # the twin's tile fails in turn
    assert (out / "run" / "summary.json").exists() and not (out / "twin.json").exists()
    monkeypatch.delenv("NNFRACTAL_TEST_FAIL_TILE")
    assert main(["--resume", str(out)]) == 0
    same_numbers(whole, out)


@pytest.mark.slow
def test_a_unit_refused_before_any_training_leaves_nothing(tmp_path, capsys):
    """A refusal only a unit finds (its data) comes after the folder exists: with nothing trained
    the folder is removed again, and the refusal is one line."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    cfg = build_config("mlp300-mnist", resolution=4, steps=2, train_size=64, batch_size=0)
    from nnfractal.cli.common import run_resumable
    options = StudyOptions(data_dir=not_a_dir, progress=False, log=lambda *_: None)
    code = run_resumable(lambda: twin(tmp_path / "t", cfg, 1, options), [], "twin --resume")
    assert code == 2
    assert capsys.readouterr().err.strip() == \
        f"nnfractal: error: data_dir: {not_a_dir} is a file, not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_folder_of_another_kind_is_refused_in_one_line(tmp_path):
    (tmp_path / "zoom_plan.json").write_text("{}")
    with pytest.raises(StoreError) as err:
        resume(TwinStudy, tmp_path, QUIET)
    assert str(err.value).startswith(f"resume: {tmp_path} is not a twin study (no twin_plan.json")
    (tmp_path / "twin_plan.json").write_text(json.dumps({"format": "nnfractal-zoom-plan"}))
    with pytest.raises(StoreError, match="is not a readable twin study plan"):
        resume(TwinStudy, tmp_path, QUIET)
