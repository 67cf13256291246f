"""View dataset: how far the dataset's targets (rotated canonical teacher maps) are from the
teacher's maps of the re-cast rotated mesh, per layer, and the build time per mesh.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/views.py gap --meshes 6 --rotations 4
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/views.py build OUT --meshes 50

Prints the numbers recorded by hand in RESULTS.md "View dataset" and docs/views.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


class _BandLimited(torch.nn.Module):
    """The exactly equivariant 'teacher': the band-limited part of the ray-cast signal."""

    def __init__(self, b: int) -> None:
        super().__init__()
        self.cfg = type("C", (), {"bandwidths": [b]})()
        self.layer_names = ["input"]

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        from equivision.sphere.sht import isht, sht

        return isht(sht(x.double())).to(x.dtype)


def gap(args: argparse.Namespace) -> None:
    from equivision.data.registry import list_entries
    from equivision.groups import SO3
    from equivision.io import load_mesh
    from equivision.models import load
    from equivision.tasks.views import recast_gap

    net = load(args.teacher, model="spherical_cnn").eval()
    b = net.cfg.bandwidths[0]
    entries = sorted(list_entries("modelnet10", split="test"), key=lambda e: e.name)
    step = max(1, len(entries) // args.meshes)
    picked = entries[::step][:args.meshes]
    rows: dict[str, list[float]] = {}
    for i, e in enumerate(picked):
        mesh = load_mesh(e.path)
        rots = SO3().random(args.rotations, seed=1000 + i, dtype=torch.float64)
        g = recast_gap(mesh, net, net.layer_names, rots, b)
        g[f"band-limited input (b={b})"] = recast_gap(mesh, _BandLimited(b), ["input"], rots, b)["input"]
        for k, v in g.items():
            rows.setdefault(k, []).append(v)
        print(e.name, json.dumps({k: round(v, 4) for k, v in g.items()}), flush=True)
    print(f"teacher {args.teacher}, {len(picked)} ModelNet10 test meshes x {args.rotations} SO(3) rotations")
    print("| layer | maps | relative L2, median | min | max |")
    print("|---|---|---|---|---|")
    shapes = {n: f"{net.features(torch.zeros(1, 2, 2 * b, 2 * b), n).shape[1]}×"
                 f"{net.features(torch.zeros(1, 2, 2 * b, 2 * b), n).shape[-1]}²" for n in net.layer_names}
    for k, v in rows.items():
        print(f"| {k} | {shapes.get(k, '2×' + str(2 * b) + '²')} | {statistics.median(v):.4f} | "
              f"{min(v):.4f} | {max(v):.4f} |")


def build(args: argparse.Namespace) -> None:
    from equivision.data.registry import find_data_root, list_entries
    from equivision.tasks.views import ViewConfig, build_view_dataset, sources_from_entries

    entries = sorted(list_entries("modelnet10", split=args.split), key=lambda e: e.name)
    total = len(list_entries("modelnet10"))
    step = max(1, len(entries) // args.meshes)
    picked = entries[::step][:args.meshes]
    cfg = ViewConfig(views=args.views, dof=args.dof, image_size=args.size, layer=args.layer, up="+z")
    t = time.perf_counter()
    m = build_view_dataset(args.out, sources_from_entries(picked, find_data_root()), args.teacher, cfg,
                           overwrite=True, show_progress=False)
    wall = time.perf_counter() - t
    per = wall / len(picked)
    print(json.dumps({"meshes": len(picked), "views": args.views, "dof": args.dof, "size": args.size,
                      "layer": args.layer, "wall_s": round(wall, 1), "s_per_mesh": round(per, 3),
                      "bytes": m["bytes"], "bytes_per_mesh": m["bytes"] // len(picked),
                      "extrapolated_all_meshes": total, "extrapolated_h": round(per * total / 3600, 2),
                      "extrapolated_gb": round(m["bytes"] / len(picked) * total / 1e9, 2)}))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gap")
    g.add_argument("--teacher", default="shapes_sphere_shapenet10")
    g.add_argument("--meshes", type=int, default=6)
    g.add_argument("--rotations", type=int, default=4)
    b = sub.add_parser("build")
    b.add_argument("out")
    b.add_argument("--teacher", default="shapes_sphere_shapenet10")
    b.add_argument("--meshes", type=int, default=50)
    b.add_argument("--split", default="train")
    b.add_argument("--views", type=int, default=8)
    b.add_argument("--dof", type=int, default=3)
    b.add_argument("--size", type=int, default=64)
    b.add_argument("--layer", default="stage1")
    a = p.parse_args()
    gap(a) if a.cmd == "gap" else build(a)


if __name__ == "__main__":
    main()
