"""Ray-cast shape classification data for the spherical CNN (``shapes-sphere``).

Three collections: the 10 ShapeNet classes of the shared data (canonically aligned, up = +y),
ModelNet10 (aligned, up = +z; its official train/test folders) and the project's procedural
families (up = +y). Each mesh becomes ``rotations`` ray-cast
signals ``(C, 2B, 2B)`` (``channels``, default distance and cosine; the convex hull's
``"hull_distance"`` and ``"hull_cosine"`` add the outer shape where rays hit inner surfaces:
:func:`equivision.render.raycast_sphere`) under the protocol's rotations:

* ``upright-upright``: train and test rotated about the collection's up axis
  (:func:`~equivision.data.registry.up_axis`) only, with the up axis turned onto the grid's
  pole (+z) first, so these rotations are azimuthal shifts of the grid, as in the
  spherical-CNN literature (ModelNet's z-up objects on z-pole grids);
* ``so3-so3``: train and test in arbitrary orientations (uniform on SO(3));
* ``upright-so3``: train about the up axis, test in arbitrary orientations.

Splits and label orders are the registry's (:mod:`equivision.data.registry`): for ShapeNet,
in each class (files sorted by name) every fourth object, starting with the fourth, is a test
object (at least one per class); ModelNet10's are its ``train`` and ``test`` folders; for
procedural shapes, training shapes use seeds ``0 … n−1`` and test shapes seeds ``10⁶ + i``.
Object ``i``'s rotations use :func:`~equivision.data.seeds.stream_seed` ``(rotation_seed, i)``
(test objects ``500 000 + i``). With ``train_scale_range`` ``r > 0`` each training mesh is cast
in ``train_scalings`` anisotropically scaled copies (its x, y, z scaled by factors uniform in
``[1 − r, 1 + r]``, stream ``1 000 000 + i``; rotation ``j`` casts copy ``j mod train_scalings``):
augmentation against memorising the training meshes, which rotations alone cannot give a
network that is already rotation-invariant. Test signals are never scaled.
Signals are cached under ``cache_dir`` (:mod:`equivision.data.cache`) by a key of the
configuration (:meth:`SphereDataConfig.key_fields`: the default channels are left out, so
caches built before channels could be chosen stay valid), :data:`SIGNAL_VERSION` and the
source files' names, sizes and times; a missing, corrupt or stale file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from equivision.data.cache import cache_key, file_fingerprint, load_or_build
from equivision.data.registry import PROCEDURAL_TEST_SEED, class_names
from equivision.data.seeds import stream_seed
from equivision.errors import CorruptFileError, InvalidInputError
from equivision.render.sphere import CHANNELS, DEFAULT_CHANNELS

PROTOCOLS = ("upright-upright", "so3-so3", "upright-so3")
COLLECTIONS = ("shapenet10", "modelnet10", "procedural")
#: Collections read from the shared data (the others are generated).
MESH_COLLECTIONS = ("shapenet10", "modelnet10")


@dataclass(frozen=True)
class SphereDataConfig:
    collection: str = "shapenet10"
    protocol: str = "so3-so3"
    bandwidth: int = 32
    train_rotations: int = 16
    test_rotations: int = 4
    procedural_train_per_family: int = 12
    procedural_test_per_family: int = 4
    rotation_seed: int = 0
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    train_scale_range: float = 0.0
    train_scalings: int = 4

    def __post_init__(self) -> None:
        # JSON gives a list; a tuple keeps the config hashable (it keys the in-memory cache)
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels or any(c not in CHANNELS for c in self.channels):
            raise InvalidInputError(
                f"channels must be a non-empty list of {CHANNELS}, got {list(self.channels)}")
        if len(set(self.channels)) != len(self.channels):
            raise InvalidInputError(f"channels must not repeat, got {list(self.channels)}")
        if self.collection not in COLLECTIONS:
            raise InvalidInputError(f"collection must be one of {COLLECTIONS}, got {self.collection!r}")
        if self.protocol not in PROTOCOLS:
            raise InvalidInputError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.bandwidth < 2 or self.train_rotations < 1 or self.test_rotations < 1:
            raise InvalidInputError("bandwidth must be >= 2 and rotation counts >= 1")
        if not (isinstance(self.train_scale_range, (int, float)) and 0.0 <= self.train_scale_range < 1.0):
            raise InvalidInputError(f"train_scale_range must be in [0, 1), got {self.train_scale_range!r}")
        if isinstance(self.train_scalings, bool) or not isinstance(self.train_scalings, int) \
                or self.train_scalings < 1:
            raise InvalidInputError(f"train_scalings must be a positive integer, got {self.train_scalings!r}")

    def key_fields(self) -> dict:
        """The fields that key the cache: all of them, less ``channels`` when it is the
        default (those signals are what every earlier cache holds, under the same key)."""
        d = asdict(self)
        if self.channels == DEFAULT_CHANNELS:
            del d["channels"]
        if self.train_scale_range == 0.0:  # unscaled: the keys of the caches built before scaling
            del d["train_scale_range"], d["train_scalings"]
        return d

    def digest(self) -> str:
        key = {**self.key_fields(), "signal_version": SIGNAL_VERSION}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class SphereSplit:
    train_x: Tensor  # (N, C, 2B, 2B), C = len(channels)
    train_y: Tensor  # (N,)
    test_x: Tensor
    test_y: Tensor
    classes: list[str]


#: A quarter turn about +x, taking ShapeNet's (and the procedural shapes') up axis +y onto the
#: grid's pole +z: ``up_rotation("+y", "+z")``.
UP_TO_POLE = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
#: Bumped whenever the signals a configuration yields change (part of the cache key).
SIGNAL_VERSION = 2
#: Kind recorded in the cache files (see :mod:`equivision.data.cache`).
CACHE_KIND = "equivision-sphere-signals/1"
#: Offset of the test objects' rotation streams (training objects start at 0).
TEST_STREAM_OFFSET = 500_000


def upright_rotations(n: int, *, seed: int, up: str = "+y") -> Tensor:
    """``n`` upright poses ``(n, 3, 3)``: the objects' ``up`` axis (``"+y"``, ``"+z"`` …) turned
    onto the grid's pole (+z), then a rotation about the pole by a uniform angle."""
    from equivision.data.registry import up_rotation

    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    c, s = torch.cos(a), torch.sin(a)
    rz = torch.zeros(n, 3, 3, dtype=torch.float64)
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1
    return rz @ up_rotation(up, "+z")


def _rotations(kind: str, n: int, seed: int, up: str) -> Tensor:
    from equivision.groups import SO3

    if kind == "upright":
        return upright_rotations(n, seed=seed, up=up)
    return SO3().random(n, seed=seed, dtype=torch.float64)


Item = tuple[str, int, Callable[[], object]]


def _sources(cfg: SphereDataConfig) -> tuple[list[Item], list[Item], list[str]]:
    """[(name, label, loader)] for train and test, and the class names."""
    if cfg.collection in MESH_COLLECTIONS:
        from equivision.data.registry import list_entries
        from equivision.io import load_mesh

        entries = list_entries(cfg.collection)
        by_split = {s: [(e.name, e.label, lambda f=e.path: load_mesh(f)) for e in entries if e.split == s]
                    for s in ("train", "test")}
        return by_split["train"], by_split["test"], list(class_names(cfg.collection))
    from equivision.data.procedural import FAMILIES, make_shape

    def items(count: int, offset: int):
        return [
            (f"{fam}-{offset + i}", label, lambda fam=fam, s=offset + i: make_shape(fam, s).mesh(48))
            for label, fam in enumerate(FAMILIES)
            for i in range(count)
        ]

    return (
        items(cfg.procedural_train_per_family, 0),
        items(cfg.procedural_test_per_family, PROCEDURAL_TEST_SEED),
        list(class_names("procedural")),
    )


def _source_fingerprint(cfg: SphereDataConfig) -> list:
    """The source files' names, sizes and times (none for procedural shapes, whose code
    version is :data:`SIGNAL_VERSION`)."""
    if cfg.collection not in MESH_COLLECTIONS:
        return []
    from equivision.data.registry import find_data_root, list_entries

    return file_fingerprint([e.path for e in list_entries(cfg.collection)], find_data_root())


#: Offset of the training objects' scale-factor streams.
SCALE_STREAM_OFFSET = 1_000_000


def train_scales(cfg: SphereDataConfig, index: int) -> Tensor:
    """The axis scale factors ``(train_scalings, 3)`` float64 of training object ``index``'s
    copies (all ones without scaling)."""
    if cfg.train_scale_range == 0.0:
        return torch.ones(1, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(stream_seed(cfg.rotation_seed, SCALE_STREAM_OFFSET + index))
    u = torch.rand(cfg.train_scalings, 3, generator=g, dtype=torch.float64)
    return 1 + cfg.train_scale_range * (2 * u - 1)


def _cast(
    items, kind: str, n_rot: int, cfg: SphereDataConfig, seed_offset: int, progress,
    *, scaled: bool = False,
) -> tuple[Tensor, Tensor]:
    from equivision.data.registry import up_axis
    from equivision.io.meshes import Mesh
    from equivision.render.sphere import raycast_sphere

    up = up_axis(cfg.collection) or "+z"
    xs, ys = [], []
    for idx, (_name, label, load) in enumerate(items):
        rots = _rotations(kind, n_rot, stream_seed(cfg.rotation_seed, seed_offset + idx), up)
        mesh = load()
        if scaled and cfg.train_scale_range > 0:
            scales = train_scales(cfg, idx)
            x = None
            for c in range(len(scales)):
                pick = torch.arange(c, n_rot, len(scales))
                if len(pick) == 0:
                    continue
                v = mesh.vertices
                part = raycast_sphere(Mesh(v * scales[c].to(v.dtype), mesh.faces), cfg.bandwidth,
                                      rotations=rots[pick], channels=cfg.channels)
                x = part.new_zeros((n_rot, *part.shape[1:])) if x is None else x
                x[pick] = part
            xs.append(x)
        else:
            xs.append(raycast_sphere(mesh, cfg.bandwidth, rotations=rots, channels=cfg.channels))
        ys.append(torch.full((n_rot,), label, dtype=torch.long))
        if progress is not None:
            progress()
    return torch.cat(xs), torch.cat(ys)


def _signals_path_and_key(cfg: SphereDataConfig, cache_dir: str | Path) -> tuple[Path, str]:
    key = cache_key(cfg.key_fields(), SIGNAL_VERSION, _source_fingerprint(cfg))
    return Path(cache_dir) / f"{cfg.collection}-{cfg.protocol}-b{cfg.bandwidth}-{key}.safetensors", key


def signals_cache_path(cfg: SphereDataConfig, cache_dir: str | Path = "runs/sphere-data") -> Path:
    """Where the signals of ``cfg`` are cached: named by collection, protocol, bandwidth and the
    cache key (which reads the source files' sizes and times, not their contents)."""
    return _signals_path_and_key(cfg, cache_dir)[0]


def make_sphere_split(
    cfg: SphereDataConfig, cache_dir: str | Path = "runs/sphere-data", *, show_progress: bool = True
) -> SphereSplit:
    """Ray-cast (or read from the cache) the train and test signals of ``cfg``. A build shows
    a progress bar (``show_progress``) and records its time (``build_seconds``) in the cache
    file's metadata (:func:`cache_info` reads it back with the file's size)."""
    from rich.progress import Progress

    train, test, classes = _sources(cfg)
    path, key = _signals_path_and_key(cfg, cache_dir)

    meta = {"config": json.dumps(asdict(cfg))}

    def build() -> dict[str, Tensor]:
        train_kind = "so3" if cfg.protocol == "so3-so3" else "upright"
        test_kind = "upright" if cfg.protocol == "upright-upright" else "so3"
        start = time.perf_counter()
        with Progress(disable=not show_progress, transient=True) as bar:
            task = bar.add_task(f"ray casting {cfg.collection} ({len(train)}×{cfg.train_rotations} train, "
                                f"{len(test)}×{cfg.test_rotations} test)", total=len(train) + len(test))
            tick = lambda: bar.advance(task)  # noqa: E731
            tx, ty = _cast(train, train_kind, cfg.train_rotations, cfg, 0, tick, scaled=True)
            vx, vy = _cast(test, test_kind, cfg.test_rotations, cfg, TEST_STREAM_OFFSET, tick)
        # load_or_build writes ``meta`` after this returns, so the time lands in the file.
        meta["build_seconds"] = f"{time.perf_counter() - start:.1f}"
        return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}

    data = load_or_build(path, CACHE_KIND, key, build, meta)
    if show_progress and "build_seconds" in meta:
        import sys

        print(f"cached {cfg.collection} signals in {meta['build_seconds']} s: {path} "
              f"({path.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)
    return SphereSplit(data["train_x"], data["train_y"], data["test_x"], data["test_y"], classes)


def cache_info(path: str | Path) -> dict[str, float]:
    """``{"build_seconds", "mib"}`` of a signals cache file (its recorded build time, ``nan``
    when it records none, and its size on disk)."""
    from equivision.data.cache import _header

    p = Path(path)
    meta = _header(p) if p.is_file() else None
    if meta is None or meta.get("kind") != CACHE_KIND:
        raise CorruptFileError(f"{p} is not a signals cache file ({CACHE_KIND})")
    return {"build_seconds": float(meta.get("build_seconds", "nan")), "mib": p.stat().st_size / 2**20}


def shared_class_signals(
    source: str, target: str, *, kind: str, bandwidth: int, rotations: int, rotation_seed: int = 0,
    channels: tuple[str, ...] = DEFAULT_CHANNELS,
) -> tuple[Tensor, Tensor, list[str]]:
    """Every mesh of ``source`` (both of its splits: a model trained on ``target`` saw none)
    whose class ``target`` also has, ray-cast for a ``target``-trained model: ``x``
    ``(N·rotations, len(channels), 2B, 2B)``, labels ``y`` in ``target``'s label order, and the shared
    class names. Each mesh is first turned so its up axis lies on ``target``'s
    (:func:`~equivision.data.registry.up_rotation`, e.g. ShapeNet's +y onto ModelNet's +z),
    then posed as ``target``'s test objects are: ``kind="upright"`` about that axis, ``"so3"``
    anywhere. Mesh ``i``'s rotations use ``stream_seed(rotation_seed, TEST_STREAM_OFFSET + i)``."""
    from equivision.data.registry import list_entries, up_axis, up_rotation
    from equivision.io import Mesh, load_mesh
    from equivision.render.sphere import raycast_sphere

    if kind not in ("upright", "so3"):
        raise InvalidInputError(f"kind must be 'upright' or 'so3', got {kind!r}")
    for c in (source, target):
        if c not in MESH_COLLECTIONS:
            raise InvalidInputError(f"collections must be among {MESH_COLLECTIONS}, got {c!r}")
    target_labels = class_names(target)
    shared = [c for c in class_names(source) if c in target_labels]
    if not shared:
        raise InvalidInputError(f"{source} and {target} share no class")
    turn = up_rotation(up_axis(source) or "+z", up_axis(target) or "+z")
    xs, ys = [], []
    for i, e in enumerate(e for e in list_entries(source) if e.cls in shared):
        mesh = load_mesh(e.path)
        mesh = Mesh(mesh.vertices.double() @ turn.T, mesh.faces)
        rots = _rotations(kind, rotations, stream_seed(rotation_seed, TEST_STREAM_OFFSET + i),
                          up_axis(target) or "+z")
        xs.append(raycast_sphere(mesh, bandwidth, rotations=rots, channels=channels))
        ys.append(torch.full((rotations,), target_labels.index(e.cls), dtype=torch.long))
    return torch.cat(xs), torch.cat(ys), shared
