"""``equivision evaluate pred.ply reference.ply``: the reconstruction metrics of one shape."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from equivision.cli.app import app, console, fail

if TYPE_CHECKING:
    from rich.table import Table

    from equivision.metrics import ReconstructionMetrics


def _load_prediction(path: Path):
    """A mesh when the file has faces; otherwise its points (and normals, if stored)."""
    import torch

    from equivision.errors import DegenerateGeometryError
    from equivision.io import CLOUD_FORMATS, MESH_FORMATS, load_mesh, load_point_cloud

    suffix = path.suffix.lower()
    if suffix in CLOUD_FORMATS and suffix not in MESH_FORMATS:
        return load_point_cloud(path, dtype=torch.float64)
    try:
        return load_mesh(path, dtype=torch.float64)
    except DegenerateGeometryError as e:
        if "no faces" not in str(e):
            raise
        return load_point_cloud(path, dtype=torch.float64)


def _table(m: ReconstructionMetrics, pred: Path, ref: Path, is_cloud: bool) -> Table:
    from rich.table import Table

    t = Table(title=f"{pred.name} vs {ref.name}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")
    t.add_row("CD-L1 ×100", f"{m.cd_l1_x100:.4f}", "mean of both directions (lower is better)")
    t.add_row("CD-L2 ×10⁴", f"{m.cd_l2_x1e4:.4f}", "squared distances (lower is better)")
    t.add_row(f"EMD ×100 ({m.emd_points} pts)", f"{m.emd_x100:.4f}",
              "exact matching (lower is better)")
    nc = "n/a (cloud without normals)" if m.normal_consistency is None else f"{m.normal_consistency:.4f}"
    t.add_row("normal consistency", nc, "mean |cos| of NN normals (higher is better)")
    for thr, f in m.fscore.items():
        t.add_row(f"F-score @{100 * thr:g}%", f"{f:.4f}",
                  f"precision {m.precision[thr]:.4f}, recall {m.recall[thr]:.4f}")
    t.caption = (f"{m.n_points:,} samples per {'surface' if not is_cloud else 'side'}; reference "
                 f"normalised to the unit box (its longest side was {m.scale:.4g})")
    return t


@app.command()
def evaluate(
    pred: Path = typer.Argument(..., help="Predicted mesh (PLY/OBJ/OFF/STL/GLB), or a point cloud "
                                "(PLY without faces, XYZ, NPY)."),
    reference: Path = typer.Argument(..., help="Reference (ground-truth) mesh."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    points: int = typer.Option(100_000, "--points", min=1, help="Surface samples per mesh."),
    emd_points: int = typer.Option(2048, "--emd-points", min=1, max=10_000,
                                   help="Samples for the exact EMD."),
    threshold: list[float] = typer.Option([], "--threshold",
                                          help="F-score threshold, fraction of the unit box "
                                          "(repeat for several; default: the protocol's "
                                          "DEFAULT_THRESHOLDS, 1% and 0.5%)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the surface sampling."),
) -> None:
    """Compare a reconstruction with its reference: Chamfer-L1/-L2, EMD, normal consistency and
    F-scores, under the one protocol of equivision.metrics (reference scaled to the unit box)."""
    bad = [t for t in threshold if not (math.isfinite(t) and t > 0)]
    if bad:
        fail(f"--threshold values must be positive and finite, got {', '.join(str(t) for t in bad)}")
    import torch

    from equivision.geometry.normalize import check_mesh_area
    from equivision.io import Mesh, load_mesh
    from equivision.metrics import DEFAULT_THRESHOLDS, evaluate_reconstruction

    threshold = threshold or list(DEFAULT_THRESHOLDS)
    ref_mesh = load_mesh(reference, dtype=torch.float64)  # normalised in float64 by the metrics
    check_mesh_area(ref_mesh, str(reference))  # a collinear reference has no surface to compare
    pred_obj = _load_prediction(pred)
    m = evaluate_reconstruction(pred_obj, ref_mesh, n_points=points, emd_points=emd_points,
                                thresholds=threshold, seed=seed)
    if as_json:
        typer.echo(json.dumps({"pred": str(pred), "reference": str(reference), **m.as_dict()}, indent=2))
    else:
        console.print(_table(m, pred, reference, is_cloud=not isinstance(pred_obj, Mesh)))
