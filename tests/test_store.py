"""The run store (store.py) and the tile backends (backends.py), directly: what they write, what
they read back, and what they refuse. Runs through the whole command are in test_resume.py and
test_faults.py; these are the quick loop's specifications of the two layers under them.
"""
import threading

import numpy as np
import pytest
import zarr

from nnfractal.config import ConfigError, build_config
from nnfractal.models import build_family
from nnfractal.runner.backends import LocalBackend, TileJob, make_backend, train_tile
from nnfractal.runner.run import plan_run
from nnfractal.storage.store import (
    RunStore,
    StoreError,
    TileGrid,
    default_tile_rows,
    keep_verified,
    tile_rows_step,
)
from nnfractal.training.engine import train

# A float64 paper MLP: 4 x 4 points, chunks of 4 models (one row), 6 steps; autograd, so that the
# quick loop never builds the C++ kernel (test_mlp_kernel.py holds the kernel to the same numbers).
CFG = build_config("paper-tanh", resolution=4, steps=6, tile_batch=4, fast_path=False)


def new_store(path, tile_rows=1, lengths=None, dtype="float64"):
    x, y = np.linspace(0.0, 1.0, 4), np.linspace(-1.0, 0.0, 3)
    return RunStore.create(path, config={"preset": "test"}, x=x, y=y,
                           curve_lengths=lengths or {"train_loss": 5}, dtype=dtype,
                           schedule={"steps": 5, "steps_per_epoch": 5, "eval_epochs": []},
                           tile_rows=tile_rows)


# ---- the store ----------------------------------------------------------------------------------

def test_a_new_store_is_empty_nan_curves_and_no_tile_done(tmp_path):
    store = new_store(tmp_path / "store.zarr")
    assert store.read_curves().shape == (3, 4, 5) and np.isnan(store.read_curves()).all()
    assert store.metrics == ["train_loss"] and store.config == {"preset": "test"}
    assert not store.complete and store.tile_grid.count == 3
    assert not store.done_tiles().any()
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]       # no temporary folder left


def test_a_tile_written_reads_back_and_is_done_only_when_all_its_points_are(tmp_path):
    store = new_store(tmp_path / "store.zarr")
    curves = np.arange(4 * 5, dtype=np.float64).reshape(4, 5)
    store.write_tile(1, {"train_loss": curves}, stored=3, seconds=0.5)
    assert store.done_tiles().tolist() == [False, False, False]          # 3 of 4 points stored
    assert store.tile_flags(1) == (3, 0.5)
    store.write_tile(1, {"train_loss": curves}, stored=4, seconds=0.75)
    assert store.done_tiles().tolist() == [False, True, False]
    assert np.array_equal(store.read_tile(1)["train_loss"], curves)
    assert np.array_equal(RunStore.open(store.path).read_curves()[1], curves)   # on disk
    assert np.isnan(store.read_curves()[[0, 2]]).all()


def _written(path):
    """A complete store of 3 one-row tiles, every tile written; its curves."""
    store = new_store(path)
    values = np.arange(3 * 4 * 5, dtype=np.float64).reshape(3, 4, 5)
    for tile in range(3):
        store.write_tile(tile, {"train_loss": values[tile]}, stored=4, seconds=1.0)
    store.mark_complete()
    return RunStore.open(path), values


def _chunk(store, tile):
    return store.path / "curves" / "train_loss" / "c" / str(tile) / "0" / "0"


def _damage(store, damage: str) -> None:
    """Damage tile 1's chunk file: delete it, replace it with tile 2's, or cut it short."""
    chunk = _chunk(store, 1)
    if damage == "missing":
        chunk.unlink()
    elif damage == "replaced":
        chunk.write_bytes(_chunk(store, 2).read_bytes())
    else:
        chunk.write_bytes(chunk.read_bytes()[:10])


@pytest.mark.parametrize("damage", ["missing", "replaced", "truncated"])
def test_a_damaged_chunk_is_found_by_its_checksum_and_never_read_as_data(tmp_path, damage):
    """A chunk file deleted (zarr would read NaN: 'diverged'), replaced by another tile's or cut
    short: damaged_tiles names the tile, and read_curves / read_tile refuse it in one line."""
    store, values = _written(tmp_path / "store.zarr")
    assert store.checksummed and store.damaged_tiles() == []
    assert np.array_equal(store.read_curves(), values)
    _damage(store, damage)
    store = RunStore.open(store.path)
    assert [tile for tile, _ in store.damaged_tiles()] == [1]
    for read in (store.read_curves, lambda: store.read_tile(1)):
        with pytest.raises(StoreError, match=r"tile 1 \(rows 1-1\) is damaged|cannot be read"):
            read()
    np.testing.assert_array_equal(store.read_tile(2)["train_loss"], values[2])    # the others read


def test_curves_checked_inside_keep_verified_are_read_from_disk_once(tmp_path):
    """A checked read (integrity.checked_folder) reads each metric once: what
    damaged_tiles(keep=True) checked, read_curves hands out again (read-only), so a chunk file
    deleted after the check is not read again; outside the block it is, and is refused."""
    store, values = _written(tmp_path / "store.zarr")
    with keep_verified():
        assert store.damaged_tiles(keep=True) == []
        _chunk(store, 1).unlink()                      # read from disk now, this is damage
        again = RunStore.open(store.path)
        curves = again.read_curves()
        assert np.array_equal(curves, values) and not curves.flags.writeable
        assert again.read_curves() is curves
    with pytest.raises(StoreError, match=r"tile 1 \(rows 1-1\) is damaged"):
        RunStore.open(store.path).read_curves()


def test_kept_curves_are_read_again_once_the_store_changed_or_did_not_fit(tmp_path):
    store, values = _written(tmp_path / "store.zarr")
    with keep_verified():
        store.damaged_tiles(keep=True)
        RunStore.open(store.path, mode="r+").write_tile(1, {"train_loss": values[1] + 1},
                                                        stored=4, seconds=1.0)
        curves = RunStore.open(store.path).read_curves()
        assert np.array_equal(curves[1], values[1] + 1) and curves.flags.writeable
    with keep_verified(max_bytes=values.nbytes - 1):        # no room: nothing is kept
        store.damaged_tiles(keep=True)
        _chunk(store, 2).unlink()
        with pytest.raises(StoreError, match=r"tile 2 \(rows 2-2\) is damaged"):
            RunStore.open(store.path).read_curves()


@pytest.mark.parametrize("damage", ["missing", "replaced", "truncated"])
def test_a_check_that_keeps_the_curves_finds_the_same_damage_and_keeps_nothing(tmp_path, damage):
    store, values = _written(tmp_path / "store.zarr")
    _damage(store, damage)
    with keep_verified():
        assert [tile for tile, _ in RunStore.open(store.path).damaged_tiles(keep=True)] == [1]
        with pytest.raises(StoreError, match=r"tile 1 \(rows 1-1\) is damaged|cannot be read"):
            RunStore.open(store.path).read_curves()


def test_a_damaged_tile_reset_is_trained_again_and_the_store_is_incomplete(tmp_path):
    store, _ = _written(tmp_path / "store.zarr")
    _chunk(store, 0).unlink()
    store = RunStore.open(store.path, mode="r+")
    store.reset_tiles([t for t, _ in store.damaged_tiles()])
    assert not store.complete and store.done_tiles().tolist() == [False, True, True]
    assert store.damaged_tiles() == []                # nothing claims the lost curves any more


def test_a_kill_between_the_record_and_the_flag_is_not_damage(tmp_path):
    """The record is written before the flag: a record ahead of its flag (a kill in between) in
    an unfinished store is the tile's last write, not damage; the flag still rules."""
    store = new_store(tmp_path / "store.zarr")
    curves = np.arange(4 * 5, dtype=np.float64).reshape(4, 5)
    store.write_tile(0, {"train_loss": curves}, stored=2, seconds=1.0)
    store.group["tiles/checksums"][0] = store._record(0, {"train_loss": curves}, 4)
    assert store.damaged_tiles() == [] and store.tile_flags(0)[0] == 2
    store.group["tiles/checksums"][0] = np.zeros(3, dtype=np.uint64)      # the record lost
    assert [t for t, _ in store.damaged_tiles()] == [0]


def test_a_store_from_before_checksums_is_read_and_says_so(tmp_path):
    import shutil

    from nnfractal.storage.integrity import NOT_CHECKSUMMED, check_folder
    from nnfractal.storage.run_folder import RunFolder
    store, values = _written(tmp_path / "run" / "store.zarr")
    shutil.rmtree(store.path / "tiles" / "checksums")
    store = RunStore.open(store.path, mode="r+")
    assert not store.checksummed and store.damaged_tiles() == []
    assert np.array_equal(store.read_curves(), values)
    RunFolder(tmp_path / "run").write_config(CFG)
    store.update_attrs(config=CFG.to_dict())
    said = []
    check_folder(tmp_path / "run", log=said.append)
    assert len(said) == 1 and NOT_CHECKSUMMED in said[0]


def test_write_curves_places_ragged_runs_of_points_row_major(tmp_path):
    store = new_store(tmp_path / "store.zarr", tile_rows=3)
    values = np.arange(12 * 5, dtype=np.float64).reshape(12, 5)
    store.write_curves("train_loss", 2, values[2:7])      # the end of row 0, row 1, nothing more
    got = store.read_curves().reshape(12, 5)
    assert np.array_equal(got[2:7], values[2:7]) and np.isnan(got[[0, 1, 7, 8, 9, 10, 11]]).all()


def test_attempts_count_up_and_complete_is_an_attribute(tmp_path):
    store = new_store(tmp_path / "store.zarr")
    assert [store.begin_tile(0) for _ in range(3)] == [1, 2, 3]
    assert store.tile_state()["attempts"].tolist() == [3, 0, 0]
    store.mark_complete()
    assert RunStore.open(store.path).complete


def test_missing_or_foreign_stores_are_refused_in_one_line(tmp_path):
    with pytest.raises(StoreError, match=r"^store: .* does not exist$"):
        RunStore.open(tmp_path / "none.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=3).attrs["format"] = "x"
    with pytest.raises(StoreError, match=r"is not an nnfractal run store \(format 'x'\)"):
        RunStore.open(tmp_path / "other.zarr")
    store = new_store(tmp_path / "store.zarr")
    with pytest.raises(StoreError, match=r"^readout: 'test_acc' was not recorded .*allowed: train_loss"):
        store.read_curves("test_acc")


def test_tiles_are_bands_of_whole_rows_the_last_one_shorter():
    grid = TileGrid(rows=5, cols=3, tile_rows=2)
    assert grid.count == 3 and [grid.bounds(t) for t in grid.tiles()] == [(0, 2), (2, 4), (4, 5)]
    assert [grid.n_points(t) for t in grid.tiles()] == [6, 6, 3]
    x, y = np.array([10.0, 20.0, 30.0]), np.arange(5.0)
    assert grid.points(2, x, y).tolist() == [[10.0, 4.0], [20.0, 4.0], [30.0, 4.0]]   # (x, y)


def test_default_tiles_hold_whole_chunks():
    for rows, cols, batch in [(64, 64, 16), (12, 12, 5), (100, 7, 3)]:
        step = tile_rows_step(cols, batch)
        assert (step * cols) % batch == 0
        tile = default_tile_rows(rows, cols, batch)
        assert tile == rows or tile % step == 0


# ---- the backends ---------------------------------------------------------------------------------

@pytest.fixture
def job(tmp_path):
    """A store laid out as run.execute lays it out, with a job of the CFG grid (one row a tile)."""
    plan = plan_run(CFG, None, LocalBackend(), log=lambda *_: None)
    store = RunStore.create(tmp_path / "store.zarr", config=CFG.to_dict(), x=plan.x, y=plan.y,
                            curve_lengths=plan.lengths, dtype=plan.dtype, tile_rows=1,
                            schedule={"steps": plan.schedule.steps,
                                      "steps_per_epoch": plan.schedule.steps_per_epoch,
                                      "eval_epochs": list(plan.schedule.eval_epochs)})
    return TileJob(str(store.path), CFG, plan.data, plan.x, plan.y), store


def test_a_tile_trains_exactly_what_the_engine_trains_for_its_points(job):
    job, store = job
    outcome = train_tile(job, 2)
    assert outcome.trained == 4 and not outcome.stopped
    assert store.done_tiles().tolist() == [False, False, True, False]
    expected = train(CFG, build_family(CFG), job.data, store.tile_grid.points(2, job.x, job.y))
    assert np.array_equal(store.read_tile(2)["train_loss"], expected.losses, equal_nan=True)
    assert train_tile(job, 2).trained == 0                    # a done tile is never trained again


def test_the_local_backend_trains_every_tile_it_is_given_and_counts_points(job):
    job, store = job
    seen = []
    outcomes = list(LocalBackend().run(job, [0, 3], seen.append, threading.Event()))
    assert [(o.tile, o.trained) for o in outcomes] == [(0, 4), (3, 4)] and sum(seen) == 8
    assert store.done_tiles().tolist() == [True, False, False, True]


def test_a_stop_request_ends_the_local_backend_after_the_current_tile(job):
    job, store = job
    stop = threading.Event()
    outcomes = []
    for outcome in LocalBackend().run(job, [0, 1, 2], lambda k: None, stop):
        outcomes.append(outcome)
        stop.set()                                         # Ctrl-C while tile 0 was training
    assert len(outcomes) == 1 and store.done_tiles().tolist() == [True, False, False, False]


def test_an_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match=r"^backend: 'slurm' is not allowed \(allowed: local, ray\)"):
        make_backend("slurm")
