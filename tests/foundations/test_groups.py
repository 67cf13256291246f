"""Group axioms (hypothesis), conversions, uniformity and the regular representation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.transform import Rotation

from _devices import device_params, dtype_params, tol
from equivision.errors import InvalidInputError, ShapeError
from equivision.groups import (
    C4,
    D4,
    SE2,
    SE3,
    SO2,
    SO3,
    CyclicGroup,
    DihedralGroup,
    ScaleTranslation2D,
    Translations2D,
    act_on_group_image,
    act_on_image,
    regular_permutation,
)

GROUPS = [
    Translations2D(),
    CyclicGroup(4),
    CyclicGroup(7),
    DihedralGroup(4),
    DihedralGroup(5),
    SO2(),
    SE2(),
    ScaleTranslation2D(),
    SO3(),
    SE3(),
]
IDS = [g.name for g in GROUPS]
seeds = st.integers(min_value=0, max_value=2**31 - 1)
settings.register_profile("equivision", max_examples=25, deadline=None)
settings.load_profile("equivision")


def _elems(group, seed, n=3, dtype=torch.float64, device="cpu"):
    return group.random(n, seed=seed, dtype=dtype, device=device).unbind(0)


def _axiom_tol(dtype):
    # float32: the worst of 300 seeds per group was 1.1e-6 (SO2's action), so 1e-5 (~80 eps)
    return tol(dtype, f32=1e-5, f64=1e-9)


# hypothesis cannot take function-scoped fixtures, hence explicit device/dtype parameters
@pytest.mark.parametrize("group", GROUPS, ids=IDS)
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", dtype_params())
@given(seed=seeds)
def test_identity_and_inverse(group, device, dtype, seed):
    g, _, _ = _elems(group, seed, dtype=dtype, device=device)
    e = group.identity(dtype=dtype, device=device)
    assert g.device.type == e.device.type == device
    t = _axiom_tol(dtype)
    assert group.allclose(group.product(g, e), g, t)
    assert group.allclose(group.product(e, g), g, t)
    assert group.allclose(group.product(g, group.inverse(g)), e, t)
    assert group.allclose(group.product(group.inverse(g), g), e, t)


@pytest.mark.parametrize("group", GROUPS, ids=IDS)
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", dtype_params())
@given(seed=seeds)
def test_associativity(group, device, dtype, seed):
    g, h, k = _elems(group, seed, dtype=dtype, device=device)
    lhs = group.product(group.product(g, h), k)
    rhs = group.product(g, group.product(h, k))
    assert lhs.device.type == device
    assert group.allclose(lhs, rhs, _axiom_tol(dtype))


@pytest.mark.parametrize("group", GROUPS, ids=IDS)
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", dtype_params())
@given(seed=seeds)
def test_matrix_is_a_representation(group, device, dtype, seed):
    g, h, _ = _elems(group, seed, dtype=dtype, device=device)
    m_gh = group.matrix(group.product(g, h), dtype=dtype)
    assert m_gh.dtype == dtype and m_gh.device.type == device
    assert torch.allclose(
        m_gh, group.matrix(g, dtype=dtype) @ group.matrix(h, dtype=dtype), atol=_axiom_tol(dtype)
    )


@pytest.mark.parametrize("group", GROUPS, ids=IDS)
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", dtype_params())
@given(seed=seeds)
def test_action_is_a_homomorphism_and_matches_matrix(group, device, dtype, seed):
    g, h, _ = _elems(group, seed, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(10, group.space_dim, generator=gen, dtype=dtype).to(device)
    t = _axiom_tol(dtype)
    y = group.act(g, x)
    assert y.dtype == dtype and y.device.type == device
    assert torch.allclose(group.act(group.product(g, h), x), group.act(g, group.act(h, x)), atol=t)
    m = group.matrix(g, dtype=dtype)
    xh = torch.cat([x, torch.ones(10, 1, dtype=x.dtype, device=device)], 1)
    assert torch.allclose(y, (xh @ m.T)[:, :-1], atol=t)


@pytest.mark.parametrize("group", GROUPS, ids=IDS)
def test_dtypes_batches_and_seeds(group, dtype, device):
    a = group.random(5, seed=3, dtype=dtype, device=device)
    b = group.random(5, seed=3, dtype=dtype, device=device)
    assert torch.equal(a, b), "same seed must give the same elements"
    # sampling happens on the CPU, so a seed names the same elements on every device
    assert torch.equal(a.cpu(), group.random(5, seed=3, dtype=dtype))
    assert a.shape == (5, *group.element_shape) and a.device.type == device
    if not group.is_finite:
        assert a.dtype == dtype
    x = torch.randn(5, 7, group.space_dim, dtype=dtype).to(device)
    y = group.act(a, x)  # one element per batch entry
    assert y.shape == x.shape and y.dtype == dtype and y.device.type == device
    for i in range(5):
        assert torch.allclose(y[i], group.act(a[i], x[i]), atol=1e-5)


@pytest.mark.parametrize("group", [CyclicGroup(6), DihedralGroup(3), C4, D4], ids=lambda g: g.name)
def test_finite_groups_enumerate_and_close(group):
    elems = group.elements()
    assert len(elems) == group.order
    mats = group.matrix(elems, dtype=torch.float64)
    assert len({tuple(np.round(m.numpy(), 9).ravel()) for m in mats}) == group.order
    for g in elems:
        perm = regular_permutation(group, g)
        assert sorted(perm.tolist()) == list(range(group.order))  # a permutation: closure


def test_dihedral_mirror_conventions():
    s = torch.tensor([0, 1])
    r = torch.tensor([1, 0])
    # s r s = r^-1
    assert D4.allclose(D4.product(D4.product(s, r), s), D4.inverse(r))
    m = D4.matrix(s, dtype=torch.float64)[:2, :2]
    assert torch.equal(m, torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))


def test_non_finite_groups_refuse_enumeration():
    with pytest.raises(InvalidInputError):
        SO3().elements()
    with pytest.raises(InvalidInputError):
        regular_permutation(SO2(), torch.tensor(0.1))


def test_element_shape_and_dtype_errors():
    with pytest.raises(ShapeError):
        SO3().act(torch.eye(4), torch.randn(5, 3))
    with pytest.raises(ShapeError):
        SE2().matrix(torch.zeros(2))
    with pytest.raises(InvalidInputError):
        C4.matrix(torch.tensor(1.0))  # elements of C_N are integers
    with pytest.raises(ShapeError):
        SO3().act(torch.eye(3), torch.randn(5, 2))
    with pytest.raises(InvalidInputError):
        SO3().act(torch.eye(3), torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(InvalidInputError):
        ScaleTranslation2D().matrix(torch.tensor([0.0, 0.0, -1.0]))
    with pytest.raises(InvalidInputError):
        CyclicGroup(0)


# ----- SO(3) conversions against SciPy ------------------------------------------------------
@given(seed=seeds)
def test_so3_conversions_match_scipy(seed):
    r = SO3().random(16, seed=seed, dtype=torch.float64)
    sp = Rotation.from_matrix(r.numpy())
    q = SO3.to_quaternion(r)
    q_sp = sp.as_quat()  # scalar-last
    q_sp = np.where(q_sp[:, 3:4] < 0, -q_sp, q_sp)
    np.testing.assert_allclose(q.numpy(), q_sp, atol=1e-10)
    np.testing.assert_allclose(SO3.to_rotvec(r).numpy(), sp.as_rotvec(), atol=1e-9)
    a, b, c = SO3.to_euler_zyz(r)
    np.testing.assert_allclose(SO3.from_euler_zyz(a, b, c).numpy(), r.numpy(), atol=1e-10)
    zyz = Rotation.from_euler("ZYZ", torch.stack([a, b, c], -1).numpy()).as_matrix()
    np.testing.assert_allclose(zyz, r.numpy(), atol=1e-10)
    assert bool((b >= 0).all() and (b <= math.pi).all())
    axis, angle = SO3.to_axis_angle(r)
    np.testing.assert_allclose(SO3.from_axis_angle(axis, angle).numpy(), r.numpy(), atol=1e-9)
    np.testing.assert_allclose(SO3.from_quaternion(q).numpy(), r.numpy(), atol=1e-10)


def test_euler_gimbal_lock_round_trips():
    for beta in (0.0, math.pi):
        r = SO3.from_euler_zyz(
            torch.tensor(0.7, dtype=torch.float64),
            torch.tensor(beta, dtype=torch.float64),
            torch.tensor(-0.3, dtype=torch.float64),
        )
        a, b, c = SO3.to_euler_zyz(r)
        assert float(c) == 0.0
        assert torch.allclose(SO3.from_euler_zyz(a, b, c), r, atol=1e-12)


@given(seed=seeds)
def test_geodesic_distance_matches_scipy(seed):
    so3 = SO3()
    r1, r2 = so3.random(2, seed=seed, dtype=torch.float64)
    d = float(SO3.geodesic_distance(r1, r2))
    d_sp = (Rotation.from_matrix(r1.numpy()).inv() * Rotation.from_matrix(r2.numpy())).magnitude()
    assert abs(d - d_sp) < 1e-9
    assert float(SO3.geodesic_distance(r1, r1)) < 1e-6


def test_random_rotations_are_uniform():
    """Haar measure: the rotation angle has density (1 − cos θ)/π, and E[R] = 0."""
    r = SO3().random(20000, seed=0, dtype=torch.float64)
    theta = SO3.geodesic_distance(SO3().identity(dtype=torch.float64), r).numpy()
    cdf = lambda t: (t - np.sin(t)) / np.pi  # noqa: E731
    assert stats.kstest(theta, cdf).pvalue > 1e-3
    assert float(r.mean(0).abs().max()) < 0.03
    # the image of a fixed axis is uniform on the sphere: its z coordinate is uniform in [-1, 1]
    z = r[:, 2, 2].numpy()
    assert stats.kstest(z, "uniform", args=(-1, 2)).pvalue > 1e-3
    # and a biased sampler is caught by the same statistic
    biased = theta * 0.9
    assert stats.kstest(biased, cdf).pvalue < 1e-6


def test_so3_grid_is_deterministic_and_near_uniform():
    g1, g2 = SO3.grid(1000), SO3.grid(1000)
    assert torch.equal(g1, g2)
    SO3.check(SO3.grid(1000, dtype=torch.float64))
    SO3.check(g1)
    probe = SO3().random(3000, seed=1, dtype=torch.float32)
    cover = SO3.geodesic_distance(probe[:, None], g1[None]).amin(1)
    rnd = SO3().random(1000, seed=2, dtype=torch.float32)
    cover_rnd = SO3.geodesic_distance(probe[:, None], rnd[None]).amin(1)
    # a near-uniform grid covers better than the same number of random rotations
    assert float(cover.amax()) < float(cover_rnd.amax())
    assert math.degrees(float(cover.amax())) < 25


def test_rotation_checks():
    SO3.check(SO3().random(4, seed=0, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="not orthogonal"):
        SO3.check(torch.eye(3) * 1.1)
    with pytest.raises(InvalidInputError, match="reflection"):
        SO3.check(torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    with pytest.raises(ShapeError):
        SO3.check(torch.eye(2))
    p = SO3.project(torch.eye(3, dtype=torch.float64) + 0.05 * torch.randn(3, 3, dtype=torch.float64))
    SO3.check(p)


def test_se3_parts_round_trip():
    g = SE3().random(4, seed=0, dtype=torch.float64)
    r, t = SE3.to_rt(g)
    assert torch.equal(SE3.from_rt(r, t), g)


# ----- the regular representation on images ---------------------------------------------
def test_c4_and_d4_on_images_are_exact_pixel_permutations(device, dtype):
    x = torch.randn(2, 3, 6, 6, dtype=dtype).to(device)
    for k in range(4):
        y = act_on_image(C4, torch.tensor(k, device=device), x)
        assert y.dtype == dtype and y.device.type == device
        assert torch.equal(y, torch.rot90(x, k, dims=(-2, -1)))
    assert torch.equal(act_on_image(D4, torch.tensor([0, 1], device=device), x), torch.flip(x, dims=(-1,)))
    xo = torch.randn(5, 5, dtype=dtype).to(device)  # odd size too
    assert torch.equal(act_on_image(C4, torch.tensor(1), xo), torch.rot90(xo, 1))


@pytest.mark.parametrize("group", [C4, D4], ids=lambda g: g.name)
def test_image_action_is_a_homomorphism_exactly(group):
    x = torch.randn(7, 7)
    for g in group.elements():
        for h in group.elements():
            lhs = act_on_image(group, g, act_on_image(group, h, x))
            assert torch.equal(lhs, act_on_image(group, group.product(g, h), x))


def test_integer_translations_shift_exactly():
    x = torch.randn(8, 8)
    y = act_on_image(Translations2D(), torch.tensor([2.0, 1.0]), x)  # +2 right, +1 up
    assert torch.equal(y[:-1, 2:], x[1:, :-2])
    assert torch.equal(y[:, :2], torch.zeros(8, 2)) and torch.equal(y[-1], torch.zeros(8))


def test_interpolated_rotation_of_a_smooth_image_is_accurate():
    """SO(2) by interpolation: a smooth, centred blob rotated by θ then −θ comes back within
    the interpolation error, and a rotation composed of two matches the single one."""
    n = 41
    yy, xx = torch.meshgrid(torch.arange(n) - 20.0, torch.arange(n) - 20.0, indexing="ij")
    blob = torch.exp(-((xx - 5) ** 2 + (yy + 3) ** 2) / 30).double()
    g, h = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.9, dtype=torch.float64)
    two = act_on_image(SO2(), g, act_on_image(SO2(), h, blob))
    one = act_on_image(SO2(), SO2().product(g, h), blob)
    assert float((two - one).norm() / one.norm()) < 0.02
    # the blob's centre of mass moves as the rotation says
    rot = act_on_image(SO2(), torch.tensor(math.pi / 3, dtype=torch.float64), blob)
    cx, cy = float((rot * xx).sum() / rot.sum()), float((rot * -yy).sum() / rot.sum())
    c, s = math.cos(math.pi / 3), math.sin(math.pi / 3)
    assert abs(cx - (c * 5 - s * 3)) < 0.05 and abs(cy - (s * 5 + c * 3)) < 0.05


def test_group_feature_maps_rotate_and_cycle(device, dtype):
    f = torch.randn(2, 4, 5, 5, dtype=dtype).to(device)
    g = torch.tensor(1, device=device)
    out = act_on_group_image(C4, g, f)
    assert out.dtype == dtype and out.device.type == device
    # (L_g φ)(h, x) = φ(g⁻¹h, g⁻¹x): channel h of the output is channel h−1 rotated
    for h in range(4):
        assert torch.equal(out[:, h], torch.rot90(f[:, (h - 1) % 4], 1, dims=(-2, -1)))
    with pytest.raises(ShapeError):
        act_on_group_image(C4, g, torch.randn(2, 3, 5, 5, device=device))


def test_image_action_errors():
    with pytest.raises(ShapeError):
        act_on_image(C4, torch.tensor(1), torch.randn(5))
    with pytest.raises(InvalidInputError):
        act_on_image(C4, torch.tensor(1), torch.ones(4, 4, dtype=torch.long))
    with pytest.raises(InvalidInputError):
        act_on_image(SO3(), torch.eye(3), torch.randn(4, 4))
