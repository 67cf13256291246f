"""MNIST's IDX files (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from equivision.errors import CorruptFileError, DataFileNotFoundError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX array (``.gz`` or raw). Raises a typed error on missing or corrupt files."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"IDX file {p} does not exist")
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise CorruptFileError(f"{p}: cannot read ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise CorruptFileError(f"{p}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(f"{p}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dt = np.dtype(_IDX_DTYPES[raw[2]])
    need = int(np.prod(shape)) * dt.itemsize
    if len(raw) - header != need:
        raise CorruptFileError(
            f"{p}: expected {need} data bytes for shape {shape}, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dt, offset=header).reshape(shape).astype(dt.newbyteorder("="))


def load_mnist(folder: str | os.PathLike[str], split: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` from ``{split}-images-idx3-ubyte[.gz]``."""
    d = Path(folder)

    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (d / name).exists():
                return d / name
        raise DataFileNotFoundError(f"{d} has no {stem}(.gz); is this an MNIST folder?")

    images = read_idx(find(f"{split}-images-idx3-ubyte"))
    labels = read_idx(find(f"{split}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CorruptFileError(f"{d}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels.astype(np.int64)
