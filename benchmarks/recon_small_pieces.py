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

sys.path.insert(0, str(Path(__file__).parent))
from _recon_steps import compare_step, shapes
from equivision.pipelines.reconstruct import PEIF_MIN_PIECE_FRACTION
from equivision.recon.extract import drop_small_pieces

KEYS = ("cd_l1", "nc", "f1", "pieces", "boundary_edges")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=4)
    ap.add_argument("--fraction", type=float, default=PEIF_MIN_PIECE_FRACTION)
    args = ap.parse_args()

    def variants(rec, pts, voxel):
        t = time.perf_counter()
        dropped = drop_small_pieces(rec.mesh, args.fraction)
        return [("all pieces", rec.mesh, 0.0),
                (f"pieces ≥ {args.fraction:g} of the faces", dropped, time.perf_counter() - t)]

    compare_step(shapes("benchmark", args.shapes), variants, KEYS, min_piece_fraction=0.0)


if __name__ == "__main__":
    main()
