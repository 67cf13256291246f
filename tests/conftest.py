"""Shared fixtures: the real data (skipped with a reason when absent), seeds, and the device and
dtype sweeps of the numerical tests (see ``_devices.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _devices import HAS_CUDA, device_params, dtype_params
from equivision.data import find_data_root

torch.set_num_threads(1)  # the suite runs under xdist on 2 cores


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set $EQUIVISION_DATA to run tests on real data)")
    return root


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: runs on a CUDA device (present only where torch sees one)")


def pytest_report_header(config: pytest.Config) -> str:
    if HAS_CUDA:
        return f"devices: cpu, cuda ({torch.cuda.get_device_name()})"
    return "devices: cpu (no CUDA)"


@pytest.fixture(params=device_params())
def device(request: pytest.FixtureRequest) -> str:
    """Each available device in turn: ``cpu``, then ``cuda`` (marked ``cuda``) when present."""
    return request.param


@pytest.fixture(params=dtype_params())
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """``torch.float32`` then ``torch.float64``; pair with ``_devices.tol`` for the bound."""
    return request.param
