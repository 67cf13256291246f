"""Mesh → class probabilities with a spherical CNN, in any orientation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from equivision.errors import CheckpointError, InvalidInputError
from equivision.io.meshes import Mesh

SHAPENET10_CLASSES = (
    "aeroplane",
    "bathtub",
    "bench",
    "bottle",
    "chair",
    "cup",
    "piano",
    "rifle",
    "toilet",
    "vase",
)
DEFAULT_CLASSIFIER = "shapes_sphere_shapenet10"


def class_names(collection: str) -> tuple[str, ...]:
    """The label order the ``shapes-sphere`` task uses for ``collection``."""
    if collection == "shapenet10":
        return SHAPENET10_CLASSES
    from equivision.data.procedural import FAMILIES

    return FAMILIES


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
    """A trained spherical CNN (packaged name or run folder) and its class names."""
    import json
    from pathlib import Path

    from equivision.models import PRETRAINED_DIR, load

    net = load(name_or_run, model="spherical_cnn", device=device)
    meta_path = PRETRAINED_DIR / f"{name_or_run}.json"
    cfg_path = Path(name_or_run) / "config.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    run_cfg = meta.get("config") or (json.loads(cfg_path.read_text()) if cfg_path.exists() else {})
    collection = (run_cfg.get("task") or {}).get("collection", "shapenet10")
    names = class_names(collection)
    if len(names) != net.cfg.num_classes:
        raise CheckpointError(
            f"{name_or_run}: {net.cfg.num_classes} outputs but {len(names)} classes for {collection}"
        )
    return net, names


@torch.no_grad()
def classify_mesh(mesh: Mesh, model: nn.Module, classes: tuple[str, ...]) -> Classification:
    """Ray-cast ``mesh`` at the model's bandwidth and classify it (rotation-invariant)."""
    from equivision.geometry.raycast import raycast_sphere

    b = model.cfg.bandwidths[0]  # type: ignore[union-attr]
    dev = next(model.parameters()).device
    signal = raycast_sphere(mesh, b)[None].to(dev)
    probs = model(signal).softmax(-1)[0].cpu()
    return Classification(probs, classes)
