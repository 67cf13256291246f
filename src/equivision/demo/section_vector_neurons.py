"""Demo section: Vector Neurons' logits do not move under rotations of the cloud (to rounding),
a plain PointNet's do; measured with the equivariance harness on untrained models."""

from __future__ import annotations

import torch

from equivision.demo import DemoContext, demo_section
from equivision.demo.section_render import demo_mesh
from equivision.geometry.sampling import sample_surface_uniform
from equivision.groups import SO3
from equivision.models import build_model
from equivision.testing import equivariance_errors, invariant

N_POINTS = 1024
N_ROTATIONS = 8
# small widths: the property does not depend on size, and the section stays fast
MODELS = (
    ("VN-PointNet", "vn_pointnet", {"k": 16, "channels": [10, 21, 42], "head": [64]}),
    ("VN-DGCNN", "vn_dgcnn", {"k": 10, "channels": [8, 8, 16], "embed": 32, "head": [64]}),
    ("PointNet (baseline)", "pointnet", {"channels": [32, 64, 128], "head": [64]}),
)


def _calibrated(net: torch.nn.Module, pts: torch.Tensor, seed: int) -> torch.nn.Module:
    """``net`` in eval mode with batch-norm statistics from 8 rotated, anisotropically scaled
    copies of ``pts`` ``(N, 3)``: a fresh model's unit statistics leave its logits almost
    constant (all bias), and copies that differ only by rotation give the invariant features
    zero variance, which would amplify rounding; no weight is trained."""
    g = torch.Generator().manual_seed(seed + 2)
    scale = 0.5 + torch.rand(8, 1, 3, generator=g, dtype=torch.float64)
    rots = SO3().random(8, seed=seed + 3, dtype=torch.float64)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):  # VNBatchNorm holds one too
            m.momentum = None  # a plain average over the calibration batch
    with torch.no_grad():
        net.train()(((pts * scale) @ rots.transpose(1, 2)).float())
    return net.eval()


def invariance_rows(ctx: DemoContext) -> tuple[list[tuple[str, int, float, float]], str]:
    """``[(model, parameters, float32 error, float64 error)]`` and the mesh's description: the
    worst relative change of the logits over :data:`N_ROTATIONS` random rotations."""
    mesh, source = demo_mesh(ctx)
    pts, _ = sample_surface_uniform(mesh, N_POINTS, seed=ctx.seed)
    pts = pts - pts.mean(0)  # rotations act about the origin
    rots = SO3().random(N_ROTATIONS, seed=ctx.seed + 1, dtype=torch.float64)
    rows = []
    for label, name, cfg in MODELS:
        torch.manual_seed(ctx.seed)
        net = _calibrated(build_model(name, cfg), pts, ctx.seed)
        n_params = sum(p.numel() for p in net.parameters())
        errs = []
        for dtype in (torch.float32, torch.float64):
            net = net.to(dtype)
            x = pts.to(dtype)[None]
            act = lambda r, c, dt=dtype: c @ r.to(dt).T  # noqa: E731
            errs.append(max(equivariance_errors(net, x, act, invariant, rots)))
        rows.append((label, n_params, errs[0], errs[1]))
    return rows, source


@demo_section("Vector Neurons: exact rotation invariance", order=51)
def vector_neurons_section(ctx: DemoContext) -> str:
    rows, source = invariance_rows(ctx)
    table = "\n".join(f"| {m} | {p:,} | {e32:.1e} | {e64:.1e} |" for m, p, e32, e64 in rows)
    return f"""
{N_POINTS:,} points sampled uniformly from {source}, centred, through freshly initialised
(untrained, seed {ctx.seed}, eval mode; batch-norm statistics from 8 rotated, stretched copies
of the cloud) point-cloud classifiers. The number is the worst
relative change of the 10 logits, `|f(R·x) − f(x)| / |f(x)|`, over {N_ROTATIONS} seeded random
rotations, measured by `equivision.testing.equivariance_errors(..., invariant, ...)`:

| model | parameters | float32 | float64 |
|---|---|---|---|
{table}

The Vector Neuron models are invariant by construction (every feature is a list of
3-vectors that rotates with the input; the read-out takes inner products against a frame
that rotates too), so what is left is rounding. PointNet sees coordinates and changes its
output by order one. No training is involved; trained accuracies are in
`docs/vector_neurons.md`.
"""
