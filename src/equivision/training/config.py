"""Typed run configurations: dataclasses with defaults, read from JSON with strict checks.

A run is configured by a JSON file with two optional sections::

    {"train": {"steps": 200, "lr": 0.01},          # fields of TrainConfig
     "task":  {"noise": 0.05, "model": {"hidden": 32}}}   # fields of the task's config

Every field has a default; the file overrides only what it names. Unknown keys and values
of the wrong type are refused with :class:`~equivision.errors.ConfigError` naming the key
path (``train.lr``) and the expected type (see :mod:`equivision.configio`). The resolved
configuration (every field) is saved as ``config.json`` beside every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from equivision._validation import require_positive, require_range
from equivision.configio import check_fields, diff_dicts, from_dict, read_json, to_dict
from equivision.errors import ConfigError

# Conversion helpers live in equivision.configio (below models and training); they stay
# importable from here.
__all__ = ["RUN_CONFIG_FORMAT", "RunConfig", "TrainConfig", "build_run_config", "check_device_name",
           "check_fields", "diff_dicts", "from_dict", "read_json", "to_dict"]

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
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights, ``avg = d avg + (1 - d) w`` after
    every step with ``d = min(ema_decay, (1 + t) / (10 + t))`` at step ``t`` (so the first
    steps do not dominate). Evaluation, the best checkpoint and the checkpoints' model weights
    are the average's; the raw weights are evaluated too (metrics prefixed ``raw_``) and kept
    in train_state for resume. 0 = off; typical values 0.99-0.9999."""
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
    init_from: str = ""
    """Start (step 0) from these weights instead of a random initialisation: a run folder
    (its best checkpoint), a packaged model's name or a safetensors file; the model's tensor
    names and shapes must match. Empty: random initialisation from ``seed``."""
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
    if not 0.0 <= c.ema_decay < 1.0:  # also refuses NaN
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {c.ema_decay}; 0 turns "
                          "the weight average off, typical values are 0.99-0.9999")
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


@dataclass
class RunConfig:
    """A whole run: the task's name, the shared training settings and the task's own config."""

    task_name: str
    train: TrainConfig = field(default_factory=TrainConfig)
    task: Any = None  # an instance of the task's config dataclass

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_CONFIG_FORMAT, "task_name": self.task_name,
                "train": to_dict(self.train), "task": to_dict(self.task)}


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


