"""PEIF field averaging over several patches per query, measured against today's field.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reconstruction_field_averaging.py
        [--variants base,mean5,dir5,plane5,pca] [--no-recon] [--resolution 128]

For each shape (ABC 00994122, 00016513, 00011084; cow, bunny, fertility; the 4th ShapeNet
chair; 10k-point clouds seeded as ``benchmarks/reconstruction.py`` makes them) and each variant
of the field, on the same cloud in the same run:

* **direction error** against the exact displacement field of the reference mesh
  (``equivision.recon.closest_points_on_mesh``) on 4,000 queries = cloud points + Gaussian
  offsets of one voxel (σ = 1/resolution per axis): median and 90th percentile of the angle,
  for all of them and for those within half a voxel of the surface;
* **the mesh** of ``reconstruct_with_field`` (aligned grid, as ``reconstruct``): CD-L1 ×100, NC,
  F@1%, pieces / boundary edges (``surface_topology``), seconds per shape.

Variants (``V`` = views: the query and ``V − 1`` anchors offset in its patch's tangent plane,
``equivision.recon.predict.view_offsets``, spread ``--spread`` × the patch's largest std):
``base`` the field of one patch (today's default); ``meanV`` the mean of the predicted surface
points ``aᵢ + d(aᵢ)`` (offsets cancel: the mean displacement); ``dirV`` that mean's direction
with the query's own distance; ``planeV`` the normal of a plane fitted (PCA) through the
predicted surface points, signed by and with the distance of the query's own prediction, kept
only within 45° of it; ``pca`` the patch's own PCA normal (no extra network calls), the same
way, kept within 30°. Rows are appended to ``--jsonl`` via ``RowWriter``.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import time

import torch
from torch import Tensor

from _results import RowWriter, add_jsonl_option
from equivision.data import find_data_root, mesh_files
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.io import load_mesh
from equivision.metrics import evaluate_reconstruction
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct_with_field
from equivision.recon.closest import closest_points_on_mesh
from equivision.recon.extract import surface_topology
from equivision.recon.frames import canonical_patches
from equivision.recon.predict import COMPUTE_DTYPES, inference_dtype, plane_displacement, view_displacements


def shapes() -> list[tuple[str, object, int]]:
    """``(name, path, seed)``: the seed is the shape's index in its benchmark set."""
    abc = mesh_files("abc")[-3:]
    classic = {p.stem: p for p in mesh_files("classic")}
    order = ("bunny", "armadillo", "fertility", "lion", "cow", "elephant")
    out = [(p.stem[:8], p, i) for i, p in enumerate(abc)]
    out += [(n, classic[n], order.index(n)) for n in ("cow", "bunny", "fertility")]
    out.append(("chair", mesh_files("shapenet10", "chair")[3], 0))
    return out


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _keep_close(d0: Tensor, n: Tensor, max_deg: float) -> Tensor:
    """``n`` signed like ``d0`` with ``|d0|``, where within ``max_deg`` of it; else ``d0``."""
    dist = d0.norm(dim=-1, keepdim=True)
    c = (_unit(d0) * n).sum(-1, keepdim=True)
    n = torch.where(c < 0, -n, n)
    ok = c.abs() >= math.cos(math.radians(max_deg))
    return torch.where(ok, n * dist, d0)


def make_variant(name: str, model, k: int, dtype: torch.dtype, spread: float):
    """``cloud -> (queries -> displacement)`` for a variant name."""
    m = re.fullmatch(r"(base|mean|dir|plane|pca)(\d*)", name)
    if m is None:
        raise SystemExit(f"unknown variant {name}")
    kind, views = m.group(1), int(m.group(2) or 1)

    def make(cloud: Tensor):
        @torch.inference_mode()
        def field(q: Tensor) -> Tensor:
            q = q.to(cloud.dtype)
            out = []
            for s in range(0, q.shape[0], 16384):
                qq = q[s : s + 16384]
                if kind == "pca":
                    _, d = view_displacements(model, cloud, qq, k, dtype, 1, spread)
                    n = canonical_patches(cloud, qq, k).frames.rotations[..., 2].to(cloud.dtype)
                    out.append(_keep_close(d[0], n, 30.0))
                    continue
                v = views if kind != "base" else 1
                off, d = view_displacements(model, cloud, qq, k, dtype, v, spread)
                if kind in ("base",) or views == 1:
                    out.append(d[0])
                elif kind == "mean":
                    out.append(d.mean(0))
                elif kind == "dir":
                    out.append(_unit(d.mean(0)) * d[0].norm(dim=-1, keepdim=True))
                else:  # plane through the predicted surface points: predict_displacement(field_views=V)
                    out.append(plane_displacement(off, d))
            return torch.cat(out, 0) if out else cloud.new_zeros(0, 3)

        return field

    return make


def direction_errors(field, ref, pts: Tensor, voxel: float, seed: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(pts.shape[0], generator=g)[:4000]
    q = pts[pick] + torch.randn(4000, 3, generator=g) * voxel
    cp, dist, _ = closest_points_on_mesh(ref, q.double())
    true = (cp - q.double()).float()
    pred = field(q)
    cos = (_unit(true) * _unit(pred)).sum(-1).clamp(-1, 1)
    ang = torch.rad2deg(torch.acos(cos))
    near = dist.float() < 0.5 * voxel
    derr = (pred.norm(dim=-1) - dist.float()).abs() / voxel

    def q_(x: Tensor, p: float) -> float:
        return float(torch.quantile(x, p)) if x.numel() else float("nan")

    return {"ang_med": q_(ang, 0.5), "ang_p90": q_(ang, 0.9), "ang_med_near": q_(ang[near], 0.5),
            "ang_p90_near": q_(ang[near], 0.9), "dist_err_med_vox": q_(derr[near], 0.5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="peif_default")
    ap.add_argument("--variants", default="base,mean5,dir5,plane5,pca")
    ap.add_argument("--spread", type=float, default=0.5)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--precision", choices=list(COMPUTE_DTYPES), default="auto")
    ap.add_argument("--only", default="", help="comma-separated shape names (default: all 7)")
    ap.add_argument("--no-recon", action="store_true", help="direction errors only")
    add_jsonl_option(ap, "reconstruction_field_averaging")
    args = ap.parse_args()
    if find_data_root() is None:
        print("no shared data found: nothing to benchmark (set $EQUIVISION_DATA)")
        return
    load_text = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load: {load_text}; torch threads {torch.get_num_threads()}")
    net = load(args.model, model="peif").eval()
    k = int(net.cfg.k)
    with torch.no_grad():
        dtype = inference_dtype(net, COMPUTE_DTYPES[args.precision])
    writer = RowWriter("reconstruction_field_averaging", args.jsonl, dtype=str(dtype).removeprefix("torch."),
                       mode="full", settings={"resolution": args.resolution, "points": args.points,
                                              "spread": args.spread, "load": load_text})
    variants = [v for v in args.variants.split(",") if v]
    only = {s for s in args.only.split(",") if s}
    table: dict[str, list[dict]] = {v: [] for v in variants}
    for name, path, seed in shapes():
        if only and name not in only:
            continue
        ref, _, _ = normalize_mesh(load_mesh(path))
        pts, _ = sample_surface_uniform(ref, args.points, seed=seed)
        for v in variants:
            make = make_variant(v, net, k, dtype, args.spread)
            row: dict = {"shape": name, "variant": v,
                         **direction_errors(make(pts), ref, pts, 1.0 / args.resolution, seed)}
            if not args.no_recon:
                t = time.perf_counter()
                rec = reconstruct_with_field(pts, make, min_points=k, resolution=args.resolution)
                row["seconds"] = time.perf_counter() - t
                m = evaluate_reconstruction(rec.mesh, ref, n_points=100_000, seed=seed)
                topo = surface_topology(rec.mesh)
                row.update(cd_l1=m.cd_l1_x100, nc=float(m.normal_consistency or 0.0), f1=m.fscore[0.01],
                           pieces=topo.pieces, boundary_edges=topo.boundary_edges)
            table[v].append(row)
            print(" | ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in row.items()),
                  flush=True)
            for key, unit, better in (("ang_med_near", "deg", False), ("cd_l1", "CD-L1 x100", False),
                                      ("nc", "NC", True), ("f1", "F@1%", True),
                                      ("seconds", "s/shape", False)):
                if key in row:
                    writer.add(f"{name}, {v}, {key}", row[key], unit, higher_is_better=better)
    keys = ["ang_med_near", "ang_p90_near", "ang_med", "dist_err_med_vox"]
    keys += [] if args.no_recon else ["cd_l1", "nc", "f1", "pieces", "boundary_edges", "seconds"]
    print("\n| shape | variant | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for name in dict.fromkeys(r["shape"] for rs in table.values() for r in rs):
        for v in variants:
            for r in table[v]:
                if r["shape"] == name:
                    print(f"| {name} | {v} | " + " | ".join(
                        f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in keys) + " |")
    print("\nmeans over shapes:")
    for v in variants:
        print(f"| {v} | " + " | ".join(f"{statistics.mean(r[c] for r in table[v]):.4g}" for c in keys
                                      if table[v]) + " |")


if __name__ == "__main__":
    main()
