"""Time ``PoseEstimator.relative`` for two 64² images on one thread, after start-up: the image
network's forward pass (both images in one batch), then the SO(3) correlation with refinement.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pose_pipeline.py [--repeats 5] [--run RUN]

Randomly initialised networks of the test size and of the paper's size (the timing does not
depend on the weights); ``--run`` adds a trained run folder. Medians over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from equivision.models import count_parameters
from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig
from equivision.pipelines.pose import PoseEstimator
from equivision.sphere.pose import relative_pose

SIZES = {
    "tiny": {"width": 8, "max_width": 32, "code_dim": 64},
    "paper": {"width": 64, "max_width": 256, "code_dim": 1024},
}


def _time(est: PoseEstimator, repeats: int) -> tuple[float, float, float]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, len(est.channels), est.image_size, est.image_size, generator=g)
    emb, cor, tot = [], [], []
    est.relative(x[0], x[1])  # warm-up: first calls build cached tables
    for _ in range(repeats):
        t0 = time.perf_counter()
        e = est.embed_images(x)
        t1 = time.perf_counter()
        relative_pose(e[0].double(), e[1].double(), out_bandwidth=est.out_bandwidth)
        t2 = time.perf_counter()
        emb.append(t1 - t0)
        cor.append(t2 - t1)
        t3 = time.perf_counter()
        est.relative(x[0], x[1])
        tot.append(time.perf_counter() - t3)
    return statistics.median(emb), statistics.median(cor), statistics.median(tot)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--run", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    nets = []
    for name, kw in SIZES.items():
        torch.manual_seed(0)
        cfg = ImageToSphereConfig(in_channels=3, image_size=64, bandwidth=16, out_channels=32, **kw)
        nets.append((name, PoseEstimator(ImageToSphere(cfg).eval(), ("shading", "silhouette", "depth"), 64)))
    if args.run:
        nets.append((args.run, PoseEstimator.load(args.run)))
    print("| network | parameters | embedding (2 images) | correlation + refinement | relative() total |")
    print("|---|---|---|---|---|")
    for name, est in nets:
        e, c, t = _time(est, args.repeats)
        print(f"| {name} | {count_parameters(est.net) / 1e6:.2f} M | {e * 1e3:.0f} ms | {c * 1e3:.0f} ms "
              f"| {t * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
