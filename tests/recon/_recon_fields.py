"""Analytic displacement fields and tiny field networks shared by the reconstruction tests."""

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


def tiny_peif():
    """An untrained PEIF small enough for unit tests (``k = 8``)."""
    from equivision.models.peif import PEIFConfig, PEIFNet

    return PEIFNet(PEIFConfig(k=8, feature_dim=8, top_k=2, memory_heads=1, memory_items=4,
                              mlp_a=[16], mlp_d=[16]))


def tiny_vn_global_field():
    """An untrained VN global field small enough for unit tests (``k = 8``)."""
    from equivision.models.vn_global_field import VNGlobalField, VNGlobalFieldConfig

    return VNGlobalField(VNGlobalFieldConfig(k=8, channels=[4, 8, 16], latent=8, frame_channels=3, hidden=32,
                                             blocks=2))
