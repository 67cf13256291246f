"""Training the novel-view decoders of the cross-domain embeddings on a view dataset.

* ``view-synthesis``: :class:`~equivision.models.sphere_to_image.SphereToImage` learns
  ``Γ(Ψ(I)) ≈ I`` with an L1 loss on the images (plus ``ssim_weight`` · (1 − SSIM) when
  set), its input the *frozen* image network's
  embedding of the same view (``embedder``: a run folder or packaged name of an
  ``image_to_sphere`` network, loaded in eval mode; the paper's choice). The embedding is
  reduced to degrees ``< b`` first (:func:`~equivision.models.synthesis.band_limit`),
  as every rotated embedding is at synthesis time.
* ``view-synthesis-teacher``: the same decoder trained on the teacher's maps of the view
  (the dataset's targets, scaled by ``target_scale`` as the embedder was trained), to
  compare with training on the embedding; at synthesis time it reads the embedder's maps.
* ``view-synthesis-baseline``: :class:`~equivision.models.view_baseline.ViewBaseline`
  (Tatarchenko et al. style) on pairs of views of one mesh: input view ``i``, target view
  ``j ≠ i``, relative rotation ``Q = R_j R_iᵀ`` (the image of pose ``R_i`` turned by ``Q``
  shows ``R_j·M``). Training pairs draw ``j`` from the trainer's seeded RNG at each access
  (restored on resume); eval pairs are fixed by ``pair_seed`` and the item index.

``channels`` are the image channels the input network reads and ``targets`` those the
decoder writes, each a subset of the dataset's channels in the dataset's order. Eval
metrics: ``l1`` (mean absolute error over the images) and, when ``silhouette`` is a target,
``iou``, the silhouette IoU with both silhouettes thresholded at 0.5; with an SSIM term,
``ssim`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError
from equivision.metrics.images import ssim
from equivision.models.sphere_to_image import SphereToImageConfig
from equivision.models.view_baseline import ViewBaselineConfig
from equivision.tasks.views import ViewDataset
from equivision.training.tasks import Task, register_task

__all__ = ["silhouette_iou"]


def silhouette_iou(pred: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """Mean over the batch of the IoU of silhouettes ``(B, S, S)`` thresholded at
    ``threshold`` (two empty silhouettes count as IoU 1)."""
    p, t = pred > threshold, target > threshold
    inter = (p & t).sum(dim=(-2, -1)).float()
    union = (p | t).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).mean()


def _check_names(names: list[str], what: str) -> None:
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"task.{what} must be non-empty and without repeats, got {names}")


@dataclass
class _ViewFields:
    train_views: str = "runs/views-mn10-train-s1"
    eval_views: str = "runs/views-mn10-test-s1"
    targets: list[str] = field(default_factory=lambda: ["shading", "silhouette"])
    """Image channels the decoder writes."""
    max_eval_items: int = 0
    """Evaluate on the first N items of ``eval_views`` (0: all)."""

    def _check(self, out_channels: int) -> None:
        check_fields(self, "task")
        _check_names(self.targets, "targets")
        if self.max_eval_items < 0:
            raise ConfigError(f"task.max_eval_items must be >= 0, got {self.max_eval_items}")
        if len(self.targets) != out_channels:
            raise ConfigError(f"task.targets has {len(self.targets)} entries but model.out_channels is "
                              f"{out_channels}")


@dataclass
class ViewSynthesisTaskConfig(_ViewFields):
    embedder: str = "runs/i2s-mn10-s1"
    """Run folder or packaged name of the frozen ``image_to_sphere`` network."""
    channels: list[str] = field(default_factory=lambda: ["shading", "silhouette", "depth"])
    """Image channels the embedder reads."""
    ssim_weight: float = 0.0
    """Loss = L1 + ``ssim_weight`` · (1 − SSIM), SSIM averaged over the target channels
    (:func:`equivision.metrics.images.ssim`, scikit-image's definition); 0: L1 only."""
    model: SphereToImageConfig = field(default_factory=SphereToImageConfig)

    def __post_init__(self) -> None:
        self._check(self.model.out_channels)
        _check_names(self.channels, "channels")
        require_positive(self.ssim_weight, "task.ssim_weight", allow_zero=True, error=ConfigError)


@dataclass
class ViewSynthesisTeacherTaskConfig(_ViewFields):
    target_scale: float = 1.0
    """The teacher's maps are multiplied by this (use the embedder's ``target_scale``)."""
    model: SphereToImageConfig = field(default_factory=SphereToImageConfig)

    def __post_init__(self) -> None:
        self._check(self.model.out_channels)
        require_positive(self.target_scale, "task.target_scale", error=ConfigError)


@dataclass
class ViewBaselineTaskConfig(_ViewFields):
    channels: list[str] = field(default_factory=lambda: ["shading", "silhouette", "depth"])
    """Image channels the baseline reads."""
    pair_seed: int = 0
    model: ViewBaselineConfig = field(default_factory=ViewBaselineConfig)

    def __post_init__(self) -> None:
        self._check(self.model.out_channels)
        _check_names(self.channels, "channels")
        if len(self.channels) != self.model.in_channels:
            raise ConfigError(f"task.channels has {len(self.channels)} entries but model.in_channels is "
                              f"{self.model.in_channels}")


class _Views(Dataset):
    """``(input, image (K_out, S, S))`` of a view dataset: the input is the view's chosen
    channels, or (``maps=True``) its target maps times ``scale``."""

    def __init__(self, views: ViewDataset, inputs: list[int] | None, outputs: list[int], limit: int,
                 scale: float = 1.0) -> None:
        self.views, self.inputs, self.outputs, self.scale = views, inputs, outputs, scale
        self.n = len(views) if limit == 0 else min(limit, len(views))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        image, target, _, _ = self.views[i]
        x = target * self.scale if self.inputs is None else image[self.inputs]
        return x, image[self.outputs]


class ViewPairs(Dataset):
    """``(image_i (K_in, S, S), Q (3, 3), image_j (K_out, S, S))``: item ``k`` is view
    ``i = k % N`` of mesh ``k // N`` and another view ``j`` of the same mesh, ``Q = R_j R_iᵀ``.
    ``fixed_seed=None``: ``j`` is drawn from the global RNG at each access (training), else
    from ``(fixed_seed, k)``."""

    def __init__(self, views: ViewDataset, inputs: list[int], outputs: list[int], fixed_seed: int | None,
                 limit: int = 0) -> None:
        if views.views < 2:
            raise ConfigError(f"{views.folder} has {views.views} view per mesh; pairs need at least 2")
        self.views, self.inputs, self.outputs, self.fixed = views, inputs, outputs, fixed_seed
        self.n = len(views) if limit == 0 else min(limit, len(views))

    def __len__(self) -> int:
        return self.n

    def other_view(self, k: int) -> int:
        """The index of the target view paired with item ``k``."""
        from equivision.data.seeds import stream_seed

        n = self.views.views
        gen = None if self.fixed is None else torch.Generator().manual_seed(stream_seed(self.fixed, k))
        j = int(torch.randint(n - 1, (1,), generator=gen))
        i = k % n
        return (k - i) + (j if j < i else j + 1)

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= k < self.n:
            raise IndexError(k)
        image_i, _, r_i, _ = self.views[k]
        image_j, _, r_j, _ = self.views[self.other_view(k)]
        q = (r_j.double() @ r_i.double().T).float()
        return image_i[self.inputs], q, image_j[self.outputs]


def _check_maps(views: ViewDataset, cfg: SphereToImageConfig, source: str) -> None:
    _, target, _, _ = views[0]
    c, n = int(target.shape[0]), int(target.shape[-1])
    if (c, n // 2) != (cfg.in_channels, cfg.bandwidth):
        raise ConfigError(f"{source} gives {c} maps at bandwidth {n // 2}; the decoder reads "
                          f"{cfg.in_channels} maps at bandwidth {cfg.bandwidth}")


def _metrics(pred: Tensor, target: Tensor, targets: tuple[str, ...],
             ssim_weight: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    l1 = (pred - target).abs().mean()
    metrics = {"l1": l1.detach()}
    if "silhouette" in targets:
        k = targets.index("silhouette")
        metrics["iou"] = silhouette_iou(pred[:, k].detach(), target[:, k])
    if ssim_weight == 0:
        return l1, metrics
    s = ssim(pred, target).mean()
    metrics["ssim"] = s.detach()
    return l1 + ssim_weight * (1 - s), metrics


def load_embedder(cfg: ViewSynthesisTaskConfig, image_size: int) -> nn.Module:
    """The frozen embedder of ``cfg``, checked against the channels, the image size and the
    decoder's input (:class:`ConfigError` naming the mismatch)."""
    from equivision.models import load

    net = load(cfg.embedder, model="image_to_sphere")
    e = net.cfg
    if e.in_channels != len(cfg.channels):
        raise ConfigError(f"embedder {cfg.embedder} reads {e.in_channels} image channels; task.channels has "
                          f"{len(cfg.channels)} ({cfg.channels})")
    if e.image_size != image_size:
        raise ConfigError(f"embedder {cfg.embedder} reads {e.image_size}² images; the views are "
                          f"{image_size}²")
    if (e.out_channels, e.bandwidth) != (cfg.model.in_channels, cfg.model.bandwidth):
        raise ConfigError(f"embedder {cfg.embedder} writes {e.out_channels} maps at bandwidth {e.bandwidth}; "
                          f"the decoder reads {cfg.model.in_channels} at bandwidth {cfg.model.bandwidth}")
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


@register_task("view-synthesis")
class ViewSynthesisTask(Task):
    """Decoder from the frozen image network's spherical embedding back to the image (L1)."""

    config_cls = ViewSynthesisTaskConfig
    model_name = "sphere_to_image"
    description = "Decoder from a frozen image network's spherical embedding back to the view (L1)"
    best_metric, best_mode = "l1", "min"
    _embedder: nn.Module | None = None
    _targets: tuple[str, ...] = ()
    _ssim_weight: float = 0.0

    def datasets(self, cfg: ViewSynthesisTaskConfig) -> tuple[Dataset, Dataset]:
        out = []
        for folder, limit in ((cfg.train_views, 0), (cfg.eval_views, cfg.max_eval_items)):
            views = ViewDataset(folder)
            views.check_image_size(cfg.model.image_size)
            out.append(_Views(views, views.channel_index(cfg.channels, "channels"),
                              views.channel_index(cfg.targets, "targets"), limit))
        self._embedder = load_embedder(cfg, cfg.model.image_size)
        self._targets = tuple(cfg.targets)
        self._ssim_weight = float(cfg.ssim_weight)
        return out[0], out[1]

    @torch.no_grad()
    def embed(self, image: Tensor) -> Tensor:
        """Band-limited embeddings ``(B, C, 2b, 2b)`` of images ``(B, K, S, S)``."""
        from equivision.models.synthesis import band_limit

        if self._embedder is None:
            raise ConfigError("view-synthesis: the embedder is loaded with the datasets; "
                              "call datasets() first")
        self._embedder.to(image.device)
        return band_limit(self._embedder(image))

    def loss(self, model: torch.nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        image, target = batch
        return _metrics(model(self.embed(image)), target, self._targets, self._ssim_weight)


@register_task("view-synthesis-teacher")
class ViewSynthesisTeacherTask(Task):
    """Decoder from the teacher's spherical maps of a view back to the image (L1)."""

    config_cls = ViewSynthesisTeacherTaskConfig
    model_name = "sphere_to_image"
    description = "Decoder from the teacher's spherical maps of a view back to the view (L1)"
    best_metric, best_mode = "l1", "min"
    _targets: tuple[str, ...] = ()

    def datasets(self, cfg: ViewSynthesisTeacherTaskConfig) -> tuple[Dataset, Dataset]:
        out = []
        for folder, limit in ((cfg.train_views, 0), (cfg.eval_views, cfg.max_eval_items)):
            views = ViewDataset(folder)
            views.check_image_size(cfg.model.image_size)
            _check_maps(views, cfg.model, f"{folder} (teacher {views.manifest['teacher']['name']})")
            out.append(_Views(views, None, views.channel_index(cfg.targets, "targets"), limit,
                              cfg.target_scale))
        self._targets = tuple(cfg.targets)
        return out[0], out[1]

    def loss(self, model: torch.nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        maps, target = batch
        return _metrics(model(maps), target, self._targets)


@register_task("view-synthesis-baseline")
class ViewBaselineTask(Task):
    """Non-equivariant novel-view baseline (image, relative rotation) → image on view pairs (L1)."""

    config_cls = ViewBaselineTaskConfig
    model_name = "view_baseline"
    description = "Non-equivariant novel-view baseline: view and relative rotation to another view (L1)"
    best_metric, best_mode = "l1", "min"
    _targets: tuple[str, ...] = ()

    def datasets(self, cfg: ViewBaselineTaskConfig) -> tuple[Dataset, Dataset]:
        out = []
        splits = ((cfg.train_views, 0, None), (cfg.eval_views, cfg.max_eval_items, cfg.pair_seed))
        for folder, limit, seed in splits:
            views = ViewDataset(folder)
            views.check_image_size(cfg.model.image_size)
            out.append(ViewPairs(views, views.channel_index(cfg.channels, "channels"),
                                 views.channel_index(cfg.targets, "targets"), seed, limit))
        self._targets = tuple(cfg.targets)
        return out[0], out[1]

    def loss(self, model: torch.nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        image, rotation, target = batch
        return _metrics(model(image, rotation), target, self._targets)
