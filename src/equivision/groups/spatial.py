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
from equivision.errors import InvalidInputError, NotARotationError
from equivision.groups.base import Group, homogeneous, make_generator

# Super-Fibonacci constants (Alexa, "Super-Fibonacci Spirals", CVPR 2022)
_SF_PHI = math.sqrt(2.0)
_SF_PSI = 1.533751168755204288118041


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    return dtype if dtype is not None else torch.get_default_dtype()


#: Default tolerance of :func:`check_rotation_matrix` on ``max |RᵀR − I|``, per dtype. The
#: float64 one admits float32 rotations converted with ``.double()`` (their error is 1e-7 to
#: 1e-6) while refusing any scale or shear above 1e-5; float32 leaves room for products.
ROTATION_ATOL = {torch.float32: 1e-4, torch.float64: 1e-5}


def check_rotation_matrix(r: Tensor, name: str = "rotation", atol: float | None = None) -> None:
    """Raise unless ``r`` holds proper rotation matrices ``(..., 3, 3)``.

    :class:`ShapeError` for another shape, :class:`InvalidInputError` for a dtype other than
    float32/float64 or NaN/inf entries, :class:`NotARotationError` when ``max |RᵀR − I|``
    exceeds ``atol`` (default :data:`ROTATION_ATOL` of the dtype) or ``det R < 0`` (a
    reflection; with ``RᵀR ≈ I`` the determinant is ±1 within ``≈ 1.5 atol``). One pass over
    the data and one device sync.
    """
    if not isinstance(r, Tensor):
        raise InvalidInputError(f"{name} must be a tensor of shape (..., 3, 3), got {type(r).__name__}")
    check_last_dims(r, name, (3, 3))
    if r.dtype not in ROTATION_ATOL:
        raise InvalidInputError(f"{name} must be float32 or float64, got {r.dtype}; convert it with .float()")
    if atol is None:
        atol = ROTATION_ATOL[r.dtype]
    if not r.numel():
        return
    rd = r.detach()
    gram = rd.transpose(-1, -2) @ rd
    gram.diagonal(dim1=-2, dim2=-1).sub_(1)
    a, b, c = rd.unbind(-2)
    det = (a * torch.linalg.cross(b, c, dim=-1)).sum(-1)
    # NaN/inf propagate into the maximum, so one reduction also screens for them
    ortho, neg_det = torch.stack([gram.abs().amax(), -det.amin()]).tolist()
    if not ortho <= atol:
        check_finite(r, name)
        raise NotARotationError(
            f"{name} is not orthogonal (max |RᵀR − I| = {ortho:.2e} > {atol:.0e}); "
            "project it with equivision.groups.SO3.project()"
        )
    if neg_det > 0:
        n_ref = int((det < 0).sum())
        raise NotARotationError(
            f"{name} contains {n_ref} reflection(s) (det = −1), not rotations; "
            "flip the sign of one column (or use SO3.project(), which returns the nearest rotation)"
        )


def _check_vectors(v: Tensor, name: str, last: int, check: bool) -> Tensor:
    """Shape ``(..., last)``; floating (integers become the default dtype); finite if ``check``."""
    if not isinstance(v, Tensor):
        raise InvalidInputError(f"{name} must be a tensor of shape (..., {last}), got {type(v).__name__}")
    check_last_dims(v, name, (last,))
    if not v.is_floating_point():
        if v.is_complex():
            raise InvalidInputError(f"{name} must be real, got {v.dtype}")
        v = v.to(torch.get_default_dtype())
    if check:
        check_finite(v, name)
    return v


def _norm3(v: Tensor) -> Tensor:
    """``|v|`` over the last axis ``(..., 3)`` by ``hypot``, which neither underflows nor
    overflows (the squares of float32 values below 1e-19 are zero)."""
    return torch.hypot(torch.hypot(v[..., 0], v[..., 1]), v[..., 2])


def _wrap_pi(x: Tensor) -> Tensor:
    """Angles in ``(−3π, 3π]`` to ``(−π, π]`` by adding ±2π (exact but for that one rounding)."""
    two_pi = 2 * math.pi
    x = torch.where(x > math.pi, x - two_pi, x)
    return torch.where(x <= -math.pi, x + two_pi, x)


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
        check_rotation_matrix(g)
        g = g.to(dtype) if dtype is not None else g
        return homogeneous(g, torch.zeros(*g.shape[:-1], dtype=g.dtype, device=g.device))

    def act(self, g: Tensor, points: Tensor) -> Tensor:
        """Rotate points ``(..., N, 3)`` by rotations ``g`` ``(..., 3, 3)``: ``X Rᵀ``."""
        self.check_element(g)
        check_rotation_matrix(g)
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
    # Every conversion from matrices checks them (check_rotation_matrix) unless ``check=False``:
    # measured on 10⁶ rotations, one CPU core, the check takes about 0.35 s, as long as the
    # conversion itself (0.2–1.0 s), so loops over rotations known to be good may skip it.
    @staticmethod
    def from_quaternion(q: Tensor, *, check: bool = True) -> Tensor:
        """Quaternions ``(..., 4)`` scalar-last ``(x, y, z, w)`` to matrices ``(..., 3, 3)``
        (normalised first; a zero quaternion raises)."""
        q = _check_vectors(q, "quaternion", 4, check)
        norm = q.norm(dim=-1, keepdim=True)
        if bool((norm < 1e-12).any()):
            raise InvalidInputError("quaternion with zero norm cannot be a rotation")
        return roma.unitquat_to_rotmat(q / norm)

    @staticmethod
    def to_quaternion(r: Tensor, *, check: bool = True) -> Tensor:
        """Rotations ``(..., 3, 3)`` to unit quaternions ``(..., 4)`` ``(x, y, z, w)``, ``w ≥ 0``.

        Markley's form of Shepperd's method: the quaternion is read off the row of ``4 q qᵀ``
        of the largest diagonal term, so every component has absolute error of order ``eps``."""
        if check:
            check_rotation_matrix(r)
        q = roma.rotmat_to_unitquat(r)
        return torch.where(q[..., 3:4] < 0, -q, q)

    @staticmethod
    def from_rotvec(v: Tensor, *, check: bool = True) -> Tensor:
        """Rotation vectors ``(..., 3)`` (axis × angle) to matrices ``(..., 3, 3)``."""
        return roma.rotvec_to_rotmat(_check_vectors(v, "rotation vector", 3, check))

    @staticmethod
    def to_rotvec(r: Tensor, *, check: bool = True) -> Tensor:
        """Rotations ``(..., 3, 3)`` to rotation vectors ``(..., 3)`` with angle in ``[0, π]``
        (``2 atan2(|q_xyz|, q_w)`` of the quaternion: relative accuracy for tiny angles)."""
        q = SO3.to_quaternion(r, check=check)
        v, w = q[..., :3], q[..., 3:]
        n = _norm3(v)[..., None]
        angle = 2 * torch.atan2(n, w)
        # angle / |v| → 2 / w as |v| → 0 (w ≥ 0, and w = 1 there)
        scale = torch.where(n > 0, angle / n.clamp_min(torch.finfo(q.dtype).tiny), 2 / w.clamp_min(0.5))
        return v * scale

    @staticmethod
    def from_axis_angle(axis: Tensor, angle: Tensor, *, check: bool = True) -> Tensor:
        """Axes ``(..., 3)`` (normalised here) and angles ``(...,)`` to matrices ``(..., 3, 3)``."""
        axis = _check_vectors(axis, "axis", 3, check)
        angle = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device)
        if check:
            check_finite(angle, "angle")
        n = axis.norm(dim=-1, keepdim=True)
        if bool((n < 1e-12).any()):
            raise InvalidInputError("rotation axis has zero length")
        return roma.rotvec_to_rotmat(axis / n * angle[..., None])

    @staticmethod
    def to_axis_angle(r: Tensor, *, check: bool = True) -> tuple[Tensor, Tensor]:
        """Rotations ``(..., 3, 3)`` to (unit axis ``(..., 3)``, angle ``(...,)`` in ``[0, π]``);
        the axis of the identity is ``(0, 0, 1)``."""
        v = SO3.to_rotvec(r, check=check)
        angle = _norm3(v)
        z = torch.zeros_like(v)
        z[..., 2] = 1
        tiny = torch.finfo(v.dtype).tiny
        axis = torch.where(angle[..., None] > 0, v / angle.clamp_min(tiny)[..., None], z)
        return axis, angle

    @staticmethod
    def from_euler_zyz(alpha: Tensor, beta: Tensor, gamma: Tensor, *, check: bool = True) -> Tensor:
        """ZYZ Euler angles (each ``(...,)``, broadcast) to ``Rz(α) Ry(β) Rz(γ)`` ``(..., 3, 3)``."""
        a, b, c = torch.broadcast_tensors(
            torch.as_tensor(alpha), torch.as_tensor(beta), torch.as_tensor(gamma)
        )
        angles = _check_vectors(torch.stack([a, b, c], -1), "Euler angles", 3, check)
        return roma.euler_to_rotmat("ZYZ", angles)

    @staticmethod
    def to_euler_zyz(r: Tensor, *, check: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Rotations ``(..., 3, 3)`` to ZYZ angles ``(α, β, γ)``, each ``(...,)``.

        ``α + γ`` is read from the block ``[[R00 + R11], [R10 − R01]] = (1 + cos β) (cos, sin)(α + γ)``
        for ``β ≤ π/2`` and ``α − γ`` from ``(1 − cos β) (cos, sin)(α − γ)`` beyond, both well
        conditioned there; ``α`` comes from the third column and ``γ`` from the sum or
        difference. An error in ``α`` then moves ``R`` only by ``sin β`` times itself, so
        ``R`` is reproduced to a few ``eps`` even for ``β`` near 0 or π. Where ``sin β`` is at
        rounding level (gimbal lock) ``γ = 0``.
        """
        if check:
            check_rotation_matrix(r)
        r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
        r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
        r22 = r[..., 2, 2]
        sin_b = torch.hypot(r02, r12)
        beta = torch.atan2(sin_b, r22)
        alpha = _wrap_pi(torch.atan2(r12, r02))  # atan2(−0, x < 0) = −π
        upper = r22 >= 0  # β ≤ π/2
        plus = torch.atan2(r10 - r01, r00 + r11)  # α + γ
        minus = torch.atan2(-(r10 + r01), r11 - r00)  # α − γ
        gamma = _wrap_pi(torch.where(upper, plus - alpha, alpha - minus))
        # β = 0: R = Rz(α + γ); β = π: R = Rz(α − γ) Ry(π); both are α at γ = 0
        lock = sin_b <= 4 * torch.finfo(r.dtype).eps
        alpha = torch.where(lock, _wrap_pi(torch.where(upper, plus, minus)), alpha)
        gamma = torch.where(lock, torch.zeros_like(gamma), gamma)
        return alpha, beta, gamma

    @staticmethod
    def geodesic_distance(r1: Tensor, r2: Tensor, *, check: bool = True) -> Tensor:
        """The angle of ``R1ᵀ R2`` in radians, ``(...,)`` (batch shapes broadcast).

        ``θ = atan2(|skew part|, trace part)`` of ``M = R1ᵀ R2``: ``|vee(M − Mᵀ)| = 2 sin θ`` and
        ``tr M − 1 = 2 cos θ``, so the error is of order ``eps`` over all of ``[0, π]`` (and
        relative to ``θ`` when one argument is the identity). Computed in the promoted dtype."""
        if check:
            check_rotation_matrix(r1, "r1")
            check_rotation_matrix(r2, "r2")
        dtype = torch.promote_types(r1.dtype, r2.dtype)
        m = r1.to(dtype).transpose(-1, -2) @ r2.to(dtype)
        skew = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                            m[..., 1, 0] - m[..., 0, 1]], -1)
        cos2 = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1
        return torch.atan2(_norm3(skew), cos2)

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
