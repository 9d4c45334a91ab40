"""Files and folders written so that two processes, a crash or a signal never lose anything.

- `write_text_atomic` / `write_json_atomic`: a unique temporary name beside the file (two
  processes never share one), then a rename; any failure removes only that temporary file.
  JSON is strict: non-finite floats become null (``Infinity`` and ``NaN`` are not JSON).
- `new_staging_folder` + `claim_folder`: a result folder is built under a unique hidden name
  beside its destination and renamed into place in one step. rename(2) succeeds only where the
  destination is absent or an empty folder, so of two processes claiming the same destination
  exactly one wins, and the loser removes only its own staging folder.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nnfractal.estimators.boxcount import json_safe


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` through a unique temporary file in the same folder and a rename:
    a crash, a full disk or a concurrent writer leaves the old file (or none), never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            f.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)           # mkstemp makes 0600; a plain open would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(data: Any, indent: int | None = 2) -> str:
    """Strict JSON (allow_nan=False; non-finite floats written as null) with a final newline."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False) + "\n"


def read_json_or_empty(path: Path) -> dict:
    """The JSON object in `path`, or {} where the file is missing or unreadable (an optional
    file: a report or an update reads what is there)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: Any, indent: int | None = 2) -> None:
    write_text_atomic(path, json_text(data, indent))


def new_staging_folder(out: Path) -> Path:
    """A new private folder ``.<out.name>.<random>`` beside `out` (its parents are created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def claim_folder(work: Path, out: Path) -> bool:
    """Rename the staging folder `work` to `out` in one step; True if this process got `out`.

    False (and `work` untouched) when `out` is already taken: a non-empty folder or a file,
    e.g. made by another process a moment earlier. The folder gets the permissions a plain
    mkdir would have (mkdtemp makes 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(work, 0o777 & ~mask)
    try:
        os.rename(work, out)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return False
        raise
    return True


def remove_staging_folder(work: Path) -> None:
    """Remove a staging folder this process made (best effort: never anything else)."""
    shutil.rmtree(work, ignore_errors=True)


def keep_unclaimed(work: Path, out: Path) -> Path:
    """A finished result whose destination was taken meanwhile: move it to a visible sibling
    ``<out.name>-<random>`` (the staging folder's random part), so that nothing is lost and no
    hidden folder stays behind. Returns where it is."""
    suffix = work.name.rsplit(".", 1)[-1]
    kept = out.parent / f"{out.name}-{suffix}"
    if claim_folder(work, kept):
        return kept
    return work
