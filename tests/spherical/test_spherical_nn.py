"""Spherical CNN layers: a spatial-quadrature oracle, exact equivariance of the linear parts,
measured equivariance of the whole network, gradients and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _devices import tol
from equivision.errors import ConfigError, InvalidInputError, ShapeError
from equivision.groups import SO3
from equivision.models.spherical_cnn import SphericalCNN, SphericalCNNConfig
from equivision.nn.spherical import SphericalBatchNorm, SphericalConv, SphericalGlobalPool
from equivision.sphere import Grid, isht, rotate
from equivision.testing import assert_equivariant, equivariance_error


def band_limited(shape, bandwidth, degree, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(*shape, bandwidth * bandwidth, generator=g, dtype=torch.float64)
    c[..., degree * degree :] = 0
    return isht(c, bandwidth).to(dtype)


def rot_action(r, s):
    return rotate(s, r.to(s.dtype))


def exact_tol(dtype):
    # the linear parts over 5 seeds: float32 2.5e-7 at worst, float64 1.5e-15
    return tol(dtype, f32=1e-5, f64=1e-13)


def test_conv_matches_spatial_quadrature_oracle(device):
    """(f ⋆ k)(x) = ∫ f(y) k(x·y) dy with the zonal kernel k(t) = Σ_l κ_l Y_l0 computed from the
    layer's spectrum (κ_l = spectrum_l / √4π), by slow NumPy quadrature (exact: band-limited)."""
    b = 5
    torch.manual_seed(0)
    conv = SphericalConv(2, 3, b, b, n_anchors=3, bias=False).double()
    x = band_limited((1, 2), b, b, dtype=torch.float64)
    out = conv.to(device)(x.to(device))
    assert out.device.type == device and out.dtype == torch.float64
    got = out[0].detach().cpu().numpy()
    conv = conv.cpu()
    grid = Grid(b)
    pts = grid.points().reshape(-1, 3).numpy()
    w = np.repeat(grid.weights().numpy(), 2 * b)
    cosang = np.clip(pts @ pts.T, -1, 1)
    from scipy.special import eval_legendre

    spec = conv.spectrum().detach().numpy()  # (out, in, b), already times sqrt(1/(2l+1))
    expected = np.zeros((3, 2 * b * 2 * b))
    for o in range(3):
        for i in range(2):
            kernel = np.zeros_like(cosang)
            for l in range(b):
                # spectrum_l = κ'_l sqrt(1/(2l+1)); k(t) = Σ κ'_l/√(4π) · sqrt((2l+1)/4π) P_l(t)
                kappa = spec[o, i, l] * math.sqrt(2 * l + 1) / math.sqrt(4 * math.pi)
                kernel += kappa * math.sqrt((2 * l + 1) / (4 * math.pi)) * eval_legendre(l, cosang)
            expected[o] += kernel @ (w * x[0, i].reshape(-1).numpy())
    np.testing.assert_allclose(got.reshape(3, -1), expected, atol=1e-10)


@pytest.mark.parametrize("b_in,b_out", [(8, 8), (8, 4)])
def test_conv_is_exactly_equivariant(b_in, b_out, device, dtype):
    torch.manual_seed(0)
    conv = SphericalConv(3, 4, b_in, b_out).to(device, dtype)
    x = band_limited((2, 3), b_in, b_out, dtype=dtype).to(device)  # content below the output bandwidth
    assert conv(x).dtype == dtype and conv(x).device.type == device
    rots = SO3().random(5, seed=1, dtype=dtype, device=device)
    err = assert_equivariant(conv, x, rot_action, rot_action, rots, tol=exact_tol(dtype))
    assert err < exact_tol(dtype)


def test_batch_norm_and_pool(device, dtype):
    torch.manual_seed(0)
    x = (band_limited((4, 3), 8, 8, dtype=dtype) * 2 + 1).to(device)
    bn = SphericalBatchNorm(3, 8).to(device, dtype)
    rots = SO3().random(4, seed=2, dtype=dtype, device=device)
    t = exact_tol(dtype)
    bn.train()
    bn(x)  # gather statistics
    bn.eval()
    assert_equivariant(bn, x, rot_action, rot_action, rots, tol=t)  # affine per channel
    # training mode: area-weighted statistics of a rotated batch are the same up to the
    # quadrature of squared (degree < 2b) signals, which the DH rule integrates exactly
    # (float64: 5e-16 with weights in the input's dtype, 2.4e-9 from float32 weights cast up)
    bn.train()
    assert equivariance_error(bn, x, rot_action, rot_action, rots) < t
    y = bn(x)
    assert y.dtype == dtype and y.device.type == device
    area = Grid(8).weights()[:, None] / (4 * math.pi)
    mean = (y.double().cpu() * area).sum((-1, -2)).mean(0)
    assert torch.allclose(mean, torch.zeros(3, dtype=torch.float64), atol=t)
    pool = SphericalGlobalPool()
    assert pool(x).dtype == dtype and pool(x).device.type == device
    assert_equivariant(pool, x, rot_action, None, rots, tol=t)
    const = torch.full((1, 1, 16, 16), 3.0, dtype=dtype, device=device)
    assert torch.allclose(pool(const), torch.tensor([[3.0]], dtype=dtype, device=device))


def test_whole_network_equivariance_is_measured(device):
    """Grid ReLUs are not band-limited: the network is equivariant approximately. Measured
    (random weights, B = 16 input of degree < 8): the read-out is invariant to < 1%, and the
    deepest feature maps rotate with the input to a few percent."""
    torch.manual_seed(0)
    net = SphericalCNN(
        SphericalCNNConfig(bandwidths=[16, 8, 4, 2], channels=[8, 16, 16], stem_channels=8)
    ).eval().to(device)
    x = band_limited((2, 2), 16, 8).to(device)
    rots = SO3().random(4, seed=3, device=device)
    with torch.no_grad():
        assert equivariance_error(net, x, rot_action, None, rots) < 1e-2
        assert equivariance_error(net.embedding, x, rot_action, None, rots) < 1e-2
        assert equivariance_error(lambda t: net.features(t, "stage3"), x, rot_action, rot_action, rots) < 5e-2
        # and a non-equivariant baseline on the same maps fails the same check
        flat = torch.nn.Linear(2 * 32 * 32, 10).to(device)
        assert equivariance_error(lambda t: flat(t.flatten(1)), x, rot_action, None, rots) > 0.1


def test_gradients_float64():
    torch.manual_seed(0)
    conv = SphericalConv(2, 2, 3, 2, n_anchors=2).double()
    x = band_limited((1, 2), 3, 3, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(conv, (x,))
    bn = SphericalBatchNorm(2, 3).double()
    xb = band_limited((3, 2), 3, 3, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(bn, (xb,))


def test_bad_input():
    conv = SphericalConv(3, 4, 8, 4)
    with pytest.raises(ShapeError, match=r"\(B, 3, 16, 16\)"):
        conv(torch.randn(2, 3, 8, 8))
    with pytest.raises(ShapeError):
        conv(torch.randn(2, 2, 16, 16))
    with pytest.raises(InvalidInputError):
        SphericalConv(3, 4, 4, 8)
    with pytest.raises(ConfigError):
        SphericalCNNConfig(bandwidths=[16, 8], channels=[8, 8])
    net = SphericalCNN(SphericalCNNConfig(bandwidths=[8, 4, 2, 1], channels=[4, 4, 4], stem_channels=4))
    with pytest.raises(ShapeError, match="bandwidth 8"):
        net(torch.randn(1, 2, 32, 32))  # a grid for another bandwidth
    with pytest.raises(InvalidInputError, match="unknown layer"):
        net.features(torch.randn(1, 2, 16, 16), "stage9")
