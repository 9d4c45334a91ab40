"""Model families come from one registry: config's allowed models, the --model help, the labels,
the budget and the engine's chunk preferences all ask it. A family added from outside the package
(tests/family_tiny_vit.py, one file) with one line, `register(TINY_VIT)`, trains through
`nnfractal run` like a built-in one."""
import numpy as np
import pytest
import torch
from family_tiny_vit import TINY_VIT

from nnfractal.cli.main import main
from nnfractal.config import ConfigError, build_config, config_from_toml
from nnfractal.models import arch_label, build_family, family_spec, model_names, register, unregister
from nnfractal.runner.run import score_map
from nnfractal.storage.store import RunStore
from nnfractal.training.budget import n_params
from nnfractal.training.engine import resolve_chunk_workers, train
from nnfractal.training.reference import train_single

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")

# A tiny ViT from the MLP preset: 2 attention blocks of width 8, 64 MNIST images, batches of 16.
TINY = dict(model="tiny-vit", depth=2, width=8, nonlinearity="relu", train_size=64, batch_size=16,
            eval_every=0, metric="train_loss", tile_batch=8)


@pytest.fixture
def tiny_vit():
    register(TINY_VIT)                              # the one line that adds a family
    yield TINY_VIT
    unregister(TINY_VIT.name)


def test_built_in_families_are_registered_and_config_refuses_others_naming_them():
    assert model_names() == ("resnet", "meanfield-mlp", "mlp", "meanfield-resmlp")
    with pytest.raises(ConfigError) as err:
        build_config("mlp300-mnist", model="vgg")
    assert str(err.value) == ("model: 'vgg' is not allowed "
                              "(allowed: resnet, meanfield-mlp, mlp, meanfield-resmlp)")
    with pytest.raises(ConfigError, match="tiny-vit"):
        build_config("mlp300-mnist", **TINY)         # not registered: unknown


def test_labels_come_from_the_family():
    assert arch_label(build_config("resnet20-mnist")) == "ResNet-20, residual, relu"
    assert arch_label(build_config("plain20-mnist")) == "ResNet-20, plain (no skips), relu"
    assert arch_label(build_config("paper-tanh")) == "mean-field MLP, 2 layers x 16, tanh"
    assert arch_label(build_config("mlp300-mnist")) == "MLP, 2 layers x 300, relu"


def test_a_registered_family_is_allowed_checked_and_refused_on_the_command_line(tiny_vit, tmp_path,
                                                                               capsys, monkeypatch):
    cfg = build_config("mlp300-mnist", **TINY)
    assert cfg.model == "tiny-vit" and arch_label(cfg) == "tiny ViT, 2 attention x 8, relu"
    with pytest.raises(ConfigError) as err:
        build_config("mlp300-mnist", **{**TINY, "model": "vgg"})
    assert str(err.value) == ("model: 'vgg' is not allowed "
                              "(allowed: resnet, meanfield-mlp, mlp, meanfield-resmlp, tiny-vit)")
    with pytest.raises(ConfigError, match=r"^depth: 9 is not allowed \(allowed: 1, 2, 3, 4\)$"):
        build_config("mlp300-mnist", **{**TINY, "depth": 9})          # the family's own check
    with pytest.raises(ConfigError, match=r"^dataset: 'gaussian' is not allowed for model tiny-vit"):
        build_config("mlp300-mnist", **{**TINY, "dataset": "gaussian"})
    monkeypatch.setenv("COLUMNS", "1000")       # argparse wraps at hyphens: "meanfield- resmlp"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--model MODEL resnet | meanfield-mlp | mlp | meanfield-resmlp | tiny-vit" in help_text
    assert "tiny-vit: attention blocks (1 to 4)" in help_text
    assert "hidden width (models meanfield-mlp, mlp, meanfield-resmlp, tiny-vit)" in help_text
    out = tmp_path / "refused"
    assert main(["run", "--preset", "mlp300-mnist", "--model", "tiny-vit", "--depth", "2",
                 "--width", "8", "--c_hidden", "4", "4", "4", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("nnfractal: error: c_hidden: 4 4 4 is not used by model "
                                       "tiny-vit (allowed: leave it out; its size is --width and "
                                       "--depth)\n")
    assert not out.exists()


def test_the_engine_trains_it_as_its_float64_reference_does(tiny_vit, mnist_tiny):
    """The batched family and its one-model reference (a plain nn.Module and torch.optim) give
    the same float64 curves, offsets and per-role learning rates included."""
    cfg = build_config("mlp300-mnist", **{**TINY, "precision": "float64", "steps": 4,
                                          "train_size": 32, "phase_space": "lr_vs_lr",
                                          "mnmx": [-1.0, 0.0, -1.5, -0.5], "base_lr": 0.2})
    family = build_family(cfg)
    points = np.array([[-1.5, -1.0], [-0.5, 0.0], [-1.0, -0.3]])
    batched = train(cfg, family, mnist_tiny, points).curves
    for i, point in enumerate(points):
        single = train_single(cfg, family, mnist_tiny, point)
        np.testing.assert_allclose(batched["train_loss"][i], single["train_loss"], rtol=1e-10)
        np.testing.assert_allclose(batched["train_acc"][i], single["train_acc"], rtol=1e-12)
    assert not np.allclose(batched["train_loss"][0], batched["train_loss"][1])   # rates matter


@pytest.mark.slow
def test_nnfractal_run_maps_the_new_family_with_both_outcomes(tiny_vit, tmp_path, capsys):
    """A 6 x 6 grid of learning rate 10^-1..10^3 (x weight offset), full-batch gradient descent
    for 20 steps: at the smallest rates the loss falls at every step, the largest diverge, and
    the map has both."""
    out = tmp_path / "run"
    code = main(["run", "--preset", "mlp300-mnist", "--model", "tiny-vit", "--depth", "2",
                 "--width", "8", "--train-size", "64", "--batch_size", "0", "--steps", "20",
                 "--eval_every", "0", "--readout", "train_loss", "--tile_batch", "8",
                 "--mnmx", "-1", "3", "-3", "-2", "--resolution", "6", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    cfg = config_from_toml(out / "config.toml")
    assert cfg.model == "tiny-vit" and cfg.depth == 2 and cfg.width == 8
    store = RunStore.open(out / "store.zarr")
    loss = store.read_curves()                                   # (rows = lr, cols = offset, steps)
    assert loss.shape == (6, 6, 20)
    assert (np.diff(loss[:2], axis=-1) < 0).all()               # lr 10^-1, 10^-0.2: always down
    assert not np.isfinite(loss[-1, :, -1]).any()                # lr 10^3: diverged
    scores = score_map(store, cfg)
    assert (scores < 0).any() and (scores > 0).any()             # converged and diverged points
    assert (out / "map.png").exists()
    assert "tiny ViT, 2 attention x 8, relu" in (out / "report.html").read_text()


def test_chunk_preferences_and_budget_estimates_are_the_family_s():
    assert family_spec("resnet").cpu_tile_batch == 4
    assert family_spec("meanfield-mlp").cpu_tile_batch == 256
    resnet, mlp = build_config("resnet20-mnist", compile="off"), build_config("mlp300-mnist")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:               # ResNet chunks side by side, one thread each; the MLP's one at a time
        assert resolve_chunk_workers(resnet.replace(chunk_workers=0), CPU, 64) == (2, 1)
        assert resolve_chunk_workers(mlp.replace(chunk_workers=0), CPU, 64) == (1, 2)
    finally:
        torch.set_num_threads(before)
    paper = build_config("paper-tanh")
    assert n_params(paper) == build_family(paper).n_params() == 272
    assert n_params(mlp) == sum(p.numel() for p in build_family(mlp).init_params(0).values())
