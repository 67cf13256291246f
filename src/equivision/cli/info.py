"""``equivision info``: versions, compute device and the data found."""

from __future__ import annotations

import importlib
import platform

from rich.table import Table

from equivision import __version__
from equivision.cli.app import app, console
from equivision.data import find_data_root, list_collections


def _version_of(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception:
        return "not installed"


@app.command()
def info() -> None:
    """Show versions, the compute device and which shared data was found."""
    import torch

    t = Table(title=f"equivision {__version__}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("python", platform.python_version())
    for mod in ("torch", "numpy", "scipy", "trimesh", "roma", "safetensors"):
        t.add_row(mod, _version_of(mod))
    t.add_row(
        "embree ray casting",
        "yes (embreex)" if _version_of("embreex") != "not installed" else "no (pure fallback)",
    )
    if torch.cuda.is_available():
        dev = f"cuda ({torch.cuda.device_count()} × {torch.cuda.get_device_name(0)})"
    else:
        dev = f"cpu ({torch.get_num_threads()} threads); no CUDA device"
    t.add_row("device", dev)
    root = find_data_root()
    t.add_row(
        "shared data",
        str(root) if root else "not found (set $EQUIVISION_DATA); procedural fallbacks are used",
    )
    for c in list_collections(root):
        t.add_row(f"  {c.name}", f"{c.count} {'digits' if c.kind == 'images' else 'meshes'}")
    console.print(t)
