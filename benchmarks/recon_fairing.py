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

sys.path.insert(0, str(Path(__file__).parent))
from _recon_steps import compare_step, shapes
from equivision.pipelines.reconstruct import FAIRING_MAX_MOVE, PEIF_FAIRING
from equivision.recon.fairing import taubin_fairing

KEYS = ("cd_l1", "emd", "nc", "f1", "pieces", "boundary_edges", "seconds")
#: (λ|μ pairs, cap in voxels or None: uncapped)
SETTINGS = {
    "validation": ((2, None), (5, None), (10, None), (3, 0.1), (5, 0.1), (10, 0.1), (5, 0.25),
                   (10, 0.5)),
    "benchmark": ((PEIF_FAIRING, FAIRING_MAX_MOVE),),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", choices=("validation", "benchmark"), default="validation")
    args = ap.parse_args()

    def variants(rec, pts, voxel):
        out = [("no fairing (anchor)", rec.mesh, 0.0)]
        for steps, cap in SETTINGS[args.shapes]:
            t = time.perf_counter()
            mesh = taubin_fairing(rec.mesh, steps, max_move=None if cap is None else cap * voxel)
            name = f"fairing {steps}, " + ("uncapped" if cap is None else f"≤ {cap:g} voxel")
            out.append((name, mesh, time.perf_counter() - t))
        return out

    compare_step(shapes(args.shapes), variants, KEYS, fairing=0)


if __name__ == "__main__":
    main()
