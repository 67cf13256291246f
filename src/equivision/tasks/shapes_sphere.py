"""Rotation-invariant 3D shape classification from ray-cast spherical signals.

``equivision train shapes-sphere`` trains the spherical CNN; ``shapes-sphere-baseline`` trains
the non-equivariant 2D CNN on the same equirectangular maps (:mod:`equivision.models.equirect_cnn`).
Data and protocols: :mod:`equivision.data.shapes_sphere`. Eval metric: ``accuracy`` (percent)
on the protocol's test signals (the best-checkpoint metric).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from equivision.data.shapes_sphere import COLLECTIONS, PROTOCOLS, SphereDataConfig, make_sphere_split
from equivision.errors import ConfigError
from equivision.models.equirect_cnn import EquirectCNNConfig
from equivision.models.spherical_cnn import SphericalCNNConfig
from equivision.training.tasks import Task, register_task


@dataclass
class _DataFields:
    collection: str = "shapenet10"
    protocol: str = "so3-so3"
    bandwidth: int = 32
    train_rotations: int = 16
    test_rotations: int = 4
    procedural_train_per_family: int = 12
    procedural_test_per_family: int = 4
    rotation_seed: int = 0
    cache_dir: str = "runs/sphere-data"

    def data_config(self) -> SphereDataConfig:
        if self.collection not in COLLECTIONS or self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"task.collection must be one of {COLLECTIONS} and task.protocol one of {PROTOCOLS}"
            )
        return SphereDataConfig(
            self.collection,
            self.protocol,
            self.bandwidth,
            self.train_rotations,
            self.test_rotations,
            self.procedural_train_per_family,
            self.procedural_test_per_family,
            self.rotation_seed,
        )


@dataclass
class ShapesSphereConfig(_DataFields):
    model: SphericalCNNConfig = field(default_factory=SphericalCNNConfig)

    def __post_init__(self) -> None:
        if self.model.bandwidths[0] != self.bandwidth:
            raise ConfigError(
                f"task.model.bandwidths[0] ({self.model.bandwidths[0]}) must equal "
                f"task.bandwidth ({self.bandwidth}): the network reads that grid"
            )


@dataclass
class ShapesSphereBaselineConfig(_DataFields):
    model: EquirectCNNConfig = field(default_factory=EquirectCNNConfig)


@lru_cache(maxsize=4)
def _split(cfg: SphereDataConfig, cache_dir: str):
    return make_sphere_split(cfg, cache_dir)


class _ShapesSphereTask(Task):
    best_metric, best_mode = "accuracy", "max"

    def datasets(self, cfg: _DataFields) -> tuple[Dataset, Dataset]:
        split = _split(cfg.data_config(), cfg.cache_dir)
        n_classes = len(split.classes)
        if cfg.model.num_classes != n_classes:  # type: ignore[attr-defined]
            raise ConfigError(f"task.model.num_classes must be {n_classes} for {cfg.collection}")
        return TensorDataset(split.train_x, split.train_y), TensorDataset(split.test_x, split.test_y)

    def loss(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean() * 100
        return loss, {"accuracy": acc.detach()}


@register_task("shapes-sphere")
class ShapesSphereTask(_ShapesSphereTask):
    config_cls = ShapesSphereConfig
    model_name = "spherical_cnn"


@register_task("shapes-sphere-baseline")
class ShapesSphereBaselineTask(_ShapesSphereTask):
    config_cls = ShapesSphereBaselineConfig
    model_name = "equirect_cnn"
