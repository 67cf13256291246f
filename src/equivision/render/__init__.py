"""Rendering by rays from a point: ray generation (:mod:`~equivision.render.rays`), first
hits on a mesh behind one function with Embree or PyTorch back ends
(:mod:`~equivision.render.intersect`), meshes as signals on the sphere
(:mod:`~equivision.render.sphere`) and as images from a pinhole camera
(:mod:`~equivision.render.camera`). Plain tensors in and out."""

from equivision.render.camera import (
    CAMERA_CHANNELS,
    LIGHT_DIRECTION,
    MAX_IMAGE_SIZE,
    PinholeCamera,
    camera_for_mesh,
    camera_hits,
    pixel_directions,
    render_views,
)
from equivision.render.intersect import BACKENDS, Hits, HitsFn, hits_function, intersect_first
from equivision.render.intersect_embree import embree_available, first_hits_embree
from equivision.render.intersect_torch import first_hits_through_point, first_hits_torch
from equivision.render.rays import common_point, grid_directions, rays_toward_center, share_a_point
from equivision.render.sphere import CHANNELS, DEFAULT_CHANNELS, convex_hull, raycast_sphere, surface_centroid

__all__ = [
    "BACKENDS",
    "CAMERA_CHANNELS",
    "CHANNELS",
    "DEFAULT_CHANNELS",
    "LIGHT_DIRECTION",
    "MAX_IMAGE_SIZE",
    "Hits",
    "HitsFn",
    "PinholeCamera",
    "camera_for_mesh",
    "camera_hits",
    "common_point",
    "convex_hull",
    "embree_available",
    "first_hits_embree",
    "first_hits_through_point",
    "first_hits_torch",
    "grid_directions",
    "hits_function",
    "intersect_first",
    "pixel_directions",
    "raycast_sphere",
    "rays_toward_center",
    "render_views",
    "share_a_point",
    "surface_centroid",
]
