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

sys.path.insert(0, str(Path(__file__).parent))
from _recon_steps import compare_step, shapes
from equivision.recon.holes import fill_small_holes

KEYS = ("cd_l1", "nc", "f1", "pieces", "boundary_edges", "seconds")
#: (max_edges, max_gap in voxels)
SETTINGS = ((16, 0.5), (32, 0.5), (64, 1.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", choices=("validation", "benchmark"), default="validation")
    args = ap.parse_args()

    def variants(rec, pts, voxel):
        out = [("no filling (anchor)", rec.mesh, 0.0)]
        for me, gap in SETTINGS:
            t = time.perf_counter()
            mesh, rep = fill_small_holes(rec.mesh, pts, max_edges=me, max_gap=gap * voxel)
            out.append((f"fill ≤ {me} edges, gap {gap:g} voxel", mesh, time.perf_counter() - t))
            print(f"<!-- {me}/{gap}: {rep} -->", flush=True)
        return out

    compare_step(shapes(args.shapes), variants, KEYS, fill_holes=0, fairing=0)


if __name__ == "__main__":
    main()
