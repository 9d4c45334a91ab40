"""Reports: one self-contained HTML page for any result folder, ``nnfractal report DIR``.

``write_report(folder) -> Path`` writes ``folder/report.html`` and returns its path. The kind of
folder is recognised by its contents (`folder_kind`), and each kind has its own module, which
renders from the folder's typed result:

* ``compare.json`` -- a comparison: report/compare.py (`studies.comparison`);
* ``zoom.json`` -- a zoom sequence: report/zoom.py (`studies.zoom_result.ZoomResult`);
* ``sample.json`` -- a sample: report/sample.py (`studies.sample.SampleResult`);
* ``config.toml`` + ``store.zarr`` -- a run: report/run.py.

html.py holds the toolkit and the style sheet, parts.py the sections reports share. The page
needs nothing but itself (html.py), so it can be mailed, archived or opened offline; writing it
only reads the folder (a box comparison whose drawing failed gets its figures drawn first).
"""
from __future__ import annotations

import os
from pathlib import Path

from nnfractal.storage import run_folder
from nnfractal.storage.folders import write_text_atomic
from nnfractal.storage.run_folder import REPORT_FILE, RunFolder
from nnfractal.studies.comparison import RESULT_FILE as COMPARE_FILE
from nnfractal.studies.sample import SAMPLE_JSON

from .compare import compare_report, redraw_missing_figures
from .html import is_our_report
from .run import run_report
from .sample import sample_report
from .zoom import zoom_report

__all__ = ["REPORT_NAME", "ReportError", "folder_kind", "build_html", "write_report",
           "write_report_safely", "check_report_out"]

REPORT_NAME = REPORT_FILE
RENDERERS = {"compare": compare_report, "zoom": zoom_report, "sample": sample_report,
             "run": run_report}


class ReportError(Exception):
    """A folder that is not a run, zoom or comparison. One line naming the field."""


def folder_kind(folder) -> str:
    """'compare', 'zoom', 'sample' or 'run'; raises ReportError for anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"run_dir: {folder} does not exist or is not a folder")
    for kind, name in (("compare", COMPARE_FILE), ("zoom", run_folder.ZOOM_FILE),
                       ("sample", SAMPLE_JSON)):
        if (folder / name).exists():
            return kind
    if RunFolder(folder).holds_run():
        return "run"
    raise ReportError(f"run_dir: {folder} is not a run, zoom or comparison folder (no config.toml "
                      "+ store.zarr, zoom.json or compare.json)")


def build_html(folder, display_path=None) -> str:
    """The report of a result folder as one HTML string."""
    folder = Path(folder)
    return RENDERERS[folder_kind(folder)](folder, display_path)


def write_report(folder, out: Path | None = None, *, display_path=None,
                 force: bool = False) -> Path:
    """Write the folder's report (default ``folder/report.html``) and return its path.

    `display_path`: the folder's name to print in the footer, when the report is written before
    the folder reaches its final place (as the box compare does). An explicit `out` is checked
    first (`check_report_out`): an existing file is replaced only if it is a report nnfractal
    wrote, or with `force`. Every output error is a ReportError naming ``out``.
    """
    folder = Path(folder)
    if out is not None:
        check_report_out(Path(out), force)
    if folder_kind(folder) == "compare":
        redraw_missing_figures(folder)
    text = build_html(folder, display_path)
    path = Path(out) if out is not None else folder / REPORT_NAME
    try:
        write_text_atomic(path, text)
    except OSError as err:
        if out is None:
            raise
        raise ReportError(f"out: cannot write {path} ({err.strerror or err})") from None
    return path


def check_report_out(path: Path, force: bool = False) -> None:
    """Refuse an --out that cannot take the report, before anything is built or written: a
    folder, a missing or unwritable parent, or an existing file that is not a report of ours
    (unless `force`)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ReportError(f"out: {path} is a folder (allowed: an HTML file name, new or a report "
                          "nnfractal wrote)")
    if not parent.is_dir():
        raise ReportError(f"out: {parent} does not exist or is not a folder (allowed: a file in "
                          "an existing folder)")
    if path.exists() and not force and not is_our_report(path):
        raise ReportError(f"out: {path} exists and is not a report nnfractal wrote (allowed: a "
                          "new file, a report of ours, or --force to replace it)")
    if path.exists() and not os.access(path, os.W_OK) and os.geteuid() != 0:
        raise ReportError(f"out: {path} is not writable")
    import tempfile
    try:                    # a real write: root ignores permission bits, not a read-only mount
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ReportError(f"out: cannot write {path} ({parent} is not writable: "
                          f"{err.strerror or err})") from None



def write_report_safely(folder, *, display_path=None, log=print) -> Path | None:
    """`write_report` for the end of a run, sample or comparison: a failure is logged in one
    line, not raised, so a finished computation is never lost to its report. Returns the path
    or None."""
    return run_folder.write_report_safely(write_report, folder, display_path=display_path, log=log)
