"""The view dataset of the cross-domain image embeddings: rendered views of meshes, each with
the teacher's spherical feature maps of the rotated mesh as its target.

For each mesh ``M`` and each of its ``N`` poses ``R`` an item holds the image of ``R·M`` from
the fixed pinhole camera (:func:`equivision.render.render_views`), the rotation ``(3, 3)``,
the mesh's label and the target ``Φ(R·M)``: the maps ``(C, 2b, 2b)`` of one layer of a
spherical CNN. The target is *not* ray-cast again: the canonical mesh is ray-cast once, the
teacher run once, and its maps rotated by ``R`` exactly (Wigner-D, :func:`equivision.sphere.rotate`),
so a target is the rotation of the canonical maps' band-limited part. ``docs/views.md`` gives
the measured distance to the teacher's maps of the re-cast rotated mesh, per layer.

Poses (per mesh, from :func:`~equivision.data.seeds.name_seed` of the dataset seed and the
mesh's name, so a mesh's views do not depend on which other meshes are built):

* ``dof=3``: uniform on SO(3);
* ``dof=2``: ``R = Rx(e) · Rz(a) · U``: ``U`` turns the collection's up axis onto the camera's
  up (+z), then azimuth ``a`` uniform in ``[0, 2π)`` about +z and elevation ``e`` in
  ``[−π/2, π/2]`` about the camera's horizontal axis +x, with ``sin e`` uniform so that the
  viewing directions cover the whole sphere uniformly.

On disk (a folder): shards ``shard-00000.safetensors`` … of ``shard_size`` meshes each (a
build interrupted after some shards continues with the next one), ``manifest.json`` and the
equivision folder marker. Every shard records the dataset's key (a digest of the mesh
fingerprints, the teacher's weights digest, layer, bandwidth, views, dof, image size and
channels, seed and :data:`VIEWS_VERSION`); a folder holding another key is refused unless
``overwrite``, which replaces what equivision wrote there.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from equivision.data.cache import cache_key, file_fingerprint, is_current, read_cached, write_cached
from equivision.data.seeds import name_seed
from equivision.errors import (
    CheckpointError,
    ConfigError,
    CorruptFileError,
    EquivisionError,
    InvalidInputError,
)
from equivision.io.meshes import Mesh

#: Bumped whenever the items a configuration yields change (part of the key).
VIEWS_VERSION = 1
#: Kind recorded in each shard (see :mod:`equivision.data.cache`) and the folder marker's kind.
SHARD_KIND = "equivision-views/1"
FOLDER_KIND = "views"
MANIFEST = "manifest.json"
IMAGE_SIZES = (64, 128)
#: The teacher of the packaged image network (``image_to_sphere_modelnet10``): the six-channel
#: spherical CNN trained on ModelNet10. ``shapes_sphere_shapenet10`` stays available by name.
DEFAULT_TEACHER = "shapes_sphere_modelnet10_hull6"


@dataclass(frozen=True)
class ViewConfig:
    """What determines a view dataset's content besides its meshes and teacher."""

    views: int = 8
    dof: int = 3
    image_size: int = 64
    channels: tuple[str, ...] = ("shading", "silhouette", "depth")
    layer: str = "stage1"
    bandwidth: int = 32
    up: str = "+z"
    seed: int = 0
    shard_size: int = 16
    #: Anisotropic scaling augmentation (the paper's): the views of a mesh are spread over
    #: ``scalings`` copies of it, each scaled along x, y, z by factors drawn uniformly from
    #: ``[1 - scale_range, 1 + scale_range]`` before it is posed; 0 means no scaling.
    scalings: int = 1
    scale_range: float = 0.0

    def __post_init__(self) -> None:
        from equivision.render.camera import CAMERA_CHANNELS

        if self.views < 1:
            raise ConfigError(f"views must be >= 1, got {self.views}")
        if self.dof not in (2, 3):
            raise ConfigError(f"dof must be 2 or 3, got {self.dof}")
        if self.image_size not in IMAGE_SIZES:
            raise ConfigError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if not self.channels or any(c not in CAMERA_CHANNELS for c in self.channels):
            raise ConfigError(f"channels must be a non-empty subset of {CAMERA_CHANNELS}, "
                              f"got {self.channels}")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {self.shard_size}")
        if not 0.0 <= self.scale_range < 1.0:
            raise ConfigError(f"scale_range must be in [0, 1), got {self.scale_range}")
        if not 1 <= self.scalings <= self.views:
            raise ConfigError(f"scalings must be between 1 and views ({self.views}), got {self.scalings}")
        if self.scalings > 1 and self.scale_range == 0.0:
            raise ConfigError("scalings > 1 needs scale_range > 0 (the copies would be identical)")

    @property
    def scaled(self) -> bool:
        return self.scale_range > 0.0


@dataclass(frozen=True)
class ViewSource:
    """One mesh: its name (unique in the dataset), label, a loader and a fingerprint that
    changes when the mesh does."""

    name: str
    label: int
    load: Callable[[], Mesh] = field(compare=False)
    fingerprint: Any = None


def sources_from_entries(entries: Sequence[Any], root: str | Path | None = None) -> list[ViewSource]:
    """Sources of registry entries (:func:`equivision.data.registry.list_entries`); fingerprints
    are the files' names, sizes and times."""
    from equivision.io import load_mesh

    fps = file_fingerprint([e.path for e in entries], root)
    return [ViewSource(e.name, e.label, lambda p=e.path: load_mesh(p), fp)
            for e, fp in zip(entries, fps, strict=True)]


def sources_from_meshes(items: Sequence[tuple[str, int, Mesh]]) -> list[ViewSource]:
    """Sources of in-memory meshes ``(name, label, mesh)``; fingerprints digest their arrays."""
    out = []
    for name, label, mesh in items:
        h = hashlib.sha256()
        for t in mesh:
            h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        out.append(ViewSource(name, int(label), lambda m=mesh: m, h.hexdigest()[:16]))
    return out


def teacher_digest(teacher: nn.Module) -> str:
    """A digest of the teacher's parameters and buffers (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for k, v in sorted(teacher.state_dict().items()):
        h.update(f"{k}:{tuple(v.shape)}:{v.dtype}".encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]


def input_bandwidth(teacher: nn.Module) -> int:
    cfg = getattr(teacher, "cfg", None)
    bws = getattr(cfg, "bandwidths", None)
    if not bws:
        raise CheckpointError(f"{type(teacher).__name__} is not a spherical CNN teacher (no cfg.bandwidths)")
    return int(bws[0])


def resolve_teacher(teacher: str | Path | nn.Module, cfg: ViewConfig) -> tuple[nn.Module, str]:
    """The teacher in eval mode and its name; refuses (typed errors) a teacher of another input
    bandwidth than ``cfg.bandwidth`` and a layer it does not have. A teacher given by name or
    run folder gets the ray-cast channels its configuration records as ``input_channels``
    (what :func:`canonical_maps` casts); a module keeps its own, or the defaults."""
    if isinstance(teacher, nn.Module):
        net, name = teacher, type(teacher).__name__
    else:
        from equivision.tasks.shapes_sphere import load_spherical_cnn

        net, name = load_spherical_cnn(str(teacher)), str(teacher)
    if input_bandwidth(net) != cfg.bandwidth:
        raise CheckpointError(f"teacher {name} reads bandwidth {input_bandwidth(net)} signals, but the view "
                              f"dataset ray-casts at bandwidth {cfg.bandwidth}; pass --bandwidth "
                              f"{input_bandwidth(net)} or pick a teacher of that bandwidth")
    layers = list(getattr(net, "layer_names", []))
    if cfg.layer not in layers:
        raise InvalidInputError(f"teacher {name} has no layer {cfg.layer!r}; layers: {', '.join(layers)}")
    return net.eval(), name


def view_rotations(n: int, dof: int, seed: int, up: str = "+z") -> Tensor:
    """``n`` poses ``(n, 3, 3)`` float64 (module docstring for the two distributions)."""
    from equivision.data.registry import up_rotation
    from equivision.groups import SO3

    if dof == 3:
        return SO3().random(n, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    e = torch.asin(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1)
    rz = torch.zeros(n, 3, 3, dtype=torch.float64)
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = a.cos(), -a.sin(), a.sin(), a.cos(), 1
    rx = torch.zeros(n, 3, 3, dtype=torch.float64)
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, e.cos(), -e.sin(), e.sin(), e.cos()
    return rx @ rz @ up_rotation(up, "+z").to(torch.float64)


@torch.no_grad()
def canonical_maps(mesh: Mesh, teacher: nn.Module, layer: str, bandwidth: int) -> Tensor:
    """The teacher's ``layer`` maps ``(C, 2b, 2b)`` of the mesh as it is (one ray cast of the
    channels the teacher reads, :func:`~equivision.tasks.shapes_sphere.teacher_channels`)."""
    from equivision.render.sphere import raycast_sphere
    from equivision.tasks.shapes_sphere import teacher_channels

    x = raycast_sphere(mesh, bandwidth, channels=teacher_channels(teacher))
    return teacher.features(x[None], layer)[0]  # type: ignore[operator]


def rotated_targets(maps: Tensor, rotations: Tensor) -> Tensor:
    """Maps ``(C, 2b, 2b)`` rotated by each of ``rotations (N, 3, 3)``: ``(N, C, 2b, 2b)``,
    computed in float64 and returned in the maps' dtype."""
    from equivision.sphere.rotate import rotate

    return rotate(maps.double(), rotations.double()[:, None]).to(maps.dtype)


def view_scales(cfg: ViewConfig, name: str) -> Tensor:
    """Per view of mesh ``name``, the axis scale factors ``(N, 3)`` float64 of its copy: view
    ``i`` belongs to copy ``i % cfg.scalings``, whose factors are uniform in ``[1 − r, 1 + r]``
    (``r = cfg.scale_range``, seeded by the mesh's name); all ones without scaling."""
    if not cfg.scaled:
        return torch.ones(cfg.views, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(name_seed(cfg.seed, f"scale/{name}"))
    copies = 1 + cfg.scale_range * (2 * torch.rand(cfg.scalings, 3, generator=g, dtype=torch.float64) - 1)
    return copies[torch.arange(cfg.views) % cfg.scalings]


def scale_mesh(mesh: Mesh, factors: Tensor) -> Mesh:
    """The mesh with its vertices scaled along x, y, z by ``factors (3,)`` about the origin (the
    renderer and the ray cast centre the mesh themselves, so the origin does not matter)."""
    v, f = mesh
    return Mesh(v * factors.to(v.dtype), f)


def build_item(source: ViewSource, teacher: nn.Module, cfg: ViewConfig) -> dict[str, Tensor]:
    """One mesh's views: ``images (N, K, S, S)``, ``targets (N, C, 2b, 2b)``, ``rotations
    (N, 3, 3)`` and its canonical maps ``(C, 2b, 2b)`` (of the unscaled mesh: the templates'
    input); with scaling also ``scales (N, 3)``, each view's copy's factors, and the target of
    a view is the rotated maps of its scaled copy. A mesh that cannot be cast is an
    :class:`InvalidInputError` naming it."""
    from equivision.render.camera import render_views

    try:
        mesh = source.load()
        rots = view_rotations(cfg.views, cfg.dof, name_seed(cfg.seed, source.name), cfg.up)
        maps = canonical_maps(mesh, teacher, cfg.layer, cfg.bandwidth)
        if not cfg.scaled:
            images = render_views(mesh, rots, size=cfg.image_size, channels=cfg.channels)
            targets = rotated_targets(maps, rots)
        else:
            scales = view_scales(cfg, source.name)
            images = torch.empty(cfg.views, len(cfg.channels), cfg.image_size, cfg.image_size)
            targets = torch.empty(cfg.views, *maps.shape, dtype=maps.dtype)
            for k in range(cfg.scalings):
                idx = torch.arange(k, cfg.views, cfg.scalings)
                copy = scale_mesh(mesh, scales[k])
                images[idx] = render_views(copy, rots[idx], size=cfg.image_size,
                                           channels=cfg.channels).float()
                copy_maps = canonical_maps(copy, teacher, cfg.layer, cfg.bandwidth)
                targets[idx] = rotated_targets(copy_maps, rots[idx])
    except EquivisionError as e:
        raise type(e)(f"mesh {source.name}: {e}") from e
    item = {"images": images.float(), "targets": targets.float(), "rotations": rots.float(),
            "canonical": maps.float()}
    if cfg.scaled:
        item["scales"] = scales.float()
    return item


def dataset_key(sources: Sequence[ViewSource], digest: str, cfg: ViewConfig) -> str:
    cfg_d = {k: v for k, v in asdict(cfg).items() if k != "shard_size"}
    if not cfg.scaled:  # datasets built before scaling existed keep their keys
        del cfg_d["scalings"], cfg_d["scale_range"]
    return cache_key("views", VIEWS_VERSION, cfg_d, cfg.shard_size, digest,
                     [[s.name, s.label, s.fingerprint] for s in sources])


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    from equivision.io.atomic import atomic_path, write_marker

    with atomic_path(out / MANIFEST, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    write_marker(out, FOLDER_KIND, [MANIFEST, *(s["file"] for s in manifest["shards"])])


def read_manifest(folder: str | Path) -> dict[str, Any]:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        from equivision.errors import DataFileNotFoundError

        raise DataFileNotFoundError(f"{folder} is not a view dataset (no {MANIFEST})")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"{p} is not readable JSON ({e})") from e
    if not isinstance(m, dict) or m.get("format") != SHARD_KIND:
        raise CorruptFileError(f"{p} is not a view dataset manifest")
    return m


def build_view_dataset(
    out: str | Path,
    sources: Sequence[ViewSource],
    teacher: str | Path | nn.Module,
    cfg: ViewConfig = ViewConfig(),
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Build (or finish building) the view dataset of ``sources`` in folder ``out``; returns
    the manifest. Shards already there with this dataset's key are kept (a resumed build);
    a folder of another dataset (other meshes, teacher, layer, ...) is refused unless
    ``overwrite``. ``on_shard(i)`` is called after shard ``i`` is written."""
    from equivision.io.atomic import check_folder_output, clear_folder, read_marker

    if not sources:
        raise InvalidInputError("no meshes to build views of")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InvalidInputError("mesh names must be unique (they seed the views)")
    net, teacher_name = resolve_teacher(teacher, cfg)
    digest = teacher_digest(net)
    key = dataset_key(sources, digest, cfg)
    out = Path(out)
    resume = False
    if out.is_dir() and any(out.iterdir()):
        marker = read_marker(out)
        old = None
        if marker is not None and marker.get("kind") == FOLDER_KIND:
            try:
                old = read_manifest(out)
            except EquivisionError:
                old = None
        if old is not None and old.get("key") == key:
            resume = True
        elif not overwrite:
            what = ("another view dataset" if old is not None
                    else "files equivision did not write as a view dataset")
            diff = ""
            if old is not None:
                t = old.get("teacher", {})
                diff = (f" (it was built with teacher {t.get('name')} [{t.get('digest')}], layer "
                        f"{old.get('config', {}).get('layer')!r})")
            raise CheckpointError(f"{out} holds {what}{diff}; its key differs from this build's "
                                  f"({key}); pass --overwrite to replace it or choose a new folder")
        else:
            check_folder_output(out, FOLDER_KIND, overwrite=True, what="view dataset folder")
            clear_folder(out, FOLDER_KIND, what="view dataset folder")
    else:
        check_folder_output(out, FOLDER_KIND, overwrite=False, what="view dataset folder")
    out.mkdir(parents=True, exist_ok=True)

    n_shards = math.ceil(len(sources) / cfg.shard_size)
    manifest: dict[str, Any] = {
        "format": SHARD_KIND, "key": key, "complete": False, "version": VIEWS_VERSION,
        "config": {**asdict(cfg), "channels": list(cfg.channels)},
        "teacher": {"name": teacher_name, "digest": digest, "layer": cfg.layer, "bandwidth": cfg.bandwidth},
        "meshes": len(sources), "views_per_mesh": cfg.views, "items": len(sources) * cfg.views,
        "names": names, "labels": [s.label for s in sources], "shards": [],
    }
    old_shards = {s["file"]: s for s in (read_manifest(out)["shards"] if resume else [])}
    t_all = time.perf_counter()
    progress = None
    if show_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("views"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        progress.start()
        task = progress.add_task("meshes", total=len(sources))
    try:
        for i in range(n_shards):
            part = sources[i * cfg.shard_size:(i + 1) * cfg.shard_size]
            path = out / _shard_name(i)
            skey = cache_key(key, i)
            if is_current(path, SHARD_KIND, skey) and path.name in old_shards:
                manifest["shards"].append(old_shards[path.name])
                if progress is not None:
                    progress.advance(task, len(part))
            else:
                t0 = time.perf_counter()
                items = []
                for s in part:
                    items.append(build_item(s, net, cfg))
                    if progress is not None:
                        progress.advance(task, 1)
                data = {k: torch.stack([it[k] for it in items]) for k in items[0]}
                data["labels"] = torch.tensor([s.label for s in part], dtype=torch.long)
                write_cached(path, data, SHARD_KIND, skey, {"first": str(i * cfg.shard_size)})
                manifest["shards"].append({"file": path.name, "first": i * cfg.shard_size,
                                           "meshes": len(part),
                                           "bytes": path.stat().st_size,
                                           "seconds": round(time.perf_counter() - t0, 3)})
            manifest["bytes"] = sum(s["bytes"] for s in manifest["shards"])
            _write_manifest(out, manifest)
            if on_shard is not None:
                on_shard(i)
    finally:
        if progress is not None:
            progress.stop()
    sample = read_cached(out / _shard_name(0), SHARD_KIND, cache_key(key, 0))[0]
    manifest.update({
        "complete": True,
        "image_shape": list(sample["images"].shape[2:]),
        "target_shape": list(sample["targets"].shape[2:]),
        "bytes": sum(s["bytes"] for s in manifest["shards"]),
        "build_seconds": round(sum(s["seconds"] for s in manifest["shards"]), 3),
        "this_run_seconds": round(time.perf_counter() - t_all, 3),
    })
    _write_manifest(out, manifest)
    return manifest


class ViewDataset(Dataset):
    """Items ``(image (K, S, S), target (C, 2b, 2b), rotation (3, 3), label ())`` of a built
    view dataset, mesh-major (item ``i`` is view ``i % N`` of mesh ``i // N``). Shards are
    memory-mapped when first needed and an item reads only its own slices, so shuffled access
    does not load whole shards. ``teacher`` / ``layer``, when given, must be the
    ones the dataset was built with (a digest or name for ``teacher``), else
    :class:`CheckpointError`: targets of another teacher would train the wrong embedding."""

    def __init__(self, folder: str | Path, *, teacher: str | nn.Module | None = None,
                 layer: str | None = None) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        m = self.manifest
        if not m.get("complete"):
            raise CorruptFileError(f"{self.folder} is an unfinished view dataset; "
                                   "run the build again to finish it")
        t = m["teacher"]
        if layer is not None and layer != t["layer"]:
            raise CheckpointError(f"{self.folder} holds targets of layer {t['layer']!r}, not {layer!r}")
        if teacher is not None:
            want = teacher_digest(teacher) if isinstance(teacher, nn.Module) else str(teacher)
            if want not in (t["digest"], t["name"]):
                raise CheckpointError(f"{self.folder} was built with teacher {t['name']} [{t['digest']}], "
                                      f"not {want}; rebuild it with this teacher")
        self.views = int(m["views_per_mesh"])
        self.shard_size = int(m["config"]["shard_size"])
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return int(self.manifest["items"])

    def channel_index(self, names: Sequence[str], what: str = "channels") -> list[int]:
        """Indices of the image channels ``names`` (a subset in the dataset's order: a task
        config's ``task.<what>``); :class:`ConfigError` naming what is missing or misordered."""
        have = list(self.manifest["config"]["channels"])
        missing = [c for c in names if c not in have]
        if missing:
            raise ConfigError(f"{self.folder} has image channels {have}; task.{what} asks for {missing}")
        if [c for c in have if c in names] != list(names):
            raise ConfigError(f"task.{what} must follow the dataset's order {have}, got {list(names)}")
        return [have.index(c) for c in names]

    def check_image_size(self, size: int) -> None:
        """:class:`ConfigError` unless the dataset's images are ``size``² (a model's input)."""
        have = int(self.manifest["config"]["image_size"])
        if have != size:
            raise ConfigError(f"{self.folder} has {have}² images but model.image_size is {size}")

    def __getstate__(self) -> dict[str, Any]:
        # open files stay in their process: DataLoader workers open their own
        return {**self.__dict__, "_handles": {}}

    def shard(self, i: int) -> dict[str, Tensor]:
        """All tensors of shard ``i`` (checked against the dataset's key)."""
        return read_cached(self.folder / _shard_name(i), SHARD_KIND, cache_key(self.manifest["key"], i))[0]

    def _handle(self, i: int) -> Any:
        if i not in self._handles:
            from safetensors import SafetensorError, safe_open

            path = self.folder / _shard_name(i)
            if not is_current(path, SHARD_KIND, cache_key(self.manifest["key"], i)):
                raise CorruptFileError(f"{path} is missing, unreadable or not this dataset's shard; "
                                       "run the build again to rebuild it")
            try:
                self._handles[i] = safe_open(str(path), framework="pt")
            except (SafetensorError, OSError) as e:
                raise CorruptFileError(f"{path} is not readable ({e})") from e
        return self._handles[i]

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if not -len(self) <= idx < len(self):
            raise IndexError(idx)
        idx %= len(self)
        mesh, view = divmod(idx, self.views)
        s, j = divmod(mesh, self.shard_size)
        h = self._handle(s)

        def get(name: str) -> Tensor:
            return h.get_slice(name)[j:j + 1, view:view + 1][0, 0]

        return get("images"), get("targets"), get("rotations"), h.get_slice("labels")[j:j + 1][0]


def weighted_rel_l2(a: Tensor, b: Tensor) -> float:
    """Area-weighted relative L2 ``‖a − b‖ / ‖b‖`` of grid signals ``(..., 2b, 2b)`` (weights
    ``sin θ_j`` of the Driscoll–Healy rows)."""
    n = a.shape[-2]
    theta = math.pi * (2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n)
    w = theta.sin()[:, None]
    num = ((a.double() - b.double()) ** 2 * w).sum()
    den = (b.double() ** 2 * w).sum()
    return float((num / den.clamp_min(1e-300)).sqrt())


@torch.no_grad()
def recast_gap(mesh: Mesh, teacher: nn.Module, layers: Sequence[str], rotations: Tensor,
               bandwidth: int) -> dict[str, float]:
    """Per layer, the area-weighted relative L2 between the rotated canonical maps (the
    dataset's targets) and the teacher's maps of the mesh re-cast in each pose."""
    from equivision.render.sphere import raycast_sphere
    from equivision.tasks.shapes_sphere import teacher_channels

    channels = teacher_channels(teacher)
    x0 = raycast_sphere(mesh, bandwidth, channels=channels)
    xr = raycast_sphere(mesh, bandwidth, rotations=rotations, channels=channels)
    out = {}
    for layer in layers:
        m0 = teacher.features(x0[None], layer)[0]  # type: ignore[operator]
        mr = teacher.features(xr, layer)  # type: ignore[operator]
        out[layer] = weighted_rel_l2(rotated_targets(m0, rotations), mr)
    return out


def build_collection_views(out: str | Path, collection: str = "modelnet10", split: str = "train", *,
                           teacher: str | Path | nn.Module = DEFAULT_TEACHER,
                           limit: int | None = None, overwrite: bool = False, show_progress: bool = True,
                           **cfg: Any) -> dict[str, Any]:
    """The view dataset of a registry collection's ``split`` (meshes sorted by name, the first
    ``limit`` when given), poses about the collection's up axis for ``dof=2``; ``cfg``: the
    other :class:`ViewConfig` fields. Returns the manifest."""
    from equivision.data.registry import find_data_root, list_entries, up_axis

    if limit is not None and limit < 1:
        raise InvalidInputError(f"limit must be >= 1, got {limit}")
    entries = sorted(list_entries(collection, split=split), key=lambda e: e.name)[:limit]
    if "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    vcfg = ViewConfig(**{"up": up_axis(collection) or "+z", **cfg})
    return build_view_dataset(out, sources_from_entries(entries, find_data_root()), teacher, vcfg,
                              overwrite=overwrite, show_progress=show_progress)


def summary(m: dict[str, Any], out: str | Path) -> str:
    """One line: counts, size on disk and build time of a manifest."""
    return (f"{m['meshes']} meshes, {m['items']} views, {m['bytes'] / 1e6:.1f} MB in {len(m['shards'])} "
            f"shards, {m['build_seconds']:.1f} s of building ({Path(out) / MANIFEST})")


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m equivision.tasks.views",
                                description="Build a view dataset (images + teacher targets); "
                                "the same as `equivision data views`.")
    p.add_argument("out")
    p.add_argument("--collection", default="modelnet10")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--dof", type=int, default=3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", default="shading,silhouette,depth")
    p.add_argument("--teacher", default=DEFAULT_TEACHER)
    p.add_argument("--layer", default="stage1")
    p.add_argument("--bandwidth", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="only the first N meshes (sorted by name)")
    p.add_argument("--scalings", type=int, default=1, help="scaled copies per mesh (anisotropic scaling)")
    p.add_argument("--scale-range", type=float, default=0.0, help="axis factors uniform in [1-r, 1+r]")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:
        m = build_collection_views(a.out, a.collection, a.split, teacher=a.teacher, limit=a.limit,
                                   overwrite=a.overwrite, views=a.views, dof=a.dof, image_size=a.size,
                                   channels=a.channels.split(","), layer=a.layer, bandwidth=a.bandwidth,
                                   seed=a.seed, shard_size=a.shard_size, scalings=a.scalings,
                                   scale_range=a.scale_range)
    except EquivisionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(m, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = [
    "DEFAULT_TEACHER", "ViewConfig",
    "ViewDataset",
    "ViewSource",
    "build_collection_views",
    "build_item",
    "build_view_dataset",
    "canonical_maps",
    "dataset_key",
    "input_bandwidth",
    "read_manifest",
    "recast_gap",
    "resolve_teacher",
    "rotated_targets",
    "scale_mesh",
    "sources_from_entries",
    "sources_from_meshes",
    "summary",
    "teacher_digest",
    "view_rotations",
    "view_scales",
    "weighted_rel_l2",
]
