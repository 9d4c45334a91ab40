import os

import pytest
import torch

torch.set_num_threads(2)

pytest_plugins = ["pytester"]

# Browser tests (the report and the explorer in headless Chromium) skip with a reason starting
# with this; a run that skipped one is not green unless NNFRACTAL_ALLOW_NO_BROWSER=1 says so.
# Here, not in helpers.py: test_report.py runs this file alone in a pytester folder.
BROWSER_SKIP = "no Chromium to drive"
ALLOW_NO_BROWSER = "NNFRACTAL_ALLOW_NO_BROWSER"
_browser_skips: list[str] = []


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module (same numbers, measured bit for bit; on a shared 2-core
    machine two spinning OpenMP threads ran small chunks 10x slower). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(request, tmp_path_factory):
    """The uninterrupted run of the test module's ``CFG``, the whole grid as one tile, nothing
    drawn: its curves (rows, cols, steps), read back from the store."""
    from nnfractal.runner.run import execute
    from nnfractal.storage.store import RunStore
    out = tmp_path_factory.mktemp("ref") / "run"
    execute(request.module.CFG, out, progress=False, log=lambda *_: None, tile_rows=12, draw=False)
    return RunStore.open(out / "store.zarr").read_curves()


@pytest.fixture(scope="session")
def mnist_tiny():
    from nnfractal.training.data import load_mnist
    return load_mnist(train_size=32, test_size=64, seed=0, download=False)


QUICK = "not slow and not browser and not ray and not compile"


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true",
                     help=f"the quick loop: only the tests marked none of slow, browser, ray, compile "
                     f"(-m \"{QUICK}\")")


def pytest_configure(config):
    if config.getoption("--quick"):
        config.option.markexpr = f"({config.option.markexpr}) and {QUICK}" if config.option.markexpr else QUICK


def pytest_runtest_logreport(report):
    if report.skipped and BROWSER_SKIP in str(report.longrepr):
        _browser_skips.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _browser_skips and exitstatus == 0 and os.environ.get(ALLOW_NO_BROWSER) != "1":
        session.exitstatus = 1          # a green run means the browser tests ran


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _browser_skips:
        return
    allowed = os.environ.get(ALLOW_NO_BROWSER) == "1"
    terminalreporter.write_sep("=", f"{len(_browser_skips)} BROWSER TESTS SKIPPED: no Chromium",
                               red=not allowed, yellow=allowed, bold=True)
    terminalreporter.write_line(
        "The report and the explorer were not checked in a browser. Install Chromium "
        "(Debian/Ubuntu: sudo apt install chromium) and run again"
        + ("." if allowed else f", or set {ALLOW_NO_BROWSER}=1 to accept the skip (exit code 1 "
                               "until then)."))
