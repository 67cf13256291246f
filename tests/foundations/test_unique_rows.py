"""``unique_rows`` / ``unique_pairs`` give exactly what ``np.unique(..., axis=0)`` gives."""

import numpy as np
import pytest

from equivision.errors import ShapeError
from equivision.geometry.unique import unique_pairs, unique_rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_unique_rows_matches_numpy(dtype) -> None:
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(size=(2000, 3)), 1).astype(dtype)  # many repeated rows
    a = np.concatenate([a, a[::7], a[:5]])
    a[3] = -0.0  # -0.0 and 0.0 are the same row, as for np.unique
    a[4] = 0.0
    want_u, want_first, want_inv = np.unique(a, axis=0, return_index=True, return_inverse=True)
    u, first, inv = unique_rows(a)
    np.testing.assert_array_equal(u, want_u)
    np.testing.assert_array_equal(first, want_first)
    np.testing.assert_array_equal(inv, want_inv.reshape(-1))
    assert len(u) < len(a)


def test_unique_rows_edge_cases() -> None:
    u, first, inv = unique_rows(np.zeros((0, 3)))
    assert u.shape == (0, 3) and len(first) == len(inv) == 0
    u, first, inv = unique_rows(np.ones((4, 2)))
    assert u.tolist() == [[1.0, 1.0]] and first.tolist() == [0] and inv.tolist() == [0, 0, 0, 0]
    with pytest.raises(ShapeError):
        unique_rows(np.zeros(3))


def test_unique_pairs_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, 50, size=(5000, 2))
    want_inv, want_counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)[1:]
    inv, counts = unique_pairs(pairs, 50)
    np.testing.assert_array_equal(inv, want_inv.reshape(-1))
    np.testing.assert_array_equal(counts, want_counts)
    with pytest.raises(ShapeError):
        unique_pairs(np.zeros((3, 3), dtype=np.int64), 5)
