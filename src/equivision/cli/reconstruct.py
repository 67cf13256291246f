"""``equivision reconstruct``: an unoriented point cloud, in any pose, to a mesh."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from equivision.cli.app import app, check_device, console, fail

DEFAULT_RECONSTRUCTOR = "peif_default"
#: Short names of the packaged fields: ``--model vn_global`` is ``vn_global_default``.
MODEL_ALIASES = {"peif": "peif_default", "vn_global": "vn_global_default"}


@app.command()
def reconstruct(
    cloud: Path = typer.Argument(..., help="Point cloud (PLY, XYZ, NPY); normals, if any, are ignored."),
    out: Path = typer.Option(..., "--out", "-o", help="Output mesh (PLY, OBJ, OFF, STL, GLB)."),
    resolution: int = typer.Option(128, "--resolution", "-r", help="Grid nodes per axis (128 or 256)."),
    model: str = typer.Option(
        DEFAULT_RECONSTRUCTOR,
        "--model",
        "-m",
        help="peif (the default, local patches), vn_global (one VN latent per cloud), a packaged "
        "pretrained name, or a run folder of 'equivision train recon' / 'recon-vn-global'.",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="Network arithmetic: auto (on a CPU with native bfloat16 products, AMX / AVX-512 "
        "BF16, whichever of float32 and bfloat16 a short benchmark measures faster, cached per "
        "machine in ~/.cache/equivision; else float32), float32 or bfloat16.",
    ),
    preview: Path | None = typer.Option(None, "--preview", help="Also write a PNG of input and result."),
    min_piece_fraction: float | None = typer.Option(
        None, "--min-piece-fraction",
        help="Drop mesh pieces with fewer than this fraction of the faces (0: keep all); default "
        "0.001 for peif, 0 for vn_global."),
    plane_filter: float | None = typer.Option(
        None, "--plane-filter",
        help="Drop faces with a vertex more than this many voxels off the tangent planes of the "
        "input points nearest to it (the sheets a field leaves inside thin plates; 0: off); "
        "default 0.5 for peif, 0 for vn_global (see docs/metrics.md)."),
    plane_filter_neighbours: int = typer.Option(
        3, "--plane-filter-neighbours",
        help="How many nearest input points' planes a vertex may be near (more forgives sharp edges)."),
    fill_holes: int | None = typer.Option(
        None, "--fill-holes",
        help="Close holes bounded by at most this many edges where the input points cover them "
        "(0: off); default: the pipeline's for the model (see docs/metrics.md)."),
    fairing: int | None = typer.Option(
        None, "--fairing",
        help="Taubin fairing steps at the end, each vertex moving at most 0.1 voxel (the field's "
        "vertex jitter; 0: off); default 10 for peif, 0 for vn_global (see docs/metrics.md)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Reconstruct a surface with a pose-equivariant displacement field (no normals needed)."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from equivision.figures import save_reconstruction_preview
    from equivision.io import (
        MESH_FORMATS,
        OutputSpec,
        atomic_paths,
        check_outputs,
        load_point_cloud,
        save_mesh,
    )
    from equivision.models import list_pretrained, load
    from equivision.pipelines.reconstruct import check_resolution
    from equivision.pipelines.reconstruct import reconstruct as run

    device = check_device(device)
    check_resolution(resolution)
    check_outputs([OutputSpec("--out", out, MESH_FORMATS), OutputSpec("--preview", preview, (".png",))],
                  overwrite=overwrite, inputs=[cloud])
    from equivision.recon.predict import COMPUTE_DTYPES as dtypes
    from equivision.recon.predict import auto_precision, inference_dtype

    if precision not in dtypes:
        fail(f"--precision must be {', '.join(dtypes)}, got {precision!r}")
    if min_piece_fraction is not None and not 0.0 <= min_piece_fraction < 1.0:
        fail(f"--min-piece-fraction must be in [0, 1), got {min_piece_fraction}")
    if plane_filter is not None and not (plane_filter >= 0 and plane_filter < float("inf")):
        fail(f"--plane-filter must be a finite number of voxels >= 0, got {plane_filter}")
    if plane_filter_neighbours < 1:
        fail(f"--plane-filter-neighbours must be at least 1, got {plane_filter_neighbours}")
    if fill_holes is not None and not (fill_holes == 0 or fill_holes >= 3):
        fail(f"--fill-holes must be 0 (off) or a loop length of at least 3 edges, got {fill_holes}")
    if fairing is not None and fairing < 0:
        fail(f"--fairing must be 0 (off) or a number of filter steps, got {fairing}")
    points, _ = load_point_cloud(cloud, dtype=torch.float64)  # centred in float64, then cast
    from equivision.pipelines.reconstruct import check_field_model

    name = MODEL_ALIASES.get(model, model)
    if name != model and not Path(model).is_dir() and name not in list_pretrained():
        fail(f"--model {model}: the packaged {name} is not installed; give a run folder of "
             f"'equivision train {'recon' if model == 'peif' else 'recon-vn-global'}'")
    net = load(model if Path(model).is_dir() else name, device=device)
    check_field_model(net)  # by the network's type, whatever the checkpoint is named
    compute_dtype, why = dtypes[precision], ""
    if precision == "auto":  # measured before the clock starts; the line below says what it saw
        choice = auto_precision(net)
        compute_dtype, why = choice.dtype, f"; {choice.describe()}"
    t0 = time.perf_counter()
    columns = (
        TextColumn("querying the field"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("field", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run(points, net, resolution=resolution, device=device, compute_dtype=compute_dtype,
                     min_piece_fraction=min_piece_fraction, plane_filter=plane_filter,
                     plane_filter_neighbours=plane_filter_neighbours, fill_holes=fill_holes,
                     fairing=fairing, progress=progress)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        arithmetic = str(inference_dtype(net, compute_dtype)).removeprefix("torch.") + why
    # both files or neither: a failed preview must not leave a new mesh behind
    with atomic_paths([out] if preview is None else [out, preview], overwrite=overwrite) as tmps:
        save_mesh(result.mesh, tmps[0], overwrite=True)
        if preview is not None:
            save_reconstruction_preview(points, result.mesh, tmps[1], title=f"{cloud.name} → {out.name}")
    console.print(
        f"{result.n_points_used} points → {len(result.mesh.faces)} faces at resolution {resolution} "
        f"in {seconds:.1f} s ({result.stats.queried_nodes} field queries on the grid, "
        f"{result.stats.projected_by_field} vertices projected by the field, "
        f"{result.faces_off_planes} faces off the points' tangent planes dropped"
        + (f", {result.holes.filled} of {result.holes.loops} holes closed" if result.holes else "")
        + "; network in "
        f"{arithmetic}); wrote {out}",
        soft_wrap=True,  # one line, also when piped
    )
