"""The one way nnfractal refuses: one line ``nnfractal: error: <field>: <what> (allowed: ...)`` on
stderr and exit code 2, and the errors whose str() is that line's message.

Every command writes its refusal through `refuse`; every error below is raised with a message that
already names the field or path. A diverging model is data, never one of these.
"""
from __future__ import annotations

import numbers
import sys
from pathlib import Path

EXIT_USAGE = 2          # a refused input or a failed run
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT)


def error_line(message: object) -> str:
    """The refusal line (no newline): ``nnfractal: error: <message>``."""
    return f"nnfractal: error: {message}"


def refuse(message: object) -> int:
    """Write the refusal line for `message` on stderr; return EXIT_USAGE for the command to exit with."""
    sys.stderr.write(error_line(message) + "\n")
    return EXIT_USAGE


def squeeze(text: object, limit: int | None = None) -> str:
    """`text` on one line (runs of whitespace, newlines included, become one space), cut to
    `limit` characters with a trailing '...' where longer."""
    s = " ".join(str(text).split())
    return s if limit is None or len(s) <= limit else s[: limit - 3] + "..."


def one_line(err: BaseException, limit: int | None = None) -> str:
    """An exception as 'OSError: [Errno 28] No space left on device: ...' on one line (just the
    type's name where the message is empty)."""
    text = squeeze(err, limit)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class ConfigError(ValueError):
    """A bad configuration value. `str(err)` is one line: 'field: what is wrong (allowed: ...)'.

    Here rather than in config.py so that the model families' own checks (models/registry.py,
    a floor below config) raise it too."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise ConfigError unless `value` is one of `allowed` (the refusal lists them)."""
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not allowed (allowed: {', '.join(map(str, allowed))})")


def is_int(value: object) -> bool:
    """Whether `value` is an integer: a Python or numpy int, never a bool (True is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int_at_least(name: str, value: object, minimum: int) -> int:
    """`value` as an int; ConfigError unless it is an integer (`is_int`) >= `minimum`."""
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise ConfigError(name, f"{value!r} is not allowed (allowed: an integer >= {minimum})")
    return int(value)  # type: ignore[call-overload]


class DataError(Exception):
    """A data set could not be provided.

    The message is a single line that starts with the offending field, e.g.
    ``"data_dir: /x is not readable"`` or ``"train_size: 5000 is out of range ..."``.
    """


class StoreError(Exception):
    """A store that is missing, foreign or corrupt. The message is one line naming the path."""


class RunFolderError(Exception):
    """An output folder that cannot take this run. One line naming the field."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training after a chunk; finished work is kept.

    str(): one line ``<where>[; <kept>]; resume with: <resume> <run_dir>`` (just `where` without
    a folder). A KeyboardInterrupt, so a caller's clean-up (a staging folder of its own) runs as for
    any Ctrl-C. The parts are kept apart so that a study that trained this run can say
    the same stop with its own folder and resume command (`for_folder`) without parsing text."""

    def __init__(self, where: str, run_dir: Path | None = None,
                 resume: str = "nnfractal run --resume", kept: str = ""):
        self.where, self.run_dir, self.resume, self.kept = where, run_dir, resume, kept
        parts = [where] + ([kept] if kept else [])
        if run_dir is not None:
            parts.append(f"resume with: {resume} {run_dir}")
        super().__init__("; ".join(parts))

    def for_folder(self, run_dir: Path, resume: str, kept: str = "") -> RunInterrupted:
        """The same stop, said for `run_dir` and its own resume command."""
        return RunInterrupted(self.where, run_dir, resume, kept)


class RunFailed(Exception):
    """Training, writing or drawing failed mid-run (an exception, a full disk); finished work is
    kept. str(): one line ``<brief> (<verb> with: <resume> <run_dir>)``, just `brief` without a
    folder. `brief` is the cause without the hint,
    for a study that names its own folder and command (`for_folder`)."""

    def __init__(self, brief: str, run_dir: Path | None = None,
                 resume: str = "nnfractal run --resume", verb: str = "resume"):
        self.brief, self.run_dir, self.resume, self.verb = brief, run_dir, resume, verb
        super().__init__(brief if run_dir is None else f"{brief} ({verb} with: {resume} {run_dir})")

    def for_folder(self, run_dir: Path | None, resume: str = "nnfractal run --resume") -> RunFailed:
        """The same failure, said for `run_dir` and its resume command (None: no hint)."""
        return RunFailed(self.brief, run_dir, resume)
