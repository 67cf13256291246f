"""Surface reconstruction benchmark: equivision (PEIF) against screened Poisson, same clouds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reconstruction.py [--quick] [--resolution 128]

Test shapes (normalised to the unit box): the ABC meshes held out of training, classic scans
and ShapeNet objects (novel domains). Each gives a seeded 10k-point cloud (``--points``). For
every cloud we report, with ``equivision.metrics`` (CD-L1 ×100, EMD ×100, NC, F-score@1%):

* equivision in the canonical pose;
* equivision on the cloud under a random rotation (mesh rotated back before scoring) and
  the relative change of each metric;
* screened Poisson (pymeshlab, depth 8) with normals estimated and oriented by pymeshlab
  (``pip install pymeshlab``, benchmark-only), and with the true normals of the sampled faces.

Seconds per shape are measured in the same run. Without the shared data the script says so
and exits (there is nothing meaningful to score).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from equivision.data import find_data_root, mesh_files
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.groups import SO3
from equivision.io import Mesh, load_mesh
from equivision.metrics import evaluate_reconstruction
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct

METRICS = ("cd_l1", "emd", "nc", "f1")


def _scores(pred: Mesh, ref: Mesh, seed: int) -> dict[str, float]:
    m = evaluate_reconstruction(pred, ref, n_points=100_000, seed=seed)
    return {"cd_l1": m.cd_l1_x100, "emd": m.emd_x100, "nc": float(m.normal_consistency or 0.0),
            "f1": m.fscore[0.01]}


def screened_poisson(points: np.ndarray, normals: np.ndarray | None, depth: int = 8) -> Mesh:
    import pymeshlab

    ms = pymeshlab.MeshSet()
    if normals is None:
        ms.add_mesh(pymeshlab.Mesh(vertex_matrix=points.astype(np.float64)))
        ms.compute_normal_for_point_clouds(k=10, smoothiter=0)
    else:
        ms.add_mesh(
            pymeshlab.Mesh(
                vertex_matrix=points.astype(np.float64), v_normals_matrix=normals.astype(np.float64)
            )
        )
    ms.generate_surface_reconstruction_screened_poisson(depth=depth, preclean=True)
    m = ms.current_mesh()
    return Mesh(
        torch.as_tensor(m.vertex_matrix(), dtype=torch.float32),
        torch.as_tensor(m.face_matrix(), dtype=torch.long),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="peif_default")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="two shapes per set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if find_data_root() is None:
        print("no shared data found: nothing to benchmark (set $EQUIVISION_DATA)")
        return
    try:
        import pymeshlab  # noqa: F401

        have_poisson = True
    except ImportError:
        have_poisson = False
        print("pymeshlab is not installed: the screened-Poisson anchor is skipped")
    net = load(args.model, model="peif")
    abc = mesh_files("abc")
    sets = {
        "abc (held out)": abc[-3:],
        "classic (scans)": [
            p
            for p in mesh_files("classic")
            if p.stem in ("bunny", "armadillo", "fertility", "lion", "cow", "elephant")
        ],
        "shapenet10": [
            mesh_files("shapenet10", c)[3] for c in ("chair", "aeroplane", "vase", "bench", "cup", "piano")
        ],
    }
    rows: dict[str, dict[str, list[float]]] = {}
    times: dict[str, list[float]] = {}
    for set_name, files in sets.items():
        files = files[:2] if args.quick else files
        for i, f in enumerate(files):
            ref, _, _ = normalize_mesh(load_mesh(f))
            pts, nrm = sample_surface_uniform(ref, args.points, seed=args.seed + i)
            t = time.perf_counter()
            ours = reconstruct(pts, net, resolution=args.resolution).mesh
            times.setdefault("equivision", []).append(time.perf_counter() - t)
            r = SO3().random(1, seed=args.seed + 100 + i)[0]
            rot = reconstruct(pts @ r.T, net, resolution=args.resolution).mesh
            rot = Mesh(rot.vertices @ r, rot.faces)  # back to the canonical pose
            results = {"equivision": _scores(ours, ref, i), "equivision, rotated": _scores(rot, ref, i)}
            if have_poisson:
                t = time.perf_counter()
                est = screened_poisson(pts.numpy(), None)
                times.setdefault("Poisson (estimated normals)", []).append(time.perf_counter() - t)
                results["Poisson (estimated normals)"] = _scores(est, ref, i)
                results["Poisson (true normals)"] = _scores(
                    screened_poisson(pts.numpy(), nrm.numpy()), ref, i
                )
            for method, sc in results.items():
                for k, v in sc.items():
                    rows.setdefault(f"{set_name}|{method}", {}).setdefault(k, []).append(v)
            print(
                f"{set_name}: {f.stem}: " + ", ".join(f"{m} F={s['f1']:.3f}" for m, s in results.items()),
                flush=True,
            )
    print()
    print(
        f"| set | method | CD-L1 ×100 | EMD ×100 | NC | F-score@1% "
        f"| (resolution {args.resolution}, {args.points} points) |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, sc in rows.items():
        s, m = key.split("|")
        print(
            f"| {s} | {m} | "
            + " | ".join(f"{statistics.mean(sc[k]):.4f}" for k in METRICS)
            + f" | n={len(sc['f1'])} |"
        )
    print()
    for s in sets:
        a, b = rows.get(f"{s}|equivision"), rows.get(f"{s}|equivision, rotated")
        if a and b:
            rel = {
                k: abs(statistics.mean(b[k]) - statistics.mean(a[k])) / abs(statistics.mean(a[k]))
                for k in METRICS
            }
            print(
                f"{s}: relative change under rotation: " + ", ".join(f"{k} {v:.2%}" for k, v in rel.items())
            )
    for name, ts in times.items():
        print(
            f"seconds per shape, {name}: {statistics.mean(ts):.1f} (CPU, {torch.get_num_threads()} thread(s))"
        )


if __name__ == "__main__":
    main()
