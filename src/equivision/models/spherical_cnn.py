"""A spherical CNN classifier whose intermediate feature maps rotate with the input shape.

``SphericalCNN``: a stem convolution, then residual stages that halve the bandwidth, then the
rotation-invariant area-weighted global pool and a linear read-out. ``features(x, layer)``
returns the feature maps ``(B, C, 2b, 2b)`` of a named layer (``"stem"``, ``"stage1"`` …)
for use as equivariant shape embeddings (the targets of the image embedding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, InvalidInputError
from equivision.models import register_model
from equivision.nn.spherical import (
    SphericalBatchNorm,
    SphericalConv,
    SphericalGlobalPool,
    SphericalResBlock,
    check_grid_input,
)


@dataclass
class SphericalCNNConfig:
    """``bandwidths[0]`` is the input bandwidth; stage ``i`` maps to ``bandwidths[i + 1]``."""

    in_channels: int = 2
    num_classes: int = 10
    stem_channels: int = 16
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    bandwidths: list[int] = field(default_factory=lambda: [32, 16, 8, 4])
    n_anchors: int = 8
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("in_channels", "num_classes", "stem_channels", "n_anchors"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        for k in ("channels", "bandwidths"):
            for i, v in enumerate(getattr(self, k)):
                require_positive(v, f"model.{k}[{i}]", error=ConfigError)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if len(self.bandwidths) != len(self.channels) + 1:
            raise ConfigError("bandwidths must have one more entry than channels (the input's)")
        if any(b2 > b1 for b1, b2 in zip(self.bandwidths, self.bandwidths[1:], strict=False)):
            raise ConfigError(f"bandwidths must not increase, got {self.bandwidths}")


class SphericalCNN(nn.Module):
    """``(B, in_channels, 2B, 2B)`` ray-cast signals → class logits ``(B, num_classes)``."""

    def __init__(self, cfg: SphericalCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        b0 = cfg.bandwidths[0]
        self.stem = SphericalConv(cfg.in_channels, cfg.stem_channels, b0, b0, cfg.n_anchors, bias=False)
        self.stem_bn = SphericalBatchNorm(cfg.stem_channels, b0)
        stages = []
        c_in = cfg.stem_channels
        for i, c in enumerate(cfg.channels):
            stages.append(SphericalResBlock(c_in, c, cfg.bandwidths[i], cfg.bandwidths[i + 1], cfg.n_anchors))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.pool = SphericalGlobalPool()
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, cfg.num_classes)

    @property
    def layer_names(self) -> list[str]:
        return ["stem"] + [f"stage{i + 1}" for i in range(len(self.stages))]

    def _run(self, x: Tensor, until: str | None) -> Tensor:
        check_grid_input(x, self.cfg.in_channels, self.cfg.bandwidths[0], "SphericalCNN")
        h = F.relu(self.stem_bn(self.stem(x)))
        if until == "stem":
            return h
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if until == f"stage{i + 1}":
                return h
        return h

    def features(self, x: Tensor, layer: str) -> Tensor:
        """Feature maps of ``layer`` (one of :attr:`layer_names`): ``(B, C, 2b, 2b)``."""
        if layer not in self.layer_names:
            raise InvalidInputError(f"unknown layer {layer!r}; layers: {', '.join(self.layer_names)}")
        return self._run(x, layer)

    def embedding(self, x: Tensor) -> Tensor:
        """The rotation-invariant descriptor ``(B, C)`` before the read-out."""
        return self.pool(self._run(x, None))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.embedding(x)))


@register_model("spherical_cnn", SphericalCNNConfig)
def build_spherical_cnn(cfg: SphericalCNNConfig) -> nn.Module:
    return SphericalCNN(cfg)


__all__ = ["SphericalCNN", "SphericalCNNConfig", "build_spherical_cnn"]
