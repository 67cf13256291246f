"""The ``rotmnist`` task: digit classification under rotations or rescaling with the models
of :mod:`equivision.models.gcnn` (``equivision train rotmnist``, ``equivision eval rotmnist``).

Data: :mod:`equivision.data.rotmnist` (fixed seeded 8,000 / 2,000 split, protocols A, B and
"scale"). Eval metrics, in percent: ``error`` on the protocol's test set (the best-checkpoint
metric), ``error_upright`` on the upright test digits and ``error_rot90`` on the test digits
rotated by random multiples of 90°.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from equivision.data.rotmnist import (
    PROTOCOLS,
    RandomlyRescaled,
    RandomlyRotated,
    RotMNISTSplit,
    make_split,
)
from equivision.errors import ConfigError
from equivision.models.gcnn import GCNNConfig
from equivision.training.config import check_fields
from equivision.training.tasks import Task, register_task

if __name__ == "__main__":
    # The experiment's old command, forwarded before this module registers its tasks: the
    # experiment imports this module under its real name, which registers them once.
    import runpy
    import sys

    print("note: python -m equivision.tasks.rotmnist is deprecated; use "
          "python -m equivision.experiments.rotmnist", file=sys.stderr)
    runpy.run_module("equivision.experiments.rotmnist", run_name="__main__", alter_sys=True)


@dataclass
class RotMNISTConfig:
    protocol: str = "A"
    """A: train and test rotated; B: train upright, test rotated; scale: train and test
    shrunk by [0.3, 1]; scale_B: train full size, test shrunk."""
    split_seed: int = 0
    transform_seed: int = 1
    n_train: int = 8000
    n_test: int = 2000
    augment: bool = False
    """Protocols A and scale: draw a fresh angle (factor) for every training digit at every
    epoch instead of one fixed per digit; the test set is unchanged."""
    model: GCNNConfig = field(default_factory=GCNNConfig)

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"task.protocol must be one of {', '.join(PROTOCOLS)}, got "
                              f"{self.protocol!r}")
        if self.n_train < 1 or self.n_test < 1 or self.n_train + self.n_test > 10_000:
            raise ConfigError("task.n_train and task.n_test must be >= 1 and sum to at most "
                              "10,000 (the digits available)")
        if self.model.in_channels != 1 or self.model.num_classes != 10:
            raise ConfigError("rotmnist classifies 1-channel digits into 10 classes: "
                              "task.model.in_channels must be 1 and num_classes 10")
        if self.augment and self.protocol not in ("A", "scale"):
            raise ConfigError(f"task.augment applies to protocols A and scale (their training "
                              f"digits are transformed); protocol {self.protocol!r} trains on "
                              f"untransformed digits")


@lru_cache(maxsize=4)
def _split(protocol: str, split_seed: int, transform_seed: int, n_train: int,
           n_test: int) -> RotMNISTSplit:
    return make_split(protocol, split_seed=split_seed, transform_seed=transform_seed,
                      n_train=n_train, n_test=n_test)


@register_task("rotmnist")
class RotMNISTTask(Task):
    config_cls = RotMNISTConfig
    model_name = "gcnn"
    best_metric = "error"
    best_mode = "min"

    def datasets(self, cfg: RotMNISTConfig) -> tuple[Dataset, Dataset]:
        s = _split(cfg.protocol, cfg.split_seed, cfg.transform_seed, cfg.n_train, cfg.n_test)
        train: Dataset = TensorDataset(s.train_images, s.train_labels)
        if cfg.augment and cfg.protocol == "A":
            train = RandomlyRotated(s.train_source, s.train_labels)
        elif cfg.augment and cfg.protocol == "scale":
            train = RandomlyRescaled(s.train_source, s.train_labels)
        return (train,
                TensorDataset(s.test_images, s.test_upright, s.test_rot90, s.test_labels))

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[-1]
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        err = (logits.argmax(-1) != y).float().mean() * 100
        return loss, {"error": err.detach()}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]:
        from equivision.training.trainer import to_device

        wrong = {"error": 0, "error_upright": 0, "error_rot90": 0}
        loss_sum, count = 0.0, 0
        for batch in loader:
            x, x_up, x_90, y = to_device(batch, device)
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            wrong["error"] += int((logits.argmax(-1) != y).sum())
            wrong["error_upright"] += int((model(x_up).argmax(-1) != y).sum())
            wrong["error_rot90"] += int((model(x_90).argmax(-1) != y).sum())
            count += len(y)
        if count == 0:
            raise ConfigError("rotmnist: the test set is empty")
        return {"loss": loss_sum / count, **{k: 100.0 * v / count for k, v in wrong.items()}}
