"""nnfractal report: one self-contained HTML page per run, zoom or comparison folder.

Every report is parsed (html.parser: embedded pictures and videos only, no script, no external
reference) and opened in headless Chromium (no console errors, the H.264 videos load).
"""
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import chromium_page

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.report import REPORT_NAME, write_report
from nnfractal.runner.run import execute
from nnfractal.window import Window

# ---- helpers shared with test_compare.py -------------------------------------------------------

class Page(HTMLParser):
    """Everything a report test looks at: tags, attributes, section ids, text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.attrs, self.ids, self.text = [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.attrs.append((tag, a))
        if "id" in a:
            self.ids.append(a["id"])

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag):
        return [a for t, a in self.attrs if t == tag]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def parse_report(path: Path) -> Page:
    """Parse a report and check that it is self-contained; returns the parsed page."""
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = Page(text)
    assert "script" not in page.tags                      # no JavaScript at all
    for tag, a in page.attrs:
        for key in ("src", "href"):
            value = a.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value[:80])
        if tag == "link":
            assert a.get("rel") == "icon" and a.get("href", "").startswith("data:"), a
    for a in page.all("img"):
        assert a["src"].startswith("data:image/png;base64,") and len(a["src"]) > 1000
        assert a.get("alt")
    for a in page.all("video"):
        assert a["src"].startswith("data:video/mp4;base64,")
    assert "style" in page.tags
    return page


def browser_check(path: Path) -> dict:
    """Open a report in headless Chromium: console errors, page errors, requests, video state."""
    requests = []
    with chromium_page(1280) as (page, problems):
        page.on("request", lambda r: requests.append(r.url))
        page.goto(Path(path).resolve().as_uri())
        n_videos = page.evaluate("document.querySelectorAll('video').length")
        if n_videos:
            page.wait_for_function("Array.from(document.querySelectorAll('video'))"
                                   ".every(v => v.readyState >= 1 || v.error)", timeout=20_000)
        videos = page.evaluate(
            "Array.from(document.querySelectorAll('video')).map(v => ({ready: v.readyState, "
            "duration: v.duration, width: v.videoWidth, error: v.error ? v.error.code : null}))")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({done: i.complete, w: i.naturalWidth}))")
        page.wait_for_timeout(300)
    return {"problems": problems, "videos": videos, "images": images,
            "requests": [u for u in requests if not u.startswith("data:")]}


def assert_opens_cleanly(path: Path, min_videos: int = 0) -> dict:
    result = browser_check(path)
    assert result["problems"] == []
    assert result["requests"] == [Path(path).resolve().as_uri()]     # nothing but the page itself
    assert all(i["done"] and i["w"] > 0 for i in result["images"]), result["images"]
    assert len(result["videos"]) >= min_videos
    for v in result["videos"]:                                   # H.264 decodes: metadata, frames
        assert v["error"] is None and v["ready"] >= 1 and v["duration"] > 0 and v["width"] > 0, v
    return result


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "run"
    cfg = build_config("paper-tanh", resolution=8, steps=12)
    return execute(cfg, out, progress=False, log=lambda *_: None)


# ---- run reports -------------------------------------------------------------------------------

@pytest.mark.slow
def test_run_report_is_self_contained_and_complete(tiny_run):
    path = write_report(tiny_run)
    assert path == tiny_run / REPORT_NAME
    page = parse_report(path)
    for sid in ("summary", "maps", "dimension", "config", "hardware"):
        assert sid in page.ids
    alts = [a["alt"] for a in page.all("img")]
    assert any("convergence map" in a for a in alts)
    assert {"boundary", "box counting", "dimension per epoch"} <= set(alts)
    assert len(page.all("video")) == 1
    text = page.plain
    assert "paper-tanh" in text and "lr_vs_lr" in text                 # the config
    assert "cpu" in text and "model-steps/s" in text and "torch" in text  # hardware and timing
    assert "box counting, least squares" in text and "paper: median local slope" in text
    assert "boundary too short" in text                                 # 8 px: no number, says why


@pytest.mark.slow
@pytest.mark.browser
def test_run_report_opens_in_chromium_and_video_plays(tiny_run):
    path = write_report(tiny_run)
    assert_opens_cleanly(path, min_videos=1)


@pytest.mark.slow
def test_report_command(tiny_run, tmp_path, capsys):
    out = tmp_path / "elsewhere.html"
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    parse_report(out)


def _everything(root: Path) -> dict:
    return {p.relative_to(root): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


@pytest.mark.slow
@pytest.mark.parametrize("case,expect", [
    ("user_file", "exists and is not a report nnfractal wrote (allowed: a new file, a report of "
                  "ours, or --force to replace it)"),
    ("folder", "is a folder"),
    ("missing_parent", "does not exist or is not a folder"),
])
def test_report_out_never_replaces_a_file_that_is_not_ours(tiny_run, tmp_path, capsys, case,
                                                           expect):
    """report --out: a user's file, a folder or a missing parent is one line, exit 2, and
    nothing changes (no temporary file either)."""
    out = {"user_file": tmp_path / "notes.html", "folder": tmp_path / "emptydir",
           "missing_parent": tmp_path / "nowhere" / "r.html"}[case]
    if case == "user_file":
        out.write_text("<p>my own notes</p>")
    if case == "folder":
        out.mkdir()
    before = _everything(tmp_path)
    assert main(["report", str(tiny_run), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnfractal: error: out: ") and expect in lines[0]
    assert _everything(tmp_path) == before


@pytest.mark.slow
def test_report_out_replaces_its_own_report_and_a_user_file_only_with_force(tiny_run, tmp_path,
                                                                           capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    first = out.read_bytes()
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0    # ours: replaced
    assert out.read_bytes() != b"" and parse_report(out)
    mine = tmp_path / "mine.html"
    mine.write_text("keep me")
    assert main(["report", str(tiny_run), "--out", str(mine), "--force"]) == 0
    assert mine.read_bytes()[:15] == first[:15] == b"<!DOCTYPE html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.html", "r.html"]


@pytest.mark.slow
@pytest.mark.parametrize("make", ["missing", "empty", "foreign"])
def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys, make):
    target = tmp_path / "x"
    if make != "missing":
        target.mkdir()
    if make == "foreign":
        (target / "notes.txt").write_text("hello")
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnfractal: error: run_dir:") and err.count("\n") == 1
    assert not (target / REPORT_NAME).exists()


@pytest.mark.slow
def test_several_metrics_are_shown_side_by_side(tmp_path):
    """A run recording train/test loss and accuracy shows every metric's map and dimension."""
    cfg = build_config("mlp300-mnist", resolution=4, num_epochs=2, train_size=200, width=16,
                       test_size=100)
    run = execute(cfg, tmp_path / "mm", progress=False, log=lambda *_: None)
    fractal = json.loads((run / "fractal.json").read_text())
    assert set(fractal["metrics"]) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    page = parse_report(write_report(run))
    alts = [a["alt"] for a in page.all("img")]
    maps = [a for a in alts if a.startswith("map of ")]
    assert maps == ["map of train_loss", "map of test_loss", "map of train_acc", "map of test_acc"]
    assert {"boundary of train_loss", "boundary of test_loss", "boundary of test_acc"} <= set(alts)
    text = page.plain
    assert text.count("box counting, least squares") == 4
    assert "(the run’s metric)" in text or "(the run's metric)" in text


# ---- zoom reports ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.browser
def test_zoom_report(tiny_run, tmp_path):
    from nnfractal.studies.zoom import zoom
    out = zoom(tiny_run, factor=2, depth=0.31, center=Window.of(build_config("paper-tanh")).centre,
               out=tmp_path / "zoom", progress=False, log=lambda *_: None)
    info = json.loads((out / "zoom.json").read_text())
    page = parse_report(write_report(out))
    for sid in ("summary", "zoom", "frames", "gallery", "config", "hardware"):
        assert sid in page.ids
    alts = [a["alt"] for a in page.all("img")]
    assert [a for a in alts if a.startswith("frame ")] == [f"frame {i}" for i in range(info["n_frames"])]
    assert "dimension per frame" in alts
    assert "pooled dimension" in page.plain
    assert_opens_cleanly(out / REPORT_NAME, min_videos=1)           # zoom.mp4


# ---- comparison report on synthetic numbers ----------------------------------------------------

def synthetic_compare(folder: Path, dims_a, dims_b, half: float = 0.05) -> Path:
    """A comparison folder made of numbers only (no run folders): compare.json + its bar chart."""
    from nnfractal.render.compare_plots import plot_dimension_bars
    from nnfractal.studies.compare import FORMAT, FORMAT_VERSION, analyse
    from nnfractal.studies.comparison import BoxUnit
    units = []
    for preset, dims in (("arch-a", dims_a), ("arch-b", dims_b)):
        for k, d in enumerate(dims):
            est = {"dimension": d, "ci_low": d - half, "ci_high": d + half, "ok": True, "reason": "",
                   "n_boundary_pixels": 500}
            units.append({"preset": preset, "label": preset, "depth": 20, "sweep_depth": None,
                          "seed_index": k // 2, "seed": k // 2, "window": k % 2,
                          "dir": f"{preset}/seed{k // 2}/window{k % 2}",
                          "mnmx": [-2.0, 0.5, -3.0, 1.0], "dimension": est,
                          "fraction_converged": 0.5, "wall_time_s": 1.0})
    labels = {"arch-a": "arch-a (residual)", "arch-b": "arch-b (plain)"}
    res = analyse([BoxUnit.from_json(u) for u in units], ("arch-a", "arch-b"), labels, None, 2)
    res = res.to_json()
    folder.mkdir(parents=True)
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "presets": ["arch-a", "arch-b"],
            "labels": labels, "settings": {"seeds": 3, "windows": 2, "factor": 2.0, "depths": None,
                                           "seed_values": [0, 1, 2]},
            "configs": {"arch-a": build_config("resnet20-mnist").to_dict(),
                        "arch-b": build_config("plain20-mnist").to_dict()},
            "config_difference": {"skip": [True, False]}, "arch_fields": ["skip"], "notes": [],
            "units": units, "results": [res], "main_depth": None,
            "difference": res["difference"], "verdict": res["difference"]["verdict"],
            "sentence": res["difference"]["sentence"], "timing": {}, "hardware": {}}
    (folder / "compare.json").write_text(json.dumps(info))
    plot_dimension_bars(res, ["arch-a", "arch-b"], folder / "compare_dimensions.png")
    return folder


@pytest.mark.slow
@pytest.mark.browser
def test_compare_report_shows_the_verdict_and_the_table(tmp_path):
    rng = np.random.default_rng(0)
    folder = synthetic_compare(tmp_path / "cmp", list(1.30 + 0.01 * rng.standard_normal(6)),
                               list(1.60 + 0.01 * rng.standard_normal(6)))
    page = parse_report(write_report(folder))
    text = page.plain
    assert "arch-a: smaller dimension" in text
    assert "has a smaller fractal dimension than" in text
    assert "pooled" in text and "difference D(A)" in text
    assert "6 of 6 grids" in text
    assert "dimensions" in [a["alt"] for a in page.all("img")]
    assert "dims" in page.ids and "grids" in page.ids
    assert_opens_cleanly(folder / REPORT_NAME)


@pytest.mark.slow
def test_compare_report_no_difference(tmp_path):
    dims = [1.40, 1.45, 1.42, 1.47, 1.43, 1.44]
    folder = synthetic_compare(tmp_path / "cmp", dims, dims[::-1], half=0.1)
    text = parse_report(write_report(folder)).plain
    assert "No difference detectable at this resolution" in text


@pytest.mark.slow
def test_report_does_not_copy_anything_or_write_elsewhere(tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    before = sorted(p.name for p in copy.iterdir())
    write_report(copy)
    after = sorted(p.name for p in copy.iterdir())
    assert set(after) - set(before) <= {REPORT_NAME}


@pytest.mark.slow
def test_skipped_browser_tests_are_said_and_fail_the_run(pytester, monkeypatch):
    """Without Chromium the run says, in its summary, that the browser tests were skipped and
    how to install it, and is not green unless NNFRACTAL_ALLOW_NO_BROWSER=1 accepts that."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_page="""
        import pytest
        def test_in_browser():
            pytest.skip("no Chromium to drive: Executable doesn't exist")
        def test_plain():
            pass
    """)
    monkeypatch.delenv("NNFRACTAL_ALLOW_NO_BROWSER", raising=False)
    result = pytester.runpytest_subprocess("-q")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*1 BROWSER TESTS SKIPPED: no Chromium*",
                                 "*sudo apt install chromium*"])
    monkeypatch.setenv("NNFRACTAL_ALLOW_NO_BROWSER", "1")
    result = pytester.runpytest_subprocess("-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*1 BROWSER TESTS SKIPPED: no Chromium*"])


@pytest.mark.slow
def test_a_run_at_chance_says_so_in_summary_and_report(tmp_path):
    """A loss map whose networks learned nothing (median accuracy at chance) says plainly that
    'converged' only means the loss did not blow up: in summary.json and in the report."""
    cfg = build_config("mlp300-mnist", resolution=4, num_epochs=1, train_size=200, width=16,
                       test_size=100, metric="train_loss", mnmx=(-7.0, -6.0, -4.0, -3.0))
    run = execute(cfg, tmp_path / "chance", progress=False, log=lambda *_: None,
                  report=write_report)
    summary = json.loads((run / "summary.json").read_text())
    assert max(v for k, v in summary["final_metrics_median"].items() if k.endswith("acc")) < 0.25
    notes = summary["notes"]
    assert any("median final accuracy is at chance" in n for n in notes), notes
    assert any("below the 96 px per side" in n for n in notes), notes   # 4 px: no dimension
    html = (run / "report.html").read_text()
    assert "median final accuracy is at chance" in html and "did not blow up" in html


def test_chance_note_only_for_loss_maps_near_chance():
    from nnfractal.estimators.resolution import chance_note
    assert chance_note({"train_acc": 0.125, "test_acc": 0.11}, 0.68, "train_loss").startswith(
        "median final accuracy is at chance (test_acc 0.110, train_acc 0.125; chance 0.10): 68%")
    assert chance_note({"train_acc": 0.9}, 0.68, "train_loss") == ""          # they learned
    assert chance_note({"train_acc": 0.1}, 0.1, "train_acc") == ""            # an accuracy map
    assert chance_note({"train_loss": 0.3}, 0.5, "train_loss") == ""          # regression


def test_map_colours_tell_converged_from_diverged_and_say_so():
    """Converged pixels are blue and diverged ones red, also right at the boundary (no pale
    look-alikes, no white); the colour bar names both ends; accuracy maps say 'below threshold'."""
    from nnfractal.render.maps import MAP_CMAP, cdf_restretch, colorbar_labels, map_figure, outcome_words
    scores = np.concatenate([-np.geomspace(1e-3, 5, 500), np.geomspace(1e-3, 5, 500)])
    rgb = MAP_CMAP((cdf_restretch(scores) + 1) / 2)[:, :3]
    conv, div = rgb[:500], rgb[500:]
    assert np.all(conv[:, 2] > conv[:, 0] + 0.1)            # blue dominates, nearest ones too
    assert np.all(div[:, 0] > div[:, 2] + 0.1)              # red dominates
    assert not np.any(rgb.min(axis=1) > 0.97)               # no white pixel
    assert colorbar_labels("train_acc", "paper", 0.3)[1] == "just below 0.3"
    assert outcome_words("test_acc", 0.9)[1] == "below threshold 0.9"
    assert "diverged" not in " ".join(outcome_words("train_acc") + colorbar_labels("train_acc"))
    fig = map_figure(scores.reshape(20, 50), (0, 1, 0, 1), "log10 x", "log10 y", "log",
                     metric="train_acc", acc_threshold=0.3)
    bar = fig.axes[1]                                        # the colour bar
    labels = [t.get_text() for t in bar.get_yticklabels()]
    assert labels == ["lowest accuracy", "just below 0.3", "just above 0.3", "highest accuracy"]
# ---- dimension --fit-range ---------------------------------------------------------------------

def _strict_json(path: Path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.slow
@pytest.mark.parametrize("fit", [["1", "inf"], ["0.5", "4"], ["4", "2"], ["nan", "3"]])
def test_dimension_refuses_a_bad_fit_range_and_changes_nothing(tiny_run, tmp_path, capsys, fit):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    before = _everything(run)
    assert main(["dimension", str(run), "--fit-range", *fit]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnfractal: error: fit_range: ") and \
        "(allowed: two finite box sizes in pixels, 1 <= S_MIN < S_MAX)" in lines[0]
    assert _everything(run) == before


@pytest.mark.slow
def test_dimension_with_a_fit_range_keeps_the_estimators_too_short_rule(tiny_run, tmp_path,
                                                                        capsys):
    """An 8-pixel map is too short for a dimension: a fit range does not make one up, except
    with --force, and then the number is labelled; fractal.json stays strict JSON."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["dimension", str(run), "--fit-range", "1", "8"]) == 0
    assert f"{run}: boundary too short for a dimension at this resolution" in \
        capsys.readouterr().out
    info = _strict_json(run / "dimension-fit-1-8" / "fractal.json")    # a named analysis
    assert info["final"]["ok"] is False and info["final"]["dimension"] is None
    assert main(["dimension", str(run), "--fit-range", "1", "8", "--force", "--write"]) == 0
    printed = capsys.readouterr().out.strip()
    assert "[forced with --fit-range: the estimator's rule says boundary too short" in printed
    info = _strict_json(run / "fractal.json")
    assert info["final"]["extra"]["forced"] is True and info["fit_range"] == [1.0, 8.0]
