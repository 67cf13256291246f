"""Point-cloud classifiers: VN-PointNet and VN-DGCNN (rotation-invariant, from
:mod:`equivision.nn.vector_neurons`) and their plain baselines PointNet and DGCNN.

Every model maps points ``(B, N, 3)`` to class logits ``(B, num_classes)``. The VN models'
logits are invariant under any rotation of the input (exactly, up to float rounding); the
baselines' are not.

Widths: a VN channel holds a 3-vector, i.e. three numbers, so the VN models use the plain
models' channel counts divided by 3 (as the paper does), keeping the feature sizes alike. A
VN linear layer then has ``C'·C`` weights (plus as many for its learned directions) where
the plain one has ``3C'·3C``, so the VN bodies are smaller; but the invariant read-out of
``2C`` channels (features and their mean) against a 3-vector frame gives ``6C`` features per
point, twice the plain model's ``3C``, which doubles the first head layer. Defaults
(total = body + head): VN-PointNet 306,420 = 10,474 + 295,946 against PointNet's
241,226 = 75,328 + 165,898; VN-DGCNN 577,593 = 20,527 + 557,066 against DGCNN's
452,298 = 155,328 + 296,970.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from equivision._validation import check_finite, require_positive, require_range
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.models import register_model
from equivision.nn.vector_neurons import (
    VNBatchNorm,
    VNInvariant,
    VNLinear,
    VNLinearLeakyReLU,
    VNMaxPool,
    knn_indices,
    vn_edge_features,
    vn_mean_pool,
)

__all__ = [
    "DGCNN",
    "VNDGCNN",
    "DGCNNConfig",
    "PointNet",
    "PointNetConfig",
    "VNDGCNNConfig",
    "VNPointNet",
    "VNPointNetConfig",
    "check_cloud_batch",
]

POINT_MODELS = ("vn_pointnet", "vn_dgcnn", "pointnet", "dgcnn")
"""The registered names of the point-cloud classifiers."""


def check_cloud_batch(points: Tensor, min_points: int = 1) -> None:
    """Refuse anything but finite floating points ``(B, N, 3)`` with ``N >= min_points``."""
    if not isinstance(points, Tensor):
        raise InvalidInputError(f"points must be a tensor (B, N, 3), got {type(points).__name__}")
    if not points.is_floating_point():
        raise InvalidInputError(f"points must be floating point (float32 or float64), got {points.dtype}")
    if points.ndim != 3 or points.shape[2] != 3:
        raise ShapeError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
    if points.shape[1] < min_points:
        from equivision.errors import DegenerateGeometryError

        raise DegenerateGeometryError(f"{points.shape[1]} points but the model needs at least "
                                      f"{min_points} (its k neighbours)")
    check_finite(points, "points")


def _check_common(cfg: object, *, vn: bool) -> None:
    require_positive(cfg.num_classes, "model.num_classes", error=ConfigError)  # type: ignore[attr-defined]
    require_positive(cfg.k, "model.k", error=ConfigError)  # type: ignore[attr-defined]
    for name in ("channels", "head"):
        vals = getattr(cfg, name)
        if not vals or any(isinstance(v, bool) or not isinstance(v, int) for v in vals):
            raise ConfigError(f"model.{name} must be a non-empty list of integers, got {vals!r}")
        for v in vals:
            require_positive(v, f"model.{name} entries", error=ConfigError)
    for name in ("num_classes", "k", "embed") if hasattr(cfg, "embed") else ("num_classes", "k"):
        if not isinstance(getattr(cfg, name), int):
            raise ConfigError(f"model.{name} must be an integer, got {getattr(cfg, name)!r}")
    require_range(cfg.dropout, "model.dropout", 0.0, 0.99, error=ConfigError)  # type: ignore[attr-defined]
    require_range(cfg.negative_slope, "model.negative_slope", 0.0, 0.99,  # type: ignore[attr-defined]
                  error=ConfigError)
    if vn:
        if cfg.invariant not in ("paper", "code"):  # type: ignore[attr-defined]
            raise ConfigError(f"model.invariant must be 'paper' or 'code', got {cfg.invariant!r}")  # type: ignore[attr-defined]
        if cfg.normalize_frame and cfg.invariant != "code":  # type: ignore[attr-defined]
            raise ConfigError("model.normalize_frame applies to model.invariant 'code'")
        if cfg.pooling not in ("mean", "max"):  # type: ignore[attr-defined]
            raise ConfigError(f"model.pooling must be 'mean' or 'max', got {cfg.pooling!r}")  # type: ignore[attr-defined]
        require_positive(cfg.eps, "model.eps", error=ConfigError)  # type: ignore[attr-defined]
    if hasattr(cfg, "embed"):
        require_positive(cfg.embed, "model.embed", error=ConfigError)


def _head(in_features: int, head: list[int], num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in head:
        layers += [nn.Linear(in_features, h, bias=False), nn.BatchNorm1d(h), nn.LeakyReLU(0.2),
                   nn.Dropout(dropout)]
        in_features = h
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


def _max_mean(f: Tensor) -> Tensor:
    """DGCNN's global read-out: ``(B, C, N)`` → max and mean over the points ``(B, 2C)``."""
    return torch.cat([f.amax(-1), f.mean(-1)], 1)


def _vn_readout(h: Tensor, invariant: VNInvariant) -> Tensor:
    """``(B, C, 3, N)`` → per-point invariants ``(B, 2C·3, N)``: each point's features next
    to their mean over the points (as the authors' classifiers do), through ``invariant``."""
    both = torch.cat([h, h.mean(-1, keepdim=True).expand_as(h)], 1)
    inv, _ = invariant(both)
    return inv.flatten(1, 2)


# ----------------------------------------------------------------------------- VN-PointNet

@dataclass
class VNPointNetConfig:
    """VN-PointNet: an edge-feature first layer over ``k`` xyz neighbours (mean-pooled), then
    per-point VN layers ``channels``; the last is linear + batch norm, read out by
    :class:`~equivision.nn.VNInvariant` and a max over points, then an MLP ``head``.
    Default ``channels`` = PointNet's ``[64, 128, 512]`` divided by 3."""

    num_classes: int = 10
    k: int = 20
    channels: list[int] = field(default_factory=lambda: [21, 42, 170])
    head: list[int] = field(default_factory=lambda: [256, 128])
    invariant: str = "paper"
    normalize_frame: bool = False
    pooling: str = "mean"
    negative_slope: float = 0.2
    dropout: float = 0.4
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _check_common(self, vn=True)
        if len(self.channels) < 2:
            raise ConfigError("model.channels needs at least 2 entries (edge layer, last layer)")


class VNPointNet(nn.Module):
    """``(B, N, 3)`` points → rotation-invariant logits ``(B, num_classes)``."""

    def __init__(self, cfg: VNPointNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        a, eps = cfg.negative_slope, cfg.eps
        ch = cfg.channels
        self.edge = VNLinearLeakyReLU(2, ch[0], negative_slope=a, eps=eps)
        self.edge_pool = VNMaxPool(ch[0]) if cfg.pooling == "max" else None
        self.blocks = nn.ModuleList(VNLinearLeakyReLU(c0, c1, negative_slope=a, eps=eps)
                                    for c0, c1 in itertools.pairwise(ch[:-1]))
        self.last = nn.Sequential(VNLinear(ch[-2], ch[-1]), VNBatchNorm(ch[-1], eps=eps))
        self.invariant = VNInvariant(2 * ch[-1], variant=cfg.invariant,
                                     normalize_frame=cfg.normalize_frame, negative_slope=a, eps=eps)
        self.head = _head(2 * ch[-1] * 3, cfg.head, cfg.num_classes, cfg.dropout)

    def features(self, points: Tensor) -> Tensor:
        """Per-point invariant features ``(B, 6·channels[-1], N)``."""
        check_cloud_batch(points, self.cfg.k)
        x = points.transpose(1, 2)[:, None]  # (B, 1, 3, N)
        e = self.edge(vn_edge_features(x, self.cfg.k))  # (B, C0, 3, N, k)
        h = self.edge_pool(e) if self.edge_pool is not None else vn_mean_pool(e)
        for blk in self.blocks:
            h = blk(h)
        return _vn_readout(self.last(h), self.invariant)

    def forward(self, points: Tensor) -> Tensor:
        return self.head(self.features(points).amax(-1))


@register_model("vn_pointnet", VNPointNetConfig)
def build_vn_pointnet(cfg: VNPointNetConfig) -> nn.Module:
    return VNPointNet(cfg)


# ----------------------------------------------------------------------------- VN-DGCNN

@dataclass
class VNDGCNNConfig:
    """VN-DGCNN: edge convolutions ``channels`` (neighbours by xyz for the first, by feature
    distance after; pooled over the ``k`` neighbours by mean or learned-direction max), their
    concatenation mapped to ``embed`` channels, read out by
    :class:`~equivision.nn.VNInvariant`, max + mean over points, an MLP ``head``. Defaults:
    DGCNN's ``[32, 32, 64, 128]`` and ``embed`` 512 divided by 3."""

    num_classes: int = 10
    k: int = 20
    channels: list[int] = field(default_factory=lambda: [10, 10, 21, 42])
    embed: int = 170
    head: list[int] = field(default_factory=lambda: [256, 128])
    invariant: str = "paper"
    normalize_frame: bool = False
    pooling: str = "mean"
    negative_slope: float = 0.2
    dropout: float = 0.4
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _check_common(self, vn=True)


class VNDGCNN(nn.Module):
    """``(B, N, 3)`` points → rotation-invariant logits ``(B, num_classes)``."""

    def __init__(self, cfg: VNDGCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        a, eps = cfg.negative_slope, cfg.eps
        ins = [1, *cfg.channels[:-1]]
        self.convs = nn.ModuleList(VNLinearLeakyReLU(2 * c0, c1, negative_slope=a, eps=eps)
                                   for c0, c1 in zip(ins, cfg.channels, strict=True))
        self.pools = nn.ModuleList(VNMaxPool(c) for c in cfg.channels) if cfg.pooling == "max" else None
        self.embed = VNLinearLeakyReLU(sum(cfg.channels), cfg.embed, share_direction=True,
                                       negative_slope=a, eps=eps)
        self.invariant = VNInvariant(2 * cfg.embed, variant=cfg.invariant,
                                     normalize_frame=cfg.normalize_frame, negative_slope=a, eps=eps)
        self.head = _head(2 * (2 * cfg.embed * 3), cfg.head, cfg.num_classes, cfg.dropout)

    def features(self, points: Tensor) -> Tensor:
        """Per-point invariant features ``(B, 6·embed, N)``."""
        check_cloud_batch(points, self.cfg.k)
        h = points.transpose(1, 2)[:, None]  # (B, 1, 3, N)
        outs = []
        for i, conv in enumerate(self.convs):
            e = conv(vn_edge_features(h, self.cfg.k))
            h = self.pools[i](e) if self.pools is not None else vn_mean_pool(e)
            outs.append(h)
        return _vn_readout(self.embed(torch.cat(outs, 1)), self.invariant)

    def forward(self, points: Tensor) -> Tensor:
        return self.head(_max_mean(self.features(points)))


@register_model("vn_dgcnn", VNDGCNNConfig)
def build_vn_dgcnn(cfg: VNDGCNNConfig) -> nn.Module:
    return VNDGCNN(cfg)


# ----------------------------------------------------------------------------- baselines

@dataclass
class PointNetConfig:
    """Plain PointNet: shared per-point layers ``channels`` (batch norm, ReLU; none after
    the last), a max over points, an MLP ``head``. ``k`` is unused by the model (kept so
    every point model refuses clouds of fewer than ``k`` points alike)."""

    num_classes: int = 10
    k: int = 20
    channels: list[int] = field(default_factory=lambda: [64, 128, 512])
    head: list[int] = field(default_factory=lambda: [256, 128])
    negative_slope: float = 0.0
    dropout: float = 0.4

    def __post_init__(self) -> None:
        _check_common(self, vn=False)


class PointNet(nn.Module):
    """``(B, N, 3)`` points → logits ``(B, num_classes)`` (not rotation-invariant)."""

    def __init__(self, cfg: PointNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(cfg.channels):
            layers += [nn.Conv1d(c_in, c, 1, bias=False), nn.BatchNorm1d(c)]
            if i < len(cfg.channels) - 1:
                layers.append(nn.LeakyReLU(cfg.negative_slope))
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = _head(c_in, cfg.head, cfg.num_classes, cfg.dropout)

    def forward(self, points: Tensor) -> Tensor:
        check_cloud_batch(points, self.cfg.k)
        return self.head(self.body(points.transpose(1, 2)).amax(-1))


@register_model("pointnet", PointNetConfig)
def build_pointnet(cfg: PointNetConfig) -> nn.Module:
    return PointNet(cfg)


def _edge_features(x: Tensor, idx: Tensor) -> Tensor:
    """``[x_j − x_i, x_i]`` for scalar features ``x (B, D, N)``, neighbours ``idx (B, N, k)``
    → ``(B, 2D, N, k)``."""
    b, d, n = x.shape
    k = idx.shape[-1]
    nb = torch.gather(x, 2, idx.reshape(b, 1, n * k).expand(b, d, n * k)).reshape(b, d, n, k)
    centre = x[..., None].expand(b, d, n, k)
    return torch.cat([nb - centre, centre], 1)


@dataclass
class DGCNNConfig:
    """Plain DGCNN: edge convolutions ``channels`` (neighbours by feature distance, max over
    the ``k`` neighbours), concatenated and mapped to ``embed`` channels, max + mean over
    points, an MLP ``head``."""

    num_classes: int = 10
    k: int = 20
    channels: list[int] = field(default_factory=lambda: [32, 32, 64, 128])
    embed: int = 512
    head: list[int] = field(default_factory=lambda: [256, 128])
    negative_slope: float = 0.2
    dropout: float = 0.4

    def __post_init__(self) -> None:
        _check_common(self, vn=False)


class DGCNN(nn.Module):
    """``(B, N, 3)`` points → logits ``(B, num_classes)`` (not rotation-invariant)."""

    def __init__(self, cfg: DGCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ins = [3, *cfg.channels[:-1]]
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c0, c1, 1, bias=False), nn.BatchNorm2d(c1),
                          nn.LeakyReLU(cfg.negative_slope))
            for c0, c1 in zip(ins, cfg.channels, strict=True))
        self.embed = nn.Sequential(nn.Conv1d(sum(cfg.channels), cfg.embed, 1, bias=False),
                                   nn.BatchNorm1d(cfg.embed), nn.LeakyReLU(cfg.negative_slope))
        self.head = _head(2 * cfg.embed, cfg.head, cfg.num_classes, cfg.dropout)

    def forward(self, points: Tensor) -> Tensor:
        check_cloud_batch(points, self.cfg.k)
        h = points.transpose(1, 2)
        outs = []
        for conv in self.convs:
            h = conv(_edge_features(h, knn_indices(h, self.cfg.k))).amax(-1)
            outs.append(h)
        return self.head(_max_mean(self.embed(torch.cat(outs, 1))))


@register_model("dgcnn", DGCNNConfig)
def build_dgcnn(cfg: DGCNNConfig) -> nn.Module:
    return DGCNN(cfg)
