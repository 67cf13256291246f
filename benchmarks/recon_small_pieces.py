"""Dropping small pieces from PEIF's meshes: every set of the reconstruction benchmark, the
same clouds (10k points, seed = shape index, resolution 128), with and without
``drop_small_pieces`` at the pipeline's default fraction; CD-L1 ×100, NC, F@1 %, pieces and
boundary edges per shape and as set means (the anchor is the same mesh before the drop).

``OMP_NUM_THREADS=1 python benchmarks/recon_small_pieces.py [--shapes 4]``
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
from equivision.pipelines.reconstruct import PEIF_MIN_PIECE_FRACTION, reconstruct
from equivision.recon.extract import drop_small_pieces
from reconstruction import _scores, test_sets

KEYS = ("cd_l1", "nc", "f1", "pieces", "boundary_edges")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=4)
    ap.add_argument("--fraction", type=float, default=PEIF_MIN_PIECE_FRACTION)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    t0 = time.perf_counter()
    print(f"| set | shape | method | {' | '.join(KEYS)} |\n|---|---|---|" + "---|" * len(KEYS))
    means: dict[tuple[str, str], list[dict]] = {}
    for set_name, files in test_sets(args.shapes).items():
        for i, f in enumerate(files):
            ref, _, _ = normalize_mesh(load_mesh(f))
            pts, _ = sample_surface_uniform(ref, 10_000, seed=i)
            kept = reconstruct(pts, net, resolution=128, min_piece_fraction=0.0).mesh
            dropped = drop_small_pieces(kept, args.fraction)
            for method, mesh in (("all pieces", kept), (f"pieces ≥ {args.fraction:g} of the faces", dropped)):
                s = _scores(mesh, ref, i)
                means.setdefault((set_name, method), []).append(s)
                print(f"| {set_name} | {f.stem[:12]} | {method} | "
                      + " | ".join(f"{s[k]:.4f}" if k in ("cd_l1", "nc", "f1") else str(s[k]) for k in KEYS)
                      + " |", flush=True)
    print(f"\nset means ({time.perf_counter() - t0:.0f} s):\n\n| set | method | {' | '.join(KEYS)} |\n"
          "|---|---|" + "---|" * len(KEYS))
    for (set_name, method), rows in means.items():
        m = {k: sum(r[k] for r in rows) / len(rows) for k in KEYS}
        print(f"| {set_name} | {method} | " + " | ".join(
            f"{m[k]:.4f}" if k in ("cd_l1", "nc", "f1") else f"{m[k]:,.1f}" for k in KEYS) + " |")


if __name__ == "__main__":
    main()
