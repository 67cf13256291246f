"""Digits drawn from a font: the stand-in for MNIST where the shared data is absent.

Each digit is rendered with Pillow's embedded FreeType font (no file needed), then given a
random stroke width, slant, scale, shift and blur, so the set has MNIST's format (28 × 28,
centred, white on black) and some of its variety. Fully determined by the seed.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor

from equivision.errors import InvalidInputError


def _render(digit: int, rng: np.random.Generator) -> np.ndarray:
    size = int(rng.integers(34, 44))
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(canvas)
    stroke = int(rng.integers(1, 3))
    draw.text((28, 28), str(digit), fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
    shear = float(rng.uniform(-0.3, 0.3))
    scale = float(rng.uniform(0.85, 1.15))
    dx, dy = rng.uniform(-2.0, 2.0, size=2)
    # inverse affine map (output -> input) about the canvas centre
    a, b = 1 / scale, shear / scale
    c = 28 - a * 28 - b * 28 + dx
    e = 1 / scale
    f = 28 - e * 28 + dy
    canvas = canvas.transform((56, 56), Image.AFFINE, (a, b, c, 0, e, f), Image.BILINEAR)
    canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    small = canvas.resize((28, 28), Image.LANCZOS)
    arr = np.asarray(small, dtype=np.float32) / 255.0
    return arr / max(float(arr.max()), 1e-6)


def draw_digits(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` digits with balanced labels: ``(images (n, 28, 28) float32 in [0, 1],
    labels (n,) int64)``. The same ``(n, seed)`` always gives the same digits."""
    if int(n) != n or n < 1:
        raise InvalidInputError(f"n must be a positive integer, got {n}")
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = np.stack([_render(int(d), rng) for d in labels])
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def mnist_or_drawn(n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor, str]:
    """The real MNIST test digits as floats in [0, 1] when the shared data exists, else
    ``n`` (default 10,000) drawn digits. Returns ``(images, labels, source)``, ``source`` being
    ``"mnist"`` or ``"drawn"``."""
    from equivision.data.registry import find_data_root
    from equivision.io.mnist import load_mnist

    root = find_data_root()
    if root is not None and (root / "mnist").is_dir():
        im, lb = load_mnist(root / "mnist")
        images = torch.from_numpy(im.astype(np.float32) / 255.0)
        labels = torch.from_numpy(lb)
        if n is not None:
            images, labels = images[:n], labels[:n]
        return images, labels, "mnist"
    images, labels = draw_digits(n or 10_000, seed)
    return images, labels, "drawn"
