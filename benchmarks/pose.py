"""Relative pose of two spherical embeddings (equivision.sphere.relative_pose) against the
brute-force search it replaces: rotate one embedding by every rotation of the SO(3) grid and
keep the best inner product (equivision.sphere.brute_force_pose).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pose.py`` (``--quick`` for a short run).
Prints a table and appends its rows to ``--jsonl`` (default ``benchmarks/results/pose.jsonl``).
One thread; wall-clock medians over interleaved repeats. Embeddings: band-limited random
float32 maps ``(C, 2b, 2b)``, the second one the first rotated by a random rotation.

* per pair: one call on one pair, grid argmax only (``refine=False``) and with the refinement
  below the grid (the default, which also refines the candidates for the second peak);
* batched: ``N`` pairs in one call, pairs per second;
* brute force over the same ``(2b)³`` grid: timed on a slice of ``P`` grid rotations and scaled
  to the whole grid (it is linear in the number of rotations; the whole grid at b = 32 would
  take hours on one thread). It returns a grid point only, so the ratio is taken against the
  FFT without refinement; the error column is that of the refined FFT answer.
"""

from __future__ import annotations

import argparse
import os

import torch

from _results import RowWriter, add_jsonl_option
from _timing import interleaved_medians
from equivision.groups import SO3
from equivision.sphere import brute_force_pose, isht, relative_pose, rotate, so3_grid_rotations


def bench(cases: list[tuple[int, int]], n_batch: int, n_brute: int, repeats: int, out: RowWriter) -> None:
    print(f"\n## Relative pose of one pair, float32, one thread; batches of {n_batch} pairs; brute force "
          f"timed on {n_brute} grid rotations and scaled to the (2b)³ grid\n")
    print("| b | C | FFT grid only | FFT + refinement | batched | brute force (2b)³ grid, scaled "
          "| ratio brute / FFT grid | error after refinement |")
    print("|---|---|---|---|---|---|---|---|")
    for b, c in cases:
        g = torch.Generator().manual_seed(b * 1000 + c)
        a = isht(torch.randn(c, b * b, generator=g))
        r_true = SO3().random(n_batch, seed=b + c, dtype=torch.float64)
        bb = rotate(a.double(), r_true[:, None]).float()
        grid = so3_grid_rotations(b, dtype=torch.float32).reshape(-1, 3, 3)
        subset = grid[torch.randperm(grid.shape[0], generator=g)[:n_brute]]
        fns = {
            "grid": lambda a=a, bb=bb: relative_pose(a, bb[0], refine=False),
            "refined": lambda a=a, bb=bb: relative_pose(a, bb[0]),
            "batched": lambda a=a, bb=bb: relative_pose(a, bb),
            "brute": lambda a=a, bb=bb, s=subset: brute_force_pose(a, bb[0], s, chunk=256),
        }
        t = interleaved_medians(fns, repeats)
        brute_full = t["brute"] * grid.shape[0] / n_brute
        err = float(SO3.geodesic_distance(relative_pose(a, bb).rotation.double(), r_true).max())
        pairs_s = n_batch / t["batched"]
        ratio = brute_full / t["grid"]
        print(f"| {b} | {c} | {t['grid'] * 1e3:.0f} ms | {t['refined'] * 1e3:.0f} ms | {pairs_s:.1f} pairs/s "
              f"| {brute_full:.0f} s | {ratio:.0f}× | {err:.1e} rad |")
        common = dict(bandwidth=b, channels=c, grid_rotations=grid.shape[0], brute_rotations_timed=n_brute)
        out.add(f"relative pose b={b} C={c}, grid only", t["grid"] * 1e3, "ms/pair", higher_is_better=False,
                anchor="brute force over the (2b)^3 grid (scaled)", anchor_figure=brute_full * 1e3,
                ratio=ratio, ratio_of="brute / FFT", **common)
        out.add(f"relative pose b={b} C={c}, refined", t["refined"] * 1e3, "ms/pair", higher_is_better=False,
                anchor="brute force over the (2b)^3 grid (scaled)", anchor_figure=brute_full * 1e3,
                ratio=brute_full / t["refined"], ratio_of="brute / FFT", max_error_rad=err, **common)
        out.add(f"relative pose b={b} C={c}, batched {n_batch}", pairs_s, "pairs/s", higher_is_better=True,
                **common)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer cases, repeats and brute-force rotations")
    add_jsonl_option(ap, "pose")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        cases, n_batch, n_brute, reps = [(16, 16), (32, 16)], 8, 128, 3
    else:
        cases = [(16, 16), (16, 32), (16, 64), (32, 16), (32, 32), (32, 64)]
        n_batch, n_brute, reps = 16, 512, 5
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} on {os.cpu_count()} cores")
    out = RowWriter("pose", args.jsonl, mode="quick" if args.quick else "full",
                    settings={"repeats": reps, "batch": n_batch, "brute_rotations": n_brute},
                    load_average=list(load))
    bench(cases, n_batch, n_brute, reps, out)
    print(f"\n{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
