"""The devices and floating dtypes the numerical tests sweep, and a tolerance per dtype.

``cpu`` is always swept; ``cuda`` only where ``torch.cuda.is_available()``, and then marked
``cuda`` so a GPU machine can run those first or alone (``pytest -m cuda``). Without CUDA the
parameter is absent rather than skipped, so the report is not hundreds of skips.
"""

from __future__ import annotations

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
DEVICES: list[str] = ["cpu", "cuda"] if HAS_CUDA else ["cpu"]
DTYPES: list[torch.dtype] = [torch.float32, torch.float64]


def device_params() -> list:
    """``pytest.param`` per available device; the CUDA one carries the ``cuda`` mark."""
    out = [pytest.param("cpu", id="cpu")]
    if HAS_CUDA:
        out.append(pytest.param("cuda", id="cuda", marks=pytest.mark.cuda))
    return out


def dtype_params() -> list:
    return [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]


def tol(dtype: torch.dtype, *, f32: float, f64: float) -> float:
    """The bound stated for ``dtype``; a test gives both so the sweep cannot silently loosen
    the float64 bound to the float32 one."""
    if dtype == torch.float32:
        return f32
    if dtype == torch.float64:
        return f64
    raise ValueError(f"no tolerance for {dtype}")


def cpu_only(device: str, why: str) -> None:
    """Skip a non-CPU combination with the stated limitation of the code under test."""
    if device != "cpu":
        pytest.skip(f"CPU only: {why}")


def float64_only(dtype: torch.dtype, why: str) -> None:
    if dtype != torch.float64:
        pytest.skip(f"float64 only: {why}")
