"""`nnfractal report FOLDER`: (re)write the self-contained report.html of any result folder."""
from __future__ import annotations

from pathlib import Path

from nnfractal.errors import StoreError, refuse
from nnfractal.report import ReportError, write_report


def add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained report.html for a run, zoom or "
                       "comparison folder")
    p.add_argument("run_dir", type=Path, help="a run, zoom or comparison folder")
    p.add_argument("--out", type=Path, help="HTML file to write (default RUN_DIR/report.html); "
                   "an existing file is replaced only if it is a report nnfractal wrote")
    p.add_argument("--force", action="store_true", help="replace an existing --out file that "
                   "is not an nnfractal report")


def cmd_report(args) -> int:
    try:
        path = write_report(args.run_dir, args.out, force=args.force)
    except (ReportError, StoreError) as err:
        return refuse(err)
    print(path)
    return 0
