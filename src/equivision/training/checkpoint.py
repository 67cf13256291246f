"""Checkpoints of a run: safetensors for tensors, JSON for everything else; atomic.

The layout of a run folder is described in :mod:`equivision.runs`, which reads it.

A checkpoint folder is written in a hidden temporary folder and renamed into place, so a
killed run leaves either a complete checkpoint or none. Nothing is ever unpickled.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equivision.errors import CheckpointError
from equivision.io import atomic_directory, atomic_path
from equivision.io.atomic import is_equivision_temp
from equivision.models.weights import file_sha256, read_tensors, save_tensors

# Reading a run folder lives in equivision.runs (below models and training); these names
# stay importable from here.
from equivision.runs import (  # noqa: F401
    CHECKPOINT_FORMAT,
    CheckpointInfo,
    checkpoint_steps,
    checkpoints_dir,
    find_checkpoint,
    read_best,
    read_meta,
    step_dir_name,
)


def verify_checkpoint(info: CheckpointInfo) -> None:
    """CheckpointError unless both tensor files exist with the size and SHA-256 that
    meta.json recorded (what a torn copy, a full disk or bit rot breaks)."""
    files = info.meta.get("files")
    if not isinstance(files, dict):
        raise CheckpointError(f"{info.path}/meta.json records no file digests")
    for name in ("model.safetensors", "train_state.safetensors"):
        p, want = info.path / name, files.get(name)
        if not isinstance(want, dict):
            raise CheckpointError(f"{info.path}/meta.json records no digest of {name}")
        if not p.is_file():
            raise CheckpointError(f"{p} is missing")
        if p.stat().st_size != want.get("bytes") or file_sha256(p) != want.get("sha256"):
            raise CheckpointError(f"{p} is corrupt (its size or SHA-256 differs from meta.json)")


def find_resumable(run_dir: Path) -> tuple[CheckpointInfo, list[tuple[int, str]]]:
    """The newest checkpoint of ``run_dir`` that reads back intact, and the newer ones
    skipped as ``(step, why)``. CheckpointError when none is intact."""
    steps = checkpoint_steps(run_dir)
    if not steps:
        find_checkpoint(run_dir, "latest")  # raises the usual 'no checkpoints' error
    skipped: list[tuple[int, str]] = []
    for step in reversed(steps):
        try:
            info = find_checkpoint(run_dir, step)
            verify_checkpoint(info)
        except CheckpointError as e:
            skipped.append((step, str(e)))
            continue
        return info, skipped
    why = "; ".join(f"step {s}: {w}" for s, w in skipped)
    raise CheckpointError(f"no checkpoint of {run_dir} is intact ({why}); start afresh with "
                          "--overwrite")


def drop_after(run_dir: Path, step: int) -> list[int]:
    """Remove the checkpoints after ``step`` (a resume from ``step`` rewrites that future, and
    stale later ones would outrank the new ones when pruning); returns their steps."""
    later = [s for s in checkpoint_steps(run_dir) if s > step]
    for s in later:
        if not remove_checkpoint_dir(checkpoints_dir(run_dir) / step_dir_name(s)):
            raise CheckpointError(f"{checkpoints_dir(run_dir) / step_dir_name(s)} holds files "
                                  "equivision did not write; move them away before resuming")
    return later


#: Temporary checkpoint folders of versions that did not name the writer's PID.
_LEGACY_TEMP = re.compile(r"^\.step-\d{8}\.[^/]*\.(?:tmp|old)$")

#: What a checkpoint folder holds (see :func:`save_checkpoint`).
CHECKPOINT_FILES = frozenset({"model.safetensors", "train_state.safetensors", "meta.json"})


def remove_checkpoint_dir(path: Path) -> bool:
    """Remove the checkpoint folder ``path`` if it holds only what :func:`save_checkpoint`
    writes (or equivision temporaries); returns False, touching nothing, for a link or a
    folder with anything else in it. Run folders of older versions carry no marker, so
    ownership is read from the content."""
    if path.is_symlink() or not path.is_dir():
        return False
    if any(e.name not in CHECKPOINT_FILES and not is_equivision_temp(e.name) for e in path.iterdir()):
        return False
    shutil.rmtree(path)
    return True


def write_best(run_dir: Path, step: int, metric: str, value: float) -> None:
    write_json(Path(run_dir) / "best.json", {"step": step, "metric": metric, "value": value})


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")


def save_checkpoint(run_dir: Path, step: int, model_state: Mapping[str, torch.Tensor],
                    state_tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-NNNNNNNN`` atomically; returns its path."""
    target = checkpoints_dir(run_dir) / step_dir_name(step)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target, overwrite=True) as tmp:
        save_tensors(model_state, tmp / "model.safetensors")
        save_tensors(state_tensors, tmp / "train_state.safetensors")
        files = {n: {"sha256": file_sha256(tmp / n), "bytes": (tmp / n).stat().st_size}
                 for n in ("model.safetensors", "train_state.safetensors")}
        full = {"format": CHECKPOINT_FORMAT, "step": step, **meta, "files": files}
        write_json(tmp / "meta.json", full)
    return target


def load_checkpoint_tensors(info: CheckpointInfo, name: str) -> dict[str, torch.Tensor]:
    """``model`` or ``train_state`` tensors of a checkpoint, digest-checked."""
    fname = f"{name}.safetensors"
    sha = info.meta.get("files", {}).get(fname, {}).get("sha256")
    return read_tensors(info.path / fname, sha256=sha)


def prune_checkpoints(run_dir: Path, keep_last: int, keep: set[int]) -> None:
    """Remove all but the last ``keep_last`` checkpoints and those in ``keep`` (the best)."""
    steps = checkpoint_steps(run_dir)
    survivors = set(steps[-keep_last:]) | keep
    for s in steps:
        if s not in survivors:  # one holding foreign files is kept (and stays listed)
            remove_checkpoint_dir(checkpoints_dir(run_dir) / step_dir_name(s))


def remove_partial(run_dir: Path) -> None:
    """Remove temporary folders a killed run left in ``checkpoints/``."""
    d = checkpoints_dir(run_dir)
    if d.is_dir():
        for p in d.iterdir():
            ours = is_equivision_temp(p.name) or _LEGACY_TEMP.match(p.name)
            if ours and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------- optimizer

def flatten_state(sd: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict()`` into tensors (for safetensors) and the JSON rest.

    Tensor ``state[i][k]`` becomes ``"optimizer.<i>.<k>"``; the JSON keeps the scalars, the
    param_groups and which entries were tensors."""
    tensors: dict[str, torch.Tensor] = {}
    state_json: dict[str, dict[str, Any]] = {}
    for idx, entries in sd["state"].items():
        row: dict[str, Any] = {}
        for k, v in entries.items():
            if isinstance(v, torch.Tensor):
                key = f"optimizer.{idx}.{k}"
                tensors[key] = v.detach().cpu().contiguous()
                row[k] = {"tensor": key}
            else:
                row[k] = {"value": v}
        state_json[str(idx)] = row
    groups = json.loads(json.dumps(sd["param_groups"]))  # tuples -> lists; fails loudly
    return tensors, {"state": state_json, "param_groups": groups}


def unflatten_state(tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any],
                    device: torch.device) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for idx, row in rest["state"].items():
        entry: dict[str, Any] = {}
        for k, v in row.items():
            if "tensor" in v:
                if v["tensor"] not in tensors:
                    raise CheckpointError(f"optimizer tensor {v['tensor']} missing from the "
                                          "checkpoint's train_state.safetensors")
                t = tensors[v["tensor"]]
                # Adam's "step" counter stays on the CPU unless capturable/fused
                entry[k] = t if k == "step" else t.to(device)
            else:
                entry[k] = v["value"]
        state[int(idx)] = entry
    return {"state": state, "param_groups": [dict(g) for g in rest["param_groups"]]}


# ----------------------------------------------------------------------------- RNG

def capture_rng() -> dict[str, Any]:
    """The torch (CPU and CUDA), NumPy and Python RNG states of this process, as JSON."""
    keys = np.random.get_state()
    py = random.getstate()
    out: dict[str, Any] = {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
        "numpy": {"name": keys[0], "keys": [int(k) for k in keys[1]], "pos": int(keys[2]),
                  "has_gauss": int(keys[3]), "cached_gaussian": float(keys[4])},
        "python": {"version": py[0], "state": list(py[1]), "gauss_next": py[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode("ascii")
                       for s in torch.cuda.get_rng_state_all()]
    return out


def restore_rng(state: Mapping[str, Any]) -> None:
    try:
        t = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
        torch.set_rng_state(torch.from_numpy(t))
        n = state["numpy"]
        np.random.set_state((n["name"], np.array(n["keys"], dtype=np.uint32), n["pos"],
                             n["has_gauss"], n["cached_gaussian"]))
        p = state["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
        if "cuda" in state and torch.cuda.is_available():
            cuda = [torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())
                    for s in state["cuda"]]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the checkpoint's RNG state is unreadable ({e})") from e
