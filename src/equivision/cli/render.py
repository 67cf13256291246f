"""``equivision render``: images of a mesh from the fixed pinhole camera, in chosen poses."""

from __future__ import annotations

from pathlib import Path

import typer

from equivision.cli.app import app, console


@app.command()
def render(
    mesh: Path = typer.Argument(..., help="Mesh file (PLY, OBJ, OFF, STL, GLB)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG of the views (one row of channels per view)."),
    rotation: list[str] = typer.Option(
        [], "--rotation", "-r",
        help="Pose, repeatable: 'identity', 'axis-angle x,y,z DEG', 'euler-zyz A,B,G' (degrees), "
        "'quaternion x,y,z,w' or 'matrix r11,...,r33' (row by row).",
    ),
    random: int | None = typer.Option(None, "--random", help="N uniformly random poses instead."),
    seed: int = typer.Option(0, "--seed", help="Seed of --random."),
    size: int = typer.Option(64, "--size", "-s", help="Image size in pixels (square, 1 to 2048)."),
    channels: str = typer.Option("shading,silhouette,depth", "--channels",
                                 help="Comma-separated channels, in order: shading, silhouette, depth."),
    array: Path | None = typer.Option(None, "--array", help="Also save the images (N, C, H, W) as .npy."),
    tensors: Path | None = typer.Option(None, "--tensors", help="Also save the first view exactly as a "
                                        ".safetensors image file with its channel names and pose, the "
                                        "lossless input of 'equivision pose'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Render a mesh in one or more poses: grey shading, silhouette and depth (docs/render.md).

    The PNG holds the images at their own pixels: each view's channels side by side, views in
    rows of 8, 2 white pixels between tiles. Without --rotation or --random: the mesh as it is.
    """
    import numpy as np
    import torch

    from equivision.errors import InvalidInputError
    from equivision.figures.images import save_image_grid
    from equivision.geometry.normalize import check_mesh_area
    from equivision.groups import SO3, parse_rotation
    from equivision.io import OutputSpec, atomic_paths, check_outputs, load_mesh
    from equivision.render import CAMERA_CHANNELS, MAX_IMAGE_SIZE, embree_available, render_views

    chans = [c.strip() for c in channels.split(",") if c.strip()]
    if not chans or any(c not in CAMERA_CHANNELS for c in chans):
        raise InvalidInputError(f"--channels must be a comma-separated list of {', '.join(CAMERA_CHANNELS)}; "
                                f"got {channels!r}")
    if not 1 <= size <= MAX_IMAGE_SIZE:
        raise InvalidInputError(f"--size must be from 1 to {MAX_IMAGE_SIZE} pixels, got {size}")
    if rotation and random is not None:
        raise InvalidInputError("give --rotation or --random, not both")
    if random is not None and not 1 <= random <= 1024:
        raise InvalidInputError(f"--random must be from 1 to 1024 views, got {random}")
    # poses are read before anything is written or loaded: a typo fails at once
    if random is not None:
        rots = SO3().random(random, seed=seed, dtype=torch.float64)
    elif rotation:
        rots = torch.stack([parse_rotation(r) for r in rotation])
    else:
        rots = torch.eye(3, dtype=torch.float64)[None]
    from equivision.io.images import STRIP_KEY

    check_outputs([OutputSpec("--out", out, (".png",)), OutputSpec("--array", array, (".npy",)),
                   OutputSpec("--tensors", tensors, (".safetensors",))],
                  overwrite=overwrite, inputs=[mesh])
    m = load_mesh(mesh, dtype=torch.float64)  # float64: the centring keeps far-off meshes exact
    check_mesh_area(m, str(mesh))
    images = render_views(m, rots, size=size, channels=chans)
    extra = [p for p in (array, tensors) if p is not None]
    with atomic_paths([out, *extra], overwrite=overwrite) as tmps:
        # one view's channels side by side: named in the PNG, so that pose and synthesize read
        # them back as channels (8-bit) instead of as one wide grey picture
        strip = {STRIP_KEY: ",".join(chans)} if images.shape[0] == 1 else None
        save_image_grid(tmps[0], images, text=strip)
        if array is not None:
            with open(tmps[1], "wb") as f:
                np.save(f, images.numpy())
        if tensors is not None:
            from equivision.io.images import write_image_tensors

            pose = ",".join(f"{float(v):.17g}" for v in rots[0].reshape(-1))
            write_image_tensors(tmps[-1], images[0], chans, {"rotation": pose})
    n = images.shape[0]
    console.print(
        f"rendered {n} view{'s' if n != 1 else ''} of {len(m.faces)} faces at {size}×{size} "
        f"({', '.join(chans)}; {'Embree' if embree_available() else 'PyTorch'}); written to {out}",
        soft_wrap=True,  # one line, also when piped
    )
