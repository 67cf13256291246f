"""The sphere engine's table caches and its one real ↔ complex change of basis."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from equivision.errors import InvalidInputError
from equivision.groups import SO3
from equivision.sphere import (
    align,
    clear_caches,
    complex_coeffs,
    correlation_at,
    cross_spectrum,
    isht,
    real_from_complex,
    real_sph_harm,
    rotate,
    sht,
    so3_correlation,
    wigner_D_real,
)
from equivision.sphere import cache as cache_mod
from equivision.sphere.basis import complex_coeff_gathers
from equivision.sphere.cache import TableCache
from equivision.sphere.sht import _tables


def _signal(b: int, seed: int, lead: tuple[int, ...] = (2,)) -> torch.Tensor:
    return isht(torch.randn(*lead, b * b, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))


def _exercise(b: int = 6) -> None:
    """Every public entry point that reads cached tables, in both dtypes."""
    for dtype in (torch.float32, torch.float64):
        f = _signal(b, 1, (3,)).to(dtype)
        r = SO3().random(2, seed=3).to(dtype)
        isht(sht(f))
        rotate(f, r[:, None])
        wigner_D_real(b - 1, r)
        so3_correlation(f, f, out_bandwidth=b + 2)
        h = cross_spectrum(sht(f)[None], sht(f)[None])
        correlation_at(h, r[None])
        complex_coeffs(sht(f))
    align(_signal(b, 4, (2,)), _signal(b, 5, (2,)))


def _entries() -> list[tuple[torch.Tensor, int]]:
    out = []
    for c in cache_mod._ALL:
        for store in (c._base, c._copies):
            for _, tensors, _ in store.values():
                out.extend((t, t._version) for t in tensors)
    return out


def test_library_never_writes_to_cached_tables() -> None:
    clear_caches()
    _exercise()
    before = _entries()
    builds = [c.builds for c in cache_mod._ALL]
    assert before  # the caches were used
    _exercise()
    assert all(t._version == v for t, v in before)
    assert [c.builds for c in cache_mod._ALL] == builds  # nothing was rebuilt either


def test_tables_built_once_in_float64_on_cpu_and_reused() -> None:
    clear_caches()
    builds = _tables.builds
    x = _signal(8, 2)  # isht: the float64 copy
    a = sht(x.float())
    sht(x)
    isht(sht(x.float()))
    info = _tables.cache_info()
    assert info["builds"] == builds + 1  # keyed by bandwidth only: float32 and float64 share one build
    assert info["copies"] == 2  # one per dtype (the float64 one is the base itself)
    (base, _, _), = _tables._base.values()
    assert all(t.dtype == torch.float64 and t.device.type == "cpu" for t in base)
    t1 = _tables(8, dtype=torch.float32)
    assert _tables(8, dtype=torch.float32) is t1  # no copy per call
    assert torch.equal(sht(x.float()), a)


def test_mutating_a_returned_table_does_not_change_the_next_result() -> None:
    clear_caches()
    x = _signal(8, 6)
    for dtype in (torch.float64, torch.float32):  # float64: the CPU table itself is handed out
        expected = sht(x.to(dtype))
        _tables(8, dtype=dtype)[0].zero_()  # a careless caller
        assert torch.equal(sht(x.to(dtype)), expected)
    u_ref = real_from_complex(3).clone()
    real_from_complex(3)[0].fill_(7.0)  # through a view: it shares the version counter
    assert torch.equal(real_from_complex(3), u_ref)


def test_clear_caches_frees_device_copies() -> None:
    clear_caches()
    sht(_signal(10, 7).float())
    ref = weakref.ref(_tables(10, dtype=torch.float32)[0])
    assert ref() is not None
    clear_caches()
    gc.collect()
    assert ref() is None
    assert _tables.cache_info() == {"built": 0, "copies": 0, "builds": _tables.builds}
    builds = _tables.builds
    sht(_signal(10, 7).float())
    assert _tables.builds == builds + 1


def test_cache_is_bounded_lru() -> None:
    calls: list[int] = []

    def build(n: int) -> tuple[torch.Tensor, list[int]]:
        calls.append(n)
        return torch.arange(n, dtype=torch.float64), [n]

    c = TableCache(build, maxsize=2)
    _, offs = c(1)
    assert isinstance(offs, tuple)  # lists come back as tuples: nothing to append to
    c(2)
    c(1)  # 1 is now the most recent
    c(3)  # evicts 2
    assert c.cache_info()["built"] == 2 and c.cache_info()["copies"] == 2
    c(1)
    assert calls == [1, 2, 3]
    c(2)
    assert calls == [1, 2, 3, 2]
    assert c(3, dtype=torch.float32)[0].dtype == torch.float32
    assert c(3, dtype=torch.float32)[1] == (3,)


def test_tables_first_built_in_inference_mode_have_version_counters() -> None:
    clear_caches()
    x = _signal(6, 8)
    with torch.inference_mode():
        a = sht(x)
    t = _tables(6, dtype=torch.float64)[0]
    assert not t.is_inference()
    t.mul_(2.0)
    assert torch.equal(sht(x), a)


# ----- the change of basis against an explicit construction ---------------------------------
def _u_numpy(l: int) -> np.ndarray:
    """``U`` with ``Y_real = U Y_complex``, solved by least squares from both families sampled
    at random points: the library's real harmonics and SciPy's complex ones (Condon–Shortley)."""
    sph_harm_y = pytest.importorskip("scipy.special").sph_harm_y
    rng = np.random.default_rng(l)
    theta = np.arccos(rng.uniform(-1, 1, 8 * l + 16))
    phi = rng.uniform(0, 2 * np.pi, theta.size)
    yc = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], -1)  # (P, 2l+1)
    yr = real_sph_harm(l, torch.from_numpy(theta), torch.from_numpy(phi)).numpy()[:, l * l:]
    ut, *_ = np.linalg.lstsq(yc, yr.astype(np.complex128), rcond=None)  # yc @ Uᵀ = yr
    return ut.T


@pytest.mark.parametrize("l", [0, 1, 2, 5, 9])
def test_real_from_complex_matches_explicit_construction(l: int) -> None:
    u = real_from_complex(l).numpy()
    np.testing.assert_allclose(u, _u_numpy(l), atol=1e-10)
    np.testing.assert_allclose(u @ u.conj().T, np.eye(2 * l + 1), atol=1e-14)


def test_complex_coeffs_are_u_transpose_times_real() -> None:
    b = 6
    a = torch.randn(4, b * b, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    ours = complex_coeffs(a).numpy()  # (4, B, 2B−1)
    for l in range(b):
        c = a[:, l * l:(l + 1) ** 2].numpy().astype(np.complex128) @ _u_numpy(l)  # c = Uᵀ a
        np.testing.assert_allclose(ours[:, l, b - 1 - l:b + l], c, atol=1e-10)
        assert not ours[:, l, :b - 1 - l].any() and not ours[:, l, b + l:].any()
    ip, i_n, wr, wi = complex_coeff_gathers(b, dtype=torch.float32)
    assert wr.dtype == wi.dtype == torch.float32 and ip.dtype == i_n.dtype == torch.int64


def test_real_from_complex_refuses_bad_degree() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidInputError):
            real_from_complex(bad)  # type: ignore[arg-type]
