"""The sphere and SO(3) engine: grids, harmonic transforms, Wigner matrices, rotation and
SO(3) correlation, native PyTorch, batched, differentiable, CPU and CUDA.

Conventions (fixed once; details in each module):

* grid: Driscoll–Healy ``2B × 2B``, ``θ_j = π(2j+1)/(4B)``, ``φ_k = 2πk/(2B)``, signals
  ``(..., 2B, 2B)`` indexed ``[θ, φ]`` (:mod:`~equivision.sphere.grid`);
* real orthonormal spherical harmonics without the Condon–Shortley phase, coefficients
  ``(..., B²)`` at ``l·l + l + m`` (:mod:`~equivision.sphere.legendre`);
* rotations act as ``(R·f)(x) = f(R⁻¹x)``; ZYZ Euler angles ``R = Rz(α) Ry(β) Rz(γ)`` as in
  :class:`equivision.groups.SO3`; ``D^l_mn = e^{−imα} d^l_mn(β) e^{−inγ}`` (:mod:`~equivision.sphere.wigner`);
* SO(3) grid ``(2B)³`` indexed ``[α_a, β_j, γ_b]`` (:mod:`~equivision.sphere.so3fft`);
* real ↔ complex harmonics: one matrix per degree, :func:`real_from_complex`
  (:mod:`~equivision.sphere.basis`).

Precomputed tables are built once on the CPU and copied per dtype and device into bounded
caches; :func:`clear_caches` frees them (:mod:`~equivision.sphere.cache`).
"""

from equivision.sphere.align import AlignResult, align
from equivision.sphere.basis import real_from_complex
from equivision.sphere.cache import clear_caches
from equivision.sphere.grid import Grid, dh_weights, points_to_angles
from equivision.sphere.legendre import coeff_index, degree_order, real_sph_harm, real_sph_harm_points
from equivision.sphere.pose import RelativePose, brute_force_pose, relative_pose
from equivision.sphere.rotate import rotate, rotate_coeffs
from equivision.sphere.sht import isht, sht
from equivision.sphere.so3fft import (
    complex_coeffs,
    correlation_at,
    cross_spectrum,
    rotation_to_so3_grid,
    so3_correlation,
    so3_correlation_from_spectrum,
    so3_grid_angles,
    so3_grid_rotations,
    so3_grid_to_rotation,
    unravel_so3_index,
)
from equivision.sphere.wigner import wigner_d, wigner_D_real

__all__ = [
    "AlignResult",
    "Grid",
    "RelativePose",
    "align",
    "brute_force_pose",
    "clear_caches",
    "coeff_index",
    "complex_coeffs",
    "correlation_at",
    "cross_spectrum",
    "degree_order",
    "dh_weights",
    "isht",
    "points_to_angles",
    "real_from_complex",
    "real_sph_harm",
    "real_sph_harm_points",
    "relative_pose",
    "rotate",
    "rotate_coeffs",
    "rotation_to_so3_grid",
    "sht",
    "so3_correlation",
    "so3_correlation_from_spectrum",
    "so3_grid_angles",
    "so3_grid_rotations",
    "so3_grid_to_rotation",
    "unravel_so3_index",
    "wigner_D_real",
    "wigner_d",
]
