"""The toy model: a small MLP ``(B, in_dim) -> (B, out_dim)`` used by the toy regression
task to test the training engine end to end."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError
from equivision.models import register_model


@dataclass
class ToyMLPConfig:
    in_dim: int = 2
    hidden: int = 32
    depth: int = 2
    """Hidden layers."""
    out_dim: int = 1

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("in_dim", "hidden", "depth", "out_dim"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)


class ToyMLP(nn.Module):
    """Linear + tanh layers; ``(B, in_dim) -> (B, out_dim)``."""

    def __init__(self, cfg: ToyMLPConfig) -> None:
        super().__init__()
        dims = [cfg.in_dim] + [cfg.hidden] * cfg.depth
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.Tanh()]
        layers.append(nn.Linear(dims[-1], cfg.out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("toy_mlp", ToyMLPConfig)
def build_toy_mlp(cfg: ToyMLPConfig) -> ToyMLP:
    return ToyMLP(cfg)
