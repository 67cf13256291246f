"""Choosing the tangent-plane filter's limit and neighbours on shapes the reconstruction
benchmark does not score: 2 ABC training parts, 2 scans (lion, elephant) and 3 ShapeNet
objects (chair, vase, bench, the sixth of each class; the benchmark takes the fourth).

``OMP_NUM_THREADS=1 python benchmarks/recon_plane_filter.py [--degraded] [--results FILE] [--fresh]``

Each shape: a 10k-point cloud (seed 50 + index), one PEIF reconstruction at resolution 128
with neither the filter nor the small-pieces drop, then every ``τ`` (voxels) × ``neighbours``
setting of :func:`equivision.recon.tangent_planes.drop_faces_off_tangent_planes` on that mesh,
each followed by the pipeline's small-pieces drop; the anchor (τ = 0) is the same mesh with the
small-pieces drop only, so the columns are the filter's own effect. Prints the change of
NC, CD-L1 ×100, F@1 % and boundary edges against the anchor (mean and worst over the shapes).
Rows go to ``--results`` (JSON lines; a re-run prints them without recomputing, ``--fresh``
starts over).

``--degraded``: instead, the default filter against none on the reconstruction benchmark's
degraded clouds (its ``VARIANTS``: noise 0.005 / 0.01 of the box, 5k / 2k points; the first 2
shapes of each of its sets, the same clouds as its robustness rows), set means of both
(results in ``runs/bench-recon/plane_degraded.jsonl`` unless ``--results`` says otherwise).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from equivision.data import find_data_root, mesh_files
from equivision.geometry import add_gaussian_noise, normalize_mesh, sample_surface_uniform
from equivision.io import load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import PEIF_MIN_PIECE_FRACTION, PEIF_PLANE_FILTER, reconstruct
from equivision.recon.extract import drop_small_pieces
from equivision.recon.frames import cloud_frame
from equivision.recon.tangent_planes import drop_faces_off_tangent_planes, point_normals
from reconstruction import VARIANTS, _scores, test_sets

TAUS = (0.25, 0.35, 0.5, 0.75)
NEIGHBOURS = (1, 2, 3, 5)


def validation_shapes() -> list[tuple[str, Path]]:
    classic = {p.stem: p for p in mesh_files("classic")}
    return ([("abc", f) for f in mesh_files("abc")[:2]]
            + [("classic", classic[s]) for s in ("lion", "elephant")]
            + [("shapenet", mesh_files("shapenet10", c)[5]) for c in ("chair", "vase", "bench")])


def voxel_in_cloud_units(points: torch.Tensor, unit_voxel: float) -> float:
    """The grid step of :func:`reconstruct` (``ExtractionStats.voxel``, in its unit box) in the
    units of ``points``: the unit box is the cloud's canonical-frame box scaled to side 1."""
    frame = cloud_frame(points.double())
    canon = (points.double() - frame.centroids) @ frame.rotations
    return unit_voxel * float((canon.max(0).values - canon.min(0).values).max())


def measure(path: Path) -> None:
    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    with path.open("a") as out:
        for i, (set_name, f) in enumerate(validation_shapes()):
            ref, _, _ = normalize_mesh(load_mesh(f))
            pts, _ = sample_surface_uniform(ref, 10_000, seed=50 + i)
            rec = reconstruct(pts, net, resolution=128, plane_filter=0.0, min_piece_fraction=0.0)
            voxel = voxel_in_cloud_units(pts, rec.stats.voxel)
            normals = point_normals(pts)
            for tau, nn in [(0.0, 1)] + [(t, n) for n in NEIGHBOURS for t in TAUS]:
                mesh = rec.mesh if tau == 0 else drop_faces_off_tangent_planes(
                    rec.mesh, pts, tau * voxel, neighbours=nn, normals=normals)
                s = _scores(drop_small_pieces(mesh, PEIF_MIN_PIECE_FRACTION), ref, i)
                out.write(json.dumps({"set": set_name, "shape": f.stem, "tau": tau, "nn": nn, **s}) + "\n")
                out.flush()
                print(f"{f.stem[:10]} τ {tau:.2f} nn{nn}: NC {s['nc']:.4f} CD {s['cd_l1']:.4f} "
                      f"F {s['f1']:.4f} pieces {s['pieces']} boundary edges {s['boundary_edges']}",
                      flush=True)


def measure_degraded(path: Path) -> None:
    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    with path.open("a") as out:
        for set_name, files in test_sets(2).items():
            for i, f in enumerate(files):
                ref, _, _ = normalize_mesh(load_mesh(f))
                pts, _ = sample_surface_uniform(ref, 10_000, seed=i)
                for variant, (kind, value) in VARIANTS.items():
                    if kind == "noise":
                        cloud = add_gaussian_noise(pts, float(value), seed=200 + i)
                    else:
                        pick = torch.randperm(len(pts), generator=torch.Generator().manual_seed(i))
                        cloud = pts[pick[: int(value)]]
                    for pf in (0.0, PEIF_PLANE_FILTER):
                        s = _scores(reconstruct(cloud, net, resolution=128, plane_filter=pf).mesh, ref, i)
                        out.write(json.dumps({"set": set_name, "shape": f.stem, "variant": variant,
                                              "plane_filter": pf, **s}) + "\n")
                        out.flush()
                        print(f"{f.stem[:10]} {variant} filter {pf}: NC {s['nc']:.4f} CD {s['cd_l1']:.4f} "
                              f"F {s['f1']:.4f}", flush=True)


def report_degraded(rows: list[dict]) -> None:
    groups: dict[tuple[str, str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["variant"], r["plane_filter"]), []).append(r)
    print("| set | cloud | NC off → on | CD-L1 ×100 off → on | F@1% off → on | boundary edges off → on | n |")
    print("|---|---|---|---|---|---|---|")
    for (set_name, variant, pf), off in groups.items():
        on = groups.get((set_name, variant, PEIF_PLANE_FILTER))
        if pf != 0.0 or not on:
            continue
        cells = [f"{statistics.mean(r[k] for r in off):.3f} → {statistics.mean(r[k] for r in on):.3f}"
                 for k in ("nc", "cd_l1", "f1")]
        bnd = f"{statistics.mean(r['boundary_edges'] for r in off):,.0f} → " \
              f"{statistics.mean(r['boundary_edges'] for r in on):,.0f}"
        print(f"| {set_name} | {variant} | {' | '.join(cells)} | {bnd} | {len(on)} |")


def report(rows: list[dict]) -> None:
    base = {r["shape"]: r for r in rows if r["tau"] == 0}
    groups: dict[tuple[int, float], list[dict]] = {}
    for r in rows:
        if r["tau"] > 0 and r["shape"] in base:
            groups.setdefault((r["nn"], r["tau"]), []).append(r)
    print(f"\n{len(base)} shapes; change against the same mesh without the filter (anchor):\n")
    print("| neighbours | τ (voxels) | NC mean | NC worst | CD-L1 ×100 mean | CD worst | F@1% mean "
          "| F worst | boundary edges mean | n |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (nn, tau), rs in sorted(groups.items()):
        d = {k: [r[k] - base[r["shape"]][k] for r in rs] for k in ("nc", "cd_l1", "f1", "boundary_edges")}
        print(f"| {nn} | {tau} | {statistics.mean(d['nc']):+.4f} | {min(d['nc']):+.4f} | "
              f"{statistics.mean(d['cd_l1']):+.4f} | {max(d['cd_l1']):+.4f} | "
              f"{statistics.mean(d['f1']):+.4f} | {min(d['f1']):+.4f} | "
              f"{statistics.mean(d['boundary_edges']):+.0f} | {len(rs)} |")
    print("\nanchor per shape (NC / CD / F):",
          ", ".join(f"{s[:8]} {r['nc']:.3f}/{r['cd_l1']:.3f}/{r['f1']:.3f}" for s, r in base.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--degraded", action="store_true", help="the default filter on degraded clouds")
    args = ap.parse_args()
    if args.results is None:
        args.results = Path(f"runs/bench-recon/plane_{'degraded' if args.degraded else 'sweep'}.jsonl")
    if args.fresh and args.results.exists():
        args.results.unlink()
    if not args.results.exists():
        if find_data_root() is None:
            print("no shared data found: nothing to measure (set $EQUIVISION_DATA)")
            return
        args.results.parent.mkdir(parents=True, exist_ok=True)
        (measure_degraded if args.degraded else measure)(args.results)
    rows = [json.loads(line) for line in args.results.read_text().splitlines()]
    (report_degraded if args.degraded else report)(rows)


if __name__ == "__main__":
    main()
