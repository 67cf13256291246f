"""The toy regression task: fit ``y = sin(πx₁)·cos(πx₂) + noise`` on ``[-1, 1]²`` with a
small MLP. It exists to test the training engine end to end in seconds on a CPU, and is
the complete minimal example of the task contract (see :mod:`equivision.training.tasks`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset, TensorDataset

from equivision.errors import ConfigError
from equivision.models.toy import ToyMLPConfig
from equivision.training.config import check_fields
from equivision.training.tasks import Task, register_task


@dataclass
class ToyConfig:
    n_train: int = 512
    n_eval: int = 256
    noise: float = 0.05
    """Standard deviation of the Gaussian noise added to the targets."""
    data_seed: int = 1234
    model: ToyMLPConfig = field(default_factory=ToyMLPConfig)

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if self.n_train < 1 or self.n_eval < 1:
            raise ConfigError("task.n_train and task.n_eval must be >= 1")
        if not math.isfinite(self.noise) or self.noise < 0:
            raise ConfigError(f"task.noise must be a finite number >= 0, got {self.noise}")
        if self.model.in_dim != 2 or self.model.out_dim != 1:
            raise ConfigError("the toy task maps 2 inputs to 1 output: task.model.in_dim "
                              "must be 2 and task.model.out_dim 1")


def toy_target(x: torch.Tensor) -> torch.Tensor:
    """``(N, 2) -> (N, 1)``: sin(π x₁) cos(π x₂)."""
    return (torch.sin(math.pi * x[:, :1]) * torch.cos(math.pi * x[:, 1:2]))


@register_task("toy")
class ToyTask(Task):
    config_cls = ToyConfig
    model_name = "toy_mlp"
    description = "Toy regression y = sin(pi x1) cos(pi x2) on [-1, 1]^2; trains in seconds on a CPU"
    best_metric = "mse"
    best_mode = "min"

    def datasets(self, cfg: ToyConfig) -> tuple[Dataset, Dataset]:
        g = torch.Generator().manual_seed(cfg.data_seed)

        def make(n: int) -> TensorDataset:
            x = torch.rand(n, 2, generator=g) * 2 - 1
            y = toy_target(x) + cfg.noise * torch.randn(n, 1, generator=g)
            return TensorDataset(x, y)

        return make(cfg.n_train), make(cfg.n_eval)

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        mse = torch.nn.functional.mse_loss(model(x).float(), y)
        return mse, {"mse": mse.detach()}
