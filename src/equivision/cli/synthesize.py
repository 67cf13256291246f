"""``equivision synthesize``: novel views of the object in one image, by rotating the image's
spherical embedding and decoding it (docs/synthesis.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from equivision.cli.app import app, console

GIF_FRAMES = 36  # 18 about the camera's up axis, then 18 about its horizontal axis
GIF_FRAME_MS = 80


def _read_view(path: Path, channels: list[str], size: int):  # -> (Tensor (K, S, S), notes)
    """One view as float ``(K, S, S)`` in ``[0, 1]`` for the embedder's ``channels``: any image
    ``equivision pose`` reads (``equivision render``'s PNG, its ``--tensors`` file, a grey or
    RGB(A) picture, with the same rules for derived and missing channels), or a ``.npy`` array
    ``(K, S, S)`` / ``(1, K, S, S)`` (``render --array``)."""
    import numpy as np
    import torch

    from equivision.errors import CorruptFileError, ShapeError

    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CorruptFileError(f"{path} is not a readable .npy array ({e})") from e
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        k = len(channels)
        if arr.shape != (k, size, size) or arr.dtype.kind != "f":
            raise ShapeError(f"{path}: the model reads one float view ({k}, {size}, {size}), "
                             f"got {arr.dtype} {arr.shape}")
        return torch.from_numpy(np.ascontiguousarray(arr)).float(), []
    from equivision.io.images import read_image
    from equivision.pipelines.pose import fit_image

    return fit_image(read_image(path), tuple(channels), size)


@app.command()
def synthesize(
    view: Path = typer.Argument(..., help="The input view: a PNG or the .safetensors "
                                "of `equivision render`, another image, or a .npy array."),
    out: Path | None = typer.Option(None, "--out", "-o", help="PNG of the synthesized views."),
    rotation: list[str] = typer.Option(
        [], "--rotation", "-r",
        help="Turn the object by this rotation, repeatable: 'identity', 'axis-angle x,y,z DEG', "
        "'euler-zyz A,B,G' (degrees), 'quaternion x,y,z,w' or 'matrix r11,...,r33' (row by row).",
    ),
    views: int | None = typer.Option(None, "--views", help="N views about +z (up), then N about +x, "
                                     "360°/N apart, starting at the input's pose (2 rows)."),
    gif: Path | None = typer.Option(None, "--gif", help=f"Animated GIF: {GIF_FRAMES} frames, a turn "
                                    "about +z then about +x."),
    model: str | None = typer.Option(None, "--model", "-m", help="Decoder: packaged name or view-synthesis "
                                     "run folder (default: the packaged ModelNet10 one)."),
    embedder: str | None = typer.Option(None, "--embedder", help="Image network (default: the one the "
                                        "decoder was trained with)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Novel views of the object in one image: its spherical embedding is rotated and decoded.

    Rotations are in the camera frame (+z up, the camera looking along +y): `--rotation
    "axis-angle 0,0,1 90"` turns the object a quarter turn about the vertical axis. The PNG holds
    each view's channels side by side, one view per tile as `equivision render` writes them.
    """
    import torch

    from equivision.errors import InvalidInputError, UnknownModelError
    from equivision.groups import parse_rotation
    from equivision.io import OutputSpec, atomic_paths, check_outputs
    from equivision.pipelines.synthesize import DEFAULT_SYNTHESIS_MODEL, load_synthesizer, turntable_rotations

    if out is None and gif is None:
        raise InvalidInputError("give --out/-o (PNG) and/or --gif")
    if rotation and views is not None:
        raise InvalidInputError("give --rotation or --views, not both")
    if (rotation or views is not None) and out is None:
        raise InvalidInputError("--rotation and --views choose the views of --out/-o; give -o too")
    if views is not None and not 1 <= views <= 64:
        raise InvalidInputError(f"--views must be from 1 to 64, got {views}")
    # everything the user typed is checked before any model is loaded or file written
    if rotation:
        rots, per_row = torch.stack([parse_rotation(r) for r in rotation]), 8
    elif views is not None:
        rots, per_row = turntable_rotations(views), views
    else:
        rots, per_row = torch.eye(3, dtype=torch.float64)[None], 1
    check_outputs([OutputSpec("--out", out, (".png",)), OutputSpec("--gif", gif, (".gif",))],
                  overwrite=overwrite, inputs=[view])
    if out is not None and gif is not None and out.resolve() == gif.resolve():
        raise InvalidInputError("--out and --gif must be different files")
    if not view.is_file():
        from equivision.errors import DataFileNotFoundError

        raise DataFileNotFoundError(f"{view}: no such image file")
    try:
        synth = load_synthesizer(model or DEFAULT_SYNTHESIS_MODEL, embedder=embedder)
    except UnknownModelError as e:
        if model is not None:
            raise
        raise UnknownModelError(f"{e}; the default decoder is not packaged yet: train one (equivision "
                                "train view-synthesis) and pass its run folder with --model") from e
    image, notes = _read_view(view, synth.input_channels, synth.embedder.cfg.image_size)
    for note in notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    targets = [p for p in (out, gif) if p is not None]
    with atomic_paths(targets, overwrite=overwrite) as tmps:
        if out is not None:
            from equivision.figures.images import save_image_grid

            save_image_grid(tmps[0], synth(image, rots).clamp(0, 1), per_row=per_row)
        if gif is not None:
            _save_gif(tmps[-1], synth(image, turntable_rotations(GIF_FRAMES // 2)))
    what = [f"{rots.shape[0]} view{'s' if rots.shape[0] != 1 else ''} to {out}"] if out is not None else []
    if gif is not None:
        what.append(f"{GIF_FRAMES} frames to {gif}")
    console.print(f"synthesized {' and '.join(what)} ({', '.join(synth.output_channels)})", soft_wrap=True)


def _save_gif(path: Path, frames) -> None:
    """An animated grey GIF of images ``(N, K, S, S)``, each frame's channels side by side."""
    from PIL import Image

    from equivision.figures.images import image_grid

    pics = [Image.fromarray(image_grid(f[None].clamp(0, 1)).numpy(), mode="L") for f in frames]
    pics[0].save(path, format="GIF", save_all=True, append_images=pics[1:], duration=GIF_FRAME_MS, loop=0)
