"""Precomputed tables of the sphere engine (Legendre values, Wigner-d seeds, gathers), cached.

A :class:`TableCache` wraps a function that builds tables on the CPU in float64 (or int64,
complex128) from hashable arguments such as the bandwidth. It keeps

* the built tables, keyed by those arguments only (built once per process);
* copies cast to the dtype and moved to the device a caller asked for, in a small LRU per
  cache, so that a CUDA run does not rebuild or re-upload them on every call.

Both levels are bounded, and :func:`clear_caches` empties every cache (frees the device
copies, e.g. before measuring GPU memory or after moving work off a device).

A cached tensor is handed out as is (no copy per call), so the library's code never writes
to one in place. A caller that does is not trusted either: each entry remembers the version
counters of its tensors, which torch bumps on any in-place write to them or to a view of
them, and an entry whose counters moved is rebuilt before it is handed out again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

_ALL: list[TableCache[Any]] = []

_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _freeze(x: Any) -> Any:
    """Lists become tuples, so that no container in a cached entry can be appended to."""
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


def _tensors(x: Any) -> list[Tensor]:
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, tuple):
        return [t for v in x for t in _tensors(v)]
    return []


def _convert(x: Any, dtype: torch.dtype | None, device: torch.device) -> Any:
    if isinstance(x, tuple):
        return tuple(_convert(v, dtype, device) for v in x)
    if not isinstance(x, Tensor):
        return x
    target = x.dtype
    if dtype is not None and x.is_floating_point():
        target = dtype
    elif dtype is not None and x.is_complex():
        target = _COMPLEX_OF.get(dtype, dtype) if not dtype.is_complex else dtype
    return x.to(dtype=target, device=device)


# (value, its tensors, their version counters when stored)
_Entry = tuple[Any, tuple[Tensor, ...], tuple[int, ...]]


class TableCache(Generic[T]):
    """``cache(*key, dtype=None, device=None)``: the tables ``build(*key)`` with their floating
    tensors cast to ``dtype`` (complex ones to the matching complex dtype; integer ones kept)
    on ``device`` (default CPU). ``build`` returns a tensor or nested tuples/lists of tensors
    and plain values (lists come back as tuples).

    ``maxsize`` bounds the number of keys built and, separately, of ``(key, dtype, device)``
    copies kept; the least recently used go first."""

    def __init__(self, build: Callable[..., T], *, maxsize: int = 32) -> None:
        self._build = build
        self._maxsize = maxsize
        self._base: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._copies: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0  # how many times ``build`` ran (tests check that calls reuse)
        self.__doc__ = build.__doc__
        _ALL.append(self)

    def __call__(self, *key: Hashable, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> T:
        ckey = (key, dtype, device)
        with self._lock:
            hit = self._get(self._copies, ckey)  # the hot path: a dict lookup and a version check
            if hit is not None:
                if key in self._base:  # the base is as recently used as its copies
                    self._base.move_to_end(key)
                return hit
            dev = torch.device("cpu") if device is None else torch.device(device)
            # tables are constants: never inference tensors (they would have no version
            # counter), never part of an autograd graph
            with torch.inference_mode(False), torch.no_grad():
                base = self._get(self._base, key)
                if base is None:
                    base = _freeze(self._build(*key))
                    self.builds += 1
                    self._put(self._base, key, base)
                out = _convert(base, dtype, dev)
            self._put(self._copies, ckey, out)
            return out

    def _get(self, store: OrderedDict[Hashable, _Entry], key: Hashable) -> Any:
        entry = store.get(key)
        if entry is None:
            return None
        value, tensors, versions = entry
        if any(t._version != v for t, v in zip(tensors, versions, strict=True)):
            self._discard(tensors)  # written to in place since it was stored
            return None
        store.move_to_end(key)
        return value

    def _discard(self, tensors: tuple[Tensor, ...]) -> None:
        # a copy may be its base itself (same dtype and device): drop every entry sharing one
        ids = {id(t) for t in tensors}
        for store in (self._base, self._copies):
            for k in [k for k, e in store.items() if ids & {id(t) for t in e[1]}]:
                del store[k]

    def _put(self, store: OrderedDict[Hashable, _Entry], key: Hashable, value: Any) -> None:
        tensors = tuple(_tensors(value))
        store[key] = (value, tensors, tuple(t._version for t in tensors))
        store.move_to_end(key)
        while len(store) > self._maxsize:
            store.popitem(last=False)

    def cache_info(self) -> dict[str, int]:
        """Keys built and device copies held now, and how many times the tables were built."""
        with self._lock:
            return {"built": len(self._base), "copies": len(self._copies), "builds": self.builds}

    def clear(self) -> None:
        with self._lock:
            self._base.clear()
            self._copies.clear()


def clear_caches() -> None:
    """Empty every table cache of :mod:`equivision.sphere` (CPU tables and device copies);
    the next call rebuilds what it needs."""
    for cache in _ALL:
        cache.clear()
