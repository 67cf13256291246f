"""Figure of global versus local conditioning on partial clouds: for a few benchmark shapes,
the half-space crop the benchmark uses (the same clouds and seeds as
``benchmarks/reconstruction.py --compare-shapes``), PEIF's reconstruction, the VN global
field's and the whole reference mesh, with each reconstruction's CD-L1 / F@1% against the
whole mesh in its title.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/global_vs_local_figure.py \\
        [--model peif_default] [--vn-global vn_global_default] [--resolution 96] \\
        [--out docs/images/global_vs_local_partial.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from equivision.data import find_data_root
from equivision.figures._mpl import pyplot, save_figure
from equivision.figures.shapes import draw_mesh, frame_cube, scatter_cloud
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.io import load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct
from reconstruction import _scores, degraded_cloud, test_sets

#: (set, index in the set) of the rows: an ABC part held out of training, a ShapeNet chair.
ROWS = (("abc (held out)", 0), ("shapenet10", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="peif_default")
    ap.add_argument("--vn-global", default="vn_global_default")
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/images/global_vs_local_partial.png"))
    args = ap.parse_args()
    if find_data_root() is None:
        raise SystemExit("the shared data (../shared/data) is not there: nothing to draw")
    nets = {"PEIF (local)": load(args.model, model="peif"),
            "VN global": load(args.vn_global, model="vn_global_field")}
    sets = test_sets(4)
    plt = pyplot()
    fig = plt.figure(figsize=(10, 2.7 * len(ROWS)))
    for row, (set_name, i) in enumerate(ROWS):
        path = sets[set_name][i]
        ref, _, _ = normalize_mesh(load_mesh(path))
        pts, _ = sample_surface_uniform(ref, args.points, seed=args.seed + i)
        part = degraded_cloud("half-space crop", pts, args.seed + 300 + i)
        title = f"{path.stem[:14]}: half-space crop\n({len(part)} points)"
        panels: list[tuple[str, object]] = [(title, part)]
        for name, net in nets.items():
            t = time.perf_counter()
            # float32 for both: the VN global field has no bfloat16 path
            mesh = reconstruct(part, net, resolution=args.resolution, compute_dtype=torch.float32).mesh
            seconds = time.perf_counter() - t
            m = _scores(mesh, ref, i)  # the benchmark's scores, against the whole mesh
            cd, f1 = m["cd_l1"], m["f1"]
            print(f"{path.stem} {name}: CD-L1 x100 {cd:.3f}  NC {m['nc']:.3f}  F@1% {f1:.3f}  "
                  f"pieces {m['pieces']}  {seconds:.1f} s")
            panels.append((f"{name}\nCD-L1 {cd:.2f}, F@1% {f1:.2f}", mesh))
        panels.append(("whole reference mesh", ref))
        for col, (title, item) in enumerate(panels):
            ax = fig.add_subplot(len(ROWS), len(panels), row * len(panels) + col + 1, projection="3d")
            if isinstance(item, torch.Tensor):
                scatter_cloud(ax, item, size=0.4)
            else:
                draw_mesh(ax, item, color="#8fb3de")  # type: ignore[arg-type]
            ax.set_title(title, fontsize=8)
            frame_cube(ax, (0.0, 0.0, 0.0), 0.55)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
