import os

import pytest
import torch

torch.set_num_threads(2)

pytest_plugins = ["pytester"]

# Browser tests (the report and the explorer in headless Chromium) skip with a reason starting
# with this; a run that skipped one is not green unless NNFRACTAL_ALLOW_NO_BROWSER=1 says so.
BROWSER_SKIP = "no Chromium to drive"
ALLOW_NO_BROWSER = "NNFRACTAL_ALLOW_NO_BROWSER"
_browser_skips: list[str] = []


@pytest.fixture(scope="session")
def mnist_tiny():
    from nnfractal.data import load_mnist
    return load_mnist(train_size=32, test_size=64, seed=0, download=False)


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
