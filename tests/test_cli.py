"""The command line end to end, and every refused input: one line, exit code 2, nothing written."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nnfractal.cli import main
from nnfractal.config import build_config, config_from_toml
from nnfractal.store import RunStore

TINY_MLP = ["--preset", "paper-tanh", "--resolution", "6", "--steps", "30", "--no-progress"]


def run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_tiny_mlp_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["run", *TINY_MLP, "--out", str(out)], capsys)
    assert code == 0, err
    for name in ["config.toml", "map.png", "epochs.gif", "epochs.mp4", "summary.json"]:
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "epochs").glob("epoch_*.png"))) == 30
    assert b"avc1" in (out / "epochs.mp4").read_bytes()           # H.264, playable in browsers
    cfg = config_from_toml(out / "config.toml")
    assert cfg.resolution == 6 and cfg.steps == 30 and cfg.preset == "paper-tanh"
    store = RunStore.open(out / "store.zarr")
    assert store.complete
    curves = store.read_curves("train_loss")
    assert curves.shape == (6, 6, 30) and curves.dtype == np.float64
    assert np.all(np.isfinite(curves[..., 0]))
    np.testing.assert_allclose(store.y, np.logspace(-1, 3, 6))
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["fraction_converged"] <= 1
    assert summary["model_steps"] == 36 * 30 and summary["device"] == "cpu"
    assert "torch" in summary["versions"]
    assert not list(tmp_path.glob(".run.*")), "temporary folder left behind"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask      # not mkdtemp's private 0700


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
    (["--steps", "1000000000"], "steps: 1000000000 needs about"),
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


def test_real_runs_fit_the_default_budget():
    """Every preset (the customer's full ones included) and a 4096-pixel MLP grid pass the
    budget's caps: curves under DEFAULT_MAX_STORAGE, a chunk within a 16 GiB machine."""
    from nnfractal.budget import DEFAULT_MAX_STORAGE, GIB, check_memory, estimate
    from nnfractal.config import preset_names
    cfgs = [build_config(name) for name in preset_names()]
    cfgs.append(build_config("paper-tanh", resolution=4096))
    for cfg in cfgs:
        assert estimate(cfg).curves_bytes <= DEFAULT_MAX_STORAGE, cfg.preset
        check_memory(cfg, memory=16 * GIB)
