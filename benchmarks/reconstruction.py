"""Surface reconstruction benchmark: equivision (PEIF), its no-pose ablation, the globally
conditioned VN field, and classical anchors (Open3D screened Poisson and ball pivoting;
pymeshlab screened Poisson), same clouds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reconstruction.py [--quick] [--shapes 4]
        [--ablation runs/recon-no-pose] [--results runs/bench-recon/results.jsonl]
        [--precision auto|float32|bfloat16] [--no-anchors] [--no-ablation]
        [--vn-global vn_global_default] [--compare-shapes 0] [--plane-filters 0.5:1]

Test sets (meshes normalised to the unit box): the ABC meshes held out of training (the last
3), classic scans and ShapeNet objects (novel domains); ``--shapes`` per set. Each shape gives
a seeded 10k-point cloud (``--points``). Scores: ``equivision.metrics`` (CD-L1 ×100, EMD ×100
on 2,048 points, NC, F-score@1%; 100k samples per surface).

Clean clouds, every method: equivision canonical and under a random rotation (mesh rotated
back before scoring, with the same sampling seed: the rotation comparison is matched, so a
mesh that only moved with the cloud scores the same), the same for the no-pose ablation
(``--ablation``, a run folder of ``configs/recon_no_pose.json``; skipped if absent), and the
anchors. equivision's grid is aligned with the cloud's canonical frame (the shipped pipeline);
the ablation runs on the world-aligned grid (``align_grid=False``), since the aligned grid
would hand its field only the canonical cloud and hide what pose normalisation of the patches
does. EMD is the protocol's mean over 8 draws of 2,048 points (one draw varies by 5-14 %
between draws); the rows keep the spread of one draw (``emd_std``). Anchors:

* Open3D (``pip install -e '.[bench]'``; its wheel needs Debian's ``libusb-1.0-0`` to import:
  ``apt-get install -y libusb-1.0-0``): screened Poisson (depth 8, one thread) with normals
  estimated (30 neighbours) and oriented by Open3D (consistent tangent plane), and with the
  true normals of the sampled faces; ball pivoting with radii 1, 2, 4 × the mean spacing of
  the points and the estimated normals;
* pymeshlab: screened Poisson (depth 8) with normals estimated by pymeshlab (k = 10) and with
  the true normals.

Open3D is used when importable, pymeshlab otherwise; ``--with-meshlab`` reports both when
both are present (not by default: pymeshlab's Poisson took over 40 s, up to 267 s, per 10k-point
ABC cloud on our CPU in this configuration, against 2–3 s for Open3D's).
Robustness (``--robust-shapes`` per set): Gaussian noise σ = 0.005 and 0.01 of the box, and
5k / 2k points (random subsets of the 10k cloud), for equivision canonical and the anchors.
Global vs local (``--vn-global``, a packaged name or run folder of ``equivision train
recon-vn-global``; skipped if absent): its clean rows (canonical and rotated, the shipped
pipeline's aligned grid, timed like equivision's) beside PEIF's, and with ``--compare-shapes N``
(0 by default: the comparison is long) on the first N shapes of each set, both fields,
canonical and rotated, on degraded clouds: ``half-space crop`` (the points on one side of a
seeded random plane through the centroid, the visible half), ``300 points, noise 0.005``
(``sparse_noisy_resample``) and ``2k points (both fields)``; every degraded cloud is scored
against the whole reference mesh (a partial cloud's missing half counts against it).
Tangent-plane filter (``--plane-filters 0.5:1,0.5:3``): each ``VOXELS:NEIGHBOURS`` setting of
``reconstruct(plane_filter=…, plane_filter_neighbours=…)`` runs as one more equivision method
on the clean clouds, canonical and rotated, beside the library's default.
Timing (``--timing-resolutions``): equivision's seconds per shape and field queries per second
at each resolution on the first ``--timing-shapes`` shapes of each set, beside the anchors'
seconds on the same clouds in the same run.

The network's arithmetic (``--precision``, recorded in each equivision row): ``auto`` (the
library's default: bfloat16 on CPUs with native bfloat16 products, else float32), or forced.
``--no-anchors`` / ``--no-ablation`` leave those rows out (to re-time equivision alone).

Every result is appended to ``--results`` (JSON lines) as soon as it exists; a re-run skips
what is already there (``--fresh`` starts over), then prints the tables. A run that measured
something also appends summary rows (per set: equivision's seconds per shape and CD-L1 /
F-score@1% on clean clouds against Open3D's Poisson with estimated normals) to ``--jsonl``
(default ``benchmarks/results/reconstruction.jsonl``). Without the shared data the script says
so and exits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _results import RowWriter, add_jsonl_option
from equivision.data import find_data_root, mesh_files
from equivision.geometry import (
    add_gaussian_noise,
    half_space_crop,
    normalize_mesh,
    random_direction,
    sample_surface_uniform,
    sparse_noisy_resample,
)
from equivision.groups import SO3
from equivision.io import Mesh, load_mesh
from equivision.metrics import evaluate_reconstruction
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct
from equivision.recon.extract import surface_topology
from equivision.recon.predict import COMPUTE_DTYPES, inference_dtype

METRICS = ("cd_l1", "emd", "nc", "f1")
VARIANTS = {"noise 0.005": ("noise", 0.005), "noise 0.01": ("noise", 0.01),
            "5k points": ("sparse", 5000), "2k points": ("sparse", 2000)}
#: Degraded clouds of the global-vs-local comparison (both fields, canonical and rotated).
COMPARE_VARIANTS = ("half-space crop", "300 points, noise 0.005", "2k points (both fields)")
#: Fields run by the shipped pipeline (aligned grid, timed at every resolution).
SHIPPED = ("equivision", "vn global")


def degraded_cloud(variant: str, pts: torch.Tensor, seed: int) -> torch.Tensor:
    """The cloud of comparison ``variant`` from the clean ``pts``, reproducible from ``seed``."""
    if variant == "half-space crop":
        return half_space_crop(pts, random_direction(seed).to(pts.dtype), seed=seed)[0]
    if variant == "300 points, noise 0.005":
        return sparse_noisy_resample(pts, 300, 0.005, seed=seed)
    if variant == "2k points (both fields)":
        return sparse_noisy_resample(pts, 2000, 0.0, seed=seed)
    raise ValueError(f"unknown comparison variant {variant!r}")


def _scores(pred: Mesh, ref: Mesh, seed: int) -> dict[str, float]:
    m = evaluate_reconstruction(pred, ref, n_points=100_000, seed=seed)
    topo = surface_topology(pred)
    return {"cd_l1": m.cd_l1_x100, "emd": m.emd_x100, "nc": float(m.normal_consistency or 0.0),
            "f1": m.fscore[0.01], "emd_std": m.emd_x100_std, "pieces": topo.pieces,
            "boundary_edges": topo.boundary_edges}


def _mesh(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    return Mesh(torch.as_tensor(np.asarray(vertices), dtype=torch.float32),
                torch.as_tensor(np.asarray(faces), dtype=torch.long))


# ----- anchors ---------------------------------------------------------------------------------
def o3d_cloud(points: np.ndarray, normals: np.ndarray | None):
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    if normals is None:
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
        pcd.orient_normals_consistent_tangent_plane(30)
    else:
        pcd.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    return pcd


def o3d_poisson(points: np.ndarray, normals: np.ndarray | None, depth: int = 8) -> Mesh:
    import open3d as o3d

    mesh, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        o3d_cloud(points, normals), depth=depth, n_threads=1)
    return _mesh(mesh.vertices, mesh.triangles)


def o3d_ball_pivoting(points: np.ndarray) -> Mesh:
    import open3d as o3d

    pcd = o3d_cloud(points, None)
    spacing = float(np.mean(pcd.compute_nearest_neighbor_distance()))
    radii = o3d.utility.DoubleVector([spacing, 2 * spacing, 4 * spacing])
    mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(pcd, radii)
    return _mesh(mesh.vertices, mesh.triangles)


def meshlab_poisson(points: np.ndarray, normals: np.ndarray | None, depth: int = 8) -> Mesh:
    import pymeshlab

    ms = pymeshlab.MeshSet()
    if normals is None:
        ms.add_mesh(pymeshlab.Mesh(vertex_matrix=points.astype(np.float64)))
        ms.compute_normal_for_point_clouds(k=10, smoothiter=0)
    else:
        ms.add_mesh(pymeshlab.Mesh(vertex_matrix=points.astype(np.float64),
                                   v_normals_matrix=normals.astype(np.float64)))
    ms.generate_surface_reconstruction_screened_poisson(depth=depth, preclean=True)
    m = ms.current_mesh()
    return _mesh(m.vertex_matrix(), m.face_matrix())


def anchors(have_o3d: bool, have_meshlab: bool, *, all_of_them: bool
            ) -> dict[str, Callable[[np.ndarray, np.ndarray], Mesh]]:
    """Anchor name -> ``(points, true normals) -> mesh``: Open3D's if present, pymeshlab's
    if Open3D is absent or ``all_of_them``."""
    out: dict[str, Callable[[np.ndarray, np.ndarray], Mesh]] = {}
    if have_o3d:
        out["Open3D Poisson (estimated normals)"] = lambda p, n: o3d_poisson(p, None)
        out["Open3D Poisson (true normals)"] = lambda p, n: o3d_poisson(p, n)
        out["Open3D ball pivoting"] = lambda p, n: o3d_ball_pivoting(p)
    if have_meshlab and (all_of_them or not have_o3d):
        out["pymeshlab Poisson (estimated normals)"] = lambda p, n: meshlab_poisson(p, None)
        out["pymeshlab Poisson (true normals)"] = lambda p, n: meshlab_poisson(p, n)
    return out


# ----- the run ---------------------------------------------------------------------------------
def test_sets(n: int) -> dict[str, list[Path]]:
    classic = {p.stem: p for p in mesh_files("classic")}
    return {
        "abc (held out)": mesh_files("abc")[-3:][:n],
        "classic (scans)": [classic[s] for s in ("bunny", "armadillo", "fertility", "lion", "cow",
                                                 "elephant")][:n],
        "shapenet10": [mesh_files("shapenet10", c)[3]
                       for c in ("chair", "aeroplane", "vase", "bench", "cup", "piano")][:n],
    }


class Results:
    """JSON lines of ``{set, shape, variant, method, resolution, metrics…, seconds}``."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and path.exists():
            path.unlink()
        self.rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        self.done = {self.key(r) for r in self.rows}

    @staticmethod
    def key(r: dict) -> tuple:
        return r["set"], r["shape"], r["variant"], r["method"], r["resolution"]

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.done.add(self.key(row))
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


PRECISIONS = COMPUTE_DTYPES


def run_equivision(net: torch.nn.Module, pts: torch.Tensor, ref: Mesh, res: int, seed: int,
                   rotation: torch.Tensor | None, align_grid: bool = True,
                   compute_dtype: torch.dtype | None = None, **options) -> dict:
    cloud = pts if rotation is None else pts @ rotation.T
    t = time.perf_counter()
    rec = reconstruct(cloud, net, resolution=res, align_grid=align_grid, compute_dtype=compute_dtype,
                      **options)
    seconds = time.perf_counter() - t
    mesh = rec.mesh if rotation is None else Mesh(rec.mesh.vertices @ rotation, rec.mesh.faces)
    queries = rec.stats.queried_nodes + rec.stats.projected_by_field + rec.stats.checked_by_field
    with torch.no_grad():
        arithmetic = str(inference_dtype(net, compute_dtype)).removeprefix("torch.")
    return {**_scores(mesh, ref, seed), "seconds": seconds, "queries": queries, "precision": arithmetic,
            "field_seconds": rec.seconds["field_and_extraction"], "faces": len(mesh.faces)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="peif_default")
    ap.add_argument("--checkpoint", default="latest",
                    help="of a --model run folder: latest (the final weights, default), best (chosen on the "
                    "run's eval split, which holds the ABC parts scored here) or a step")
    ap.add_argument("--ablation", default="runs/recon-no-pose",
                    help="run folder (or packaged name) of the no-pose model; skipped if absent")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--shapes", type=int, default=4, help="shapes per set (ABC has 3 held out)")
    ap.add_argument("--robust-shapes", type=int, default=2, help="shapes per set for noise/sparsity")
    ap.add_argument("--timing-shapes", type=int, default=1, help="shapes per set timed at each resolution")
    ap.add_argument("--timing-resolutions", default="256", help="comma-separated, besides --resolution")
    ap.add_argument("--quick", action="store_true", help="2 shapes per set, no robustness, no timing")
    ap.add_argument("--with-meshlab", action="store_true",
                    help="pymeshlab's anchors on clean clouds even when Open3D is present")
    ap.add_argument("--precision", choices=list(PRECISIONS), default="auto",
                    help="equivision's network arithmetic (auto: bfloat16 where the CPU has it)")
    ap.add_argument("--no-anchors", action="store_true", help="leave out Open3D / pymeshlab")
    ap.add_argument("--no-ablation", action="store_true", help="leave out the no-pose ablation")
    ap.add_argument("--vn-global", default="vn_global_default",
                    help="packaged name or run folder of the VN global field; skipped if absent")
    ap.add_argument("--compare-shapes", type=int, default=0,
                    help="shapes per set for the global-vs-local comparison on degraded clouds")
    ap.add_argument("--plane-filters", default="",
                    help="comma-separated VOXELS:NEIGHBOURS settings of reconstruct's tangent-plane "
                         "filter, each run as an extra equivision method (clean, canonical and rotated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=Path("runs/bench-recon/results.jsonl"))
    ap.add_argument("--fresh", action="store_true", help="forget earlier results in --results")
    ap.add_argument("--report-only", action="store_true", help="print the tables of --results")
    add_jsonl_option(ap, "reconstruction")
    args = ap.parse_args()
    results = Results(args.results, args.fresh and not args.report_only)
    if not args.report_only:
        if find_data_root() is None:
            print("no shared data found: nothing to benchmark (set $EQUIVISION_DATA)")
            return
        before = len(results.rows)
        benchmark(args, results)
        # only rows measured now carry this run's machine, commit and date
        fresh = results.rows[before:]
        if fresh:
            out = RowWriter("reconstruction", args.jsonl, dtype=args.precision,
                            mode="quick" if args.quick else "full",
                            settings={"resolution": args.resolution, "points": args.points})
            n = summary_rows(fresh, args.resolution, out)
            print(f"{n} rows appended to {args.jsonl}")
    report(results.rows, args.resolution)


def benchmark(args: argparse.Namespace, results: Results) -> None:
    have_o3d = have_meshlab = False
    if not args.no_anchors:
        try:
            import open3d  # noqa: F401

            have_o3d = True
        except (ImportError, OSError) as e:  # OSError: libusb-1.0 missing
            print(f"open3d is not usable ({e}): its anchors are skipped")
        try:
            import pymeshlab  # noqa: F401

            have_meshlab = True
        except ImportError:
            print("pymeshlab is not installed: its anchors are skipped")
    which = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    nets = {"equivision": load(args.model, model="peif", checkpoint=which)}
    dtype = PRECISIONS[args.precision]
    if not args.no_ablation:
        try:
            nets["no-pose ablation"] = load(args.ablation, model="peif")
        except Exception as e:  # a missing run folder is a normal way to skip the ablation
            print(f"no ablation model at {args.ablation} ({type(e).__name__}): skipped")
    try:
        nets["vn global"] = load(args.vn_global, model="vn_global_field")
    except Exception as e:  # no trained global field yet: its rows are skipped
        print(f"no VN global field at {args.vn_global} ({type(e).__name__}): skipped")
    n_shapes = 2 if args.quick else args.shapes
    settings = [item.split(":") for item in args.plane_filters.split(",") if item]
    filters = {f"equivision, plane filter {v} (nn{n})":
               {"plane_filter": float(v), "plane_filter_neighbours": int(n)} for v, n in settings}
    timing_res = [] if args.quick else [int(r) for r in args.timing_resolutions.split(",") if r]
    robust = 0 if args.quick else args.robust_shapes

    def todo(set_name: str, shape: str, variant: str, method: str, res: int | None) -> bool:
        return (set_name, shape, variant, method, res) not in results.done

    def record(set_name: str, shape: str, variant: str, method: str, res: int | None, row: dict) -> None:
        results.add({"set": set_name, "shape": shape, "variant": variant, "method": method,
                     "resolution": res, "threads": torch.get_num_threads(), **row})
        extra = f" {row['seconds']:.1f}s" if "seconds" in row else ""
        print(f"{set_name} | {shape} | {variant} | {method}"
              + (f" | res {res}" if res else "") + f": F={row.get('f1', float('nan')):.4f}"
              f" CD={row.get('cd_l1', float('nan')):.4f}{extra}", flush=True)

    def run_anchor(fn: Callable[[np.ndarray, np.ndarray], Mesh], pts: torch.Tensor, nrm: torch.Tensor,
                   ref: Mesh, seed: int) -> dict:
        t = time.perf_counter()
        try:
            mesh = fn(pts.numpy(), nrm.numpy())
        except Exception as e:  # an anchor's failure is a result, not a crash of the benchmark
            return {"failed": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t}
        seconds = time.perf_counter() - t
        if len(mesh.faces) == 0:
            return {"failed": "empty mesh", "seconds": seconds}
        return {**_scores(mesh, ref, seed), "seconds": seconds, "faces": len(mesh.faces)}

    for set_name, files in test_sets(n_shapes).items():
        for i, f in enumerate(files):
            ref, _, _ = normalize_mesh(load_mesh(f))
            pts, nrm = sample_surface_uniform(ref, args.points, seed=args.seed + i)
            rot = SO3().random(1, seed=args.seed + 100 + i)[0].to(pts.dtype)
            clean: list[tuple[str, int, torch.Tensor | None]] = [
                ("", args.resolution, None), (", rotated", args.resolution, rot)]
            clean += [("", r, None) for r in timing_res if i < args.timing_shapes]
            for name, net in nets.items():
                for suffix, res, r in clean:
                    if name not in SHIPPED and res != args.resolution:
                        continue
                    if todo(set_name, f.stem, "clean", name + suffix, res):
                        record(set_name, f.stem, "clean", name + suffix, res,
                               run_equivision(net, pts, ref, res, i, r, name in SHIPPED,
                                              _dtype_for(name, dtype)))
            for name, options in filters.items():
                for suffix, r in (("", None), (", rotated", rot)):
                    if todo(set_name, f.stem, "clean", name + suffix, args.resolution):
                        record(set_name, f.stem, "clean", name + suffix, args.resolution,
                               {**run_equivision(nets["equivision"], pts, ref, args.resolution, i, r,
                                                 compute_dtype=dtype, **options), **options})
            for method, fn in anchors(have_o3d, have_meshlab, all_of_them=args.with_meshlab).items():
                if todo(set_name, f.stem, "clean", method, None):
                    record(set_name, f.stem, "clean", method, None, run_anchor(fn, pts, nrm, ref, i))
            if i < args.compare_shapes and "vn global" in nets:
                for variant in COMPARE_VARIANTS:
                    v_pts = degraded_cloud(variant, pts, args.seed + 300 + i)
                    for name in SHIPPED:
                        for suffix, r in (("", None), (", rotated", rot)):
                            if todo(set_name, f.stem, variant, name + suffix, args.resolution):
                                record(set_name, f.stem, variant, name + suffix, args.resolution,
                                       {**run_equivision(nets[name], v_pts, ref, args.resolution, i, r,
                                                         compute_dtype=_dtype_for(name, dtype)),
                                        "input_points": len(v_pts), "reference": "whole mesh"})
            if i >= robust:
                continue
            for variant, (kind, value) in VARIANTS.items():
                if kind == "noise":
                    v_pts, v_nrm = add_gaussian_noise(pts, float(value), seed=args.seed + 200 + i), nrm
                else:
                    pick = torch.randperm(len(pts), generator=torch.Generator().manual_seed(args.seed + i))
                    v_pts, v_nrm = pts[pick[: int(value)]], nrm[pick[: int(value)]]
                if todo(set_name, f.stem, variant, "equivision", args.resolution):
                    record(set_name, f.stem, variant, "equivision", args.resolution,
                           run_equivision(nets["equivision"], v_pts, ref, args.resolution, i, None,
                                          compute_dtype=dtype))
                for method, fn in anchors(have_o3d, have_meshlab, all_of_them=False).items():
                    if todo(set_name, f.stem, variant, method, None):
                        record(set_name, f.stem, variant, method, None, run_anchor(fn, v_pts, v_nrm, ref, i))


def _dtype_for(name: str, dtype: torch.dtype | None) -> torch.dtype | None:
    """``--precision`` applies to PEIF; the VN global field has only float32."""
    return torch.float32 if name == "vn global" else dtype


ANCHOR = "Open3D Poisson (estimated normals)"


def summary_rows(rows: list[dict], resolution: int, out: RowWriter) -> int:
    """Appends, per set, equivision's mean seconds per shape, CD-L1 ×100 and F-score@1% on the
    clean clouds at ``resolution`` beside the same means of :data:`ANCHOR` (when it ran on the
    same shapes); returns the number of rows written."""
    def mean_of(method: str, set_name: str, key: str, res: int | None) -> tuple[float | None, int]:
        xs = [r[key] for r in rows if r["set"] == set_name and r["method"] == method
              and r["variant"] == "clean" and r["resolution"] == res and "failed" not in r and key in r]
        return (statistics.mean(xs) if xs else None), len(xs)

    count = 0
    for set_name in dict.fromkeys(r["set"] for r in rows):
        for key, unit, better in (("seconds", "s/shape", False), ("cd_l1", "CD-L1 ×100", False),
                                  ("f1", "F-score@1%", True)):
            ours, n = mean_of("equivision", set_name, key, resolution)
            if ours is None:
                continue
            theirs, _ = mean_of(ANCHOR, set_name, key, None)
            out.add(f"{set_name}, {key}, resolution {resolution}, clean", ours, unit, higher_is_better=better,
                    anchor=ANCHOR if theirs is not None else None, anchor_figure=theirs, n=n)
            count += 1
    return count


def relative_change(before: float, after: float) -> float:
    """``|after − before| / |before|``; 0 when both are 0 (an F-score of 0 that stays 0), inf
    when only ``before`` is."""
    if before == 0:
        return 0.0 if after == 0 else float("inf")
    return abs(after - before) / abs(before)


def max_shape_change(a: list[dict], b: list[dict]) -> float:
    """The largest relative change of any metric of any shape between rows ``a`` and ``b``."""
    by_shape = {r["shape"]: r for r in a}
    return max((relative_change(by_shape[r["shape"]][k], r[k])
                for r in b if r["shape"] in by_shape for k in METRICS), default=float("nan"))


def report(rows: list[dict], resolution: int) -> None:
    """Markdown tables: means per set and method (clean, then each variant), the relative
    change under rotation, and the timings."""
    def mean(xs: list[float]) -> float:
        return statistics.mean(xs) if xs else float("nan")

    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if r["resolution"] in (None, resolution):
            groups.setdefault((r["variant"], r["set"], r["method"]), []).append(r)
    variants = ["clean", *[v for v in (*VARIANTS, *COMPARE_VARIANTS) if any(k[0] == v for k in groups)]]
    for variant in variants:
        print(f"\n{variant} (resolution {resolution} for equivision)\n")
        print("| set | method | CD-L1 ×100 | EMD ×100 | NC | F-score@1% | pieces | boundary edges "
              "| n | failed |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for (v, s, m), rs in groups.items():
            if v != variant:
                continue
            ok = [r for r in rs if "failed" not in r]
            topo = [r for r in ok if "pieces" in r]  # rows from before the topology columns lack them
            print(f"| {s} | {m} | " + " | ".join(f"{mean([r[k] for r in ok]):.4f}" for k in METRICS)
                  + " | " + " | ".join(f"{mean([r[k] for r in topo]):.1f}" if topo else "-"
                                       for k in ("pieces", "boundary_edges"))
                  + f" | {len(ok)} | {len(rs) - len(ok)} |")
        if variant == "clean":
            print("\npieces / boundary edges per shape (clean):\n")
            for (v, s, m), rs in groups.items():
                if v == "clean" and not m.endswith("rotated"):
                    print(f"* {s} | {m}: " + ", ".join(
                        f"{r['shape'][:8]} {r['pieces']}/{r['boundary_edges']}" for r in rs if "pieces" in r))
    print()
    for s in dict.fromkeys(k[1] for k in groups):
        plane = sorted({r["method"] for r in rows if r["method"].startswith("equivision, plane filter")
                        and not r["method"].endswith("rotated")})
        for v, m in [("clean", m) for m in ("equivision", "no-pose ablation", "vn global", *plane)] + [
                (v, m) for v in COMPARE_VARIANTS for m in SHIPPED]:
            a, b = groups.get((v, s, m)), groups.get((v, s, m + ", rotated"))
            if a and b:
                ma, mb = ({k: mean([r[k] for r in x]) for k in METRICS} for x in (a, b))
                rel = {k: relative_change(ma[k], mb[k]) for k in METRICS}
                emd_sd = mean([r["emd_std"] / r["emd"] for r in a + b if "emd_std" in r])
                print(f"{s}: {m} ({v}): relative change under rotation: "
                      + ", ".join(f"{k} {v:.2%}" for k, v in rel.items())
                      + f" (largest per shape: {max_shape_change(a, b):.2%}; one EMD draw's "
                      f"relative spread: {emd_sd:.1%})")
    print("\n| set | method | resolution | seconds per shape | field queries per second | n |")
    print("|---|---|---|---|---|---|")
    timing: dict[tuple[str, str, object], list[dict]] = {}
    for r in rows:
        if r["variant"] == "clean" and "seconds" in r and "failed" not in r:
            timing.setdefault((r["set"], r["method"], r["resolution"]), []).append(r)
    for (s, m, res), rs in sorted(timing.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        qps = mean([r["queries"] / r["field_seconds"] for r in rs]) if "queries" in rs[0] else None
        print(f"| {s} | {m} | {res or '-'} | {mean([r['seconds'] for r in rs]):.1f} | "
              + (f"{qps:,.0f}" if qps else "-") + f" | {len(rs)} |")
    precisions = sorted({r["precision"] for r in rows if "precision" in r})
    threads = sorted({str(r["threads"]) for r in rows if "threads" in r})
    threads_text = f"{' / '.join(threads)} torch thread(s)" if threads else "threads not recorded"
    print(f"\n(CPU, {threads_text}; equivision's network in "
          f"{', '.join(precisions) or 'float32 (rows without a precision field)'})")


if __name__ == "__main__":
    main()
