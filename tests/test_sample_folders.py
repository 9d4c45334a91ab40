"""`nnfractal sample` folders are claimed atomically: two samples started on one --out at the same
instant never both write it, and a sample folder is trained by one process at a time."""
import json

import numpy as np
import pytest
from helpers import race

from nnfractal.cli.main import main
from nnfractal.storage.run_folder import RunFolder
from nnfractal.storage.store import RunStore

TINY = ["paper-tanh", "--steps", "30", "--mnmx", "-3", "6", "-3", "6", "--no-progress",
        "--method", "transect", "--points", "1024", "--lines", "2"]

pytestmark = pytest.mark.slow  # trains samples, in racing processes

RACER = '''
import contextlib, io, json, sys, time
from pathlib import Path
from nnfractal.cli.main import main
root, me, reps, args = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
results = []
for i in range(reps):
    barrier(i)                                     # both start rep i together
    if (i % 4 == 1 and me == "a") or (i % 4 == 3 and me == "b"):
        time.sleep(0.5)                            # the other one first: both orders happen
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["sample", *args, "--out", str(root / f"s{i}")])
    results.append([code, err.getvalue()])
print(json.dumps(results))
'''


def test_two_samples_started_at_the_same_instant_on_one_out_one_wins_and_nothing_is_lost(
        tmp_path):
    """Two processes start `nnfractal sample` on the same --out at the same instant, 4 times (half
    on an existing empty folder): exactly one writes it (exit 0), the other gets one true line
    and exit 2 and deletes nothing; the winner's sample is whole and equal to every other rep's;
    no staging folder is left."""
    reps = 4
    root, outs = race(tmp_path, RACER, "s", reps, json.dumps(TINY), timeout=900)
    first = None
    for i in range(reps):
        got = [outs[0][i], outs[1][i]]
        codes = sorted(code for code, _ in got)
        assert codes == [0, 2], (i, got)
        loser = next(err for code, err in got if code == 2)
        out = root / f"s{i}"
        assert len(loser.strip().splitlines()) == 1, loser
        # the refusal is true: the winner holds the folder from its claim until it is finished
        # (never "unfinished", the line of an abandoned sample, while the winner trains it)
        assert loser.startswith(f"nnfractal: error: out: {out} ") and (
            "being trained by another" in loser or
            "already holds this run (allowed" in loser), loser
        info = json.loads((out / "sample.json").read_text())
        store = RunStore.open(out / "store.zarr")
        n = sum(block["rows"] for block in store.attrs["blocks"])
        tiles = n // store.tile_grid.tile_rows              # the blocks' tiles (the rest: room)
        assert store.complete and store.done_tiles()[:tiles].all()
        curves = store.group["curves/train_loss"][:n]
        assert np.isfinite(curves[..., 0]).all()
        if first is None:
            first = (info["estimate"], curves)
        assert info["estimate"] == first[0]
        np.testing.assert_array_equal(curves, first[1])
    # Which process wins is up to the scheduler (the staggered starts make both orders likely,
    # not certain on a busy machine); every rep above checked the outcome whichever won.
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert main(["sample", "--resume", str(root / "s0"), "--no-progress"]) == 0


def test_a_sample_being_trained_is_refused_to_a_second_process_and_left_as_it_was(
        tmp_path, capsys, monkeypatch):
    """While a process holds a sample folder (its lock), `sample --resume` of it and a new
    `sample --out` onto it are refused in one line with exit 2, and nothing in it changes."""
    folder = tmp_path / "s"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "1")        # an unfinished sample
    assert main(["sample", *TINY, "--out", str(folder)]) == 2
    monkeypatch.delenv("NNFRACTAL_TEST_FAIL_TILE")
    capsys.readouterr()
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with RunFolder(folder).lock():              # flock on config.toml, as a training process
        for args in (["sample", "--resume", str(folder), "--no-progress"],
                     ["sample", *TINY, "--out", str(folder)]):
            assert main(args) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1
            assert err.startswith(f"nnfractal: error: out: {folder} is being trained by another")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    # unlocked, a second start says how to finish it, and --resume does
    assert main(["sample", *TINY, "--out", str(folder)]) == 2
    assert f"nnfractal sample --resume {folder}" in capsys.readouterr().err
    assert main(["sample", "--resume", str(folder), "--no-progress"]) == 0
    assert (folder / "sample.json").exists()
