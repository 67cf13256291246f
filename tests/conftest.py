"""Shared fixtures: the real data (skipped with a reason when absent) and seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from equivision.data import find_data_root

torch.set_num_threads(1)  # the suite runs under xdist on 2 cores


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set $EQUIVISION_DATA to run tests on real data)")
    return root
