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
"""

from equivision.nn.gconv import (
    GroupAvgPool2d,
    GroupBatchNorm,
    GroupConv2d,
    GroupMaxPool2d,
    GroupProjection,
    LiftingConv2d,
)
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

__all__ = [
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
    "ZoomGroupConv2d",
    "ZoomLiftingConv2d",
    "geometric_scales",
    "zoom_grid",
]
