"""Figures of signals on the sphere: equirectangular maps of ``(2B, 2B)`` grid samples
(colatitude down, azimuth across) and the signal painted on a 3D sphere."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equivision.figures._mpl import pyplot, save_figure
from equivision.sphere import Grid


def equirect_map(fig: Any, ax: Any, values: torch.Tensor, *, cmap: str, title: str) -> None:
    """Samples ``(2B, 2B)`` of the Driscoll–Healy grid as a map on ``ax``, with a colour bar."""
    im = ax.imshow(values.numpy(), cmap=cmap, extent=(0, 360, 180, 0), aspect="auto")
    ax.set_xlabel("azimuth φ (°)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)


def render_sphere_signal(signal: torch.Tensor, path: Path, title: str) -> None:
    """Save a PNG of a sphere signal ``(C, 2B, 2B)`` (C ≤ 2: distance, normal cosine):
    equirectangular maps of each channel and the distance channel on a 3D sphere."""
    plt = pyplot()
    b = signal.shape[-1] // 2
    names = ["distance to first hit (÷ radius; 2 = miss)", "|cos| ray vs surface normal"]
    fig = plt.figure(figsize=(13, 3.8))
    for c in range(signal.shape[0]):
        ax = fig.add_subplot(1, 3, c + 1)
        equirect_map(fig, ax, signal[c], cmap="viridis" if c == 0 else "magma",
                     title=names[c] if c < len(names) else f"channel {c}")
        ax.set_ylabel("colatitude θ (°)")
    ax = fig.add_subplot(1, 3, 3, projection="3d")
    pts = Grid(b).points().numpy()
    vals = signal[0].numpy()
    colors = plt.get_cmap("viridis")((vals - vals.min()) / max(np.ptp(vals), 1e-9))
    ax.plot_surface(
        pts[..., 0],
        pts[..., 1],
        pts[..., 2],
        facecolors=colors,
        rstride=1,
        cstride=1,
        linewidth=0,
        antialiased=False,
        shade=False,
    )
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    ax.set_title("distance channel on the sphere", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def save_sphere_maps(
    path: str | Path, panels: Sequence[tuple[str, torch.Tensor, str]], title: str, *, dpi: int = 110
) -> None:
    """A PNG of grid signals ``(2B, 2B)`` side by side as equirectangular maps; ``panels`` are
    ``(title, values, colour map)``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.25 * len(panels), 3.2), squeeze=False)
    for ax, (name, values, cmap) in zip(axes[0], panels, strict=True):
        equirect_map(fig, ax, values, cmap=cmap, title=name)
    axes[0, 0].set_ylabel("colatitude θ (°)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


__all__ = ["equirect_map", "render_sphere_signal", "save_sphere_maps"]
