"""``equivision data ...``: the shared data collections."""

from __future__ import annotations

import typer
from rich.table import Table

from equivision.cli.app import app, console
from equivision.data import find_data_root, list_collections

data_app = typer.Typer(help="The shared real data (meshes, MNIST).", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def list_() -> None:
    """List the collections found, with their classes and counts."""
    root = find_data_root()
    if root is None:
        console.print(
            "No shared data found (looked in $EQUIVISION_DATA and ../shared/data); "
            "equivision falls back to procedural shapes and drawn digits."
        )
        return
    t = Table(title=f"data in {root}")
    for col in ("collection", "kind", "count", "classes", "what"):
        t.add_column(col)
    for c in list_collections(root):
        classes = ", ".join(f"{k} ({v})" for k, v in c.classes.items()) or "-"
        t.add_row(c.name, c.kind, str(c.count), classes, c.description)
    console.print(t)
