"""Held-out evaluation, accuracy maps and the MLP-300 experiment (issue 5)."""
import json

import numpy as np
import pytest
from helpers import assert_picture

from nnfractal.cli.main import main
from nnfractal.config import build_config
from nnfractal.models import build_family
from nnfractal.storage.store import RunStore
from nnfractal.training.engine import train
from nnfractal.training.measure import accuracy_score
from nnfractal.training.reference import train_single

pytestmark = pytest.mark.slow  # trains MNIST models


@pytest.fixture(scope="module")
def mnist_small():
    from nnfractal.training.data import load_mnist
    return load_mnist(train_size=40, test_size=50, seed=1, download=False)


@pytest.mark.parametrize("preset,extra", [
    ("resnet20-mnist", dict(depth=8, c_hidden=[4, 8, 8])),
    ("mlp300-mnist", dict(width=20)),
])
def test_heldout_metrics_equal_single_model_evaluation(preset, extra, mnist_small):
    cfg = build_config(preset, **extra, train_size=40, batch_size=20, num_epochs=3, eval_every=1,
                       test_size=50, tile_batch=3, precision="float64")
    family = build_family(cfg)
    pts = np.array([[1e-3, 0.05], [1e-2, 0.2], [0.0, 0.5]])
    result = train(cfg, family, mnist_small, pts)
    assert result.schedule.eval_epochs == (0, 1, 2, 3)
    assert result.curves["test_loss"].shape == (3, 4) and result.curves["test_acc"].shape == (3, 4)
    assert result.curves["train_acc"].shape == (3, 6)
    for i, p in enumerate(pts):
        single = train_single(cfg, family, mnist_small, p)
        for metric in ("train_loss", "train_acc", "test_loss", "test_acc"):
            np.testing.assert_allclose(result.curves[metric][i], single[metric], rtol=1e-9, atol=1e-12,
                                       err_msg=metric)
    acc = result.curves["test_acc"]
    assert np.all((acc >= 0) & (acc <= 1))
    np.testing.assert_allclose(acc * 50, np.round(acc * 50), atol=1e-9)     # k correct of 50


def test_accuracy_measure_on_hand_made_curves():
    curves = np.array([[0.1, 0.5, 0.95], [0.1, 0.5, 0.85], [0.9, 0.9, 0.9], [0.2, np.nan, np.nan]])
    s = accuracy_score(curves, threshold=0.9)
    np.testing.assert_allclose(s, [-0.05, 0.05, 0.0, 0.9])
    assert s[0] < 0 < s[1]                                   # zero of the score is the threshold
    np.testing.assert_allclose(accuracy_score(curves[:2], 0.9, tail=2), [0.9 - 0.725, 0.9 - 0.675])


def test_mlp300_preset_end_to_end_with_every_metric(tmp_path, capsys):
    out = tmp_path / "mlp"
    code = main(["run", "--preset", "mlp300-mnist", "--resolution", "3", "--num_epochs", "2",
                 "--train-size", "200", "--test-size", "100", "--width", "16", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    store = RunStore.open(out / "store.zarr")
    assert store.metrics == ["test_acc", "test_loss", "train_acc", "train_loss"]
    assert store.read_curves("test_acc").shape == (3, 3, 3)       # init + 2 epochs
    for metric in store.metrics:
        assert_picture(out / f"map_{metric}.png", min_ink=0.3)
    fractal = json.loads((out / "fractal.json").read_text())
    assert set(fractal["metrics"]) == set(store.metrics)
    assert fractal["metric"] == "train_acc"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["final_metrics_median"]) == set(store.metrics)


def test_readout_of_a_metric_that_was_not_recorded(tmp_path, capsys):
    out = tmp_path / "x"
    code = main(["run", "--preset", "paper-tanh", "--resolution", "4", "--steps", "5",
                 "--readout", "test_loss", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "readout" in err[0] and "train_loss" in err[0]
    code = main(["run", "--preset", "mlp300-mnist", "--eval_every", "0", "--readout", "test_acc",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "test_acc" in err[0]
    code = main(["run", "--readout", "weights", "--out", str(out)])
    assert code == 2
    assert not out.exists()


def test_dimension_command_on_a_store_without_the_metric(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--preset", "paper-tanh", "--resolution", "6", "--steps", "20", "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["dimension", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert main(["dimension", str(out), "--method", "nope"]) == 2
    assert "method" in capsys.readouterr().err
    assert main(["dimension", str(tmp_path / "missing")]) == 2
