"""A run's own inputs as .npz files: the initial weights (read here, for `registry.build_family`)
and the checks the data file shares (training/data.py reads it).

An **init file** holds one array per parameter of the model family, named as the family names
them (the keys of ``family.init_params(seed)``: ``weights.0``, ``weights.1``, ... for the
mean-field MLP, ``conv1.weight``, ``layer1.0.bn1.weight``, ... for the ResNet) and shaped as one
model's parameter, without a models axis. Arrays are float32 or float64 and finite; every model of
the grid starts from them (the ``seed`` draws nothing).

Files are read with ``allow_pickle=False`` (an .npz can hold pickled objects, which run code when
loaded). Every refusal is a `DataError` whose message is one line: the field (``init_file``,
``data_file``), the file, the array, and what is allowed.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nnfractal.errors import DataError, squeeze

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def file_sha256(path: str | Path) -> str:
    """The sha256 of the file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_sha256(field: str, path: str | Path, recorded: str = "") -> str:
    """The file's sha256; DataError when the file is missing, or when `recorded` (the run's
    config) is given and differs: the run was started with other contents."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{field}: {path} does not exist (allowed: an .npz file written by "
                        "numpy.savez)")
    try:
        sha = file_sha256(path)
    except OSError as err:
        raise DataError(f"{field}: {path} is not readable ({err.strerror}) (allowed: a "
                        "readable .npz file)") from None
    if recorded and sha != recorded:
        raise DataError(f"{field}: {path} changed since the run was started (sha256 now "
                        f"{sha[:12]}..., the run recorded {recorded[:12]}...) (allowed: the file "
                        "the run was started with)")
    return sha


def read_npz(field: str, path: str | Path) -> dict[str, np.ndarray]:
    """Every array of the .npz file at `path`, by name (no pickled objects)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith((b"PK\x03\x04", b"\x93NUMPY")):    # numpy would try it as a pickle
        raise DataError(f"{field}: {path} is not an .npz file (it does not start as a zip "
                        "archive) (allowed: a file written by numpy.savez)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{field}: {path} is a single .npy array, not an .npz file (allowed: "
                            "a file written by numpy.savez(path, name=array, ...))")
        with loaded as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError(f"{field}: {path} holds Python objects, which are not read (allowed: "
                            "numeric arrays, numpy.savez(path, name=array, ...))") from None
        raise DataError(f"{field}: {path} is not an .npz file ({squeeze(err, 120)}) (allowed: a file written "
                        "by numpy.savez)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{field}: {path} is not an .npz file ({type(err).__name__}) (allowed: "
                        "a file written by numpy.savez)") from None


def shape_text(shape: tuple) -> str:
    """(16, 1) -> '(16, 1)'; None entries (any size) -> 'N'."""
    return "(" + ", ".join("N" if n is None else str(n) for n in shape) + ")"


def check_names(field: str, path, arrays: dict, required: dict[str, str],
                optional: dict[str, str] = None) -> None:
    """Refuse a missing required array or an array of another name. `required` and `optional`:
    name -> its allowed shape, as the refusal lists them."""
    optional = optional or {}
    allowed = ", ".join(f"{n} {s}" for n, s in {**required, **optional}.items())
    for name in required:
        if name not in arrays:
            raise DataError(f"{field}: {path} has no array {name!r} (allowed: {allowed})")
    for name in arrays:
        if name not in required and name not in optional:
            raise DataError(f"{field}: {path}: array {name!r} is not one this run reads "
                            f"(allowed: {allowed})")


def check_float_array(field: str, path, name: str, array: np.ndarray, shape: tuple,
                      allowed: str) -> None:
    """Refuse an array that is not float32/float64, not of `shape` (None: any size) or not
    finite; `allowed` names the shape expected, e.g. '(16, 16) for model meanfield-mlp'."""
    if array.dtype not in FLOAT_DTYPES:
        raise DataError(f"{field}: {path}: array {name!r} has dtype {array.dtype} (allowed: "
                        "float32, float64)")
    check_shape(field, path, name, array, shape, allowed)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - finite.sum())
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DataError(f"{field}: {path}: array {name!r} holds {bad} NaN or infinite value"
                        f"{'s' if bad != 1 else ''}, the first at index {first} (allowed: finite "
                        "numbers)")


def check_shape(field: str, path, name: str, array: np.ndarray, shape: tuple,
                allowed: str) -> None:
    if array.ndim != len(shape) or any(n is not None and a != n
                                       for a, n in zip(array.shape, shape)):
        raise DataError(f"{field}: {path}: array {name!r} has shape {shape_text(array.shape)} "
                        f"(allowed: {allowed})")


def read_init_file(path: str | Path, expected: dict[str, tuple], label: str,
                   sha256: str = "") -> dict[str, Tensor]:
    """The initial weights in the init file at `path`, {name: tensor} in the file's dtype.

    `expected`: the family's parameter names and one model's shapes (from its `init_params`);
    `label` says which model they are, for the refusals (e.g. 'model meanfield-mlp (mean-field
    MLP, 2 layers x 16)'); `sha256`: the run's recorded hash (a file that changed is refused).
    """
    checked_sha256("init_file", path, sha256)
    arrays = read_npz("init_file", path)
    names = {n: f"{shape_text(s)}" for n, s in expected.items()}
    check_names("init_file", path, arrays, names)
    for name, shape in expected.items():
        check_float_array("init_file", path, name, arrays[name], tuple(shape),
                          f"{shape_text(shape)} for {label}")
    return {name: torch.from_numpy(np.array(arrays[name])) for name in expected}


def override_init(family, path: str | Path, label: str, sha256: str = "") -> None:
    """Make `family.init_params(seed)` return the init file's weights (any seed): the one place
    a run's initial weights come from, so the engine, the budget's memory count and the float64
    reference all start from the file. The file is read and checked here, once."""
    expected = {n: tuple(p.shape) for n, p in family.init_params(0).items()}
    weights = read_init_file(path, expected, label, sha256)
    family.init_params = lambda seed: {n: w.clone() for n, w in weights.items()}


def save_init_file(path: str | Path, params: dict[str, Tensor | np.ndarray]) -> None:
    """Write one model's parameters {name: array} as an init file (`read_init_file` reads it)."""
    np.savez(path, **{n: (p.detach().cpu().numpy() if isinstance(p, Tensor) else np.asarray(p))
                      for n, p in params.items()})
