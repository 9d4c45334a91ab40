"""Dataclasses that are the one definition of a JSON file: `JsonRecord`.

A result file (zoom.json, compare.json, sample.json) and a plan file (zoom_plan.json, plan.json)
are each one `JsonRecord` subclass: its fields, in order, are the file's keys. `to_json()` gives
the dict to write (nested records, lists, tuples and dicts of them; tuples and paths as JSON
lists and strings); `from_json(data)` reads one back, driven by the field annotations, so that a
reader never walks the JSON with ``.get()`` chains.

Older folders: a key missing from the file takes the field's default (every field added after a
format's first version has one), and keys the record does not know are ignored. A file that
cannot be read as the record, e.g. a required field missing or another format, is refused in one
line (`read_record` raises StoreError naming the path).

Estimates (dimension, interval, reason, evidence) stay the estimators' own dicts
(``DimensionEstimate.to_dict()``, ``stats.pool``, ``stats.difference``): their keys are defined
there, and a record only carries them.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from nnfractal.errors import StoreError

from .folders import write_json_atomic

# field(metadata=OMIT_NONE): the key is left out of the file while the value is None (a key that
# an older writer only wrote in some cases, kept so that the files stay as they were)
OMIT_NONE = {"omit_none": True}

R = TypeVar("R", bound="JsonRecord")


class JsonRecord:
    """Mixin for a dataclass whose fields are a JSON object's keys (see the module docstring).

    `json_format`: the value the file's ``format`` key must have (None: the file has no such key).
    """
    json_format: ClassVar[str | None] = None

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _to_json(value)
        return out

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        """The record of a JSON object; ValueError (one line, naming the key) when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object but {type(data).__name__}")
        if cls.json_format is not None and data.get("format") != cls.json_format:
            raise ValueError(f"format is {data.get('format')!r}, not {cls.json_format!r}")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                try:
                    values[f.name] = _from_json(hints[f.name], data[f.name])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{f.name}: {err}") from None
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{f.name}: missing")
        return cls(**values)

    def write(self, path: Path) -> None:
        """Write the record to `path` atomically (strict JSON: non-finite floats as null)."""
        write_json_atomic(path, self.to_json())


def read_record(cls: type[R], path: Path, what: str, field_name: str = "run_dir") -> R:
    """The record in the JSON file `path`; StoreError ``<field_name>: <path> is not a readable
    <what> (<why>)`` for a missing, unparsable or foreign file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{field_name}: {path} is not a readable {what} "
                         f"({type(err).__name__})") from None
    try:
        return cls.from_json(data)
    except ValueError as err:
        raise StoreError(f"{field_name}: {path} is not a readable {what} ({err})") from None


def _to_json(value: Any) -> Any:
    if isinstance(value, JsonRecord):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _from_json(hint: Any, value: Any) -> Any:
    """`value` read as the annotation `hint` says (records, lists, tuples, dicts, Optional,
    Path, float); anything else is taken as it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else value
    if value is None:
        return None
    if isinstance(hint, type) and issubclass(hint, JsonRecord):
        return hint.from_json(value)
    if origin is list:
        return [_from_json(args[0], v) for v in _sequence(value)] if args else list(value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in _sequence(value))
        return tuple(_from_json(a, v) for a, v in zip(args, _sequence(value))) if args else tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"expected an object, got {type(value).__name__}")
        return {k: _from_json(args[1], v) for k, v in value.items()} if args else dict(value)
    if hint is Path:
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _sequence(value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return list(value)
