"""Zoom sequences: windows, float limit, automatic centre, end to end, and refused inputs."""
import json
import math
import shutil

import numpy as np
import pytest
from helpers import assert_animation, assert_picture, interrupt_at

from nnfractal.cli.main import main
from nnfractal.config import build_config, config_from_toml
from nnfractal.estimators.boxcount import DimensionEstimate, boundary
from nnfractal.render.zoom_video import interpolate_window, pixel_extent
from nnfractal.storage.run_folder import score_map_of
from nnfractal.storage.store import RunStore
from nnfractal.studies.windows import (
    auto_center,
    densest_boundary_pixel,
    frame_count,
    frame_windows,
    resolvable_frames,
)
from nnfractal.studies.zoom_result import pooled_dimension
from nnfractal.window import MIN_ULPS_APART, Window

EPS = float(np.finfo(np.float64).eps)
BASE = ["--preset", "paper-tanh", "--resolution", "16", "--steps", "20", "--no-progress"]
ZOOM = ["--factor", "4", "--depth", "1.3", "--no-progress"]          # 3 frames, 1.2 decades


def run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_the_automatic_centre_follows_the_boundary_frame_by_frame():
    """A centre picked on a coarse map misses a thin feature by up to a pixel; the next frame's
    centre moves onto this frame's boundary, inside the next frame's planned place."""
    from nnfractal.studies.windows import follow_boundary
    cfg = build_config("paper-tanh", resolution=64, mnmx=(0.0, 1.0, 0.0, 1.0))
    xs, ys = np.linspace(0, 1, 64), np.linspace(0, 1, 64)
    X, Y = np.meshgrid(xs, ys)
    smap = Y - 0.3 - 0.05 * np.sin(12 * X)                 # boundary: y = 0.3 + 0.05 sin(12 x)
    centre = (0.5, 0.45)                                  # 0.15 - 0.05 sin(6) above it
    (cx, cy), found = follow_boundary(cfg, smap, centre, (0.25, 0.25), half=4)
    assert found
    assert abs(cx - 0.5) <= 0.125 + 1e-12 and abs(cy - 0.45) <= 0.125 + 1e-12
    assert abs(cy - (0.3 + 0.05 * np.sin(12 * cx))) < 2 / 63           # on the boundary
    j = int(np.searchsorted(xs, cx)) - 1
    i = int(np.searchsorted(ys, cy)) - 1
    assert boundary(smap)[i, j]
    # nothing inside the next frame: the nearest boundary cell; no boundary: the centre stays
    (fx, fy), found = follow_boundary(cfg, smap, (0.5, 0.9), (0.1, 0.1), half=4)
    ii, jj = np.nonzero(boundary(smap))
    mids = np.stack([(xs[jj] + xs[jj + 1]) / 2, (ys[ii] + ys[ii + 1]) / 2], 1)
    nearest = np.hypot(mids[:, 0] - 0.5, mids[:, 1] - 0.9).min()
    assert found and math.hypot(fx - 0.5, fy - 0.9) == pytest.approx(nearest)
    assert follow_boundary(cfg, np.ones((64, 64)), (0.5, 0.9), (0.1, 0.1), 4) == ((0.5, 0.9), False)


# ---- windows and float limit (no training) ----------------------------------------------------

def test_frame_count():
    assert frame_count(2, 2) == 7                # 2 decades = 6.64 halvings
    assert frame_count(1.3, 4) == 3 and frame_count(1.2, 4) == 2
    assert frame_count(2, 10) == 3               # exactly 2 steps, not 1.9999999
    assert frame_count(1, 2) == 4


def test_windows_shrink_by_factor_keep_aspect_and_nest():
    mnmx = (-1.0, 3.0, -1.0, 4.0)
    c = (3.9, 0.5)                                # near the right edge: first frames are shifted
    wins = frame_windows(mnmx, c, 2.0, 8)
    assert wins[0] == mnmx
    for k, (prev, w) in enumerate(zip(wins, wins[1:]), start=1):
        assert math.isclose((w[1] - w[0]) * 2**k, 4.0) and math.isclose((w[3] - w[2]) * 2**k, 5.0)
        assert prev[0] <= w[0] < w[1] <= prev[1] and prev[2] <= w[2] < w[3] <= prev[3]
        assert w[2] <= c[0] <= w[3] and w[0] <= c[1] <= w[1]
    # once small enough, the window is centred on the centre
    y0, y1, x0, x1 = wins[-1]
    assert math.isclose((x0 + x1) / 2, 3.9) and math.isclose((y0 + y1) / 2, 0.5)


def test_float_limit_counts_resolvable_frames():
    # linear axis, a window 900 ulps wide around 1.0 at 4 pixels: 300 ulps per pixel, then 150, 75
    w = 900 * EPS
    mnmx = (1.0, 1.0 + w, 1.0, 1.0 + w)
    wins = frame_windows(mnmx, (1.0 + w / 2, 1.0 + w / 2), 2.0, 5)
    n, ulps = resolvable_frames(wins, 4, "linear")
    assert n == 2 and ulps[0] == pytest.approx(300, rel=0.01) and ulps[2] < MIN_ULPS_APART
    assert np.all(np.diff(ulps) < 0)
    # log axis: exponent 2 +- tiny; the exponent's own rounding dominates (|v| ln10 > 1)
    assert Window(2.0, 2.0 + 1e-9, 2.0, 2.0 + 1e-9, "log").ulps_per_pixel(10) == pytest.approx(
        1e-9 / 9 / (2 * EPS), rel=1e-3)
    # the paper's window resolves ~12 decades of zoom at 64 pixels
    big = frame_windows((-1.0, 3.0, -1.0, 4.0), (1.5, 1.0), 10.0, 16)
    n, _ = resolvable_frames(big, 64, "log")
    assert 10 <= n <= 14
    # float32 training runs out far sooner
    assert resolvable_frames(big, 64, "log", "float32")[0] < 6


def test_interpolate_window_is_the_papers_geometric_zoom():
    w1 = (0.0, 8.0, 0.0, 4.0)
    w2 = (6.0, 8.0, 3.0, 4.0)                     # 1/4 the size, sharing the corner (8, 4)
    assert interpolate_window(w1, w2, 0.0) == pytest.approx(w1)
    assert interpolate_window(w1, w2, 1.0) == pytest.approx(w2)
    half = interpolate_window(w1, w2, 0.5)
    assert half == pytest.approx((4.0, 8.0, 2.0, 4.0))   # width 8 * 0.25**0.5, fixed point kept
    # a pixel half a pixel beyond the window on each side
    assert pixel_extent((0.0, 3.0, 0.0, 1.0), (2, 4)) == pytest.approx((-0.5, 3.5, -0.5, 1.5))


def test_densest_boundary_pixel_is_deterministic():
    e = np.zeros((20, 20), bool)
    e[2, 2] = True                                # isolated
    e[10:13, 14:17] = True                        # a dense blob: its middle wins
    assert densest_boundary_pixel(e) == (11, 15)
    e2 = np.zeros((9, 9), bool)
    e2[1, 1] = e2[7, 7] = e2[4, 4] = True         # a tie: the pixel nearest the middle
    assert densest_boundary_pixel(e2) == (4, 4)


def _est(d, lo, hi, ok=True):
    sizes = np.array([4, 6, 8, 12, 16])
    return DimensionEstimate(dimension=d if ok else None, ci_low=lo if ok else None,
                             ci_high=hi if ok else None, sizes=sizes,
                             counts=np.array([100., 60, 40, 25, 16]), local_slopes=np.ones(4),
                             slope_sizes=np.ones(4), fit_sizes=sizes[:4] if ok else np.zeros(0, int),
                             method="box-ols", n_boundary_pixels=300, ok=ok,
                             reason="" if ok else "boundary too short for a dimension at this resolution")


def test_pooled_dimension():
    p = pooled_dimension([_est(1.4, 1.3, 1.5), _est(1.6, 1.2, 2.0), _est(None, None, None, ok=False)])
    assert p.ok and p.method == "zoom-weighted-mean" and p.n_frames == 3
    # weights 1 : 1/16 -> (1.4 + 1.6/16) / (1 + 1/16)
    assert p.dimension == pytest.approx((1.4 + 1.6 / 16) / (1 + 1 / 16))
    # the weighted half-widths (16 x 0.1 + 0.4) / 17 on both sides, widened to every frame's value
    assert p.ci_low == pytest.approx(p.dimension - 2.0 / 17) and p.ci_high == pytest.approx(1.6)
    assert p.extra["frames_used"] == [0, 1]
    assert json.dumps(p.to_dict())
    none = pooled_dimension([_est(None, None, None, ok=False)] * 2)
    assert not none.ok and none.dimension is None
    assert none.reason.startswith("no zoom frame has a dimension estimate")


# ---- a real run and its zoom --------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoombase")
    assert main(["run", *BASE, "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def zoomed(base_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("zoomout") / "z"
    assert main(["zoom", str(base_run), *ZOOM, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_auto_center_lies_on_a_boundary_pixel(base_run, zoomed):
    cfg, smap = score_map_of(base_run)
    edges = boundary(smap)
    cx, cy = auto_center(cfg, smap)
    u, v = Window.of(cfg).to_unit(np.array([[cx, cy]]))[0]
    j, i = int(math.floor(u * (cfg.resolution - 1))), int(math.floor(v * (cfg.resolution - 1)))
    assert edges[i, j]
    info = json.loads((zoomed / "zoom.json").read_text())
    assert info["center"] == {"x": cx, "y": cy, "source": "auto"}


@pytest.mark.slow
def test_zoom_end_to_end(base_run, zoomed, capsys):
    assert_picture(zoomed / "dimension_per_frame.png")
    for name in ["zoom.mp4", "zoom.gif"]:
        assert_animation(zoomed / name)
    info = json.loads((zoomed / "zoom.json").read_text())
    assert info["n_frames"] == 3 and info["factor"] == 4.0 and len(info["frames"]) == 3
    assert not info["float_limit"]["stopped_early"]
    run_cfg = config_from_toml(base_run / "config.toml")
    c = (info["center"]["x"], info["center"]["y"])
    prev = None
    for k, fr in enumerate(info["frames"]):
        fdir = zoomed / fr["dir"]
        assert fr["dir"] == f"frames/frame_{k:02d}"
        for name in ["config.toml", "fractal.json", "summary.json"]:
            assert (fdir / name).is_file(), (k, name)
        assert_picture(fdir / "map.png", min_ink=0.3, outcomes=True)     # centred on the boundary
        assert_picture(fdir / "boundary.png")
        assert RunStore.open(fdir / "store.zarr").complete
        cfg = config_from_toml(fdir / "config.toml")
        assert list(cfg.mnmx) == fr["mnmx"]
        assert cfg.replace(mnmx=run_cfg.mnmx).to_dict() == run_cfg.to_dict()   # only mnmx differs
        window = Window.of(cfg)
        fc = (fr["center"]["x"], fr["center"]["y"])
        assert window.contains(*fc)
        if k == 0:
            assert fc == c
        else:                   # the automatic centre follows the boundary: both signs in view
            smap = score_map_of(fdir)[1]
            assert (smap > 0).any() and (smap <= 0).any(), k
        if prev is not None:                       # shrinks by the factor, inside the last frame
            assert np.divide(prev.size, window.size) == pytest.approx([4.0, 4.0])
            assert prev.contains(window.x0, window.y0) and prev.contains(window.x1, window.y1)
        prev = window
        d = fr["dimension"]
        assert d["method"] == "box-ols" and "ok" in d and "ci_low" in d
        frame_final = json.loads((fdir / "fractal.json").read_text())["final"]
        assert frame_final["dimension"] == d["dimension"] and frame_final["ok"] == d["ok"]
    assert info["frames"][0]["copied_from_run"] and info["frames"][0]["mnmx"] == list(run_cfg.mnmx)
    for key in ("pooled", "pooled_paper"):
        est = info[key]
        assert {"dimension", "ci_low", "ci_high", "ok", "reason", "n_frames"} <= set(est)
        assert est["n_frames"] == 3
        assert est["ok"] or est["reason"]
    assert info["pooled"]["method"] == "zoom-weighted-mean"
    assert info["pooled_paper"]["method"] == "paper-median"
    import imageio.v2 as imageio
    reader = imageio.get_reader(zoomed / "zoom.mp4")
    assert reader.count_frames() == 6 + 2 * 12 + 12          # hold, 2 transitions, hold
    reader.close()
    gif = imageio.mimread(zoomed / "zoom.gif")               # (repeated frames are merged)
    assert len(gif) >= 2 * 12 - 1 and gif[0].shape[:2] == (400, 400)
    # `nnfractal dimension` on a zoom folder reports the pooled estimates
    assert main(["dimension", str(zoomed), "--method", "paper"]) == 0
    out = capsys.readouterr().out
    assert str(zoomed) in out
    again = json.loads((zoomed / "zoom.json").read_text())
    assert again["pooled_paper"] == info["pooled_paper"]


def _tiny_run(path, **overrides):
    """A 4x4 run of the MLP preset, 5 steps (about a second of training and drawing)."""
    from nnfractal.runner.run import execute
    cfg = build_config("paper-tanh", **{"resolution": 4, "steps": 5, **overrides})
    return execute(cfg, path, progress=False, log=lambda *_: None)


@pytest.mark.slow
def test_zoom_stops_where_float64_runs_out(tmp_path, capsys):
    w = 900 * EPS                                   # 300 ulps per pixel at 4 pixels
    run = _tiny_run(tmp_path / "tiny", axis_scale="linear", mnmx=[1.0, 1.0 + w, 1.0, 1.0 + w])
    out = tmp_path / "z"
    code = main(["zoom", str(run), "--factor", "2", "--depth", "1", "--out", str(out),
                 "--center", repr(1.0 + w / 2), repr(1.0 + w / 2), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [ln for ln in captured.out.splitlines() if "runs out of digits" in ln]
    assert len(lines) == 1 and "float64" in lines[0] and "decade 0.60" in lines[0]
    info = json.loads((out / "zoom.json").read_text())
    assert info["n_frames"] == 2 and info["n_frames_requested"] == 4
    assert info["float_limit"]["stopped_early"] and info["float_limit"]["message"] == lines[0]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_00", "frame_01"]
    assert (out / "zoom.mp4").exists() and (out / "frames/frame_00/map.png").exists()


# ---- refused inputs: one line, exit 2, nothing written -----------------------------------------

def _bad_cases(base_run, tmp):
    incomplete = tmp / "incomplete"                         # a copy of the run, marked unfinished
    incomplete.mkdir()
    shutil.copy2(base_run / "config.toml", incomplete / "config.toml")
    shutil.copytree(base_run / "store.zarr", incomplete / "store.zarr")
    RunStore.open(incomplete / "store.zarr", mode="r+").update_attrs(complete=False)
    (tmp / "full").mkdir()
    (tmp / "full" / "notes.txt").write_text("mine")
    r = str(base_run)
    return [
        ([str(tmp / "nope")], "run_dir"),
        ([str(incomplete)], "run_dir"),
        ([str(tmp / "full")], "run_dir"),                    # not a run folder
        ([r, "--center", "7", "1"], "center"),
        ([r, "--center", "1", "-4"], "center"),
        ([r, "--depth", "0"], "depth"),
        ([r, "--depth", "-1"], "depth"),
        ([r, "--depth", "0.1"], "depth"),                    # less than one step of factor 2
        ([r, "--factor", "1"], "factor"),
        ([r, "--factor", "0.5"], "factor"),
        ([r, "--factor", "nan"], "factor"),
        ([r, "--resolution", "1"], "resolution"),
        ([r, "--resolution", "100000"], "resolution: 100000 makes"),    # the budget (budget.py)
        ([r, "--resolution", "2000", "--max-storage", "0.01"], "more than --max-storage 0.01"),
        ([r, "--out", str(tmp / "full")], "out"),
        ([r, "--factor", "abc"], "--factor"),               # argparse: not a number
    ]


@pytest.mark.slow
def test_bad_inputs_one_line_exit_2_nothing_written(base_run, tmp_path, capsys):
    cases = _bad_cases(base_run, tmp_path)
    watched = [base_run.parent, tmp_path]
    before = [tree(p) for p in watched]
    for args, field in cases:
        if field.startswith("--"):
            with pytest.raises(SystemExit) as exc:
                main(["zoom", *args, "--out", str(tmp_path / "z"), "--no-progress"])
            code, err = exc.value.code, capsys.readouterr().err
        else:
            extra = [] if "--out" in args else ["--out", str(tmp_path / "z")]
            code, err = run_cli(["zoom", *args, *extra, "--no-progress"], capsys)
        lines = err.strip().splitlines()
        assert code == 2, (args, err)
        assert len(lines) == 1 and lines[0].startswith("nnfractal: error:"), (args, err)
        assert lines[0].startswith(f"nnfractal: error: {field}:") or field in lines[0], (args, err)
        assert [tree(p) for p in watched] == before, args
    # the message says where the centre may go
    code, err = run_cli(["zoom", str(base_run), "--center", "7", "1", "--out",
                         str(tmp_path / "z")], capsys)
    assert "(allowed: x in [-3.0, 6.0], y in [-3.0, 6.0]" in err
    # the default output folder (beside the run) is not created either
    code, err = run_cli(["zoom", str(base_run), "--depth", "0"], capsys)
    assert code == 2 and not list(base_run.parent.glob("*-zoom-*"))


# ---- the first zoom of a new user: the main boundary, said before training, titled frames ------

def test_auto_center_is_on_the_main_boundary_not_an_isolated_patch():
    """A dense isolated patch of mixed pixels (denser than any stretch of the main boundary) must
    not attract the zoom: the centre sits on the largest connected boundary."""
    cfg = build_config("paper-tanh", resolution=64, mnmx=(0.0, 1.0, 0.0, 1.0))
    scores = np.where(np.arange(64)[None, :] < 40, -1.0, 1.0) * np.ones((64, 1))
    patch = np.indices((6, 6)).sum(0) % 2 == 0        # a checkerboard: every pixel is boundary
    scores[4:10, 4:10] = np.where(patch, 1.0, -1.0)
    edges = boundary(scores)
    assert densest_boundary_pixel(edges)[1] < 16        # the plain rule picks the patch
    cx, cy = auto_center(cfg, scores)
    assert abs(cx - 39.5 / 63) < 0.02                   # on the main boundary (columns 39 | 40)


def _png_title(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.text.get("Title", "")


@pytest.mark.slow
def test_zoom_warns_before_training_says_decades_honestly_and_titles_frames(tmp_path, capsys):
    run = _tiny_run(tmp_path / "run")
    out = tmp_path / "z"
    code = main(["zoom", str(run), "--factor", "2", "--decades", "0.7", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    log = capsys.readouterr().out
    warning = log.index("warning: each zoom frame of 4 x 4 px cannot give a fractal dimension")
    assert warning < log.index("[frame 1/2]")                         # before any training
    assert "0.60 decades reached of 0.7 asked" in log and "--depth 0.90 adds a frame" in log
    assert "auto: densest point of the largest connected boundary" in log
    titles = [_png_title(out / "frames" / f"frame_{k:02d}" / "map.png") for k in range(3)]
    assert [t.split("zoom frame ")[1].split(",")[0] for t in titles] == \
        ["0/2: x1 (0.00 decades)", "1/2: x2 (0.30 decades)", "2/2: x4 (0.60 decades)"]
# ---- Ctrl-C and SIGTERM ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow_chunk_run(tmp_path_factory):
    """A finished run whose zoom frames are one chunk of 64 models that takes a few seconds."""
    out = tmp_path_factory.mktemp("sigbase") / "run"
    assert main(["run", "--preset", "paper-single", "--resolution", "4", "--steps", "600",
                 "--tile_batch", "64", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_zoom_after_the_current_chunk_and_resume_finishes_it(
        slow_chunk_run, tmp_path, sig, capsys):
    """Ctrl-C or SIGTERM while frame 0 trains (one chunk per frame): the chunk finishes and is
    kept, no other frame starts, exit 130 with the resume line; --resume trains the rest."""
    out = tmp_path / "z"
    code, text = interrupt_at(
        ["zoom", str(slow_chunk_run), "--resolution", "8", "--factor", "2", "--depth", "0.7",
         "--center", "1.5", "1.0", "--out", str(out), "--no-progress"],
        lambda line: line.startswith("[frame 0/2] training"), sig)
    assert code == 130, text
    assert "stopping after the current chunk" in text
    assert "[frame 1/2]" not in text, text                   # no other frame was trained
    assert f"resume with: nnfractal zoom --resume {out}" in text.splitlines()[-1], text
    assert RunStore.open(out / "frames/frame_00/store.zarr").complete   # the chunk is kept
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_00"]
    assert not (out / "zoom.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["z"]    # no .z.* staged folder either
    capsys.readouterr()
    assert main(["zoom", "--resume", str(out), "--no-progress"]) == 0
    log = capsys.readouterr().out
    assert "[frame 0/2] training" not in log and "[frame 1/2] training" in log
    info = json.loads((out / "zoom.json").read_text())
    assert info["complete"] and [fr["dir"] for fr in info["frames"]] == \
        ["frames/frame_00", "frames/frame_01", "frames/frame_02"]


def _curves(frame_dir):
    store = RunStore.open(frame_dir / "store.zarr")
    return {m: store.read_curves(m) for m in store.metrics}


@pytest.mark.slow
def test_a_failed_zoom_keeps_its_frames_and_resumes_to_the_same_numbers(base_run, zoomed, tmp_path,
                                                                       capsys, monkeypatch):
    """Frame 0 is the run (copied); each 16 px frame is one tile, whose first attempt the test
    hook fails: the zoom stops at frame 1, a resume (hook still on) finishes frame 1 and stops at
    frame 2 with frames 0 and 1 kept, a last resume finishes it: the same windows, dimensions and
    curves as the uninterrupted zoom, bit for bit."""
    out = tmp_path / "z"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "0")
    code, err = run_cli(["zoom", str(base_run), *ZOOM, "--out", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("nnfractal: error: training stopped")
    assert err.strip().endswith(f"(resume with: nnfractal zoom --resume {out})"), err
    assert (out / "zoom_plan.json").exists() and not (out / "zoom.json").exists()
    assert (out / "frames/frame_00/summary.json").exists()
    code, err = run_cli(["zoom", str(base_run), *ZOOM, "--out", str(out)], capsys)   # again
    assert code == 2 and err.strip() == (f"nnfractal: error: out: {out} holds an unfinished zoom "
                                         f"(resume with: nnfractal zoom --resume {out})"), err
    code, err = run_cli(["zoom", "--resume", str(out), "--no-progress"], capsys)
    assert code == 2 and f"resume with: nnfractal zoom --resume {out}" in err, err
    assert (out / "frames/frame_01/summary.json").exists()            # finished and kept
    assert not RunStore.open(out / "frames/frame_02/store.zarr").complete
    kept = _curves(out / "frames/frame_01")
    monkeypatch.delenv("NNFRACTAL_TEST_FAIL_TILE")
    assert main(["zoom", "--resume", str(out), "--no-progress"]) == 0
    log = capsys.readouterr().out
    assert "[frame 1/2] training" not in log and "[frame 2/2] training" in log
    a = json.loads((zoomed / "zoom.json").read_text())
    b = json.loads((out / "zoom.json").read_text())
    assert a["frames"] == b["frames"] and a["pooled"] == b["pooled"]     # windows, dimensions
    assert a["center"] == b["center"] and b["complete"]
    for fr in a["frames"]:
        want, got = _curves(zoomed / fr["dir"]), _curves(out / fr["dir"])
        assert want.keys() == got.keys()
        for m in want:
            assert np.array_equal(want[m], got[m], equal_nan=True), (fr["dir"], m)
    for m, c in kept.items():                          # frame 1 was not trained again
        assert np.array_equal(c, _curves(out / "frames/frame_01")[m], equal_nan=True)
    # a finished zoom resumed again: nothing trained or drawn, nothing changed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["zoom", "--resume", str(out), "--no-progress"]) == 0
    assert "is complete: nothing to train or draw" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.slow
def test_resume_refusals_one_line_exit_2_nothing_written(base_run, zoomed, tmp_path, capsys):
    from nnfractal.storage.run_folder import lock_file
    z = str(zoomed)
    cases = [
        (["--resume", z, "--factor", "2"], "factor"),
        (["--resume", z, "--depth", "1"], "depth"),
        (["--resume", z, "--center", "1", "1"], "center"),
        (["--resume", z, "--resolution", "8"], "resolution"),
        (["--resume", z, "--out", str(tmp_path / "o")], "out"),
        (["--resume", z, "--max-storage", "1"], "max_storage"),
        ([str(base_run), "--resume", z], "run_dir"),
        (["--resume", str(base_run)], "resume"),                 # a run, not a zoom
        (["--resume", str(tmp_path / "nope")], "resume"),
        ([], "run_dir"),
    ]
    watched = [base_run.parent, zoomed, tmp_path]
    before = [tree(p) for p in watched]
    for args, field in cases:
        code, err = run_cli(["zoom", *args, "--no-progress"], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (args, err)
        assert lines[0].startswith(f"nnfractal: error: {field}:"), (args, err)
        assert [tree(p) for p in watched] == before, args
    # a second process on the same zoom is refused by the lock
    with lock_file(zoomed / "zoom_plan.json", zoomed):
        code, err = run_cli(["zoom", "--resume", z, "--no-progress"], capsys)
    assert code == 2 and "is being trained by another nnfractal process" in err, err
    assert [tree(p) for p in watched] == before


def test_deep_frames_tick_labels_read_differently():
    """A frame 5 decades deep spans a relative 1e-5 of its values: its tick labels get the digits
    that tell them apart (3 digits labelled every tick of such a frame '22.5')."""
    import matplotlib.pyplot as plt

    from nnfractal.render.maps import value_axes
    fig, ax = plt.subplots()
    lo = math.log10(22.4601)
    ax.imshow(np.zeros((4, 4)), extent=(lo, lo + 1e-5, lo, lo + 1e-5), aspect="auto")
    value_axes(ax, "log")
    fig.canvas.draw()
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
        assert all(lab.startswith("22.46") for lab in labels), labels
    ax.set_xlim(0, 2)                                   # a wide window keeps short labels
    fig.canvas.draw()
    assert all(len(t.get_text()) <= 5 for t in ax.xaxis.get_ticklabels()), \
        [t.get_text() for t in ax.xaxis.get_ticklabels()]
    plt.close(fig)


@pytest.mark.slow
def test_a_frame_refused_before_any_training_leaves_nothing(tmp_path, capsys):
    """A refusal that only a frame finds (its data) comes after the zoom's folder exists: with no
    frame trained yet, the folder is removed again (frame 0 copied or trained alike)."""
    run = tmp_path / "mnist-run"
    assert main(["run", "--preset", "mlp300-mnist", "--resolution", "4", "--steps", "2",
                 "--train-size", "64", "--batch_size", "0", "--out", str(run),
                 "--no-progress"]) == 0
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    capsys.readouterr()
    for extra in ([], ["--resolution", "3"]):            # frame 0 copied / frame 0 trained
        code, err = run_cli(["zoom", str(run), "--factor", "2", "--depth", "0.7", "--center",
                             "-3.5", "-3.5", "--out", str(tmp_path / "z"), "--data-dir",
                             str(not_a_dir), "--no-progress", *extra], capsys)
        assert code == 2 and err.strip().splitlines() == [
            f"nnfractal: error: data_dir: {not_a_dir} is a file, not a directory"], err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mnist-run"], extra
