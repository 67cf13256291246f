"""The pose-regression baseline: a CNN regressing an image's absolute rotation, supervised by
the pose of each view of a view dataset.

``equivision train pose-regression``: :class:`~equivision.models.pose_regression.PoseRegression`
(the image-to-sphere encoder and a 6D rotation head) learns ``image of R·M ↦ R`` with the
canonical pose as supervision, which needs aligned meshes (ModelNet10 is). The embedding
method needs no poses; this baseline is given them. The loss is the chordal distance
``‖R̂ − R‖²_F`` (smooth everywhere; it equals ``8 sin²(θ/2)`` for an error angle ``θ``) or the
geodesic angle itself (``loss = "geodesic"``, clamped away from the arccos's infinite slopes);
eval metrics are the mean and median geodesic error in degrees and Acc@15/Acc@30.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from equivision.configio import check_fields
from equivision.errors import ConfigError
from equivision.models.pose_regression import PoseRegressionConfig
from equivision.tasks.views import ViewDataset
from equivision.training.batches import to_device
from equivision.training.tasks import Task, register_task

LOSSES = ("chordal", "geodesic")


@dataclass
class PoseRegressionTaskConfig:
    train_views: str = "runs/views-mn10-train-s1"
    eval_views: str = "runs/views-mn10-test-s1"
    channels: list[str] = field(default_factory=lambda: ["shading", "silhouette", "depth"])
    loss: str = "chordal"
    max_eval_items: int = 0
    """Evaluate on the first N items of ``eval_views`` (0: all)."""
    model: PoseRegressionConfig = field(default_factory=PoseRegressionConfig)

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if self.loss not in LOSSES:
            raise ConfigError(f"task.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.max_eval_items < 0:
            raise ConfigError(f"task.max_eval_items must be >= 0, got {self.max_eval_items}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"task.channels must be non-empty and without repeats, got {self.channels}")
        if len(self.channels) != self.model.in_channels:
            raise ConfigError(f"task.channels has {len(self.channels)} entries but model.in_channels is "
                              f"{self.model.in_channels}")


class PosedViews(Dataset):
    """``(image (K, S, S), rotation (3, 3))`` of a view dataset, the image reduced to the chosen
    channels."""

    def __init__(self, views: ViewDataset, channel_index: list[int], limit: int = 0) -> None:
        self.views, self.index = views, channel_index
        self.n = len(views) if limit == 0 else min(limit, len(views))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        image, _, rotation, _ = self.views[i]
        return image[self.index], rotation


def open_posed_views(folder: str, cfg: PoseRegressionTaskConfig, limit: int = 0) -> PosedViews:
    """The view dataset at ``folder`` as (image, pose) pairs, checked against the config."""
    views = ViewDataset(folder)
    views.check_image_size(cfg.model.image_size)
    return PosedViews(views, views.channel_index(cfg.channels), limit)


def geodesic_angle(pred: Tensor, truth: Tensor, eps: float = 1e-6) -> Tensor:
    """Angles ``(B,)`` in radians of ``truthᵀ pred`` for rotations ``(B, 3, 3)``; the cosine is
    clamped ``eps`` inside ``[−1, 1]`` so the gradient stays finite at 0 and π."""
    cos = ((pred * truth).sum(dim=(-2, -1)) - 1) / 2
    return torch.acos(cos.clamp(-1 + eps, 1 - eps))


@register_task("pose-regression")
class PoseRegressionTask(Task):
    """Regression baseline of the pose experiment: an image's absolute rotation from the
    image-to-sphere encoder and a 6D head."""

    config_cls = PoseRegressionTaskConfig
    model_name = "pose_regression"
    best_metric, best_mode = "median_deg", "min"
    _loss: str = "chordal"  # set from the config when the model is built for a run

    def build_model(self, cfg: PoseRegressionTaskConfig) -> torch.nn.Module:
        self._loss = cfg.loss
        return super().build_model(cfg)

    def datasets(self, cfg: PoseRegressionTaskConfig) -> tuple[Dataset, Dataset]:
        return (open_posed_views(cfg.train_views, cfg),
                open_posed_views(cfg.eval_views, cfg, cfg.max_eval_items))

    def loss(self, model: torch.nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        image, rotation = batch
        return self._loss_of(model(image), rotation)

    def _loss_of(self, pred: Tensor, rotation: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        angle = geodesic_angle(pred, rotation)
        chordal = ((pred - rotation) ** 2).sum(dim=(-2, -1))
        loss = angle.mean() if self._loss == "geodesic" else chordal.mean()
        deg = angle.detach() * (180 / math.pi)
        return loss, {"mean_deg": deg.mean(), "acc15": (deg < 15).float().mean(),
                      "acc30": (deg < 30).float().mean()}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        """The averages of :meth:`loss`'s metrics, and the median error over the whole eval set."""
        sums: dict[str, float] = {}
        degs: list[Tensor] = []
        for batch in loader:
            image, rotation = to_device(batch, device)
            pred = model(image)
            loss, metrics = self._loss_of(pred, rotation)
            n = image.shape[0]
            for k, v in {"loss": loss, **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            degs.append(geodesic_angle(pred, rotation).cpu() * (180 / math.pi))
        if not degs:
            raise ConfigError(f"task {self.name!r}: the eval dataset is empty")
        d = torch.cat(degs)
        out = {k: v / d.numel() for k, v in sums.items()}
        out["median_deg"] = float(d.median())
        return out
