"""Mesh → class probabilities with a spherical CNN, in any orientation; point cloud (or mesh,
sampled) → class probabilities with a point-cloud classifier (VN-PointNet, VN-DGCNN, ...)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from equivision.data.registry import SHAPENET10_CLASSES, class_names
from equivision.errors import CheckpointError, InvalidInputError
from equivision.io.meshes import Mesh

__all__ = ["DEFAULT_CLASSIFIER", "SHAPENET10_CLASSES", "Classification", "class_names", "classify_mesh",
           "classify_points", "is_point_classifier", "load_classifier", "load_point_classifier",
           "read_points"]

#: The packaged spherical CNN trained on ModelNet10 (SO3/SO3) on six ray-cast channels with
#: scaled copies and mixup (``configs/shapes_sphere_modelnet10_hull6_scaled_mixup.json``, seed
#: 0); the earlier six-channel ``shapes_sphere_modelnet10_hull6`` (the image network's teacher),
#: the two-channel ``shapes_sphere_modelnet10`` and the ShapeNet10 one
#: (``shapes_sphere_shapenet10``) stay available by name.
DEFAULT_CLASSIFIER = "shapes_sphere_modelnet10_mixup"


@dataclass
class Classification:
    probabilities: Tensor  # (num_classes,)
    classes: tuple[str, ...]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` (at least 1; at most all) most probable classes, most probable first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"top k must be a positive integer, got {k!r}")
        p, i = self.probabilities.topk(min(k, len(self.classes)))
        return [(self.classes[int(j)], float(q)) for q, j in zip(p, i, strict=True)]


def load_classifier(
    name_or_run: str = DEFAULT_CLASSIFIER, device: str = "cpu"
) -> tuple[nn.Module, tuple[str, ...]]:
    """A trained spherical CNN (packaged name or run folder) and its class names: the list
    its configuration records (``task.classes``), or, for checkpoints written before it did,
    the registry's label order of its ``task.collection``. The ray-cast channels it was trained
    on (``task.channels``, default distance and cosine) are kept on the network as
    ``input_channels``, which :func:`classify_mesh` casts."""
    from equivision.tasks.shapes_sphere import load_spherical_cnn, stored_task_config

    net = load_spherical_cnn(name_or_run, device=device)
    task_cfg = stored_task_config(name_or_run)
    collection = task_cfg.get("collection", "shapenet10")
    recorded = task_cfg.get("classes")
    if recorded is not None and not (isinstance(recorded, list)
                                     and all(isinstance(c, str) for c in recorded)):
        raise CheckpointError(f"{name_or_run}: task.classes must be a list of names, got {recorded!r}")
    names = tuple(recorded) if recorded else class_names(collection)
    if len(names) != net.cfg.num_classes:
        raise CheckpointError(
            f"{name_or_run}: {net.cfg.num_classes} outputs but {len(names)} classes for {collection}"
        )
    return net, names


@torch.no_grad()
def classify_mesh(mesh: Mesh, model: nn.Module, classes: tuple[str, ...]) -> Classification:
    """Ray-cast ``mesh`` at the model's bandwidth and classify it (rotation-invariant).

    The mesh is moved to the unit box in float64 first (the signal does not depend on its
    position or size; Embree casts rays in float32, which far from the origin cannot place
    them). A mesh with almost no area for its size (collinear faces) raises
    :class:`~equivision.errors.DegenerateGeometryError`; a flat one is classified."""
    from equivision.geometry.normalize import check_mesh_area, normalize_mesh
    from equivision.render.sphere import raycast_sphere
    from equivision.tasks.shapes_sphere import teacher_channels

    check_mesh_area(mesh)
    unit, _, _ = normalize_mesh(Mesh(mesh.vertices.double(), mesh.faces))
    b = model.cfg.bandwidths[0]  # type: ignore[union-attr]
    dev = next(model.parameters()).device
    channels = teacher_channels(model)  # recorded by load_classifier
    signal = raycast_sphere(unit, b, channels=channels)[None].to(dev)
    probs = model(signal).softmax(-1)[0].cpu()
    return Classification(probs, classes)


POINT_CLOUD_POINTS = 1024
"""Points a point-cloud classifier sees: meshes are sampled to this many, larger clouds
subsampled (seeded), as in training."""


def _run_meta(name_or_run: str) -> tuple[str | None, dict]:
    """``(model name, run config)`` recorded for a packaged name or run folder (no weights read)."""
    import json
    from pathlib import Path

    from equivision.models import PRETRAINED_DIR

    meta_path = PRETRAINED_DIR / f"{name_or_run}.json"
    if "/" not in str(name_or_run) and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            return meta["model"]["name"], meta.get("config") or {}
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{meta_path} is not a valid pretrained file ({e})") from e
    run = Path(name_or_run)
    cfg_path = run / "config.json"
    if run.is_dir() and cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text())
        except ValueError as e:
            raise CheckpointError(f"{cfg_path} is not valid JSON ({e})") from e
        from equivision.training.tasks import get_task

        try:
            return get_task(cfg.get("task_name", "")).model_name, cfg
        except Exception:  # an unknown task: leave it to the loader to refuse
            return None, cfg
    return None, {}


def is_point_classifier(name_or_run: str) -> bool:
    """Whether the packaged name or run folder holds a point-cloud classifier."""
    from equivision.models.vector_neurons import POINT_MODELS

    return _run_meta(name_or_run)[0] in POINT_MODELS


def load_point_classifier(name_or_run: str, device: str = "cpu") -> tuple[nn.Module, tuple[str, ...]]:
    """A trained point-cloud classifier (packaged name or run folder of a ModelNet10 point
    task) and its class names (its recorded ``task.classes``, else ModelNet10's order)."""
    from equivision.models import load
    from equivision.models.vector_neurons import POINT_MODELS

    name, run_cfg = _run_meta(name_or_run)
    if name not in POINT_MODELS:
        raise CheckpointError(f"{name_or_run} holds model {name!r}, not a point-cloud classifier "
                              f"({', '.join(POINT_MODELS)})")
    net = load(name_or_run, model=name, device=device)
    recorded = (run_cfg.get("task") or {}).get("classes")
    if recorded is not None and not (isinstance(recorded, list)
                                     and all(isinstance(c, str) for c in recorded)):
        raise CheckpointError(f"{name_or_run}: task.classes must be a list of names, got {recorded!r}")
    names = tuple(recorded) if recorded else class_names("modelnet10")
    if len(names) != net.cfg.num_classes:
        raise CheckpointError(f"{name_or_run}: {net.cfg.num_classes} outputs but {len(names)} classes")
    return net, names


def read_points(path, n_points: int = POINT_CLOUD_POINTS, seed: int = 0) -> Tensor:
    """Points ``(M, 3)`` float64 of a file: a mesh (any mesh format, or a PLY with faces) is
    sampled by area to ``n_points`` (seeded); a point cloud (``.xyz``, ``.npy``, a PLY
    without faces) is read as it is."""
    from pathlib import Path

    from equivision.errors import DegenerateGeometryError
    from equivision.geometry.normalize import check_mesh_area
    from equivision.geometry.sampling import sample_surface_uniform
    from equivision.io import MESH_FORMATS, load_mesh, load_point_cloud

    p = Path(path)
    if p.suffix.lower() in MESH_FORMATS:
        try:
            mesh = load_mesh(p, dtype=torch.float64)
        except DegenerateGeometryError as e:
            if p.suffix.lower() != ".ply" or "no faces" not in str(e):
                raise
        else:
            check_mesh_area(mesh)
            return sample_surface_uniform(mesh, n_points, seed=seed)[0]
    return load_point_cloud(p, dtype=torch.float64)[0]


@torch.no_grad()
def classify_points(points: Tensor, model: nn.Module, classes: tuple[str, ...], *,
                    n_points: int = POINT_CLOUD_POINTS, seed: int = 0) -> Classification:
    """Classify a cloud ``points (M, 3)``: more than ``n_points`` are subsampled without
    replacement (seeded), then centred and scaled to unit radius as in training. Clouds with
    NaN, fewer points than the model's ``k``, or all points at one place raise typed errors
    (:class:`~equivision.errors.InvalidInputError`,
    :class:`~equivision.errors.DegenerateGeometryError`)."""
    from equivision.errors import DegenerateGeometryError, ShapeError
    from equivision.models.vector_neurons import check_cloud_batch
    from equivision.tasks.modelnet_points import normalize_cloud

    if not isinstance(points, Tensor) or points.ndim != 2:
        raise ShapeError(f"points must be a tensor (M, 3), got {tuple(getattr(points, 'shape', ()))}")
    k = int(model.cfg.k)  # type: ignore[union-attr]
    check_cloud_batch(points[None], 1)
    if len(points) < k:
        raise DegenerateGeometryError(f"the cloud has {len(points)} points; the model compares each "
                                      f"with its k = {k} nearest, so it needs at least {k}")
    if len(points) > n_points:
        g = torch.Generator().manual_seed(seed)
        points = points[torch.randperm(len(points), generator=g)[:n_points].sort().values]
    cloud = normalize_cloud(points.double()).float()
    dev = next(model.parameters()).device
    probs = model(cloud[None].to(dev)).softmax(-1)[0].cpu()
    return Classification(probs, classes)
