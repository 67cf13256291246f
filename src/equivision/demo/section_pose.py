"""Demo section: the rotation between two poses of a mesh, recovered by SO(3) correlation of
the packaged ModelNet10 teacher's feature maps of their sphere ray castings."""

from __future__ import annotations

import math

import torch

from equivision.demo import DemoContext, demo_section
from equivision.demo.section_render import demo_mesh
from equivision.groups import SO3
from equivision.models import load
from equivision.render import raycast_sphere
from equivision.sphere import relative_pose

TEACHER = "shapes_sphere_modelnet10"
LAYER = "stage1"  # equivariant maps at B = 16: fine enough to locate, a (32)³ correlation grid
N_POSES = 3


def pose_rows(ctx: DemoContext) -> tuple[list[dict[str, object]], str, int, tuple[int, ...]]:
    """One row per random rotation R: the true and found rotations' angles, the geodesic error
    (degrees), confidence and symmetry flag; plus the mesh's description, the input bandwidth
    and the feature maps' shape ``(C, 2b, 2b)``."""
    net = load(TEACHER)
    b = net.cfg.bandwidths[0]  # the teacher reads signals of its own bandwidth (32)
    mesh, source = demo_mesh(ctx)
    rots = SO3().random(N_POSES, seed=ctx.seed + 3, dtype=torch.float64)
    # a: the mesh as it is; b: R·mesh (same meaning as the renderer's poses)
    x = torch.cat([raycast_sphere(mesh, b)[None], raycast_sphere(mesh, b, rotations=rots)])
    with torch.no_grad():
        maps = net.features(x.float(), LAYER).double()  # (1 + N, C, 2b', 2b')
    res = relative_pose(maps[:1], maps[1:])  # rotate(a, R) ≈ b: a's pose onto b's
    err = SO3.geodesic_distance(res.rotation, rots)
    eye = torch.eye(3, dtype=torch.float64)
    rows = []
    for i in range(N_POSES):
        rows.append({
            "true": math.degrees(float(SO3.geodesic_distance(rots[i], eye))),
            "found": math.degrees(float(SO3.geodesic_distance(res.rotation[i], eye))),
            "error": math.degrees(float(err[i])),
            "confidence": float(res.confidence[i]),
            "symmetric": bool(res.symmetric[i]),
        })
    return rows, source, b, tuple(maps.shape[1:])


@demo_section("Relative pose by SO(3) correlation", order=52)
def pose_section(ctx: DemoContext) -> str:
    rows, source, b, shape = pose_rows(ctx)
    table = "\n".join(
        f"| {i + 1} | {r['true']:.1f}° | {r['found']:.1f}° | {r['error']:.3f}° | {r['confidence']:.2f} | "
        f"{'yes' if r['symmetric'] else 'no'} |" for i, r in enumerate(rows)
    )
    flagged = sum(bool(r["symmetric"]) for r in rows)
    note = (f"\n\n{flagged} of {N_POSES} pairs are flagged symmetric: at this layer the teacher's maps "
            "of this shape have a second, distinct correlation peak almost as high as the first, so the "
            "answer is reported as not unique even where the top peak is right." if flagged else "")
    return f"""
{source[0].upper() + source[1:]} is ray-cast onto the sphere (B = {b}, the bandwidth the
`{TEACHER}` teacher reads; distance and cosine channels) as it is and as R·mesh for
{N_POSES} seeded random rotations R. The teacher's `{LAYER}` feature maps ({shape[0]} channels on
the {shape[1]} × {shape[2]} grid) of both go to `equivision.sphere.relative_pose`, which
finds the R maximising the SO(3) correlation of the two (FFT on the grid, then refined):

| pair | angle of true R | angle of found R | geodesic error | confidence | symmetric |
|---|---|---|---|---|---|
{table}

The error is the geodesic distance between the true and the found rotation (not the
difference of their angles). Confidence is `(C₁ − C₂) / (C₁ − C̄)` against the second distinct
peak; "symmetric" flags a second peak as high as the first.{note} These maps come from meshes; the
image network that is to predict them from rendered images (`ImageToSphere`) is not trained
yet, so image-to-mesh pose is not shown here.
"""
