"""A non-equivariant novel-view baseline in the style of Tatarchenko et al. (2016): an image
encoder to a code, the target rotation concatenated to it, an image decoder.

Encoder: the image encoder of :class:`~equivision.models.image_to_sphere.ImageToSphere`
(strided ``5 × 5`` convolution, stages of 2 residual layers with channels doubling from
``width`` to ``max_width``, down to ``4 × 4``, a linear layer to ``code_dim``). The relative
rotation ``Q (B, 3, 3)`` enters as its 9 matrix entries, passed through a small MLP to
``rotation_dim`` features and concatenated to the code; ``fusion_layers`` fully connected
layers of ``code_dim`` units mix them; the decoder is
:class:`~equivision.models.sphere_to_image.ImageDecoder`. Trained on pairs of views of one
mesh (``equivision train view-synthesis-baseline``): input view ``i``, target view ``j``,
``Q = R_j R_iᵀ``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.models import register_model
from equivision.models.image_to_sphere import _ResLayer
from equivision.models.sphere_to_image import ImageDecoder

__all__ = ["ViewBaseline", "ViewBaselineConfig"]


@dataclass
class ViewBaselineConfig:
    in_channels: int = 3  # input image channels (shading, silhouette, depth)
    out_channels: int = 2  # output image channels (shading, silhouette)
    image_size: int = 64
    width: int = 64
    max_width: int = 256
    # a wider code and 2 fusion layers: 31.7 M parameters, against 29.7 M of ImageToSphere +
    # SphereToImage at the paper's widths (14.9 M + 14.8 M)
    code_dim: int = 2048
    rotation_dim: int = 64
    fusion_layers: int = 2

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("in_channels", "out_channels", "image_size", "width", "max_width", "code_dim",
                  "rotation_dim"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        require_positive(self.fusion_layers, "model.fusion_layers", allow_zero=True, error=ConfigError)
        if not 1 <= self.in_channels <= 3 or not 1 <= self.out_channels <= 3:
            raise ConfigError(f"model.in_channels and model.out_channels must be 1 to 3, got "
                              f"{self.in_channels} and {self.out_channels}")
        s = self.image_size
        if s < 16 or s & (s - 1):
            raise ConfigError(f"model.image_size must be a power of two >= 16, got {s}")
        if self.max_width < self.width:
            raise ConfigError(f"model.max_width ({self.max_width}) must be >= model.width ({self.width})")


class ViewBaseline(nn.Module):
    """``(images (B, in_channels, S, S), rotations (B, 3, 3))`` → images
    ``(B, out_channels, S, S)`` of the object turned by each rotation."""

    def __init__(self, cfg: ViewBaselineConfig) -> None:
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
        self.rotation_net = nn.Sequential(nn.Linear(9, cfg.rotation_dim), nn.ReLU(),
                                          nn.Linear(cfg.rotation_dim, cfg.rotation_dim))
        fuse: list[nn.Module] = []
        width = cfg.code_dim + cfg.rotation_dim
        for _ in range(cfg.fusion_layers):
            fuse += [nn.ReLU(), nn.Linear(width, cfg.code_dim)]
            width = cfg.code_dim
        self.fusion = nn.Sequential(*fuse)
        self.decoder = ImageDecoder(width, cfg.out_channels, cfg.image_size, cfg.width, cfg.max_width)

    def check_input(self, x: Tensor, rotation: Tensor) -> None:
        cfg = self.cfg
        if not isinstance(x, Tensor) or not isinstance(rotation, Tensor):
            raise InvalidInputError("images and rotations must be tensors")
        want = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] == 0:
            raise ShapeError(f"images must have shape (B, {want[0]}, {want[1]}, {want[2]}) with B >= 1, "
                             f"got {tuple(x.shape)}")
        if tuple(rotation.shape) != (x.shape[0], 3, 3):
            raise ShapeError(f"rotations must have shape ({x.shape[0]}, 3, 3), got {tuple(rotation.shape)}")
        if not x.is_floating_point() or not rotation.is_floating_point():
            raise InvalidInputError(f"images and rotations must be floating point, got {x.dtype} and "
                                    f"{rotation.dtype}")

    def forward(self, x: Tensor, rotation: Tensor) -> Tensor:
        self.check_input(x, rotation)
        code = self.to_code(self.enc_out(self.encoder(self.stem(x))).flatten(1))
        r = self.rotation_net(rotation.to(code.dtype).flatten(1))
        h = self.fusion(torch.cat([code, r], dim=1))
        return self.decoder(h)


@register_model("view_baseline", ViewBaselineConfig)
def build_view_baseline(cfg: ViewBaselineConfig) -> ViewBaseline:
    return ViewBaseline(cfg)
