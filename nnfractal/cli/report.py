"""`nnfractal report FOLDER`: (re)write the self-contained report.html of any result folder."""
from __future__ import annotations

from pathlib import Path

from nnfractal.errors import StoreError, refuse
from nnfractal.report import ReportError, write_report

from .common import folder_write_error, resume_command_of


def add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained report.html for a run, zoom or "
                       "comparison folder")
    p.add_argument("run_dir", type=Path, help="a run, zoom or comparison folder")
    p.add_argument("--out", type=Path, help="HTML file to write (default RUN_DIR/report.html); "
                   "an existing file is replaced only if it is a report nnfractal wrote")
    p.add_argument("--force", action="store_true", help="replace an existing --out file that "
                   "is not an nnfractal report")


def cmd_report(args) -> int:
    """Write the report of a finished (or, for a run, unfinished) result folder whose stores are
    intact; a damaged or edited store, an unfinished sample or a folder that cannot be written is
    one line, exit 2."""
    try:
        check_reportable(args.run_dir)
        path = write_report(args.run_dir, args.out, force=args.force)
    except (ReportError, StoreError) as err:
        return refuse(err)
    except OSError as err:
        where = args.out if args.out is not None else args.run_dir
        return refuse(folder_write_error("out" if args.out is not None else "run_dir", where, err,
                                         "or --out FILE somewhere writable"))
    print(path)
    return 0


def check_reportable(run_dir: Path) -> None:
    """Refuse (StoreError) an unfinished sample (its report would be a grid run's page) and a
    folder with a damaged or edited store."""
    from nnfractal.storage.integrity import check_folder
    from nnfractal.storage.run_folder import RunFolder
    from nnfractal.studies.sample import is_sample_folder
    if is_sample_folder(run_dir) and not RunFolder(run_dir).summary_file.exists():
        raise StoreError(f"run_dir: {run_dir} holds an unfinished sample (resume with: "
                         f"nnfractal sample --resume {run_dir})")
    check_folder(run_dir, resume_command_of(run_dir))
