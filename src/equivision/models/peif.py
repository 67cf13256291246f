"""PEIF's displacement predictor (Hu et al., NeurIPS 2024), on canonical patches.

Input: a patch of K points and its query, both already in the patch's canonical frame
(:func:`equivision.recon.frames.canonical_patches`); output: the displacement from the query
to the nearest surface point, in that frame. Because the input is pose-normalised, this
network needs no equivariance of its own: :func:`equivision.recon.predict.predict_displacement`
rotates its output back, which makes the whole field SE(3)-equivariant patch by patch.

Architecture (paper Sec. 4 / App. B; feature size ``D``, default 128 as in the paper):

* **SRM** (spatial relation module): ``zᵢ = MLP_s([p̄ᵢ, p̄ᵢ − q̄])`` (6 → 32 → 64 → D per
  point), concatenated over the K points into ``h_q``.
* **PFEM** (patch feature extraction): ``f_q = MLP_q(q̄)``, ``f_pᵢ = MLP_p(p̄ᵢ)``
  (3 → 32 → 64 → D); single-head attention of ``f_q`` over the ``f_pᵢ`` gives ``f_Pw``; the
  same attention restricted to its top-``K_d`` weights gives ``f_Ps`` (``K_d`` is not given in
  the paper: default K/4); ``f_P = λ₁ f_Pw + λ₂ f_Ps`` with learnable ``λ``.
* **IPGE** (intrinsic patch geometry extractor): a memory bank of ``heads`` × ``items`` vectors
  in R^D (4 × 596 in the paper); per head ``g = Σᵢ softmax(f_P Mᵀ)ᵢ Mᵢ``; heads averaged.
* **Output**: ``MLP_a(h_q ⊕ f_q ⊕ {f_pᵢ})`` (256, 512, 256, 384) concatenated with ``g_P``,
  then ``MLP_d`` (256, 256, 256, 256) → 3.

Deviation from the paper, for conditioning: inputs are divided by the patch's RMS radius and
the output multiplied by it (see :meth:`PEIFNet.forward`).

The memory-bank separation loss of the paper (:meth:`PEIFNet.memory_separation_loss`) is the
mean over heads of ``max(cos(Mᵢ, Mⱼ), 0)`` over pairs ``i ≠ j`` of items of that head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equivision._validation import require_positive
from equivision.configio import check_fields
from equivision.errors import ConfigError, ShapeError
from equivision.models import register_model
from equivision.nn.pointwise import linear_relu, mlp, run_mlp


@dataclass
class PEIFConfig:
    """Hyper-parameters of the displacement predictor (defaults: the paper's, K = 32)."""

    k: int = 32
    feature_dim: int = 128
    top_k: int = 8
    memory_heads: int = 4
    memory_items: int = 596
    mlp_a: list[int] = field(default_factory=lambda: [256, 512, 256, 384])
    mlp_d: list[int] = field(default_factory=lambda: [256, 256, 256, 256])
    pose_normalization: bool = True
    """False: the paper's ablation. Patches are only centred on their centroid (world axes
    kept, no rotation back), so the field is no longer rotation-equivariant."""

    def __post_init__(self) -> None:
        check_fields(self, "model")
        for k in ("k", "feature_dim", "top_k", "memory_heads", "memory_items"):
            require_positive(getattr(self, k), f"model.{k}", error=ConfigError)
        for k in ("mlp_a", "mlp_d"):
            widths = getattr(self, k)
            if not widths:
                raise ConfigError(f"model.{k} needs at least one layer width, got []")
            for i, w in enumerate(widths):
                require_positive(w, f"model.{k}[{i}]", error=ConfigError)


class PatchAttention(nn.Module):
    """Single-head attention of a query feature over patch features, and its top-k variant.

    ``f_q (Q, D)``, ``f_p (Q, K, D)`` → ``(f_Pw, f_Ps)``, each ``(Q, D)``.
    """

    def __init__(self, dim: int, top_k: int) -> None:
        super().__init__()
        self.w_q = nn.Linear(dim, dim, bias=False)
        self.w_k = nn.Linear(dim, dim, bias=False)
        self.w_v = nn.Linear(dim, dim, bias=False)
        self.top_k = top_k

    def forward(self, f_q: Tensor, f_p: Tensor) -> tuple[Tensor, Tensor]:
        logits = torch.einsum("qd,qkd->qk", self.w_q(f_q), self.w_k(f_p)) / math.sqrt(f_q.shape[-1])
        values = self.w_v(f_p)
        weights = logits.softmax(-1)
        f_w = torch.einsum("qk,qkd->qd", weights, values)
        k = min(self.top_k, f_p.shape[1])
        top, idx = logits.topk(k, dim=-1)
        top_w = top.softmax(-1)
        f_s = torch.einsum(
            "qk,qkd->qd", top_w, values.gather(1, idx[..., None].expand(-1, -1, values.shape[-1]))
        )
        return f_w, f_s

    def pooled(self, f_q: Tensor, f_p: Tensor, lambdas: Tensor) -> Tensor:
        """``λ₁ f_Pw + λ₂ f_Ps`` of :meth:`forward` at the cost of one key and one value map per
        query: ``⟨W_k f_pᵢ, W_q f_q⟩ = ⟨f_pᵢ, W_kᵀ W_q f_q⟩`` and both pools are weighted sums
        of the ``f_pᵢ`` before the (linear, bias-free) ``W_v``."""
        q = self.w_q(f_q) @ self.w_k.weight  # (Q, D)
        logits = torch.bmm(f_p, q[:, :, None])[..., 0] / math.sqrt(f_q.shape[-1])
        top, idx = logits.topk(min(self.top_k, f_p.shape[1]), dim=-1)
        mix = (lambdas[0] * logits.softmax(-1)).scatter_add(1, idx, lambdas[1] * top.softmax(-1))
        return self.w_v(torch.bmm(mix[:, None], f_p)[:, 0])


class MemoryBank(nn.Module):
    """Multi-head memory of learned geometry items: ``f (Q, D)`` → ``(Q, D)`` (heads averaged)."""

    def __init__(self, heads: int, items: int, dim: int) -> None:
        super().__init__()
        self.items = nn.Parameter(torch.randn(heads, items, dim) / math.sqrt(dim))

    def forward(self, f: Tensor) -> Tensor:
        w = torch.einsum("qd,hmd->qhm", f, self.items).softmax(-1)
        return torch.einsum("qhm,hmd->qd", w, self.items) / self.items.shape[0]

    def separation_loss(self) -> Tensor:
        """Mean over heads and item pairs ``i ≠ j`` of ``max(cos(Mᵢ, Mⱼ), 0)``."""
        m = F.normalize(self.items, dim=-1)
        cos = m @ m.transpose(-1, -2)
        n = cos.shape[-1]
        off = ~torch.eye(n, dtype=torch.bool, device=cos.device)
        return cos.clamp_min(0)[:, off].mean()


class PEIFNet(nn.Module):
    """Displacement in the canonical frame: ``patches (Q, K, 3)``, ``queries (Q, 3)`` → ``(Q, 3)``."""

    def __init__(self, cfg: PEIFConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, k = cfg.feature_dim, cfg.k
        self.srm = mlp([6, 32, 64, d])
        self.mlp_q = mlp([3, 32, 64, d])
        self.mlp_p = mlp([3, 32, 64, d])
        self.attention = PatchAttention(d, cfg.top_k)
        self.lambdas = nn.Parameter(torch.tensor([1.0, 1.0]))
        self.memory = MemoryBank(cfg.memory_heads, cfg.memory_items, d)
        self.mlp_a = mlp([2 * k * d + d, *cfg.mlp_a])
        self.mlp_d = nn.Sequential(mlp([cfg.mlp_a[-1] + d, *cfg.mlp_d]), nn.Linear(cfg.mlp_d[-1], 3))

    def _check_inputs(self, patches: Tensor, queries: Tensor) -> None:
        k = self.cfg.k
        if patches.ndim != 3 or patches.shape[1:] != (k, 3):
            raise ShapeError(
                f"patches must be (Q, {k}, 3) for this model (k={k}), got {tuple(patches.shape)}"
            )
        if queries.shape != (patches.shape[0], 3):
            raise ShapeError(f"queries must be ({patches.shape[0]}, 3), got {tuple(queries.shape)}")

    @staticmethod
    def _normalise(patches: Tensor, queries: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Patches and queries divided by the patch's RMS radius ``s (Q, 1)``, and ``s``."""
        s = patches.pow(2).sum(-1).mean(-1).sqrt().clamp_min(1e-12)[:, None]  # (Q, 1)
        return patches / s[:, :, None], queries / s, s

    def forward(self, patches: Tensor, queries: Tensor) -> Tensor:
        k = self.cfg.k
        self._check_inputs(patches, queries)
        # Conditioning (our addition to the paper): canonical coordinates of a K-NN patch in a
        # unit-box cloud are ~1e-2, which leaves a freshly initialised MLP nearly constant in
        # its input. Divide by the patch's RMS radius s (invariant under SE(3), so equivariance
        # is untouched) and scale the output back by s; this also makes the field equivariant
        # to uniform scaling, which helps clouds of other densities.
        patches, queries, s = self._normalise(patches, queries)
        n, d = patches.shape[0], self.cfg.feature_dim
        # The paper's formulation, rearranged so that nothing of width K·D or 2·K·D + D is
        # concatenated and the attention's key/value maps act on one vector per query instead
        # of K; the same function (tests/recon/test_peif_model.py keeps the literal one as an
        # oracle), about 1.5x faster on CPU.
        # SRM: MLP_s([p̄ᵢ, p̄ᵢ − q̄]) with its first layer split over the two halves of the input
        w0, b0 = self.srm[0].weight, self.srm[0].bias
        h = torch.addmm(b0, patches.reshape(-1, 3), (w0[:, :3] + w0[:, 3:]).T).view(n, k, -1)
        h = run_mlp(self.srm[2:], (h - (queries @ w0[:, 3:].T)[:, None]).relu_())  # (Q, K, D)
        f_q = run_mlp(self.mlp_q, queries)  # (Q, D)
        f_p = run_mlp(self.mlp_p, patches)  # (Q, K, D)
        f_patch = self.attention.pooled(f_q, f_p, self.lambdas)
        g = self.memory(f_patch)
        # MLP_a on h_q ⊕ f_q ⊕ {f_pᵢ}: its first layer as three products
        wa, kd = self.mlp_a[0].weight, k * d
        a = torch.addmm(self.mlp_a[0].bias, h.reshape(n, kd), wa[:, :kd].T)
        a = a.addmm_(f_q, wa[:, kd : kd + d].T).addmm_(f_p.reshape(n, kd), wa[:, kd + d :].T)
        a = run_mlp(self.mlp_a[2:], a.relu_())
        return run_mlp(self.mlp_d, torch.cat([a, g], -1)) * s

    def _lowp_weights(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """The weights of :meth:`infer`, rearranged and cast once, kept until a parameter
        changes (an optimiser step or ``load_state_dict`` bumps its version)."""
        key = (dtype, tuple((p.data_ptr(), p._version) for p in self.parameters()))
        cache = self.__dict__.get("_lowp_cache")
        if cache is not None and cache[0] == key:
            return cache[1]
        k, d = self.cfg.k, self.cfg.feature_dim
        srm = [m for m in self.srm if isinstance(m, nn.Linear)]
        mp = [m for m in self.mlp_p if isinstance(m, nn.Linear)]
        # SRM and MLP_p side by side on each patch point: the first layer on [p̄, p̄ − q̄]
        # (float32), the others block-diagonal, so one product per layer gives [zᵢ, f_pᵢ]
        first = torch.cat([srm[0].weight, F.pad(mp[0].weight, (0, 3))], 0)
        w: dict[str, Tensor] = {"pp_w0": first, "pp_b0": torch.cat([srm[0].bias, mp[0].bias])}
        for i, (a, b) in enumerate(zip(srm[1:], mp[1:], strict=True)):
            w[f"pp_w{i + 1}"] = torch.block_diag(a.weight, b.weight).to(dtype)
            w[f"pp_b{i + 1}"] = torch.cat([a.bias, b.bias]).to(dtype)
        # MLP_a's first layer: its columns reordered to act on [z₁, f_p₁, …, z_K, f_p_K], and f_q
        wa = self.mlp_a[0].weight
        w["a_zp"] = torch.cat([wa[:, : k * d].reshape(-1, k, d), wa[:, k * d + d :].reshape(-1, k, d)],
                              -1).reshape(wa.shape[0], -1).to(dtype)
        w["a_q"] = wa[:, k * d : k * d + d].to(dtype)
        w["a_b"] = self.mlp_a[0].bias.to(dtype)
        md = self.mlp_d[0][0]
        w["d_a"], w["d_g"] = md.weight[:, : -d].to(dtype), md.weight[:, -d:].to(dtype)
        w["d_b"] = md.bias.to(dtype)
        att = self.attention
        w["att_qk"] = att.w_k.weight.T @ att.w_q.weight  # float32: the logits' query vector
        w["att_v"] = att.w_v.weight.to(dtype)
        w["memory"] = self.memory.items.reshape(-1, d).to(dtype)
        lowp = {name: [(m.weight.to(dtype), m.bias.to(dtype)) for m in seq if isinstance(m, nn.Linear)]
                for name, seq in (("mlp_q", self.mlp_q[2:]), ("mlp_a", self.mlp_a[2:]),
                                  ("mlp_d", self.mlp_d[0][2:]))}
        out = {"w": {n: t.detach() for n, t in w.items()}, **lowp}
        self.__dict__["_lowp_cache"] = (key, out)
        return out

    @torch.no_grad()
    def infer(self, patches: Tensor, queries: Tensor, dtype: torch.dtype = torch.bfloat16) -> Tensor:
        """:meth:`forward` without autograd, its products in ``dtype`` (bfloat16): on a CPU with
        AMX about 3x faster than float32 (:func:`equivision.nn.cpu.bf16_matmul_supported`).

        Weights are rearranged and cast once (cached); activations stay in ``dtype`` between
        layers, every product accumulates in float32 inside oneDNN and is rounded once.
        Float32 where precision matters: the input scaling, the first layer of each per-point
        MLP (3 or 6 coordinates in; bfloat16 would round them to 0.4 %), both softmaxes and the
        top-k selection (attention and memory bank), the output layer and the rescaling of the
        displacement. The same function as :meth:`forward` (SRM and MLP_p run side by side as
        block-diagonal layers; tested against it). Measured on the packaged model: the
        displacement differs from float32 by ~0.25 % of its norm on average.
        """
        k = self.cfg.k
        self._check_inputs(patches, queries)
        c = self._lowp_weights(dtype)
        w = c["w"]
        patches, queries = patches.float(), queries.float()
        patches, queries, s = self._normalise(patches, queries)
        n, d = patches.shape[0], self.cfg.feature_dim
        # SRM and MLP_p together: z (Q·K, 2D) holds [zᵢ, f_pᵢ] of every patch point
        z = torch.cat([patches, patches - queries[:, None]], -1).reshape(-1, 6)
        z = linear_relu(z, w["pp_w0"], w["pp_b0"]).to(dtype)
        i = 1
        while f"pp_w{i}" in w:
            z = linear_relu(z, w[f"pp_w{i}"], w[f"pp_b{i}"])
            i += 1
        z = z.view(n, k, 2 * d)
        f_q = linear_relu(queries, self.mlp_q[0].weight, self.mlp_q[0].bias).to(dtype)
        f_q = run_mlp(self.mlp_q[2:], f_q, c["mlp_q"])  # (Q, D)
        # attention (PatchAttention.pooled); the query vector is zero on the zᵢ half, so the
        # products read f_pᵢ in place; softmaxes and top-k in float32
        qv = F.pad(f_q.float() @ w["att_qk"].T, (d, 0)).to(dtype)  # (Q, 2D)
        logits = torch.bmm(z, qv[:, :, None])[..., 0].float() / math.sqrt(d)
        top, idx = logits.topk(min(self.attention.top_k, k), dim=-1)
        lam = self.lambdas.float()
        mix = (lam[0] * logits.softmax(-1)).scatter_add(1, idx, lam[1] * top.softmax(-1))
        pooled = torch.bmm(mix[:, None].to(dtype), z)[:, 0, d:]
        f_patch = F.linear(pooled, w["att_v"])
        # memory bank: softmax in float32, the weighted sum in dtype
        items, heads = w["memory"], self.memory.items.shape[0]
        mw = torch.softmax((f_patch @ items.T).view(n, heads, -1), -1, dtype=torch.float32)
        g = (mw.view(n, 1, -1).to(dtype) @ items)[:, 0] / heads
        # MLP_a on h_q ⊕ f_q ⊕ {f_pᵢ}, MLP_d on [a, g]: first layers as products summed in place
        a = torch.addmm(w["a_b"], z.view(n, -1), w["a_zp"].T).addmm_(f_q, w["a_q"].T).relu_()
        a = run_mlp(self.mlp_a[2:], a, c["mlp_a"])
        a = torch.addmm(w["d_b"], a, w["d_a"].T).addmm_(g, w["d_g"].T).relu_()
        a = run_mlp(self.mlp_d[0][2:], a, c["mlp_d"])
        return F.linear(a.float(), self.mlp_d[1].weight, self.mlp_d[1].bias) * s

    def memory_separation_loss(self) -> Tensor:
        return self.memory.separation_loss()


@register_model("peif", PEIFConfig)
def build_peif(cfg: PEIFConfig) -> nn.Module:
    return PEIFNet(cfg)
