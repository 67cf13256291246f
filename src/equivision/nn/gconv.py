"""G-CNN layers for the roto-translation groups ``Z² ⋊ C_N`` and ``Z² ⋊ D_N``.

Feature maps on the group are plain tensors ``(B, C, |G|, H, W)``: ``C`` channels, the
group axis ordered as ``group.elements()`` (``CyclicGroup(N)``: rotations by ``2πk/N``;
``DihedralGroup(N)``: ``(k, 0)`` for every ``k``, then ``(k, 1)``), and the image plane with
y pointing up the rows, as in :mod:`equivision.groups.signals`. The layers follow the
lecture's correlations (``../shared/papers/method-notes.md`` §1), discretised on the grid:

* :class:`LiftingConv2d`: ``(k ⋆̃ f)(x, h) = Σ_y k(h⁻¹ y) f(x + y)``, images to group maps;
* :class:`GroupConv2d`: ``(k ⋆ φ)(x, h) = Σ_{h'} Σ_y k(h⁻¹ y, h⁻¹ h') φ(x + y, h')``;
* :class:`GroupProjection`: max or mean over the group axis (invariant at each pixel).

Both convolutions satisfy ``Φ(L_g f) = L_g Φ(f)`` with ``(L_g φ)(h, x) = φ(g⁻¹h, g⁻¹x)``
(:func:`equivision.groups.act_on_group_image`). For N dividing 4 (C1, C2, C4, D1, D2, D4) the
transformed kernels are exact pixel permutations and so is the equivariance (to float
rounding). For other N the kernels are rotated by bilinear interpolation on a disk-shaped
support, and the equivariance is approximate: see ``docs/gcnn.md`` for the measured error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equivision.errors import InvalidInputError, ShapeError
from equivision.groups import regular_permutation
from equivision.nn._kernels import (
    PlanarFiniteGroup,
    check_group,
    check_odd_kernel,
    is_exact_on_grid,
    pixel_basis,
    steerable_basis,
)


def check_image_batch(x: Tensor, channels: int, what: str) -> None:
    """Images ``(B, C, H, W)`` with the layer's channel count."""
    if not isinstance(x, Tensor):
        raise InvalidInputError(f"{what} expects a tensor (B, {channels}, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ShapeError(f"{what} expects images of shape (B, {channels}, H, W), got {tuple(x.shape)}")


def check_group_batch(x: Tensor, channels: int | None, order: int | None, what: str,
                      axis: str = "|G|") -> None:
    """Group feature maps ``(B, C, |G|, H, W)``; ``None`` skips a size check."""
    c_txt = "C" if channels is None else str(channels)
    g_txt = axis if order is None else str(order)
    want = f"(B, {c_txt}, {g_txt}, H, W)"
    if not isinstance(x, Tensor):
        raise InvalidInputError(f"{what} expects a tensor {want}, got {type(x).__name__}")
    if (x.ndim != 5 or (channels is not None and x.shape[1] != channels)
            or (order is not None and x.shape[2] != order)):
        raise ShapeError(f"{what} expects feature maps of shape {want}, got {tuple(x.shape)}")


class _PlanarGroupConv(nn.Module):
    """Shared set-up: the group, the kernel basis sampled for every element, the padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 group: PlanarFiniteGroup, basis: str | None, exact: bool | None,
                 what: str) -> None:
        super().__init__()
        self.group = check_group(group)
        self.kernel_size = check_odd_kernel(kernel_size, what)
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if int(v) != v or v < 1:
                raise InvalidInputError(f"{what}: {name} must be a positive integer, got {v}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        grid_exact = is_exact_on_grid(self.group)
        if exact is True and not grid_exact:
            raise InvalidInputError(
                f"{what}: {self.group.name} cannot be rotated exactly on the pixel grid (only "
                "N = 1, 2, 4 map pixels to pixels); use C4/D4, or leave exact=None for the "
                "approximate steerable kernels"
            )
        if basis is None:
            basis = "pixel" if grid_exact else "steerable"
        if basis not in ("pixel", "steerable"):
            raise InvalidInputError(f"{what}: basis must be 'pixel' or 'steerable', got {basis!r}")
        self.basis, self.exact = basis, grid_exact
        mats = (pixel_basis(self.group, self.kernel_size) if basis == "pixel"
                else steerable_basis(self.group, self.kernel_size))
        # (|G|, K², n_b): kernel for element g is mats[g] @ coefficients; kept in float64
        # (cast to the weights' dtype in forward) so .double() models get exact bases
        self.register_buffer("transforms", mats, persistent=False)
        self.order = self.group.order
        self.num_basis = mats.shape[-1]

    def _init(self, fan_in_maps: int) -> None:
        # He initialisation for the expanded kernel: E|k|² = 2 / (C_in·|G|) per input map;
        # the basis functions have unit norm, so each coefficient gets variance 2 / fan_in
        nn.init.normal_(self.weight, std=(2.0 / (fan_in_maps * self.num_basis)) ** 0.5)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"group={self.group.name}, basis={self.basis!r}, exact={self.exact}")


class LiftingConv2d(_PlanarGroupConv):
    """Images ``(B, C_in, H, W)`` to group feature maps ``(B, C_out, |G|, H, W)``.

    ``out[:, :, i] = conv(f, L_{h_i} k)`` with ``h_i = group.elements()[i]``; zero padding
    ``K // 2`` keeps ``H, W`` ("same"). The kernel is ``weight (C_out, C_in, n_b)`` in a
    basis: ``"pixel"`` (``n_b = K²`` pixel values; the default for C_N/D_N with N | 4, where
    it is exact) or ``"steerable"`` (band-limited continuous functions, sampled exactly at
    every rotation; the default for other N). ``exact=True`` refuses groups that cannot be
    exact on the pixel grid.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 group: PlanarFiniteGroup, *, bias: bool = True, basis: str | None = None,
                 exact: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, group, basis, exact,
                         "LiftingConv2d")
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels,
                                               self.num_basis))
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        self._init(self.in_channels)

    def expanded_weight(self) -> Tensor:
        """The ``(C_out·|G|, C_in, K, K)`` stack of transformed kernels."""
        co, ci, _ = self.weight.shape
        k = self.kernel_size
        wt = torch.einsum("oib,hlb->ohil", self.weight, self.transforms.to(self.weight.dtype))
        return wt.reshape(co * self.order, ci, k, k)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_channels, "LiftingConv2d")
        y = F.conv2d(x, self.expanded_weight(), padding=self.kernel_size // 2)
        y = y.reshape(x.shape[0], self.out_channels, self.order, y.shape[-2], y.shape[-1])
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y


class GroupConv2d(_PlanarGroupConv):
    """Group feature maps ``(B, C_in, |G|, H, W)`` to ``(B, C_out, |G|, H, W)``.

    The kernel is itself a group map, ``weight (C_out, C_in, |G|, n_b)``; output slice ``h``
    uses ``L_h k``: every spatial kernel transformed by ``h`` and the group axis permuted by
    ``h' ↦ h⁻¹h'``. Same padding, bases and ``exact`` rule as :class:`LiftingConv2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 group: PlanarFiniteGroup, *, bias: bool = True, basis: str | None = None,
                 exact: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, group, basis, exact,
                         "GroupConv2d")
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, self.order,
                                               self.num_basis))
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        self._init(self.in_channels * self.order)
        elems = self.group.elements()
        # permutations[h, i] = index of h⁻¹ h_i
        perm = torch.stack([regular_permutation(self.group, e) for e in elems.unbind(0)])
        self.register_buffer("permutations", perm, persistent=False)

    def expanded_weight(self) -> Tensor:
        """The ``(C_out·|G|, C_in·|G|, K, K)`` stack of transformed kernels."""
        co, ci, g, _ = self.weight.shape
        k = self.kernel_size
        w = self.weight[:, :, self.permutations]  # (o, i, h, j, b)
        wt = torch.einsum("oihjb,hlb->ohijl", w, self.transforms.to(w.dtype))
        return wt.reshape(co * g, ci * g, k, k)

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, self.in_channels, self.order, "GroupConv2d")
        b, _, g, h, w = x.shape
        y = F.conv2d(x.reshape(b, -1, h, w), self.expanded_weight(),
                     padding=self.kernel_size // 2)
        y = y.reshape(b, self.out_channels, g, y.shape[-2], y.shape[-1])
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y


class GroupProjection(nn.Module):
    """``(B, C, |G|, H, W)`` to ``(B, C, H, W)`` by max or mean over the group axis: a map on
    the plane, invariant at each pixel to the group's action on the group axis."""

    def __init__(self, mode: str = "max") -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise InvalidInputError(f"GroupProjection mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, None, None, "GroupProjection")
        return x.amax(2) if self.mode == "max" else x.mean(2)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class GroupBatchNorm(nn.Module):
    """Batch norm on ``(B, C, |G|, H, W)`` with one mean, variance, scale and shift per
    channel shared over the group axis (statistics over batch, group and plane), so it
    commutes with every permutation of the group axis and transform of the plane."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.channels = int(channels)
        self.bn = nn.BatchNorm3d(channels, eps=eps, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, self.channels, None, "GroupBatchNorm")
        return self.bn(x)


class GroupMaxPool2d(nn.Module):
    """Spatial max pooling of ``(B, C, |G|, H, W)``, the group axis untouched.

    Pooling commutes with 90° rotations exactly when the windows tile the map symmetrically:
    ``kernel_size == stride`` dividing ``H`` and ``W`` (e.g. 2 on even maps)."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, None, None, "GroupMaxPool2d")
        b, c, g, h, w = x.shape
        y = F.max_pool2d(x.reshape(b, c * g, h, w), self.kernel_size, self.stride)
        return y.reshape(b, c, g, y.shape[-2], y.shape[-1])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class GroupAvgPool2d(GroupMaxPool2d):
    """Spatial average pooling of ``(B, C, |G|, H, W)`` (same exactness rule as max)."""

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, None, None, "GroupAvgPool2d")
        b, c, g, h, w = x.shape
        y = F.avg_pool2d(x.reshape(b, c * g, h, w), self.kernel_size, self.stride)
        return y.reshape(b, c, g, y.shape[-2], y.shape[-1])
