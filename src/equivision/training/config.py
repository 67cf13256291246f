"""Typed run configurations: dataclasses with defaults, read from JSON with strict checks.

A run is configured by a JSON file with two optional sections::

    {"train": {"steps": 200, "lr": 0.01},          # fields of TrainConfig
     "task":  {"noise": 0.05, "model": {"hidden": 32}}}   # fields of the task's config

Every field has a default; the file overrides only what it names. Unknown keys and values
of the wrong type are refused with :class:`~equivision.errors.ConfigError` naming the key
path (``train.lr``) and the expected type. The resolved configuration (every field) is saved
as ``config.json`` beside every run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from equivision._validation import require_positive, require_range
from equivision.errors import ConfigError, DataFileNotFoundError

T = TypeVar("T")

RUN_CONFIG_FORMAT = "equivision-run/1"


@dataclass
class TrainConfig:
    """What every task shares: optimisation, schedule, logging, checkpoints, devices."""

    steps: int = 1000
    """Optimizer steps in total (the run ends there)."""
    batch_size: int = 32
    """Global batch size: under torchrun each of the N processes takes batch_size / N."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    """SGD only."""
    schedule: Literal["constant", "cosine", "linear", "step"] = "cosine"
    """Learning-rate factor after warm-up: constant, cosine or linear decay to min_lr_factor,
    or step (times step_gamma every step_size steps)."""
    warmup_steps: int = 0
    min_lr_factor: float = 0.0
    step_size: int = 1000
    step_gamma: float = 0.1
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 disables clipping."""
    seed: int = 0
    eval_every: int = 0
    """Evaluate every N steps (and always at the end); 0 = only at the end."""
    log_every: int = 10
    """Write mean training metrics over the last N steps to metrics.csv."""
    checkpoint_every: int = 500
    """Checkpoint every N steps (and always at the end, and when the eval metric improves);
    0 = no step-count trigger."""
    checkpoint_minutes: float = 10.0
    """Also checkpoint when this many minutes of wall time passed since the last checkpoint
    (checked every log_every steps), whichever of the two comes first; 0 = no time trigger."""
    keep_last: int = 2
    """Checkpoints kept besides the best one."""
    best_metric: str = ""
    """Eval metric that picks the best checkpoint; empty = the task's default."""
    best_mode: Literal["min", "max", ""] = ""
    """min or max; empty = the task's default."""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N; --device overrides it."""
    amp: bool = False
    """Mixed precision on CUDA (autocast); ignored with a warning on CPU."""
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    num_workers: int = 0
    """DataLoader worker processes; bitwise resume needs datasets whose randomness derives
    from the index (or num_workers = 0)."""
    eval_batch_size: int = 0
    """0 = batch_size."""
    dist_timeout_s: float = 1800.0
    """How long a collective waits for the other processes before failing (torchrun); the
    other ranks wait while rank 0 evaluates, so keep it above one evaluation's duration."""

    def __post_init__(self) -> None:
        _check_train(self)


MAX_LR = 100.0
"""Learning rates above this are refused: far beyond any schedule that trains, and large
enough to overflow the optimizer's float arithmetic."""


def _check_train(c: TrainConfig) -> None:
    check_fields(c, "train")
    for name in ("steps", "batch_size", "log_every", "keep_last", "step_size"):
        if getattr(c, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {getattr(c, name)}")
    for name in ("warmup_steps", "eval_every", "checkpoint_every", "num_workers",
                 "eval_batch_size", "seed"):
        if getattr(c, name) < 0:
            raise ConfigError(f"train.{name} must be >= 0, got {getattr(c, name)}")
    for name in ("weight_decay", "grad_clip", "checkpoint_minutes"):
        require_positive(getattr(c, name), f"train.{name}", allow_zero=True, error=ConfigError)
    require_positive(c.lr, "train.lr", error=ConfigError)
    require_positive(c.dist_timeout_s, "train.dist_timeout_s", error=ConfigError)
    require_positive(c.step_gamma, "train.step_gamma", error=ConfigError)
    if c.lr > MAX_LR:
        raise ConfigError(f"train.lr = {c.lr:g} is absurdly large (at most {MAX_LR:g}); "
                          "typical values are 1e-4 to 1e-1")
    require_range(c.momentum, "train.momentum", 0.0, 1.0, error=ConfigError)
    require_range(c.min_lr_factor, "train.min_lr_factor", 0.0, 1.0, error=ConfigError)
    if c.warmup_steps > c.steps:
        raise ConfigError(f"train.warmup_steps ({c.warmup_steps}) must be <= train.steps "
                          f"({c.steps})")
    check_device_name(c.device, "train.device")


def check_device_name(name: str, where: str = "device") -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ConfigError otherwise."""
    if name in ("auto", "cpu", "cuda"):
        return
    index = name[5:] if name.startswith("cuda:") else ""
    if not (index.isascii() and index.isdigit()):
        raise ConfigError(f"{where} must be auto, cpu, cuda or cuda:N, got {name!r}")


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


@dataclass
class RunConfig:
    """A whole run: the task's name, the shared training settings and the task's own config."""

    task_name: str
    train: TrainConfig = field(default_factory=TrainConfig)
    task: Any = None  # an instance of the task's config dataclass

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_CONFIG_FORMAT, "task_name": self.task_name,
                "train": to_dict(self.train), "task": to_dict(self.task)}


# ----------------------------------------------------------------------------- conversion

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


# ----------------------------------------------------------------------------- files

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


def build_run_config(task_name: str, task_config_cls: type, data: dict[str, Any] | None,
                     ) -> RunConfig:
    """Resolve a user's JSON dict (sections ``train`` and ``task``, both optional) against
    the defaults. A ``task_name`` key, when present, must name the same task."""
    data = dict(data or {})
    data.pop("format", None)
    named = data.pop("task_name", task_name)
    if named != task_name:
        raise ConfigError(f"the config is for task {named!r}, not {task_name!r}")
    unknown = sorted(set(data) - {"train", "task"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; a run config has "
                          "the sections 'train' and 'task'")
    train = from_dict(TrainConfig, data.get("train", {}), "train")
    task = from_dict(task_config_cls, data.get("task", {}), "task")
    return RunConfig(task_name=task_name, train=train, task=task)


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
