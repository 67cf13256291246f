"""Figure: PEIF's reconstruction without and with fairing (the default's last step), beside Open3D's
ball pivoting and screened Poisson, on one CAD part and one scan (the same 10k-point clouds).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reconstruction_figure.py \\
        [-o docs/images/reconstruction_compare.png] [--size 256]

Needs the shared data and Open3D (``pip install -e '.[bench]'``). Each panel is a grey
Lambertian render (``equivision.render.render_views``) of the mesh in two fixed poses; the
titles give NC, CD-L1 ×100 and F@1 % of that mesh (scored as in ``benchmarks/reconstruction.py``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from equivision.data import find_data_root, mesh_files
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.groups import SO3
from equivision.io import load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct
from equivision.render import render_views
from reconstruction import _scores, o3d_ball_pivoting, o3d_poisson


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/images/reconstruction_compare.png"))
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    if find_data_root() is None:
        print("no shared data found (set $EQUIVISION_DATA)")
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    classic = {p.stem: p for p in mesh_files("classic")}
    shapes = [("ABC 00994122", next(p for p in mesh_files("abc") if p.stem.startswith("00994122")), 2),
              ("bunny", classic["bunny"], 0)]
    poses = torch.stack([SO3.from_axis_angle(torch.tensor([1.0, 0.0, 0.0]), math.radians(-60)),
                         SO3.from_axis_angle(torch.tensor([0.6, 0.8, 0.0]), math.radians(150))])
    methods = {
        "equivision, no fairing": lambda p: reconstruct(p, net, fairing=0).mesh,
        "equivision (default)": lambda p: reconstruct(p, net).mesh,
        "Open3D ball pivoting": lambda p: o3d_ball_pivoting(p.numpy()),
        "Open3D Poisson (est. normals)": lambda p: o3d_poisson(p.numpy(), None),
    }
    fig, axes = plt.subplots(2 * len(shapes), len(methods), figsize=(3.2 * len(methods), 6.4 * len(shapes)))
    for row, (label, path, seed) in enumerate(shapes):
        ref, _, _ = normalize_mesh(load_mesh(path))
        pts, _ = sample_surface_uniform(ref, 10_000, seed=seed)
        for col, (name, fn) in enumerate(methods.items()):
            mesh = fn(pts)
            s = _scores(mesh, ref, seed)
            img = render_views(mesh, poses.to(mesh.vertices.dtype), size=args.size, channels=["shading"])
            for k in range(2):
                ax = axes[2 * row + k, col]
                ax.imshow(np.asarray(img[k, 0]), cmap="gray", vmin=0, vmax=1)
                ax.set_axis_off()
                if k == 0:
                    ax.set_title(f"{label}: {name}\nNC {s['nc']:.3f}  CD {s['cd_l1']:.3f}  F {s['f1']:.3f}",
                                 fontsize=8)
            print(f"{label} | {name}: NC {s['nc']:.4f} CD {s['cd_l1']:.4f} F {s['f1']:.4f} "
                  f"pieces {s['pieces']} boundary edges {s['boundary_edges']}", flush=True)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
