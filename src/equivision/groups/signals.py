"""The left-regular representation ``(L_g f)(x) = f(g⁻¹ x)`` on signals.

* Images ``(..., H, W)``: pixel centres are placed at coordinates centred on the image,
  x along columns, **y up the rows**. When every ``g⁻¹ x`` lands on a pixel centre
  (rotations by multiples of 90°, mirrors, integer translations) the result is an exact
  permutation of pixels; otherwise it is interpolated (bilinear by default) with zeros
  outside the image.
* Feature maps on a finite planar group ``(..., |G|, H, W)`` (G-CNN features): the spatial
  transform above combined with the permutation of the group axis ``h ↦ g⁻¹h``.
* Point clouds ``(..., N, 3)`` or ``(..., N, 2)``: the group's own action.

The ``*_action`` helpers return ``action(g, x)`` callables for
:func:`equivision.testing.assert_equivariant`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.groups.base import Group


def _check_image(image: Tensor, name: str = "image") -> None:
    if not isinstance(image, Tensor):
        raise InvalidInputError(f"{name} must be a tensor (..., H, W)")
    if image.ndim < 2:
        raise ShapeError(f"{name} must have shape (..., H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point, got {image.dtype}")


def _pixel_coords(h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Centred coordinates of pixel centres ``(H, W, 2)`` as (x right, y up)."""
    ys = (h - 1) / 2 - torch.arange(h, dtype=dtype, device=device)
    xs = torch.arange(w, dtype=dtype, device=device) - (w - 1) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], -1)


def transform_image(image: Tensor, matrix: Tensor, *, mode: str = "bilinear") -> Tensor:
    """``(L_g f)`` for the affine map ``g`` given as a homogeneous ``(3, 3)`` matrix, or a
    batch ``(B, 3, 3)`` matching ``image.shape[0]``. ``image``: ``(..., H, W)``.

    Exact (a pixel permutation, zeros shifted in) when all source points are pixel centres;
    interpolated with ``mode`` (``"bilinear"``, ``"nearest"`` or ``"bicubic"``) otherwise.
    """
    _check_image(image)
    if matrix.shape[-2:] != (3, 3) or matrix.ndim not in (2, 3):
        raise ShapeError(f"matrix must be (3, 3) or (B, 3, 3), got {tuple(matrix.shape)}")
    batched = matrix.ndim == 3
    if batched and (image.ndim < 3 or image.shape[0] != matrix.shape[0]):
        raise ShapeError(
            f"a batch of {matrix.shape[0]} transforms needs images (B, ..., H, W) with "
            f"B = {matrix.shape[0]}, got {tuple(image.shape)}"
        )
    h, w = image.shape[-2:]
    m = matrix.to(dtype=torch.float64, device=image.device)
    inv = torch.linalg.inv(m)
    coords = _pixel_coords(h, w, torch.float64, image.device)  # (H, W, 2)
    mats = inv if batched else inv[None]
    src = torch.einsum("bij,hwj->bhwi", mats[:, :2, :2], coords) + mats[:, None, None, :2, 2]
    # source (x, y) to fractional (col, row)
    col = src[..., 0] + (w - 1) / 2
    row = (h - 1) / 2 - src[..., 1]
    lead = image.shape[:-2]
    nb = mats.shape[0]
    flat = image.reshape(nb, -1, h, w) if batched else image.reshape(1, -1, h, w)
    exact = bool(((col - col.round()).abs() < 1e-6).all() and ((row - row.round()).abs() < 1e-6).all())
    if exact:
        ci, ri = col.round().long(), row.round().long()
        inside = (ci >= 0) & (ci < w) & (ri >= 0) & (ri < h)
        idx = (ri.clamp(0, h - 1) * w + ci.clamp(0, w - 1)).reshape(nb, 1, h * w)
        out = torch.gather(flat.reshape(nb, flat.shape[1], h * w), 2, idx.expand(nb, flat.shape[1], h * w))
        out = out * inside.reshape(nb, 1, h * w).to(out.dtype)
        return out.reshape(*lead, h, w)
    # grid_sample's normalised coordinates with align_corners=False
    gx = (2 * col + 1) / w - 1
    gy = (2 * row + 1) / h - 1
    grid = torch.stack([gx, gy], -1).to(image.dtype)
    out = F.grid_sample(flat, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.reshape(*lead, h, w)


def act_on_image(group: Group, g: Tensor, image: Tensor, *, mode: str = "bilinear") -> Tensor:
    """``(L_g f)`` for an element of a planar group (one element, or a batch matching
    ``image.shape[0]``), translations in pixels. ``image``: ``(..., H, W)``."""
    if group.space_dim != 2:
        raise InvalidInputError(f"{group.name} does not act on the plane; images need a 2D group")
    return transform_image(image, group.matrix(g, dtype=torch.float64), mode=mode)


def regular_permutation(group: Group, g: Tensor) -> Tensor:
    """For a finite group with elements ``h_0 … h_{n-1}`` (``group.elements()``), the index
    ``p`` with ``(L_g φ)[i] = φ[p[i]]``, i.e. ``h_{p[i]} = g⁻¹ h_i``. ``g``: one element."""
    if not group.is_finite:
        raise InvalidInputError(f"{group.name} is not finite: it has no regular permutation")
    elems = group.elements(device=g.device)
    target = group.product(group.inverse(g)[None] if g.ndim else group.inverse(g).expand(len(elems)), elems)
    flat_e = elems.reshape(len(elems), -1)
    flat_t = target.reshape(len(elems), -1)
    match = (flat_t[:, None, :] == flat_e[None, :, :]).all(-1)  # (n, n)
    if not bool((match.sum(1) == 1).all()):
        raise InvalidInputError(f"product of {group.name} elements left the enumeration")
    return match.int().argmax(1)


def act_on_group_image(group: Group, g: Tensor, fmap: Tensor, *, mode: str = "bilinear") -> Tensor:
    """Regular representation on feature maps over a finite planar group G ⋉ Z²:
    ``(L_g φ)(h, x) = φ(g⁻¹h, g⁻¹x)``. ``fmap``: ``(..., |G|, H, W)`` with the group axis
    ordered as ``group.elements()``; ``g``: one element."""
    if fmap.ndim < 3 or fmap.shape[-3] != group.order:
        raise ShapeError(
            f"feature maps on {group.name} must have shape (..., {group.order}, H, W), "
            f"got {tuple(fmap.shape)}"
        )
    perm = regular_permutation(group, g)
    return act_on_image(group, g, fmap.index_select(-3, perm.to(fmap.device)), mode=mode)


def act_on_points(group: Group, g: Tensor, points: Tensor) -> Tensor:
    """``g·x`` for points ``(..., N, d)`` (the group's own action)."""
    return group.act(g, points)


def image_action(group: Group, *, mode: str = "bilinear") -> Callable[[Tensor, Tensor], Tensor]:
    """``action(g, image)`` for the equivariance harness."""
    return lambda g, x: act_on_image(group, g, x, mode=mode)


def group_image_action(group: Group, *, mode: str = "bilinear") -> Callable[[Tensor, Tensor], Tensor]:
    """``action(g, fmap)`` on ``(..., |G|, H, W)`` feature maps for the equivariance harness."""
    return lambda g, x: act_on_group_image(group, g, x, mode=mode)


def points_action(group: Group) -> Callable[[Tensor, Tensor], Tensor]:
    """``action(g, points)`` for the equivariance harness."""
    return lambda g, x: group.act(g, x)


def act_on_vector_features(rotation: Tensor, features: Tensor) -> Tensor:
    """``R·V`` for vector-neuron features ``(B, C, 3, ...)``: every 3-vector
    ``V[b, c, :, ...]`` rotated by ``rotation (3, 3)`` (an SO(3) element as a matrix),
    channels and points untouched."""
    if not isinstance(features, Tensor) or features.ndim < 3 or features.shape[2] != 3:
        raise ShapeError(f"vector features must have shape (B, C, 3, ...), got "
                         f"{tuple(getattr(features, 'shape', ()))}")
    if not isinstance(rotation, Tensor) or rotation.shape != (3, 3):
        raise ShapeError(f"rotation must be a (3, 3) matrix, got {tuple(getattr(rotation, 'shape', ()))}")
    r = rotation.to(dtype=features.dtype, device=features.device)
    return torch.movedim(torch.movedim(features, 2, -1) @ r.t(), -1, 2)


def vector_feature_action() -> Callable[[Tensor, Tensor], Tensor]:
    """``action(R, V)`` on vector-neuron features ``(B, C, 3, ...)`` for the equivariance
    harness (elements: ``SO3().random(n)`` matrices)."""
    return act_on_vector_features
