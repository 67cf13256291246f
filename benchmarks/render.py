"""Throughput of the pinhole renderer (equivision.render.render_views) against trimesh's own
camera rays and first hits on the same mesh, side by side.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/render.py`` (add ``--quick`` for a short
run). Prints a table to stdout and appends its rows to ``--jsonl`` (default
``benchmarks/results/render.jsonl``). One thread (``torch.set_num_threads(1)``); timings are
wall-clock medians over interleaved repeats, each repeat rendering a batch of poses in one
call. The anchor is trimesh's path for the same camera (resolution, field of view, pose):
``scene.camera_rays()`` for each pose's camera, then ``mesh.ray.intersects_first`` with its
Embree back end; it returns face indices only, where ours returns shading, silhouette and
depth. Meshes: ModelNet10 bathtubs of about 1.8k, 4.6k and 10k faces from the shared data
folder, or procedural spheres of similar face counts where it is absent.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch

from _results import RowWriter, add_jsonl_option
from _timing import interleaved_medians
from equivision.groups import SO3
from equivision.io import Mesh, load_mesh
from equivision.render import camera_for_mesh, embree_available, render_views

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "modelnet10" / "test" / "bathtub"
MESHES = {"modelnet10 bathtub_0107": "bathtub_0107.ply", "modelnet10 bathtub_0115": "bathtub_0115.ply",
          "modelnet10 bathtub_0135": "bathtub_0135.ply"}


def _meshes() -> dict[str, Mesh]:
    out: dict[str, Mesh] = {}
    for name, file in MESHES.items():
        p = DATA / file
        if p.exists():
            out[name] = load_mesh(p, dtype=torch.float64)
    if not out:  # no shared data: spheres of 1.3k, 5k and 10k faces
        import trimesh

        for tm in (trimesh.creation.icosphere(subdivisions=3), trimesh.creation.icosphere(subdivisions=4),
                   trimesh.creation.uv_sphere(count=[51, 100])):
            out[f"sphere {len(tm.faces)} faces"] = Mesh(torch.tensor(tm.vertices), torch.tensor(tm.faces))
    return out


def _trimesh_anchor(mesh: Mesh, rots: torch.Tensor, size: int):
    """trimesh's camera rays and Embree first hits for the same camera and poses: the fixed
    mesh seen by the camera moved by Rᵀ about the centroid (what a pose R means here)."""
    import trimesh

    cam = camera_for_mesh(mesh)
    tm = trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), process=False)
    scene = tm.scene()
    fov = math.degrees(2 * math.atan(cam.tan_half_fov))
    scene.camera.resolution = (size, size)
    scene.camera.fov = (fov, fov)
    # a trimesh camera looks along its −z with +y up: our camera frame (right +x, up +z, back −y)
    base = np.eye(4)
    base[:3, :3] = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T
    base[:3, 3] = cam.eye.numpy()
    c = cam.center.numpy()
    transforms = []
    for r in rots.numpy():
        move = np.eye(4)
        move[:3, :3] = r.T
        move[:3, 3] = c - r.T @ c
        transforms.append(move @ base)
    intersector = tm.ray  # Embree when embreex is installed; built once, on the first cast

    def run() -> float:
        hits = 0
        for t in transforms:
            scene.camera_transform = t
            origins, vectors, _ = scene.camera_rays()
            hits += int((intersector.intersects_first(origins, vectors) >= 0).sum())
        return hits / (len(transforms) * size * size)

    return run


def bench(meshes: dict[str, Mesh], sizes: list[int], n_views: int, repeats: int, out: RowWriter) -> None:
    backends = ["embree", "torch"] if embree_available() else ["torch"]
    print("\n## Images per second, one thread, batches of "
          f"{n_views} random poses (shading + silhouette + depth)\n")
    print("| mesh | faces | size | back end | equivision | trimesh camera_rays + intersects_first "
          "| ratio ours/trimesh | hit fraction ours / trimesh |")
    print("|---|---|---|---|---|---|---|---|")
    rots = SO3().random(n_views, seed=0, dtype=torch.float64)
    for name, m in meshes.items():
        for size in sizes:
            anchor = _trimesh_anchor(m, rots, size) if embree_available() else None
            for be in backends:
                fns = {"ours": lambda m=m, s=size, be=be: render_views(m, rots, size=s, backend=be)}
                if anchor is not None:
                    fns["trimesh"] = anchor
                res = interleaved_medians(fns, repeats)
                ours = n_views / res["ours"]
                theirs = n_views / res["trimesh"] if "trimesh" in res else None
                hit_ours = float(render_views(m, rots, size=size, channels=["silhouette"], backend=be).mean())
                hit_theirs = anchor() if anchor is not None else None
                ratio = ours / theirs if theirs else None
                print(f"| {name} | {len(m.faces):,} | {size}² | {be} | {ours:.1f} img/s | "
                      f"{f'{theirs:.1f} img/s' if theirs else '–'} | {f'{ratio:.2f}' if ratio else '–'} | "
                      f"{hit_ours:.4f} / {f'{hit_theirs:.4f}' if hit_theirs is not None else '–'} |")
                out.add(f"render {size}², {be}, {name} ({len(m.faces)} faces)", ours, "images/s",
                        higher_is_better=True, anchor="trimesh camera_rays + intersects_first (Embree)",
                        anchor_figure=theirs, faces=len(m.faces), size=size, backend=be,
                        hit_fraction={"ours": hit_ours, "trimesh": hit_theirs})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and poses")
    add_jsonl_option(ap, "render")
    args = ap.parse_args()
    torch.set_num_threads(1)
    reps, n_views = (3, 16) if args.quick else (7, 64)
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, Embree {'yes' if embree_available() else 'no'}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    out = RowWriter("render", args.jsonl, mode="quick" if args.quick else "full",
                    settings={"repeats": reps, "views_per_call": n_views}, load_average=list(load))
    bench(_meshes(), [64, 128], n_views, reps, out)
    print(f"\n{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
