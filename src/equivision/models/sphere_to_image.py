"""The synthesis network of the cross-domain embedding (Esteves et al. 2019): spherical maps
back to an image, ``Γ(Ψ(I)) ≈ I``. A novel view of the object rotated by ``Q`` is then
``Γ(Q·Ψ(I))``, the rotation applied to the embedding (:mod:`equivision.pipelines.synthesize`).

Encoder: a ``3 × 3`` convolution, then stages of a ``2 × 2`` average pool and 2 residual
layers on the Driscoll–Healy grid (circular padding in azimuth, zeros at the poles), channels
doubling from ``width`` to at most ``max_width``, down to ``4 × 4``; flattened
to a ``code_dim`` vector. Decoder (:class:`ImageDecoder`, shared with the non-equivariant
baseline): a linear layer to a ``max_width × 4 × 4`` map, residual transposed-convolution
blocks doubling it up to ``image_size``, a ``3 × 3`` read-out to ``out_channels`` images with
no activation (L1 training on images in ``[0, 1]``; callers clamp for display).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.models import register_model
from equivision.nn.azimuthal import AzimuthalConv2d

__all__ = ["ImageDecoder", "SphereToImage", "SphereToImageConfig"]


@dataclass
class SphereToImageConfig:
    in_channels: int = 32  # channels C of the embedding maps (C, 2b, 2b)
    bandwidth: int = 16
    out_channels: int = 2  # image channels K, e.g. shading and silhouette
    image_size: int = 64  # square outputs, a power of two >= 8
    width: int = 64  # channels of the first stage, doubling per stage
    max_width: int = 256
    code_dim: int = 1024

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("in_channels", "bandwidth", "out_channels", "image_size", "width", "max_width", "code_dim"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        if not 1 <= self.out_channels <= 3:
            raise ConfigError(f"model.out_channels must be 1 to 3 (of shading, silhouette, depth), "
                              f"got {self.out_channels}")
        s = self.image_size
        if s < 8 or s & (s - 1):
            raise ConfigError(f"model.image_size must be a power of two >= 8, got {s}")
        n = 2 * self.bandwidth
        if self.bandwidth < 2 or n & (n - 1):
            raise ConfigError(f"model.bandwidth must be a power of two >= 2 (the encoder halves the "
                              f"2b × 2b grid down to 4 × 4), got {self.bandwidth}")
        if self.max_width < self.width:
            raise ConfigError(f"model.max_width ({self.max_width}) must be >= model.width ({self.width})")


class _SphereResLayer(nn.Module):
    """Pre-activation residual layer on grid maps ``(B, c_in, H, W)`` → ``(B, c_out, H, W)``,
    periodic in azimuth."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = AzimuthalConv2d(c_in, c_out, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = AzimuthalConv2d(c_out, c_out, bias=False)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return h + self.skip(x)


class _ImageUpBlock(nn.Module):
    """Residual up-sampling block on images ``(B, c_in, H, W)`` → ``(B, c_out, 2H, 2W)``: a
    ``4 × 4`` transposed convolution of stride 2 (shortcut: nearest up-sampling and ``1 × 1``),
    then a ``3 × 3`` residual layer; pre-activation batch norm and ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.conv3 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(F.relu(self.bn1(x))) + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))
        return h + self.conv3(F.relu(self.bn3(self.conv2(F.relu(self.bn2(h))))))


class ImageDecoder(nn.Module):
    """Codes ``(B, code_dim)`` → images ``(B, out_channels, image_size, image_size)``."""

    def __init__(self, code_dim: int, out_channels: int, image_size: int, width: int, max_width: int) -> None:
        super().__init__()
        self.start_shape = (max_width, 4, 4)
        self.from_code = nn.Linear(code_dim, max_width * 16)
        ups: list[nn.Module] = []
        c, size = max_width, 4
        while size < image_size:
            c_next = max(c // 2, width)
            ups.append(_ImageUpBlock(c, c_next))
            c, size = c_next, size * 2
        self.ups = nn.Sequential(*ups)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, out_channels, 3, padding=1))

    def forward(self, code: Tensor) -> Tensor:
        h = F.relu(self.from_code(code)).reshape(code.shape[0], *self.start_shape)
        return self.head(self.ups(h))


class SphereToImage(nn.Module):
    """Spherical maps ``(B, in_channels, 2b, 2b)`` on the Driscoll–Healy grid (indexed
    ``[θ, φ]``) → images ``(B, out_channels, image_size, image_size)``."""

    def __init__(self, cfg: SphereToImageConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.stem = AzimuthalConv2d(cfg.in_channels, c)
        layers: list[nn.Module] = []
        size = 2 * cfg.bandwidth
        while size > 4:
            c_out = min(2 * c, cfg.max_width)
            # each stage starts by halving the grid (as the image encoder's strided layers do):
            # average pooling by 2 keeps the azimuthal period, 2b being even at every stage
            layers += [nn.AvgPool2d(2), _SphereResLayer(c, c_out), _SphereResLayer(c_out, c_out)]
            c, size = c_out, size // 2
        self.encoder = nn.Sequential(*layers)
        self.enc_out = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.to_code = nn.Linear(c * size * size, cfg.code_dim)
        self.decoder = ImageDecoder(cfg.code_dim, cfg.out_channels, cfg.image_size, cfg.width, cfg.max_width)

    def check_input(self, x: Tensor) -> None:
        """:class:`ShapeError` unless ``x`` is ``(B, in_channels, 2b, 2b)`` floating point."""
        cfg = self.cfg
        if not isinstance(x, Tensor):
            raise InvalidInputError(f"spherical maps must be a tensor, got {type(x).__name__}")
        n = 2 * cfg.bandwidth
        want = (cfg.in_channels, n, n)
        if x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] == 0:
            raise ShapeError(f"spherical maps must have shape (B, {want[0]}, {n}, {n}) with B >= 1 "
                             f"(bandwidth {cfg.bandwidth}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InvalidInputError(f"spherical maps must be floating point, got {x.dtype}")

    def encode(self, x: Tensor) -> Tensor:
        """Maps ``(B, C, 2b, 2b)`` → codes ``(B, code_dim)``."""
        self.check_input(x)
        return self.to_code(self.enc_out(self.encoder(self.stem(x))).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encode(x))


@register_model("sphere_to_image", SphereToImageConfig)
def build_sphere_to_image(cfg: SphereToImageConfig) -> SphereToImage:
    return SphereToImage(cfg)
