"""Mesh → class probabilities with a spherical CNN, in any orientation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from equivision.data.registry import SHAPENET10_CLASSES, class_names
from equivision.errors import CheckpointError, InvalidInputError
from equivision.io.meshes import Mesh

__all__ = ["DEFAULT_CLASSIFIER", "SHAPENET10_CLASSES", "Classification", "class_names", "classify_mesh",
           "load_classifier"]

DEFAULT_CLASSIFIER = "shapes_sphere_shapenet10"


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
    the registry's label order of its ``task.collection``."""
    import json
    from pathlib import Path

    from equivision.models import PRETRAINED_DIR, load

    net = load(name_or_run, model="spherical_cnn", device=device)
    meta_path = PRETRAINED_DIR / f"{name_or_run}.json"
    cfg_path = Path(name_or_run) / "config.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    run_cfg = meta.get("config") or (json.loads(cfg_path.read_text()) if cfg_path.exists() else {})
    task_cfg = run_cfg.get("task") or {}
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

    check_mesh_area(mesh)
    unit, _, _ = normalize_mesh(Mesh(mesh.vertices.double(), mesh.faces))
    b = model.cfg.bandwidths[0]  # type: ignore[union-attr]
    dev = next(model.parameters()).device
    signal = raycast_sphere(unit, b)[None].to(dev)
    probs = model(signal).softmax(-1)[0].cpu()
    return Classification(probs, classes)
