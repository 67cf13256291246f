"""Configuration dataclasses to and from JSON, with strict checks.

:func:`from_dict` builds a dataclass from a JSON-like dict: absent fields take their
defaults; unknown keys and values of the wrong type are refused with
:class:`~equivision.errors.ConfigError` naming the key path (``train.lr``) and the expected
type. :func:`to_dict` is the inverse, :func:`check_fields` holds a dataclass built in Python
to the same type rules, and :func:`diff_dicts` names the key paths where two configs differ.

This module sits below both :mod:`equivision.models` (model configs, checkpoint checks)
and :mod:`equivision.training` (run configs), so neither has to import the other.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from equivision.errors import ConfigError, DataFileNotFoundError

T = TypeVar("T")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(obj: Any, where: str) -> None:
    """Check the type of every field of dataclass ``obj`` against its annotation (Literal
    choices included), as reading JSON does, so that a config built in Python is held to
    the same rules; an int given for a float field becomes a float. ConfigError naming
    ``where.field`` otherwise. Called from the configs' ``__post_init__``."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        converted = _convert(hints[f.name], v, _path(where, f.name))
        if converted is not v:
            object.__setattr__(obj, f.name, converted)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain JSON-ready dicts/lists; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``: defaults for absent fields, ConfigError for
    unknown keys or values of the wrong type (``where`` prefixes key paths in messages)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a JSON object, got {_jsonish(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"unknown key(s) {', '.join(_path(where, k) for k in unknown)}; "
                          f"known keys: {known}")
    kwargs = {k: _convert(hints[k], v, _path(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or 'config'}: {e}") from e


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _jsonish(v: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    return f"{names.get(type(v), type(v).__name__)} ({json.dumps(v)[:40]})" if _dumpable(v) \
        else type(v).__name__


def _dumpable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def _convert(tp: Any, v: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return v
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, v, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where} has the wrong type: got {_jsonish(v)}")
    if origin is Literal:
        if v not in args or type(v) not in {type(a) for a in args}:
            choices = ", ".join(json.dumps(a) for a in args)
            raise ConfigError(f"{where} must be one of {choices}, got {_jsonish(v)}")
        return v
    if origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {_jsonish(v)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(v) != len(args):
                raise ConfigError(f"{where} must have {len(args)} entries, got {len(v)}")
            pairs = enumerate(zip(args, v, strict=True))
            return tuple(_convert(a, x, f"{where}[{i}]") for i, (a, x) in pairs)
        item = args[0] if args else Any
        out = [_convert(item, x, f"{where}[{i}]") for i, x in enumerate(v)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(v, dict):
            raise ConfigError(f"{where} must be an object, got {_jsonish(v)}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, x, f"{where}.{k}") for k, x in v.items()}
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(v) and isinstance(v, tp):
            return v
        return from_dict(tp, v, where)
    if tp is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{where} must be true or false, got {_jsonish(v)}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where} must be an integer, got {_jsonish(v)}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where} must be a number, got {_jsonish(v)}")
        return float(v)
    if tp is str:
        if not isinstance(v, str):
            raise ConfigError(f"{where} must be a string, got {_jsonish(v)}")
        return v
    raise ConfigError(f"{where}: unsupported field type {tp!r} in a config dataclass")


def read_json(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a JSON object from ``path`` with one-line errors (missing file, bad JSON)."""
    p = Path(path)
    if not p.is_file():
        raise DataFileNotFoundError(f"{what} file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{what} file {p} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {p} must hold a JSON object, got {_jsonish(data)}")
    return data


def diff_dicts(a: Any, b: Any, where: str = "") -> list[str]:
    """Key paths where two JSON-like values differ (for 'config does not match' messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(_path(where, k))
            else:
                out.extend(diff_dicts(a[k], b[k], _path(where, k)))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [where]
        pairs = enumerate(zip(a, b, strict=True))
        return [p for i, (x, y) in pairs for p in diff_dicts(x, y, f"{where}[{i}]")]
    return [] if a == b else [where or "(value)"]


__all__ = ["check_fields", "diff_dicts", "from_dict", "read_json", "to_dict"]
