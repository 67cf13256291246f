"""The non-equivariant baseline for spherical signals: an ordinary 2D CNN on the
equirectangular ``(C, 2B, 2B)`` map (circular padding in azimuth, zeros at the poles),
with global average pooling and a linear read-out. It sees the same data as
:class:`~equivision.models.spherical_cnn.SphericalCNN` and is sized to a similar parameter
count; it has no rotation equivariance beyond azimuthal shifts of the grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, ShapeError
from equivision.models import register_model


@dataclass
class EquirectCNNConfig:
    in_channels: int = 2
    num_classes: int = 10
    channels: list[int] = field(default_factory=lambda: [32, 64, 96, 112])
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("in_channels", "num_classes"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        for i, v in enumerate(self.channels):
            require_positive(v, f"model.channels[{i}]", error=ConfigError)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (1, 1, 0, 0), mode="circular")  # azimuth wraps around
        x = F.pad(x, (0, 0, 1, 1))  # colatitude: zeros beyond the poles
        return F.relu(self.bn(self.conv(x)))


class EquirectCNN(nn.Module):
    """``(B, in_channels, H, W)`` equirectangular maps → logits ``(B, num_classes)``."""

    def __init__(self, cfg: EquirectCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        blocks, c = [], cfg.in_channels
        for c_out in cfg.channels:
            blocks.append(_Block(c, c_out))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c, cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            raise ShapeError(f"EquirectCNN expects (B, {self.cfg.in_channels}, H, W), got {tuple(x.shape)}")
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = F.max_pool2d(x, 2)
        return self.head(self.dropout(x.mean((-1, -2))))


@register_model("equirect_cnn", EquirectCNNConfig)
def build_equirect_cnn(cfg: EquirectCNNConfig) -> nn.Module:
    return EquirectCNN(cfg)
