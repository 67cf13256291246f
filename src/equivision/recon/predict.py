"""The PEIF field on a whole cloud: patches → canonical frames → network → world displacement."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.models.peif import bf16_matmul_supported
from equivision.recon.frames import canonical_patches, vectors_from_frame
from equivision.recon.patches import knn_patches

# Queries per network call: the activations of ~1k queries stay in cache on CPU (measured
# 1.3x the throughput of 16k-query calls on one thread); patches and frames are built for
# ``batch_size`` queries at once.
NET_CHUNK = 1024


#: ``--precision`` names (CLI, benchmark) to ``compute_dtype`` values of :func:`inference_dtype`.
COMPUTE_DTYPES: dict[str, torch.dtype | None] = {"auto": None, "float32": torch.float32,
                                                 "bfloat16": torch.bfloat16}


def inference_dtype(model: nn.Module, compute_dtype: torch.dtype | None = None) -> torch.dtype:
    """The arithmetic of the network for ``compute_dtype``.

    ``None`` (automatic): bfloat16 for a float32 model on CPU, without autograd, when the CPU
    multiplies bfloat16 natively (:func:`equivision.models.peif.bf16_matmul_supported`: AMX
    or AVX-512 BF16) and the model has the reduced-precision path (``model.infer``); else the
    model's own dtype. ``torch.float32``: always the ordinary forward, in the model's own
    dtype (float32 for the packaged model). ``torch.bfloat16``: always ``model.infer`` in
    bfloat16 (on any device; slow where bfloat16 products are emulated)."""
    param = next(model.parameters())
    if compute_dtype is None:
        auto = (param.device.type == "cpu" and param.dtype == torch.float32
                and not torch.is_grad_enabled() and hasattr(model, "infer")
                and bf16_matmul_supported())
        return torch.bfloat16 if auto else param.dtype
    if compute_dtype == torch.float32:
        return param.dtype
    if compute_dtype != torch.bfloat16:
        raise InvalidInputError(
            f"compute_dtype must be None, torch.float32 or torch.bfloat16, got {compute_dtype}")
    if not hasattr(model, "infer"):
        raise InvalidInputError(f"{type(model).__name__} has no bfloat16 inference path (infer)")
    return torch.bfloat16


def _net(model: nn.Module, patches: Tensor, queries: Tensor, dtype: torch.dtype) -> Tensor:
    """The network on canonical patches: ``model.infer`` in ``dtype`` when that is bfloat16
    (no autograd), else the ordinary forward; in chunks of ``NET_CHUNK`` queries on CPU."""
    lowp = dtype == torch.bfloat16
    if lowp and torch.is_grad_enabled():
        raise InvalidInputError("bfloat16 inference runs without autograd (use torch.no_grad())")
    if not lowp and (torch.is_grad_enabled() or patches.device.type != "cpu"):
        return model(patches, queries)

    def call(p: Tensor, q: Tensor) -> Tensor:
        return model.infer(p, q, dtype) if lowp else model(p, q)  # type: ignore[operator]

    return torch.cat([call(patches[s : s + NET_CHUNK], queries[s : s + NET_CHUNK])
                      for s in range(0, max(1, patches.shape[0]), NET_CHUNK)], 0)


def centred_patches(cloud: Tensor, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ablation's input: K-NN patches ``(Q, k, 3)`` and queries ``(Q, 3)`` centred on the
    patch centroid, in world axes (no rotation)."""
    patches, _ = knn_patches(cloud, queries, k)
    mu = patches.mean(1, keepdim=True)
    return patches - mu, queries - mu[:, 0]


def predict_displacement(
    model: nn.Module,
    cloud: Tensor,
    queries: Tensor,
    *,
    pose_normalization: bool | None = None,
    batch_size: int = 16384,
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    """Displacement ``(Q, 3)`` from each query ``(Q, 3)`` to the surface sampled by ``cloud (N, 3)``.

    With ``pose_normalization`` (PEIF) each K-NN patch is expressed in its canonical frame and
    the prediction rotated back: the field is SE(3)-equivariant by construction. Without it
    (the paper's ablation) patches are only centred on their centroid, keeping world axes.
    ``None`` (default): as the model was trained (``model.cfg.pose_normalization``).
    The model's ``cfg.k`` fixes K; the cloud must have at least K points.
    ``compute_dtype``: the network's arithmetic (see :func:`inference_dtype`): ``None``
    (default) runs a float32 model in bfloat16 on CPUs with native bfloat16 products (about
    3x faster; the field changes by ~0.3 % of its norm on average), ``torch.float32`` forces
    float32. The output has the cloud's dtype either way.
    """
    check_points(cloud, "cloud", 3)
    check_points(queries, "queries", 3, min_points=0)
    if cloud.ndim != 2 or queries.ndim != 2:
        raise InvalidInputError("cloud and queries must be (N, 3) and (Q, 3)")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
    k = int(model.cfg.k)  # type: ignore[union-attr]
    if cloud.shape[0] < k:
        raise DegenerateGeometryError(
            f"the cloud has {cloud.shape[0]} points; this model needs at least k={k}"
        )
    if pose_normalization is None:
        pose_normalization = bool(getattr(model.cfg, "pose_normalization", True))
    dtype = inference_dtype(model, compute_dtype)
    out = []
    for s in range(0, queries.shape[0], batch_size):
        q = queries[s : s + batch_size]
        if pose_normalization:
            cp = canonical_patches(cloud, q, k)
            local = _net(model, cp.patches.to(cloud.dtype), cp.queries.to(cloud.dtype), dtype)
            out.append(vectors_from_frame(local, cp.frames).to(cloud.dtype))
        else:
            out.append(_net(model, *centred_patches(cloud, q, k), dtype).to(cloud.dtype))
    return torch.cat(out, 0) if out else cloud.new_zeros(0, 3)


def displacement_field(model: nn.Module, cloud: Tensor, **kwargs) -> Callable[[Tensor], Tensor]:
    """``queries -> displacement`` closure for :func:`equivision.recon.extract.extract_mesh_udf`."""

    @torch.inference_mode()
    def field(q: Tensor) -> Tensor:
        return predict_displacement(model, cloud, q.to(cloud.dtype), **kwargs)

    return field
