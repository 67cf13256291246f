"""Kernel transforms as fixed linear maps on the kernel's pixels (not public API).

A G-CNN layer convolves with transformed copies of one learned kernel. Every transform used
here (a rotation or mirror of the pixel grid, a rescaling) is linear in the kernel values, so
it is computed once as a matrix ``M`` with ``vec(L_g k) = M vec(k)`` and applied to the
parameters in each forward pass: the layers stay plain ``conv2d`` calls that train with any
optimiser and export with ``torch.export``.

The matrices are built by applying the library's own image action
(:func:`equivision.groups.transform_image`) to the unit kernels, so the kernels transform
exactly like the images and feature maps they are tested against: an exact pixel
permutation for multiples of 90° and mirrors, bilinear interpolation otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.groups import CyclicGroup, DihedralGroup, transform_image

PlanarFiniteGroup = CyclicGroup | DihedralGroup


def check_odd_kernel(kernel_size: int, what: str) -> int:
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise InvalidInputError(
            f"{what} needs an odd kernel_size (1, 3, 5, ...), got {kernel_size}: the rotation "
            "centre of the kernel must be a pixel centre for the transformed kernels to align"
        )
    return int(kernel_size)


def check_group(group: object) -> PlanarFiniteGroup:
    if not isinstance(group, (CyclicGroup, DihedralGroup)):
        raise InvalidInputError(
            "group must be a CyclicGroup(N) or DihedralGroup(N) from equivision.groups "
            f"(e.g. C4, D4, CyclicGroup(8)), got {group!r}"
        )
    return group


def is_exact_on_grid(group: PlanarFiniteGroup) -> bool:
    """Whether every element maps the pixel grid onto itself (rotations by multiples of 90°)."""
    return 4 % group.n == 0


def pixel_coordinates(kernel_size: int) -> Tensor:
    """``(K², 2)`` float64 centred (x right, y up) coordinates of a kernel's pixel centres,
    row-major, as in :mod:`equivision.groups.signals`."""
    c = (kernel_size - 1) / 2
    ys = c - torch.arange(kernel_size, dtype=torch.float64)
    xs = torch.arange(kernel_size, dtype=torch.float64) - c
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], -1).reshape(-1, 2)


def pixel_basis(group: PlanarFiniteGroup, kernel_size: int) -> Tensor:
    """``(|G|, K², K²)`` float64 matrices ``M_g`` with ``vec(L_g k) = M_g vec(k)`` for a kernel
    given by its pixel values, the group axis ordered as ``group.elements()``.

    A pixel permutation for rotations by multiples of 90° and mirrors; bilinear
    interpolation (with the kernel's corners outside the inscribed disk zeroed) otherwise."""
    k = kernel_size
    basis = torch.eye(k * k, dtype=torch.float64).reshape(k * k, k, k)
    mats = group.matrix(group.elements(), dtype=torch.float64)
    out = torch.stack([transform_image(basis, m).reshape(k * k, k * k).T for m in mats])
    if not is_exact_on_grid(group):
        out = out * disk_mask(k).reshape(1, 1, -1)
    return out


def steerable_basis(group: PlanarFiniteGroup, kernel_size: int, sigma: float = 0.6) -> Tensor:
    """``(|G|, K², n_b)`` float64: a band-limited basis of kernels sampled at ``g⁻¹ y`` on the
    pixel centres ``y``, for every group element ``g``.

    Basis functions ``exp(−(ρ − r)² / 2σ²) · {1, cos mφ, sin mφ}`` on rings of integer radius
    ``r = 0 … K//2`` with angular frequencies ``m ≤ (r + 1) // 2`` (the band limit that kept
    the measured C8 equivariance error lowest: ``docs/gcnn.md``), restricted to the disk
    ``ρ ≤ K/2`` and scaled to unit norm. As
    they are continuous functions, every rotated copy is sampled exactly rather than
    interpolated; for 90° multiples ``g⁻¹ y`` is again a pixel centre, so the rotated
    kernels are exact permutations."""
    pts = pixel_coordinates(kernel_size)
    radius = kernel_size / 2
    lin = group.matrix(group.elements(), dtype=torch.float64)[:, :2, :2]

    def sample(points: Tensor) -> Tensor:
        rho = points.norm(dim=-1)
        phi = torch.atan2(points[:, 1], points[:, 0])
        inside = (rho <= radius + 1e-9).to(torch.float64)
        off_centre = (rho > 1e-9).to(torch.float64)  # harmonics m >= 1 vanish at the origin
        cols = []
        for r in range(kernel_size // 2 + 1):
            ring = torch.exp(-((rho - r) ** 2) / (2 * sigma**2)) * inside
            cols.append(ring)
            for m in range(1, (r + 1) // 2 + 1):
                cols += [ring * off_centre * torch.cos(m * phi),
                         ring * off_centre * torch.sin(m * phi)]
        return torch.stack(cols, -1)  # (K², n_b)

    norms = sample(pts).norm(dim=0)
    # the linear part is orthogonal: g⁻¹ = gᵀ
    return torch.stack([sample(pts @ m) / norms for m in lin])


def disk_mask(kernel_size: int) -> Tensor:
    """``(K, K)`` float64 mask of the pixels within radius ``K/2`` of the centre.

    The corners of a square kernel leave the grid when it is rotated by a non-multiple of
    90°; zeroing them keeps the rotated copies' support identical."""
    c = (kernel_size - 1) / 2
    r = torch.arange(kernel_size, dtype=torch.float64) - c
    rr = r[:, None] ** 2 + r[None, :] ** 2
    return (rr <= (kernel_size / 2) ** 2).to(torch.float64)


def odd_size_for_scale(kernel_size: int, scale: float) -> int:
    """The smallest odd size that holds a ``kernel_size`` kernel magnified ``scale`` times."""
    k = math.ceil(kernel_size * scale - 1e-9)
    return k if k % 2 == 1 else k + 1


def scale_matrix(kernel_size: int, scale: float) -> tuple[Tensor, int]:
    """``(K_s², K²)`` float64 matrix taking a ``K × K`` kernel ``k`` to ``k(y / s) / s²`` on a
    ``K_s × K_s`` grid (bilinear interpolation of ``k`` between its pixel centres, zero
    outside), and ``K_s``. Dividing by ``s²`` keeps the integral of a smooth kernel (its
    response to a constant image) about independent of the scale."""
    ks = odd_size_for_scale(kernel_size, scale)
    pad = (ks - kernel_size) // 2
    basis = torch.zeros(kernel_size * kernel_size, ks, ks, dtype=torch.float64)
    eye = torch.eye(kernel_size * kernel_size, dtype=torch.float64)
    basis[:, pad:pad + kernel_size, pad:pad + kernel_size] = eye.reshape(-1, kernel_size,
                                                                          kernel_size)
    m = torch.diag(torch.tensor([scale, scale, 1.0], dtype=torch.float64))
    out = transform_image(basis, m, mode="bilinear") / scale**2
    return out.reshape(kernel_size * kernel_size, ks * ks).T.contiguous(), ks
