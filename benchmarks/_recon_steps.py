"""Shared by the benchmarks of one post-processing step of PEIF's pipeline
(``recon_fill_holes.py``, ``recon_fairing.py``, ``recon_small_pieces.py``): reconstruct each shape
once without the step, apply the step's settings to that mesh, and print the scores per shape and
as set means, the unprocessed mesh as the anchor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.io import Mesh, load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import Reconstruction, reconstruct
from recon_plane_filter import validation_shapes, voxel_in_cloud_units
from reconstruction import _scores, test_sets

#: ``variants(reconstruction, points, voxel in the points' units)`` → ``[(method, mesh, seconds)]``,
#: the anchor first.
Variants = Callable[[Reconstruction, torch.Tensor, float], list[tuple[str, Mesh, float]]]


def shapes(which: str, per_set: int = 4) -> list[tuple[str, Path, int]]:
    """``(set, mesh file, cloud seed)``: ``validation`` (the tangent-plane filter's validation
    shapes, seed 50 + index) or ``benchmark`` (the reconstruction benchmark's sets, seed = index)."""
    if which == "validation":
        return [(s, f, 50 + i) for i, (s, f) in enumerate(validation_shapes())]
    return [(s, f, i) for s, files in test_sets(per_set).items() for i, f in enumerate(files)]


def _fmt(k: str, x: float) -> str:
    return f"{x:.4f}" if k in ("cd_l1", "emd", "nc", "f1") else f"{x:.2f}" if k == "seconds" else f"{x:,.1f}"


def compare_step(cases: Iterable[tuple[str, Path, int]], variants: Variants, keys: tuple[str, ...],
                 **reconstruct_kw) -> None:
    """Print a table row per shape and method, then the set means (``keys`` of ``_scores`` and
    ``seconds``, the step's own time). ``reconstruct_kw`` turns the step off in the pipeline."""
    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    t0 = time.perf_counter()
    print(f"| set | shape | method | {' | '.join(keys)} |\n|---|---|---|" + "---|" * len(keys))
    means: dict[tuple[str, str], list[dict]] = {}
    for set_name, f, seed in cases:
        ref, _, _ = normalize_mesh(load_mesh(f))
        pts, _ = sample_surface_uniform(ref, 10_000, seed=seed)
        rec = reconstruct(pts, net, resolution=128, **reconstruct_kw)
        for method, mesh, sec in variants(rec, pts, voxel_in_cloud_units(pts, rec.stats.voxel)):
            s = dict(_scores(mesh, ref, seed), seconds=sec)
            means.setdefault((set_name, method), []).append(s)
            print(f"| {set_name} | {f.stem[:12]} | {method} | " + " | ".join(_fmt(k, s[k]) for k in keys)
                  + " |", flush=True)
    print(f"\nset means ({time.perf_counter() - t0:.0f} s):\n\n| set | method | {' | '.join(keys)} |\n"
          "|---|---|" + "---|" * len(keys))
    for (set_name, method), rows in means.items():
        m = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
        print(f"| {set_name} | {method} | " + " | ".join(_fmt(k, m[k]) for k in keys) + " |")
