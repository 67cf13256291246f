"""The image-to-sphere network of the cross-domain embedding (Esteves et al. 2019): a CNN that
maps one image of an object to the spherical feature maps a spherical CNN teacher computes
for the object in that pose, so that the embedding of an image rotates with the object.

Encoder: a strided ``5 × 5`` convolution, then stages of 2 residual layers (the first of each
halves the resolution) with channels doubling from ``width`` to at most ``max_width``, down
to ``4 × 4``, flattened to a ``code_dim`` vector. Decoder: a linear layer to a small grid map,
then residual transposed-convolution blocks (:class:`~equivision.nn.azimuthal.AzimuthalUpBlock`,
circular padding in azimuth, zeros at the poles) doubling it up to the ``2b × 2b``
Driscoll–Healy grid, and a ``3 × 3`` read-out to ``out_channels`` maps with no activation
(the teacher's features are unbounded). No skip connections between encoder and decoder:
image pixels and sphere points do not correspond.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.models import register_model
from equivision.nn.azimuthal import AzimuthalConv2d, AzimuthalUpBlock

__all__ = ["ImageToSphere", "ImageToSphereConfig", "decoder_start_size"]


def decoder_start_size(bandwidth: int) -> int:
    """Side of the decoder's first map: ``2b`` halved while it is even and above 4."""
    s = 2 * bandwidth
    while s % 2 == 0 and s > 4:
        s //= 2
    return s


@dataclass
class ImageToSphereConfig:
    in_channels: int = 1  # 1: shading; 3: shading, silhouette, depth
    image_size: int = 64  # square inputs, a power of two >= 16
    bandwidth: int = 16  # output maps (out_channels, 2b, 2b)
    out_channels: int = 16
    width: int = 64  # channels of the first stage, doubling per stage
    max_width: int = 256
    code_dim: int = 1024

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("in_channels", "image_size", "bandwidth", "out_channels", "width", "max_width", "code_dim"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        if self.in_channels not in (1, 3):
            raise ConfigError(f"model.in_channels must be 1 (shading) or 3 (shading, silhouette, depth), "
                              f"got {self.in_channels}")
        s = self.image_size
        if s < 16 or s & (s - 1):
            raise ConfigError(f"model.image_size must be a power of two >= 16, got {s}")
        if self.bandwidth < 2:
            raise ConfigError(f"model.bandwidth must be at least 2, got {self.bandwidth}")
        if self.max_width < self.width:
            raise ConfigError(f"model.max_width ({self.max_width}) must be >= model.width ({self.width})")


class _ResLayer(nn.Module):
    """Pre-activation residual layer ``(B, c_in, H, W)`` → ``(B, c_out, H/stride, W/stride)``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.skip = (nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return h + self.skip(x)


class ImageToSphere(nn.Module):
    """Images ``(B, in_channels, image_size, image_size)`` → spherical maps
    ``(B, out_channels, 2b, 2b)`` on the Driscoll–Healy grid, indexed ``[θ, φ]``."""

    def __init__(self, cfg: ImageToSphereConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.stem = nn.Conv2d(cfg.in_channels, c, 5, stride=2, padding=2, bias=False)
        layers: list[nn.Module] = []
        size = cfg.image_size // 2
        while size > 4:
            c_out = min(2 * c, cfg.max_width)
            layers += [_ResLayer(c, c_out, 2), _ResLayer(c_out, c_out, 1)]
            c, size = c_out, size // 2
        self.encoder = nn.Sequential(*layers)
        self.enc_out = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.to_code = nn.Linear(c * size * size, cfg.code_dim)
        s0 = decoder_start_size(cfg.bandwidth)
        n_up = (2 * cfg.bandwidth // s0).bit_length() - 1
        c_dec = cfg.max_width
        self.start_shape = (c_dec, s0, s0)
        self.from_code = nn.Linear(cfg.code_dim, c_dec * s0 * s0)
        ups: list[nn.Module] = []
        for _ in range(n_up):
            c_next = max(c_dec // 2, cfg.width)
            ups.append(AzimuthalUpBlock(c_dec, c_next))
            c_dec = c_next
        self.decoder = nn.Sequential(*ups)
        self.head = nn.Sequential(nn.BatchNorm2d(c_dec), nn.ReLU(), AzimuthalConv2d(c_dec, cfg.out_channels))

    def check_input(self, x: Tensor) -> None:
        """:class:`ShapeError` unless ``x`` is ``(B, in_channels, image_size, image_size)``."""
        cfg = self.cfg
        if not isinstance(x, Tensor):
            raise InvalidInputError(f"images must be a tensor, got {type(x).__name__}")
        want = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] == 0:
            raise ShapeError(f"images must have shape (B, {want[0]}, {want[1]}, {want[2]}) with B >= 1, "
                             f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InvalidInputError(f"images must be floating point, got {x.dtype}")

    def encode(self, x: Tensor) -> Tensor:
        """Images ``(B, C_in, H, W)`` → codes ``(B, code_dim)``."""
        self.check_input(x)
        h = self.enc_out(self.encoder(self.stem(x)))
        return self.to_code(h.flatten(1))

    def decode(self, code: Tensor) -> Tensor:
        """Codes ``(B, code_dim)`` → maps ``(B, out_channels, 2b, 2b)``."""
        h = F.relu(self.from_code(code)).reshape(code.shape[0], *self.start_shape)
        return self.head(self.decoder(h))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


@register_model("image_to_sphere", ImageToSphereConfig)
def build_image_to_sphere(cfg: ImageToSphereConfig) -> ImageToSphere:
    return ImageToSphere(cfg)

