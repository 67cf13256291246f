"""``equivision classify``: the class of a mesh in any orientation."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from equivision.cli.app import app, check_device, console


@app.command()
def classify(
    mesh: Path = typer.Argument(..., help="Mesh file (PLY, OBJ, OFF, STL, GLB); for a point-cloud "
                                "model also a point cloud (PLY without faces, XYZ, NPY)."),
    model: str = typer.Option(
        "shapes_sphere_modelnet10_mixup",
        "--model",
        "-m",
        help="Packaged pretrained name (shapes_sphere_modelnet10_mixup: ModelNet10, six ray-cast "
        "channels, scaled copies and mixup; shapes_sphere_modelnet10_hull6: the image network's "
        "teacher, six channels; shapes_sphere_modelnet10: ModelNet10, two; "
        "shapes_sphere_shapenet10: ShapeNet's) or a run folder of 'equivision train shapes-sphere' "
        "or of a ModelNet10 point task (modelnet-vn-pointnet, ...).",
    ),
    top: int = typer.Option(3, "--top", min=1, help="How many classes to show."),
    as_json: bool = typer.Option(False, "--json", help="Print all probabilities as JSON."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
) -> None:
    """Classify a mesh with the spherical CNN, or a mesh or point cloud with a point-cloud model
    (the answers of the spherical CNN and the VN models do not depend on the pose)."""
    device = check_device(device)
    import torch
    from rich.table import Table

    from equivision.io import load_mesh
    from equivision.pipelines.classify import (
        classify_mesh,
        classify_points,
        is_point_classifier,
        load_classifier,
        load_point_classifier,
        read_points,
    )

    if is_point_classifier(model):  # meshes sampled to 1,024 points, clouds subsampled (seeded)
        net, classes = load_point_classifier(model, device)
        result = classify_points(read_points(mesh), net, classes)
    else:
        net, classes = load_classifier(model, device)
        result = classify_mesh(load_mesh(mesh, dtype=torch.float64), net, classes)
    if as_json:
        console.print_json(
            json.dumps({c: float(p) for c, p in zip(classes, result.probabilities, strict=True)})
        )
        return
    t = Table(title=mesh.name, min_width=len(mesh.name))  # the whole file name on one line
    t.add_column("class")
    t.add_column("probability", justify="right")
    for name, p in result.top(top):
        t.add_row(name, f"{p:.3f}")
    console.print(t)
