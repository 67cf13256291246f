"""The pose-regression baseline of the cross-domain embedding experiments (after Mahendran et
al. 2017): the image encoder of :class:`~equivision.models.image_to_sphere.ImageToSphere`
(same layers and widths, so the two networks' encoders are of one size) followed by a small
head regressing the object's absolute rotation in the collection's canonical frame.

The head outputs the continuous 6D representation of Zhou et al. (2019): two 3-vectors turned
into the first two columns of a rotation by Gram–Schmidt, the third their cross product. Unlike
quaternions or Euler angles it has no discontinuity on SO(3), which regression needs.

The relative pose of two images follows from the two absolute ones: ``R_b R_aᵀ``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError
from equivision.models import register_model
from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig

__all__ = ["PoseRegression", "PoseRegressionConfig", "rotation_from_6d"]


@dataclass
class PoseRegressionConfig:
    in_channels: int = 3  # 1: shading; 3: shading, silhouette, depth
    image_size: int = 64
    width: int = 64  # the encoder's widths, as in ImageToSphereConfig
    max_width: int = 256
    code_dim: int = 1024
    hidden: int = 256  # the head's hidden layer

    def __post_init__(self) -> None:
        check_fields(self, "model")
        require_positive(self.hidden, "model.hidden", error=ConfigError)
        self.encoder_config()  # checks the shared fields

    def encoder_config(self) -> ImageToSphereConfig:
        """The ImageToSphere config whose encoder this network uses (its decoder fields are
        placeholders: the decoder is not built into this network)."""
        return ImageToSphereConfig(in_channels=self.in_channels, image_size=self.image_size, bandwidth=2,
                                   out_channels=1, width=self.width, max_width=self.max_width,
                                   code_dim=self.code_dim)


def rotation_from_6d(x: Tensor) -> Tensor:
    """6D vectors ``(..., 6)`` → rotations ``(..., 3, 3)`` (columns: Gram–Schmidt of the two
    halves, then their cross product)."""
    a, b = x[..., :3], x[..., 3:]
    c1 = F.normalize(a, dim=-1, eps=1e-8)
    c2 = F.normalize(b - (c1 * b).sum(-1, keepdim=True) * c1, dim=-1, eps=1e-8)
    c3 = torch.linalg.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], dim=-1)


class PoseRegression(ImageToSphere):
    """Images ``(B, in_channels, S, S)`` → absolute rotations ``(B, 3, 3)``."""

    def __init__(self, cfg: PoseRegressionConfig) -> None:
        super().__init__(cfg.encoder_config())
        # only the encoder is shared; the spherical decoder has no place here
        del self.from_code, self.decoder, self.head
        self.pose_cfg = cfg
        self.pose_head = nn.Sequential(nn.ReLU(), nn.Linear(cfg.code_dim, cfg.hidden), nn.ReLU(),
                                       nn.Linear(cfg.hidden, 6))
        with torch.no_grad():  # start near the identity rather than at a random degenerate pair
            self.pose_head[-1].weight.mul_(0.1)
            self.pose_head[-1].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    def decode(self, code: Tensor) -> Tensor:
        """Codes ``(B, code_dim)`` → rotations ``(B, 3, 3)``."""
        return rotation_from_6d(self.pose_head(code))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


@register_model("pose_regression", PoseRegressionConfig)
def build_pose_regression(cfg: PoseRegressionConfig) -> PoseRegression:
    return PoseRegression(cfg)
