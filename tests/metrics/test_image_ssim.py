"""equivision.metrics.images.ssim against scikit-image's structural_similarity (the metric the
synthesis experiment reports), its gradients in float64, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from equivision.errors import InvalidInputError, ShapeError
from equivision.metrics.images import ssim


@pytest.mark.parametrize("size,win", [(16, 7), (23, 5), (64, 7)])
def test_matches_scikit_image(size, win) -> None:
    g = torch.Generator().manual_seed(size)
    x = torch.rand(3, size, size, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.randn(3, size, size, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(x, y, win_size=win)
    ref = [structural_similarity(x[i].numpy(), y[i].numpy(), data_range=1.0, win_size=win) for i in range(3)]
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-10)
    # identical images: 1; and leading dimensions are kept
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert ssim(x.reshape(3, 1, size, size), y.reshape(3, 1, size, size)).shape == (3, 1)


def test_float32_and_data_range() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 32, 32, generator=g), torch.rand(2, 32, 32, generator=g)
    ref = [structural_similarity(x[i].double().numpy() * 255, y[i].double().numpy() * 255, data_range=255)
           for i in range(2)]
    np.testing.assert_allclose(ssim(x * 255, y * 255, data_range=255).numpy(), ref, atol=1e-5)


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ssim(a, b, win_size=3), (x, y))


def test_bad_input() -> None:
    x = torch.rand(8, 8)
    with pytest.raises(ShapeError, match="same shape"):
        ssim(x, torch.rand(8, 9))
    with pytest.raises(ShapeError, match="smaller than"):
        ssim(torch.rand(5, 5), torch.rand(5, 5))
    with pytest.raises(ShapeError, match="H, W"):
        ssim(torch.rand(8), torch.rand(8))
    with pytest.raises(InvalidInputError, match="odd"):
        ssim(x, x, win_size=4)
    with pytest.raises(InvalidInputError, match="data_range"):
        ssim(x, x, data_range=0.0)
