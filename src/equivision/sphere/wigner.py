"""Wigner small-d and real Wigner-D matrices.

Conventions. ``d^l_{mn}(β) = ⟨l m| exp(−iβ J_y) |l n⟩`` (Wigner's formula, as in
Varshalovich and Wikipedia), rows ``m`` and columns ``n`` running from ``−l`` to ``l``. For
``R = Rz(α) Ry(β) Rz(γ)`` (the library's ZYZ convention, :meth:`equivision.groups.SO3.from_euler_zyz`)
the complex Wigner matrix is ``D^l_{mn}(R) = e^{−imα} d^l_{mn}(β) e^{−inγ}``: it maps the
complex coefficients of ``f`` to those of ``x ↦ f(R⁻¹x)``. :func:`wigner_D_real` is the same
operator in the real orthonormal basis of :mod:`equivision.sphere.legendre`, so that
``sht(rotate(f, R))[l-block] = wigner_D_real(l_max, R)[l] @ sht(f)[l-block]``.

``d`` comes from the three-term recursion in ``l`` of Kostelec & Rockmore (the one used by
SOFT), run in float64 for every ``(m, n)`` at once and started at ``l = max(|m|, |n|)`` from
Wigner's closed form evaluated in log space; starting values below 1e-250 are set to zero
(the true values there are negligible), so nothing ever becomes denormal. It is stable to
``l = 256`` and beyond (the tests check orthogonality and the addition law ``d(a)d(b) = d(a+b)``
at ``l = 256``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from equivision._validation import check_finite
from equivision.errors import InvalidInputError
from equivision.groups.spatial import SO3, check_rotation_matrix
from equivision.sphere.basis import real_from_complex
from equivision.sphere.cache import TableCache

_TINY_LOG = math.log(1e-250)


def _check_lmax(l_max: object) -> int:
    if isinstance(l_max, bool) or not isinstance(l_max, int) or l_max < 0:
        raise InvalidInputError(f"l_max must be a non-negative integer, got {l_max!r}")
    return l_max


def _build_seed_terms(l_max: int, n_lo: int) -> tuple[Tensor, ...]:
    """β-independent parts of the seeds: log coefficient, powers of cos(β/2) and sin(β/2), sign."""
    m = torch.arange(-l_max, l_max + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_lo, l_max + 1, dtype=torch.float64)[None, :]
    j = torch.maximum(m.abs(), n.abs())
    s = torch.clamp(n - m, min=0)  # the only s with all factorial arguments ≥ 0
    lg = torch.lgamma
    log_c = (0.5 * (lg(j + m + 1) + lg(j - m + 1) + lg(j + n + 1) + lg(j - n + 1))
             - lg(j + n - s + 1) - lg(s + 1) - lg(m - n + s + 1) - lg(j - m - s + 1))
    p_cos = 2 * j + n - m - 2 * s
    p_sin = m - n + 2 * s
    sign = 1.0 - 2.0 * torch.remainder(m - n + s, 2)
    return log_c, p_cos, p_sin, sign


_seed_terms = TableCache(_build_seed_terms, maxsize=64)


def _seed(l_max: int, beta: Tensor, n_lo: int) -> Tensor:
    """``d^j_{mn}(β)`` at ``j = max(|m|, |n|)`` for ``|m| ≤ l_max``, ``n_lo ≤ n ≤ l_max``:
    ``(*beta.shape, 2 l_max + 1, l_max + 1 − n_lo)``; a single term of Wigner's sum."""
    log_c, p_cos, p_sin, sign = _seed_terms(l_max, n_lo, device=beta.device)
    b = beta[..., None, None]
    c, sn = torch.cos(b / 2), torch.sin(b / 2)
    log_v = log_c + torch.xlogy(p_cos, c.abs()) + torch.xlogy(p_sin, sn.abs())
    if bool((c < 0).any()) or bool((sn < 0).any()):  # β outside [0, 2π): odd powers flip sign
        sign = sign * torch.where((c < 0) & (torch.remainder(p_cos, 2) == 1), -1.0, 1.0)
        sign = sign * torch.where((sn < 0) & (torch.remainder(p_sin, 2) == 1), -1.0, 1.0)
    return torch.where(log_v > _TINY_LOG, sign * torch.exp(log_v), torch.zeros_like(log_v))


def _build_recursion_blocks(l_max: int, half: bool) -> list[tuple[Tensor, ...]]:
    """Per step ``l → l + 1``: the coefficients ``(a, a·mn/(l(l+1)), a·c)`` of
    ``d^{l+1} = a cos β d^l − a·mn/(l(l+1)) d^l − a·c d^{l−1}`` on the block ``|m|, |n| ≤ l + 1``
    (zero on its outer ring), and the ring mask where ``d^{l+1}`` starts from its seed."""
    L = l_max
    n_lo = 0 if half else -L
    out = []
    for l in range(L):
        k = l + 1
        m = torch.arange(-k, k + 1, dtype=torch.float64)[:, None]
        n = torch.arange(max(-k, n_lo), k + 1, dtype=torch.float64)[None, :]
        den = torch.sqrt((k * k - m * m) * (k * k - n * n))
        inner = den > 0
        a = torch.where(inner, k * (2 * l + 1) / torch.where(inner, den, torch.ones_like(den)),
                        torch.zeros_like(den))
        mn = m * n / (l * k) if l > 0 else torch.zeros_like(den)
        c = (torch.sqrt(((l * l - m * m) * (l * l - n * n)).clamp_min(0)) / (l * (2 * l + 1))
             if l > 0 else torch.zeros_like(den))
        out.append((a, a * mn, a * c, (~inner).to(torch.float64)))
    return out


_recursion_blocks = TableCache(_build_recursion_blocks, maxsize=64)


def wigner_d_iter(l_max: int, beta: Tensor, *, half: bool = False) -> Iterator[Tensor]:
    """Yield ``d^l(β)`` for ``l = 0 … l_max`` in a padded layout, float64.

    Each yielded tensor is ``(*beta.shape, 2 l_max + 1, W)`` indexed ``[m + l_max, n − n_lo]``,
    zero where ``max(|m|, |n|) > l``; ``W = 2 l_max + 1`` and ``n_lo = −l_max``, or with
    ``half=True`` only the columns ``n ≥ 0`` (``W = l_max + 1``, ``n_lo = 0``). The same buffer
    is reused between steps: copy what you keep.
    """
    beta = beta.to(torch.float64)
    L = l_max
    n_lo = 0 if half else -L
    seed = _seed(L, beta, n_lo)
    cosb = torch.cos(beta)[..., None, None]
    prev = torch.zeros_like(seed)
    cur = torch.zeros_like(seed)
    cur[..., L, -n_lo] = 1.0  # d^0_00 = 1
    yield cur
    blocks = _recursion_blocks(L, half, device=beta.device)
    for l in range(L):
        k = l + 1  # step l → l + 1 on the block |m|, |n| ≤ l + 1
        rs = slice(L - k, L + k + 1)
        cs = slice(max(-k, n_lo) - n_lo, k - n_lo + 1)
        a, amn, ac, ring = blocks[l]
        c_blk, p_blk = cur[..., rs, cs], prev[..., rs, cs]
        new = (a * c_blk).mul_(cosb)
        new.addcmul_(amn, c_blk, value=-1.0).addcmul_(ac, p_blk, value=-1.0)
        new.addcmul_(ring, seed[..., rs, cs])  # entries born at l + 1 start from their seed
        p_blk.copy_(c_blk)  # d^l is zero outside this block
        c_blk.copy_(new)
        yield cur


def wigner_d(l_max: int, beta: Tensor | float, *, l_min: int = 0) -> list[Tensor]:
    """Wigner small-d matrices ``[d^{l_min}(β), …, d^{l_max}(β)]``, each ``(*beta.shape, 2l+1, 2l+1)``
    indexed ``[m + l, n + l]``, in the dtype of ``beta`` (float64 for Python floats).

    All degrees up to ``l_max`` are computed by the recursion either way; ``l_min`` only limits
    what is kept (all of them take ``≈ 4/3 l_max³`` numbers per β)."""
    L = _check_lmax(l_max)
    if isinstance(l_min, bool) or not isinstance(l_min, int) or not 0 <= l_min <= L:
        raise InvalidInputError(f"l_min must be an integer in [0, l_max], got {l_min!r}")
    b = torch.as_tensor(beta, dtype=torch.float64) if not isinstance(beta, Tensor) else beta
    if not b.is_floating_point():
        b = b.to(torch.float64)
    check_finite(b, "beta")
    out = []
    for l, d in enumerate(wigner_d_iter(L, b)):
        if l >= l_min:
            out.append(d[..., L - l: L + l + 1, L - l: L + l + 1].to(b.dtype).clone())
    return out


# ----- the real basis ------------------------------------------------------------------------
def euler_angles(rotation: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """ZYZ Euler angles ``(α, β, γ)``, each ``(...,)`` float64, of rotations ``(..., 3, 3)``
    (``R = Rz(α) Ry(β) Rz(γ)``), after checking that they are rotations: raises
    :class:`~equivision.errors.InvalidInputError` otherwise."""
    # checked in its own dtype: float32 rotations do not meet the float64 tolerance once upcast
    check_rotation_matrix(rotation)
    return SO3.to_euler_zyz(rotation.to(torch.float64), check=False)


def wigner_D_real(l_max: int, rotation: Tensor) -> list[Tensor]:
    """Real Wigner-D matrices ``[D^0(R), …, D^{l_max}(R)]``, each ``(..., 2l+1, 2l+1)``, for
    rotations ``(..., 3, 3)``: they act on real coefficient blocks ``f̂_l`` (``m = −l … l``) as
    ``(x ↦ f(R⁻¹x))^_l = D^l(R) f̂_l``. Orthogonal; ``D(R1 R2) = D(R1) D(R2)``."""
    L = _check_lmax(l_max)
    alpha, beta, gamma = euler_angles(rotation)
    out = []
    for l, d in enumerate(wigner_d_iter(L, beta)):
        dl = d[..., L - l: L + l + 1, L - l: L + l + 1].to(torch.complex128)
        m = torch.arange(-l, l + 1, dtype=torch.float64, device=beta.device)
        ea = torch.exp(-1j * m * alpha[..., None])
        eg = torch.exp(-1j * m * gamma[..., None])
        dc = ea[..., :, None] * dl * eg[..., None, :]
        u = real_from_complex(l, device=beta.device)
        dr = (u.conj() @ dc @ u.transpose(0, 1)).real
        out.append(dr.to(rotation.dtype))
    return out
