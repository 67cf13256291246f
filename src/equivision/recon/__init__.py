"""Pose-invariant surface reconstruction (PEIF): K-NN patches, canonical local frames, and
training-data preparation (:mod:`equivision.recon.data`)."""

from equivision.recon.closest import closest_points_on_mesh, closest_points_on_triangles
from equivision.recon.frames import (
    AXIS1_FROM_ANCHOR,
    AXIS2_FROM_ANCHOR,
    REGULAR,
    UNDETERMINED,
    USED_QUERY,
    CanonicalPatches,
    LocalFrames,
    canonical_patches,
    cloud_frame,
    local_frames,
    points_from_frame,
    points_to_frame,
    vectors_from_frame,
    vectors_to_frame,
)
from equivision.recon.patches import gather_patches, knn_indices, knn_patches, remove_duplicate_points

__all__ = [
    "AXIS1_FROM_ANCHOR",
    "AXIS2_FROM_ANCHOR",
    "REGULAR",
    "UNDETERMINED",
    "USED_QUERY",
    "CanonicalPatches",
    "LocalFrames",
    "canonical_patches",
    "closest_points_on_mesh",
    "closest_points_on_triangles",
    "cloud_frame",
    "gather_patches",
    "knn_indices",
    "knn_patches",
    "local_frames",
    "points_from_frame",
    "points_to_frame",
    "remove_duplicate_points",
    "vectors_from_frame",
    "vectors_to_frame",
]
