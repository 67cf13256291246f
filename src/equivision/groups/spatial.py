"""Groups acting on R^3: SO(3) (elements ``(..., 3, 3)`` rotation matrices) and SE(3)
(elements ``(..., 4, 4)`` homogeneous matrices ``[[R, t], [0, 1]]``).

Conventions, fixed once for the whole library:

* rotations act on column vectors, ``x ↦ R x``; a point cloud ``(N, 3)`` maps to ``X Rᵀ``;
* unit quaternions are scalar-last ``(x, y, z, w)`` as in SciPy and roma, canonicalised to
  ``w ≥ 0``;
* ZYZ Euler angles ``(α, β, γ)`` mean ``R = Rz(α) Ry(β) Rz(γ)`` (intrinsic z-y'-z'');
  ``α, γ ∈ (−π, π]``, ``β ∈ [0, π]``;
* axis-angle is a unit axis and an angle in ``[0, π]``; a rotation vector is their product.

Conversions use `roma <https://github.com/naver/roma>`_; they are tested against SciPy.
"""

from __future__ import annotations

import math

import roma
import torch
from torch import Tensor

from equivision._validation import check_finite, check_last_dims
from equivision.errors import InvalidInputError
from equivision.groups.base import Group, homogeneous, make_generator

# Super-Fibonacci constants (Alexa, "Super-Fibonacci Spirals", CVPR 2022)
_SF_PHI = math.sqrt(2.0)
_SF_PSI = 1.533751168755204288118041


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    return dtype if dtype is not None else torch.get_default_dtype()


def check_rotation_matrix(r: Tensor, name: str = "rotation", atol: float | None = None) -> None:
    """Raise :class:`InvalidInputError` unless ``r`` holds proper rotation matrices
    ``(..., 3, 3)`` (``RᵀR = I`` and ``det R = 1`` within ``atol``; default 1e-4 for
    float32, 1e-8 for float64)."""
    if not isinstance(r, Tensor):
        raise InvalidInputError(f"{name} must be a tensor of shape (..., 3, 3)")
    check_last_dims(r, name, (3, 3))
    if not r.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point, got {r.dtype}")
    check_finite(r, name)
    if atol is None:
        atol = 1e-8 if r.dtype == torch.float64 else 1e-4
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    ortho = (r.transpose(-1, -2) @ r - eye).abs().amax() if r.numel() else torch.tensor(0.0)
    if float(ortho) > atol:
        raise InvalidInputError(
            f"{name} is not orthogonal (max |RᵀR − I| = {float(ortho):.2e} > {atol:.0e}); "
            "project it with equivision.groups.SO3.project()"
        )
    if r.numel() and bool((torch.linalg.det(r) < 0).any()):
        raise InvalidInputError(f"{name} contains reflections (det = −1), not rotations")


class SO3(Group):
    """The rotation group of R^3."""

    element_shape = (3, 3)
    space_dim = 3

    def __init__(self) -> None:
        self.name = "SO3"

    # ----- structure ---------------------------------------------------------------------
    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        eye = torch.eye(3, dtype=_float_dtype(dtype), device=device)
        return eye.expand(*batch_shape, 3, 3).clone()

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        return g @ h

    def inverse(self, g: Tensor) -> Tensor:
        return g.transpose(-1, -2)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        g = g.to(dtype) if dtype is not None else g
        return homogeneous(g, torch.zeros(*g.shape[:-1], dtype=g.dtype, device=g.device))

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        """Rotate points ``(..., N, 3)`` by ``g`` ``(..., 3, 3)``: ``X Rᵀ``."""
        self.check_element(g)
        from equivision._validation import check_points

        check_points(points, "points", 3)
        return points @ g.to(points.dtype).transpose(-1, -2)

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        """Uniform (Haar) random rotations, from normalised Gaussian quaternions."""
        gen = make_generator(seed, generator)
        q = torch.randn(n, 4, generator=gen, dtype=torch.float64)
        q = q / q.norm(dim=-1, keepdim=True)
        return roma.unitquat_to_rotmat(q).to(dtype=_float_dtype(dtype), device=device)

    def allclose(self, g: Tensor, h: Tensor, atol: float = 1e-5) -> bool:
        return bool(torch.allclose(g.double(), h.double(), atol=atol, rtol=0))

    # ----- checks and projections ----------------------------------------------------------
    @staticmethod
    def check(r: Tensor, atol: float | None = None) -> None:
        """See :func:`check_rotation_matrix`."""
        check_rotation_matrix(r, atol=atol)

    @staticmethod
    def project(m: Tensor) -> Tensor:
        """The nearest rotation matrix (special Procrustes, via SVD) to each ``(..., 3, 3)``."""
        check_last_dims(m, "matrix", (3, 3))
        return roma.special_procrustes(m)

    # ----- conversions -----------------------------------------------------------------------
    @staticmethod
    def from_quaternion(q: Tensor) -> Tensor:
        """Unit quaternions ``(..., 4)`` scalar-last ``(x, y, z, w)`` to matrices (normalised first)."""
        check_last_dims(q, "quaternion", (4,))
        norm = q.norm(dim=-1, keepdim=True)
        if bool((norm < 1e-12).any()):
            raise InvalidInputError("quaternion with zero norm cannot be a rotation")
        return roma.unitquat_to_rotmat(q / norm)

    @staticmethod
    def to_quaternion(r: Tensor) -> Tensor:
        """Matrices to unit quaternions ``(..., 4)`` ``(x, y, z, w)`` with ``w ≥ 0``."""
        check_last_dims(r, "rotation", (3, 3))
        q = roma.rotmat_to_unitquat(r)
        return torch.where(q[..., 3:4] < 0, -q, q)

    @staticmethod
    def from_rotvec(v: Tensor) -> Tensor:
        """Rotation vectors ``(..., 3)`` (axis × angle) to matrices."""
        check_last_dims(v, "rotation vector", (3,))
        return roma.rotvec_to_rotmat(v)

    @staticmethod
    def to_rotvec(r: Tensor) -> Tensor:
        """Matrices to rotation vectors ``(..., 3)`` with angle in ``[0, π]``."""
        check_last_dims(r, "rotation", (3, 3))
        return roma.rotmat_to_rotvec(r)

    @staticmethod
    def from_axis_angle(axis: Tensor, angle: Tensor) -> Tensor:
        """Axes ``(..., 3)`` (normalised here) and angles ``(...,)`` to matrices."""
        check_last_dims(axis, "axis", (3,))
        n = axis.norm(dim=-1, keepdim=True)
        if bool((n < 1e-12).any()):
            raise InvalidInputError("rotation axis has zero length")
        return roma.rotvec_to_rotmat(axis / n * angle[..., None])

    @staticmethod
    def to_axis_angle(r: Tensor) -> tuple[Tensor, Tensor]:
        """Matrices to (unit axis ``(..., 3)``, angle ``(...,)`` in ``[0, π]``); the axis of
        the identity is ``(0, 0, 1)``."""
        v = SO3.to_rotvec(r)
        angle = v.norm(dim=-1)
        z = torch.zeros_like(v)
        z[..., 2] = 1
        axis = torch.where(angle[..., None] > 1e-12, v / angle.clamp_min(1e-12)[..., None], z)
        return axis, angle

    @staticmethod
    def from_euler_zyz(alpha: Tensor, beta: Tensor, gamma: Tensor) -> Tensor:
        """ZYZ Euler angles (each ``(...,)``) to ``Rz(α) Ry(β) Rz(γ)``."""
        a, b, c = torch.broadcast_tensors(
            torch.as_tensor(alpha), torch.as_tensor(beta), torch.as_tensor(gamma)
        )
        return roma.euler_to_rotmat("ZYZ", torch.stack([a, b, c], -1))

    @staticmethod
    def to_euler_zyz(r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Matrices to ZYZ angles ``(α, β, γ)``; at ``β ∈ {0, π}`` (gimbal lock) ``γ = 0``."""
        check_last_dims(r, "rotation", (3, 3))
        beta = torch.atan2(torch.hypot(r[..., 0, 2], r[..., 1, 2]), r[..., 2, 2])
        alpha = torch.atan2(r[..., 1, 2], r[..., 0, 2])
        gamma = torch.atan2(r[..., 2, 1], -r[..., 2, 0])
        eps = 1e-6 if r.dtype == torch.float32 else 1e-12
        lock = torch.sin(beta).abs() < eps
        # β = 0: R = Rz(α+γ); β = π: R = Rz(α−γ) Ry(π). Both give α = atan2(−R01, R11) at γ = 0.
        alpha_lock = torch.atan2(-r[..., 0, 1], r[..., 1, 1])
        alpha = torch.where(lock, alpha_lock, alpha)
        gamma = torch.where(lock, torch.zeros_like(gamma), gamma)
        return alpha, beta, gamma

    @staticmethod
    def geodesic_distance(r1: Tensor, r2: Tensor) -> Tensor:
        """The angle of ``R1ᵀ R2`` in radians, ``(...,)``, accurate near 0 and π."""
        return roma.rotmat_geodesic_distance(r1, r2)

    @staticmethod
    def grid(n: int, *, dtype=None, device=None) -> Tensor:
        """``n`` deterministic, near-uniform rotations ``(n, 3, 3)`` (super-Fibonacci spiral).

        The same ``n`` always gives the same rotations; covering radius falls as ``n^(-1/3)``.
        """
        if int(n) != n or n < 1:
            raise InvalidInputError(f"grid size must be a positive integer, got {n}")
        s = torch.arange(n, dtype=torch.float64) + 0.5
        r = torch.sqrt(s / n)
        big_r = torch.sqrt(1.0 - s / n)
        a = 2 * math.pi * s / _SF_PHI
        b = 2 * math.pi * s / _SF_PSI
        q = torch.stack([r * torch.sin(a), r * torch.cos(a), big_r * torch.sin(b), big_r * torch.cos(b)], -1)
        return roma.unitquat_to_rotmat(q).to(dtype=_float_dtype(dtype), device=device)


class SE3(Group):
    """Rigid motions of R^3 as homogeneous matrices ``(..., 4, 4)``. Random translations are
    Gaussian with standard deviation ``translation_scale``; rotations uniform."""

    element_shape = (4, 4)
    space_dim = 3

    def __init__(self, translation_scale: float = 1.0) -> None:
        self.translation_scale = float(translation_scale)
        self.name = "SE3"

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        eye = torch.eye(4, dtype=_float_dtype(dtype), device=device)
        return eye.expand(*batch_shape, 4, 4).clone()

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        return g @ h

    def inverse(self, g: Tensor) -> Tensor:
        r_t = g[..., :3, :3].transpose(-1, -2)
        t = -(r_t @ g[..., :3, 3:4])[..., 0]
        return homogeneous(r_t, t)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        return g.to(dtype) if dtype is not None else g

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        r = SO3().random(n, generator=gen, dtype=torch.float64)
        t = torch.randn(n, 3, generator=gen, dtype=torch.float64) * self.translation_scale
        return homogeneous(r, t).to(dtype=_float_dtype(dtype), device=device)

    @staticmethod
    def from_rt(rotation: Tensor, translation: Tensor) -> Tensor:
        """``(..., 3, 3)`` rotations and ``(..., 3)`` translations to ``(..., 4, 4)``."""
        check_last_dims(rotation, "rotation", (3, 3))
        check_last_dims(translation, "translation", (3,))
        return homogeneous(rotation, translation)

    @staticmethod
    def to_rt(g: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., 4, 4)`` to (rotation ``(..., 3, 3)``, translation ``(..., 3)``)."""
        check_last_dims(g, "SE3 element", (4, 4))
        return g[..., :3, :3], g[..., :3, 3]
