"""Figures of 2D images: a row of images, and images beside their maps over a group."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from equivision.figures._mpl import pyplot, save_figure


def save_image_row(
    path: str | Path, views: Sequence[tuple[str, Tensor]], *, cmap: str = "gray",
    vmin: float | None = 0.0, vmax: float | None = 1.0, dpi: int = 110,
) -> None:
    """A PNG of images ``(H, W)`` side by side, each under its title."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(views), figsize=(2.0 * len(views), 2.4))
    for ax, (title, img) in zip(axes, views, strict=True):
        ax.imshow(img.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


def save_group_maps(
    path: str | Path, rows: Sequence[tuple[Tensor, Tensor, str]], map_titles: Sequence[str], title: str,
    *, dpi: int = 110,
) -> None:
    """A PNG with one row per input: the image ``(H, W)`` (grey, under its label) then its
    first four maps ``(G, H, W)`` along the group axis, all on the first row's signed colour
    scale so that the rows compare."""
    plt = pyplot()
    vmax = float(rows[0][1].abs().max())
    fig, axes = plt.subplots(len(rows), 5, figsize=(10, 4.9), squeeze=False)
    for row, (img, maps, label) in enumerate(rows):
        axes[row, 0].imshow(img.numpy(), cmap="gray")
        axes[row, 0].set_title(label, fontsize=9)
        for k in range(4):
            axes[row, k + 1].imshow(maps[k].numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            axes[row, k + 1].set_title(map_titles[k], fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi)


__all__ = ["save_group_maps", "save_image_row"]
