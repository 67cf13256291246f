"""Finds the shared real data and lists its collections.

The data root is ``$EQUIVISION_DATA`` when set (and then nothing else is looked at);
otherwise ``../shared/data`` from the current folder, then ``shared/data`` beside the source
checkout (``<repo>/../shared/data``). When none holds a known collection,
:func:`find_data_root` returns ``None`` and callers fall back to procedural data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from equivision.errors import DataNotAvailableError, UnknownDatasetError

ENV_VAR = "EQUIVISION_DATA"


@dataclass(frozen=True)
class Collection:
    """One collection of the shared data."""

    name: str
    path: Path
    kind: str  # "meshes" or "images"
    description: str
    classes: dict[str, int] = field(default_factory=dict)  # class -> count (meshes by class)
    count: int = 0


_DESCRIPTIONS = {
    "shapenet10": ("meshes", "ShapeNetCore v2 objects in 10 classes (aligned, up = +y)"),
    "classic": ("meshes", "classic graphics test meshes (bunny, armadillo, fandisk, ...)"),
    "abc": ("meshes", "CAD models from the ABC dataset (watertight, sharp features)"),
    "mnist": ("images", "the MNIST test set, 10,000 handwritten digits (IDX)"),
}


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
        if c.is_dir() and any((c / n).is_dir() for n in _DESCRIPTIONS):
            return c.resolve()
    return None


def list_collections(root: Path | None = None) -> list[Collection]:
    """Every known collection present under ``root`` (default: :func:`find_data_root`)."""
    root = root if root is not None else find_data_root()
    if root is None:
        return []
    found = []
    for name, (kind, desc) in _DESCRIPTIONS.items():
        path = root / name
        if not path.is_dir():
            continue
        if name == "mnist":
            n = 10_000 if any(path.glob("t10k-images-idx3-ubyte*")) else 0
            found.append(Collection(name, path, kind, desc, {}, n))
            continue
        subdirs = sorted(d for d in path.iterdir() if d.is_dir())
        if subdirs:
            classes = {d.name: len(list(d.glob("*.ply"))) for d in subdirs}
            found.append(Collection(name, path, kind, desc, classes, sum(classes.values())))
        else:
            found.append(Collection(name, path, kind, desc, {}, len(list(path.glob("*.ply")))))
    return found


def get_collection(name: str, root: Path | None = None) -> Collection:
    """One collection by name; a typed error if unknown or absent."""
    if name not in _DESCRIPTIONS:
        raise UnknownDatasetError(f"unknown dataset '{name}'; known: {', '.join(_DESCRIPTIONS)}")
    for c in list_collections(root):
        if c.name == name:
            return c
    where = root or find_data_root()
    raise DataNotAvailableError(
        f"dataset '{name}' is not on this machine (data root: {where or 'none found'}); "
        f"set ${ENV_VAR} to the folder holding it"
    )


def mesh_files(name: str, cls: str | None = None, root: Path | None = None) -> list[Path]:
    """Sorted mesh files of a collection (of one class, for classed collections)."""
    c = get_collection(name, root)
    if c.kind != "meshes":
        raise UnknownDatasetError(f"'{name}' holds {c.kind}, not meshes")
    if c.classes:
        if cls is not None and cls not in c.classes:
            raise UnknownDatasetError(f"'{name}' has no class '{cls}'; classes: {', '.join(c.classes)}")
        classes = [cls] if cls is not None else list(c.classes)
        return [p for k in classes for p in sorted((c.path / k).glob("*.ply"))]
    if cls is not None:
        raise UnknownDatasetError(f"'{name}' has no classes")
    return sorted(c.path.glob("*.ply"))
