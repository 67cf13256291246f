"""Independent references for the sphere tests (slow NumPy, SciPy, torch-harmonics)."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import sph_harm_y

from equivision.testing.oracles import import_torch_harmonics  # noqa: F401  (re-exported)


def scipy_real_sph_harm(l_max: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Our real harmonics from SciPy's complex ones (which carry the Condon–Shortley phase)."""
    cols = []
    for l in range(l_max + 1):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            if m == 0:
                cols.append(y.real)
            elif m > 0:
                cols.append(math.sqrt(2) * (-1) ** m * y.real)
            else:
                cols.append(math.sqrt(2) * (-1) ** m * y.imag)
    return np.stack(cols, axis=-1)


def slow_wigner_d(l: int, m: int, n: int, beta: float) -> float:
    """Wigner's explicit sum for ``d^l_mn(β)``, term by term in Python floats."""
    f = math.factorial
    pref = math.sqrt(f(l + m) * f(l - m) * f(l + n) * f(l - n))
    total = 0.0
    for s in range(max(0, n - m), min(l + n, l - m) + 1):
        num = (-1) ** (m - n + s) * pref
        den = f(l + n - s) * f(s) * f(m - n + s) * f(l - m - s)
        c, sn = math.cos(beta / 2), math.sin(beta / 2)
        total += num / den * c ** (2 * l + n - m - 2 * s) * sn ** (m - n + 2 * s)
    return total


def slow_sht(signal: np.ndarray, l_max: int) -> np.ndarray:
    """Coefficients by plain NumPy quadrature: a dense ``Σ_jk w_j Y(θ_j, φ_k) f_jk`` with the
    Driscoll–Healy weights written out from their closed form."""
    n = signal.shape[-1]
    b = n // 2
    theta = np.pi * (2 * np.arange(n) + 1) / (4 * b)
    phi = 2 * np.pi * np.arange(n) / n
    w = np.array([(2.0 / b) * np.sin(t) * sum(np.sin((2 * k + 1) * t) / (2 * k + 1) for k in range(b))
                  for t in theta]) * (2 * np.pi / n)
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    y = scipy_real_sph_harm(l_max, tt, pp)  # (2B, 2B, K)
    return np.einsum("...jk,jki,j->...i", signal, y, w)
