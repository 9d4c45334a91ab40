"""Files and folders written so that two processes, a crash or a signal never lose anything.

- `write_text_atomic` / `write_json_atomic`: a unique temporary name beside the file (two
  processes never share one), then a rename; any failure removes only that temporary file.
  JSON is strict: non-finite floats become null (``Infinity`` and ``NaN`` are not JSON).
- `new_staging_folder` + `claim_folder`: a result folder is built under a unique hidden name
  beside its destination and renamed into place in one step. rename(2) succeeds only where the
  destination is absent or an empty folder, so of two processes claiming the same destination
  exactly one wins, and the loser removes only its own staging folder.
- A staging folder's name says which process made it (``.<name>.stage-<pid>-<start>-<random>@<host>``,
  start: the process's start time, so that a reused pid is not taken for it). The next
  `new_staging_folder` in the same parent removes those of processes of this host that are gone
  (killed with -9, say) and never one whose process still runs or that another host made.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from nnfractal.errors import RunFolderError, one_line
from nnfractal.estimators.boxcount import json_safe

STAGING = re.compile(r"^\.(?P<name>.+)\.stage-(?P<pid>\d+)-(?P<start>\d+)-(?P<random>[a-z0-9_]+)"
                     r"@(?P<host>[^/]+)$")


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


def new_staging_folder(out: Path, log=print) -> Path:
    """A new private folder ``.<out.name>.stage-<pid>-<start>-<random>@<host>`` beside `out` (its
    parents are created), once the stale staging folders of that parent are removed
    (`remove_stale_staging`; each removal is logged in one line)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out.parent, log)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.stage-{os.getpid()}-{_start_time(os.getpid())}-",
                                 suffix=f"@{_host()}", dir=out.parent))


def remove_stale_staging(parent: Path, log=print) -> list[Path]:
    """Remove the staging folders in `parent` whose process (named in the folder's name) is gone
    and ran on this host; returns them. A folder of a live process, or of another host (a shared
    filesystem), is never touched."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        owner = STAGING.match(entry.name)
        if owner is None or owner["host"] != _host() or not entry.is_dir():
            continue
        if process_alive(int(owner["pid"]), int(owner["start"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
            log(f"removed {entry}: a staging folder left by process {owner['pid']}, which is "
                "no longer running")
    return removed


def process_alive(pid: int, start: int = 0) -> bool:
    """True while process `pid` of this host runs and, where `start` is known (non-zero), is the
    process that started at that time (a pid can be reused)."""
    if pid <= 0:
        return False
    now = _start_time(pid)
    if now:
        return not start or now == start
    if Path("/proc/self/stat").exists():
        return False                    # /proc works here and has no entry: gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> int:
    """The start time of process `pid` in clock ticks after boot (Linux /proc), 0 where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _host() -> str:
    return socket.gethostname().replace("/", "_") or "localhost"


def claim_folder(work: Path, out: Path) -> bool:
    """Rename the staging folder `work` to `out` in one step; True if this process got `out`.

    False (and `work` untouched) when `out` is already taken: a non-empty folder or a file,
    e.g. made by another process a moment earlier. An `out` that cannot be renamed onto at all
    (a mount point, an immutable folder, another filesystem) is RunFolderError, one line. The
    folder gets the permissions a plain mkdir would have (mkdtemp makes 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(work, 0o777 & ~mask)
    try:
        os.rename(work, out)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return False
        raise RunFolderError(f"out: {out} cannot be made the result folder ({err.strerror or one_line(err)}"
                             f"{unrenamable_reason(out) or ''}) (allowed: a new folder, or an "
                             "empty one that is no mount point and not immutable)") from None
    return True


FS_IOC_GETFLAGS = 0x80086601                # linux/fs.h, on 64-bit Linux
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20


def unrenamable_reason(out: Path) -> str | None:
    """Why the existing empty folder `out` cannot be replaced by a rename (': a mount point',
    ': immutable'), or None where nothing says so."""
    out = Path(out)
    if not out.is_dir():
        return None
    if os.path.ismount(out):
        return ": a mount point"
    try:
        import array
        import fcntl
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = array.array("l", [0])
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        finally:
            os.close(fd)
    except (OSError, ImportError):
        return None
    if flags[0] & (FS_IMMUTABLE_FL | FS_APPEND_FL):
        return ": immutable" if flags[0] & FS_IMMUTABLE_FL else ": append-only"
    return None


def remove_staging_folder(work: Path) -> None:
    """Remove a staging folder this process made (best effort: never anything else)."""
    shutil.rmtree(work, ignore_errors=True)


def keep_unclaimed(work: Path, out: Path) -> Path:
    """A finished result whose destination was taken meanwhile: move it to a visible sibling
    ``<out.name>-<random>`` (the staging folder's random part), so that nothing is lost and no
    hidden folder stays behind. Returns where it is."""
    owner = STAGING.match(work.name)
    suffix = owner["random"] if owner else work.name.rsplit(".", 1)[-1]
    kept = out.parent / f"{out.name}-{suffix}"
    if claim_folder(work, kept):
        return kept
    return work
