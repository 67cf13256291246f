"""Fairing PEIF's meshes (:func:`equivision.recon.fairing.taubin_fairing`): the pipeline's mesh
without fairing (anchor) against the same mesh faired, several settings, on the same clouds (10k
points, resolution 128); CD-L1 ×100, EMD ×100, NC, F@1 %, pieces, boundary edges and the
fairing's time per shape and as set means.

``OMP_NUM_THREADS=1 python benchmarks/recon_fairing.py [--shapes validation|benchmark]``

``validation``: the tangent-plane filter's validation shapes (cloud seed 50 + index), where a
setting is chosen; ``benchmark``: the reconstruction benchmark's sets (seed = shape index, 4 per
set), where the chosen one (the pipeline's default) is reported.
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
from equivision.pipelines.reconstruct import FAIRING_MAX_MOVE, PEIF_FAIRING, reconstruct
from equivision.recon.fairing import taubin_fairing
from recon_fill_holes import shapes
from recon_plane_filter import voxel_in_cloud_units
from reconstruction import _scores

KEYS = ("cd_l1", "emd", "nc", "f1", "pieces", "boundary_edges", "seconds")
#: (λ|μ pairs, cap in voxels or None: uncapped)
SETTINGS = {
    "validation": ((2, None), (5, None), (10, None), (3, 0.1), (5, 0.1), (10, 0.1), (5, 0.25),
                   (10, 0.5)),
    "benchmark": ((PEIF_FAIRING, FAIRING_MAX_MOVE),),
}


def _fmt(k: str, x: float) -> str:
    return f"{x:.4f}" if k in ("cd_l1", "emd", "nc", "f1") else f"{x:.2f}" if k == "seconds" else f"{x:,.1f}"


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
        rec = reconstruct(pts, net, resolution=128, fairing=0)
        voxel = voxel_in_cloud_units(pts, rec.stats.voxel)
        variants = [("no fairing (anchor)", rec.mesh, 0.0)]
        for steps, cap in SETTINGS[args.shapes]:
            t = time.perf_counter()
            mesh = taubin_fairing(rec.mesh, steps, max_move=None if cap is None else cap * voxel)
            name = f"fairing {steps}, " + ("uncapped" if cap is None else f"≤ {cap:g} voxel")
            variants.append((name, mesh, time.perf_counter() - t))
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
