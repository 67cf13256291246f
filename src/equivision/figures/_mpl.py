"""matplotlib on the Agg backend, and saving a figure atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display is needed, none is used)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int) -> None:
    """Write ``fig`` as a PNG at ``path`` through a temporary file (a failed save leaves no
    partial picture) and close it. ``path`` is replaced: callers check their outputs first."""
    from equivision.io.atomic import atomic_path

    with atomic_path(Path(path), overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
