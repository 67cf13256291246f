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
  FFT without refinement; the error column is that of the refined FFT answer;
* from two 64² images (``--images-only`` for this part alone): a small and the paper-size
  ImageToSphere (random weights) embed both images, then ``relative_pose`` with refinement;
  against the pose-regression network of the same encoder and the brute force; batched pairs
  per second and the process's peak resident memory after each network (``ru_maxrss``, so it
  includes what came before). The goal to compare with: under 100 ms per pair.
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


IMAGE_NETS = {  # ImageToSphere widths; the regression baseline takes the same encoder
    "small": {"width": 8, "max_width": 32, "code_dim": 64},
    "config": {"width": 24, "max_width": 96, "code_dim": 256},  # configs/image_to_sphere_modelnet10.json
    "paper": {"width": 64, "max_width": 256, "code_dim": 1024},
}


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_images(n_batch: int, n_brute: int, repeats: int, out: RowWriter) -> None:
    """Pose from two 64² three-channel images (b = 16, C = 32, the ModelNet10 teacher's stage1):
    the image network's forward pass on both, then ``relative_pose`` with refinement; against
    the pose-regression network of the same encoder (two forward passes and ``R_b R_aᵀ``) and
    the brute-force search over the (2b)³ grid on the same embeddings (timed on ``n_brute``
    rotations, scaled). Random weights: the time does not depend on them."""
    from equivision.models import count_parameters
    from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig
    from equivision.models.pose_regression import PoseRegression, PoseRegressionConfig

    b, c = 16, 32
    print(f"\n## Pose from two 64² images, b = {b}, C = {c}, one thread; batches of {n_batch} pairs; "
          f"brute force timed on {n_brute} grid rotations and scaled\n")
    print("| network | parameters | embedding (2 images) | correlation + refinement | total per pair "
          "| batched | regression (same encoder) | brute force, scaled | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2 * n_batch, 3, 64, 64, generator=g)
    grid = so3_grid_rotations(b, dtype=torch.float32).reshape(-1, 3, 3)
    subset = grid[torch.randperm(grid.shape[0], generator=g)[:n_brute]]
    for name, kw in IMAGE_NETS.items():
        torch.manual_seed(0)
        net = ImageToSphere(ImageToSphereConfig(in_channels=3, image_size=64, bandwidth=b, out_channels=c,
                                                **kw)).eval()
        reg = PoseRegression(PoseRegressionConfig(in_channels=3, image_size=64, **kw)).eval()
        with torch.no_grad():
            e = net(x[:2])

        def embed(net=net) -> torch.Tensor:
            with torch.no_grad():
                return net(x[:2])

        def pair(net=net) -> object:
            with torch.no_grad():
                m = net(x[:2])
            return relative_pose(m[0], m[1])

        def batched(net=net) -> object:
            with torch.no_grad():
                m = net(x).reshape(n_batch, 2, c, 2 * b, 2 * b)
            return relative_pose(m[:, 0], m[:, 1])

        def regress(reg=reg) -> torch.Tensor:
            with torch.no_grad():
                r = reg(x[:2])
            return r[1] @ r[0].T

        fns = {"embed": embed, "correlate": lambda e=e: relative_pose(e[0], e[1]), "pair": pair,
               "batched": batched, "regression": regress,
               "brute": lambda e=e: brute_force_pose(e[0], e[1], subset, chunk=256)}
        t = interleaved_medians(fns, repeats)
        brute_full = t["brute"] * grid.shape[0] / n_brute + t["embed"]
        pairs_s = n_batch / t["batched"]
        rss = _peak_rss_mib()
        n_par = count_parameters(net)
        print(f"| {name} | {n_par / 1e6:.2f} M | {t['embed'] * 1e3:.0f} ms | {t['correlate'] * 1e3:.0f} ms "
              f"| {t['pair'] * 1e3:.0f} ms | {pairs_s:.1f} pairs/s | {t['regression'] * 1e3:.0f} ms "
              f"({count_parameters(reg) / 1e6:.2f} M) | {brute_full:.0f} s | {rss:.0f} MiB |")
        common = dict(network=name, parameters=n_par, regression_parameters=count_parameters(reg),
                      bandwidth=b, channels=c, image_size=64, peak_rss_mib=rss, goal_ms=100.0)
        out.add(f"image pose {name} net, two 64^2 images", t["pair"] * 1e3, "ms/pair", higher_is_better=False,
                anchor="pose regression, same encoder", anchor_figure=t["regression"] * 1e3,
                embedding_ms=t["embed"] * 1e3, correlation_ms=t["correlate"] * 1e3, **common)
        out.add(f"image pose {name} net, brute force anchor", t["pair"] * 1e3, "ms/pair",
                higher_is_better=False, anchor="embedding + brute force over the (2b)^3 grid (scaled)",
                anchor_figure=brute_full * 1e3, ratio=brute_full / t["pair"], ratio_of="brute / FFT",
                **common)
        out.add(f"image pose {name} net, batched {n_batch}", pairs_s, "pairs/s", higher_is_better=True,
                **common)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer cases, repeats and brute-force rotations")
    ap.add_argument("--images-only", action="store_true", help="only the pose from two images")
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
    if not args.images_only:
        bench(cases, n_batch, n_brute, reps, out)
    bench_images(n_batch, n_brute, reps, out)
    print(f"\n{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
