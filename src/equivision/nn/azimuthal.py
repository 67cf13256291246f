"""Convolutions on Driscoll–Healy grid maps ``(B, C, 2b, 2b)`` indexed ``[θ, φ]``: the azimuth
``φ`` (last axis) wraps around, so it is padded circularly; the colatitude ``θ`` (second to
last) ends at the poles, so it is zero-padded. Plain 2D convolutions otherwise: they are not
rotation-equivariant beyond azimuthal shifts, which they commute with exactly.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from equivision.errors import ShapeError

__all__ = ["AzimuthalConv2d", "AzimuthalConvTranspose2d", "AzimuthalUpBlock"]


class AzimuthalConv2d(nn.Module):
    """``k × k`` convolution (odd ``k``, stride 1): ``(B, C_in, H, W)`` → ``(B, C_out, H, W)``
    with circular padding along ``W`` (azimuth) and zeros along ``H`` (colatitude)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=0, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        p = self.pad
        x = F.pad(x, (p, p, 0, 0), mode="circular")
        x = F.pad(x, (0, 0, p, p))
        return self.conv(x)


class AzimuthalConvTranspose2d(nn.Module):
    """Transposed ``4 × 4`` convolution of stride 2 that doubles both axes,
    ``(B, C_in, H, W)`` → ``(B, C_out, 2H, 2W)``, periodic in ``W``.

    Equal to an ordinary ``ConvTranspose2d(4, stride=2, padding=1)`` applied to the map tiled
    periodically in azimuth (then cut back to one period): each output column takes input
    columns ``i`` and ``i ± 1`` only, so one column of circular padding on each side suffices;
    the output of the padded input is then 6 columns wider and is cropped by 3 on each side.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=(1, 0), bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ShapeError(f"expected maps (B, C, H, W), got {tuple(x.shape)}")
        w = x.shape[-1]
        y = self.conv(F.pad(x, (1, 1, 0, 0), mode="circular"))  # (B, C_out, 2H, 2W + 6)
        return y[..., 3:3 + 2 * w]


class AzimuthalUpBlock(nn.Module):
    """Residual up-sampling block, ``(B, C_in, H, W)`` → ``(B, C_out, 2H, 2W)``: two residual
    layers, the first with the transposed convolution (its shortcut: nearest up-sampling and
    a ``1 × 1`` convolution), the second a ``3 × 3`` layer; batch norm and ReLU before each
    convolution (pre-activation), all periodic in azimuth."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.up = AzimuthalConvTranspose2d(c_in, c_out, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = AzimuthalConv2d(c_out, c_out, bias=False)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.conv3 = AzimuthalConv2d(c_out, c_out, bias=False)
        self.bn4 = nn.BatchNorm2d(c_out)
        self.conv4 = AzimuthalConv2d(c_out, c_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.bn2(self.up(F.relu(self.bn1(x))))))
        x = h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))
        return x + self.conv4(F.relu(self.bn4(self.conv3(F.relu(self.bn3(x))))))
