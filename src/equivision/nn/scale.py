"""G-CNN layers for the scale-translation group ``R² ⋊ R+``, on a discrete set of scales.

Feature maps are plain tensors ``(B, C, S, H, W)``, the scale axis ordered as ``scales``
(increasing, ``s_0 ≥ 1``). The kernel at scale ``s`` is the base ``K × K`` kernel magnified,
``k_s(y) = k(y / s) / s²`` (bilinear interpolation between the base pixels; the ``1/s²``
keeps a smooth kernel's response to a constant image about the same at every scale), on
the smallest odd grid ``K_s ≥ K·s`` that holds it: a larger scale costs a larger kernel.
Following ``../shared/papers/method-notes.md`` §1 with ``(L_g f)(x) = f(x / s_g)``:

* :class:`ScaleLiftingConv2d`: ``(k ⋆̃ f)(x, s) = Σ_y k_s(y) f(x + y)``;
* :class:`ScaleGroupConv2d`: ``(k ⋆ φ)(x, s_i) = Σ_{d < D} Σ_y k_{s_i}(y, d) φ(x + y, s_{i+d})``,
  the kernel spanning ``D`` neighbouring scales (the scales are a geometric sequence so
  that ``s_{i+d} / s_i`` depends on ``d`` only);
* projection over the scale axis: :class:`equivision.nn.GroupProjection` (any 5-D map).

Magnifying the input by the ratio ``r = s_{i+1} / s_i`` shifts the scale axis by one.
This is exact only in the continuum and for scales inside the set: the grid resamples the
kernels, and the truncated scale axis has no room for the scale shifted in at its ends.
The measured error is in ``docs/gcnn.md``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equivision.errors import InvalidInputError
from equivision.nn._kernels import check_odd_kernel, scale_matrix
from equivision.nn.gconv import check_group_batch, check_image_batch


def check_scales(scales: Sequence[float], what: str, *, geometric: bool) -> tuple[float, ...]:
    """Increasing scales ``≥ 1``; a geometric sequence when ``geometric``."""
    try:
        s = tuple(float(v) for v in scales)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what}: scales must be a sequence of numbers, got {scales!r}") from e
    if not s:
        raise InvalidInputError(f"{what}: scales is empty; give at least one scale, e.g. (1, 2)")
    if not all(math.isfinite(v) for v in s) or s[0] < 1 or any(b <= a for a, b in itertools.pairwise(s)):
        raise InvalidInputError(
            f"{what}: scales must be finite, strictly increasing and >= 1 (a scale below 1 "
            f"would shrink the kernel below its own grid; use a smaller kernel_size), got {s}"
        )
    if geometric and len(s) > 2:
        ratios = [b / a for a, b in itertools.pairwise(s)]
        if max(ratios) - min(ratios) > 1e-6 * ratios[0]:
            raise InvalidInputError(
                f"{what}: scales must be a geometric sequence s_i = s_0·r^i so that a shift "
                f"along the scale axis is a group action; got ratios {ratios}"
            )
    return s


def geometric_scales(n: int, ratio: float = 2**0.5, first: float = 1.0) -> tuple[float, ...]:
    """``(first, first·ratio, …, first·ratio^(n−1))``."""
    if int(n) != n or n < 1 or not ratio > 1 or not first >= 1:
        raise InvalidInputError(
            f"geometric_scales needs n >= 1, ratio > 1 and first >= 1, got {n}, {ratio}, {first}")
    return tuple(first * ratio**i for i in range(int(n)))


def _check_channels(module: nn.Module, in_channels: int, out_channels: int, what: str) -> None:
    """Positive integer channel counts, stored on ``module``."""
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if int(v) != v or v < 1:
            raise InvalidInputError(f"{what}: {name} must be a positive integer, got {v}")
    module.in_channels, module.out_channels = int(in_channels), int(out_channels)


def _he_parameters(module: nn.Module, shape: tuple[int, ...], bias: bool) -> None:
    """``module.weight`` of ``shape`` ``(C_out, C_in, ...)`` with He-normal initialisation
    (fan-in: every entry after the first), and ``module.bias`` ``(C_out,)`` zeros or None."""
    fan_in = math.prod(shape[1:])
    module.weight = nn.Parameter(nn.init.normal_(torch.empty(shape), std=(2.0 / fan_in) ** 0.5))
    module.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None


def _check_scale_size(scale_size: int, n: int, what: str) -> int:
    if int(scale_size) != scale_size or not 1 <= scale_size <= n:
        raise InvalidInputError(f"{what}: scale_size must be an integer in 1..{n} (the number "
                                f"of scales), got {scale_size}")
    return int(scale_size)


class _ScaleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 scales: Sequence[float], geometric: bool, what: str) -> None:
        super().__init__()
        _check_channels(self, in_channels, out_channels, what)
        self.kernel_size = check_odd_kernel(kernel_size, what)
        self.scales = check_scales(scales, what, geometric=geometric)
        self.kernel_sizes: list[int] = []
        for i, s in enumerate(self.scales):
            m, ks = scale_matrix(self.kernel_size, s)
            self.kernel_sizes.append(ks)
            # float64, cast to the weights' dtype in forward (exact bases for .double())
            self.register_buffer(f"scale_matrix_{i}", m, persistent=False)

    def _matrix(self, i: int) -> Tensor:
        return getattr(self, f"scale_matrix_{i}")

    def extra_repr(self) -> str:
        s = ", ".join(f"{v:.3g}" for v in self.scales)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"scales=({s}), kernel_sizes={tuple(self.kernel_sizes)}")


class ScaleLiftingConv2d(_ScaleConv):
    """Images ``(B, C_in, H, W)`` to scale feature maps ``(B, C_out, S, H, W)``: slice ``i``
    is the correlation with the base kernel magnified ``scales[i]`` times ("same" padding).
    ``weight``: ``(C_out, C_in, K, K)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 scales: Sequence[float] = (1.0, 2**0.5, 2.0), *, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, scales, False,
                         "ScaleLiftingConv2d")
        k = self.kernel_size
        _he_parameters(self, (self.out_channels, self.in_channels, k, k), bias)

    def scaled_weight(self, i: int) -> Tensor:
        """``(C_out, C_in, K_i, K_i)``: the kernel at ``scales[i]``."""
        co, ci, k, _ = self.weight.shape
        ks = self.kernel_sizes[i]
        m = self._matrix(i).to(self.weight.dtype)
        return (self.weight.reshape(co, ci, k * k) @ m.T).reshape(co, ci, ks, ks)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_channels, "ScaleLiftingConv2d")
        outs = [F.conv2d(x, self.scaled_weight(i), padding=ks // 2)
                for i, ks in enumerate(self.kernel_sizes)]
        y = torch.stack(outs, 2)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y


class ScaleGroupConv2d(_ScaleConv):
    """Scale feature maps ``(B, C_in, S, H, W)`` to ``(B, C_out, S, H, W)``.

    ``weight``: ``(C_out, C_in, D, K, K)``, ``D = scale_size`` neighbouring input scales
    ``s_i … s_{i+D−1}`` feeding output scale ``s_i``, all magnified by ``s_i``; input scales
    past the last are absent (the truncated scale axis)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 scales: Sequence[float] = (1.0, 2**0.5, 2.0), *, scale_size: int = 2,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, scales, True,
                         "ScaleGroupConv2d")
        self.scale_size = _check_scale_size(scale_size, len(self.scales), "ScaleGroupConv2d")
        k = self.kernel_size
        _he_parameters(self, (self.out_channels, self.in_channels, self.scale_size, k, k), bias)

    def scaled_weight(self, i: int, depth: int) -> Tensor:
        """``(C_out, C_in·depth, K_i, K_i)``: the first ``depth`` scale taps at ``scales[i]``."""
        co, ci, _, k, _ = self.weight.shape
        ks = self.kernel_sizes[i]
        m = self._matrix(i).to(self.weight.dtype)
        w = self.weight[:, :, :depth].reshape(co, ci, depth, k * k) @ m.T
        return w.reshape(co, ci * depth, ks, ks)

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, self.in_channels, len(self.scales), "ScaleGroupConv2d", axis="S")
        b, c, s, h, w = x.shape
        outs = []
        for i, ks in enumerate(self.kernel_sizes):
            depth = min(self.scale_size, s - i)
            xi = x[:, :, i:i + depth].reshape(b, c * depth, h, w)
            outs.append(F.conv2d(xi, self.scaled_weight(i, depth), padding=ks // 2))
        y = torch.stack(outs, 2)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale_size={self.scale_size}"


# ------------------------------------------------------------------ zoomed-grid discretisation

def zoom_grid(h: int, w: int, factor: float, *, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> Tensor:
    """``(1, H, W, 2)`` ``grid_sample`` grid (``align_corners=False``) that magnifies an
    ``H × W`` image ``factor`` times about its centre: ``out(u) = in(u / factor)``, the same
    map as :func:`equivision.groups.transform_image` with the scale-translation element
    ``(0, 0, factor)``; ``factor < 1`` shrinks (zeros shifted in)."""
    ys = (2 * torch.arange(h, dtype=torch.float64) - (h - 1)) / (factor * h)
    xs = (2 * torch.arange(w, dtype=torch.float64) - (w - 1)) / (factor * w)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)[None].to(dtype=dtype, device=device)


class _ZoomConv(nn.Module):
    """Shared set-up of the zoomed-grid layers: channels, kernel size, zooms, and resampling
    ``(N, C, H, W)`` maps by a fixed factor. The grid is rebuilt in every call (microseconds
    next to the convolutions), so the layers hold no state besides their parameters and
    trace cleanly with ``torch.export``. Not :func:`equivision.groups.transform_image`, whose
    check for pixel-exact transforms branches on tensor values: ``torch.export`` refuses it
    (tried), and it was 4–17 % slower in `benchmarks/gcnn.py`; :func:`zoom_grid` is tested
    against it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 zooms: Sequence[float], geometric: bool, what: str) -> None:
        super().__init__()
        _check_channels(self, in_channels, out_channels, what)
        self.kernel_size = check_odd_kernel(kernel_size, what)
        self.zooms = check_scales(zooms, what, geometric=geometric)

    def zoom(self, x: Tensor, factor: float) -> Tensor:
        if factor == 1.0:
            return x
        grid = zoom_grid(x.shape[-2], x.shape[-1], factor, dtype=x.dtype, device=x.device)
        return F.grid_sample(x, grid.expand(x.shape[0], -1, -1, -1), mode="bilinear",
                             padding_mode="zeros", align_corners=False)

    def extra_repr(self) -> str:
        z = ", ".join(f"{v:.3g}" for v in self.zooms)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"zooms=({z})")


class ZoomLiftingConv2d(_ZoomConv):
    """Images ``(B, C_in, H, W)`` to scale feature maps ``(B, C_out, S, H, W)`` on zoomed
    grids: slice ``i`` is the base ``K × K`` kernel correlated with the input magnified
    ``zooms[i]`` times about its centre, ``φ_i = k ⋆ Z_{z_i} f`` with ``(Z_z f)(u) = f(u / z)``.

    This is the lifting of :class:`ScaleLiftingConv2d` at kernel scale ``1 / z_i`` (a kernel
    *shrunk* ``z_i`` times), sampled on the grid ``u / z_i`` where the shrunk kernel still
    spans ``K`` samples: every slice costs one ``K × K`` convolution, whatever its scale.
    Magnifying the input by ``r = z_{i+1} / z_i`` moves slice ``i + 1`` to slice ``i`` with
    no spatial resampling (``Z_{z_i} Z_r = Z_{z_{i+1}}``); exact in the continuum, up to
    bilinear interpolation on the grid and content zoomed past the frame.
    ``weight``: ``(C_out, C_in, K, K)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 zooms: Sequence[float] = (1.0, 2**0.5, 2.0, 2**1.5), *,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, zooms, False,
                         "ZoomLiftingConv2d")
        k = self.kernel_size
        _he_parameters(self, (self.out_channels, self.in_channels, k, k), bias)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_channels, "ZoomLiftingConv2d")
        b, c, h, w = x.shape
        zoomed = torch.stack([self.zoom(x, z) for z in self.zooms], 1)  # (B, S, C, H, W)
        y = F.conv2d(zoomed.reshape(-1, c, h, w), self.weight, self.bias,
                     padding=self.kernel_size // 2)
        return y.reshape(b, len(self.zooms), self.out_channels, h, w).transpose(1, 2)


class ZoomGroupConv2d(_ZoomConv):
    """Scale feature maps on zoomed grids ``(B, C_in, S, H, W)`` to ``(B, C_out, S, H, W)``.

    ``ψ_i = Σ_{d < D} k_d ⋆ Z_{r^{−d}} φ_{i+d}``: output slice ``i`` reads its ``D =
    scale_size`` neighbours ``i … i+D−1``, each first shrunk by ``r^d`` onto slice ``i``'s
    grid (slice ``i + d`` is zoomed ``r^d`` times more; ``r`` the ratio of the geometric
    ``zooms``), then one ``K × K`` kernel per tap. The group convolution of
    :class:`ScaleGroupConv2d` with kernels at scale ``1 / z_i``, on slice ``i``'s grid. Slices
    past the last are absent (the truncated scale axis).
    ``weight``: ``(C_out, C_in, D, K, K)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 zooms: Sequence[float] = (1.0, 2**0.5, 2.0, 2**1.5), *, scale_size: int = 2,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, zooms, True,
                         "ZoomGroupConv2d")
        self.scale_size = _check_scale_size(scale_size, len(self.zooms), "ZoomGroupConv2d")
        self.ratio = self.zooms[1] / self.zooms[0] if len(self.zooms) > 1 else 1.0
        k = self.kernel_size
        _he_parameters(self, (self.out_channels, self.in_channels, self.scale_size, k, k), bias)

    def forward(self, x: Tensor) -> Tensor:
        check_group_batch(x, self.in_channels, len(self.zooms), "ZoomGroupConv2d", axis="S")
        b, c, s, h, w = x.shape
        taps = []
        for d in range(self.scale_size):
            # slices d … S−1 shrunk by r^d onto the grids of slices 0 … S−1−d; zeros beyond
            moved = self.zoom(x[:, :, d:].transpose(1, 2).reshape(-1, c, h, w),
                              self.ratio ** -d).reshape(b, s - d, c, h, w)
            taps.append(F.pad(moved, (0, 0, 0, 0, 0, 0, 0, d)))  # (B, S, C, H, W)
        stacked = torch.stack(taps, 3).reshape(b * s, c * self.scale_size, h, w)
        weight = self.weight.reshape(self.out_channels, c * self.scale_size, *self.weight.shape[-2:])
        y = F.conv2d(stacked, weight, self.bias, padding=self.kernel_size // 2)
        return y.reshape(b, s, self.out_channels, h, w).transpose(1, 2)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale_size={self.scale_size}"
