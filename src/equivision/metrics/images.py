"""Image similarity in PyTorch, differentiable: SSIM as ``skimage.metrics.structural_similarity``
computes it by default (a 7 × 7 uniform window, sample covariances, K₁ = 0.01, K₂ = 0.03), so
that a training loss and the experiment's metric are the same number."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError

__all__ = ["ssim"]


def ssim(pred: Tensor, target: Tensor, *, data_range: float = 1.0, win_size: int = 7) -> Tensor:
    """Mean structural similarity of images ``(..., H, W)``, one value per image ``(...)``.

    The local statistics are means over ``win_size × win_size`` windows; as in scikit-image,
    variances use the sample normalisation ``n / (n − 1)`` and the mean is taken over the pixels
    whose window lies inside the image (``(H − win_size + 1) × (W − win_size + 1)`` of them), so
    the border handling does not enter. Differentiable in both arguments."""
    if pred.shape != target.shape:
        raise ShapeError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if pred.ndim < 2:
        raise ShapeError(f"images must have shape (..., H, W), got {tuple(pred.shape)}")
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise InvalidInputError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    h, w = pred.shape[-2:]
    if h < win_size or w < win_size:
        raise ShapeError(f"images of {h}×{w} are smaller than the {win_size}×{win_size} window")
    if not data_range > 0:
        raise InvalidInputError(f"data_range must be positive, got {data_range!r}")
    lead = pred.shape[:-2]
    x = pred.reshape(-1, 1, h, w)
    y = target.reshape(-1, 1, h, w).to(x.dtype)

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    n = win_size * win_size
    cov_norm = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(-3, -2, -1)).reshape(lead)
