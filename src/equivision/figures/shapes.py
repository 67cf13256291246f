"""Figures of 3D shapes: point clouds and meshes drawn +y up, in a cube around them.

Every 3D view here draws ``(x, z, y)`` on matplotlib's ``(x, y, z)`` axes, so the shapes'
``+y`` (ShapeNet's and the procedural shapes' up) is up on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from equivision.figures._mpl import pyplot, save_figure
from equivision.io.meshes import Mesh


def scatter_cloud(ax: Any, points: Tensor, *, size: float) -> None:
    """Points ``(N, 3)`` on a 3D axis, coloured by height ``y``."""
    ax.scatter(points[:, 0], points[:, 2], points[:, 1], s=size, c=points[:, 1], cmap="viridis")


def draw_mesh(ax: Any, mesh: Mesh, *, color: str) -> None:
    """A triangle mesh on a 3D axis, flat colour with matplotlib's shading."""
    v, f = mesh.vertices.detach().cpu().numpy(), mesh.faces.cpu().numpy()
    ax.plot_trisurf(v[:, 0], v[:, 2], f, v[:, 1], color=color, linewidth=0, shade=True)


def frame_cube(ax: Any, center: Sequence[float], half: float) -> None:
    """Show the cube of half side ``half`` about ``center`` ``(x, y, z)``, equal aspect, no axes."""
    for setlim, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), (0, 2, 1), strict=True):
        setlim(float(center[c]) - half, float(center[c]) + half)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()


def _save_row(path: str | Path, items: Sequence[tuple[str, Any]], draw: Callable[[Any, Any], None], *,
              half: float, panel_size: tuple[float, float], title_size: int, dpi: int) -> None:
    plt = pyplot()
    fig = plt.figure(figsize=(panel_size[0] * len(items), panel_size[1]))
    for i, (title, item) in enumerate(items):
        ax = fig.add_subplot(1, len(items), i + 1, projection="3d")
        draw(ax, item)
        ax.set_title(title, fontsize=title_size)
        frame_cube(ax, (0.0, 0.0, 0.0), half)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


def save_cloud_row(
    path: str | Path, clouds: Sequence[tuple[str, Tensor]], *, half: float = 0.6, size: float = 0.5,
    dpi: int = 110,
) -> None:
    """A PNG of point clouds ``(N, 3)`` side by side (in the cube of half side ``half`` about
    the origin), each under its title."""
    _save_row(path, clouds, lambda ax, c: scatter_cloud(ax, c, size=size), half=half, panel_size=(2.5, 2.8),
              title_size=7, dpi=dpi)


def save_mesh_row(
    path: str | Path, meshes: Sequence[tuple[str, Mesh]], *, half: float = 0.55, color: str = "#7aa6d6",
    dpi: int = 100,
) -> None:
    """A PNG of meshes side by side (in the cube of half side ``half`` about the origin), each
    under its title."""
    _save_row(path, meshes, lambda ax, m: draw_mesh(ax, m, color=color), half=half, panel_size=(1.5, 3),
              title_size=8, dpi=dpi)


def save_reconstruction_preview(points: Tensor, mesh: Mesh, path: str | Path, *, title: str = "") -> None:
    """A PNG with the input cloud ``(N, 3)`` (up to 8,000 of its points, a fixed choice)
    beside the reconstructed mesh, in the same view: the cube around the cloud."""
    plt = pyplot()
    p = points.detach().cpu().double()
    center = (p.amax(0) + p.amin(0)) / 2
    half = float((p.amax(0) - p.amin(0)).max()) / 2 * 1.05
    fig = plt.figure(figsize=(9, 4.5))
    for i, what in enumerate(("input cloud", "reconstruction")):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        if i == 0:
            sub = p[torch.randperm(len(p), generator=torch.Generator().manual_seed(0))[:8000]]
            scatter_cloud(ax, sub, size=0.3)
        else:
            draw_mesh(ax, Mesh(mesh.vertices.detach().cpu().double(), mesh.faces), color="#8fb3de")
        ax.set_title(what + (f" ({len(p)} points)" if i == 0 else f" ({len(mesh.faces)} faces)"), fontsize=9)
        frame_cube(ax, center.tolist(), half)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


__all__ = [
    "draw_mesh",
    "frame_cube",
    "save_cloud_row",
    "save_mesh_row",
    "save_reconstruction_preview",
    "scatter_cloud",
]
