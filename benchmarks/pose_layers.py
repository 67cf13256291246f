"""Which teacher layer serves category-level pose: correlate the teacher's *true* maps of two
different test meshes of one class, each in its own random pose (the upper bound an image
network imitating that layer could reach), for every layer of the packaged ModelNet10 teacher.

``OMP_NUM_THREADS=1 python benchmarks/pose_layers.py [--per-class N]``: the first N test meshes
of every ModelNet10 class (by file name), consecutive pairs, one random pose per mesh (seeded);
raw geodesic errors (no symmetry folding). Instance-level pose with true maps is exact at every
layer (the targets are exact rotations), so it does not tell layers apart; docs/views.md has
each layer's distance to re-casting instead.
"""

from __future__ import annotations

import argparse
import time

import torch

from equivision.data.registry import list_entries
from equivision.groups import SO3
from equivision.io import load_mesh
from equivision.metrics.rotations import rotation_errors
from equivision.pipelines.classify import load_classifier
from equivision.render.sphere import raycast_sphere
from equivision.sphere.pose import relative_pose
from equivision.tasks.views import rotated_targets

LAYERS = ("stem", "stage1", "stage2", "stage3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--teacher", default="shapes_sphere_modelnet10",
                    help="packaged name or run folder of a spherical CNN")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    teacher, _ = load_classifier(args.teacher)  # records the ray-cast channels it reads
    channels = teacher.input_channels
    by_class: dict[int, list] = {}
    for e in list_entries("modelnet10", "test"):
        by_class.setdefault(e.label, []).append(e)
    errors: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    for c, entries in sorted(by_class.items()):
        maps = []
        for e in entries[: args.per_class]:
            with torch.no_grad():
                x = raycast_sphere(load_mesh(e.path), teacher.cfg.bandwidths[0], channels=channels)
                maps.append({layer: teacher.features(x[None], layer)[0] for layer in LAYERS})
        for i in range(len(maps) - 1):
            r = SO3().random(2, seed=1000 * c + i, dtype=torch.float64)
            truth = r[1] @ r[0].T
            for layer in LAYERS:
                a = rotated_targets(maps[i][layer], r[:1])[0]
                b = rotated_targets(maps[i + 1][layer], r[1:])[0]
                found = relative_pose(a, b).rotation.double()
                errors[layer].append(float(rotation_errors(found, truth).rad2deg()))
    print(f"| layer | maps | category median | Acc@15 | Acc@30 | pairs |  (teacher {args.teacher})")
    print("|---|---|---|---|---|---|")
    for layer in LAYERS:
        e = torch.tensor(errors[layer])
        shape = tuple(maps[0][layer].shape)
        print(f"| {layer} | {shape[0]} × {shape[1]}² | {e.median():.1f}° | {(e < 15).double().mean():.2f} | "
              f"{(e < 30).double().mean():.2f} | {len(e)} |")
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
