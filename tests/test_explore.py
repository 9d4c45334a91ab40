"""The interactive explorer: API validation and safety, the job queue, failed jobs, the CLI, and the
page end to end in headless Chromium (Playwright)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import chromium_page

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

from nnfractal.config import build_config  # noqa: E402
from nnfractal.explorer import Session, create_app  # noqa: E402
from nnfractal.explorer.session import MAX_QUEUED  # noqa: E402
from nnfractal.storage.store import RunStore  # noqa: E402
from nnfractal.window import Window as AxisWindow  # noqa: E402  (session.Window: a tree node)

pytestmark = pytest.mark.slow  # serves and trains windows



def tiny_cfg(resolution=4, steps=10, tile_batch=16):
    return build_config("paper-tanh", resolution=resolution, steps=steps, tile_batch=tile_batch)


def wait_window(client, wid, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get(f"/api/windows/{wid}").json()
        if info["status"] in ("done", "failed", "cancelled"):
            return info
        time.sleep(0.05)
    raise AssertionError(f"window {wid} did not finish in {timeout} s")


def folder_listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One small session (4 x 4 grid, 10 steps) shared by the API tests; w000 finished."""
    folder = tmp_path_factory.mktemp("explore") / "session"
    session = Session.new(tiny_cfg(), folder, log=lambda *_: None)
    app = create_app(session, allowed_hosts=None)
    with TestClient(app) as client:
        assert wait_window(client, 0)["status"] == "done"
        client.session = session
        yield client


def zoom(client, mnmx, parent=0, **extra):
    return client.post("/api/windows", json={"parent": parent, "mnmx": mnmx, **extra})


# ---- the first window and a zoom --------------------------------------------------------------

def test_first_window_is_a_run_folder_with_map_and_dimension(api):
    s = api.get("/api/session").json()
    assert s["limits"]["resolution_min"] == 2 and s["limits"]["resolution_max"] == 512
    assert len(s["colormap"]) == 256 and s["colormap"][0] != s["colormap"][255]
    w0 = s["windows"][0]
    assert w0["status"] == "done" and w0["ancestors"] == [0] and w0["resolution"] == 4
    assert w0["xlabel"] == "input layer learning rate" and len(w0["x"]) == 4
    assert w0["dimension"]["text"]                           # a number with its CI, or the reason
    assert "ci_low" in w0["dimension"] and "ok" in w0["dimension"]
    m = api.get("/api/windows/0/map").json()
    assert (m["rows"], m["cols"], m["done"]) == (4, 4, 16)
    import base64
    assert len(base64.b64decode(m["pixels"])) == 16 and len(base64.b64decode(m["boundary"])) == 9
    png = api.get("/api/windows/0/map.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "attachment" in png.headers["content-disposition"]
    folder = api.session.folder / "windows" / "w000"
    assert {"config.toml", "store.zarr", "map.png", "window.json"} <= set(os.listdir(folder))
    assert RunStore.open(folder / "store.zarr").complete


def test_zoom_trains_the_same_config_over_the_new_window(api):
    from nnfractal.models import build_family
    from nnfractal.runner.run import load_data
    from nnfractal.training.engine import train
    from nnfractal.training.grid import axes, grid_points

    r = zoom(api, [0.5, 1.5, 1.0, 2.0], resolution=3)
    assert r.status_code == 202, r.text
    wid = r.json()["window"]["id"]
    info = wait_window(api, wid)
    assert info["status"] == "done", info["error"]
    assert info["ancestors"] == [0, wid] and info["mnmx"] == [0.5, 1.5, 1.0, 2.0]
    assert info["resolution"] == 3
    curve = api.get(f"/api/windows/{wid}/curve", params={"row": 2, "col": 1}).json()
    assert len(curve["loss"]) == 10 and curve["converged"] in (True, False)
    np.testing.assert_allclose(curve["y"], 10 ** 1.5)
    np.testing.assert_allclose(curve["x"], 10 ** 1.5)
    # Bit for bit what the engine gives for that config (chunks padded the same way).
    cfg = tiny_cfg().replace(mnmx=(0.5, 1.5, 1.0, 2.0), resolution=3)
    family = build_family(cfg)
    x, y = axes(cfg)
    expected = train(cfg, family, load_data(cfg, family), grid_points(x, y)).losses
    stored = RunStore.open(api.session.folder / "windows" / f"w{wid:03d}" / "store.zarr")
    np.testing.assert_array_equal(stored.read_curves("train_loss").reshape(9, 10), expected)
    saved = json.loads((api.session.folder / "explore.json").read_text())
    assert {"id": wid, "parent": 0} in saved["windows"]


# ---- validation ---------------------------------------------------------------------------------

BAD_BODIES = [
    ({"parent": 0, "mnmx": [0, 1, 0]}, "mnmx"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1, 2]}, "mnmx"),
    ({"parent": 0, "mnmx": ["0", 1, 0, 1]}, "mnmx.0"),
    ({"parent": 0, "mnmx": [True, 1, 0, 1]}, "mnmx.0"),
    ({"parent": 0, "mnmx": [1, 0, 0, 1]}, "y_min < y_max"),
    ({"parent": 0, "mnmx": [0, 1, 1, 1]}, "x_min < x_max"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1e301]}, "mnmx.3"),
    ({"parent": 0, "mnmx": "../../etc/passwd"}, "mnmx"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1], "resolution": 1}, "resolution"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1], "resolution": 513}, "resolution"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1], "resolution": 2.5}, "resolution"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1], "resolution": "64"}, "resolution"),
    ({"parent": -1, "mnmx": [0, 1, 0, 1]}, "parent"),
    ({"parent": True, "mnmx": [0, 1, 0, 1]}, "parent"),
    ({"parent": "w000", "mnmx": [0, 1, 0, 1]}, "parent"),
    ({"mnmx": [0, 1, 0, 1]}, "parent"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1], "folder": "/tmp/x"}, "folder"),
    ({"parent": 0, "mnmx": [0, 1, 0, 1], "out": "../../elsewhere"}, "out"),
]


@pytest.mark.parametrize("body,where", BAD_BODIES)
def test_malformed_zoom_requests_get_422_naming_the_field(api, body, where):
    before = folder_listing(api.session.folder)
    r = api.post("/api/windows", json=body)
    assert r.status_code == 422, r.text
    assert where in r.json()["error"]
    assert folder_listing(api.session.folder) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(api, literal):
    r = api.post("/api/windows", content=f'{{"parent": 0, "mnmx": [0, 1, {literal}, 1]}}',
                 headers={"content-type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["error"]


@pytest.mark.parametrize("mnmx,message", [
    ([0.0, 1e-14, 0.0, 1.0], "too narrow"),                  # below float64 resolution
    ([100.0, 100.0 + 1e-12, 0.0, 1.0], "too narrow"),
    ([-1.0, 301.0, 0.0, 1.0], "between -300 and 300"),      # the config's own limit
])
def test_windows_the_numbers_cannot_draw_get_400(api, mnmx, message):
    r = zoom(api, mnmx)
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_other_refusals(api):
    assert zoom(api, [0, 1, 0, 1], parent=999).status_code == 404
    r = api.post("/api/windows", content="parent=0", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = api.post("/api/windows", content="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = api.get("/api/windows/0/curve", params={"row": 4, "col": 0})
    assert r.status_code == 400 and "row: 4 is out of range (allowed: 0..3)" in r.json()["error"]
    assert api.get("/api/windows/0/curve", params={"row": -1, "col": 0}).status_code == 422
    assert api.get("/api/windows/0/curve", params={"row": 0}).status_code == 422
    assert api.get("/api/jobs/12345").status_code == 404
    assert api.get("/api/windows/0/report").status_code == 404


@pytest.mark.parametrize("path", [
    "/api/windows/..%2F..%2Fetc%2Fpasswd/map.png",
    "/api/windows/../../etc/passwd",
    "/api/windows/%2Fetc%2Fpasswd",
    "/api/windows/w000/map",
    "/api/windows/0x1/map",
    "/api/windows/10000000/map",
    "/api/windows/0/curve?row=..%2F..&col=0",
    "/static/../../etc/passwd",
    "/app.js/../../../etc/passwd",
    "/..%2F..%2Fetc%2Fpasswd",
])
def test_path_like_inputs_never_reach_the_file_system(api, path):
    r = api.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert b"root:" not in r.content


def test_host_header_must_be_local_by_default(api):
    app = create_app(api.session)                 # default: loopback names only
    ok = TestClient(app, base_url="http://127.0.0.1:8765").get("/api/jobs")
    assert ok.status_code == 200
    bad = TestClient(app, base_url="http://attacker.example").get("/api/jobs")
    assert bad.status_code == 400 and "host" in bad.json()["error"]


def test_loopback_names_are_loopback():
    from nnfractal.cli.explore import is_loopback
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))


def test_a_body_over_the_limit_is_refused_before_parsing(api):
    from nnfractal.explorer.server import MAX_BODY_BYTES
    big = b'{"parent": 0, "mnmx": [0, 1, 0, 1], "pad": "' + b"x" * (8 * MAX_BODY_BYTES) + b'"}'
    r = api.post("/api/windows", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"].startswith("body: more than 4096 bytes")

    def chunks():                                  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 1024
    r = api.post("/api/windows", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    n_windows = len(api.get("/api/windows").json())
    assert api.post("/api/jobs/1/cancel", json={}).status_code in (200, 404, 409)   # small: fine
    assert len(api.get("/api/windows").json()) == n_windows


def test_a_cross_origin_post_is_refused(api):
    body = {"parent": 0, "mnmx": [0.0, 1.0, 0.0, 1.0], "resolution": 2}
    n_windows = len(api.get("/api/windows").json())
    r = api.post("/api/windows", json=body, headers={"Origin": "http://attacker.example"})
    assert r.status_code == 403 and r.json()["error"].startswith("origin: 'http://attacker.example'")
    assert len(api.get("/api/windows").json()) == n_windows
    ok = api.post("/api/windows", json=body, headers={"Origin": "http://testserver"})
    assert ok.status_code == 202
    assert wait_window(api, ok.json()["window"]["id"])["status"] == "done"


def test_cancelling_a_running_window_takes_effect_within_a_second(tmp_path):
    """One chunk of a million steps: cancelling does not wait for it to end (the engine checks
    between steps; compile off, so that no kernel compilation is under way)."""
    cfg = build_config("paper-single", resolution=4, steps=10 ** 6, tile_batch=16, compile="off")
    session = Session.new(cfg, tmp_path / "s", log=lambda *_: None)
    with TestClient(create_app(session, allowed_hosts=None)) as client:
        deadline = time.monotonic() + 60
        while client.get("/api/jobs/1").json().get("phase") != "training":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        start = time.monotonic()
        assert client.post("/api/jobs/1/cancel", json={}).status_code == 200
        assert wait_window(client, 0, timeout=30)["status"] == "cancelled"
        # the cancel takes effect at the next training step (~ms); a busy 2-core machine can
        # delay the thread's next step by seconds, a whole chunk took 43 s before this
        assert time.monotonic() - start < 5.0


# ---- jobs: failures, the queue ------------------------------------------------------------------

def test_a_failed_job_is_reported_and_the_server_carries_on(api, monkeypatch):
    import nnfractal.training.engine

    def broken_train(*args, **kwargs):
        raise RuntimeError("injected training failure")

    monkeypatch.setattr(nnfractal.training.engine, "train", broken_train)
    r = zoom(api, [0.0, 1.0, 0.0, 1.0])
    assert r.status_code == 202
    wid, jid = r.json()["window"]["id"], r.json()["job"]["id"]
    info = wait_window(api, wid)
    assert info["status"] == "failed" and "injected training failure" in info["error"]
    job = api.get(f"/api/jobs/{jid}").json()
    assert job["status"] == "failed" and job["error"] == "RuntimeError: injected training failure"
    assert api.get("/api/session").status_code == 200
    assert not (api.session.folder / "windows" / f"w{wid:03d}").exists()
    assert not [p for p in (api.session.folder / "windows").iterdir() if p.name.startswith(".")]
    assert "injected training failure" in (api.session.folder / "explore.log").read_text()
    assert zoom(api, [0, 1, 0, 1], parent=wid).status_code == 409     # no map to zoom from
    monkeypatch.undo()
    r = zoom(api, [0.0, 1.0, 0.0, 1.0], resolution=2)
    assert wait_window(api, r.json()["window"]["id"])["status"] == "done"


def test_one_job_at_a_time_bounded_queue_and_cancel(api, monkeypatch):
    import nnfractal.training.engine
    real_train = nnfractal.training.engine.train
    release, running, active, peak = threading.Event(), threading.Event(), [0], [0]

    def gated_train(*args, **kwargs):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        running.set()
        try:
            assert release.wait(30)
            return real_train(*args, **kwargs)
        finally:
            active[0] -= 1

    monkeypatch.setattr(nnfractal.training.engine, "train", gated_train)
    first = zoom(api, [0.0, 1.0, 0.0, 1.0], resolution=2).json()
    assert running.wait(30)
    queued = [zoom(api, [0.0, 1.0, 0.0, 1.0], resolution=2) for _ in range(MAX_QUEUED)]
    assert all(r.status_code == 202 for r in queued)
    assert [r.json()["job"]["position"] for r in queued] == list(range(1, MAX_QUEUED + 1))
    full = zoom(api, [0.0, 1.0, 0.0, 1.0], resolution=2)
    assert full.status_code == 429 and "one job runs at a time" in full.json()["error"]
    statuses = [j["status"] for j in api.get("/api/jobs").json()]
    assert statuses.count("running") == 1 and statuses.count("queued") == MAX_QUEUED
    for r in queued:                               # cancel the waiting ones
        c = api.post(f"/api/jobs/{r.json()['job']['id']}/cancel", json={})
        assert c.status_code == 200 and c.json()["status"] == "cancelled"
    c = api.post(f"/api/jobs/{first['job']['id']}/cancel", json={})   # and the running one
    assert c.status_code == 200 and c.json()["status"] == "running"     # stops after its chunk
    release.set()
    assert wait_window(api, first["window"]["id"])["status"] == "cancelled"
    assert not (api.session.folder / "windows" / f"w{first['window']['id']:03d}").exists()
    assert peak[0] == 1
    assert all(api.get(f"/api/windows/{r.json()['window']['id']}").json()["status"] == "cancelled"
               for r in queued)


def test_report_button(api, monkeypatch):
    monkeypatch.setattr(api.session, "report", None)         # no writer handed to the session
    r = api.post("/api/windows/0/report", json={})
    assert r.status_code == 503 and "report" in r.json()["error"]
    calls = []

    def write_report(folder):
        folder = Path(folder)
        calls.append(sorted(os.listdir(folder)))
        (folder / "report.html").write_text("<html><body>report</body></html>")
        return folder / "report.html"

    monkeypatch.setattr(api.session, "report", write_report)
    r = api.post("/api/windows/0/report", json={})
    assert r.status_code == 202, r.text
    jid = r.json()["job"]["id"]
    deadline = time.monotonic() + 60
    while api.get(f"/api/jobs/{jid}").json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get(f"/api/jobs/{jid}").json()["status"] == "done"
    assert {"summary.json", "fractal.json", "map.png"} <= set(calls[0])   # a full run folder
    assert api.get("/api/windows/0").json()["report_url"] == "/api/windows/0/report"
    page = api.get("/api/windows/0/report")
    assert page.status_code == 200 and b"report" in page.content
    from nnfractal.report import write_report as real_writer  # the one the CLI hands it
    monkeypatch.setattr(api.session, "report", real_writer)
    r = api.post("/api/windows/0/report", json={})
    assert r.status_code == 202, r.text
    jid = r.json()["job"]["id"]
    while api.get(f"/api/jobs/{jid}").json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline + 60
        time.sleep(0.05)
    assert api.get(f"/api/jobs/{jid}").json()["status"] == "done"
    page = api.get("/api/windows/0/report")
    assert page.status_code == 200 and page.text.lstrip().lower().startswith("<!doctype html")
    assert "data:image/png;base64," in page.text         # self-contained


# ---- sessions and the CLI ---------------------------------------------------------------------

def test_reopening_a_session_and_a_run_folder(api):
    folder = api.session.folder
    reopened = Session.open(folder, log=lambda *_: None)
    try:
        assert 0 in reopened.windows and len(reopened.windows) >= 2
        assert all(w.status == "done" for w in reopened.windows.values())
        assert reopened._next_window > max(reopened.windows)
    finally:
        reopened.close()
    run = Session.open(folder / "windows" / "w000", folder / "elsewhere", log=lambda *_: None)
    try:
        assert run.root_is_run and run.windows[0].folder == folder / "windows" / "w000"
    finally:
        run.close()


def test_cli_refusals(tmp_path, capsys):
    from nnfractal.cli.main import main
    assert main(["explore", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnfractal: error: run_dir:") and err.count("\n") == 1
    assert main(["explore", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err
    assert main(["explore", "--preset", "paper-tanh", "--resolution", "1", "--port", "0",
                 "--out", str(tmp_path / "s")]) == 2
    assert "resolution" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert main(["explore", "--preset", "paper-tanh", "--steps", "1000000000", "--port", "0",
                 "--out", str(tmp_path / "s")]) == 2              # the resource budget
    err = capsys.readouterr().err
    assert err.startswith("nnfractal: error: steps: 1000000000 needs about") and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_cli_serves_on_loopback_and_prints_the_url(api, tmp_path):
    import httpx
    run_dir = tmp_path / "run"
    shutil.copytree(api.session.folder / "windows" / "w000", run_dir)
    proc = subprocess.Popen([sys.executable, "-m", "nnfractal", "explore", str(run_dir), "--port", "0",
                             "--host", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("nnfractal explore: http://127.0.0.1:"), line
        url = line.split()[2]
        s = httpx.get(url + "api/session", timeout=10).json()
        assert s["windows"][0]["status"] == "done"
        assert httpx.get(url, timeout=10).text.startswith("<!doctype html>")
        # DNS rebinding: a page of another name that resolves here is still refused
        foreign = httpx.get(url + "api/session", headers={"Host": "attacker.example"}, timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "warning" not in err                  # a loopback --host opens nothing
    assert foreign.status_code == 400 and "host" in foreign.json()["error"]


# ---- the page, end to end in headless Chromium ----------------------------------------------------

@pytest.fixture
def live_server(tmp_path):
    """A real uvicorn server in a thread on a free port, over a fresh 8 x 8 session."""
    import uvicorn

    from nnfractal.cli.explore import bind_socket, url_of
    session = Session.new(tiny_cfg(resolution=8, steps=20, tile_batch=64), tmp_path / "session",
                          log=lambda *_: None)
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(session), log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield url_of(sock), session
    server.should_exit = True
    thread.join(20)
    session.close()
    sock.close()


@pytest.mark.browser
def test_page_end_to_end_in_chromium(live_server, tmp_path):
    url, session = live_server
    with chromium_page(1120) as (page, problems):
        page.goto(url)
        # The first window trains in the background; the page polls and then draws it.
        page.wait_for_selector('body[data-window="0"][data-status="done"][data-map="0:64"]',
                               timeout=60_000)
        assert plot_coverage(page) > 0.95                  # the map fills the plot: not blank
        box = page.locator("#map").bounding_box()
        left, top = box["x"] + 80, box["y"] + 12           # the plot's corner (app.js MARGIN)
        w, h = 640 - 80 - 24, 610 - 12 - 56
        page.mouse.move(left + 0.5 * w, top + 0.5 * h)
        assert "learning rate =" in page.inner_text("#hover")
        page.check("#layer-boundary")
        # Drag a rectangle over the upper right quarter: the explorer computes that window.
        page.mouse.move(left + 0.5 * w, top + 0.1 * h)
        page.mouse.down()
        page.mouse.move(left + 0.7 * w, top + 0.3 * h, steps=4)
        page.mouse.move(left + 0.9 * w, top + 0.5 * h, steps=4)
        page.mouse.up()
        page.wait_for_selector('body[data-window="1"][data-status="done"][data-map="1:64"]',
                               timeout=60_000)
        assert plot_coverage(page) > 0.95
        assert page.inner_text("#crumbs").split() == ["w000", "\u203a", "w001"]
        w1 = session.window(1)
        w0 = AxisWindow.of(session.window(0).cfg)
        (x0, y0), (x1, y1) = w0.to_axis(np.array([[0.5, 0.5], [0.9, 0.9]]))
        np.testing.assert_allclose(AxisWindow.of(w1.cfg).extent, [x0, x1, y0, y1],
                                   atol=0.02 * w0.size[0])
        assert "boundary dimension:" in page.inner_text("#dimension")
        # Click a pixel: its loss curve is drawn.
        page.mouse.click(left + 0.3 * w, top + 0.6 * h)
        page.wait_for_function("document.querySelector('#curve-info').textContent.includes('row')")
        assert curve_ink(page) > 50
        assert "learning rate =" in page.inner_text("#curve-info")
        shot = tmp_path / "explore.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("NNFRACTAL_SCREENSHOT"):
            shutil.copy(shot, os.environ["NNFRACTAL_SCREENSHOT"])
        # The breadcrumb goes back.
        page.click('#crumbs a[data-window="0"]')
        page.wait_for_selector('body[data-window="0"][data-map="0:64"]')
        assert page.get_attribute("#download", "href") == "/api/windows/0/map.png"
    assert problems == []


def plot_coverage(page) -> float:
    """Share of the plot area showing map colours (not the grey 'not trained' or white)."""
    return page.evaluate("""() => {
        const c = document.getElementById('map');
        const s = c.width / 640;
        const d = c.getContext('2d').getImageData(Math.round(84 * s), Math.round(16 * s),
            Math.round(528 * s), Math.round(534 * s)).data;
        let n = 0, total = d.length / 4;
        for (let i = 0; i < d.length; i += 4) {
            const grey = d[i] === 230 && d[i + 1] === 232 && d[i + 2] === 235;
            const white = d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 255;
            if (!grey && !white) n++;
        }
        return n / total;
    }""")


def curve_ink(page) -> int:
    """Coloured (line) pixels on the curve canvas."""
    return page.evaluate("""() => {
        const c = document.getElementById('curve');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (Math.abs(d[i] - d[i + 2]) > 60) n++;          // blue or red, not grey
        }
        return n;
    }""")


def test_a_dragged_window_is_not_the_runs_full_resolution_by_default(tmp_path):
    """Dragging a rectangle on a 128 px run trains a 64 px window unless --resolution says more."""
    from nnfractal.explorer.session import WINDOW_RESOLUTION, Session
    assert WINDOW_RESOLUTION == 64
    assert Session(tmp_path / "a", log=lambda *_: None).window_resolution(128) == 64
    assert Session(tmp_path / "b", log=lambda *_: None).window_resolution(16) == 16
    assert Session(tmp_path / "c", default_resolution=100,
                   log=lambda *_: None).window_resolution(128) == 100
