"""Vector Neurons: every layer and model exactly SO(3)-equivariant (or invariant) through the
harness, against slow per-point NumPy oracles, gradients, the behaviour at zero, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equivision.errors import DegenerateGeometryError, EquivarianceError, InvalidInputError, ShapeError
from equivision.groups import SO3, act_on_vector_features, points_action, vector_feature_action
from equivision.models import build_model, count_parameters
from equivision.nn import (
    VNBatchNorm,
    VNInvariant,
    VNLeakyReLU,
    VNLinear,
    VNLinearLeakyReLU,
    VNMaxPool,
    VNMeanPool,
    knn_indices,
    vn_edge_features,
    vn_mean_pool,
)
from equivision.testing import assert_equivariant, equivariance_error

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
CONDITIONED_F32_TOL = 1e-4
"""float32, where the computation amplifies rounding (exact in float64 to 1e-13): the
orthonormalised frame divides by the part of z2 orthogonal to z1, and training-mode batch
norm over a tiny batch divides by a small standard deviation, compounded over a whole model.
Measured: up to 4.0e-5 (frame, 8 channels) and 7.4e-5 (models in training mode)."""
DTYPES = [torch.float32, torch.float64]
ACT = vector_feature_action()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def rotations(dtype: torch.dtype, n: int = 4) -> torch.Tensor:
    return SO3().random(n, seed=3, dtype=torch.float64).to(dtype)


def feats(b: int, c: int, n: int | None, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (b, c, 3) if n is None else (b, c, 3, n)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


# ----------------------------------------------------------------------------- NumPy oracles

def np_linear(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    b, c, _, n = x.shape
    out = np.zeros((b, w.shape[0], 3, n))
    for bi in range(b):
        for o in range(w.shape[0]):
            for ni in range(n):
                out[bi, o, :, ni] = sum(w[o, ci] * x[bi, ci, :, ni] for ci in range(c))
    return out


def np_leaky(q: np.ndarray, k: np.ndarray, slope: float, eps: float) -> np.ndarray:
    """Per vector: ``k`` has 1 channel (shared) or as many as ``q``."""
    out = np.zeros_like(q)
    for bi in range(q.shape[0]):
        for ci in range(q.shape[1]):
            for ni in range(q.shape[3]):
                v, d = q[bi, ci, :, ni], k[bi, ci if k.shape[1] > 1 else 0, :, ni]
                dot = float(v @ d)
                relu = v if dot >= 0 else v - dot / (float(d @ d) + eps) * d
                out[bi, ci, :, ni] = slope * v + (1 - slope) * relu
    return out


def np_batchnorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, bn_eps: float) -> np.ndarray:
    norms = np.sqrt((x ** 2).sum(2) + eps ** 2)  # (B, C, N)
    out = np.zeros_like(x)
    for ci in range(x.shape[1]):
        vals = norms[:, ci].ravel()
        mean, var = vals.mean(), vals.var()
        for bi in range(x.shape[0]):
            for ni in range(x.shape[3]):
                nrm = norms[bi, ci, ni]
                scaled = (nrm - mean) / np.sqrt(var + bn_eps) * gamma[ci] + beta[ci]
                out[bi, ci, :, ni] = x[bi, ci, :, ni] / nrm * scaled
    return out


def np_maxpool(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    k = np_linear(u, x)
    b, c, _, n = x.shape
    out = np.zeros((b, c, 3))
    for bi in range(b):
        for ci in range(c):
            scores = [float(x[bi, ci, :, ni] @ k[bi, ci, :, ni]) for ni in range(n)]
            out[bi, ci] = x[bi, ci, :, int(np.argmax(scores))]
    return out


def np_knn(x: np.ndarray, k: int) -> np.ndarray:
    b, _, _, n = x.shape
    idx = np.zeros((b, n, k), dtype=np.int64)
    for bi in range(b):
        for i in range(n):
            d = [float(((x[bi, :, :, i] - x[bi, :, :, j]) ** 2).sum()) for j in range(n)]
            idx[bi, i] = np.argsort(d, kind="stable")[:k]
    return idx


def np_edges(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    b, c, _, n = x.shape
    k = idx.shape[-1]
    out = np.zeros((b, 2 * c, 3, n, k))
    for bi in range(b):
        for i in range(n):
            for m in range(k):
                j = idx[bi, i, m]
                out[bi, :c, :, i, m] = x[bi, :, :, j] - x[bi, :, :, i]
                out[bi, c:, :, i, m] = x[bi, :, :, i]
    return out


def np_invariant(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    b, c, _, n = x.shape
    out = np.zeros((b, c, t.shape[1], n))
    for bi in range(b):
        for ni in range(n):
            for ci in range(c):
                for j in range(t.shape[1]):
                    out[bi, ci, j, ni] = float(x[bi, ci, :, ni] @ t[bi, j, :, ni])
    return out


def as_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ----------------------------------------------------------------------------- oracles

def test_linear_and_leaky_relu_match_the_oracle():
    x = feats(2, 4, 5, torch.float64)
    lin = VNLinear(4, 3).double()
    np.testing.assert_allclose(as_np(lin(x)), np_linear(as_np(lin.weight), as_np(x)), atol=1e-12)
    for share in (False, True):
        act = VNLeakyReLU(4, share_direction=share, negative_slope=0.1).double()
        k = np_linear(as_np(act.direction.weight), as_np(x))
        want = np_leaky(as_np(x), k, 0.1, act.eps)
        assert (np.einsum("bcin,bcin->bcn", as_np(x), k if not share else np.repeat(k, 4, 1)) < 0).any()
        np.testing.assert_allclose(as_np(act(x)), want, atol=1e-12)


def test_linear_leaky_block_takes_its_direction_from_the_input():
    x = feats(2, 3, 6, torch.float64)
    blk = VNLinearLeakyReLU(3, 5, batch_norm=False, negative_slope=0.0).double()
    q = np_linear(as_np(blk.linear.weight), as_np(x))
    k = np_linear(as_np(blk.direction.weight), as_np(x))  # U V, not U q
    np.testing.assert_allclose(as_np(blk(x)), np_leaky(q, k, 0.0, blk.eps), atol=1e-12)


def test_batchnorm_matches_the_oracle_and_keeps_directions():
    x = feats(3, 4, 5, torch.float64)
    bn = VNBatchNorm(4).double()
    with torch.no_grad():
        bn.bn.weight.uniform_(0.5, 2.0)
        bn.bn.bias.uniform_(0.1, 0.5)
    y = bn(x)
    want = np_batchnorm(as_np(x), as_np(bn.bn.weight), as_np(bn.bn.bias), bn.eps, bn.bn.eps)
    np.testing.assert_allclose(as_np(y), want, atol=1e-10)
    cos = (y * x).sum(2) / (y.norm(dim=2) * x.norm(dim=2))
    assert torch.allclose(cos.abs(), torch.ones_like(cos), atol=1e-12)


def test_maxpool_picks_the_points_of_the_oracle():
    x = feats(2, 3, 7, torch.float64)
    pool = VNMaxPool(3).double()
    np.testing.assert_allclose(as_np(pool(x)), np_maxpool(as_np(x), as_np(pool.direction.weight)), atol=0)
    # over the neighbour axis of (B, C, 3, N, K): the same choice per point
    e = feats(2, 3, 4 * 5, torch.float64).reshape(2, 3, 3, 4, 5)
    y = pool(e)
    for i in range(4):
        assert torch.equal(y[..., i], pool(e[:, :, :, i]))


def test_knn_and_edge_features_match_the_oracle():
    x = feats(2, 2, 9, torch.float64)
    idx = knn_indices(x, 4)
    assert np.array_equal(idx.numpy(), np_knn(as_np(x), 4))
    assert torch.equal(idx[..., 0], torch.arange(9).expand(2, 9))  # each point is its own nearest
    np.testing.assert_allclose(as_np(vn_edge_features(x, 4)), np_edges(as_np(x), idx.numpy()), atol=0)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_invariant_matches_the_oracle(variant):
    x = feats(2, 8, 5, torch.float64)
    inv = VNInvariant(8, variant=variant).double()
    y, t = inv(x)
    if variant == "paper":
        np.testing.assert_allclose(as_np(t), np_linear(as_np(inv.frame[0].weight), as_np(x)), atol=1e-12)
    np.testing.assert_allclose(as_np(y), np_invariant(as_np(x), as_np(t)), atol=1e-12)


def test_mean_pool():
    x = feats(2, 3, 6, torch.float64)
    np.testing.assert_allclose(as_np(vn_mean_pool(x)), as_np(x).mean(-1), atol=1e-15)
    assert torch.equal(VNMeanPool()(x), vn_mean_pool(x))


# ----------------------------------------------------------------------------- equivariance

def layers(c: int = 4) -> dict[str, torch.nn.Module]:
    return {
        "linear": VNLinear(c, 5),
        "leaky": VNLeakyReLU(c),
        "leaky-shared": VNLeakyReLU(c, share_direction=True, negative_slope=0.0),
        "block": VNLinearLeakyReLU(c, 5),
        "batchnorm": VNBatchNorm(c),
        "meanpool": VNMeanPool(),
        "maxpool": VNMaxPool(c),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("with_points", [True, False], ids=["points", "no-points"])
def test_every_layer_is_exactly_equivariant(dtype, with_points):
    x = feats(3, 4, 6 if with_points else None, dtype)
    rots = rotations(dtype)
    for name, layer in layers().items():
        if not with_points and name in ("meanpool", "maxpool"):
            continue
        layer = layer.to(dtype)
        for mode in (True, False):  # batch statistics and running statistics
            layer.train(mode)
            err = assert_equivariant(layer, x, ACT, ACT, rots, tol=TOL[dtype])
            assert err < TOL[dtype], name


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_invariant_layers_and_edge_features(dtype):
    x = feats(2, 8, 10, dtype)
    rots = rotations(dtype)
    for kwargs in ({"variant": "paper"}, {"variant": "paper", "frame_channels": 5}, {"variant": "code"},
                   {"variant": "code", "normalize_frame": True}):
        inv = VNInvariant(8, **kwargs).to(dtype)
        tol = CONDITIONED_F32_TOL if dtype == torch.float32 and kwargs.get("normalize_frame") else TOL[dtype]
        assert_equivariant(lambda v, m=inv: m(v)[0], x, ACT, None, rots, tol=tol)
        assert_equivariant(lambda v, m=inv: m(v)[1], x, ACT, ACT, rots, tol=tol)
    assert_equivariant(lambda v: vn_edge_features(v, 4), x, ACT, ACT, rots, tol=TOL[dtype])
    assert_equivariant(lambda v: knn_indices(v, 4).to(dtype), x, ACT, None, rots, tol=TOL[dtype])


def test_normalized_frame_is_a_rotation():
    inv = VNInvariant(8, variant="code", normalize_frame=True).double()
    _, t = inv(feats(2, 8, 5, torch.float64))
    tt = torch.einsum("bjin,bkin->bjkn", t, t)
    # |u| = |z| / sqrt(|z|² + ε²): unit up to ε²/|z|² (here |z| ≳ 1e-2)
    assert torch.allclose(tt, torch.eye(3, dtype=torch.float64)[None, :, :, None].expand_as(tt), atol=1e-6)
    assert torch.allclose(torch.linalg.det(t.permute(0, 3, 1, 2)), torch.ones(2, 5, dtype=torch.float64))


def test_the_harness_catches_a_layer_that_is_not_equivariant():
    x = feats(2, 3, 5, torch.float64)
    bias = torch.randn(1, 3, 3, 1, dtype=torch.float64)
    with pytest.raises(EquivarianceError):
        assert_equivariant(lambda v: VNLinear(3, 3).double()(v) + bias, x, ACT, ACT,
                           rotations(torch.float64), tol=1e-6)


MODELS = {
    "vn_pointnet": {"k": 4, "channels": [4, 5, 6], "head": [8]},
    "vn_dgcnn": {"k": 4, "channels": [3, 3, 4], "embed": 6, "head": [8]},
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_vn_models_are_exactly_invariant(name, dtype):
    pts = torch.randn(3, 16, 3, dtype=torch.float64).to(dtype)
    rots = rotations(dtype)
    for extra in ({}, {"invariant": "code", "pooling": "max"},
                  {"invariant": "code", "normalize_frame": True}):
        net = build_model(name, {**MODELS[name], **extra}).to(dtype)
        for mode in (False, True):
            net.train(mode)
            if mode:  # dropout off: the rest of training mode (batch statistics) stays
                for m in net.modules():
                    if isinstance(m, torch.nn.Dropout):
                        m.eval()
            tol = CONDITIONED_F32_TOL if mode and dtype == torch.float32 else TOL[dtype]
            assert_equivariant(net, pts, points_action(SO3()), None, rots, tol=tol)


@pytest.mark.parametrize("name", ["pointnet", "dgcnn"])
def test_baselines_are_not_invariant(name):
    extra = {"embed": 8} if name == "dgcnn" else {}
    net = build_model(name, {"k": 4, "channels": [8, 8], "head": [8], **extra})
    pts = torch.randn(3, 16, 3, dtype=torch.float64)
    err = equivariance_error(net.double().eval(), pts, points_action(SO3()), None, rotations(torch.float64))
    assert err > 1e-2


def test_default_parameter_counts():
    counts = {n: count_parameters(build_model(n)) for n in ("vn_pointnet", "pointnet", "vn_dgcnn", "dgcnn")}
    assert counts == {"vn_pointnet": 306420, "pointnet": 241226, "vn_dgcnn": 577593, "dgcnn": 452298}


# ----------------------------------------------------------------------------- gradients, zero

def test_gradcheck_every_layer():
    x = feats(2, 3, 4, torch.float64).requires_grad_(True)
    x8 = feats(2, 8, 3, torch.float64).requires_grad_(True)
    checks = {
        "linear": VNLinear(3, 2), "leaky": VNLeakyReLU(3), "block": VNLinearLeakyReLU(3, 2),
        "batchnorm": VNBatchNorm(3), "maxpool": VNMaxPool(3), "meanpool": VNMeanPool(),
    }
    for name, layer in checks.items():
        assert torch.autograd.gradcheck(layer.double(), (x,), eps=1e-6, atol=1e-5), name
    for kwargs in ({"variant": "paper"}, {"variant": "code", "normalize_frame": True}):
        inv = VNInvariant(8, **kwargs).double()
        assert torch.autograd.gradcheck(lambda v, m=inv: m(v)[0], (x8,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda v: vn_edge_features(v, 2), (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-4])
def test_zero_and_tiny_vectors_give_finite_values_and_gradients(scale):
    x = (feats(2, 8, 5, torch.float64) * scale).requires_grad_(True)
    mods = [VNLinear(8, 3), VNLeakyReLU(8), VNLinearLeakyReLU(8, 3), VNBatchNorm(8), VNMaxPool(8),
            VNInvariant(8, variant="paper"), VNInvariant(8, variant="code", normalize_frame=True)]
    for m in mods:
        out = m.double()(x)
        out = out[0] if isinstance(out, tuple) else out
        assert torch.isfinite(out).all(), type(m).__name__
        (g,) = torch.autograd.grad(out.square().sum() + out.sum(), x)
        assert torch.isfinite(g).all(), type(m).__name__


def test_eps_in_the_relu_leaves_a_fraction_of_the_component_along_k():
    # q = -k (|k| = r): the exact projection is 0; with ε it leaves ε/(r² + ε) of q
    for r, eps in ((1.0, 1e-6), (1e-3, 1e-6), (1e-3, 1e-9)):
        act = VNLeakyReLU(1, negative_slope=0.0, eps=eps).double()
        with torch.no_grad():
            act.direction.weight.fill_(-1.0)
        q = torch.tensor([[[r], [0.0], [0.0]]], dtype=torch.float64)[:, None, :, 0]  # (1, 1, 3)
        with torch.no_grad():
            out = act(q)
        assert float(out[0, 0, 0] / r) == pytest.approx(eps / (r * r + eps), rel=1e-9)


# ----------------------------------------------------------------------------- bad input

def test_bad_input_is_refused_with_typed_errors():
    lin = VNLinear(3, 2)
    with pytest.raises(ShapeError):
        lin(torch.randn(2, 3, 4, 5))  # not 3-vectors
    with pytest.raises(ShapeError):
        lin(torch.randn(2, 4, 3, 5))  # wrong channel count
    with pytest.raises(InvalidInputError):
        lin(torch.zeros(2, 3, 3, 5, dtype=torch.long))
    with pytest.raises(ShapeError):
        VNMaxPool(3)(torch.randn(2, 3, 3))  # no points to pool over
    with pytest.raises(InvalidInputError):
        VNInvariant(3, variant="other")
    with pytest.raises(InvalidInputError):
        VNLeakyReLU(3, negative_slope=1.5)
    with pytest.raises(InvalidInputError):
        VNLinear(0, 2)
    with pytest.raises(InvalidInputError):
        VNInvariant(6, variant="code", normalize_frame=True)  # 6 // 4 = 1: z1 ∥ z2 always
    with pytest.raises(DegenerateGeometryError):
        knn_indices(torch.randn(1, 1, 3, 3), 4)


@pytest.mark.parametrize("name", ["vn_pointnet", "vn_dgcnn", "pointnet", "dgcnn"])
def test_models_refuse_bad_clouds(name):
    net = build_model(name, {"k": 4}).eval()
    bad = torch.randn(1, 10, 3)
    bad[0, 2, 1] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        net(bad)
    with pytest.raises(DegenerateGeometryError):
        net(torch.randn(1, 3, 3))
    with pytest.raises(ShapeError):
        net(torch.randn(1, 10, 2))
    with pytest.raises(InvalidInputError):
        net(torch.zeros(1, 10, 3, dtype=torch.int32))


def test_model_configs_are_validated():
    from equivision.errors import ConfigError

    for bad in ({"k": 0}, {"channels": []}, {"channels": [4, -1]}, {"invariant": "x"}, {"dropout": 1.0},
                {"normalize_frame": True}, {"pooling": "sum"}):
        with pytest.raises(ConfigError):
            build_model("vn_pointnet", bad)
    with pytest.raises(ConfigError):
        build_model("dgcnn", {"embed": 0})


def test_action_refuses_non_vector_features():
    with pytest.raises(ShapeError):
        act_on_vector_features(torch.eye(3), torch.randn(2, 3, 4))
