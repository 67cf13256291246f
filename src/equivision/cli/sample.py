"""``equivision sample``: a seeded point cloud from a mesh's surface (the input of
``reconstruct``, made reproducibly from a mesh file)."""

from __future__ import annotations

from pathlib import Path

import typer

from equivision.cli.app import app, console, fail


@app.command()
def sample(
    mesh: Path = typer.Argument(..., help="Mesh file (PLY, OBJ, OFF, STL, GLB)."),
    out: Path = typer.Option(..., "--out", "-o", help="Point cloud (PLY, XYZ, NPY)."),
    points: int = typer.Option(10_000, "--points", "-n", help="How many points (1 to 10,000,000)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling (same seed, same cloud)."),
    noise: float = typer.Option(0.0, "--noise", help="Gaussian noise, as a fraction of the mesh's "
                                "bounding-box diagonal."),
    rotate: bool = typer.Option(False, "--rotate", help="Also apply a random rotation (seeded) "
                                "about the mesh's bounding-box centre."),
    normals: bool = typer.Option(False, "--normals", help="Also write the faces' normals."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Sample points uniformly by area on a mesh's surface (seeded), optionally noisy and rotated."""
    if not 1 <= points <= 10_000_000:
        fail(f"--points must be between 1 and 10,000,000, got {points}")
    if not 0.0 <= noise < 1.0:  # also refuses nan
        fail(f"--noise must be in [0, 1) (a fraction of the bounding-box diagonal), got {noise}")
    if seed < 0:
        fail(f"--seed must be >= 0, got {seed}")
    import torch

    from equivision.geometry.normalize import check_mesh_area
    from equivision.geometry.sampling import sample_surface_uniform
    from equivision.groups import SO3
    from equivision.io import CLOUD_FORMATS, OutputSpec, check_outputs, load_mesh, save_point_cloud

    check_outputs([OutputSpec("--out", out, CLOUD_FORMATS)], overwrite=overwrite, inputs=[mesh])
    m = load_mesh(mesh, dtype=torch.float64)
    check_mesh_area(m)
    pts, nrm = sample_surface_uniform(m, points, seed=seed)
    lo, hi = m.vertices.min(0).values, m.vertices.max(0).values
    if noise > 0:
        g = torch.Generator().manual_seed(seed + 1)
        pts = pts + noise * float((hi - lo).norm()) * torch.randn(pts.shape, generator=g, dtype=pts.dtype)
    if rotate:
        c = (lo + hi) / 2
        R = SO3().random(1, seed=seed)[0].to(pts.dtype)
        pts, nrm = (pts - c) @ R.T + c, nrm @ R.T
    save_point_cloud(pts, out, normals=nrm if normals else None, overwrite=overwrite)
    console.print(f"{points} points sampled from {mesh.name} ({len(m.faces)} faces, seed {seed}"
                  f"{f', noise {noise:g}' if noise else ''}{', rotated' if rotate else ''}); wrote {out}",
                  highlight=False, soft_wrap=True)
