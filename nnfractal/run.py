"""One grid run from config to run folder: data -> models -> engine -> store -> pictures.

A run folder holds::

    config.toml      the resolved config, exactly what ran
    store.zarr/      loss curves, axes, metadata (see store.py)
    map.png          the convergence map
    epochs/          one map per epoch (at most MAX_FRAMES = 60, evenly spaced); epochs.gif, epochs.mp4
    summary.json     fraction converged, steps, wall time, device, library versions
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config, config_from_toml, recorded_metrics, to_toml
from .data import Dataset, load_mnist, synthetic_regression
from .engine import epoch_curves, make_schedule, resolve_device, train
from .grid import axes, axis_labels, grid_points
from .measure import accuracy_score, converged_fraction, scores
from .models import build_family
from .store import RunStore

MAX_FRAMES = 60


class RunFolderError(Exception):
    """An output folder that cannot take this run. One line naming the field."""


def default_out_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def check_new_folder(out: Path) -> None:
    """Refuse an output folder that is not new or empty, or cannot be created (before any work)."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"out: {out} exists and is not a folder (allowed: a new or empty folder)")
    if out.exists() and any(out.iterdir()):
        raise RunFolderError(f"out: {out} is not empty (allowed: a new or empty folder)")
    probe = out.parent if str(out.parent) else Path(".")
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise RunFolderError(f"out: {out} cannot be created ({probe} is not writable)")


@contextmanager
def staged_folder(out: Path):
    """Build a result folder under a temporary name beside `out` and rename it to `out` (absent
    or empty) when the block succeeds; on any exception, Ctrl-C included, remove it. A crash never
    leaves a half-written folder at `out`. mkdtemp makes folders private (0700): the finished one
    gets the permissions a plain mkdir would."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield work
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(out, 0o777 & ~mask)


def check_out_dir(out: Path, cfg: Config) -> None:
    """Refuse a folder that already holds another run (or anything else) before any work starts."""
    if out.is_dir() and any(out.iterdir()):
        cfg_file = out / "config.toml"
        if not cfg_file.exists():
            raise RunFolderError(f"out: {out} is not empty and holds no run (allowed: a new or empty folder)")
        try:
            other = config_from_toml(cfg_file)
        except Exception:
            raise RunFolderError(f"out: {out} holds a run whose config.toml is unreadable") from None
        if other.to_dict() != cfg.to_dict():
            raise RunFolderError(f"out: {out} already holds a different run (allowed: a new or empty folder)")
        raise RunFolderError(f"out: {out} already holds this run (allowed: a new or empty folder)")
    check_new_folder(out)


def load_data(cfg: Config, family, data_dir: Path | None = None) -> Dataset:
    """The run's fixed data set: MNIST subset or the paper's Gaussian regression data."""
    if cfg.dataset == "gaussian":
        if cfg.train_size:
            n = cfg.train_size
        elif cfg.nonlinearity == "identity":
            n = cfg.width                     # as the paper: a linear net needs only width points
        else:
            n = family.n_params() // cfg.target_dim
        return synthetic_regression(n, cfg.width, cfg.target_dim, seed=cfg.data_seed)
    return load_mnist(data_dir, train_size=cfg.train_size, test_size=cfg.test_size,
                      seed=cfg.data_seed, dataset=cfg.dataset)


def library_versions() -> dict[str, str]:
    import matplotlib
    import torch
    import zarr
    return {"nnfractal": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "zarr": zarr.__version__, "matplotlib": matplotlib.__version__}


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def execute(cfg: Config, out: Path | None = None, data_dir: Path | None = None,
            progress: bool = True, log=print, epoch_maps: bool = True) -> Path:
    """Train the grid of `cfg`, store the curves and draw the pictures; returns the run folder.

    `epoch_maps=False` skips the per-epoch maps and animation (zoom frames and comparison windows
    need only the final map; drawing is then a few seconds instead of a minute).

    Everything that can be refused (config, data, output folder) is checked before the folder is
    created, so a refused run leaves nothing behind.
    """
    out = Path(out) if out is not None else default_out_dir(cfg)
    check_out_dir(out, cfg)
    resolve_device(cfg.device)
    family = build_family(cfg)
    data = load_data(cfg, family, data_dir)
    log(f"data: {data.source}")
    x, y = axes(cfg)
    points = grid_points(x, y)
    schedule = make_schedule(cfg, data.n_train, has_test=data.n_test > 0)

    with staged_folder(out) as work:
        _write_text_atomic(work / "config.toml", to_toml(cfg))
        dtype = "float64" if cfg.precision == "float64" else "float32"
        lengths = {m: (len(schedule.eval_epochs) if m.startswith("test") else schedule.steps)
                   for m in recorded_metrics(cfg)}
        store = RunStore.create(work / "store.zarr", config=cfg.to_dict(), x=x, y=y,
                                curve_lengths=lengths, dtype=dtype,
                                schedule={"steps": schedule.steps,
                                          "steps_per_epoch": schedule.steps_per_epoch,
                                          "eval_epochs": list(schedule.eval_epochs)},
                                extra={"data_source": data.source})
        log(f"training {len(points)} models x {schedule.steps} steps "
            f"({cfg.model}, {cfg.precision}, chunks of {cfg.tile_batch}"
            f"{f', held-out evaluation every {cfg.eval_every} epoch(s) on {data.n_test} images' if schedule.eval_epochs else ''})")
        if cfg.adaptive:       # trains only near the boundary, writes curves and mask itself
            from .adaptive import run_adaptive
            result = run_adaptive(cfg, family, data, store, x, y, progress=progress, log=log)
        else:
            result = train(cfg, family, data, points, progress=progress)
            for metric, curves in result.curves.items():
                store.write_curves(metric, 0, curves)
        store.update_attrs(wall_time_s=result.wall_time, device=result.device)
        store.mark_complete()
        summary = render_run(work, log=log, epoch_maps=epoch_maps)
        summary.update(wall_time_s=round(result.wall_time, 3), device=result.device,
                       model_steps=int(len(result.losses) * schedule.steps),
                       model_steps_per_s=round(len(result.losses) * schedule.steps / result.wall_time, 2),
                       data_source=data.source, versions=library_versions(),
                       cpu=cpu_name(), threads=_threads(),
                       gpu=_gpu_name(result.device))
        _write_text_atomic(work / "summary.json", json.dumps(summary, indent=2) + "\n")
        from .report import write_report_safely
        write_report_safely(work, display_path=out, log=log)
    log(f"wrote {out}  (converged {summary['fraction_converged']:.1%}, "
        f"{summary['model_steps_per_s']:.1f} model-steps/s)")
    return out


def cpu_name() -> str:
    """The CPU model (Linux /proc/cpuinfo), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name(device: str) -> str | None:
    import torch
    return torch.cuda.get_device_name() if device.startswith("cuda") else None


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def metric_curves(store: RunStore, cfg: Config, metric: str) -> tuple[np.ndarray, list[int]]:
    """A metric's curves as the map reads them, and the epoch each curve value ends.

    Training curves have one value per step (or per epoch with readout "epoch"); held-out curves
    one per evaluation. Returns (curves (rows, cols, T'), epoch_of_value (T',)).
    """
    curves = store.read_curves(metric)
    schedule = store.attrs["schedule"]
    if metric.startswith("test"):
        return curves, list(schedule["eval_epochs"])
    per_epoch = int(schedule["steps_per_epoch"])
    if cfg.readout == "epoch":
        r, c, t = curves.shape
        curves = epoch_curves(curves.reshape(r * c, t), per_epoch).reshape(r, c, -1)
        return curves, list(range(1, curves.shape[-1] + 1))
    return curves, [t // per_epoch + 1 for t in range(curves.shape[-1])]   # value t: before step t


def map_epochs(store: RunStore, cfg: Config, metric: str | None = None) -> list[int]:
    """The epochs after which a metric has a map (1, 2, ... or the evaluation epochs)."""
    _, value_epoch = metric_curves(store, cfg, metric or cfg.metric)
    return sorted({int(e) for e in value_epoch if e >= 1})


def score_map(store: RunStore, cfg: Config, metric: str | None = None,
              epochs: list[int] | None = None) -> np.ndarray:
    """Scores (rows, cols) of a metric at the end of training, or a stack (len(epochs), rows, cols)
    of the scores the run had after each of `epochs`."""
    metric = metric or cfg.metric
    curves, value_epoch = metric_curves(store, cfg, metric)
    value_epoch = np.asarray(value_epoch)
    per_epoch = int(store.attrs["schedule"]["steps_per_epoch"])

    def score(c: np.ndarray) -> np.ndarray:
        if metric.endswith("acc"):
            tail = per_epoch if (metric == "train_acc" and cfg.readout == "step") else 1
            return accuracy_score(c, cfg.acc_threshold, tail)
        return scores(c, cfg.measure)

    if epochs is None:
        return score(curves)
    rows, cols = curves.shape[:2]
    return np.stack([score(curves[..., : int(np.searchsorted(value_epoch, e, side="right"))])
                     for e in epochs]).reshape(len(epochs), rows, cols)


def frame_epochs(available: list[int], max_frames: int = MAX_FRAMES) -> list[int]:
    """Epochs that get a map: all available ones, or max_frames evenly spaced ending at the last."""
    if len(available) <= max_frames:
        return list(available)
    picks = np.unique(np.round(np.linspace(0, len(available) - 1, max_frames)).astype(int))
    return [available[i] for i in picks]


def _title(cfg: Config) -> str:
    arch = f"{cfg.model}-{cfg.depth}{'' if cfg.skip else ' (plain)'}" if cfg.model == "resnet" else cfg.model
    return f"{cfg.preset}: {arch}, {cfg.nonlinearity}, {cfg.optimizer}"


def render_run(run_dir: Path, log=print, epoch_maps: bool = True) -> dict:
    """Draw every picture of a finished run from its store; returns summary figures.

    map.png and the epoch animation show the config's metric; map_<metric>.png every recorded one.
    """
    from .render.maps import cdf_restretch, extent_of, figure_to_rgb, map_figure, write_animation

    run_dir = Path(run_dir)
    cfg = config_from_toml(run_dir / "config.toml")
    store = RunStore.open(run_dir / "store.zarr")
    extent = extent_of(store.x, store.y, cfg.axis_scale)
    xlabel, ylabel = axis_labels(cfg)
    title = _title(cfg)
    finals = {}
    for metric in store.metrics:
        final = score_map(store, cfg, metric)
        finals[metric] = final
        fig = map_figure(final, extent, xlabel, ylabel, cfg.axis_scale, f"{title}\n{metric}",
                         figsize=cfg.figsize, dpi=cfg.dpi)
        fig.savefig(run_dir / f"map_{metric}.png")
    final = finals[cfg.metric]
    fig = map_figure(final, extent, xlabel, ylabel, cfg.axis_scale, f"{title}\n{cfg.metric}",
                     figsize=cfg.figsize, dpi=cfg.dpi)
    fig.savefig(run_dir / "map.png")

    available = map_epochs(store, cfg)
    epochs = frame_epochs(available) if epoch_maps else [available[-1]]
    maps_by_epoch = score_map(store, cfg, cfg.metric, epochs=epochs)
    frames = []
    ax = fig.axes[0]
    if epoch_maps:
        (run_dir / "epochs").mkdir(exist_ok=True)
    for e, m in zip(epochs if epoch_maps else [], maps_by_epoch):
        # One figure, new pixels and title per frame: much faster than a new figure each time.
        ax.images[0].set_data(cdf_restretch(m))
        ax.set_title(f"{title}\n{cfg.metric}, epoch {e}/{available[-1]}", fontsize=10)
        fig.savefig(run_dir / "epochs" / f"epoch_{e:04d}.png")
        frames.append(figure_to_rgb(fig))
    if epoch_maps:
        write_animation(frames, run_dir / "epochs.gif", run_dir / "epochs.mp4",
                        fps=max(2.0, min(10.0, len(frames) / 6)))
    log(f"maps: map.png ({cfg.metric}), map_<metric>.png for {', '.join(store.metrics)}"
        + (f", {len(frames)} epoch maps in epochs/, epochs.gif, epochs.mp4" if epoch_maps else ""))
    from .adaptive import render_adaptive
    adaptive = render_adaptive(run_dir, store, final, extent, xlabel, ylabel, cfg.axis_scale, title,
                               figsize=cfg.figsize, dpi=cfg.dpi)   # trained.png; {} for a full grid
    fractal = analyse_fractal(run_dir, log=log)
    return {**adaptive, "fractal_dimension": fractal["final"]["dimension"],
            "fractal_dimension_ci95": [fractal["final"]["ci_low"], fractal["final"]["ci_high"]],
            "preset": cfg.preset, "resolution": cfg.resolution, "metric": cfg.metric,
            "steps": int(store.attrs["schedule"]["steps"]), "epochs": available[-1],
            "readout": cfg.readout, "measure": cfg.measure,
            "fraction_converged": converged_fraction(final),
            "fraction_converged_by_metric": {m: converged_fraction(v) for m, v in finals.items()},
            "final_metrics_median": _final_medians(store),
            "fraction_converged_per_epoch": {str(e): converged_fraction(m)
                                             for e, m in zip(epochs, maps_by_epoch)}}


def _final_medians(store: RunStore) -> dict[str, float | None]:
    """Median over the grid of each metric's last value (train/test side by side in summaries)."""
    out = {}
    for metric in store.metrics:
        last = store.read_curves(metric)[..., -1]
        finite = last[np.isfinite(last)]
        out[metric] = float(np.median(finite)) if finite.size else None
    return out


def describe(est: dict) -> str:
    """'1.234 (95% CI 1.10-1.35)' or the plain reason there is no estimate."""
    if not est["ok"]:
        return est["reason"]
    return f"{est['dimension']:.3f} (95% CI {est['ci_low']:.3f}-{est['ci_high']:.3f})"


def analyse_fractal(run_dir: Path, fit_range: tuple[float, float] | None = None, log=print) -> dict:
    """Boundary, box counts and dimension of a finished run, final and per epoch; no training.

    Writes boundary.png, boxcount.png, fd_per_epoch.png (the config's metric), boundary_<metric>.png
    for the other recorded metrics, and fractal.json; returns the fractal.json content.
    """
    from .fractal import boundary, estimate_dimension, paper_dimension
    from .render.fractal_plots import plot_boundary, plot_boxcount, plot_dimension_per_epoch
    from .render.maps import extent_of

    run_dir = Path(run_dir)
    cfg = config_from_toml(run_dir / "config.toml")
    store = RunStore.open(run_dir / "store.zarr")
    xlabel, ylabel = (label.replace("log10 ", "log10 of ") for label in axis_labels(cfg))
    extent = extent_of(store.x, store.y, cfg.axis_scale)
    by_metric = {}
    for metric in store.metrics:
        final_map = score_map(store, cfg, metric)
        edges = boundary(final_map)
        est = estimate_dimension(edges, fit_range=fit_range)
        by_metric[metric] = {"final": est.to_dict(), "paper_method": paper_dimension([edges]).to_dict()}
        name = "boundary.png" if metric == cfg.metric else f"boundary_{metric}.png"
        plot_boundary(edges, extent, xlabel, ylabel, run_dir / name,
                      title=f"{cfg.preset}: {metric} boundary ({int(edges.sum())} pixels)")
        if metric == cfg.metric:
            plot_boxcount(est, run_dir / "boxcount.png", title=f"{cfg.preset}: box counting ({metric})")
    available = map_epochs(store, cfg)
    epochs = frame_epochs(available)
    epoch_maps = score_map(store, cfg, cfg.metric, epochs=epochs)
    per_epoch_est = [estimate_dimension(boundary(m), fit_range=fit_range, n_boot=50) for m in epoch_maps]
    plot_dimension_per_epoch(epochs, per_epoch_est, run_dir / "fd_per_epoch.png",
                             title=f"{cfg.preset}: dimension of the {cfg.metric} boundary during training")
    result = {
        "resolution": cfg.resolution, "metric": cfg.metric, "readout": cfg.readout,
        "measure": cfg.measure, "fit_range": list(fit_range) if fit_range else None,
        **by_metric[cfg.metric],
        "metrics": by_metric,
        "per_epoch": [{"epoch": e, **est.to_dict()} for e, est in zip(epochs, per_epoch_est)],
    }
    _write_text_atomic(run_dir / "fractal.json", json.dumps(result, indent=2) + "\n")
    log(f"fractal dimension ({cfg.metric}): {describe(result['final'])}; paper's median-slope "
        f"estimator: {describe(result['paper_method'])}")
    for metric in store.metrics:
        if metric != cfg.metric:
            log(f"  {metric}: {describe(by_metric[metric]['final'])}")
    return result


def check_run_dir(run_dir: Path) -> None:
    """Refuse a folder that is not a finished run (one line naming the field)."""
    from .store import StoreError
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StoreError(f"run_dir: {run_dir} does not exist or is not a folder")
    if not (run_dir / "config.toml").exists() or not (run_dir / "store.zarr").exists():
        raise StoreError(f"run_dir: {run_dir} is not a run folder (no config.toml or store.zarr)")
    if not RunStore.open(run_dir / "store.zarr").complete:
        raise StoreError(f"run_dir: {run_dir} holds an incomplete run")


def dimension_of(run_dir: Path, method: str = "box", fit_range=None, log=lambda *_: None) -> dict:
    """Recompute a finished run's dimension (method box or paper); rewrites fractal.json."""
    from .config import ConfigError
    if method not in ("box", "paper"):
        raise ConfigError("method", f"{method!r} is not allowed (allowed: box, paper)")
    if fit_range is not None and not (0 < fit_range[0] < fit_range[1]):
        raise ConfigError("fit_range", f"{list(fit_range)} is not allowed "
                          "(allowed: two box sizes in pixels, 0 < S_MIN < S_MAX)")
    run_dir = Path(run_dir)
    if (run_dir / "zoom.json").exists():
        from .zoom import analyse_zoom
        result = analyse_zoom(run_dir, fit_range=fit_range, log=log)
        return result["pooled_paper"] if method == "paper" else result["pooled"]
    check_run_dir(run_dir)
    result = analyse_fractal(run_dir, fit_range=tuple(fit_range) if fit_range else None, log=log)
    from .report import write_report_safely
    write_report_safely(run_dir, log=log)          # the report shows the new figures
    return result["paper_method"] if method == "paper" else result["final"]
