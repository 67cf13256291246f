"""Finds the shared real data; defines its collections, splits, label orders and up axes.

This module is the one source of what a collection *is*: its layout, the order of its class
labels, its train/test split and the axis its objects stand on. Builders
(:mod:`equivision.data.shapes_sphere`, :mod:`equivision.recon.data`) and the classifier
(:mod:`equivision.pipelines.classify`) read these definitions instead of keeping their own.

The data root is ``$EQUIVISION_DATA`` when set (and then nothing else is looked at);
otherwise ``../shared/data`` from the current folder, then ``shared/data`` beside the source
checkout (``<repo>/../shared/data``). When none holds a known collection,
:func:`find_data_root` returns ``None`` and callers fall back to procedural data.

Collections (see ``docs/data.md``):

* ``shapenet10``: ``shapenet10/<class>/<id>.ply``, labels :data:`SHAPENET10_CLASSES`, up = +y;
  split by :func:`shapenet10_split` (in each class, files sorted by name, every fourth object
  starting with the fourth is a test object, and at least one per class);
* ``modelnet10``: ``modelnet10/{train,test}/<class>/<id>.ply``, labels
  :data:`MODELNET10_CLASSES`, up = +z; the official split, as the folders give it;
* ``classic``, ``abc``: unlabelled ``<name>/*.ply`` (mixed poses: no up axis);
* ``mnist``: the MNIST test set (images);
* ``procedural`` (not on disk: :mod:`equivision.data.procedural`): labels = the families,
  up = +y; training shapes use seeds ``0 … n−1``, test shapes ``PROCEDURAL_TEST_SEED + i``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from equivision.errors import DataNotAvailableError, UnknownDatasetError

if TYPE_CHECKING:
    from torch import Tensor

ENV_VAR = "EQUIVISION_DATA"

#: Label order of ``shapenet10`` (label ``i`` is ``SHAPENET10_CLASSES[i]``; alphabetical).
SHAPENET10_CLASSES = (
    "aeroplane", "bathtub", "bench", "bottle", "chair", "cup", "piano", "rifle", "toilet", "vase",
)
#: Label order of ``modelnet10`` (alphabetical, as the ModelNet10 release lists them).
MODELNET10_CLASSES = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)
#: Seed of the first procedural *test* shape of each family (training shapes start at 0).
PROCEDURAL_TEST_SEED = 1_000_000
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Collection:
    """One collection of the shared data, as found on disk."""

    name: str
    path: Path
    kind: str  # "meshes" or "images"
    description: str
    classes: dict[str, int] = field(default_factory=dict)  # class -> count (meshes by class)
    count: int = 0
    up: str | None = None  # the axis the objects stand on ("+y", "+z"), None when poses are mixed
    splits: dict[str, int] = field(default_factory=dict)  # split -> count, for official splits


@dataclass(frozen=True)
class Entry:
    """One labelled mesh file: listing entries reads folder names only, never a mesh."""

    path: Path
    label: int
    split: str  # "train" or "test"
    cls: str

    @property
    def name(self) -> str:
        return f"{self.cls}/{self.path.stem}"


@dataclass(frozen=True)
class _Spec:
    kind: str
    description: str
    layout: str  # "classes": <class>/*.ply; "split-classes": <split>/<class>/*.ply; "flat"; "images"
    up: str | None = None
    labels: tuple[str, ...] = ()


# The order here is the order collections are listed in.
_SPECS = {
    "shapenet10": _Spec("meshes", "ShapeNetCore v2 objects in 10 classes (aligned, up = +y)", "classes",
                        "+y", SHAPENET10_CLASSES),
    "classic": _Spec("meshes", "classic graphics test meshes (bunny, armadillo, fandisk, ...)", "flat"),
    "abc": _Spec("meshes", "CAD models from the ABC dataset (watertight, sharp features)", "flat"),
    "modelnet10": _Spec("meshes", "ModelNet10 objects in 10 classes, official train/test split "
                        "(aligned, up = +z)", "split-classes", "+z", MODELNET10_CLASSES),
    "mnist": _Spec("images", "the MNIST test set, 10,000 handwritten digits (IDX)", "images"),
}
#: Up axis of every collection with one (procedural shapes included).
UP_AXES: dict[str, str] = {**{n: s.up for n, s in _SPECS.items() if s.up}, "procedural": "+y"}


def class_names(collection: str) -> tuple[str, ...]:
    """The label order of ``collection`` (``shapenet10``, ``modelnet10`` or ``procedural``):
    label ``i`` is ``class_names(collection)[i]`` in every dataset and classifier."""
    if collection == "procedural":
        from equivision.data.procedural import FAMILIES

        return tuple(FAMILIES)
    spec = _SPECS.get(collection)
    if spec is None or not spec.labels:
        labelled = [n for n, s in _SPECS.items() if s.labels] + ["procedural"]
        raise UnknownDatasetError(f"'{collection}' has no class labels; labelled: {', '.join(labelled)}")
    return spec.labels


def up_axis(collection: str) -> str | None:
    """The axis ``collection``'s objects stand on (``"+y"``, ``"+z"``), ``None`` when mixed."""
    if collection != "procedural" and collection not in _SPECS:
        raise UnknownDatasetError(f"unknown dataset '{collection}'; known: {', '.join(_SPECS)}, procedural")
    return UP_AXES.get(collection)


_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0),
         "+z": (0, 0, 1), "-z": (0, 0, -1)}


def up_rotation(src: str, dst: str = "+y") -> Tensor:
    """The rotation ``(3, 3)`` (float64) taking axis ``src`` onto ``dst`` (e.g. ModelNet's +z onto
    ShapeNet's +y: ``up_rotation(up_axis("modelnet10"), "+y")``): the identity, a quarter turn
    about ``src × dst``, or a half turn about a perpendicular axis when they are opposite.
    Apply it to points ``(N, 3)`` as ``points @ R.T``."""
    import torch

    if src not in _AXES or dst not in _AXES:
        from equivision.errors import InvalidInputError

        raise InvalidInputError(f"axes must be one of {', '.join(_AXES)}, got {src!r} and {dst!r}")
    a = torch.tensor(_AXES[src], dtype=torch.float64)
    b = torch.tensor(_AXES[dst], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    if torch.equal(a, b):
        return eye
    if torch.equal(a, -b):  # half turn about the first coordinate axis perpendicular to both
        k = eye[int(torch.nonzero(a == 0)[0])]
        return 2 * torch.outer(k, k) - eye
    k = torch.linalg.cross(a, b)
    kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    return eye + kx + kx @ kx  # Rodrigues at 90°


def shapenet10_split(index: int, n_files: int) -> str:
    """The split of the ``index``-th (sorted by name) of a ShapeNet class's ``n_files`` files:
    every fourth, starting with the fourth, is ``"test"``; a class of fewer than four files
    has its last one in ``"test"``."""
    test = index % 4 == 3 or (n_files < 4 and index == n_files - 1)
    return "test" if test else "train"


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env))
    out.append(Path.cwd() / ".." / "shared" / "data")
    repo = Path(__file__).resolve().parents[3]  # src/equivision/data/registry.py -> repo
    out.append(repo.parent / "shared" / "data")
    return out


def find_data_root() -> Path | None:
    """The shared data folder, or ``None`` when this machine has none.

    ``$EQUIVISION_DATA`` pointing to a missing folder raises
    :class:`~equivision.errors.DataNotAvailableError` (the user asked for it explicitly).
    """
    env = os.environ.get(ENV_VAR)
    if env and not Path(env).is_dir():
        raise DataNotAvailableError(f"${ENV_VAR}={env} is not a folder; fix or unset it")
    # An explicit $EQUIVISION_DATA is the only place looked at (an empty folder there means
    # "no data": how a user or a test forces the procedural fallbacks).
    candidates = [Path(env)] if env else _candidates()
    for c in candidates:
        if c.is_dir() and any((c / n).is_dir() for n in _SPECS):
            return c.resolve()
    return None


def _subdirs(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir() if d.is_dir()) if path.is_dir() else []


def _scan(name: str, path: Path) -> Collection:
    spec = _SPECS[name]
    if spec.layout == "images":
        n = 10_000 if any(path.glob("t10k-images-idx3-ubyte*")) else 0
        return Collection(name, path, spec.kind, spec.description, {}, n, spec.up)
    if spec.layout == "split-classes":
        per_split = {s: {d.name: len(list(d.glob("*.ply"))) for d in _subdirs(path / s)} for s in SPLITS}
        names = sorted({c for counts in per_split.values() for c in counts})
        classes = {c: sum(per_split[s].get(c, 0) for s in SPLITS) for c in names}
        splits = {s: sum(per_split[s].values()) for s in SPLITS}
        return Collection(name, path, spec.kind, spec.description, classes, sum(classes.values()), spec.up,
                          splits)
    subdirs = _subdirs(path)
    if subdirs:
        classes = {d.name: len(list(d.glob("*.ply"))) for d in subdirs}
        return Collection(name, path, spec.kind, spec.description, classes, sum(classes.values()), spec.up)
    return Collection(name, path, spec.kind, spec.description, {}, len(list(path.glob("*.ply"))), spec.up)


def list_collections(root: Path | None = None) -> list[Collection]:
    """Every known collection present under ``root`` (default: :func:`find_data_root`)."""
    root = root if root is not None else find_data_root()
    if root is None:
        return []
    return [_scan(name, root / name) for name in _SPECS if (root / name).is_dir()]


def get_collection(name: str, root: Path | None = None) -> Collection:
    """One collection by name; a typed error if unknown or absent."""
    if name not in _SPECS:
        raise UnknownDatasetError(f"unknown dataset '{name}'; known: {', '.join(_SPECS)}")
    root = root if root is not None else find_data_root()
    if root is not None and (root / name).is_dir():
        return _scan(name, root / name)
    raise DataNotAvailableError(
        f"dataset '{name}' is not on this machine (data root: {root or 'none found'}); "
        f"set ${ENV_VAR} to the folder holding it"
    )


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        from equivision.errors import InvalidInputError

        raise InvalidInputError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")


def list_entries(name: str, split: str | None = None, root: Path | None = None) -> list[Entry]:
    """The labelled mesh files of ``shapenet10`` or ``modelnet10`` as ``(path, label, split,
    class)`` entries, by label, then split (train first), then file name; only folders are
    listed (no mesh is read). ``split``: ``"train"``, ``"test"`` or ``None`` (both). A class of
    the label order missing on disk is a :class:`~equivision.errors.DataNotAvailableError`."""
    _check_split(split)
    labels = _SPECS[name].labels if name in _SPECS else ()
    if not labels:
        raise UnknownDatasetError(f"'{name}' has no labelled meshes; labelled: shapenet10, modelnet10")
    c = get_collection(name, root)
    missing = [k for k in labels if k not in c.classes]
    if missing:
        raise DataNotAvailableError(f"{c.path} lacks the class folder(s) {', '.join(missing)}")
    out = []
    for label, cls in enumerate(labels):
        if _SPECS[name].layout == "split-classes":
            for s in SPLITS:
                out += [Entry(p, label, s, cls) for p in sorted((c.path / s / cls).glob("*.ply"))]
        else:
            files = sorted((c.path / cls).glob("*.ply"))
            out += [Entry(p, label, shapenet10_split(i, len(files)), cls) for i, p in enumerate(files)]
    return [e for e in out if split is None or e.split == split]


def mesh_files(name: str, cls: str | None = None, root: Path | None = None, *,
               split: str | None = None) -> list[Path]:
    """Sorted mesh files of a collection (of one class, for classed collections; of one
    ``split``, for ``shapenet10`` and ``modelnet10``)."""
    _check_split(split)
    c = get_collection(name, root)
    if c.kind != "meshes":
        raise UnknownDatasetError(f"'{name}' holds {c.kind}, not meshes")
    if c.classes:
        if cls is not None and cls not in c.classes:
            raise UnknownDatasetError(f"'{name}' has no class '{cls}'; classes: {', '.join(c.classes)}")
        if split is not None or _SPECS[name].layout == "split-classes":
            return [e.path for e in list_entries(name, split, root) if cls is None or e.cls == cls]
        classes = [cls] if cls is not None else list(c.classes)
        return [p for k in classes for p in sorted((c.path / k).glob("*.ply"))]
    if cls is not None:
        raise UnknownDatasetError(f"'{name}' has no classes")
    if split is not None:
        raise UnknownDatasetError(f"'{name}' has no train/test split")
    return sorted(c.path.glob("*.ply"))
