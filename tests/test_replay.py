"""Replaying another tool's experiment: `--data-file` and `--init-file` (.npz) give the data and
the initial weights. A run from files exported from a run equals that run bit for bit; a bad file
is one line, exit 2, nothing written; a changed file is refused on resume; `sample` replays the
files too, and `compare` checks them (data) or refuses them (initial weights)."""
import os

import numpy as np
import pytest

from nnfractal.cli.main import main
from nnfractal.config import Config, ConfigError, build_config, config_from_toml, to_toml
from nnfractal.models import build_family
from nnfractal.models.input_files import file_sha256, save_init_file
from nnfractal.runner.run import execute, load_data, resume
from nnfractal.storage.store import RunStore
from nnfractal.training.data import save_data_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A float64 grid of the paper's MLP that trains in a second: 6 x 6 points, 40 steps, the colab's
# window (both outcomes).
FLAGS = dict(resolution=6, steps=40, mnmx=(-3.0, 6.0, -3.0, 6.0), tile_batch=12)
ARGS = ["--preset", "paper-tanh", "--resolution", "6", "--steps", "40", "--mnmx", "-3", "6",
        "-3", "6", "--tile_batch", "12", "--no-progress"]


def quiet(*_):
    pass


def curves(run_dir):
    return RunStore.open(run_dir / "store.zarr").read_curves()


def export_inputs(cfg: Config, folder):
    """The data and initial weights a run of `cfg` draws, written as a data and an init file."""
    family = build_family(cfg)
    data_file, init_file = folder / "data.npz", folder / "init.npz"
    save_data_file(data_file, load_data(cfg, family))
    save_init_file(init_file, family.init_params(cfg.seed))
    return data_file, init_file


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A run with drawn data (data_seed 2) and weights (seed 3), and its inputs as files."""
    root = tmp_path_factory.mktemp("replay")
    cfg = build_config("paper-tanh", seed=3, data_seed=2, **FLAGS)
    execute(cfg, root / "drawn", progress=False, log=quiet, draw=False)
    return (root / "drawn", *export_inputs(cfg, root))


@pytest.mark.slow  # the whole CLI run: pictures and report
def test_a_run_from_exported_files_equals_the_run_they_came_from_bit_for_bit(drawn, tmp_path,
                                                                              capsys):
    """Through the CLI, from another working folder (relative paths); the defaults (seed 0,
    data_seed 0) would draw other data and weights, so equality shows both files were used, and
    config.toml records each file's absolute path and sha256."""
    run_dir, data_file, init_file = drawn
    os.chdir(data_file.parent)
    out = tmp_path / "replayed"
    assert main(["run", *ARGS, "--data-file", data_file.name, "--init-file", init_file.name,
                 "--out", str(out)]) == 0
    assert np.array_equal(curves(out), curves(run_dir), equal_nan=True)
    cfg = config_from_toml(out / "config.toml")
    assert (cfg.data_file, cfg.init_file) == (str(data_file), str(init_file))
    assert (cfg.data_sha256, cfg.init_sha256) == (file_sha256(data_file), file_sha256(init_file))
    assert cfg.train_size == 272                       # the data file's rows
    assert "data file" in RunStore.open(out / "store.zarr").attrs["data_source"]


def test_each_file_alone_replaces_only_what_it_holds(drawn, tmp_path):
    """The data file with drawn weights (seed 3) and the init file with drawn data (data_seed 2)
    each give the drawn run; with the other input drawn from seed 0 they do not."""
    run_dir, data_file, init_file = drawn
    for name, flags in (("data", dict(data_file=str(data_file), seed=3)),
                        ("init", dict(init_file=str(init_file), data_seed=2))):
        execute(build_config("paper-tanh", **FLAGS, **flags), tmp_path / name, progress=False,
                log=quiet, draw=False)
        assert np.array_equal(curves(tmp_path / name), curves(run_dir), equal_nan=True), name
    execute(build_config("paper-tanh", **FLAGS, data_file=str(data_file)), tmp_path / "seed0",
            progress=False, log=quiet, draw=False)
    assert not np.array_equal(curves(tmp_path / "seed0"), curves(run_dir), equal_nan=True)


def test_a_classification_run_replays_its_images_labels_and_held_out_split(tmp_path, mnist_tiny):
    """The MNIST MLP: x, y, x_test, y_test and the weights with their biases, bit for bit (every
    recorded curve, the held-out ones included)."""
    flags = dict(width=8, resolution=2, num_epochs=2, train_size=32, test_size=64,
                 batch_size=16, tile_batch=4, seed=1)
    cfg = build_config("mlp300-mnist", **flags)
    execute(cfg, tmp_path / "drawn", progress=False, log=quiet, draw=False)
    data_file, init_file = export_inputs(cfg, tmp_path)
    files = dict(data_file=str(data_file), init_file=str(init_file))
    replay = build_config("mlp300-mnist", **{k: v for k, v in flags.items()
                                             if k not in ("train_size", "test_size", "seed")},
                          **files)
    execute(replay, tmp_path / "replayed", progress=False, log=quiet, draw=False)
    a, b = (RunStore.open(tmp_path / n / "store.zarr") for n in ("drawn", "replayed"))
    for metric in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert np.array_equal(a.read_curves(metric), b.read_curves(metric), equal_nan=True), metric


# ---- refusals: one line naming the file's field and the array, exit 2, nothing written ----------

def _bad_files(folder, data_file, init_file):
    data, init = dict(np.load(data_file)), dict(np.load(init_file))
    nan_y = data["y"].copy()
    nan_y[5, 0] = np.inf
    nan_w = init["weights.1"].copy()
    nan_w[2, 0] = np.nan
    cases = {
        "x_shape": ("data", dict(data, x=data["x"][:, :8]),
                    "array 'x' has shape (272, 8) (allowed: (N, 16) for model meanfield-mlp"),
        "y_rows": ("data", dict(data, y=data["y"][:10]),
                   "array 'y' has 10 rows for 272 in 'x' (allowed: the same number, at least 1)"),
        "y_inf": ("data", dict(data, y=nan_y),
                  "array 'y' holds 1 NaN or infinite value, the first at index (5, 0)"),
        "no_y": ("data", {"x": data["x"]}, "has no array 'y' (allowed: x (N, 16), y (N, 1))"),
        "x_int": ("data", dict(data, x=data["x"].astype(np.int32)),
                  "array 'x' has dtype int32 (allowed: float32, float64)"),
        "typo": ("data", {"X": data["x"], "y": data["y"]}, "has no array 'x'"),
        "w_shape": ("init", dict(init, **{"weights.0": init["weights.0"][:, :15]}),
                    "array 'weights.0' has shape (16, 15) (allowed: (16, 16) for model "
                    "meanfield-mlp"),
        "w_nan": ("init", dict(init, **{"weights.1": nan_w}),
                  "array 'weights.1' holds 1 NaN or infinite value, the first at index (2, 0)"),
        "w_missing": ("init", {"weights.0": init["weights.0"]},
                      "has no array 'weights.1' (allowed: weights.0 (16, 16), weights.1 (16, 1))"),
        "w_f16": ("init", dict(init, **{"weights.0": init["weights.0"].astype(np.float16)}),
                  "array 'weights.0' has dtype float16 (allowed: float32, float64)"),
        "w_extra": ("init", dict(init, bias=np.zeros(3)), "array 'bias' is not one this run reads"),
    }
    for name, (kind, arrays, message) in cases.items():
        path = folder / f"{name}.npz"
        np.savez(path, **arrays)
        yield name, kind, path, message


def test_bad_files_are_refused_in_one_line_with_exit_2_and_nothing_written(drawn, tmp_path,
                                                                           capsys):
    _, data_file, init_file = drawn
    for name, kind, path, message in _bad_files(tmp_path, data_file, init_file):
        out = tmp_path / f"run-{name}"
        code = main(["run", *ARGS, f"--{kind}-file", str(path), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, (name, err)
        assert err.startswith(f"nnfractal: error: {kind}_file: {path}"), (name, err)
        assert message in err, (name, err)
        assert not out.exists(), name


@pytest.mark.parametrize("content,message", [
    (None, "does not exist (allowed: an .npz file"),
    (b"not a zip", "is not an .npz file"),
    ("npy", "is a single .npy array, not an .npz file"),
    ("object", "holds Python objects, which are not read"),
])
def test_files_that_are_not_npz_arrays_are_refused(tmp_path, capsys, content, message):
    path = tmp_path / "f.npz"
    if content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros((272, 16)))
    elif content == "object":
        np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros((1, 1)))
    elif content is not None:
        path.write_bytes(content)
    out = tmp_path / "run"
    assert main(["run", *ARGS, "--data-file", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nnfractal: error: data_file: {path} ") and err.count("\n") == 1
    assert message in err and not out.exists()


@pytest.mark.parametrize("argv,field", [
    (["--init-file", "w.npz", "--seed", "4"], "seed"),
    (["--data-file", "d.npz", "--train-size", "100"], "train_size"),
    (["--data-file", "d.npz", "--data-seed", "1"], "data_seed"),   # full batch: nothing drawn
])
def test_a_flag_the_files_make_unused_is_refused(tmp_path, capsys, argv, field):
    assert main(["run", *ARGS, *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nnfractal: error: {field}: ") and "allowed: leave it out" in err


def test_config_checks_the_recorded_hashes():
    with pytest.raises(ConfigError, match="^data_sha256: 'abc' is not allowed"):
        build_config("paper-tanh", data_file="/x.npz").replace(data_sha256="abc")
    with pytest.raises(ConfigError, match="^init_sha256: .* is recorded without a init_file"):
        build_config("paper-tanh").replace(init_sha256="0" * 64)


def test_file_paths_are_recorded_absolute_and_survive_the_toml_round_trip(tmp_path):
    os.chdir(tmp_path)
    cfg = build_config("paper-tanh", data_file="sub/../d.npz", init_file="~/w.npz")
    assert cfg.data_file == str(tmp_path.resolve() / "d.npz")
    assert cfg.init_file == os.path.join(os.path.expanduser("~"), "w.npz")
    (tmp_path / "c.toml").write_text(to_toml(cfg.replace(data_sha256="a" * 64)))
    assert config_from_toml(tmp_path / "c.toml") == cfg.replace(data_sha256="a" * 64)


# ---- resume, sample, compare ---------------------------------------------------------------------

def _copies(drawn, folder):
    _, data_file, init_file = drawn
    d, w = folder / "d.npz", folder / "w.npz"
    d.write_bytes(data_file.read_bytes())
    w.write_bytes(init_file.read_bytes())
    return d, w


@pytest.mark.parametrize("changed", ["data", "init"])
def test_resume_refuses_a_changed_file_and_finishes_with_the_original(drawn, tmp_path, capsys,
                                                                      monkeypatch, changed):
    """A run stopped by a failing tile; its data (or init) file is then rewritten: --resume is
    one line naming the file, exit 2, the store untouched; the original file back, --resume
    finishes the drawn run bit for bit."""
    d, w = _copies(drawn, tmp_path)
    out = tmp_path / "run"
    monkeypatch.setenv("NNFRACTAL_TEST_FAIL_TILE", "1")
    assert main(["run", *ARGS, "--tile-rows", "2", "--data-file", str(d), "--init-file", str(w),
                 "--out", str(out)]) == 2
    monkeypatch.delenv("NNFRACTAL_TEST_FAIL_TILE")
    capsys.readouterr()
    path = d if changed == "data" else w
    original = path.read_bytes()
    arrays = dict(np.load(path))
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] * (1 + 1e-15)           # a change far below any printout
    np.savez(path, **arrays)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["run", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nnfractal: error: {changed}_file: {path} changed since the run was "
                          "started (sha256 now ") and err.count("\n") == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    path.write_bytes(original)
    resume(out, progress=False, log=quiet, draw=False)
    assert np.array_equal(curves(out), curves(drawn[0]), equal_nan=True)


@pytest.mark.slow  # the whole CLI run: pictures and report
def test_resume_with_the_preset_and_the_file_flags_is_accepted(drawn, tmp_path, capsys):
    """--resume with the flags the run was started with (its preset, the files by a relative
    path): the recorded hashes and sizes are not choices the preset could contradict."""
    d, w = _copies(drawn, tmp_path)
    os.chdir(tmp_path)
    out = tmp_path / "run"
    flags = ["--data-file", "d.npz", "--init-file", "w.npz"]
    assert main(["run", *ARGS, *flags, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", *ARGS, *flags, "--resume", str(out)]) == 0
    assert "is complete: nothing to train or draw" in capsys.readouterr().out
    assert main(["run", "--resume", str(out), "--data-file", str(w)]) == 2
    assert "--data_file " in capsys.readouterr().err


@pytest.mark.slow
def test_sample_replays_the_files_as_it_samples_the_drawn_network(drawn, tmp_path, capsys):
    """`nnfractal sample` with the files trains exactly what sampling the drawn network trains
    (the same points and curves), and records the files; a bad file is refused, nothing written."""
    _, data_file, init_file = drawn
    common = ["paper-tanh", "--steps", "30", "--mnmx", "-3", "6", "-3", "6", "--no-progress",
              "--method", "transect", "--points", "1024", "--lines", "2"]
    assert main(["sample", *common, "--seed", "3", "--data-seed", "2",
                 "--out", str(tmp_path / "drawn")]) == 0
    assert main(["sample", *common, "--data-file", str(data_file), "--init-file", str(init_file),
                 "--out", str(tmp_path / "files")]) == 0
    a, b = (RunStore.open(tmp_path / n / "store.zarr") for n in ("drawn", "files"))
    assert np.array_equal(a.read_curves(), b.read_curves(), equal_nan=True)
    cfg = config_from_toml(tmp_path / "files" / "config.toml")
    assert cfg.init_sha256 == file_sha256(init_file) and cfg.data_sha256 == file_sha256(data_file)
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 16)), y=np.zeros((3, 2)))
    assert main(["sample", *common, "--data-file", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "array 'y' has shape (3, 2) (allowed: (N, 1)" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_compare_refuses_an_init_file_and_checks_a_data_file_against_both_models(drawn,
                                                                                  tmp_path,
                                                                                  capsys):
    _, data_file, init_file = drawn
    out = tmp_path / "cmp"
    assert main(["compare", "paper-tanh", "paper-relu", "--init-file", str(init_file),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnfractal: error: init_file: is not allowed with compare")
    assert main(["compare", "paper-tanh", "paper-relu", "--data-file", str(data_file),
                 "--width", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "data_file: " in err and "array 'x' has shape (272, 16) (allowed: (N, 8)" in err
    assert not out.exists()
