"""One on-disk cache for built datasets: safetensors files named and checked by a key.

The *key* (:func:`cache_key`) is a digest of everything that determines a file's content:
the builder's configuration, its code version, its seeds and a fingerprint of its source
files (:func:`file_fingerprint`: name, size and modification time of each). A file records
its key and its *kind* (what wrote it, e.g. ``"equivision-recon-data/1"``) in its safetensors
metadata, so a file is trusted only when both match.

Two ways to read, with two policies:

* :func:`load_or_build` **rebuilds**: a missing, unreadable, foreign or stale file is built
  again and replaces the old one (cache folders hold only what equivision wrote there);
* :func:`read_cached` **refuses**: the same faults raise
  :class:`~equivision.errors.CorruptFileError` (a missing file
  :class:`~equivision.errors.DataFileNotFoundError`), for readers that must not build.

Writes are atomic (a temporary file in the same folder, then a rename), so a reader never
sees half a file and processes building the same key at once each leave a whole file (the
last rename wins; the contents are the same by construction).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from equivision.errors import CorruptFileError, DataFileNotFoundError


def cache_key(*parts: Any) -> str:
    """A 16-hex-digit digest of JSON-serialisable ``parts`` (dict order does not matter;
    tuples and lists hash alike; paths hash as their text)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str] | None = None
                     ) -> list[list[Any]]:
    """``[[name, size, mtime_ns], ...]`` of ``paths`` (names relative to ``root`` when given,
    so moving the whole data folder keeps the names): cheap (no file is read) and changes
    when a file is replaced or edited."""
    out = []
    for p in map(Path, paths):
        try:
            st = p.stat()
        except FileNotFoundError as e:
            raise DataFileNotFoundError(f"source file {p} does not exist") from e
        name = p.relative_to(root).as_posix() if root is not None else p.as_posix()
        out.append([name, st.st_size, st.st_mtime_ns])
    return out


def _header(path: Path) -> dict[str, str] | None:
    """The file's metadata, or ``None`` when it is not a readable safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None


def is_current(path: str | os.PathLike[str], kind: str, key: str) -> bool:
    """Whether ``path`` is a readable cache file of ``kind`` built with ``key`` (reads the
    header only)."""
    p = Path(path)
    meta = _header(p) if p.is_file() else None
    return meta is not None and meta.get("kind") == kind and meta.get("key") == key


def read_cached(path: str | os.PathLike[str], kind: str | None, key: str | None = None
                ) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a cache file; refuses (typed errors) a missing file, an
    unreadable one, one of another ``kind`` or one built with another ``key`` (``None``: any
    kind, any key; the caller checks the metadata itself)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise DataFileNotFoundError(f"cache file {p} does not exist")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            data = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptFileError(f"{p} is not a readable safetensors file ({e}); delete it to rebuild") from e
    if kind is not None and meta.get("kind") != kind:
        raise CorruptFileError(f"{p} is not a cache file of {kind} (it records {meta.get('kind')!r})")
    if key is not None and meta.get("key") != key:
        raise CorruptFileError(f"{p} is stale: built with key {meta.get('key')}, not {key}; "
                               "delete it to rebuild")
    return data, meta


def write_cached(path: str | os.PathLike[str], tensors: Mapping[str, Tensor], kind: str, key: str,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` with their ``kind``, ``key`` and extra string ``metadata``, atomically
    (creating the folder; replacing a file already there)."""
    from safetensors.torch import save_file

    from equivision.io.atomic import atomic_path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {**(metadata or {}), "kind": kind, "key": key}
    with atomic_path(p, overwrite=True) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    return p


def load_or_build(path: str | os.PathLike[str], kind: str, key: str,
                  build: Callable[[], Mapping[str, Tensor]],
                  metadata: Mapping[str, str] | None = None) -> dict[str, Tensor]:
    """The tensors cached at ``path`` if it is current (same ``kind`` and ``key``), else
    ``build()``'s, written there first (a missing, corrupt, foreign or stale file is rebuilt)."""
    p = Path(path)
    if is_current(p, kind, key):
        try:
            return read_cached(p, kind, key)[0]
        except CorruptFileError:
            pass  # a readable header over damaged data: rebuild below
    data = dict(build())
    write_cached(p, data, kind, key, metadata)
    return data
