"""Timing shared by the benchmark scripts (run as ``python benchmarks/<name>.py``, so this
module is importable as ``_timing``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall-clock seconds of each function over ``repeats`` rounds, after one warm-up
    call each. The functions alternate within a round, so load from other processes hits
    every contender alike."""
    for fn in fns.values():
        fn()  # warm-up: tables, caches, the allocator
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def saved_mib(fn: Callable[[], torch.Tensor]) -> float:
    """MiB of tensors autograd saves for the backward of ``fn().square().mean()`` (the
    activation memory of training), counted in one forward + backward call."""
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn().square().mean().backward()
    return saved / 2**20
