"""Rotated and rescaled MNIST: the G-CNN experiment's data, fully determined by seeds.

The 10,000 real MNIST test digits of ``../shared/data/mnist`` (or, where that folder is
absent, 10,000 digits drawn from a font: :func:`equivision.data.digits.mnist_or_drawn`)
are split once, by ``split_seed``, into 8,000 training and 2,000 test digits. Then:

* protocol ``"A"`` (rotated MNIST): train and test digits each rotated by an angle drawn
  uniformly in [0, 2π) (bilinear; one fixed angle per digit, from ``transform_seed``);
* protocol ``"B"``: train upright, test rotated as in A;
* protocol ``"scale"``: train and test digits each shrunk about the centre by a factor
  drawn uniformly in [0.3, 1] (antialiased: :func:`rescale_images`);
* protocol ``"scale_B"``: train at full size, test shrunk as in ``"scale"``.

Every test set also comes as the upright digits and as the digits rotated by a random
multiple of 90° (an exact pixel permutation): :class:`RotMNISTSplit`.

Online augmentation (:class:`RandomlyRotated`, :class:`RandomlyRescaled`): instead of one
fixed angle (factor) per training digit, a fresh one at every draw, from the untransformed
training digits (``RotMNISTSplit.train_source``); the test sets do not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from equivision.errors import InvalidInputError
from equivision.groups import transform_image

PROTOCOLS = ("A", "B", "scale", "scale_B")
N_TRAIN, N_TEST = 8000, 2000
SCALE_RANGE = (0.3, 1.0)


@dataclass(frozen=True)
class RotMNISTSplit:
    """One protocol's tensors; images ``(N, 1, 28, 28)`` float32 in [0, 1], labels ``(N,)``."""

    train_images: Tensor
    train_labels: Tensor
    train_source: Tensor
    """The training digits before the protocol's transform (upright, full size)."""
    test_images: Tensor
    """The protocol's test set (rotated for A and B, rescaled for "scale")."""
    test_upright: Tensor
    test_rot90: Tensor
    """The upright test digits rotated by a random multiple of 90° each."""
    test_labels: Tensor
    source: str
    """"mnist" (the real digits) or "drawn" (the font fallback)."""
    test_scales: Tensor | None = None
    """``(N_test,)`` float64: the factors the scale protocols shrink the test digits by."""


def rotate_images(images: Tensor, angles: Tensor) -> Tensor:
    """``(N, H, W)`` images rotated counter-clockwise about their centre by ``angles (N,)``
    radians (bilinear, zeros outside)."""
    c, s = torch.cos(angles.double()), torch.sin(angles.double())
    m = torch.zeros(len(angles), 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1
    return transform_image(images, m)


def blur_images(images: Tensor, sigmas: Tensor) -> Tensor:
    """``(N, H, W)`` images each blurred by a Gaussian of std ``sigmas (N,)`` pixels (zeros
    outside; kernel truncated at 4σ, as ``scipy.ndimage.gaussian_filter``); σ = 0 leaves an
    image unchanged."""
    sig = sigmas.to(torch.float64).clamp_min(0)
    radius = int(4 * float(sig.max()) + 0.5) if len(sig) else 0
    if radius == 0:
        return images.clone()
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sig.clamp_min(1e-12)[:, None]) ** 2)
    k = torch.where(sig[:, None] > 0, k, (t == 0).to(torch.float64))
    k = k * (t.abs()[None] <= (4 * sig[:, None] + 0.5).floor())  # each image's own truncation
    k = (k / k.sum(1, keepdim=True)).to(images.dtype)
    n = len(images)
    x = images[None]  # (1, N, H, W): one group per image
    x = torch.nn.functional.conv2d(x, k.reshape(n, 1, 1, -1), padding=(0, radius), groups=n)
    x = torch.nn.functional.conv2d(x, k.reshape(n, 1, -1, 1), padding=(radius, 0), groups=n)
    return x[0]


def rescale_images(images: Tensor, factors: Tensor, *, antialias: bool = True) -> Tensor:
    """``(N, H, W)`` images scaled about their centre by ``factors (N,)`` (bilinear).

    ``antialias``: before shrinking by ``s < 1``, blur with σ = (1/s − 1)/2 pixels (the rule
    of scikit-image's ``rescale``), so that a shrunk digit looks like the same digit seen
    from farther away (a camera integrates over its pixels) instead of a point-sampled one
    whose thin strokes break up."""
    if antialias:
        images = blur_images(images, ((1 / factors.double()) - 1).clamp_min(0) / 2)
    m = torch.zeros(len(factors), 3, 3, dtype=torch.float64)
    m[:, 0, 0] = m[:, 1, 1] = factors.double()
    m[:, 2, 2] = 1
    return transform_image(images, m)


def rot90_images(images: Tensor, k: Tensor) -> Tensor:
    """``(N, H, W)`` images rotated by ``k (N,)`` quarter turns (exact)."""
    return torch.stack([torch.rot90(im, int(q), dims=(-2, -1))
                        for im, q in zip(images, k, strict=True)])


def load_digits(n: int | None = None) -> tuple[Tensor, Tensor, str]:
    """``(images (N, 28, 28) float32, labels (N,), source)``: the real digits or the
    font-drawn fallback (see module docstring)."""
    from equivision.data.digits import mnist_or_drawn

    return mnist_or_drawn(n, seed=0)


def make_split(protocol: str = "A", *, split_seed: int = 0, transform_seed: int = 1,
               n_train: int = N_TRAIN, n_test: int = N_TEST,
               digits: tuple[Tensor, Tensor, str] | None = None) -> RotMNISTSplit:
    """The tensors of ``protocol`` (``"A"``, ``"B"``, ``"scale"`` or ``"scale_B"``).

    ``digits``: ``(images (N, 28, 28), labels (N,), source)`` to use instead of
    :func:`load_digits` (tests pass a small set). The split permutes the digits with
    ``split_seed`` and takes the first ``n_train`` for training, the next ``n_test`` for
    testing; rotations, scales and quarter turns come from ``transform_seed``."""
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    images, labels, source = digits if digits is not None else load_digits()
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise InvalidInputError(f"digits must be images (N, H, W) and labels (N,), got "
                                f"{tuple(images.shape)} and {tuple(labels.shape)}")
    if n_train < 1 or n_test < 1 or n_train + n_test > len(images):
        raise InvalidInputError(f"n_train + n_test = {n_train + n_test} must be between 2 and "
                                f"the {len(images)} digits available")
    images = images.float()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(split_seed))
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    g = torch.Generator().manual_seed(transform_seed)
    train_angles = torch.rand(n_train, generator=g, dtype=torch.float64) * 2 * math.pi
    test_angles = torch.rand(n_test, generator=g, dtype=torch.float64) * 2 * math.pi
    lo, hi = SCALE_RANGE
    train_scales = lo + (hi - lo) * torch.rand(n_train, generator=g, dtype=torch.float64)
    test_scales = lo + (hi - lo) * torch.rand(n_test, generator=g, dtype=torch.float64)
    quarter = torch.randint(0, 4, (n_test,), generator=g)

    x_tr, x_te = images[tr], images[te]
    if protocol == "A":
        train, test = rotate_images(x_tr, train_angles), rotate_images(x_te, test_angles)
    elif protocol == "B":
        train, test = x_tr, rotate_images(x_te, test_angles)
    elif protocol == "scale":
        train, test = rescale_images(x_tr, train_scales), rescale_images(x_te, test_scales)
    else:
        train, test = x_tr, rescale_images(x_te, test_scales)
    return RotMNISTSplit(
        train_images=train[:, None].contiguous(), train_labels=labels[tr].clone(),
        train_source=x_tr[:, None].contiguous(),
        test_images=test[:, None].contiguous(), test_upright=x_te[:, None].contiguous(),
        test_rot90=rot90_images(x_te, quarter)[:, None].contiguous(),
        test_labels=labels[te].clone(), source=source,
        test_scales=test_scales if protocol in ("scale", "scale_B") else None,
    )


class _RandomlyTransformed(Dataset):
    """``(image (1, H, W), label)`` pairs, the image transformed afresh at every access by a
    transform drawn from torch's global RNG (which the trainer seeds and checkpoints, so a
    resumed run with ``num_workers = 0`` draws the same transforms)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 1 or labels.shape != images.shape[:1]:
            raise InvalidInputError(f"images must be (N, 1, H, W) with labels (N,), got "
                                    f"{tuple(images.shape)} and {tuple(labels.shape)}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def _transform(self, image: Tensor) -> Tensor:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self._transform(self.images[i]), self.labels[i]


class RandomlyRotated(_RandomlyTransformed):
    """Digits rotated by an angle uniform in [0, 2π), drawn at every access (protocol A with
    online re-rotation)."""

    def _transform(self, image: Tensor) -> Tensor:
        angle = torch.rand(1, dtype=torch.float64) * 2 * math.pi
        return rotate_images(image, angle).to(image.dtype)


class RandomlyRescaled(_RandomlyTransformed):
    """Digits shrunk by a factor uniform in :data:`SCALE_RANGE`, drawn at every access."""

    def _transform(self, image: Tensor) -> Tensor:
        lo, hi = SCALE_RANGE
        factor = lo + (hi - lo) * torch.rand(1, dtype=torch.float64)
        return rescale_images(image, factor).to(image.dtype)


__all__ = ["PROTOCOLS", "RandomlyRescaled", "RandomlyRotated", "RotMNISTSplit", "blur_images",
           "load_digits", "make_split", "rescale_images", "rot90_images", "rotate_images"]
