"""Weights on disk: safetensors only (nothing is ever unpickled), with checks that name
what does not match when a file is loaded into a model."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from equivision.errors import CheckpointError
from equivision.io import atomic_path


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` to ``path`` as safetensors, atomically (replacing any old file).

    Tensors that share storage (tied weights) are stored as separate copies, so the file
    loads back with the same keys."""
    seen: set[tuple[int, int]] = set()
    plain: dict[str, torch.Tensor] = {}
    for k, t in tensors.items():
        t = t.detach().to("cpu")
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key in seen or not t.is_contiguous() or t.untyped_storage().nbytes() != \
                t.numel() * t.element_size():
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(key)
        plain[k] = t
    with atomic_path(path, overwrite=True) as tmp:
        save_file(plain, str(tmp), metadata=dict(metadata) if metadata else None)
    return Path(path)


def read_tensors(path: str | os.PathLike[str], *, sha256: str | None = None,
                 device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; CheckpointError when it is missing, truncated or corrupt
    (or, when ``sha256`` is given, when its digest differs)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"weights file {p} does not exist")
    if sha256 is not None and file_sha256(p) != sha256:
        raise CheckpointError(f"{p} is corrupt: its SHA-256 differs from the one recorded when "
                              "it was written; use another checkpoint or retrain")
    try:
        return load_file(str(p), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{p} is not a readable safetensors file (corrupt or truncated: "
                              f"{' '.join(str(e).split())}); use another checkpoint or retrain"
                              ) from e


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_compatible(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor],
                     source: str) -> None:
    """CheckpointError naming missing/unexpected keys and shape or dtype mismatches between
    ``module.state_dict()`` and ``tensors`` (read from ``source``)."""
    expected = module.state_dict()
    problems: list[str] = []
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    shapes = [f"{k} {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if shapes:
        problems.append(f"shape mismatch {_few(shapes)}")
    dtypes = [f"{k} {tensors[k].dtype} vs model {v.dtype}" for k, v in expected.items()
              if k in tensors and tensors[k].shape == v.shape
              and tensors[k].dtype.is_floating_point != v.dtype.is_floating_point]
    if dtypes:
        problems.append(f"dtype mismatch {_few(dtypes)}")
    if problems:
        raise CheckpointError(f"{source} does not fit this model ({type(module).__name__}): "
                              + "; ".join(problems)
                              + "; it was written for another model or configuration")


def load_into(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``tensors`` into ``module`` after :func:`check_compatible`."""
    check_compatible(module, tensors, source)
    module.load_state_dict(dict(tensors), strict=True)


def _few(items: list[str], n: int = 3) -> str:
    head = ", ".join(items[:n])
    return head + (f" (and {len(items) - n} more)" if len(items) > n else "")
