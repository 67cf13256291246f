"""The image-to-sphere network (shapes, azimuthal wrap-around, bad input), its circular
transposed convolution (gradcheck, periodic reference) and the area-weighted Huber loss
(NumPy reference, rotation invariance for band-limited maps)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.groups.spatial import SO3
from equivision.models import build_model, count_parameters
from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig
from equivision.nn import AzimuthalConvTranspose2d, AzimuthalUpBlock, area_weighted_huber
from equivision.sphere import isht, rotate

SMALL = dict(width=8, max_width=32, code_dim=64, bandwidth=8, out_channels=5)


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("c_in", [1, 3])
def test_output_shapes(size, c_in):
    torch.manual_seed(0)
    m = ImageToSphere(ImageToSphereConfig(in_channels=c_in, image_size=size, **SMALL)).eval()
    y = m(torch.randn(2, c_in, size, size))
    assert y.shape == (2, 5, 16, 16)
    assert bool(torch.isfinite(y).all())


def test_registered_and_paper_sized_count_parameters():
    m = build_model("image_to_sphere", {"image_size": 64, "bandwidth": 16, "out_channels": 16})
    assert isinstance(m, ImageToSphere)
    n = count_parameters(m)
    # the paper-sized network (width 64 → 256, a 1024-unit code): about 15 M parameters at 64²,
    # most of them in the two linear layers around the code (4096·1024 and 1024·4096)
    assert 10_000_000 < n < 20_000_000, n
    print(f"image_to_sphere parameters: {n} at 64², "
          f"{count_parameters(ImageToSphere(ImageToSphereConfig(image_size=128)))} at 128²")


def test_decoder_output_size_for_non_power_of_two_bandwidth():
    m = ImageToSphere(ImageToSphereConfig(image_size=64, **{**SMALL, "bandwidth": 12})).eval()
    assert m(torch.randn(1, 1, 64, 64)).shape == (1, 5, 24, 24)


def test_up_block_wraps_around_in_azimuth():
    torch.manual_seed(1)
    block = AzimuthalUpBlock(3, 4).eval()
    x = torch.zeros(1, 3, 4, 8)
    x[..., 0] = torch.randn(1, 3, 4)  # a feature at azimuth 0 only
    with torch.no_grad():
        y = block(x)
    assert y.shape == (1, 4, 8, 16)
    assert float(y[..., -1].abs().max()) > 1e-3  # reaches the last azimuth through the seam
    assert float(y[..., 6:10].abs().max()) == 0.0  # and not the far side of the map


def test_decoder_commutes_with_azimuthal_shifts():
    torch.manual_seed(2)
    m = ImageToSphere(ImageToSphereConfig(image_size=64, **SMALL)).eval()
    start = torch.randn(1, *m.start_shape)
    s0 = m.start_shape[-1]
    with torch.no_grad():
        y = m.head(m.decoder(start))
        y_shift = m.head(m.decoder(torch.roll(start, 1, dims=-1)))
    # one start column is 2b / s0 output columns; zero padding would break this at the seam
    torch.testing.assert_close(y_shift, torch.roll(y, 16 // s0, dims=-1), atol=1e-5, rtol=1e-5)


def test_circular_transposed_conv_is_the_periodic_one():
    torch.manual_seed(3)
    layer = AzimuthalConvTranspose2d(2, 3).double()
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    tiled = torch.cat([x, x, x], dim=-1)
    ref = F.conv_transpose2d(tiled, layer.conv.weight, layer.conv.bias, stride=2, padding=1)
    torch.testing.assert_close(layer(x), ref[..., 12:24])


def test_circular_transposed_conv_gradcheck():
    torch.manual_seed(4)
    layer = AzimuthalConvTranspose2d(2, 2).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    w = layer.conv.weight.detach().clone().requires_grad_(True)

    def f(x, w):
        return F.conv_transpose2d(F.pad(x, (1, 1, 0, 0), mode="circular"), w, None, stride=2,
                                  padding=(1, 0))[..., 3:3 + 2 * x.shape[-1]]

    torch.testing.assert_close(f(x, layer.conv.weight) + layer.conv.bias[:, None, None], layer(x))
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradcheck(lambda x: layer(x), (x,))


def test_bad_input_and_config():
    m = ImageToSphere(ImageToSphereConfig(image_size=64, **SMALL)).eval()
    for bad in (torch.randn(1, 3, 64, 64), torch.randn(1, 1, 32, 32), torch.randn(1, 64, 64),
                torch.randn(0, 1, 64, 64)):
        with pytest.raises(ShapeError):
            m(bad)
    with pytest.raises(InvalidInputError):
        m(torch.zeros(1, 1, 64, 64, dtype=torch.int64))
    for bad_cfg in ({"in_channels": 2}, {"image_size": 48}, {"width": 0}, {"max_width": 4},
                    {"bandwidth": 1}):
        with pytest.raises(ConfigError):
            ImageToSphereConfig(**{**SMALL, **bad_cfg})


# ----- the loss ---------------------------------------------------------------------------------
def _numpy_loss(p: np.ndarray, t: np.ndarray, delta: float) -> float:
    """Σ_c Σ_jk w_j H(p − t) / (C Σ_jk w_j), averaged over the batch, by explicit loops."""
    nb, nc, n, _ = p.shape
    b = n // 2
    theta = np.pi * (2 * np.arange(n) + 1) / (4 * b)
    w = np.zeros(n)
    for j in range(n):  # Driscoll–Healy: (2/b) sin θ_j Σ_k sin((2k+1)θ_j)/(2k+1)
        w[j] = 2.0 / b * math.sin(theta[j]) * sum(math.sin((2 * k + 1) * theta[j]) / (2 * k + 1)
                                                  for k in range(b))
    total = 0.0
    for i in range(nb):
        num = 0.0
        for c in range(nc):
            for j in range(n):
                for k in range(n):
                    d = abs(p[i, c, j, k] - t[i, c, j, k])
                    hub = 0.5 * d * d if d < delta else delta * (d - 0.5 * delta)
                    num += w[j] * hub
        total += num / (nc * n * w.sum())
    return total / nb


@pytest.mark.parametrize("delta", [1.0, 0.3])
def test_loss_matches_numpy_reference(delta):
    g = torch.Generator().manual_seed(5)
    p = 2 * torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    t = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    ref = _numpy_loss(p.numpy(), t.numpy(), delta)
    assert float(area_weighted_huber(p, t, delta=delta)) == pytest.approx(ref, rel=1e-12)
    per = area_weighted_huber(p, t, delta=delta, reduction="none")
    assert per.shape == (2,) and float(per.mean()) == pytest.approx(ref, rel=1e-12)
    # the weights matter: the unweighted Huber mean is a different number
    assert abs(float(F.huber_loss(p, t, delta=delta)) - ref) > 1e-3 * ref


def _bandlimited(seed: int, c: int, b: int, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return isht(scale * torch.randn(c, b * b, generator=g, dtype=torch.float64))


def test_loss_is_rotation_invariant_for_band_limited_maps():
    b = 8
    rots = SO3().random(5, seed=6, dtype=torch.float64)
    # quadratic part only: Huber(p − t) = ½ (p − t)² has degree < 2b, the quadrature is exact
    p, t = _bandlimited(7, 3, b, 0.02), _bandlimited(8, 3, b, 0.02)
    assert float((p - t).abs().max()) < 1.0
    base = area_weighted_huber(p[None], t[None])
    rotated = area_weighted_huber(rotate(p, rots[:, None]), rotate(t, rots[:, None]), reduction="none")
    assert float((rotated / base - 1).abs().max()) < 1e-12
    # in the linear part the loss is not a polynomial: invariance holds to the quadrature's
    # error, measured here at a few per cent for these maps (|p − t| up to about 10)
    p, t = _bandlimited(9, 3, b, 1.0), _bandlimited(10, 3, b, 1.0)
    base = area_weighted_huber(p[None], t[None])
    rotated = area_weighted_huber(rotate(p, rots[:, None]), rotate(t, rots[:, None]), reduction="none")
    rel = float((rotated / base - 1).abs().max())
    print(f"area-weighted Huber, linear regime, b={b}: max relative change under rotation {rel:.2e}")
    assert rel < 0.05
    # without the area weights the change is far larger: the weights are what make it invariant
    unweighted = [float(F.huber_loss(rotate(p, r), rotate(t, r))) for r in rots]
    ref = float(F.huber_loss(p, t))
    assert max(abs(u / ref - 1) for u in unweighted) > 2 * rel


def test_loss_bad_input():
    p = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ShapeError):
        area_weighted_huber(p, torch.zeros(1, 2, 8, 6))
    with pytest.raises(ShapeError):
        area_weighted_huber(torch.zeros(1, 2, 8, 6), torch.zeros(1, 2, 8, 6))
    with pytest.raises(InvalidInputError):
        area_weighted_huber(p, p.double())
    with pytest.raises(InvalidInputError):
        area_weighted_huber(p, p, delta=0.0)
