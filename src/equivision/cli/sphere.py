"""``equivision sphere``: a mesh as a signal on the sphere, pictured."""

from __future__ import annotations

from pathlib import Path

import typer

from equivision.cli.app import app, console


@app.command()
def sphere(
    mesh: Path = typer.Argument(..., help="Mesh file (PLY, OBJ, OFF, STL, GLB)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG picture of the signal."),
    bandwidth: int = typer.Option(32, "--bandwidth", "-b", help="Grid bandwidth B (2B × 2B samples)."),
    signal: Path | None = typer.Option(None, "--signal", help="Also save the signal (2, 2B, 2B) as .npy."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Ray-cast a mesh onto the sphere (distance and normal-cosine channels) and picture it."""
    import numpy as np
    import torch

    from equivision.figures.sphere import render_sphere_signal
    from equivision.geometry.normalize import check_mesh_area, normalize_mesh
    from equivision.io import OutputSpec, atomic_paths, check_outputs, load_mesh
    from equivision.render import embree_available, raycast_sphere

    check_outputs([OutputSpec("--out", out, (".png",)), OutputSpec("--signal", signal, (".npy",))],
                  overwrite=overwrite, inputs=[mesh])
    # into the unit box in float64 first: the signal ignores position and size, and Embree
    # casts in float32, which cannot place rays far from the origin
    m = load_mesh(mesh, dtype=torch.float64)
    check_mesh_area(m, str(mesh))  # a collinear mesh has no surface for rays to hit
    m, _, _ = normalize_mesh(m)
    sig = raycast_sphere(m, bandwidth)
    # both files or neither: a failed signal file must not leave a new picture behind
    with atomic_paths([out] if signal is None else [out, signal], overwrite=overwrite) as tmps:
        render_sphere_signal(
            sig, tmps[0], f"{mesh.name}: bandwidth {bandwidth}, {2 * bandwidth}×{2 * bandwidth} rays"
        )
        if signal is not None:
            with open(tmps[1], "wb") as f:
                np.save(f, sig.numpy())
    hit = float((sig[0] < 2).float().mean()) * 100
    console.print(
        f"ray-cast {len(m.faces)} faces at B = {bandwidth} "
        f"({'Embree' if embree_available() else 'PyTorch'}): {hit:.1f}% of rays hit; "
        f"picture written to {out}",
        soft_wrap=True,  # one line, also when piped
    )
