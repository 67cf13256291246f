"""Figures of 2D images: a row of images, images beside their maps over a group, and a grid of
images at their own pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from equivision.figures._mpl import pyplot, save_figure


def save_image_row(
    path: str | Path, views: Sequence[tuple[str, Tensor]], *, cmap: str = "gray",
    vmin: float | None = 0.0, vmax: float | None = 1.0, dpi: int = 110,
) -> None:
    """A PNG of images ``(H, W)`` side by side, each under its title (multi-line titles get
    the height they need instead of being clipped)."""
    plt = pyplot()
    lines = max(title.count("\n") + 1 for title, _ in views)
    fig, axes = plt.subplots(1, len(views), figsize=(2.0 * len(views), 2.24 + 0.16 * lines))
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


def image_grid(images: Tensor, *, per_row: int = 8, gap: int = 2) -> Tensor:
    """Images ``(N, C, H, W)`` with values in ``[0, 1]`` tiled into one grey picture ``(H', W')``
    uint8, one pixel per pixel: each image's ``C`` channels side by side, the images in rows of
    ``per_row``, ``gap`` white pixels between tiles (none around a lone image)."""
    import torch

    from equivision.errors import ShapeError

    if images.ndim != 4 or not images.is_floating_point():
        raise ShapeError(f"images must be a float tensor (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    cols = max(1, min(per_row, n)) * c
    rows = max(1, -(-n // per_row))
    grid = torch.full((rows * (h + gap) - gap, cols * (w + gap) - gap), 255, dtype=torch.uint8)
    pix = (images.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
    for i in range(n):
        r0 = (i // per_row) * (h + gap)
        for k in range(c):
            c0 = ((i % per_row) * c + k) * (w + gap)
            grid[r0 : r0 + h, c0 : c0 + w] = pix[i, k]
    return grid


def save_image_grid(path: str | Path, images: Tensor, *, per_row: int = 8, gap: int = 2,
                    text: dict[str, str] | None = None) -> None:
    """A grey PNG of :func:`image_grid`, written through a temporary file (callers check their
    outputs first; ``path`` is replaced); ``text``: PNG text chunks (e.g. what the tiles are)."""
    from PIL import Image, PngImagePlugin

    from equivision.io.atomic import atomic_path

    grid = image_grid(images, per_row=per_row, gap=gap)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    with atomic_path(Path(path), overwrite=True) as tmp:
        Image.fromarray(grid.numpy()).save(tmp, format="PNG", pnginfo=info)


__all__ = ["image_grid", "save_group_maps", "save_image_grid", "save_image_row"]
