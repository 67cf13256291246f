"""The whole reconstruction pipeline follows the cloud's pose: the extraction grid is aligned
with the cloud's canonical frame, so a rotated and translated cloud gives the same mesh, moved
the same way (harness, float32, tolerance 1e-4 relative on the vertices)."""

from __future__ import annotations

import pytest
import torch
from _recon_fields import sphere_field

from equivision.groups import SE3
from equivision.models import list_pretrained, load
from equivision.models.peif import PEIFConfig, PEIFNet
from equivision.pipelines.reconstruct import reconstruct, reconstruct_with_field
from equivision.recon import AXIS1_FROM_ANCHOR, REGULAR, cloud_frame
from equivision.testing import assert_equivariant, equivariance_error

TOL = 1e-4  # relative error of the vertex array, float32 cloud and field
ELEMENTS = SE3().random(4, seed=5, dtype=torch.float32)


def bumpy_ellipsoid(n: int = 3000, seed: int = 0, axes=(1.0, 0.7, 0.45)) -> torch.Tensor:
    """A closed surface whose covariance has three well separated eigenvalues."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    r = 0.5 + 0.05 * torch.sin(4 * d[:, 0]) * torch.cos(3 * d[:, 1]) + 0.04 * d[:, 2] ** 3
    return d * r[:, None] * torch.tensor(axes) + torch.tensor([0.3, -0.2, 0.1])


def act(g, x):
    r, t = SE3.to_rt(g)
    return x @ r.T + t


def small_net(pose_normalization: bool) -> PEIFNet:
    torch.manual_seed(0)
    return PEIFNet(PEIFConfig(k=8, feature_dim=8, top_k=2, memory_heads=1, memory_items=4,
                              mlp_a=[16], mlp_d=[16], pose_normalization=pose_normalization)).eval()


def test_cloud_frame_is_equivariant_and_flags_isotropic_clouds():
    cloud = bumpy_ellipsoid()
    fr = cloud_frame(cloud.double())
    assert int(fr.status) == REGULAR
    assert torch.allclose(fr.rotations.T @ fr.rotations, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert float(torch.linalg.det(fr.rotations)) == pytest.approx(1.0)

    def frame(x):
        f = cloud_frame(x)
        return {"mu": f.centroids, "U": f.rotations}

    def act_frame(g, y):
        r, t = SE3.to_rt(g)
        return {"mu": y["mu"] @ r.T + t, "U": r @ y["U"]}

    assert_equivariant(frame, cloud, act, act_frame, ELEMENTS, tol=TOL)
    # an isotropic cloud (a sampled sphere): repeated eigenvalues, the first axis from the
    # farthest point; documented as still equivariant while that point is unique
    g = torch.Generator().manual_seed(3)
    sphere = torch.nn.functional.normalize(torch.randn(4000, 3, generator=g), dim=1)
    sphere = sphere * (1 + 0.01 * torch.rand(4000, 1, generator=g))
    fs = cloud_frame(sphere.double())
    assert int(fs.status) & AXIS1_FROM_ANCHOR
    assert_equivariant(frame, sphere, act, act_frame, ELEMENTS, tol=TOL)


def test_pipeline_is_equivariant_with_the_aligned_grid():
    """A (small, untrained) PEIF net: the mesh follows the pose on the aligned grid, not on a
    world-aligned one (the voxel lattice and the box then change with the pose). In float32:
    in bfloat16 this untrained field (not a distance field) tips a few crossing decisions under
    one of the 4 rotations (same face count, other faces; measured); the packaged model keeps
    every face in bfloat16 too (next tests)."""
    net = small_net(True)
    cloud = bumpy_ellipsoid()
    faces = []

    def verts(x, align=True):
        rec = reconstruct(x, net, resolution=24, align_grid=align, compute_dtype=torch.float32)
        if align:
            faces.append(rec.mesh.faces)
        return rec.mesh.vertices

    assert_equivariant(verts, cloud, act, act, ELEMENTS, tol=TOL)
    assert all(torch.equal(f, faces[0]) for f in faces)
    world = equivariance_error(lambda x: verts(x, False).mean(0), cloud, act, act, ELEMENTS)
    assert world > 1e-3


def test_a_field_that_ignores_the_pose_still_gives_an_equivariant_mesh():
    """The aligned grid hands the field only the canonical cloud, so even a field fixed to its
    coordinate axes (here: a sphere off the origin along x, like a no-pose model's bias) gives
    a mesh that follows the pose; on the world grid it does not. This is why the benchmark runs
    the no-pose ablation with ``align_grid=False``."""
    def offset_sphere(unit):
        c = torch.tensor([0.05, 0.0, 0.0], dtype=unit.dtype)
        r = float((unit - c).norm(dim=-1).mean())

        def disp(q):
            v = q - c
            n = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return (r - n) * v / n

        return disp

    cloud = bumpy_ellipsoid().double()
    elements = SE3().random(3, seed=4, dtype=torch.float64)

    def verts(x, align=True):
        return reconstruct_with_field(x, offset_sphere, resolution=24, align_grid=align).mesh.vertices

    assert_equivariant(verts, cloud, act, act, elements, tol=1e-9)
    assert equivariance_error(lambda x: verts(x, False).mean(0), cloud, act, act, elements) > 1e-2


def test_exact_field_mesh_follows_the_pose():
    """An analytic field (a sphere about the canonical origin) on an isotropic cloud, whose
    frame comes from the farthest point: the mesh still moves with the cloud (float64)."""
    g = torch.Generator().manual_seed(0)
    sphere = torch.nn.functional.normalize(torch.randn(3000, 3, generator=g, dtype=torch.float64), dim=1)

    def verts(x):
        return reconstruct_with_field(x, sphere_field, resolution=24).mesh.vertices

    elements = SE3().random(3, seed=2, dtype=torch.float64)
    assert_equivariant(verts, sphere, act, act, elements, tol=1e-9)


@pytest.mark.skipif("peif_default" not in list_pretrained(), reason="no packaged PEIF default")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packaged_model_mesh_follows_the_pose(dtype):
    """The same faces and vertices to 1e-4 relative in both arithmetics (measured on the 4
    elements: at most 9e-7 in float32, 1.3e-5 in bfloat16; bfloat16 is emulated, and slow,
    on CPUs without native support, but gives the same values)."""
    net = load("peif_default", model="peif")
    cloud = bumpy_ellipsoid(4000, seed=1)
    faces = []

    def verts(x):
        rec = reconstruct(x, net, resolution=32, compute_dtype=dtype)
        faces.append(rec.mesh.faces)
        return rec.mesh.vertices

    assert_equivariant(verts, cloud, act, act, ELEMENTS[:2], tol=TOL)
    assert all(torch.equal(f, faces[0]) for f in faces)
