"""Pinhole images of posed meshes: conventions, agreement with the sphere ray casting,
batching, back ends, shading and depth oracles, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from equivision.errors import (
    DegenerateGeometryError,
    InvalidInputError,
    NotARotationError,
    ShapeError,
)
from equivision.groups import SO3
from equivision.io import Mesh
from equivision.render import (
    LIGHT_DIRECTION,
    camera_for_mesh,
    camera_hits,
    embree_available,
    intersect_first,
    raycast_sphere,
    render_views,
    surface_centroid,
)
from equivision.render.camera import AMBIENT
from equivision.sphere.grid import Grid

needs_embree = pytest.mark.skipif(not embree_available(), reason="embreex is not installed")
SHADE, SIL, DEPTH = 0, 1, 2


def _mesh(tm: trimesh.Trimesh) -> Mesh:
    return Mesh(torch.tensor(tm.vertices, dtype=torch.float64), torch.tensor(tm.faces, dtype=torch.long))


@pytest.fixture(scope="module")
def bumpy() -> Mesh:
    """A unit cube with a bump on +x and a thinner post on +z: no symmetry left."""
    cube = trimesh.creation.box(extents=(1, 1, 1))
    bump = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    bump.apply_translation((0.6, 0, 0))
    post = trimesh.creation.box(extents=(0.15, 0.15, 0.4))
    post.apply_translation((0, 0.2, 0.65))
    return _mesh(trimesh.util.concatenate([cube, bump, post]))


@pytest.fixture(scope="module")
def blob() -> Mesh:
    """A smooth asymmetric closed mesh of 1280 faces."""
    tm = trimesh.creation.icosphere(subdivisions=3)
    v = tm.vertices * (1 + 0.3 * tm.vertices[:, :1] + 0.15 * tm.vertices[:, 2:] ** 2) * (1.0, 0.7, 0.5)
    return _mesh(trimesh.Trimesh(v + np.array([3.0, -2.0, 5.0]), tm.faces, process=False))


def _edges(sil: torch.Tensor) -> dict[str, int]:
    """How many pixels of the silhouette (H, W) lie on its topmost row, bottom row, leftmost
    and rightmost column: a narrow protrusion reaches its side with few."""
    rows = torch.nonzero(sil.any(1)).squeeze(1)
    cols = torch.nonzero(sil.any(0)).squeeze(1)
    return {"top": int(sil[rows[0]].sum()), "bottom": int(sil[rows[-1]].sum()),
            "left": int(sil[:, cols[0]].sum()), "right": int(sil[:, cols[-1]].sum())}


@pytest.mark.parametrize("backend", ["torch", pytest.param("embree", marks=needs_embree)])
def test_image_axes_follow_the_documented_frame(bumpy, backend) -> None:
    rz180 = SO3.from_axis_angle(torch.tensor([0.0, 0, 1], dtype=torch.float64), torch.tensor(math.pi))
    ry90 = SO3.from_axis_angle(torch.tensor([0.0, 1, 0], dtype=torch.float64), torch.tensor(math.pi / 2))
    img = render_views(bumpy, torch.stack([torch.eye(3, dtype=torch.float64), rz180, ry90]), size=64,
                       channels=["silhouette"], backend=backend)[:, 0] > 0
    narrow, wide = 12, 25  # the protrusions are 0.3 and 0.15 wide, the cube 1
    # the bump on +x is on the image's right, the post on +z at its top
    e = _edges(img[0])
    assert e["right"] <= narrow and e["left"] >= wide and e["top"] <= narrow and e["bottom"] >= wide, e
    # turned 180° about z, the bump is on −x: the image's left
    e = _edges(img[1])
    assert e["left"] <= narrow and e["right"] >= wide and e["top"] <= narrow, e
    # turned +90° about y, +x goes to −z and +z to +x: the bump below, the post on the right
    e = _edges(img[2])
    assert e["bottom"] <= narrow and e["top"] >= wide and e["right"] <= narrow and e["left"] >= wide, e


def test_pose_means_the_mesh_rotated_about_its_centroid(blob) -> None:
    rots = SO3().random(3, seed=4, dtype=torch.float64)
    c = surface_centroid(blob)
    posed = render_views(blob, rots, size=32, backend="torch")
    for k in range(3):
        moved = Mesh((blob.vertices - c) @ rots[k].T + c + 10.0, blob.faces)
        torch.testing.assert_close(render_views(moved, size=32, backend="torch"), posed[k], atol=1e-5, rtol=0)


def test_centre_pixel_agrees_with_the_sphere_ray_casting(blob) -> None:
    """The centre pixel's ray is the line from the camera (on −y) through the centroid. The
    image of pose ``P`` sees ``M`` from the direction ``Pᵀ(−ŷ)``; the sphere signal of ``R·M``
    at a grid point ``u`` sees ``M`` from ``Rᵀu``. With ``Q`` taking ``−ŷ`` to ``u`` and
    ``P = Qᵀ R`` the two rays lie on one line, so their first-hit distances differ by exactly
    the distance between their starting points, ``D r − 1.01 r``."""
    b, s = 4, 33
    rot = SO3().random(1, seed=7, dtype=torch.float64)
    sig = raycast_sphere(blob, b, rotations=rot, channels=["distance"], dtype=torch.float64)[0, 0]
    grid = Grid(b).points(dtype=torch.float64)
    cam = camera_for_mesh(blob)
    radius_sphere = 1.01 * float((blob.vertices - cam.center).norm(dim=-1).max())
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    checked = 0
    for j, k in [(1, 0), (3, 2), (5, 5), (6, 1), (2, 7)]:
        u = grid[j, k]
        axis = torch.linalg.cross(-y, u)
        angle = torch.atan2(axis.norm(), (-y * u).sum())
        q = SO3.from_axis_angle(axis if float(axis.norm()) > 1e-9 else y.roll(1), angle)  # Q(−ŷ) = u
        pose = q.T @ rot[0]
        hits = camera_hits(blob, pose[None], size=s, backend="torch")
        t_img = float(hits.distance[0, s // 2, s // 2])
        if sig[j, k] >= 2:  # a miss on the sphere is a miss in the image
            assert math.isinf(t_img)
            continue
        t_sphere = float(sig[j, k]) * radius_sphere
        assert t_img == pytest.approx(t_sphere + cam.distance * cam.radius - radius_sphere, abs=1e-9)
        checked += 1
    assert checked >= 4


def test_batched_poses_equal_one_by_one(blob) -> None:
    rots = SO3().random(5, seed=1, dtype=torch.float64)
    together = render_views(blob, rots, size=24, backend="torch", chunk_rays=24 * 24 * 2)
    for k in range(5):
        torch.testing.assert_close(render_views(blob, rots[k : k + 1], size=24, backend="torch")[0],
                                   together[k], atol=0, rtol=0)


def test_deterministic_and_float32(blob) -> None:
    rots = SO3().random(2, seed=3)
    a = render_views(blob, rots, size=20)
    assert a.dtype == torch.float32 and a.shape == (2, 3, 20, 20)
    assert torch.equal(a, render_views(blob, rots, size=20))
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_torch_back_end_matches_brute_force(bumpy) -> None:
    """The image-space binning finds the same first hits as testing every face against every ray."""
    s = 24
    rot = SO3().random(1, seed=5, dtype=torch.float64)
    hits = camera_hits(bumpy, rot, size=s, backend="torch")
    cam = camera_for_mesh(bumpy)
    from equivision.render import pixel_directions

    d = pixel_directions(s, cam.tan_half_fov).reshape(-1, 3) @ rot[0]  # rays turned by Rᵀ
    o = (cam.eye - cam.center) @ rot[0] + cam.center
    ref = intersect_first(bumpy, o.expand_as(d), d, backend="torch")
    torch.testing.assert_close(hits.distance.reshape(-1), ref.distance, atol=1e-9, rtol=0)
    assert (hits.face.reshape(-1) == ref.face).float().mean() > 0.97  # ties on shared edges may differ


@needs_embree
@pytest.mark.parametrize("size", [64, 128])
def test_embree_and_torch_agree(blob, size) -> None:
    rots = SO3().random(4, seed=2, dtype=torch.float64)
    e = camera_hits(blob, rots, size=size, backend="embree")
    t = camera_hits(blob, rots, size=size, backend="torch")
    img_e = render_views(blob, rots, size=size, backend="embree")
    img_t = render_views(blob, rots, size=size, backend="torch")
    # silhouettes: only pixel centres within float32 rounding of the outline may differ
    assert float((e.hit != t.hit).float().mean()) <= 1e-3
    same = e.hit & t.hit & (e.face == t.face)
    assert float(same.float().sum() / (e.hit & t.hit).float().sum()) > 0.99
    for c in (SHADE, DEPTH):
        diff = (img_e[:, c] - img_t[:, c]).abs()[same]
        assert float(diff.max()) <= 1e-4


def test_lambert_cosine_law_on_a_tilted_plane() -> None:
    """A square facing the camera, tilted by θ about x: every pixel it covers has
    ``AMBIENT + (1 − AMBIENT) max(0, n · L)`` with its normal ``n = Rx(θ)(−ŷ) = (0, −cos θ, −sin θ)``."""
    sq = Mesh(torch.tensor([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1.0]], dtype=torch.float64),
              torch.tensor([[0, 1, 2], [0, 2, 3]]))
    light = torch.tensor(LIGHT_DIRECTION, dtype=torch.float64)
    thetas = [0.0, 0.5, -0.9, 1.2]
    rots = torch.stack([SO3.from_axis_angle(torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor(t))
                        for t in thetas])
    img = render_views(sq, rots, size=16, backend="torch")
    for k, th in enumerate(thetas):
        n = torch.tensor([0.0, -math.cos(th), -math.sin(th)], dtype=torch.float64)
        want = AMBIENT + (1 - AMBIENT) * max(0.0, float(n @ light))
        covered = img[k, SIL] > 0
        assert int(covered.sum()) > 20
        want_img = torch.full((int(covered.sum()),), want, dtype=torch.float32)
        torch.testing.assert_close(img[k, SHADE][covered], want_img, atol=1e-6, rtol=0)


def test_centre_of_a_sphere_shades_by_its_facing_normal() -> None:
    ball = _mesh(trimesh.creation.icosphere(subdivisions=5))
    img = render_views(ball, size=33, backend="torch")
    # the normal at the centre points at the camera, −ŷ, so n · L = 2/3
    assert float(img[SHADE, 16, 16]) == pytest.approx(AMBIENT + (1 - AMBIENT) * 2 / 3, abs=3e-3)
    assert float(img[SHADE, 0, 0]) == 0 and float(img[DEPTH, 0, 0]) == 1 and float(img[SIL, 0, 0]) == 0


def test_depth_of_planes_at_known_distances() -> None:
    """A 2 × 2 square in the plane y = 0 and a 0.5 × 0.5 one at y = −1 in front of it: the
    centroid is at y = −1/17 (areas 4 and 1/4) and the radius √(2 + 1/289) (a big corner)."""
    big = [[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1.0]]
    small = [[-0.25, -1, -0.25], [0.25, -1, -0.25], [0.25, -1, 0.25], [-0.25, -1, 0.25]]
    faces = [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]
    m = Mesh(torch.tensor(big + small, dtype=torch.float64), torch.tensor(faces))
    r = math.sqrt(2 + 1 / 289)
    cam = camera_for_mesh(m)
    assert cam.radius == pytest.approx(r, abs=1e-12) and float(cam.center[1]) == pytest.approx(-1 / 17)
    img = render_views(m, size=31, backend="torch")
    assert float(img[DEPTH, 15, 15]) == pytest.approx(0.5 + (-1 + 1 / 17) / (2 * r), abs=1e-6)  # small square
    assert float(img[DEPTH, 15, 8]) == pytest.approx(0.5 + (1 / 17) / (2 * r), abs=1e-6)  # the big one
    far = render_views(m, size=31, backend="torch", distance=5.0)  # depth is relative to the sphere
    assert float(far[DEPTH, 15, 8]) == pytest.approx(0.5 + (1 / 17) / (2 * r), abs=1e-6)


def test_default_field_of_view_keeps_a_margin(blob) -> None:
    rots = SO3().random(8, seed=9, dtype=torch.float64)
    sil = render_views(blob, rots, size=48, channels=("silhouette",))[:, 0]
    border = torch.cat([sil[:, 0], sil[:, -1], sil[:, :, 0], sil[:, :, -1]], 1)
    assert float(border.max()) == 0
    assert math.degrees(2 * math.atan(camera_for_mesh(blob).tan_half_fov)) == pytest.approx(42.5, abs=0.05)


def test_channels_in_the_order_asked(blob) -> None:
    full = render_views(blob, size=16)
    two = render_views(blob, size=16, channels=["depth", "shading"])
    torch.testing.assert_close(two, full[[DEPTH, SHADE]])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"size": 0}, InvalidInputError),
        ({"size": 100_000}, InvalidInputError),
        ({"size": 2.5}, InvalidInputError),
        ({"distance": 1.0}, InvalidInputError),
        ({"distance": 0.5}, InvalidInputError),
        ({"distance": float("nan")}, InvalidInputError),
        ({"fov_deg": 180.0}, InvalidInputError),
        ({"channels": ["colour"]}, InvalidInputError),
        ({"channels": []}, InvalidInputError),
        ({"backend": "opengl"}, InvalidInputError),
        ({"rotations": torch.eye(3)}, ShapeError),
        ({"rotations": torch.eye(4)[None]}, ShapeError),
        ({"rotations": 2 * torch.eye(3)[None]}, NotARotationError),
        ({"rotations": torch.diag(torch.tensor([1.0, 1, -1]))[None]}, NotARotationError),
    ],
)
def test_bad_arguments(blob, kwargs, error) -> None:
    with pytest.raises(error):
        render_views(blob, **kwargs)


@pytest.mark.parametrize(
    ("mesh", "error"),
    [
        (Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)), DegenerateGeometryError),
        (Mesh(torch.rand(4, 3), torch.zeros(0, 3, dtype=torch.long)), DegenerateGeometryError),
        (Mesh(torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]]), torch.tensor([[0, 1, 2]])),
         DegenerateGeometryError),
        (Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [float("nan"), 1, 0]]), torch.tensor([[0, 1, 2]])),
         InvalidInputError),
        (Mesh(torch.rand(3, 2), torch.tensor([[0, 1, 2]])), ShapeError),
    ],
)
def test_bad_meshes(mesh, error) -> None:
    with pytest.raises(error):
        render_views(mesh)
