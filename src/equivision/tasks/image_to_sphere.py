"""Training the image network of the cross-domain embeddings on a view dataset.

``equivision train image-to-sphere``: :class:`~equivision.models.image_to_sphere.ImageToSphere`
learns ``Ψ(image of R·M) ≈ Φ(R·M)``, the frozen teacher's maps of the posed mesh, stored as
the targets of a view dataset (:mod:`equivision.tasks.views`, ``docs/views.md``). The loss
is the area-weighted Huber loss with breakpoint ``delta`` (the paper's 1) between the
network's maps and the targets scaled by ``target_scale``. The eval metrics are the loss and
the area-weighted relative L2 error of the maps (``rel_l2``, scale-free), on a second view
dataset (another split, or the same folder for a smoke run).

The image channels fed to the network are ``channels``, a subset of the dataset's, in the
dataset's order; the model's ``in_channels`` must equal their number and its bandwidth and
``out_channels`` the targets', which is checked when the datasets are opened (a network of
another shape would train against the wrong maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import Dataset

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError
from equivision.models.image_to_sphere import ImageToSphereConfig
from equivision.nn.losses import area_weighted_huber
from equivision.sphere.grid import odd_part
from equivision.tasks.views import ViewDataset
from equivision.training.tasks import Task, register_task


@dataclass
class ImageToSphereTaskConfig:
    train_views: str = "runs/views-mn10-train-s1"
    eval_views: str = "runs/views-mn10-test-s1"
    channels: list[str] = field(default_factory=lambda: ["shading", "silhouette", "depth"])
    delta: float = 1.0
    """Breakpoint of the Huber loss."""
    target_scale: float = 1.0
    """Targets are multiplied by this before the loss (the network learns scaled maps;
    correlation-based pose does not depend on a global scale)."""
    max_eval_items: int = 0
    """Evaluate on the first N items of ``eval_views`` (0: all)."""
    odd_weight: float = 0.0
    """Weight of a second Huber term on the maps' odd parts ``(f(x) − f(−x))/2`` (the
    odd-degree harmonics, :func:`~equivision.sphere.grid.odd_part`), which alone decide between
    the two poses a half turn apart of a mirror-symmetric object; 0: the paper's loss only."""
    model: ImageToSphereConfig = field(default_factory=ImageToSphereConfig)

    def __post_init__(self) -> None:
        check_fields(self, "task")
        require_positive(self.delta, "task.delta", error=ConfigError)
        require_positive(self.target_scale, "task.target_scale", error=ConfigError)
        if not (math.isfinite(self.odd_weight) and self.odd_weight >= 0):
            raise ConfigError(f"task.odd_weight must be a finite number >= 0, got {self.odd_weight}")
        if self.max_eval_items < 0:
            raise ConfigError(f"task.max_eval_items must be >= 0, got {self.max_eval_items}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"task.channels must be non-empty and without repeats, got {self.channels}")
        if len(self.channels) != self.model.in_channels:
            raise ConfigError(f"task.channels has {len(self.channels)} entries but model.in_channels is "
                              f"{self.model.in_channels}")


class ImageViews(Dataset):
    """``(image (K, S, S), target (C, 2b, 2b))`` of a view dataset, the image reduced to
    the chosen channels and the target scaled."""

    def __init__(self, views: ViewDataset, channel_index: list[int], scale: float,
                 limit: int = 0) -> None:
        self.views, self.index, self.scale = views, channel_index, scale
        self.n = len(views) if limit == 0 else min(limit, len(views))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        image, target, _, _ = self.views[i]
        return image[self.index], target * self.scale


def open_views(folder: str, cfg: ImageToSphereTaskConfig, limit: int = 0) -> ImageViews:
    """The view dataset at ``folder`` as training pairs, checked against the model config."""
    views = ViewDataset(folder)
    m = views.manifest
    index = views.channel_index(cfg.channels)
    views.check_image_size(cfg.model.image_size)
    _, target, _, _ = views[0]
    c, n = int(target.shape[0]), int(target.shape[-1])
    if (c, n // 2) != (cfg.model.out_channels, cfg.model.bandwidth):
        raise ConfigError(f"{folder} holds targets of {c} channels at bandwidth {n // 2} (teacher "
                          f"{m['teacher']['name']}, layer {m['teacher']['layer']}); the model predicts "
                          f"{cfg.model.out_channels} channels at bandwidth {cfg.model.bandwidth}")
    return ImageViews(views, index, cfg.target_scale, limit)


def map_rel_l2(pred: Tensor, target: Tensor, *, pooled: bool = False) -> Tensor:
    """Mean over the batch of the area-weighted relative L2 error of maps ``(B, C, 2b, 2b)``;
    ``pooled``: one ratio of the batch's summed squares instead (for parts such as the odd
    part, which can be near zero for a single map and would dominate a mean of ratios)."""
    n = pred.shape[-2]
    theta = math.pi * (2 * torch.arange(n, dtype=pred.dtype, device=pred.device) + 1) / (2 * n)
    w = theta.sin()[:, None]
    num = ((pred - target) ** 2 * w).sum(dim=(-3, -2, -1))
    den = (target ** 2 * w).sum(dim=(-3, -2, -1))
    if pooled:
        return (num.sum() / den.sum().clamp_min(torch.finfo(pred.dtype).tiny)).sqrt()
    return (num / den.clamp_min(torch.finfo(pred.dtype).tiny)).sqrt().mean()


@register_task("image-to-sphere")
class ImageToSphereTask(Task):
    """Image network regressing a spherical CNN teacher's maps from rendered views."""

    config_cls = ImageToSphereTaskConfig
    model_name = "image_to_sphere"
    best_metric, best_mode = "rel_l2", "min"

    def datasets(self, cfg: ImageToSphereTaskConfig) -> tuple[Dataset, Dataset]:
        return (open_views(cfg.train_views, cfg),
                open_views(cfg.eval_views, cfg, cfg.max_eval_items))

    def loss(self, model: torch.nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        image, target = batch
        pred = model(image)
        loss = area_weighted_huber(pred, target, delta=self._delta)
        odd_p, odd_t = odd_part(pred), odd_part(target)
        if self._odd_weight > 0:
            loss = loss + self._odd_weight * area_weighted_huber(odd_p, odd_t, delta=self._delta)
        return loss, {"rel_l2": map_rel_l2(pred.detach(), target),
                      "odd_rel_l2": map_rel_l2(odd_p.detach(), odd_t, pooled=True)}

    _delta: float = 1.0  # set from the config when the model is built for a run
    _odd_weight: float = 0.0

    def build_model(self, cfg: ImageToSphereTaskConfig) -> torch.nn.Module:
        self._delta = cfg.delta
        self._odd_weight = float(cfg.odd_weight)
        return super().build_model(cfg)
