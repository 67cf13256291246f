"""``equivision classify``: the class of a mesh in any orientation."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from equivision.cli.app import app, check_device, console


@app.command()
def classify(
    mesh: Path = typer.Argument(..., help="Mesh file (PLY, OBJ, OFF, STL, GLB)."),
    model: str = typer.Option(
        "shapes_sphere_shapenet10",
        "--model",
        "-m",
        help="Packaged pretrained name or a run folder of 'equivision train shapes-sphere'.",
    ),
    top: int = typer.Option(3, "--top", min=1, help="How many classes to show."),
    as_json: bool = typer.Option(False, "--json", help="Print all probabilities as JSON."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
) -> None:
    """Classify a mesh with the spherical CNN (its answer does not depend on the mesh's pose)."""
    device = check_device(device)
    import torch
    from rich.table import Table

    from equivision.io import load_mesh
    from equivision.pipelines.classify import classify_mesh, load_classifier

    net, classes = load_classifier(model, device)
    result = classify_mesh(load_mesh(mesh, dtype=torch.float64), net, classes)
    if as_json:
        console.print_json(
            json.dumps({c: float(p) for c, p in zip(classes, result.probabilities, strict=True)})
        )
        return
    t = Table(title=f"{mesh.name}")
    t.add_column("class")
    t.add_column("probability", justify="right")
    for name, p in result.top(top):
        t.add_row(name, f"{p:.3f}")
    console.print(t)
