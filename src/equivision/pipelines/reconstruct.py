"""Point cloud → mesh with a displacement field (PEIF), at any pose and scale.

The cloud is cleaned (NaN/inf refused, exact duplicates removed), expressed in its own
canonical frame (centroid and principal axes, :func:`equivision.recon.frames.cloud_frame`),
normalised to the unit bounding box there (so clouds in millimetres or kilometres behave the
same), the field is evaluated only near the points, the mesh extracted
(:func:`equivision.recon.extract.extract_mesh_udf`) and mapped back to the cloud's own
coordinates.

**Pose.** The extraction grid is axis-aligned in the canonical frame, not in the world: a
rotated and translated cloud gives the same canonical cloud (to float rounding), the same
grid, box and voxel size, hence the same mesh, moved by the same rotation and translation. The
PEIF field is also equivariant patch by patch; the grid's frame is what makes the *extraction*
equivariant (with a world-aligned grid the voxel lattice, and the bounding box that sets the
voxel size, change with the pose). The frame's documented limits: when the cloud's covariance
has (nearly) repeated eigenvalues, axes come from the farthest point (see ``cloud_frame``),
which is equivariant but depends on that one sample; ties of the farthest distance to float
rounding can flip the frame, giving another (equally valid) grid orientation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.geometry import denormalize_points, normalize_points
from equivision.io.meshes import Mesh
from equivision.models.peif import PEIFNet
from equivision.models.vn_global_field import VNGlobalField
from equivision.recon.extract import (
    DisplacementFn,
    ExtractionStats,
    default_band,
    drop_small_pieces,
    extract_mesh_udf,
    field_surface_points,
    orient_faces,
)
from equivision.recon.fairing import taubin_fairing
from equivision.recon.frames import LocalFrames, cloud_frame
from equivision.recon.holes import HoleFilling, fill_small_holes
from equivision.recon.patches import remove_duplicate_points
from equivision.recon.predict import displacement_field
from equivision.recon.tangent_planes import drop_faces_off_tangent_planes


@dataclass
class Reconstruction:
    """A reconstructed mesh (in the input's coordinates) and how it was made."""

    mesh: Mesh
    stats: ExtractionStats
    n_points_used: int
    seconds: dict[str, float] = field(default_factory=dict)
    grid_frame: LocalFrames | None = None
    """The cloud's canonical frame the grid was aligned with (``status`` flags degenerate
    cases); ``None`` with ``align_grid=False``."""
    faces_off_planes: int = 0
    """Faces the tangent-plane filter dropped (``plane_filter``), before the small pieces."""
    holes: HoleFilling | None = None
    """What closing the small holes did (``fill_holes``); ``None`` when it was off."""


#: Grid nodes per axis accepted by :func:`reconstruct`: the extraction marks candidate nodes on
#: a dense boolean grid (about 2·resolution³ bytes with its working copy: 2.1 GB at 1024), and
#: the field queries grow as resolution²; 4 is the smallest grid the extraction works on.
MIN_RESOLUTION, MAX_RESOLUTION = 4, 1024


def check_resolution(resolution: int) -> int:
    """Refuse a grid resolution outside ``MIN_RESOLUTION ... MAX_RESOLUTION`` before any work."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise InvalidInputError(f"resolution must be an integer, got {resolution!r}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        gib = 2 * float(resolution) ** 3 / 2**30
        raise InvalidInputError(
            f"resolution must be {MIN_RESOLUTION} to {MAX_RESOLUTION} grid nodes per axis, got "
            f"{resolution} (the extraction grid needs about 2·resolution³ bytes: {gib:.3g} GiB "
            "here; 128 or 256 suit most clouds)"
        )
    return resolution


def check_cloud_for_surface(points: Tensor, min_points: int) -> Tensor:
    """Validate and clean a cloud ``(N, 3)``: finite values, at least ``min_points`` distinct
    points, not all on one line (a line has no surface). Returns the de-duplicated cloud."""
    check_points(points, "point cloud", 3)
    if points.ndim != 2:
        raise InvalidInputError(f"point cloud must be (N, 3), got {tuple(points.shape)}")
    kept, _ = remove_duplicate_points(points)
    if kept.shape[0] < min_points:
        raise DegenerateGeometryError(
            f"the cloud has {kept.shape[0]} distinct points ({points.shape[0]} given); "
            f"at least {min_points} are needed"
        )
    centred = kept.double() - kept.double().mean(0)
    sv = torch.linalg.svdvals(centred)
    if float(sv[1]) <= 1e-5 * float(sv[0]):  # float32 rounding leaves ~1e-7 off a line
        raise DegenerateGeometryError("all points lie on one line: there is no surface to reconstruct")
    return kept


#: How far (voxels) a hole's fill may reach beyond its rim's distance from the input points.
HOLE_FILL_GAP = 0.5

#: How far (voxels) fairing may move a vertex in all: well under the field's own placement
#: scale, so the surface stays on the points.
FAIRING_MAX_MOVE = 0.1


def reconstruct_with_field(
    points: Tensor,
    make_field: Callable[[Tensor], DisplacementFn],
    *,
    min_points: int = 1,
    resolution: int = 128,
    align_grid: bool = True,
    band_from_field: bool = False,
    min_piece_fraction: float = 0.0,
    plane_filter: float = 0.0,
    plane_filter_neighbours: int = 3,
    fill_holes: int = 0,
    fill_gap: float = HOLE_FILL_GAP,
    fairing: int = 0,
    fairing_max_move: float = FAIRING_MAX_MOVE,
    progress: Callable[[int, int], None] | None = None,
) -> Reconstruction:
    """Reconstruct with any displacement field: ``make_field(normalised cloud)`` returns the
    field over the unit box.

    ``band_from_field``: extract also where the *field* puts surface, not only near the
    points (the vertices of :func:`~equivision.recon.extract.field_surface_points`' coarse 48³
    mesh, a band of one coarse voxel about them), in a
    cube 1.5× the cloud's box at the same voxel size: what a global field completes beyond a
    partial cloud is then kept. A local field (PEIF) says nothing away from its points, so
    :func:`reconstruct` uses it for the global field only.

    ``align_grid`` (default): the cloud is first expressed in its canonical frame, so the
    result is equivariant whatever the field (see the module doc). ``False``: the grid is
    aligned with the world axes; the result then depends on
    the pose through the grid, and through the field unless it is equivariant itself. It
    exists to measure a field's *own* equivariance (the no-pose ablation of the benchmark,
    the tests), which the aligned grid would hide.

    ``min_piece_fraction``: pieces of the extracted mesh with fewer than this fraction of its
    faces are dropped whole (:func:`~equivision.recon.extract.drop_small_pieces`; 0: none).

    ``plane_filter``: before the small pieces go, drop the faces with a vertex more than this
    many voxels off the tangent planes of its ``plane_filter_neighbours`` nearest input points
    (:func:`~equivision.recon.tangent_planes.drop_faces_off_tangent_planes`: the sheets a
    field puts inside thin plates); 0: none.

    ``fill_holes``: last, close the holes bounded by simple loops of at most this many edges
    where the input points cover them, ``fill_gap`` voxels the fill may reach beyond its rim's
    distance from the points (:func:`~equivision.recon.holes.fill_small_holes`); 0: none.

    ``fairing``: at the very end, this many λ|μ pairs of Taubin's filter, each vertex moving
    at most ``fairing_max_move`` voxels in all, boundary vertices fixed
    (:func:`~equivision.recon.fairing.taubin_fairing`: the vertex jitter of a noisy field); 0:
    none."""
    t0 = time.perf_counter()
    check_resolution(resolution)
    if isinstance(fill_holes, bool) or not isinstance(fill_holes, int) \
            or not (fill_holes == 0 or fill_holes >= 3):
        raise InvalidInputError(f"fill_holes must be 0 (off) or a loop length >= 3, got {fill_holes!r}")
    if isinstance(fill_gap, bool) or not isinstance(fill_gap, (int, float)) \
            or not (math.isfinite(fill_gap) and fill_gap > 0):
        raise InvalidInputError(f"fill_gap must be a positive number of voxels, got {fill_gap!r}")
    if isinstance(fairing, bool) or not isinstance(fairing, int) or fairing < 0:
        raise InvalidInputError(f"fairing must be 0 (off) or a number of filter steps >= 1, got {fairing!r}")
    if isinstance(fairing_max_move, bool) or not isinstance(fairing_max_move, (int, float)) \
            or not (math.isfinite(fairing_max_move) and fairing_max_move > 0):
        raise InvalidInputError(
            f"fairing_max_move must be a positive number of voxels, got {fairing_max_move!r}")
    if not 0.0 <= min_piece_fraction < 1.0:
        raise InvalidInputError(f"min_piece_fraction must be in [0, 1), got {min_piece_fraction}")
    if isinstance(plane_filter, bool) or not isinstance(plane_filter, (int, float)) \
            or not (math.isfinite(plane_filter) and plane_filter >= 0):
        raise InvalidInputError(f"plane_filter must be a finite number of voxels >= 0, got {plane_filter}")
    if isinstance(plane_filter_neighbours, bool) or not isinstance(plane_filter_neighbours, int) \
            or plane_filter_neighbours < 1:
        raise InvalidInputError(
            f"plane_filter_neighbours must be a positive integer, got {plane_filter_neighbours!r}")
    cloud = check_cloud_for_surface(points, min_points)
    frame = None
    work = cloud.double()
    if align_grid:
        frame = cloud_frame(work)
        work = (work - frame.centroids) @ frame.rotations
    unit, center, scale = normalize_points(work)
    t1 = time.perf_counter()
    fld, unit_p = make_field(unit.to(points.dtype)), unit.to(points.dtype)
    if band_from_field:
        half = 0.55 * FIELD_BOX_FACTOR
        res = math.ceil((resolution - 1) * FIELD_BOX_FACTOR) + 1  # the same voxel
        coarse = 48
        surf = field_surface_points(fld, bounds=(-half, half), resolution=coarse, dtype=unit_p.dtype)
        band = max(default_band(unit_p, 2 * half / (res - 1)), 2 * half / (coarse - 1))
        mesh, stats = extract_mesh_udf(fld, unit_p, resolution=res, bounds=(-half, half), band=band,
                                       band_points=torch.cat([unit_p, surf]), progress=progress)
    else:
        mesh, stats = extract_mesh_udf(fld, unit_p, resolution=resolution, progress=progress)
    n_extracted = len(mesh.faces)
    if plane_filter > 0:
        mesh = drop_faces_off_tangent_planes(mesh, unit_p, plane_filter * stats.voxel,
                                             neighbours=plane_filter_neighbours)
    faces_off_planes = n_extracted - len(mesh.faces)
    mesh = drop_small_pieces(mesh, min_piece_fraction)
    t2 = time.perf_counter()
    verts = denormalize_points(mesh.vertices.double(), center, scale)
    if frame is not None:
        verts = verts @ frame.rotations.T + frame.centroids
    # windings in the caller's frame (a reflecting frame would otherwise turn them inward); the
    # fill follows the windings of each hole's rim, so it comes after them
    out = orient_faces(Mesh(verts.to(points.dtype), mesh.faces))
    holes = None
    if fill_holes:
        out, holes = fill_small_holes(out, cloud, max_edges=fill_holes,
                                      max_gap=fill_gap * stats.voxel * float(scale))
    t3 = time.perf_counter()
    if fairing:
        # last: the fills' faces are faired with the rest; linear in the vertices, so any frame
        out = taubin_fairing(out, fairing, max_move=fairing_max_move * stats.voxel * float(scale))
    return Reconstruction(
        out,
        stats,
        int(cloud.shape[0]),
        {"prepare": t1 - t0, "field_and_extraction": t2 - t1, "fill_holes": t3 - t2,
         "fairing": time.perf_counter() - t3},
        frame,
        faces_off_planes,
        holes,
    )


#: PEIF's default for dropping small pieces (benchmarks/RESULTS.md, "Dropping small pieces").
PEIF_MIN_PIECE_FRACTION = 1e-3

#: PEIF's default tangent-plane filter in voxels, with 3 neighbours (benchmarks/RESULTS.md, "The
#: tangent-plane filter"): on every benchmark set it raised NC and F@1 % and lowered CD-L1, and on
#: seven other shapes (where it was chosen) it made none of the three worse by more than 0.001.
PEIF_PLANE_FILTER = 0.5

#: PEIF's default for closing small holes: the longest boundary loop closed (0: off), with
#: :data:`HOLE_FILL_GAP` (benchmarks/RESULTS.md, "Closing small holes"): chosen on seven shapes the
#: benchmark does not score, then on every benchmark set it removed 13–37 % of the boundary edges
#: and moved no set mean of CD-L1, NC or F@1 % by more than 0.001.
PEIF_FILL_HOLES = 32

#: PEIF's default fairing: Taubin λ|μ pairs at the end (0: off), each vertex moving at most
#: :data:`FAIRING_MAX_MOVE` voxels (benchmarks/RESULTS.md, "Fairing the vertex jitter"): chosen on
#: seven shapes the benchmark does not score, where it raised every set's mean NC (+0.004 to
#: +0.009) and moved no set mean of CD-L1 or F@1 % by more than 0.0002 / 0.0001; on the benchmark's
#: sets NC rose on all 11 shapes, ShapeNet's CD-L1 and F@1 % were slightly worse (+0.0027, −0.0011).
PEIF_FAIRING = 10

#: Side of the cube :func:`reconstruct_with_field` extracts in with ``band_from_field``, as a
#: multiple of the cloud's unit box: room for the surface a global field completes.
FIELD_BOX_FACTOR = 1.5

#: The networks :func:`reconstruct` accepts, by their registered model names.
FIELD_MODELS: dict[str, type[nn.Module]] = {"peif": PEIFNet, "vn_global_field": VNGlobalField}


def check_field_model(model: object) -> None:
    """Refuse anything but a displacement-field network (by its type, whatever it was loaded
    as): :class:`~equivision.errors.InvalidInputError` naming the accepted models."""
    if not isinstance(model, tuple(FIELD_MODELS.values())):
        raise InvalidInputError(
            f"a {type(model).__name__} is not a reconstruction field; give a model of "
            f"{' or '.join(FIELD_MODELS)} (a packaged name or a run folder of 'equivision train "
            "recon' / 'recon-vn-global')")


def reconstruct(
    points: Tensor,
    model: nn.Module,
    *,
    resolution: int = 128,
    device: torch.device | str | None = None,
    batch_size: int = 16384,
    align_grid: bool = True,
    compute_dtype: torch.dtype | None = None,
    min_piece_fraction: float | None = None,
    plane_filter: float | None = None,
    plane_filter_neighbours: int = 3,
    fill_holes: int | None = None,
    fill_gap: float = HOLE_FILL_GAP,
    fairing: int | None = None,
    fairing_max_move: float = FAIRING_MAX_MOVE,
    progress: Callable[[int, int], None] | None = None,
) -> Reconstruction:
    """Mesh of the surface sampled by ``points (N, 3)`` with a trained displacement field
    ``model``: PEIF (local, patch by patch) or the VN global field (one latent per cloud);
    which one is read from the model's type.

    The result follows the cloud's pose (rotate and translate the cloud, and the mesh moves
    the same way, to float rounding): the grid is aligned with the cloud's canonical frame
    and the field is SE(3)-equivariant patch by patch. ``resolution``: grid nodes per axis of
    the unit box (128 or 256). ``device``: where the network runs (default: the model's).
    ``align_grid=False``: a world-aligned grid, to measure the field's own equivariance (see
    :func:`reconstruct_with_field`). ``compute_dtype``: the network's arithmetic
    (:func:`equivision.recon.predict.inference_dtype`): ``None`` (default) uses bfloat16 on a
    CPU with native bfloat16 products (AMX / AVX-512 BF16) where a short benchmark measures it
    faster than float32 (:func:`equivision.recon.predict.auto_precision`; about 2x faster end to
    end at resolution 128 on an AMX Xeon, scores within the benchmark's noise, see docs/metrics.md),
    ``torch.float32`` forces float32 (the VN global field has only float32).
    ``min_piece_fraction``: drop the pieces under this fraction of the faces;
    ``None`` (default) means :data:`PEIF_MIN_PIECE_FRACTION` for PEIF, where it was measured
    to improve the set means of CD-L1, NC and F@1 % on every benchmark set and to leave one or
    two pieces per shape, and 0 for the
    VN global field (not measured).
    ``plane_filter`` (voxels) and ``plane_filter_neighbours``: see
    :func:`reconstruct_with_field`; ``None`` (default) means :data:`PEIF_PLANE_FILTER` for
    PEIF and 0 (off) for the VN global field, which completes surface away from the points.
    ``fill_holes`` (longest loop closed, 0: off) and ``fill_gap`` (voxels): see
    :func:`reconstruct_with_field`; ``None`` (default) means :data:`PEIF_FILL_HOLES` for PEIF
    and 0 for the VN global field (not measured).
    ``fairing`` (Taubin λ|μ pairs, 0: off) and ``fairing_max_move`` (voxels): see
    :func:`reconstruct_with_field`; ``None`` (default) means :data:`PEIF_FAIRING` for PEIF and
    0 for the VN global field (not measured).
    """
    check_field_model(model)
    if min_piece_fraction is None:
        min_piece_fraction = 0.0 if isinstance(model, VNGlobalField) else PEIF_MIN_PIECE_FRACTION
    if plane_filter is None:
        plane_filter = 0.0 if isinstance(model, VNGlobalField) else PEIF_PLANE_FILTER
    if fill_holes is None:
        fill_holes = 0 if isinstance(model, VNGlobalField) else PEIF_FILL_HOLES
    if fairing is None:
        fairing = 0 if isinstance(model, VNGlobalField) else PEIF_FAIRING
    if device is not None:
        model = model.to(device)
    model.eval()
    dev = next(model.parameters()).device
    k = int(model.cfg.k)  # type: ignore[union-attr]

    if isinstance(model, VNGlobalField):
        if compute_dtype not in (None, torch.float32):
            raise InvalidInputError("the VN global field runs in float32 only (no bfloat16 path)")

        def make_field(unit: Tensor) -> DisplacementFn:
            fld = model.displacement_field(unit.to(dev, torch.float32), batch_size=batch_size)
            return lambda q: fld(q.to(dev, torch.float32)).cpu()
    else:
        def make_field(unit: Tensor) -> DisplacementFn:
            cloud_dev = unit.to(dev, torch.float32)
            fld = displacement_field(model, cloud_dev, batch_size=batch_size, compute_dtype=compute_dtype)
            return lambda q: fld(q.to(dev, torch.float32)).cpu()

    with torch.no_grad():
        return reconstruct_with_field(
            points, make_field, min_points=k, resolution=resolution, align_grid=align_grid,
            band_from_field=isinstance(model, VNGlobalField), min_piece_fraction=min_piece_fraction,
            plane_filter=plane_filter, plane_filter_neighbours=plane_filter_neighbours,
            fill_holes=fill_holes, fill_gap=fill_gap, fairing=fairing, fairing_max_move=fairing_max_move,
            progress=progress,
        )
