"""The PEIF field on a whole cloud: patches → canonical frames → network → world displacement."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.recon.frames import canonical_patches, vectors_from_frame
from equivision.recon.patches import knn_patches


def predict_displacement(
    model: nn.Module,
    cloud: Tensor,
    queries: Tensor,
    *,
    pose_normalization: bool = True,
    batch_size: int = 16384,
) -> Tensor:
    """Displacement ``(Q, 3)`` from each query ``(Q, 3)`` to the surface sampled by ``cloud (N, 3)``.

    With ``pose_normalization`` (PEIF) each K-NN patch is expressed in its canonical frame and
    the prediction rotated back: the field is SE(3)-equivariant by construction. Without it
    (the paper's ablation) patches are only centred on their centroid, keeping world axes.
    The model's ``cfg.k`` fixes K; the cloud must have at least K points.
    """
    check_points(cloud, "cloud", 3)
    check_points(queries, "queries", 3)
    if cloud.ndim != 2 or queries.ndim != 2:
        raise InvalidInputError("cloud and queries must be (N, 3) and (Q, 3)")
    k = int(model.cfg.k)  # type: ignore[union-attr]
    if cloud.shape[0] < k:
        raise DegenerateGeometryError(
            f"the cloud has {cloud.shape[0]} points; this model needs at least k={k}"
        )
    out = []
    for s in range(0, queries.shape[0], batch_size):
        q = queries[s : s + batch_size]
        if pose_normalization:
            cp = canonical_patches(cloud, q, k)
            local = model(cp.patches.to(cloud.dtype), cp.queries.to(cloud.dtype))
            out.append(vectors_from_frame(local, cp.frames).to(cloud.dtype))
        else:
            patches, _ = knn_patches(cloud, q, k)
            mu = patches.mean(1, keepdim=True)
            out.append(model(patches - mu, q - mu[:, 0]))
    return torch.cat(out, 0)


def displacement_field(model: nn.Module, cloud: Tensor, **kwargs) -> Callable[[Tensor], Tensor]:
    """``queries -> displacement`` closure for :func:`equivision.recon.extract.extract_mesh_udf`."""

    @torch.no_grad()
    def field(q: Tensor) -> Tensor:
        return predict_displacement(model, cloud, q.to(cloud.dtype), **kwargs)

    return field
