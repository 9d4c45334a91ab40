"""The command line end to end, and every refused input: one line, exit code 2, nothing written."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import assert_animation, assert_picture

from nnfractal.cli.main import main
from nnfractal.config import build_config, config_from_toml
from nnfractal.storage.store import RunStore

TINY_MLP = ["--preset", "paper-tanh", "--resolution", "6", "--steps", "30", "--no-progress"]


def run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.slow
def test_tiny_mlp_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["run", *TINY_MLP, "--out", str(out)], capsys)
    assert code == 0, err
    assert_picture(out / "map.png", min_ink=0.3, outcomes=True)   # a map with both outcomes
    assert len(list((out / "epochs").glob("epoch_*.png"))) == 30
    for name in ["epochs.gif", "epochs.mp4"]:                     # H.264, playable in browsers
        assert_animation(out / name, frames=30)
    cfg = config_from_toml(out / "config.toml")
    assert cfg.resolution == 6 and cfg.steps == 30 and cfg.preset == "paper-tanh"
    store = RunStore.open(out / "store.zarr")
    assert store.complete
    curves = store.read_curves("train_loss")
    assert curves.shape == (6, 6, 30) and curves.dtype == np.float64
    assert np.all(np.isfinite(curves[..., 0]))
    np.testing.assert_allclose(store.y, np.logspace(-3, 6, 6))
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["fraction_converged"] <= 1
    assert summary["model_steps"] == 36 * 30 and summary["device"] == "cpu"
    assert "torch" in summary["versions"]
    assert not list(tmp_path.glob(".run.*")), "temporary folder left behind"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask      # not mkdtemp's private 0700


@pytest.mark.slow
def test_tiny_resnet_run_via_python_m(tmp_path):
    out = tmp_path / "rn"
    proc = subprocess.run([sys.executable, "-m", "nnfractal", "run", "--resolution", "2", "--num_epochs", "1",
                           "--depth", "8", "--c_hidden", "4", "8", "8", "--train-size", "32",
                           "--batch_size", "16", "--tile_batch", "4", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "data: offline MNIST subset" in proc.stdout or "data: MNIST IDX" in proc.stdout
    curves = RunStore.open(out / "store.zarr").read_curves()
    assert curves.shape == (2, 2, 2) and curves.dtype == np.float32
    assert (out / "map.png").exists() and (out / "epochs.mp4").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["presets", "run"])
def test_output_into_a_pipe_nobody_reads_ends_quietly(command, tmp_path):
    """`nnfractal presets | head -1`: once the reader has gone, writing raises BrokenPipeError,
    which used to end in a traceback. Here the pipe's read end is closed before the command
    writes (as head's is once it has its line, without the race): no traceback, exit 141 (128 +
    SIGPIPE, what a shell reports for other tools cut off so)."""
    from nnfractal.cli.main import EXIT_BROKEN_PIPE
    args = ["presets"] if command == "presets" else ["run", *TINY_MLP, "--out", tmp_path / "r"]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "nnfractal", *map(str, args)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (EXIT_BROKEN_PIPE, ""), done.stderr


BAD_INPUTS = [
    (["--resolution", "0"], "resolution"),
    (["--resolution", "-3"], "resolution"),
    (["--resolution", "abc"], "--resolution"),
    (["--mnmx", "1", "2", "3"], "mnmx"),
    (["--mnmx", "1", "0", "-3", "0"], "mnmx"),          # lr_min > lr_max: wrong order
    (["--mnmx", "-3", "0", "0", "-3"], "mnmx"),
    (["--mnmx", "a", "b", "c", "d"], "--mnmx"),
    (["--preset", "nope"], "preset"),
    (["--optimizer", "rmsprop"], "optimizer"),
    (["--nonlinearity", "gelu"], "nonlinearity"),
    (["--model", "vgg"], "model"),
    (["--precision", "float16"], "precision"),
    (["--device", "tpu"], "device"),
    (["--phase-space", "lr_vs_momentum"], "phase_space"),
    (["--num_epochs", "0"], "num_epochs"),
    (["--tile_batch", "-1"], "tile_batch"),
    (["--depth", "21"], "depth"),
    (["--c_hidden", "16", "32"], "c_hidden"),
    (["--measure", "mine"], "measure"),
    (["--readout", "weights"], "readout"),
] + ([(["--device", "cuda"], "device")] if not torch.cuda.is_available() else []) + [
    (["--batch_size", "1000"], "batch_size"),
    # resource budgets (budget.py): refused before anything is written, the estimate shown
    (["--resolution", "100000"], "resolution: 100000 makes 100000x100000 points"),
    (["--num_epochs", "1000000000"], "num_epochs: 1000000000 needs about"),
    (["--tile_batch", "1000000000"], "tile_batch: 1000000000 needs about"),
    (["--train-size", "1000000000"], "train_size: 1000000000 needs about"),
    (["--preset", "paper-tanh", "--width", "1000000"], "width: 1000000 needs about"),
    (["--preset", "paper-tanh", "--train-size", "1000000000"], "train_size: 1000000000 needs"),
    (["--resolution", "2000", "--max-storage", "0.01"], "more than --max-storage 0.01"),
    (["--max-storage", "-1"], "max_storage: -1.0 is not allowed"),
    (["--dpi", "100000"], "dpi: 100000 with figsize"),
    (["--dpi", "1000", "--figsize", "20", "5"], "dpi: 1000 with figsize 20 x 5 inches"),
]


@pytest.mark.parametrize("args,field", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_nothing_written(args, field, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["run", "--resolution", "2", "--num_epochs", "1", "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) if field.startswith("--") else _nullcontext() as exc:
        code, err = run_cli(base + args, capsys)
    if field.startswith("--"):                               # argparse-level (non-numeric)
        assert exc.value.code == 2
        err = capsys.readouterr().err
    else:
        assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnfractal: error:"), err
    assert field in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_unreadable_data_dir(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    out = tmp_path / "run"
    code, err = run_cli(["run", "--resolution", "2", "--num_epochs", "1", "--out", str(out),
                         "--data-dir", str(not_a_dir)], capsys)
    assert code == 2 and "data_dir" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_output_folder_with_a_different_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["run", *TINY_MLP, "--steps", "20", "--out", str(out)], capsys)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    code, err = run_cli(["run", *TINY_MLP, "--steps", "25", "--out", str(out)], capsys)
    assert code == 2 and "out:" in err and "different run" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before     # nothing touched
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    code, err = run_cli(["run", *TINY_MLP, "--out", str(tmp_path / "junk")], capsys)
    assert code == 2 and "out:" in err
    assert (tmp_path / "junk" / "notes.txt").read_text() == "mine"


def test_presets_listed(capsys):
    assert main(["presets"]) == 0
    names = capsys.readouterr().out.split()
    for p in ["resnet20-mnist", "plain20-mnist", "paper-tanh", "paper-relu", "paper-linear",
              "paper-minibatch", "paper-single", "paper-offset"]:
        assert p in names


def test_presets_say_what_they_train_and_which_is_default(capsys):
    from nnfractal.cli.main import DEFAULT_PRESET
    from nnfractal.config import preset_names
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(preset_names())
    assert [ln for ln in lines if "(default)" in ln] == \
        [ln for ln in lines if ln.split()[0] == DEFAULT_PRESET]
    tanh = next(ln for ln in lines if ln.split()[0] == "paper-tanh")
    assert "meanfield-mlp (mean-field MLP, 2 layers x 16, tanh)" in tanh
    assert "500 steps" in tanh and "grid of lr_vs_lr" in tanh


# ---- no flag is ever silently ignored ---------------------------------------------------------

# One command-line value per config flag, two candidates: the test uses the one that differs
# from the preset's value, so every flag really asks for a change.
FLAG_VALUES = {
    "model": (["--model", "resnet"], ["--model", "meanfield-mlp"]),
    "depth": (["--depth", "8"], ["--depth", "14"]),
    "skip": (["--no-skip"], ["--skip"]),
    "c_hidden": (["--c_hidden", "4", "8", "8"], ["--c_hidden", "8", "8", "8"]),
    "nonlinearity": (["--nonlinearity", "tanh"], ["--nonlinearity", "relu"]),
    "width": (["--width", "12"], ["--width", "20"]),
    "target_dim": (["--target-dim", "2"], ["--target-dim", "3"]),
    "dataset": (["--dataset", "fashion-mnist"], ["--dataset", "gaussian"]),
    "train_size": (["--train-size", "64"], ["--train-size", "96"]),
    "batch_size": (["--batch_size", "16"], ["--batch_size", "8"]),
    "data_seed": (["--data-seed", "3"], ["--data-seed", "4"]),
    "num_epochs": (["--num_epochs", "2"], ["--num_epochs", "3"]),
    "steps": (["--steps", "40"], ["--steps", "41"]),
    "optimizer": (["--optimizer", "adam"], ["--optimizer", "sgd"]),
    "momentum": (["--momentum", "0.5"], ["--momentum", "0.6"]),
    "phase_space": (["--phase-space", "lr_vs_lr"], ["--phase-space", "offset_vs_lr"]),
    "offset_target": (["--offset-target", "input"], ["--offset-target", "all"]),
    "offset_mode": (["--offset-mode", "every-step"], ["--offset-mode", "init"]),
    "base_lr": (["--base-lr", "0.3"], ["--base-lr", "0.4"]),
    "precision": (["--precision", "float64"], ["--precision", "float32"]),
    "device": (["--device", "auto"], ["--device", "cpu"]),
    "tile_batch": (["--tile_batch", "8"], ["--tile_batch", "12"]),
    "chunk_workers": (["--chunk-workers", "1"], ["--chunk-workers", "2"]),
    "seed": (["--seed", "5"], ["--seed", "6"]),
    # absolute paths: the config records them so (the files are read when a run is planned)
    "data_file": (["--data-file", "/nnfractal-flag/d1.npz"], ["--data-file", "/nnfractal-flag/d2.npz"]),
    "init_file": (["--init-file", "/nnfractal-flag/w1.npz"], ["--init-file", "/nnfractal-flag/w2.npz"]),
    "mnmx": (["--mnmx", "-1", "0", "-1", "0"], ["--mnmx", "-2", "0", "-2", "0"]),
    "axis_scale": (["--axis-scale", "linear", "--mnmx", "0.1", "1", "0.1", "1"],
                   ["--axis-scale", "log"]),
    "resolution": (["--resolution", "10"], ["--resolution", "11"]),
    "measure": (["--measure", "customer"], ["--measure", "paper"]),
    "dpi": (["--dpi", "60"], ["--dpi", "70"]),
    "figsize": (["--figsize", "4", "3"], ["--figsize", "5", "3"]),
    "acc_threshold": (["--acc-threshold", "0.5"], ["--acc-threshold", "0.6"]),
    "eval_every": (["--eval_every", "2"], ["--eval_every", "3"]),
    "test_size": (["--test-size", "50"], ["--test-size", "60"]),
    "early_exit": (["--no-early-exit"], ["--no-early-exit"]),
    "matmul_precision": (["--matmul-precision", "bfloat16"], ["--matmul-precision", "highest"]),
    "compile": (["--compile", "off"], ["--compile", "on"]),
    "fast_path": (["--no-fast-path"], ["--no-fast-path"]),
    "adaptive": (["--adaptive"], ["--adaptive"]),
    "adaptive_coarse": (["--adaptive-coarse", "8"], ["--adaptive-coarse", "16"]),
    "adaptive_guard": (["--adaptive-guard", "3"], ["--adaptive-guard", "4"]),
}


def _flag_cases():
    from nnfractal.cli.main import CONFIG_FLAGS
    from nnfractal.config import preset_names
    assert set(FLAG_VALUES) == set(CONFIG_FLAGS), "a config flag without a test value"
    return [(p, f) for p in preset_names() for f in CONFIG_FLAGS]


@pytest.mark.parametrize("preset,field", _flag_cases())
def test_every_flag_with_every_preset_is_honoured_or_refused(preset, field):
    """A flag either wins over the preset (its value is in the resolved config, and the config
    reads that field) or is refused in one line naming a field; never silently ignored."""
    from nnfractal.cli.main import config_from_args, make_parser
    from nnfractal.config import ConfigError, load_preset, unused_fields
    base = load_preset(preset)
    first, second = FLAG_VALUES[field]
    parser = make_parser()
    for argv in (first, second):
        args = parser.parse_args(["run", "--preset", preset, *argv])
        wanted = getattr(args, field)
        if wanted is not None and (tuple(wanted) if isinstance(wanted, list) else wanted) \
                != getattr(base, field):
            break
    notes = []
    try:
        cfg = config_from_args(args, log=notes.append)
    except ConfigError as err:
        from dataclasses import fields

        from nnfractal.config import Config
        assert "\n" not in str(err) and "allowed" in str(err), str(err)
        assert str(err).split(":")[0] in {f.name for f in fields(Config)}, str(err)
        return
    value = getattr(cfg, field)
    assert (tuple(value) if isinstance(value, tuple) else value) == \
        (tuple(wanted) if isinstance(wanted, list) else wanted)
    assert field not in unused_fields(cfg), f"{field} accepted but not read by {preset}"
    if field == "num_epochs" and base.steps:
        assert cfg.steps == 0 and notes and "replaces" in notes[0]


@pytest.mark.slow
def test_num_epochs_wins_over_the_preset_steps_and_says_so(tmp_path):
    """`--num_epochs 20 --preset paper-tanh` trains 20 steps (full batch: one step per epoch),
    says which preset value it replaced, and config.toml records no contradiction."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "nnfractal", "run", "--preset", "paper-tanh",
                           "--num_epochs", "7", "--resolution", "4", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NNFRACTAL_TCMALLOC": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "num_epochs = 7 replaces preset paper-tanh's steps = 500" in proc.stdout
    assert "warning: a map of 4 x 4 px cannot give a fractal dimension" in proc.stdout
    assert proc.stdout.index("warning: a map of 4 x 4") < proc.stdout.index("training ")
    cfg = config_from_toml(out / "config.toml")
    assert (cfg.num_epochs, cfg.steps) == (7, 0)
    assert RunStore.open(out / "store.zarr").read_curves("train_loss").shape[-1] == 7


def test_steps_and_num_epochs_together_are_refused(tmp_path, capsys):
    code, err = run_cli(["run", "--steps", "5", "--num_epochs", "2", "--out", str(tmp_path / "r")],
                        capsys)
    assert code == 2 and err.startswith("nnfractal: error: steps: ") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_preset_counting_steps_records_no_epochs():
    from nnfractal.config import build_config, load_preset
    assert load_preset("paper-tanh").num_epochs == 0          # steps = 500 decides
    cfg = build_config("resnet20-mnist", steps=12)
    assert (cfg.steps, cfg.num_epochs) == (12, 0)


@pytest.mark.parametrize("argv,field", [
    (["--preset", "paper-tanh", "--c_hidden", "4", "8", "8"], "c_hidden"),
    (["--momentum", "0.5"], "momentum"),
    (["--preset", "paper-tanh", "--test-size", "100"], "test_size"),
    (["--adaptive-guard", "3"], "adaptive_guard"),
    (["--preset", "paper-tanh", "--offset-mode", "every-step"], "offset_mode"),
])
def test_a_flag_the_config_never_reads_is_refused(argv, field, tmp_path, capsys):
    code, err = run_cli(["run", *argv, "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.startswith(f"nnfractal: error: {field}: ") and err.count("\n") == 1
    assert "is not used" in err and "allowed:" in err
    assert not (tmp_path / "r").exists()


# ---- nnfractal dimension: never leaves a run saying two things ---------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished 32 x 32 paper-tanh run of 20 steps (a boundary, too small for the default rule)."""
    out = tmp_path_factory.mktemp("dim") / "run"
    assert main(["run", "--preset", "paper-tanh", "--resolution", "32", "--steps", "20",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def _files(folder, names=("fractal.json", "summary.json", "report.html", "boxcount.png")):
    return {n: (folder / n).read_bytes() for n in names}


@pytest.mark.slow
def test_dimension_fit_range_is_a_named_analysis_unless_written(small_run, tmp_path, capsys):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    before = _files(run)
    capsys.readouterr()
    assert main(["dimension", str(run), "--fit-range", "1", "8", "--force"]) == 0
    out = capsys.readouterr().out
    named = run / "dimension-fit-1-8"
    assert f"wrote the named analysis {named}" in out and "--write" in out
    assert _files(run) == before                    # the run still says one thing
    fractal = json.loads((named / "fractal.json").read_text())
    assert fractal["fit_range"] == [1.0, 8.0] and fractal["final"]["ok"]
    assert_picture(named / "boxcount.png", min_ink=0.05)

    assert main(["dimension", str(run), "--fit-range", "1", "8", "--write", "--force"]) == 0
    out = capsys.readouterr().out
    assert f"rewrote {run}: fractal.json" in out and "summary.json" in out and "report.html" in out
    fractal = json.loads((run / "fractal.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert fractal["fit_range"] == [1.0, 8.0]
    assert summary["fractal_dimension"] == fractal["final"]["dimension"] is not None
    assert summary["fractal_dimension_ci95"] == [fractal["final"]["ci_low"], fractal["final"]["ci_high"]]
    assert f"{fractal['final']['dimension']:.3f}" in (run / "report.html").read_text()


def test_dimension_of_a_zoom_with_a_fit_range_needs_write(tmp_path, capsys):
    (tmp_path / "zoom.json").write_text("{}")
    assert main(["dimension", str(tmp_path), "--fit-range", "2", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnfractal: error: fit_range: ") and "--write" in err and err.count("\n") == 1
def test_real_runs_fit_the_default_budget():
    """Every preset (the customer's full ones included) and a 4096-pixel MLP grid pass the
    budget's caps: curves under DEFAULT_MAX_STORAGE, a chunk within a 16 GiB machine."""
    from nnfractal.config import preset_names
    from nnfractal.training.budget import DEFAULT_MAX_STORAGE, GIB, check_memory, estimate
    cfgs = [build_config(name) for name in preset_names()]
    cfgs.append(build_config("paper-tanh", resolution=4096))
    for cfg in cfgs:
        assert estimate(cfg).curves_bytes <= DEFAULT_MAX_STORAGE, cfg.preset
        check_memory(cfg, memory=16 * GIB)


def test_a_step_count_beyond_the_budget_is_refused(tmp_path, capsys):
    # (not in BAD_INPUTS: their base command gives --num_epochs, and --steps with it is refused
    # for that reason first)
    out = tmp_path / "run"
    code, err = run_cli(["run", "--preset", "paper-tanh", "--resolution", "2", "--steps",
                         "1000000000", "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "steps: 1000000000 needs about" in err and not out.exists()
