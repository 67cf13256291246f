"""Importing the modules that fill a registry (models, tasks), one failure at a time."""

from __future__ import annotations

import importlib


def import_each(modules: list[str], errors: dict[str, str | None]) -> None:
    """Import every module not tried yet, recording ``None`` or the error text in ``errors``:
    one broken module must not hide the others."""
    for mod in modules:
        if mod not in errors:
            try:
                importlib.import_module(mod)
                errors[mod] = None
            except Exception as e:
                errors[mod] = f"{type(e).__name__}: {e}"
