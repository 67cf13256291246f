"""Groups, their actions on points, and the left-regular representation on signals.

Elements are plain tensors; see :mod:`equivision.groups.planar` and
:mod:`equivision.groups.spatial` for their encodings and conventions.
"""

from equivision.groups.base import Group, make_generator, rotation_matrix_2d, wrap_angle
from equivision.groups.parse import ROTATION_FORMS, parse_rotation
from equivision.groups.planar import (
    C4,
    C8,
    D4,
    SE2,
    SO2,
    CyclicGroup,
    DihedralGroup,
    ScaleTranslation2D,
    Translations2D,
)
from equivision.groups.signals import (
    act_on_group_image,
    act_on_image,
    act_on_points,
    act_on_vector_features,
    group_image_action,
    image_action,
    points_action,
    regular_permutation,
    transform_image,
    vector_feature_action,
)
from equivision.groups.spatial import SE3, SO3, check_rotation_matrix

__all__ = [
    "C4",
    "C8",
    "D4",
    "ROTATION_FORMS",
    "SE2",
    "SE3",
    "SO2",
    "SO3",
    "CyclicGroup",
    "DihedralGroup",
    "Group",
    "ScaleTranslation2D",
    "Translations2D",
    "act_on_group_image",
    "act_on_image",
    "act_on_points",
    "act_on_vector_features",
    "check_rotation_matrix",
    "group_image_action",
    "image_action",
    "make_generator",
    "parse_rotation",
    "points_action",
    "regular_permutation",
    "rotation_matrix_2d",
    "transform_image",
    "vector_feature_action",
    "wrap_angle",
]
