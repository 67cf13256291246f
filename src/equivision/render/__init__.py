"""Rendering by rays from a point: ray generation (:mod:`~equivision.render.rays`), first
hits on a mesh behind one function with Embree or PyTorch back ends
(:mod:`~equivision.render.intersect`), and meshes as signals on the sphere
(:mod:`~equivision.render.sphere`). Plain tensors in and out."""

from equivision.render.intersect import BACKENDS, Hits, HitsFn, hits_function, intersect_first
from equivision.render.intersect_embree import embree_available, first_hits_embree
from equivision.render.intersect_torch import first_hits_through_point, first_hits_torch
from equivision.render.rays import common_point, grid_directions, rays_toward_center, share_a_point
from equivision.render.sphere import CHANNELS, raycast_sphere, surface_centroid

__all__ = [
    "BACKENDS",
    "CHANNELS",
    "Hits",
    "HitsFn",
    "common_point",
    "embree_available",
    "first_hits_embree",
    "first_hits_through_point",
    "first_hits_torch",
    "grid_directions",
    "hits_function",
    "intersect_first",
    "raycast_sphere",
    "rays_toward_center",
    "share_a_point",
    "surface_centroid",
]
