"""Images of a mesh from a fixed pinhole camera, in any number of poses: grey Lambertian
shading, silhouette and depth. ``docs/render.md`` states the same conventions with examples.

Frames and pose:

* The world frame is the mesh's own, right-handed ``x, y, z``. The camera sits on the ``−y``
  side of the object's centre ``c``, at ``distance`` object radii from it, and looks along
  ``+y`` toward ``c``. Image right is ``+x``, image up is ``+z`` (z up, as in ModelNet and as
  the pole of the sphere grids). The camera frame (right, up, backward) = ``(+x, +z, −y)``
  is right-handed. Pixel ``[i, j]``: row ``i = 0`` is the top (largest ``z``), column
  ``j = 0`` the left (smallest ``x``).
* Normalisation: ``c`` is the area-weighted surface centroid
  (:func:`~equivision.render.sphere.surface_centroid`, as for
  :func:`~equivision.render.sphere.raycast_sphere`) and the radius ``r`` the largest distance
  from ``c`` to a vertex of a face, so the input's position and scale do not matter, and both
  move with the mesh: the centroid of ``R·M`` is ``R·c``.
* Pose ``R``: the image of pose ``R`` shows ``R·M``, the mesh rotated by ``R`` about ``c``
  (``x ↦ c + R (x − c)``), seen by the fixed camera; the same meaning as
  ``raycast_sphere(mesh, B, rotations=R)``. Equivalently, the fixed mesh seen by the camera
  moved by ``Rᵀ`` about ``c``.
* Field of view: square, ``tan(fov/2) = 1.1 · r / sqrt(D² − r²)`` for the camera at distance
  ``D``: the outline of the bounding sphere, and so the object in every pose, fits with a
  10% margin. At the default ``D = 3 r``, ``fov = 2 atan(1.1 / √8) ≈ 42.5°``.
* One ray per pixel centre (no anti-aliasing); everything is computed in float64 and is
  deterministic.

Channels, in the order asked (default :data:`CAMERA_CHANNELS`), float32 in ``[0, 1]``:

* ``"shading"``: ``AMBIENT + (1 − AMBIENT) · max(0, n · L)``, flat per face, with ``n`` the
  face's unit normal turned toward the camera (faces are two-sided: open or inconsistently
  oriented meshes shade alike) and ``L`` = :data:`LIGHT_DIRECTION` = ``(−1, −2, 2) / 3``
  (toward the light: from the upper left, in front), fixed in the world frame; ``AMBIENT =
  0.1``; background ``0``;
* ``"silhouette"``: ``1`` where the pixel's ray hits the mesh, background ``0``;
* ``"depth"``: the hit's depth along the viewing axis ``z`` (not the distance along the ray),
  ``(z − (D − r)) / (2 r)``: ``0`` at the front of the bounding sphere, ``1`` at its back;
  background ``1``.

Back ends: ``"embree"`` (Intel Embree through trimesh and ``embreex``: one acceleration
structure per mesh, all poses cast against it; its float32 ray–triangle test is followed by
the distance recomputed in float64 on the hit face's plane) and ``"torch"`` (PyTorch on the
mesh's device: each face is projected into the image and tested, with an exact float64
ray–triangle test, only against the pixel centres inside its projected bounding box; ties
go to the lower face index). ``"auto"``: Embree when installed. The two agree except where a
pixel centre lies within float32 rounding of an edge: there one may hit a face and the other
miss or hit the neighbouring face (``tests/render/test_camera.py`` bounds how many pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.geometry.normalize import check_mesh_area
from equivision.geometry.sampling import face_areas_and_normals
from equivision.groups.spatial import check_rotation_matrix
from equivision.io.meshes import Mesh, validate_mesh
from equivision.render.intersect import Hits
from equivision.render.intersect_embree import embree_available
from equivision.render.sphere import surface_centroid

CAMERA_CHANNELS: tuple[str, ...] = ("shading", "silhouette", "depth")
#: Unit vector toward the light, in the world frame: from the upper left, in front of the object.
LIGHT_DIRECTION: tuple[float, float, float] = (-1 / 3, -2 / 3, 2 / 3)
AMBIENT = 0.1
DEFAULT_DISTANCE = 3.0
#: Half-width of the field of view over the bounding sphere's outline.
FOV_MARGIN = 1.1
MAX_IMAGE_SIZE = 2048
CAMERA_BACKENDS: tuple[str, ...] = ("auto", "embree", "torch")
CameraBackend = Literal["auto", "embree", "torch"]

_FORWARD = (0.0, 1.0, 0.0)  # viewing direction, world frame
_BARY_EPS = 1e-12  # barycentric tolerance of the exact test (shared edges hit on both sides)


class PinholeCamera(NamedTuple):
    """Where the camera is for one mesh: the object's ``center (3,)`` and ``radius`` (float64),
    the ``eye (3,)`` at ``center − distance · radius · ŷ`` and ``tan_half_fov``."""

    center: Tensor
    radius: float
    distance: float
    eye: Tensor
    tan_half_fov: float


def _check_distance_fov(distance: float, fov_deg: float | None) -> tuple[float, float]:
    if isinstance(distance, bool) or not isinstance(distance, (int, float)) or not math.isfinite(distance):
        raise InvalidInputError(f"camera distance must be a finite number of object radii, got {distance!r}")
    if distance <= 1:
        raise InvalidInputError(
            f"camera distance {distance} object radii puts the camera inside the object's bounding sphere; "
            "it must be more than 1")
    if fov_deg is None:
        return float(distance), FOV_MARGIN / math.sqrt(distance**2 - 1)
    if isinstance(fov_deg, bool) or not isinstance(fov_deg, (int, float)) or not 0 < fov_deg < 180:
        raise InvalidInputError(f"field of view must be an angle in degrees in (0, 180), got {fov_deg!r}")
    return float(distance), math.tan(math.radians(fov_deg) / 2)


def camera_for_mesh(mesh: Mesh, *, distance: float = DEFAULT_DISTANCE, fov_deg: float | None = None
                    ) -> PinholeCamera:
    """The camera that :func:`render_views` uses for ``mesh`` (module docstring): ``distance``
    in object radii (more than 1), ``fov_deg`` the full field of view (default: the bounding
    sphere with a 10% margin)."""
    validate_mesh(mesh)
    dist, tan_half = _check_distance_fov(distance, fov_deg)
    v = mesh.vertices.detach().double()
    center = surface_centroid(Mesh(v, mesh.faces))
    radius = float((v[torch.unique(mesh.faces)] - center).norm(dim=-1).max())
    eye = center - dist * radius * torch.tensor(_FORWARD, dtype=torch.float64, device=v.device)
    return PinholeCamera(center, radius, dist, eye, tan_half)


def pixel_directions(size: int, tan_half_fov: float, *, device: torch.device | str | None = None) -> Tensor:
    """Unit directions ``(size, size, 3)`` float64, world frame, of the rays through the pixel
    centres of the fixed camera: ``[i, j]`` is row ``i`` (from the top), column ``j``."""
    s = torch.arange(size, dtype=torch.float64, device=device)
    coord = ((s + 0.5) / size * 2 - 1) * tan_half_fov
    right = coord[None, :].expand(size, size)  # +x
    up = -coord[:, None].expand(size, size)  # +z, row 0 at the top
    d = torch.stack([right, torch.ones_like(right), up], -1)
    return d / d.norm(dim=-1, keepdim=True)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_IMAGE_SIZE:
        raise InvalidInputError(f"image size must be an integer from 1 to {MAX_IMAGE_SIZE} px, got {size!r}")
    return int(size)


def _check_channels(channels: Sequence[str]) -> list[str]:
    chans = [channels] if isinstance(channels, str) else list(channels)
    if not chans or any(c not in CAMERA_CHANNELS for c in chans):
        raise InvalidInputError(f"channels must be a non-empty list of {CAMERA_CHANNELS}, got {chans}")
    return chans


def _check_rotations(rotations: Tensor | None, device: torch.device) -> Tensor:
    if rotations is None:
        return torch.eye(3, dtype=torch.float64, device=device)[None]
    check_rotation_matrix(rotations, "rotations")
    if rotations.ndim != 3:
        raise ShapeError(f"rotations must have shape (N, 3, 3), got {tuple(rotations.shape)}")
    return rotations.detach().to(device=device, dtype=torch.float64)


class _EmbreeScene:
    """First hits on one mesh with Embree; the acceleration structure is built on the first
    cast and kept for the following ones."""

    def __init__(self, vertices: Tensor, faces: Tensor) -> None:
        import trimesh
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        self.v = vertices.cpu().numpy()
        self.f = faces.cpu().numpy()
        self.intersector = RayMeshIntersector(trimesh.Trimesh(self.v, self.f, process=False))

    def first_hits(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tri = np.asarray(self.intersector.intersects_first(origins, directions), dtype=np.int64)
        t = np.full(len(tri), np.inf)
        hit = tri >= 0
        if hit.any():
            # Embree works in float32: the distance again, in float64, to the hit face's plane
            v = self.v[self.f[tri[hit]]]
            n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
            denom = (n * directions[hit]).sum(1)
            t[hit] = ((v[:, 0] - origins[hit]) * n).sum(1) / np.where(np.abs(denom) < 1e-300, 1e-300, denom)
        return t, tri


def _hits_embree(scene: _EmbreeScene, rots: Tensor, eye: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """``(K, P)`` distances and faces of the pixel rays ``dirs (P, 3)`` from ``eye`` (relative to
    the centre) for the poses ``rots (K, 3, 3)``: the rays turned by ``Rᵀ`` meet the fixed mesh."""
    k, p = rots.shape[0], dirs.shape[0]
    r = rots.cpu()
    o = (eye.cpu() @ r)[:, None, :].expand(k, p, 3).reshape(-1, 3).numpy()  # rows: (Rᵀ e)ᵀ = eᵀ R
    d = (dirs.cpu() @ r).reshape(-1, 3).numpy()
    t, tri = scene.first_hits(np.ascontiguousarray(o), np.ascontiguousarray(d))
    return torch.from_numpy(t).reshape(k, p), torch.from_numpy(tri).reshape(k, p)


def _hits_torch(v0: Tensor, faces: Tensor, rots: Tensor, eye: Tensor, dirs: Tensor, size: int,
                tan_half: float, chunk_pairs: int) -> tuple[Tensor, Tensor]:
    """As :func:`_hits_embree`, in PyTorch: each face of each posed mesh against the pixel
    centres inside its projected bounding box, with an exact float64 ray–triangle test."""
    k, n_pix, n_f = rots.shape[0], size * size, faces.shape[0]
    dev = v0.device
    p = torch.einsum("kij,vj->kvi", rots, v0) - eye  # (K, V, 3) posed vertices, eye at the origin
    tri = p[:, faces]  # (K, F, 3 corners, 3)
    # image coordinates of the corners (pixel centres at integers); every corner is in front
    # of the eye, since the camera is outside the bounding sphere
    depth = tri[..., 1]
    col = (tri[..., 0] / (depth * tan_half) + 1) * size / 2 - 0.5
    row = (1 - tri[..., 2] / (depth * tan_half)) * size / 2 - 0.5
    slack = 1e-6
    j0 = torch.ceil(col.amin(-1) - slack).clamp(0, size).long()
    j1 = torch.floor(col.amax(-1) + slack).clamp(-1, size - 1).long()
    i0 = torch.ceil(row.amin(-1) - slack).clamp(0, size).long()
    i1 = torch.floor(row.amax(-1) + slack).clamp(-1, size - 1).long()
    a = tri[:, :, 0]
    e1, e2 = tri[:, :, 1] - a, tri[:, :, 2] - a
    nrm = torch.linalg.cross(e1, e2)
    nn2 = (nrm * nrm).sum(-1)
    good = nn2 > 1e-30 * (a * a).sum(-1).clamp_min(1e-300)
    g1 = torch.linalg.cross(e2, nrm) / nn2.clamp_min(1e-300)[..., None]
    g2 = torch.linalg.cross(nrm, e1) / nn2.clamp_min(1e-300)[..., None]
    width = (j1 - j0 + 1).clamp_min(0)
    counts = (width * (i1 - i0 + 1).clamp_min(0) * good).reshape(-1)  # (K·F,)
    a, nrm, g1, g2 = (x.reshape(-1, 3) for x in (a, nrm, g1, g2))
    nn2, width, j0, i0 = nn2.reshape(-1), width.reshape(-1), j0.reshape(-1), i0.reshape(-1)
    t_out = torch.full((k * n_pix,), math.inf, dtype=torch.float64, device=dev)
    face_out = torch.full((k * n_pix,), -1, dtype=torch.long, device=dev)
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    total = int(ends[-1]) if len(ends) else 0
    lo = 0
    while lo < total:  # chunks of about chunk_pairs (face, pixel) pairs
        first = int(torch.searchsorted(ends, lo, right=True))
        last = max(int(torch.searchsorted(ends, lo + chunk_pairs, right=True)), first + 1)
        kf = torch.repeat_interleave(torch.arange(first, last, device=dev), counts[first:last])
        local = torch.arange(len(kf), device=dev) - (starts[kf] - starts[first])
        pix = (i0[kf] + local // width[kf]) * size + j0[kf] + local % width[kf]
        d = dirs[pix]
        dn = (d * nrm[kf]).sum(-1)
        ok = dn.abs() > 1e-12 * nn2[kf].sqrt()
        t = (a[kf] * nrm[kf]).sum(-1) / torch.where(ok, dn, torch.ones_like(dn))
        hit = t[:, None] * d - a[kf]
        u = (hit * g1[kf]).sum(-1)
        w = (hit * g2[kf]).sum(-1)
        valid = ok & (u >= -_BARY_EPS) & (w >= -_BARY_EPS) & (u + w <= 1 + _BARY_EPS) & (t > 0)
        t = torch.where(valid, t, torch.full_like(t, math.inf))
        key = (kf // n_f) * n_pix + pix
        face = kf % n_f
        before = t_out[key]
        t_out.scatter_reduce_(0, key, t, reduce="amin")
        face_out[key[t_out[key] < before]] = n_f  # a nearer hit: forget the old face
        best = valid & (t == t_out[key])
        face_out.scatter_reduce_(0, key[best], face[best], reduce="amin")
        lo = int(ends[last - 1])
    face_out = torch.where(torch.isfinite(t_out), face_out, torch.full_like(face_out, -1))
    return t_out.reshape(k, n_pix), face_out.reshape(k, n_pix)


def _check_backend(backend: str) -> bool:
    """Whether ``backend`` means Embree here."""
    if backend not in CAMERA_BACKENDS:
        raise InvalidInputError(f"backend must be one of {CAMERA_BACKENDS}, got {backend!r}")
    if backend == "embree" and not embree_available():
        raise InvalidInputError("backend 'embree' needs the embreex package (pip install embreex)")
    return backend == "embree" or (backend == "auto" and embree_available())


def camera_hits(
    mesh: Mesh,
    rotations: Tensor | None = None,
    *,
    size: int = 64,
    backend: CameraBackend = "auto",
    distance: float = DEFAULT_DISTANCE,
    fov_deg: float | None = None,
    chunk_rays: int = 1 << 20,
) -> Hits:
    """First hits of the pixel rays of the fixed camera on ``mesh`` in the poses ``rotations``
    (arguments as :func:`render_views`).

    Returns:
        :class:`~equivision.render.intersect.Hits` with ``distance (N, size, size)`` float64
        along the ray (``inf`` for a miss), ``face (N, size, size)`` (``-1`` for a miss) and
        ``normal (N, size, size, 3)``: the hit face's unit normal in the world frame (the pose
        applied), turned toward the camera; zero for a miss. ``N = 1`` without ``rotations``.
    """
    return _cast(mesh, rotations, size, backend, distance, fov_deg, chunk_rays)[0]


def _cast(mesh: Mesh, rotations: Tensor | None, size: int, backend: str, distance: float,
          fov_deg: float | None, chunk_rays: int) -> tuple[Hits, PinholeCamera, Tensor]:
    """:func:`camera_hits`, with the camera and the pixel directions ``(size, size, 3)``."""
    validate_mesh(mesh)
    check_mesh_area(mesh)  # collinear or collapsed faces leave nothing to see
    size = _check_size(size)
    use_embree = _check_backend(backend)
    if isinstance(chunk_rays, bool) or not isinstance(chunk_rays, int) or chunk_rays < 1:
        raise InvalidInputError(f"chunk_rays must be a positive integer, got {chunk_rays!r}")
    dev = mesh.vertices.device
    rots = _check_rotations(rotations, dev)
    cam = camera_for_mesh(mesh, distance=distance, fov_deg=fov_deg)
    faces = mesh.faces.detach().to(dev).long()
    v0 = mesh.vertices.detach().double() - cam.center  # centred in float64: Embree casts in float32
    _, normals = face_areas_and_normals(Mesh(v0, faces))
    eye = cam.eye - cam.center
    dirs = pixel_directions(size, cam.tan_half_fov, device=dev).reshape(-1, 3)
    n_rot, n_pix = rots.shape[0], size * size
    per_chunk = max(1, chunk_rays // n_pix)
    scene = _EmbreeScene(v0, faces) if use_embree else None
    t_all = torch.empty(n_rot, n_pix, dtype=torch.float64, device=dev)
    f_all = torch.empty(n_rot, n_pix, dtype=torch.long, device=dev)
    n_all = torch.empty(n_rot, n_pix, 3, dtype=torch.float64, device=dev)
    for s in range(0, n_rot, per_chunk):
        rk = rots[s : s + per_chunk]
        if scene is not None:
            t, face = _hits_embree(scene, rk, eye, dirs)
            t, face = t.to(dev), face.to(dev)
        else:
            t, face = _hits_torch(v0, faces, rk, eye, dirs, size, cam.tan_half_fov, chunk_rays)
        hit = torch.isfinite(t) & (face >= 0)
        n = torch.einsum("kij,kpj->kpi", rk, normals[face.clamp_min(0)])  # world-frame normals
        n = torch.where(((n * dirs).sum(-1) > 0)[..., None], -n, n)  # two-sided: toward the camera
        t_all[s : s + per_chunk] = torch.where(hit, t, torch.full_like(t, math.inf))
        f_all[s : s + per_chunk] = torch.where(hit, face, torch.full_like(face, -1))
        n_all[s : s + per_chunk] = torch.where(hit[..., None], n, torch.zeros_like(n))
    shape = (n_rot, size, size)
    hits = Hits(t_all.reshape(shape), f_all.reshape(shape), n_all.reshape(*shape, 3))
    return hits, cam, dirs.reshape(size, size, 3)


def render_views(
    mesh: Mesh,
    rotations: Tensor | None = None,
    *,
    size: int = 64,
    channels: Sequence[str] = CAMERA_CHANNELS,
    backend: CameraBackend = "auto",
    distance: float = DEFAULT_DISTANCE,
    fov_deg: float | None = None,
    chunk_rays: int = 1 << 20,
) -> Tensor:
    """Images of ``mesh`` in the poses ``rotations`` from the fixed pinhole camera (module
    docstring for the frames, the channels and the back ends).

    Args:
        mesh: the triangle mesh (any position and scale).
        rotations: ``(N, 3, 3)`` poses; the image of pose ``R`` shows the mesh rotated by ``R``
            about its centroid. None: the mesh as it is.
        size: the images are ``size × size`` pixels, 1 to :data:`MAX_IMAGE_SIZE`.
        channels: any of ``"shading"``, ``"silhouette"``, ``"depth"``, in the order wanted.
        backend: ``"embree"``, ``"torch"`` or ``"auto"`` (Embree when installed).
        distance: camera distance from the centre, in object radii (more than 1).
        fov_deg: full field of view in degrees; default: the bounding sphere with a 10% margin.
        chunk_rays: rays (Embree) or face–pixel pairs (PyTorch) handled at a time, for memory.

    Returns:
        ``(N, C, size, size)`` float32, or ``(C, size, size)`` without ``rotations``; on the
        mesh's device.
    """
    chans = _check_channels(channels)
    hits, cam, dirs = _cast(mesh, rotations, size, backend, distance, fov_deg, chunk_rays)
    hit = hits.hit
    dev = hits.distance.device
    values = {}
    for c in chans:
        if c == "shading":
            light = torch.tensor(LIGHT_DIRECTION, dtype=torch.float64, device=dev)
            shade = AMBIENT + (1 - AMBIENT) * (hits.normal @ light).clamp_min(0)
            values[c] = torch.where(hit, shade, torch.zeros_like(shade))
        elif c == "silhouette":
            values[c] = hit.double()
        else:
            z = hits.distance * dirs[..., 1]  # depth along the viewing axis
            z = ((z - (cam.distance - 1) * cam.radius) / (2 * cam.radius)).clamp(0, 1)
            values[c] = torch.where(hit, z, torch.ones_like(z))
    out = torch.stack([values[c] for c in chans], 1).float()
    return out[0] if rotations is None else out


__all__ = [
    "AMBIENT",
    "CAMERA_BACKENDS",
    "CAMERA_CHANNELS",
    "DEFAULT_DISTANCE",
    "FOV_MARGIN",
    "LIGHT_DIRECTION",
    "MAX_IMAGE_SIZE",
    "CameraBackend",
    "PinholeCamera",
    "camera_for_mesh",
    "camera_hits",
    "pixel_directions",
    "render_views",
]
