"""Reading a run folder: where its checkpoints are, which one is best, its saved config.

Layout of a run folder::

    runs/toy/
      config.json                      resolved run config (every field)
      metrics.csv                      step,split,metric,value
      best.json                        {"step", "metric", "value"} of the best checkpoint
      checkpoints/step-00000100/
        model.safetensors              model weights (what inference loads)
        train_state.safetensors        optimizer tensors (Adam moments, momentum buffers)
        meta.json                      step, config, model name+config, optimizer scalars,
                                       scheduler/scaler state, RNG state of every rank,
                                       metrics, best, SHA-256 of both tensor files

This module only reads; :mod:`equivision.training.checkpoint` writes. It sits below both
:mod:`equivision.models` (``load`` of a run folder) and :mod:`equivision.training`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equivision.configio import read_json
from equivision.errors import CheckpointError, DataFileNotFoundError

CHECKPOINT_FORMAT = "equivision-checkpoint/1"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    meta: dict[str, Any]


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in ``run_dir``, ascending."""
    d = checkpoints_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir()
                  if p.is_dir() and (m := _STEP_DIR.match(p.name)))


def read_meta(ckpt_dir: Path) -> dict[str, Any]:
    p = ckpt_dir / "meta.json"
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint {ckpt_dir} has no meta.json; it is incomplete") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p} is corrupt (not valid JSON: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not an equivision checkpoint ({CHECKPOINT_FORMAT})")
    return meta


def find_checkpoint(run_dir: Path, which: str | int = "latest") -> CheckpointInfo:
    """The checkpoint ``which`` ("latest", "best" or a step) of a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataFileNotFoundError(f"run folder {run_dir} does not exist")
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise CheckpointError(f"run folder {run_dir} has no checkpoints (expected "
                              f"{checkpoints_dir(run_dir)}/step-NNNNNNNN); train it first")
    if which == "latest":
        step = steps[-1]
    elif which == "best":
        best = read_best(run_dir)
        step = best["step"] if best is not None and best["step"] in steps else steps[-1]
    else:
        try:
            step = int(which)
        except ValueError as e:
            raise CheckpointError(f"checkpoint must be 'latest', 'best' or a step number, "
                                  f"got {which!r}") from e
        if step not in steps:
            raise CheckpointError(f"run {run_dir} has no checkpoint at step {step}; "
                                  f"it has steps {', '.join(map(str, steps))}")
    path = checkpoints_dir(run_dir) / step_dir_name(step)
    return CheckpointInfo(path, step, read_meta(path))


def read_best(run_dir: Path) -> dict[str, Any] | None:
    p = Path(run_dir) / "best.json"
    if not p.is_file():
        return None
    try:
        best = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p} is corrupt (not valid JSON: {e})") from e
    if not isinstance(best, dict) or not isinstance(best.get("step"), int):
        raise CheckpointError(f"{p} does not name a checkpoint step")
    return best


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The JSON object of a run folder's ``config.json`` (as saved, unresolved)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataFileNotFoundError(f"run folder {run_dir} does not exist")
    p = run_dir / "config.json"
    if not p.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder (no config.json)")
    return read_json(p, "run config")


__all__ = ["CHECKPOINT_FORMAT", "CheckpointInfo", "checkpoint_steps", "checkpoints_dir", "find_checkpoint",
           "read_best", "read_meta", "read_run_config", "step_dir_name"]
