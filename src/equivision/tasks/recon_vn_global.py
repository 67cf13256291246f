"""The ``recon-vn-global`` task: train the globally conditioned VN displacement field
(``equivision train recon-vn-global``).

The same data as PEIF's ``recon`` task (:mod:`equivision.tasks.recon`: the same sources, the
same prepared cache and held-out shapes, the same target, the exact displacement from each
near-surface query to the surface), but each item gives the *whole* cloud instead of
per-query patches: ``encoder_points`` points of the shape's input cloud (a random subset fixed
by the item's index) and ``queries_per_item`` of its queries. No rotation augmentation is
needed: the field is SE(3)-equivariant by construction, so training in the canonical poses
covers every pose.

Loss (``loss``): ``"l2"`` (default), the mean squared distance between predicted and exact
displacement in units of 1 % of the box, ``|(Δ̂ − Δ)/0.01|²``; or ``"l1"``, PEIF's L1. From the
zero field the network starts at, L1 stays in its median basin: fitting one procedural shape
(300 Adam steps, lr 1e-3, 1,024 queries a step, a small model) the mean angle to the true
displacement went 90° → 23° with L2 and stayed at 87° with L1. Either way the logged
``l1`` is PEIF's L1, so both tasks' figures compare. Eval metrics: ``l1``, ``udf_error``
(mean | |Δ̂| − |Δ| |, unit-box units) and ``angle_deg`` (mean angle between predicted and true
displacement for queries farther than 0.005 from the surface).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from equivision.data.seeds import stream_seed
from equivision.errors import ConfigError
from equivision.geometry import half_space_crop
from equivision.models.vn_global_field import VNGlobalFieldConfig
from equivision.recon.data import PrepConfig, load_prepared
from equivision.tasks.recon import ReconDataFields, recon_sources
from equivision.training.tasks import Task, register_task


@dataclass
class ReconVNGlobalConfig(ReconDataFields):
    """The data fields are PEIF's (:class:`~equivision.tasks.recon.ReconDataFields`)."""

    loss: str = "l2"
    """``"l2"`` or ``"l1"`` (see the module doc)."""
    partial_fraction: float = 0.0
    """Share of training items whose encoder cloud is a half-space crop of the shape's cloud
    (:func:`~equivision.geometry.half_space_crop`, a seeded random plane through the centroid)
    while the queries and targets stay those of the whole shape: the field learns to complete
    what a partial cloud does not show. Evaluation items are always whole clouds."""
    model: VNGlobalFieldConfig = field(default_factory=VNGlobalFieldConfig)

    def __post_init__(self) -> None:
        self.check_data_fields(self.model.k)
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"task.loss must be 'l1' or 'l2', got {self.loss!r}")
        if isinstance(self.partial_fraction, bool) or not 0 <= self.partial_fraction <= 1:
            raise ConfigError(f"task.partial_fraction must be in [0, 1], got {self.partial_fraction!r}")


class CloudQueries(Dataset):
    """Items of prepared shapes as whole clouds: ``len = shapes × repeats``; each item is
    ``{"points": (encoder_points, 3), "queries": (Q, 3), "target": (Q, 3)}``."""

    def __init__(self, paths: list[Path], n_points: int, queries_per_item: int, repeats: int,
                 seed: int, partial_fraction: float = 0.0) -> None:
        self.paths, self.n_points, self.n_q, self.repeats, self.seed = (
            paths, n_points, queries_per_item, repeats, seed)
        self.partial_fraction = partial_fraction

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        data = load_prepared(self.paths[i % len(self.paths)])
        g = torch.Generator().manual_seed(stream_seed(self.seed, i))

        def subset(n_all: int, n: int) -> Tensor:
            pick = torch.randperm(n_all, generator=g)[:n]
            return pick if len(pick) == n else torch.randint(n_all, (n,), generator=g)

        pick = subset(data["queries"].shape[0], self.n_q)
        cloud = data["cloud"]
        # the crop draws from its own stream: an item's queries do not depend on it
        gc = torch.Generator().manual_seed(stream_seed(self.seed + 1, i))
        if self.partial_fraction > 0 and float(torch.rand((), generator=gc)) < self.partial_fraction:
            cloud = half_space_crop(cloud, torch.randn(3, generator=gc, dtype=torch.float64))[0]
        cloud = cloud[subset(cloud.shape[0], self.n_points)]
        return {"points": cloud.float(), "queries": data["queries"][pick].float(),
                "target": data["displacements"][pick].float()}


@register_task("recon-vn-global")
class ReconVNGlobalTask(Task):
    config_cls = ReconVNGlobalConfig
    model_name = "vn_global_field"
    best_metric, best_mode = "l1", "min"

    _loss: str = "l2"  # set from the config when the model is built for a run

    def build_model(self, cfg: ReconVNGlobalConfig) -> torch.nn.Module:
        self._loss = cfg.loss
        return super().build_model(cfg)

    def datasets(self, cfg: ReconVNGlobalConfig) -> tuple[Dataset, Dataset]:
        from equivision.recon.data import prepare_dataset

        train_src, eval_src, _ = recon_sources(cfg)  # type: ignore[arg-type]  # reads only the data fields
        prep = PrepConfig(n_points=cfg.n_points, noise=cfg.noise, n_queries=cfg.prep_queries)
        root = Path(cfg.data_dir)
        train_paths = prepare_dataset(train_src, root, prep, seed=cfg.data_seed)
        eval_paths = prepare_dataset(eval_src, root, prep, seed=cfg.data_seed)
        n = min(cfg.model.encoder_points, cfg.n_points)
        return (CloudQueries(train_paths, n, cfg.queries_per_item, cfg.repeats, cfg.data_seed,
                             cfg.partial_fraction),
                CloudQueries(eval_paths, n, cfg.queries_per_item, 1, cfg.data_seed + 1))

    def loss(self, model: torch.nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        pred = model(batch["points"], batch["queries"])
        target = batch["target"]
        l1 = (pred - target).abs().sum(-1).mean()
        loss = l1 if self._loss == "l1" else ((pred - target) / 0.01).square().sum(-1).mean()
        with torch.no_grad():
            udf_err = (pred.norm(dim=-1) - target.norm(dim=-1)).abs().mean()
            far = target.norm(dim=-1) > 0.005
            cos = torch.nn.functional.cosine_similarity(pred[far], target[far], dim=-1).clamp(-1, 1)
            angle = torch.rad2deg(torch.acos(cos)).mean() if bool(far.any()) else torch.zeros(())
        return loss, {"l1": l1.detach(), "udf_error": udf_err, "angle_deg": angle}
