"""``equivision data ...``: the shared data collections."""

from __future__ import annotations

from pathlib import Path

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


@data_app.command("views")
def views(
    out: Path = typer.Argument(..., help="Folder of the view dataset (created; an unfinished one of the "
                               "same configuration is resumed)."),
    collection: str = typer.Option("modelnet10", "--collection", help="Mesh collection of the shared data."),
    split: str = typer.Option("train", "--split", help="train or test."),
    n_views: int = typer.Option(8, "--views", help="Views per mesh."),
    dof: int = typer.Option(3, "--dof",
                            help="3: uniform on SO(3); 2: azimuth about the up axis and elevation."),
    size: int = typer.Option(64, "--size", help="Image size: 64 or 128."),
    channels: str = typer.Option("shading,silhouette,depth", "--channels", help="Image channels, in order."),
    teacher: str = typer.Option("shapes_sphere_modelnet10_hull6", "--teacher",
                                help="Spherical CNN: packaged name or run folder."),
    layer: str = typer.Option("stage1", "--layer", help="Teacher layer whose maps are the targets."),
    bandwidth: int = typer.Option(32, "--bandwidth", help="Ray-casting bandwidth (the teacher's input)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the poses (per mesh, by its name)."),
    shard_size: int = typer.Option(16, "--shard-size", help="Meshes per shard (the unit of resuming)."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N meshes (sorted by name)."),
    scalings: int = typer.Option(1, "--scalings",
                                 help="Anisotropically scaled copies per mesh; views are spread over them."),
    scale_range: float = typer.Option(0.0, "--scale-range",
                                      help="Axis scale factors uniform in [1-r, 1+r]; 0: no scaling."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace a view dataset of another configuration."),
) -> None:
    """Render views of a collection's meshes with the teacher's rotated feature maps as targets
    (docs/views.md)."""
    from equivision.errors import InvalidInputError
    from equivision.tasks.views import build_collection_views, summary

    if split not in ("train", "test"):
        raise InvalidInputError(f"--split must be train or test, got {split!r}")
    m = build_collection_views(out, collection, split, teacher=teacher, limit=limit, overwrite=overwrite,
                               views=n_views, dof=dof, image_size=size,
                               channels=[c.strip() for c in channels.split(",") if c.strip()], layer=layer,
                               bandwidth=bandwidth, seed=seed, shard_size=shard_size, scalings=scalings,
                               scale_range=scale_range)
    console.print(summary(m, out))
