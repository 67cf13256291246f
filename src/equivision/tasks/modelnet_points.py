"""ModelNet10 point-cloud classification with VN-PointNet, VN-DGCNN and their plain baselines.

``equivision train modelnet-vn-pointnet`` (``modelnet-vn-dgcnn``, ``modelnet-pointnet``,
``modelnet-dgcnn``). Each mesh of the official split is sampled once, area-weighted, to
``n_points`` points (seeded by ``sample_seed`` and the file name), centred on their mean and
scaled to unit radius (largest distance from the centre 1; both commute with rotations), and
cached (:func:`equivision.data.cache.load_or_build`). Protocols ``train/test``: ``z-z``,
``z-so3``, ``so3-so3``, where ``z`` is a rotation about the up axis +z by a uniform angle and
``so3`` a uniform rotation; training clouds get a fresh rotation at every access (from the
trainer's seeded RNG, restored on resume), test clouds a fixed one seeded by
``rotation_seed`` and their index. Eval metric: ``accuracy`` (percent).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from equivision.configio import check_fields
from equivision.data.registry import MODELNET10_CLASSES
from equivision.data.seeds import name_seed, stream_seed
from equivision.errors import ConfigError, DegenerateGeometryError
from equivision.models.vector_neurons import DGCNNConfig, PointNetConfig, VNDGCNNConfig, VNPointNetConfig
from equivision.training.tasks import Task, register_task

PROTOCOLS = ("z-z", "z-so3", "so3-so3")
CACHE_KIND = "equivision-modelnet-points/1"
SAMPLING_VERSION = 1
"""Bumped when the sampling or normalisation changes, so old cache files are rebuilt."""


def normalize_cloud(points: Tensor) -> Tensor:
    """``points (N, 3)`` centred on their mean and scaled so the farthest point is at
    distance 1 (computed in float64). All points at one place raise
    :class:`~equivision.errors.DegenerateGeometryError`."""
    p = points.double()
    centred = p - p.mean(0)
    radius = float(centred.norm(dim=1).max())
    extent = float(p.abs().max())
    if not radius > 1e-9 * max(extent, 1.0):
        raise DegenerateGeometryError("all points of the cloud are at one place (no extent); "
                                      "it cannot be normalised or classified")
    return (centred / radius).to(points.dtype)


def _rotation_z(angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*angle.shape, 3, 3)


def random_rotations(kind: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` rotations ``(n, 3, 3)`` float64: ``"z"`` about +z by a uniform angle, ``"so3"``
    uniform (Haar). ``generator=None`` draws from the global RNG."""
    if kind == "z":
        return _rotation_z(torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi)
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)


@dataclass
class _PointFields:
    """The data fields of every ModelNet10 point task."""

    protocol: str = "so3-so3"
    n_points: int = 1024
    sample_seed: int = 0
    rotation_seed: int = 0
    max_train_per_class: int = 0
    """Training meshes per class (the first ones by file name); 0: all."""
    max_test_per_class: int = 0
    cache_dir: str = "runs/modelnet-points"
    classes: list[str] = field(default_factory=list)
    compile_model: bool = False
    """Train through ``torch.compile`` (the same maths, fused into C++ loops: about 3x faster
    per VN step on a CPU, after a first step of a minute or two that compiles)."""

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"task.protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.n_points < 1:
            raise ConfigError(f"task.n_points must be >= 1, got {self.n_points}")
        if self.max_train_per_class < 0 or self.max_test_per_class < 0:
            raise ConfigError("task.max_train_per_class and task.max_test_per_class must be >= 0")
        if not self.classes:
            self.classes = list(MODELNET10_CLASSES)
        elif list(self.classes) != list(MODELNET10_CLASSES):
            raise ConfigError(f"task.classes must be ModelNet10's label order "
                              f"({', '.join(MODELNET10_CLASSES)}) or empty")
        model = getattr(self, "model", None)
        if model is not None:
            if model.num_classes != len(MODELNET10_CLASSES):
                raise ConfigError(f"task.model.num_classes must be {len(MODELNET10_CLASSES)} for ModelNet10")
            if model.k > self.n_points:
                raise ConfigError(f"task.model.k ({model.k}) must not exceed task.n_points ({self.n_points})")


def _take(entries: list, cap: int) -> list:
    if cap == 0:
        return entries
    out, seen = [], {}
    for e in entries:
        seen[e.label] = seen.get(e.label, 0) + 1
        if seen[e.label] <= cap:
            out.append(e)
    return out


def sample_cloud(mesh, n_points: int, seed: int) -> Tensor:
    """``n_points`` area-weighted samples of ``mesh``, normalised (:func:`normalize_cloud`),
    float32 ``(n_points, 3)``."""
    from equivision.geometry.sampling import sample_surface_uniform

    pts, _ = sample_surface_uniform(mesh, n_points, seed=seed)
    return normalize_cloud(pts.double()).float()


def load_clouds(split: str, n_points: int, sample_seed: int, cap: int,
                cache_dir: str | Path) -> tuple[Tensor, Tensor]:
    """``(points (M, n_points, 3), labels (M,))`` of ModelNet10's ``split`` (upright), built
    once and then read from the cache."""
    from equivision.data.cache import cache_key, file_fingerprint, load_or_build
    from equivision.data.registry import find_data_root, list_entries
    from equivision.io.meshes import load_mesh

    entries = _take(list_entries("modelnet10", split=split), cap)
    spec = {"split": split, "n_points": n_points, "sample_seed": sample_seed, "cap": cap}
    key = cache_key(spec, SAMPLING_VERSION, file_fingerprint([e.path for e in entries], find_data_root()))
    path = Path(cache_dir) / f"modelnet10-{split}-{n_points}-{key}.safetensors"

    def build() -> dict[str, Tensor]:
        clouds = [sample_cloud(load_mesh(e.path, dtype=torch.float64), n_points,
                               name_seed(sample_seed, e.name)) for e in entries]
        return {"points": torch.stack(clouds),
                "labels": torch.tensor([e.label for e in entries], dtype=torch.long)}

    data = load_or_build(path, CACHE_KIND, key, build, {"config": json.dumps(spec)})
    return data["points"], data["labels"]


class RotatedClouds(Dataset):
    """Clouds ``(M, N, 3)`` with labels, rotated at access: ``fixed_seed=None`` draws a
    fresh rotation of ``kind`` from the global RNG every time (training), else item ``i``
    always gets the rotation seeded by ``(fixed_seed, i)`` (test)."""

    def __init__(self, points: Tensor, labels: Tensor, kind: str, fixed_seed: int | None) -> None:
        self.points, self.labels, self.kind = points, labels, kind
        self.fixed = None
        if fixed_seed is not None:
            self.fixed = torch.cat([random_rotations(kind, 1, torch.Generator().manual_seed(
                stream_seed(fixed_seed, i))) for i in range(len(labels))]) if len(labels) else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        r = self.fixed[i] if self.fixed is not None else random_rotations(self.kind, 1)[0]
        return (self.points[i].double() @ r.t()).float(), self.labels[i]


@lru_cache(maxsize=4)
def _clouds(split: str, n_points: int, sample_seed: int, cap: int, cache_dir: str) -> tuple[Tensor, Tensor]:
    return load_clouds(split, n_points, sample_seed, cap, cache_dir)


class _PointTask(Task):
    best_metric, best_mode = "accuracy", "max"
    _compiled: tuple[torch.nn.Module, torch.nn.Module] | None = None

    def build_model(self, cfg: _PointFields) -> torch.nn.Module:
        model = super().build_model(cfg)
        # the compiled wrapper shares the module's parameters, so checkpoints hold the plain
        # module's state dict and load without torch.compile
        self._compiled = (model, torch.compile(model)) if cfg.compile_model else None
        return model

    def _forward(self, model: torch.nn.Module) -> torch.nn.Module:
        if self._compiled is not None and self._compiled[0] is model:
            return self._compiled[1]
        return model

    def datasets(self, cfg: _PointFields) -> tuple[Dataset, Dataset]:
        train_kind, test_kind = cfg.protocol.split("-")
        tx, ty = _clouds("train", cfg.n_points, cfg.sample_seed, cfg.max_train_per_class, cfg.cache_dir)
        vx, vy = _clouds("test", cfg.n_points, cfg.sample_seed, cfg.max_test_per_class, cfg.cache_dir)
        # the test rotations' seeds differ from any training draw's by construction (own generator)
        return (RotatedClouds(tx, ty, train_kind, None),
                RotatedClouds(vx, vy, test_kind, stream_seed(cfg.rotation_seed, 1)))

    def loss(self, model: torch.nn.Module, batch) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = batch
        logits = self._forward(model)(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean() * 100
        return loss, {"accuracy": acc.detach()}


@dataclass
class VNPointNetTaskConfig(_PointFields):
    model: VNPointNetConfig = field(default_factory=VNPointNetConfig)


@dataclass
class VNDGCNNTaskConfig(_PointFields):
    model: VNDGCNNConfig = field(default_factory=VNDGCNNConfig)


@dataclass
class PointNetTaskConfig(_PointFields):
    model: PointNetConfig = field(default_factory=PointNetConfig)


@dataclass
class DGCNNTaskConfig(_PointFields):
    model: DGCNNConfig = field(default_factory=DGCNNConfig)


def _point_task(name: str, model_name: str, config_cls: type, what: str) -> type[Task]:
    """Register the ModelNet10 task ``name`` training ``model_name`` (the four differ only
    in these)."""
    cls = type(config_cls.__name__.replace("Config", ""), (_PointTask,),
               {"__module__": __name__, "description": f"ModelNet10 point clouds with {what}",
                "config_cls": config_cls, "model_name": model_name})
    return register_task(name)(cls)


VNPointNetTask = _point_task("modelnet-vn-pointnet", "vn_pointnet", VNPointNetTaskConfig,
                             "VN-PointNet (rotation-invariant)")
VNDGCNNTask = _point_task("modelnet-vn-dgcnn", "vn_dgcnn", VNDGCNNTaskConfig, "VN-DGCNN (rotation-invariant)")
PointNetTask = _point_task("modelnet-pointnet", "pointnet", PointNetTaskConfig, "plain PointNet (baseline)")
DGCNNTask = _point_task("modelnet-dgcnn", "dgcnn", DGCNNTaskConfig, "plain DGCNN (baseline)")
POINT_TASKS = ("modelnet-vn-pointnet", "modelnet-vn-dgcnn", "modelnet-pointnet", "modelnet-dgcnn")


@torch.no_grad()
def evaluate_run(run_dir: str | Path, test_rotations: str, *, checkpoint: str | int = "latest",
                 batch_size: int = 32) -> float:
    """Accuracy (percent) of a run's model on the ModelNet10 test clouds of its config,
    rotated by ``test_rotations`` (``"z"`` or ``"so3"``, the fixed seeded rotations of the
    protocols): how a ``z``-trained model is scored on both z/z and z/SO3."""
    from equivision.models import load
    from equivision.training import load_run_config

    if test_rotations not in ("z", "so3"):
        raise ConfigError(f"test_rotations must be 'z' or 'so3', got {test_rotations!r}")
    cfg = json.loads((Path(run_dir) / "config.json").read_text())
    task = _task_of(cfg)
    tcfg = load_run_config(run_dir, task).task
    net = load(run_dir, model=task.model_name, checkpoint=checkpoint)
    vx, vy = _clouds("test", tcfg.n_points, tcfg.sample_seed, tcfg.max_test_per_class, tcfg.cache_dir)
    ds = RotatedClouds(vx, vy, test_rotations, stream_seed(tcfg.rotation_seed, 1))
    right = 0
    for i in range(0, len(ds), batch_size):
        items = [ds[j] for j in range(i, min(i + batch_size, len(ds)))]
        x, y = torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])
        right += int((net(x).argmax(-1) == y).sum())
    return 100.0 * right / max(len(ds), 1)


def _task_of(run_config: dict) -> Task:
    from equivision.training import get_task

    name = run_config.get("task_name", "")
    if name not in POINT_TASKS:
        raise ConfigError(f"the run is of task {name!r}, not a ModelNet10 point task")
    return get_task(name)


__all__ = [
    "PROTOCOLS",
    "RotatedClouds",
    "evaluate_run",
    "load_clouds",
    "normalize_cloud",
    "random_rotations",
    "sample_cloud",
]
