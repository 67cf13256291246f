"""Fixtures of the training-engine tests."""

from __future__ import annotations

import io

import pytest
from rich.console import Console


@pytest.fixture()
def quiet_console() -> Console:
    """A console whose output goes nowhere (the trainer's progress lines)."""
    return Console(file=io.StringIO())
