"""Group-equivariant neural layers on plain tensors.

Planar roto-translations (``C_N``, ``D_N``), feature maps ``(B, C, |G|, H, W)``:
:class:`LiftingConv2d`, :class:`GroupConv2d`, :class:`GroupProjection`,
:class:`GroupBatchNorm`, :class:`GroupMaxPool2d`, :class:`GroupAvgPool2d`.

Scale-translations over discrete scales, feature maps ``(B, C, S, H, W)``:
:class:`ScaleLiftingConv2d`, :class:`ScaleGroupConv2d` (magnified kernels, every slice on
the input grid) and :class:`ZoomLiftingConv2d`, :class:`ZoomGroupConv2d` (the input zoomed
per slice, ``K × K`` kernels throughout). Projection, batch norm and pooling are the
group-axis layers above, which work on any 5-D map.

Spheres, Driscoll–Healy grid maps ``(B, C, 2b, 2b)``: :class:`SphericalConv`,
:class:`SphericalBatchNorm`, :class:`SphericalGlobalPool`, :class:`SphericalResBlock`.

Per-point MLPs ``(..., C)``: :func:`mlp` builds one, :func:`run_mlp` runs it without autograd
with fused Linear + ReLU kernels on CPU (:func:`linear_relu`); CPU capability probes
:func:`fused_linear_relu_supported` and :func:`bf16_matmul_supported`.

Vector neurons, SO(3)-equivariant features ``(B, C, 3, N)`` (:mod:`equivision.nn.vector_neurons`):
:class:`VNLinear`, :class:`VNLeakyReLU`, :class:`VNLinearLeakyReLU`, :class:`VNBatchNorm`,
:class:`VNMaxPool`, :class:`VNMeanPool`, :class:`VNInvariant`, :func:`vn_edge_features`.

Plain 2D convolutions on grid maps, periodic in azimuth (:mod:`equivision.nn.azimuthal`):
:class:`AzimuthalConv2d`, :class:`AzimuthalConvTranspose2d`, :class:`AzimuthalUpBlock`; the
area-weighted Huber loss between grid maps :func:`area_weighted_huber`.
"""

from equivision.nn.azimuthal import AzimuthalConv2d, AzimuthalConvTranspose2d, AzimuthalUpBlock
from equivision.nn.cpu import bf16_matmul_supported, fused_linear_relu_supported
from equivision.nn.gconv import (
    GroupAvgPool2d,
    GroupBatchNorm,
    GroupConv2d,
    GroupMaxPool2d,
    GroupProjection,
    LiftingConv2d,
)
from equivision.nn.losses import area_weighted_huber
from equivision.nn.pointwise import linear_relu, mlp, run_mlp
from equivision.nn.scale import (
    ScaleGroupConv2d,
    ScaleLiftingConv2d,
    ZoomGroupConv2d,
    ZoomLiftingConv2d,
    geometric_scales,
    zoom_grid,
)
from equivision.nn.spherical import (
    SphericalBatchNorm,
    SphericalConv,
    SphericalGlobalPool,
    SphericalResBlock,
)
from equivision.nn.vector_neurons import (
    VNBatchNorm,
    VNInvariant,
    VNLeakyReLU,
    VNLinear,
    VNLinearLeakyReLU,
    VNMaxPool,
    VNMeanPool,
    knn_indices,
    vn_edge_features,
    vn_mean_pool,
)

__all__ = [
    "AzimuthalConv2d",
    "AzimuthalConvTranspose2d",
    "AzimuthalUpBlock",
    "GroupAvgPool2d",
    "GroupBatchNorm",
    "GroupConv2d",
    "GroupMaxPool2d",
    "GroupProjection",
    "LiftingConv2d",
    "ScaleGroupConv2d",
    "ScaleLiftingConv2d",
    "SphericalBatchNorm",
    "SphericalConv",
    "SphericalGlobalPool",
    "SphericalResBlock",
    "VNBatchNorm",
    "VNInvariant",
    "VNLeakyReLU",
    "VNLinear",
    "VNLinearLeakyReLU",
    "VNMaxPool",
    "VNMeanPool",
    "ZoomGroupConv2d",
    "ZoomLiftingConv2d",
    "area_weighted_huber",
    "bf16_matmul_supported",
    "fused_linear_relu_supported",
    "geometric_scales",
    "knn_indices",
    "linear_relu",
    "mlp",
    "run_mlp",
    "vn_edge_features",
    "vn_mean_pool",
    "zoom_grid",
]
