"""Ready image classifiers on the G-CNN layers of :mod:`equivision.nn`, and their baselines.

All share one skeleton for 28 × 28 digits, ``(B, C_in, H, W) -> (B, num_classes)`` logits:

    lift (K=5) → BN → ReLU → [conv (K=3) → BN → ReLU] × (depth − 1), with 2 × 2 max pooling
    after blocks 1 and 3 → projection over the group axis → global spatial mean → linear

* ``"p4"`` / ``"p4m"``: ``C4`` / ``D4`` G-CNN, exactly invariant to rotations by 90°
  (and mirrors) of the input when ``H`` and ``W`` are divisible by 4;
* ``"p8"``: ``C8`` G-CNN with steerable kernels (invariance to 45° steps approximate);
* ``"scale"``: scale-translation G-CNN over ``num_scales`` scales ``√2^i`` (magnified
  kernels, every slice on the input grid);
* ``"scale_zoom"``: the same group on zoomed grids: the input magnified ``√2^i`` times per
  slice and ``K × K`` kernels throughout (:class:`~equivision.nn.ZoomLiftingConv2d`), so
  every scale costs the same;
* ``"plain"``: the same skeleton with ``Conv2d``, its width chosen so that its parameter
  count matches the P4 model's (:func:`matched_plain_width`);
* ``"e2cnn_c8"``: the outside anchor, the same skeleton built from e2cnn's ``R2Conv`` on
  ``Rot2dOnR2(8)`` regular fields (needs ``pip install e2cnn``; test-only dependency).

Registered as model ``"gcnn"`` (config :class:`GCNNConfig`, field ``arch`` picks the kind).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.groups import C4, D4, CyclicGroup
from equivision.models import count_parameters, register_model
from equivision.nn import (
    GroupBatchNorm,
    GroupConv2d,
    GroupMaxPool2d,
    GroupProjection,
    LiftingConv2d,
    ScaleGroupConv2d,
    ScaleLiftingConv2d,
    ZoomGroupConv2d,
    ZoomLiftingConv2d,
    geometric_scales,
)

Arch = Literal["plain", "p4", "p4m", "p8", "scale", "scale_zoom", "e2cnn_c8"]
POOL_AFTER = (0, 2)  # block indices followed by 2 × 2 max pooling


@dataclass
class GCNNConfig:
    arch: Arch = "p4"
    width: int = 8
    """Channels (fields) per layer; for "plain" with ``match_p4`` the P4 width to match."""
    match_p4: bool = True
    """"plain" only: pick its width so its parameter count matches the P4 model of ``width``."""
    depth: int = 5
    """Convolution blocks (>= 1)."""
    in_channels: int = 1
    num_classes: int = 10
    num_scales: int = 3
    """Scales √2^i of the "scale" arch (zooms √2^i of "scale_zoom")."""
    scale_size: int = 2
    """Neighbouring scales each scale group convolution reads ("scale", "scale_zoom"); 1
    mixes no scales, so the truncated scale axis only matters at the final projection."""
    projection: Literal["max", "mean"] = "max"
    spatial_pool: Literal["mean", "max"] = "mean"
    """Global pooling over the plane before the linear head. "max" keeps the features of a
    small object as strong as those of a large one (the mean dilutes them by its area), which
    a scale-invariant model needs."""
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, "model")
        if self.arch not in ("plain", "p4", "p4m", "p8", "scale", "scale_zoom", "e2cnn_c8"):
            raise ConfigError(f"model.arch must be plain, p4, p4m, p8, scale, scale_zoom or "
                              f"e2cnn_c8, got {self.arch!r}")
        for k in ("width", "depth", "in_channels", "num_classes", "num_scales", "scale_size"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.projection not in ("max", "mean"):
            raise ConfigError(f"model.projection must be max or mean, got {self.projection!r}")
        if self.arch in ("scale", "scale_zoom") and self.scale_size > self.num_scales:
            raise ConfigError(f"model.scale_size ({self.scale_size}) cannot exceed "
                              f"model.num_scales ({self.num_scales})")
        if self.spatial_pool not in ("max", "mean"):
            raise ConfigError(f"model.spatial_pool must be mean or max, got "
                              f"{self.spatial_pool!r}")


def _skeleton(first: nn.Module, conv: Callable[[], nn.Module], norm: Callable[[int], nn.Module],
              pool: Callable[[], nn.Module], width: int, depth: int) -> nn.Sequential:
    """``first`` → norm → ReLU, then ``depth − 1`` × (pool after POOL_AFTER blocks) conv → norm
    → ReLU: the one skeleton every model here shares."""
    layers: list[nn.Module] = [first, norm(width), nn.ReLU()]
    for i in range(1, depth):
        if i - 1 in POOL_AFTER:
            layers.append(pool())
        layers += [conv(), norm(width), nn.ReLU()]
    return nn.Sequential(*layers)


class _Classifier(nn.Module):
    """The shared head and input checks; subclasses fill ``self.blocks`` and ``features``."""

    in_channels: int
    spatial_pool: str = "mean"

    def _pool(self, y: Tensor) -> Tensor:
        """``(B, C, H, W)`` to ``(B, C)``: global mean or max over the plane."""
        return y.amax((-2, -1)) if self.spatial_pool == "max" else y.mean((-2, -1))

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"{type(self).__name__} expects images of shape "
                             f"(B, {self.in_channels}, H, W), got {got}")
        if x.shape[-1] < 4 or x.shape[-2] < 4:
            raise ShapeError(f"{type(self).__name__} needs images of at least 4 × 4 pixels "
                             f"(two 2 × 2 poolings), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W)`` images to ``(B, num_classes)`` logits."""
        return self.head(self.features(x))


class GroupCNN(_Classifier):
    """A C_N / D_N G-CNN classifier (see the module docstring)."""

    def __init__(self, group: CyclicGroup | object, width: int = 8, depth: int = 5,
                 in_channels: int = 1, num_classes: int = 10, projection: str = "max",
                 dropout: float = 0.0, spatial_pool: str = "mean") -> None:
        super().__init__()
        self.in_channels, self.spatial_pool = in_channels, spatial_pool
        self.blocks = _skeleton(LiftingConv2d(in_channels, width, 5, group),
                                lambda: GroupConv2d(width, width, 3, group), GroupBatchNorm,
                                lambda: GroupMaxPool2d(2), width, depth)
        self.project = GroupProjection(projection)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """``(B, width)`` features, invariant to the group acting on the input."""
        self._check(x)
        return self._pool(self.project(self.blocks(x)))


class ScaleCNN(_Classifier):
    """A scale-translation G-CNN classifier over scales ``√2^i``, ``i < num_scales``:
    magnified kernels (``zoomed=False``) or zoomed grids (``zoomed=True``, see
    :class:`~equivision.nn.ZoomLiftingConv2d`)."""

    def __init__(self, width: int = 8, depth: int = 5, num_scales: int = 3,
                 in_channels: int = 1, num_classes: int = 10, projection: str = "max",
                 dropout: float = 0.0, spatial_pool: str = "mean", zoomed: bool = False,
                 scale_size: int = 2) -> None:
        super().__init__()
        self.in_channels, self.spatial_pool = in_channels, spatial_pool
        scales = geometric_scales(num_scales, 2**0.5)
        lift, conv = ((ZoomLiftingConv2d, ZoomGroupConv2d) if zoomed
                      else (ScaleLiftingConv2d, ScaleGroupConv2d))
        self.blocks = _skeleton(lift(in_channels, width, 5, scales),
                                lambda: conv(width, width, 3, scales, scale_size=scale_size),
                                GroupBatchNorm, lambda: GroupMaxPool2d(2), width, depth)
        self.project = GroupProjection(projection)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """``(B, width)`` features, projected over the scale axis and pooled over the plane."""
        self._check(x)
        return self._pool(self.project(self.blocks(x)))


class PlainCNN(_Classifier):
    """The same skeleton with ordinary convolutions (no group axis)."""

    def __init__(self, width: int = 16, depth: int = 5, in_channels: int = 1,
                 num_classes: int = 10, dropout: float = 0.0,
                 spatial_pool: str = "mean") -> None:
        super().__init__()
        self.in_channels, self.spatial_pool = in_channels, spatial_pool
        self.blocks = _skeleton(nn.Conv2d(in_channels, width, 5, padding=2),
                                lambda: nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d,
                                lambda: nn.MaxPool2d(2), width, depth)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def features(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._pool(self.blocks(x))


def matched_plain_width(target: int, depth: int = 5, in_channels: int = 1,
                        num_classes: int = 10) -> int:
    """The :class:`PlainCNN` width whose parameter count is closest to ``target``."""
    if target < 1:
        raise InvalidInputError(f"target parameter count must be >= 1, got {target}")

    def params(w: int) -> int:
        conv = in_channels * w * 25 + w + (depth - 1) * (w * w * 9 + w)
        return conv + depth * 2 * w + w * num_classes + num_classes

    best, w = 1, 1
    while params(w) <= target:
        best, w = w, w + 1
    return best if abs(params(best) - target) <= abs(params(best + 1) - target) else best + 1


class E2CNNC8(_Classifier):
    """The anchor: the GroupCNN skeleton built from e2cnn's ``R2Conv`` with C8 regular
    fields (``width`` fields of size 8), e2cnn's own batch norm, ReLU and pooling."""

    def __init__(self, width: int = 8, depth: int = 5, in_channels: int = 1,
                 num_classes: int = 10, projection: str = "max", dropout: float = 0.0,
                 spatial_pool: str = "mean") -> None:
        super().__init__()
        self.spatial_pool = spatial_pool
        try:
            from e2cnn import gspaces
            from e2cnn import nn as enn
        except ImportError as e:  # test-only dependency
            raise ConfigError("the e2cnn_c8 anchor model needs e2cnn: "
                              ".venv/bin/pip install -c constraints.txt e2cnn") from e
        self.in_channels = in_channels
        gs = gspaces.Rot2dOnR2(8)
        self.in_type = enn.FieldType(gs, in_channels * [gs.trivial_repr])
        reg = enn.FieldType(gs, width * [gs.regular_repr])
        layers = [enn.R2Conv(self.in_type, reg, 5, padding=2), enn.InnerBatchNorm(reg),
                  enn.ReLU(reg)]
        for i in range(1, depth):
            if i - 1 in POOL_AFTER:
                layers.append(enn.PointwiseMaxPool(reg, 2))
            layers += [enn.R2Conv(reg, reg, 3, padding=1), enn.InnerBatchNorm(reg),
                       enn.ReLU(reg)]
        self.blocks = enn.SequentialModule(*layers)
        self.width, self.projection = width, projection
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        # e2cnn caches expanded filters as buffers until .train() drops them; drop them now
        # so that a fresh model's state_dict matches checkpoints saved in training mode
        self.train()

    def features(self, x: Tensor) -> Tensor:
        from e2cnn import nn as enn

        self._check(x)
        y = self.blocks(enn.GeometricTensor(x, self.in_type)).tensor
        y = y.reshape(y.shape[0], self.width, 8, y.shape[-2], y.shape[-1])
        y = y.amax(2) if self.projection == "max" else y.mean(2)
        return self._pool(y)


def p4cnn(**kw: object) -> GroupCNN:
    """The P4 (``C4``) G-CNN; keyword arguments as :class:`GroupCNN`."""
    return GroupCNN(C4, **kw)  # type: ignore[arg-type]


def p8cnn(**kw: object) -> GroupCNN:
    """The P8 (``C8``, steerable kernels) G-CNN."""
    return GroupCNN(CyclicGroup(8), **kw)  # type: ignore[arg-type]


def p4mcnn(**kw: object) -> GroupCNN:
    """The P4M (``D4``: rotations and mirrors) G-CNN."""
    return GroupCNN(D4, **kw)  # type: ignore[arg-type]


@register_model("gcnn", GCNNConfig)
def build_gcnn(cfg: GCNNConfig) -> nn.Module:
    common = {"depth": cfg.depth, "in_channels": cfg.in_channels,
              "num_classes": cfg.num_classes, "dropout": cfg.dropout,
              "spatial_pool": cfg.spatial_pool}
    if cfg.arch == "plain":
        width = cfg.width
        if cfg.match_p4:
            ref = GroupCNN(C4, cfg.width, cfg.depth, cfg.in_channels, cfg.num_classes)
            width = matched_plain_width(count_parameters(ref), cfg.depth, cfg.in_channels,
                                        cfg.num_classes)
        return PlainCNN(width, **common)
    if cfg.arch in ("scale", "scale_zoom"):
        return ScaleCNN(cfg.width, num_scales=cfg.num_scales, projection=cfg.projection,
                        zoomed=cfg.arch == "scale_zoom", scale_size=cfg.scale_size, **common)
    if cfg.arch == "e2cnn_c8":
        return E2CNNC8(cfg.width, projection=cfg.projection, **common)
    group = {"p4": C4, "p4m": D4, "p8": CyclicGroup(8)}[cfg.arch]
    return GroupCNN(group, cfg.width, projection=cfg.projection, **common)


__all__ = [
    "E2CNNC8",
    "GCNNConfig",
    "GroupCNN",
    "PlainCNN",
    "ScaleCNN",
    "build_gcnn",
    "count_parameters",
    "matched_plain_width",
    "p4cnn",
    "p4mcnn",
    "p8cnn",
]
