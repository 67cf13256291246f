"""Demo section: images of a mesh in known poses from the fixed pinhole camera, and one number
that pins the pose convention to the sphere ray casting."""

from __future__ import annotations

import math

import torch

from equivision.data.procedural import make_shape
from equivision.demo import DemoContext, demo_section
from equivision.figures import save_image_grid
from equivision.geometry.normalize import normalize_mesh
from equivision.groups import SO3
from equivision.io import Mesh, load_mesh
from equivision.render import camera_for_mesh, camera_hits, embree_available, raycast_sphere, render_views
from equivision.sphere import Grid

CHAIR = ("modelnet10", "test", "chair", "chair_0891.ply")


def demo_mesh(ctx: DemoContext) -> tuple[Mesh, str]:
    """A ModelNet10 test chair with the shared data, else a procedural box with an off-centre cone
    (no rotational symmetry, so every pose is distinguishable); float64, in the unit box."""
    if ctx.data_root is not None and ctx.data_root.joinpath(*CHAIR).exists():
        m = load_mesh(ctx.data_root.joinpath(*CHAIR))
        source = f"the ModelNet10 test chair `{CHAIR[-1]}`"
    else:
        box = make_shape("box", 0).mesh(32)
        cone = make_shape("cone", 1).mesh(24)
        cv = cone.vertices.double() * 0.5 + torch.tensor([0.4, 0.3, 0.45], dtype=torch.float64)
        faces = torch.cat([box.faces, cone.faces + len(box.vertices)])
        m = Mesh(torch.cat([box.vertices.double(), cv]), faces)
        source = "a procedural box with a cone stuck on one corner (no shared data)"
    unit, _, _ = normalize_mesh(Mesh(m.vertices.double(), m.faces))
    return unit, source


def centre_pixel_check(mesh: Mesh, rot: torch.Tensor, b: int = 4, size: int = 33) -> tuple[float, int]:
    """Largest disagreement (in object radii) between the camera's centre-pixel hit distance and
    ``raycast_sphere`` along the same line, over the hit grid points of bandwidth ``b``.

    The image of pose ``P`` sees ``M`` from ``Pᵀ(−ŷ)``; the sphere signal of ``R·M`` at ``u``
    sees it from ``Rᵀu``. With ``Q(−ŷ) = u`` and ``P = QᵀR`` both rays lie on one line, so
    their first-hit distances differ by the distance between their starts, ``D r − 1.01 r``.
    Returns ``(max |difference| / r, rays compared)``."""
    sig = raycast_sphere(mesh, b, rotations=rot[None], channels=["distance"], dtype=torch.float64)[0, 0]
    grid = Grid(b).points(dtype=torch.float64)
    cam = camera_for_mesh(mesh)
    r_sphere = 1.01 * float((mesh.vertices.double() - cam.center).norm(dim=-1).max())
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    worst, n = 0.0, 0
    for j in range(0, 2 * b, 2):
        for k in range(0, 2 * b, 3):
            if float(sig[j, k]) >= 2:  # a miss on the sphere: nothing to compare
                continue
            u = grid[j, k]
            axis = torch.linalg.cross(-y, u)
            angle = torch.atan2(axis.norm(), (-y * u).sum())
            q = SO3.from_axis_angle(axis if float(axis.norm()) > 1e-9 else y.roll(1), angle)
            hits = camera_hits(mesh, (q.T @ rot)[None], size=size, backend="torch")
            t_img = float(hits.distance[0, size // 2, size // 2])
            t_sphere = float(sig[j, k]) * r_sphere + cam.distance * cam.radius - r_sphere
            worst = max(worst, abs(t_img - t_sphere) / cam.radius)
            n += 1
    return worst, n


@demo_section("Images of meshes in known poses", order=50)
def render_section(ctx: DemoContext) -> str:
    mesh, source = demo_mesh(ctx)
    rots = SO3().random(6, seed=ctx.seed, dtype=torch.float64)
    size = 96
    imgs = render_views(mesh, rots, size=size)  # (6, 3, S, S): shading, silhouette, depth
    # rows: the three channels; columns: the poses
    grid = imgs.transpose(0, 1).reshape(-1, 1, size, size)
    save_image_grid(ctx.figure("render_poses.png"), grid, per_row=6)
    backend = "Embree (embreex)" if embree_available() else "PyTorch (Embree not installed)"
    worst, n = centre_pixel_check(mesh, rots[0])
    angles = [math.degrees(float(SO3.geodesic_distance(r, torch.eye(3, dtype=torch.float64)))) for r in rots]
    return f"""
{source[0].upper() + source[1:]} rendered by
`equivision.render.render_views` in 6 seeded uniform random poses (`SO3().random(6, seed={ctx.seed})`,
rotation angles {", ".join(f"{a:.0f}°" for a in angles)}), {size} × {size} pixels.

![rows: shading, silhouette, depth; columns: the 6 poses](render_poses.png)

| convention | value |
|---|---|
| world frame | the mesh's own x, y, z (z up) |
| camera | on −y, looking along +y at the surface centroid, at 3 object radii; image right = +x, up = +z |
| pose R | the image shows R·mesh (rotated about its centroid), as `raycast_sphere(mesh, B, rotations=R)` |
| channels | shading (Lambert, light from upper left front), silhouette, depth on the view axis |
| back end used | {backend} |
| centre pixel vs `raycast_sphere` | {n} rays (pose QᵀR₀): largest difference {worst:.1e} object radii |

The last row checks the pose convention: for a sphere-grid direction u, the camera's centre
ray in pose QᵀR (Q turning −y onto u) is the sphere's ray at u for R·mesh, so the two
first-hit distances differ only by where the rays start.
"""
