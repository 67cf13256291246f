"""Reconstruction metrics: Chamfer-L1/-L2, F-score, normal consistency, exact EMD, and the
one evaluation protocol (:func:`evaluate_reconstruction`) that reports them; rotation errors
(median, Acc@15/Acc@30) for relative pose."""

from equivision.metrics.emd import MAX_EMD_POINTS, earth_movers_distance
from equivision.metrics.pointsets import (
    PointSetMetrics,
    chamfer_distance,
    fscore,
    nearest_neighbors,
    normal_consistency,
    point_set_metrics,
)
from equivision.metrics.protocol import (
    DEFAULT_THRESHOLDS,
    ReconstructionMetrics,
    evaluate_reconstruction,
    mean_metrics,
)
from equivision.metrics.rotations import RotationErrorSummary, rotation_error_summary, rotation_errors

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_EMD_POINTS",
    "PointSetMetrics",
    "ReconstructionMetrics",
    "RotationErrorSummary",
    "chamfer_distance",
    "earth_movers_distance",
    "evaluate_reconstruction",
    "fscore",
    "mean_metrics",
    "nearest_neighbors",
    "normal_consistency",
    "point_set_metrics",
    "rotation_error_summary",
    "rotation_errors",
]
