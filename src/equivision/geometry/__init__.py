"""Geometry on meshes and point clouds: normalisation, surface sampling, noise (ray casting
onto the sphere is :mod:`equivision.render`)."""

from equivision.geometry.normalize import (
    bounding_box_diagonal,
    denormalize_points,
    normalize_mesh,
    normalize_points,
    unit_box_transform,
)
from equivision.geometry.partial import half_space_crop, random_direction, sparse_noisy_resample
from equivision.geometry.sampling import (
    add_gaussian_noise,
    face_areas_and_normals,
    farthest_point_sampling,
    sample_surface_poisson_disk,
    sample_surface_uniform,
)

__all__ = [
    "add_gaussian_noise",
    "bounding_box_diagonal",
    "denormalize_points",
    "face_areas_and_normals",
    "farthest_point_sampling",
    "half_space_crop",
    "normalize_mesh",
    "normalize_points",
    "random_direction",
    "sample_surface_poisson_disk",
    "sample_surface_uniform",
    "sparse_noisy_resample",
    "unit_box_transform",
]
