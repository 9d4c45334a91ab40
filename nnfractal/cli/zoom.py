"""`nnfractal zoom`: its flags, its refusals and the report it writes (the study is
nnfractal/studies/zoom.py)."""
from __future__ import annotations

from pathlib import Path

from nnfractal.errors import StoreError, refuse
from nnfractal.report import write_report
from nnfractal.storage.integrity import check_folder
from nnfractal.studies import zoom

from .common import add_data_dir_flag, add_max_storage_flag, repair_for_resume, run_resumable


def add_zoom_parser(sub) -> None:
    p = sub.add_parser("zoom", help="train ever smaller windows around a point of a finished "
                       "run's boundary; zoom animation and dimension per frame")
    p.add_argument("run_dir", type=Path, nargs="?", help="a finished run folder")
    p.add_argument("--resume", type=Path, metavar="ZOOM_DIR",
                   help="finish an interrupted zoom (alone: its settings are in the folder)")
    p.add_argument("--factor", type=float, help="shrink factor per frame (default 2)")
    p.add_argument("--decades", "--depth", type=float, dest="depth",
                   help="decades of zoom (default 2): floor(decades ln10 / ln factor) + 1 frames "
                   "(--depth is the same; in `run` it means the network's layers)")
    p.add_argument("--center", "--centre", nargs=2, type=float, metavar=("X", "Y"),
                   help="zoom centre in axis units, x then y (base-10 exponents on log axes; "
                   "fixed; default: where the run's boundary is densest, then following the "
                   "boundary frame by frame)")
    p.add_argument("--resolution", type=int, help="pixels per side of every frame "
                   "(default: the run's)")
    p.add_argument("--out", type=Path, help="output folder (default <RUN_DIR>-zoom-<timestamp>, "
                   "beside the run)")
    add_data_dir_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_max_storage_flag(p)


# Flags that make the zoom's plan: --resume reads them from the folder, so it refuses them.
ZOOM_PLAN_FLAGS = ("run_dir", "factor", "depth", "center", "resolution", "out", "max_storage")


def cmd_zoom(args) -> int:
    """A new zoom, or --resume of one; a stop or failure after the folder exists says how to
    resume it (exit 130 for Ctrl-C / SIGTERM). The run zoomed into, or the zoom resumed, is
    checked first: a damaged or edited store is refused (or, resumed, trained again)."""
    if args.resume is not None:
        given = [f for f in ZOOM_PLAN_FLAGS if getattr(args, f) is not None]
        if given:
            return refuse(f"{given[0]}: not allowed with --resume (allowed: nnfractal zoom "
                          "--resume ZOOM_DIR [--data-dir DIR] [--no-progress]; the zoom's "
                          "settings are in its folder)")

        def resume() -> None:
            repair_for_resume(args.resume)
            zoom.resume_zoom(args.resume, data_dir=args.data_dir, progress=not args.no_progress,
                             report=write_report)
        return run_resumable(resume, [], zoom.RESUME_COMMAND)
    if args.run_dir is None:
        return refuse("run_dir: missing (allowed: nnfractal zoom RUN_DIR [options], or "
                      "nnfractal zoom --resume ZOOM_DIR)")

    def new() -> None:
        check_source_run(args.run_dir)
        zoom.zoom(args.run_dir,
                  factor=zoom.DEFAULT_FACTOR if args.factor is None else args.factor,
                  depth=zoom.DEFAULT_DEPTH if args.depth is None else args.depth,
                  center=args.center, resolution=args.resolution, out=args.out,
                  data_dir=args.data_dir, progress=not args.no_progress,
                  max_storage=args.max_storage, report=write_report)
    return run_resumable(new, [], zoom.RESUME_COMMAND)


def check_source_run(run_dir: Path) -> None:
    """Refuse a RUN_DIR that is not a grid run (a sample's points have no map to zoom into) or
    whose store is damaged or edited (StoreError, one line)."""
    from nnfractal.studies.sample import is_sample_folder
    if is_sample_folder(run_dir) or any((Path(run_dir) / name).exists() for name in
                                        ("zoom_plan.json", "zoom.json", "compare.json")):
        raise StoreError(f"run_dir: {run_dir} is not a grid run (allowed: a finished run folder "
                         "written by nnfractal run; a sample, zoom or comparison has no single "
                         "map to zoom into)")
    check_folder(run_dir, "nnfractal run --resume")
