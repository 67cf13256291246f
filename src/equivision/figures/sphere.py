"""Figures of signals on the sphere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def render_sphere_signal(signal: torch.Tensor, path: Path, title: str) -> None:
    """Save a PNG of a sphere signal ``(C, 2B, 2B)`` (C ≤ 2: distance, normal cosine):
    equirectangular maps of each channel and the distance channel on a 3D sphere."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from equivision.io.atomic import atomic_path
    from equivision.sphere import Grid

    b = signal.shape[-1] // 2
    names = ["distance to first hit (÷ radius; 2 = miss)", "|cos| ray vs surface normal"]
    fig = plt.figure(figsize=(13, 3.8))
    for c in range(signal.shape[0]):
        ax = fig.add_subplot(1, 3, c + 1)
        im = ax.imshow(
            signal[c].numpy(), cmap="viridis" if c == 0 else "magma", extent=(0, 360, 180, 0), aspect="auto"
        )
        ax.set_xlabel("azimuth φ (°)")
        ax.set_ylabel("colatitude θ (°)")
        ax.set_title(names[c] if c < len(names) else f"channel {c}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
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
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


__all__ = ["render_sphere_signal"]
