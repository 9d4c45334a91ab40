"""The chaos map (--chaos): twins moved by a few rounding units, which pixels flip, the twin store
resumed after Ctrl-C, bad distances refused, and the project's finding on paper-tanh."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import assert_picture, quiet, run_args

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.runner import chaos
from nnfractal.runner.run import execute, load_data, score_map
from nnfractal.storage.store import RunStore

# 12 x 12 float64 paper-tanh points, chunks of 4: 36 twin chunks, a second or two of training.
FLAGS = {"resolution": 12, "steps": 1500, "tile_batch": 4}
ARGS = run_args("paper-tanh", FLAGS)
CFG = build_config("paper-tanh", **FLAGS)


# ---- rounding units ----------------------------------------------------------------------------

@pytest.mark.parametrize("precision, dtype", [("float64", np.float64), ("float32", np.float32)])
@pytest.mark.parametrize("ulps", [1, 4, 37])
def test_moved_by_ulps_is_ulps_steps_of_nextafter_in_the_runs_precision(precision, dtype, ulps):
    values = np.array([1e-3, 0.1, 1.0, 3.7e5, -2.5, -1e-40, 0.0, 1e-300 if dtype is np.float64 else 1e-30])
    expected = values.astype(dtype)
    for _ in range(ulps):
        expected = np.nextafter(expected, dtype(np.inf))
    got = chaos.moved_by_ulps(values, ulps, precision)
    assert got.dtype == np.float64
    assert np.array_equal(got, expected.astype(np.float64))
    assert np.array_equal(got.astype(dtype).astype(np.float64), got)    # exact in the precision


def test_twins_of_a_grid_are_its_pixels_moved_on_both_axes(tmp_path):
    execute(CFG.replace(resolution=4, steps=5), tmp_path / "r", progress=False, log=quiet,
            draw=False)
    store = RunStore.open(tmp_path / "r" / "store.zarr")
    index = chaos.twinned_pixels(store)
    assert np.array_equal(index, np.arange(16))
    twins = chaos.twin_points(store, index, 4, "float64")
    x, y = store.x, store.y
    assert np.array_equal(twins[5], [chaos.moved_by_ulps(x[1:2], 4, "float64")[0],
                                     chaos.moved_by_ulps(y[1:2], 4, "float64")[0]])
    assert (twins > np.stack(np.meshgrid(x, y), -1).reshape(-1, 2)).all()


@pytest.mark.parametrize("value", ["0", "0.5", "-3", "2.5", "abc", "nan", "inf", str(2**21)])
def test_a_distance_below_one_rounding_unit_or_not_whole_is_refused(value):
    with pytest.raises(chaos.ConfigError, match=r"^chaos_ulps: .* is not allowed \(allowed: "):
        chaos.check_ulps(value)


@pytest.mark.parametrize("value, expected", [("4", 4), (4, 4), ("16.0", 16), (1, 1)])
def test_whole_distances_are_taken(value, expected):
    assert chaos.check_ulps(value) == expected


def test_cli_refuses_a_bad_distance_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *ARGS, "--out", str(out), "--chaos-ulps", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnfractal: error: chaos_ulps: '0.5' is not allowed")
    assert not out.exists()


def test_explore_refuses_a_bad_distance_in_one_line_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("uvicorn")
    out = tmp_path / "session"
    assert main(["explore", "--chaos-ulps", "0", "--out", str(out), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnfractal: error: chaos_ulps: '0' is not allowed")
    assert not out.exists()


# ---- the map -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory):
    """A 12 x 12 paper-tanh run with --chaos, drawn."""
    out = tmp_path_factory.mktemp("chaos") / "run"
    assert main(["run", *ARGS, "--out", str(out), "--chaos", "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_zero_ulps_twins_are_the_runs_own_curves_bit_for_bit(chaos_run, tmp_path):
    """The twins' chunks are the run's: unmoved twins reproduce the run exactly, so every flip
    at k ulps comes from the move, not from how the twins were batched."""
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(chaos_run, run)
    store = RunStore.open(run / "store.zarr", mode="r+")
    del store.group[chaos.GROUP]
    chaos.train_twins(run, store, CFG, load_data(CFG, build_family(CFG)), 0, progress=False,
                      log=quiet)
    twins = store.group[f"{chaos.GROUP}/curves/train_loss"][:]
    assert np.array_equal(twins, store.read_curves().reshape(144, -1), equal_nan=True)
    scores = score_map(store, CFG)
    assert not chaos.chaos_map(store, CFG, scores).flipped.any()


@pytest.mark.slow
@pytest.mark.parametrize("preset, extra", [
    ("mlp300-mnist", dict(width=20, resolution=4, num_epochs=2, tile_batch=16, batch_size=32)),
    ("resnet20-mnist", dict(depth=8, c_hidden=[4, 8, 8], resolution=2, num_epochs=1,
                            tile_batch=4, batch_size=32)),
])
def test_twins_skip_the_held_out_evaluation_and_keep_the_training_curves(preset, extra, tmp_path,
                                                                         monkeypatch):
    """An MNIST run evaluates on held-out images every epoch; its twins (a map of a training
    metric) do not, which never changes the weights: unmoved twins equal the run bit for bit."""
    cfg = build_config(preset, train_size=64, test_size=32, **extra)
    out = tmp_path / "run"
    execute(cfg, out, progress=False, log=quiet, draw=False)
    store = RunStore.open(out / "store.zarr", mode="r+")
    assert {"test_loss", "test_acc"} <= set(store.metrics)        # the run evaluated
    from nnfractal.training import engine
    real, evals = engine.train, []

    def spy(twin_cfg, *args, **kwargs):        # the real engine, its config noted
        evals.append(twin_cfg.eval_every)
        return real(twin_cfg, *args, **kwargs)
    monkeypatch.setattr(engine, "train", spy)
    chaos.train_twins(out, store, cfg, load_data(cfg, build_family(cfg)), 0, progress=False,
                      log=quiet)
    assert evals == [0] and cfg.eval_every == 1
    twins = store.group[f"{chaos.GROUP}/curves/{cfg.metric}"][:]
    assert np.array_equal(twins, store.read_curves(cfg.metric).reshape(twins.shape), equal_nan=True)


@pytest.mark.slow
def test_chaos_run_writes_the_map_and_the_fractions(chaos_run):
    summary = json.loads((chaos_run / "summary.json").read_text())
    info = summary["chaos_fraction"]
    store = RunStore.open(chaos_run / "store.zarr")
    cm = chaos.chaos_map(store, CFG, score_map(store, CFG))
    assert info["n_twinned"] == 144 and info["ulps"] == 4 and info["precision"] == "float64"
    assert info["n_flipped"] == int(cm.flipped.sum())
    assert info["n_boundary"] == int(cm.near_boundary.sum()) > 0
    assert info["all"] == pytest.approx(info["n_flipped"] / 144)
    assert info["boundary_ci95"][0] <= (info["boundary"] or 0) <= info["boundary_ci95"][1]
    assert_picture(chaos_run / "chaos.png", min_ink=0.2)
    page = (chaos_run / "report.html").read_text()
    assert '<section id="chaos">' in page
    assert f"({info['n_boundary_flipped']} of {info['n_boundary']})" in page


@pytest.mark.slow
def test_a_pixel_far_from_the_boundary_does_not_flip(chaos_run):
    store = RunStore.open(chaos_run / "store.zarr")
    scores = score_map(store, CFG)
    cm = chaos.chaos_map(store, CFG, scores)
    converged = scores < 0
    rows, cols = scores.shape
    far = np.zeros_like(converged)
    for r in range(2, rows - 2):            # the whole 5 x 5 neighbourhood has one outcome
        for c in range(2, cols - 2):
            block = converged[r - 2:r + 3, c - 2:c + 3]
            far[r, c] = block.all() or not block.any()
    assert far.sum() >= 10
    assert not cm.flipped[far].any()


# ---- resuming ----------------------------------------------------------------------------------

def _twin_state(out):
    try:
        group = RunStore.open(out / "store.zarr").group[chaos.GROUP]
        return int(group["stored"][0]), int(group.attrs["n"])
    except Exception:
        return None


@pytest.mark.slow
def test_ctrl_c_during_the_twins_then_resume_gives_the_same_map(chaos_run, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nnfractal", "run", *ARGS, "--out", str(out),
                             "--chaos", "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = _twin_state(out)
        if state is not None and 0 < state[0]:
            break
        if proc.poll() is not None:
            pytest.fail(f"run ended before any twin was stored: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    stored, n = _twin_state(out)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (f"nnfractal: interrupted after {stored} of {n} chaos "
                                            f"twins; resume with: nnfractal run --resume {out}")
    assert 0 < stored < n and stored % 4 == 0
    assert not (out / "chaos.png").exists()

    assert main(["run", "--resume", str(out), "--no-progress"]) == 0     # finishes the twins
    mine = RunStore.open(out / "store.zarr").group[f"{chaos.GROUP}/curves/train_loss"][:]
    theirs = RunStore.open(chaos_run / "store.zarr").group[f"{chaos.GROUP}/curves/train_loss"][:]
    assert np.array_equal(mine, theirs, equal_nan=True)
    assert json.loads((out / "summary.json").read_text())["chaos_fraction"] == \
        {**json.loads((chaos_run / "summary.json").read_text())["chaos_fraction"],
         "twin_seconds": json.loads((out / "summary.json").read_text())["chaos_fraction"]["twin_seconds"]}


@pytest.mark.slow
def test_resume_adds_twins_to_a_finished_run_and_refuses_another_distance(chaos_run, tmp_path,
                                                                          capsys):
    out = tmp_path / "plain"
    assert main(["run", *ARGS, "--out", str(out), "--no-progress"]) == 0
    assert "chaos_fraction" not in json.loads((out / "summary.json").read_text())
    assert main(["run", "--resume", str(out), "--chaos", "--no-progress"]) == 0
    assert (out / "chaos.png").is_file()
    info = json.loads((out / "summary.json").read_text())["chaos_fraction"]
    assert info["n_flipped"] == json.loads((chaos_run / "summary.json").read_text())[
        "chaos_fraction"]["n_flipped"]
    capsys.readouterr()
    before = (out / "summary.json").read_text()
    assert main(["run", "--resume", str(out), "--chaos-ulps", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnfractal: error: chaos_ulps: 8 differs from "
                                               "the run's twins (4 rounding units")
    assert (out / "summary.json").read_text() == before


# ---- adaptive ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_adaptive_run_twins_only_the_pixels_it_trained(tmp_path):
    cfg = build_config("paper-tanh", resolution=33, steps=300, tile_batch=16, adaptive=True,
                       adaptive_coarse=9)
    out = tmp_path / "adaptive"
    execute(cfg, out, progress=False, log=quiet, epoch_maps=False, chaos_ulps=4)
    store = RunStore.open(out / "store.zarr")
    trained = store.group["adaptive/trained"][:]
    assert 0 < trained.sum() < trained.size
    index = store.group[f"{chaos.GROUP}/index"][:]
    assert np.array_equal(index, np.flatnonzero(trained))
    info = json.loads((out / "summary.json").read_text())["chaos_fraction"]
    assert info["n_twinned"] == int(trained.sum())


# ---- the project's finding -----------------------------------------------------------------------

@pytest.mark.slow
def test_paper_tanh_64_flips_a_few_percent_of_its_boundary_pixels(tmp_path):
    """The project's finding (issue 26): moved by a few float64 rounding units, a few percent of
    the boundary pixels of paper-tanh's 64 x 64 map flip, and hardly any pixel away from it."""
    cfg = build_config("paper-tanh")
    out = tmp_path / "pt"
    execute(cfg, out, progress=False, log=quiet, epoch_maps=False, chaos_ulps=4)
    info = json.loads((out / "summary.json").read_text())["chaos_fraction"]
    assert info["n_twinned"] == 4096 and info["n_boundary"] > 100
    assert 0.01 <= info["boundary"] <= 0.15
    away = (info["n_flipped"] - info["n_boundary_flipped"]) / (4096 - info["n_boundary"])
    assert away < info["boundary"] / 3


# ---- the explorer's layer ------------------------------------------------------------------------

def _wait_done(session, wid, timeout=120.0):
    deadline = time.monotonic() + timeout
    while session.window(wid).status not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"window {wid} did not finish"
        time.sleep(0.05)
    assert session.window(wid).status == "done", session.window(wid).error


@pytest.mark.slow
def test_the_explorer_serves_the_chaos_layer_of_a_chaos_run(chaos_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from nnfractal.explorer import Session, create_app
    store = RunStore.open(chaos_run / "store.zarr")
    flipped = chaos.chaos_map(store, CFG, score_map(store, CFG)).flipped
    session = Session.open(chaos_run, tmp_path / "s", log=quiet)
    with TestClient(create_app(session, allowed_hosts=None)) as client:
        payload = client.get("/api/windows/0/map").json()
    bits = np.frombuffer(__import__("base64").b64decode(payload["chaos"]), dtype=np.uint8)
    assert np.array_equal(bits.reshape(12, 12).astype(bool), flipped)
    assert payload["chaos_fraction"]["n_flipped"] == int(flipped.sum())


@pytest.mark.slow
def test_an_explorer_session_with_chaos_twins_its_windows_and_one_without_has_no_layer(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from nnfractal.explorer import Session, create_app
    cfg = build_config("paper-tanh", resolution=6, steps=30, tile_batch=36)
    with_twins = Session.new(cfg, tmp_path / "a", log=quiet, chaos_ulps=4)
    without = Session.new(cfg, tmp_path / "b", log=quiet)
    for session in (with_twins, without):
        _wait_done(session, 0)
    with TestClient(create_app(with_twins, allowed_hosts=None)) as client:
        info = client.get("/api/windows/0/map").json()["chaos_fraction"]
    assert info["n_twinned"] == 36 and info["ulps"] == 4
    assert chaos.twins_complete(RunStore.open(with_twins.window(0).folder / "store.zarr"))
    with TestClient(create_app(without, allowed_hosts=None)) as client:
        assert client.get("/api/windows/0/map").json()["chaos"] is None
    for session in (with_twins, without):
        session.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_chaos_layer_is_drawn_in_chromium(tmp_path):
    """float32 twins 2**20 rounding units away (a 6% move): some boundary pixels flip for sure,
    and the page draws each as a black square once the layer is ticked."""
    import threading

    import uvicorn
    from helpers import chromium_page

    from nnfractal.cli.explore import bind_socket, url_of
    from nnfractal.explorer import Session, create_app
    cfg = build_config("paper-tanh", resolution=16, steps=100, tile_batch=64, precision="float32")
    session = Session.new(cfg, tmp_path / "s", log=quiet, chaos_ulps=chaos.MAX_ULPS)
    _wait_done(session, 0)
    flips = int(session.chaos_layer(session.window(0))["flipped"].sum())
    assert flips > 0
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(session), log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with chromium_page(1120) as (page, problems):
            page.goto(url_of(sock))
            page.wait_for_selector(f'body[data-map="0:256"][data-chaos="{flips}"]', timeout=60_000)
            before = black_pixels(page)
            page.check("#layer-chaos")
            page.wait_for_selector(f'body[data-chaos-drawn="{flips}"]')
            assert black_pixels(page) - before >= flips * 4       # each at least 4 x 4 px, rimmed
            assert "boundary pixels" in page.inner_text("#chaos-note")
        assert problems == []
    finally:
        server.should_exit = True
        thread.join(20)
        session.close()
        sock.close()


def black_pixels(page) -> int:
    """Pure black pixels inside the plot of the map canvas."""
    return page.evaluate("""() => {
        const c = document.getElementById('map');
        const s = c.width / 640;
        const d = c.getContext('2d').getImageData(Math.round(84 * s), Math.round(16 * s),
            Math.round(528 * s), Math.round(534 * s)).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] === 0) n++;
        return n;
    }""")
