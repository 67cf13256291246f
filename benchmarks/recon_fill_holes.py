"""Closing PEIF's small holes (:func:`equivision.recon.holes.fill_small_holes`): the default
pipeline's mesh (anchor) against the same mesh with its small holes filled, several settings,
on the same clouds (10k points, resolution 128); CD-L1 ×100, NC, F@1 %, pieces, boundary edges
and the fill's time per shape and as set means.

``OMP_NUM_THREADS=1 python benchmarks/recon_fill_holes.py [--shapes validation|benchmark]``

``validation``: the tangent-plane filter's validation shapes (cloud seed 50 + index), where a
setting is chosen; ``benchmark``: the reconstruction benchmark's sets (seed = shape index, 4 per
set), where the chosen one is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.io import load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct
from equivision.recon.holes import fill_small_holes
from recon_plane_filter import validation_shapes, voxel_in_cloud_units
from reconstruction import _scores, test_sets

KEYS = ("cd_l1", "nc", "f1", "pieces", "boundary_edges", "seconds")
#: (max_edges, max_gap in voxels)
SETTINGS = ((16, 0.5), (32, 0.5), (64, 1.0))


def shapes(which: str) -> list[tuple[str, Path, int]]:
    if which == "validation":
        return [(s, f, 50 + i) for i, (s, f) in enumerate(validation_shapes())]
    return [(s, f, i) for s, files in test_sets(4).items() for i, f in enumerate(files)]


def _fmt(k: str, x: float) -> str:
    return f"{x:.4f}" if k in ("cd_l1", "nc", "f1") else f"{x:.2f}" if k == "seconds" else f"{x:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", choices=("validation", "benchmark"), default="validation")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    t0 = time.perf_counter()
    print(f"| set | shape | method | {' | '.join(KEYS)} |\n|---|---|---|" + "---|" * len(KEYS))
    means: dict[tuple[str, str], list[dict]] = {}
    for set_name, f, seed in shapes(args.shapes):
        ref, _, _ = normalize_mesh(load_mesh(f))
        pts, _ = sample_surface_uniform(ref, 10_000, seed=seed)
        rec = reconstruct(pts, net, resolution=128)
        voxel = voxel_in_cloud_units(pts, rec.stats.voxel)
        variants = [("default (anchor)", rec.mesh, 0.0)]
        for me, gap in SETTINGS:
            t = time.perf_counter()
            mesh, rep = fill_small_holes(rec.mesh, pts, max_edges=me, max_gap=gap * voxel)
            variants.append((f"fill ≤ {me} edges, gap {gap:g} voxel", mesh, time.perf_counter() - t))
            print(f"<!-- {f.stem[:12]} {me}/{gap}: {rep} -->", flush=True)
        for method, mesh, sec in variants:
            s = dict(_scores(mesh, ref, seed), seconds=sec)
            means.setdefault((set_name, method), []).append(s)
            print(f"| {set_name} | {f.stem[:12]} | {method} | " + " | ".join(_fmt(k, s[k]) for k in KEYS)
                  + " |", flush=True)
    print(f"\nset means ({time.perf_counter() - t0:.0f} s):\n\n| set | method | {' | '.join(KEYS)} |\n"
          "|---|---|" + "---|" * len(KEYS))
    for (set_name, method), rows in means.items():
        m = {k: sum(r[k] for r in rows) / len(rows) for k in KEYS}
        print(f"| {set_name} | {method} | " + " | ".join(_fmt(k, m[k]) for k in KEYS) + " |")


if __name__ == "__main__":
    main()
