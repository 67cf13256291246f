"""Vector Neurons (Deng et al. 2021): SO(3)-equivariant layers whose neurons are 3D vectors.

Features are plain tensors ``(B, C, 3, N)``: ``C`` vector channels, the 3D axis, ``N``
points (layers also take ``(B, C, 3)``, one vector list per sample, and ``(B, C, 3, N, K)``,
``K`` neighbours per point). A rotation ``R`` acts
on the 3D axis only, ``(R·V)[b, c, :, n] = R V[b, c, :, n]``
(:func:`equivision.groups.vector_feature_action`); every layer here commutes with it
exactly (up to float rounding), because it mixes channels linearly and uses the 3D axis
only through inner products and norms, which rotations keep.

* :class:`VNLinear` ``V ↦ W V``, ``W ∈ R^{C'×C}``.
* :class:`VNLeakyReLU` (and :class:`VNLinearLeakyReLU`, the paper's block ``q = W V``,
  ``k = U V``): the part of ``q`` on the negative side of the learned direction ``k`` is
  projected onto the plane ``⊥ k``; the negative slope mixes in the identity.
* :class:`VNBatchNorm`: batch norm of the vector norms, directions kept.
* :class:`VNMaxPool` (per channel, the point with the largest ``⟨v, k⟩``), :func:`vn_mean_pool`.
* :class:`VNInvariant`: ``V Tᵀ`` with a learned equivariant frame ``T(V)``: the paper's
  equation or the released code's variant (see its docstring).
* :func:`knn_indices`, :func:`vn_edge_features`: the edge feature of VN-DGCNN.

Epsilons are parameters (``eps``); each docstring states what it does near zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError

__all__ = [
    "VNBatchNorm",
    "VNInvariant",
    "VNLeakyReLU",
    "VNLinear",
    "VNLinearLeakyReLU",
    "VNMaxPool",
    "VNMeanPool",
    "knn_indices",
    "vn_edge_features",
    "vn_mean_pool",
]


def check_vector_features(x: Tensor, name: str = "x", channels: int | None = None, *,
                          points: bool | None = None) -> None:
    """Refuse anything but a floating tensor ``(B, C, 3)`` or ``(B, C, 3, N)`` (``points``:
    True = N axis required, False = forbidden, None = either) with ``channels`` channels."""
    if not isinstance(x, Tensor):
        raise InvalidInputError(f"{name} must be a tensor (B, C, 3, N), got {type(x).__name__}")
    if not x.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point (float32 or float64), got {x.dtype}")
    ndims = {True: (4,), False: (3,), None: (3, 4, 5)}[points]
    want = " or ".join({3: "(B, C, 3)", 4: "(B, C, 3, N)", 5: "(B, C, 3, N, K)"}[d] for d in ndims)
    if x.ndim not in ndims or x.shape[2] != 3:
        raise ShapeError(f"{name} must have shape {want} (vector features), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ShapeError(f"{name} has {x.shape[1]} channels, the layer expects {channels}")


def _mix(x: Tensor, weight: Tensor) -> Tensor:
    """``W V`` over the channel axis: ``weight (C', C)``, ``x (B, C, 3[, N[, K]])`` →
    ``(B, C', 3[, N[, K]])``."""
    # one (C', C) @ (C, 3·N·K) product per sample: the output comes out contiguous, so the
    # elementwise work after it (norms, projections, batch norm) runs on dense memory
    b, c = x.shape[:2]
    out = torch.bmm(weight.expand(b, -1, -1), x.reshape(b, c, -1))
    return out.reshape(b, weight.shape[0], *x.shape[2:])


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``⟨a, b⟩`` over the 3D axis, kept: ``(B, C, 1[, N])``."""
    return (a * b).sum(2, keepdim=True)


class VNLinear(nn.Module):
    """``V' = W V``: ``(B, C_in, 3[, N])`` → ``(B, C_out, 3[, N])``, no bias (a bias vector
    would not rotate). ``weight (C_out, C_in)`` is initialised as ``nn.Linear``'s."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        for v, n in ((in_channels, "in_channels"), (out_channels, "out_channels")):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"{n} must be a positive integer, got {v!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        check_vector_features(x, "x", self.in_channels)
        return _mix(x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


def _leaky_project_reference(q: Tensor, k: Tensor, negative_slope: float, eps: float) -> Tensor:
    """The paper's equation: ``q`` where ``⟨q, k⟩ ≥ 0``, else ``q − ⟨q, k⟩/(|k|² + ε) k``,
    then ``α q + (1 − α) ·`` that, differentiated by autograd (the oracle of
    :class:`_LeakyProject`)."""
    # the same map in one pass over q: α q + (1 − α) relu = q − (1 − α) min(⟨q, k⟩, 0)/(|k|² + ε) k
    coef = _dot(q, k).clamp(max=0) / (_dot(k, k) + eps)
    return q - ((1 - negative_slope) * coef) * k


class _LeakyProject(torch.autograd.Function):
    """:func:`_leaky_project_reference` with a hand-written backward: with ``s = ⟨q, k⟩``,
    ``t = |k|² + ε``, ``c = (1 − α) min(s, 0)/t``, ``m = (1 − α) [s ≤ 0]/t``, ``out = q − c k``
    and ``γ = ⟨g, k⟩`` for the output gradient ``g``:
    ``∂q = g − m γ k``, ``∂k = −c g − m γ q + 2 γ c/t · k``.
    It saves ``q``, ``k`` and the small ``(…, 1, …)`` factors instead of every intermediate of
    autograd's graph, and does a few passes over the big tensors where autograd does a dozen:
    the edge layers' ``(B, C, 3, N, K)`` tensors make this most of a VN model's step."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, negative_slope: float, eps: float) -> Tensor:  # type: ignore[override]
        s = _dot(q, k)
        t = _dot(k, k) + eps
        keep = 1 - negative_slope
        c = keep * s.clamp(max=0) / t
        # the reference's clamp passes the gradient at s = 0 too
        m = (s <= 0).to(q.dtype) * (keep / t)
        ctx.save_for_backward(q, k, c, m, t)
        return q - c * k

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:  # type: ignore[override]
        q, k, c, m, t = ctx.saved_tensors
        gamma = _dot(g, k)
        mg = m * gamma
        grad_q = grad_k = None
        if ctx.needs_input_grad[0]:
            grad_q = g - mg * k
        if ctx.needs_input_grad[1]:
            grad_k = (2 * gamma * c / t) * k - c * g - mg * q
        return grad_q, grad_k, None, None


def _leaky_project(q: Tensor, k: Tensor, negative_slope: float, eps: float) -> Tensor:
    """The VN leaky ReLU's map (:func:`_leaky_project_reference`), by :class:`_LeakyProject`;
    ``k (B, 1, 3, …)`` (a shared direction) is broadcast over ``q``'s channels first."""
    if k.shape != q.shape:
        k = k.expand_as(q)
    return _LeakyProject.apply(q, k, negative_slope, eps)


class VNLeakyReLU(nn.Module):
    """The vector ReLU of ``q (B, C, 3[, N])`` with a learned direction ``k = U q``:

    ``q' = α q + (1 − α) (q if ⟨q, k⟩ ≥ 0 else q − ⟨q, k⟩ k / (|k|² + ε))``,

    ``U (C, C)`` (one direction per channel) or ``(1, C)`` with ``share_direction`` (one for
    all channels); ``α = negative_slope`` (0: the plain VN-ReLU). The map is continuous
    (the projection is the identity where ``⟨q, k⟩ = 0``).

    Near zero: ``k = 0`` (or ``q = 0``) gives ``⟨q, k⟩ = 0`` and returns ``q`` unchanged, so
    zero vectors give finite values and gradients. ``ε`` only matters when ``|k|² ≲ ε``: the
    projection then removes the fraction ``|k|²/(|k|² + ε)`` of ``q``'s component along
    ``k`` instead of all of it (measured at ε = 1e-6 with ``q = −k``: |k| = 1 leaves 1.0e-6
    of that component, |k| = 1e-2 leaves 9.9e-3, |k| = 1e-3 leaves 0.50). It never breaks
    equivariance: ``⟨q, k⟩`` and ``|k|²`` are invariants.
    """

    def __init__(self, channels: int, *, share_direction: bool = False, negative_slope: float = 0.2,
                 eps: float = 1e-6) -> None:
        super().__init__()
        _check_slope_eps(negative_slope, eps)
        self.channels, self.negative_slope, self.eps = channels, float(negative_slope), float(eps)
        self.direction = VNLinear(channels, 1 if share_direction else channels)

    def forward(self, q: Tensor) -> Tensor:
        check_vector_features(q, "q", self.channels)
        return _leaky_project(q, self.direction(q), self.negative_slope, self.eps)


def _check_slope_eps(negative_slope: float, eps: float) -> None:
    if not 0 <= negative_slope < 1:
        raise InvalidInputError(f"negative_slope must be in [0, 1), got {negative_slope!r}")
    if not eps > 0:
        raise InvalidInputError(f"eps must be positive, got {eps!r}")


class VNBatchNorm(nn.Module):
    """Batch norm of the vector norms, directions kept: ``v' = v / n · BN(n)`` with the
    smoothed norm ``n = sqrt(|v|² + ε²)``, per channel over the batch (and the points).
    ``(B, C, 3[, N])`` → same shape.

    The authors' code divides by ``|v| + ε``; the smoothed norm differs from it by less than
    ``ε`` and, unlike ``|v|``, has a finite gradient at ``v = 0`` (where the output is 0).
    Near zero the output's scale is ``BN(n)/n`` with ``n ≥ ε``: a vector of norm ``r ≪ ε``
    is scaled as if its norm were ``ε`` (measured at ε = 1e-6: r = 1e-3 makes ``n`` larger
    than ``r`` by 5.0e-7 relative, r = 1e-6 by 41 %, r = 1e-9 by a factor 1,000).
    """

    def __init__(self, channels: int, *, eps: float = 1e-6, momentum: float = 0.1) -> None:
        super().__init__()
        if not eps > 0:
            raise InvalidInputError(f"eps must be positive, got {eps!r}")
        self.channels, self.eps = channels, float(eps)
        self.bn = nn.BatchNorm1d(channels, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        check_vector_features(x, "x", self.channels)
        norm = (x.square().sum(2) + self.eps ** 2).sqrt()  # (B, C[, N[, K]])
        scaled = self.bn(norm.flatten(2) if norm.ndim > 3 else norm).reshape(norm.shape)
        return x * (scaled / norm).unsqueeze(2)


class VNLinearLeakyReLU(nn.Module):
    """The paper's block: ``q = BN(W V)``, ``k = U V`` (the direction from the block's input,
    as in the paper's equation), then :class:`VNLeakyReLU`'s map. ``(B, C_in, 3[, N])`` →
    ``(B, C_out, 3[, N])``. ``U (C_out, C_in)``, or ``(1, C_in)`` with ``share_direction``."""

    def __init__(self, in_channels: int, out_channels: int, *, batch_norm: bool = True,
                 share_direction: bool = False, negative_slope: float = 0.2, eps: float = 1e-6) -> None:
        super().__init__()
        _check_slope_eps(negative_slope, eps)
        self.linear = VNLinear(in_channels, out_channels)
        self.bn = VNBatchNorm(out_channels, eps=eps) if batch_norm else None
        self.direction = VNLinear(in_channels, 1 if share_direction else out_channels)
        self.negative_slope, self.eps = float(negative_slope), float(eps)

    def forward(self, x: Tensor) -> Tensor:
        q = self.linear(x)
        if self.bn is not None:
            q = self.bn(q)
        return _leaky_project(q, self.direction(x), self.negative_slope, self.eps)


class VNMaxPool(nn.Module):
    """Max over points by a learned direction: for each sample and channel ``c``, the vector
    ``v_{c,n*}`` with ``n* = argmax_n ⟨v_{c,n}, k_{c,n}⟩``, ``k = U V`` (``U (C, C)``).
    ``(B, C, 3, N)`` → ``(B, C, 3)``, or ``(B, C, 3, N, K)`` → ``(B, C, 3, N)`` (over the
    last axis, e.g. neighbours). Ties go to the first index. No epsilon: only the argmax
    of an invariant is used."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.direction = VNLinear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 5:
            b, c, _, n, k = x.shape
            flat = x.permute(0, 3, 1, 2, 4).reshape(b * n, c, 3, k)
            return self.forward(flat).reshape(b, n, c, 3).permute(0, 2, 3, 1)
        check_vector_features(x, "x", self.channels, points=True)
        score = (x * self.direction(x)).sum(2)  # (B, C, N)
        idx = score.argmax(-1)  # (B, C)
        return torch.gather(x, 3, idx[:, :, None, None].expand(-1, -1, 3, 1)).squeeze(3)


def vn_mean_pool(x: Tensor, dim: int = -1) -> Tensor:
    """Mean over the points (or neighbours) axis ``dim`` of ``(B, C, 3, N[, K])``: a mean of
    vectors is equivariant."""
    if not isinstance(x, Tensor) or x.ndim < 4 or x.shape[2] != 3:
        raise ShapeError(f"x must have shape (B, C, 3, N[, K]), got {tuple(getattr(x, 'shape', ()))}")
    return x.mean(dim)


class VNMeanPool(nn.Module):
    """:func:`vn_mean_pool` over the last axis as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return vn_mean_pool(x)


class VNInvariant(nn.Module):
    """Rotation-invariant features ``V T(V)ᵀ`` from an equivariant frame ``T(V)``.

    ``V (B, C, 3[, N])`` → ``(invariant (B, C, C'[, N]), frame (B, C', 3[, N]))`` with
    ``invariant[b, c, j] = ⟨v_c, t_j⟩``: since ``T(R V) = T(V) Rᵀ``, ``(V Rᵀ)(R Tᵀ) = V Tᵀ``.

    ``variant="paper"`` (the paper's equation): ``T = W V`` with ``W (C', C)`` one
    :class:`VNLinear` (``frame_channels = C'``, default 3); no nonlinearity, no
    normalisation: the invariant is a learned quadratic form of ``V``, exactly invariant
    under SO(3) *and* reflections.

    ``variant="code"`` (the authors' released ``VNStdFeature``): ``T`` is a VN-MLP,
    ``VNLinearLeakyReLU(C → C/2) → VNLinearLeakyReLU(C/2 → C/4) → VNLinear(C/4 → 3)``
    (batch norm in both blocks), so ``C' = 3``. With ``normalize_frame`` the last layer
    gives two vectors ``z1, z2`` and the frame is orthonormalised, ``u1 = z1/|z1|_ε``,
    ``u2 = Gram–Schmidt(z2)/|·|_ε``, ``u3 = u1 × u2`` (``|z|_ε = sqrt(|z|² + ε²)``; the code
    divides by ``|z| + ε``, whose gradient at ``z = 0`` is not finite): the invariant is then ``V``
    expressed in a learned rotation frame (norms kept), invariant under SO(3) only (the
    cross product flips under reflections), and ill-conditioned where ``z1 ∥ z2``.
    Where they differ: the frame is a nonlinear, batch-normed MLP (the paper writes one
    equivariant map and leaves it open), ``C'`` is fixed at 3, and the optional
    orthonormalisation. (The classifiers of the code also concatenate each point's
    features with their mean over the points before this layer; the models here do too.)

    ``eps`` (code variant): the VN blocks' ε, and the ε of the frame normalisation; a
    zero frame vector gives a zero ``u`` (finite values and gradients) instead of NaN, and
    ``|u| = 1 − O(ε²/|z|²)``. Rounding is amplified by ``1/|z2 − ⟨z2, u1⟩u1|``: measured
    equivariance errors of the orthonormalised variant 1e-6 to 6e-6 (float32) and up to
    6e-14 (float64) at ``in_channels`` 8, 16, 64 (random features, 3 seeds), against 4e-3
    to 6e-3 (float32) with ``in_channels = 6``, where ``in_channels // 4 = 1`` makes ``z1 ∥ z2``
    always (hence ``in_channels >= 8`` is required).
    """

    def __init__(self, in_channels: int, *, variant: str = "paper", frame_channels: int = 3,
                 normalize_frame: bool = False, negative_slope: float = 0.2, eps: float = 1e-6) -> None:
        super().__init__()
        if variant not in ("paper", "code"):
            raise InvalidInputError(f"variant must be 'paper' or 'code', got {variant!r}")
        if variant == "code" and frame_channels != 3:
            raise InvalidInputError("variant 'code' has a frame of 3 vectors (frame_channels=3)")
        if normalize_frame and variant != "code":
            raise InvalidInputError("normalize_frame is an option of variant 'code'")
        if normalize_frame and in_channels < 8:
            # C/4 = 1 channel before the last VNLinear makes z1 and z2 parallel: no frame
            raise InvalidInputError(f"normalize_frame needs in_channels >= 8 (its MLP narrows to "
                                    f"in_channels // 4 >= 2 vectors), got {in_channels}")
        self.variant, self.normalize_frame, self.eps = variant, bool(normalize_frame), float(eps)
        self.in_channels = in_channels
        if variant == "paper":
            self.frame = nn.Sequential(VNLinear(in_channels, frame_channels))
        else:
            c2, c4 = max(in_channels // 2, 1), max(in_channels // 4, 1)
            self.frame = nn.Sequential(
                VNLinearLeakyReLU(in_channels, c2, negative_slope=negative_slope, eps=eps),
                VNLinearLeakyReLU(c2, c4, negative_slope=negative_slope, eps=eps),
                VNLinear(c4, 2 if normalize_frame else 3),
            )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_vector_features(x, "x", self.in_channels)
        t = self.frame(x)  # (B, C', 3[, N])
        if self.normalize_frame:
            z1, z2 = t[:, 0:1], t[:, 1:2]
            u1 = z1 / (_dot(z1, z1) + self.eps ** 2).sqrt()
            v2 = z2 - _dot(z2, u1) * u1
            u2 = v2 / (_dot(v2, v2) + self.eps ** 2).sqrt()
            u3 = torch.linalg.cross(u1, u2, dim=2)
            t = torch.cat([u1, u2, u3], 1)
        inv = torch.einsum("bci...,bji...->bcj...", x, t)
        return inv, t


def knn_indices(features: Tensor, k: int) -> Tensor:
    """Indices ``(B, N, k)`` of each point's ``k`` nearest points (itself first) by the
    Euclidean distance between whole features: ``features (B, C, 3, N)`` (vector features;
    ``C = 1`` holds the xyz) or ``(B, D, N)`` (scalar features). Distances between vector
    features are invariant under a rotation of all of them, so the neighbours are too.
    Fewer than ``k`` points raises :class:`~equivision.errors.DegenerateGeometryError`."""
    if not isinstance(features, Tensor) or features.ndim not in (3, 4) or (
            features.ndim == 4 and features.shape[2] != 3):
        raise ShapeError(f"features must be (B, C, 3, N) or (B, D, N), got "
                         f"{tuple(getattr(features, 'shape', ()))}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    n = features.shape[-1]
    if n < k:
        raise DegenerateGeometryError(f"{n} points but k = {k} neighbours are needed; give at "
                                      f"least {k} points")
    f = features.detach().reshape(features.shape[0], -1, n).transpose(1, 2)  # (B, N, D)
    # direct differences, not |a|² + |b|² − 2⟨a, b⟩, whose cancellation reorders near neighbours
    d = torch.cdist(f, f, compute_mode="donot_use_mm_for_euclid_dist")  # (B, N, N)
    return d.topk(k, dim=-1, largest=False).indices


def vn_edge_features(x: Tensor, k: int, idx: Tensor | None = None) -> Tensor:
    """VN-DGCNN's edge feature ``[x_j − x_i, x_i]`` over each point ``i``'s ``k`` nearest
    neighbours ``j`` (by :func:`knn_indices` of ``x`` unless ``idx (B, N, k)`` is given):
    ``x (B, C, 3, N)`` → ``(B, 2C, 3, N, k)``. Both parts rotate with ``x``."""
    check_vector_features(x, "x", points=True)
    b, c, _, n = x.shape
    if idx is None:
        idx = knn_indices(x, k)
    elif idx.ndim != 3 or idx.shape[:2] != (b, n) or idx.dtype != torch.long:
        raise ShapeError(f"idx must be int64 (B, N, k) = ({b}, {n}, k), got {idx.dtype} {tuple(idx.shape)}")
    kk = idx.shape[-1]
    flat = x.reshape(b, c * 3, n)
    nb = torch.gather(flat, 2, idx.reshape(b, 1, n * kk).expand(b, c * 3, n * kk)).reshape(b, c, 3, n, kk)
    centre = x[..., None].expand(b, c, 3, n, kk)
    return torch.cat([nb - centre, centre], 1)
