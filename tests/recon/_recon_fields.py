"""Analytic displacement fields shared by the reconstruction tests."""

from __future__ import annotations

from collections.abc import Callable

import torch


def sphere_field(unit: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``make_field`` for :func:`reconstruct_with_field`: the exact field of a sphere about the
    canonical origin whose radius is the normalised cloud's mean radius."""
    r = float(unit.norm(dim=-1).mean())

    def disp(q: torch.Tensor) -> torch.Tensor:
        n = q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (r - n) * q / n

    return disp
