"""Which PEIF weights reconstruct better, judged on shapes the reconstruction benchmark does not
score (the tangent-plane filter's validation shapes: 2 ABC training parts, the lion and the
elephant scans, the sixth ShapeNet chair, vase and bench), so that choosing weights here does
not pick them on the benchmark's own shapes.

    OMP_NUM_THREADS=1 python benchmarks/recon_models.py MODEL [MODEL ...]
        [--anchor peif_default] [--checkpoint latest] [--results FILE] [--fresh]

Each ``MODEL`` is a packaged name or a run folder of ``equivision train recon`` (its
``--checkpoint``: ``latest`` by default, the final weights; ``best`` would be chosen on the
run's eval split, which holds the benchmark's ABC parts; or ``RUN@STEP`` for one step). Every
shape: a 10k-point cloud (seed 50 + index, as ``recon_plane_filter.py``), the default
``reconstruct`` pipeline at resolution 128 with each model and with the anchor, scored by the
benchmark's protocol (CD-L1 ×100, NC, F@1 %, EMD ×100 over 8 draws, pieces, boundary edges),
and the seconds per shape (wall time: compare it only between models measured under the same
load). Prints per-shape rows and, per model, the mean change against the
anchor with the worst shape. Rows go to ``--results`` (JSON lines; a re-run skips what is
there, ``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from equivision.data import find_data_root
from equivision.errors import EquivisionError
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.io import load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct
from equivision.runs import find_checkpoint
from recon_plane_filter import validation_shapes
from reconstruction import _scores

METRICS = ("nc", "cd_l1", "f1", "emd", "boundary_edges", "seconds")
# for each metric, +1 where larger is better
BETTER = {"nc": 1, "cd_l1": -1, "f1": 1, "emd": -1, "boundary_edges": -1, "seconds": -1}


def resolve(spec: str, checkpoint: str | int) -> tuple[str, str | int]:
    """``(label, checkpoint)`` of a packaged name, a run folder (its ``checkpoint``, the step
    resolved now so that rows of a run still training are labelled by the step they used) or
    ``RUN@STEP``."""
    name, _, step = spec.partition("@")
    if not Path(name).is_dir():
        return name, checkpoint
    if step:  # named by its step: rows measured earlier need no checkpoint any more
        return f"{name}@{int(step)}", int(step)
    found = find_checkpoint(Path(name), checkpoint)
    return f"{name}@{found.step}", found.step


def measure(models: list[tuple[str, str | int]], path: Path) -> None:
    """``models``: ``(label, checkpoint)`` pairs of :func:`resolve`."""
    torch.set_num_threads(1)
    done = {(r["model"], r["shape"]) for r in read_rows(path)}
    shapes = [f.stem for _, f in validation_shapes()]
    nets = {label: load(label.partition("@")[0], model="peif", checkpoint=which) for label, which in models
            if any((label, s) not in done for s in shapes)}
    with path.open("a") as out:
        for i, (set_name, f) in enumerate(validation_shapes()):
            ref, _, _ = normalize_mesh(load_mesh(f))
            pts, _ = sample_surface_uniform(ref, 10_000, seed=50 + i)
            for m, net in nets.items():
                if (m, f.stem) in done:
                    continue
                t = time.perf_counter()
                rec = reconstruct(pts, net, resolution=128)
                seconds = time.perf_counter() - t
                s = {**_scores(rec.mesh, ref, i), "seconds": seconds}
                out.write(json.dumps({"model": m, "set": set_name, "shape": f.stem, **s}) + "\n")
                out.flush()
                print(f"{m} {f.stem[:12]}: NC {s['nc']:.4f} CD {s['cd_l1']:.4f} F {s['f1']:.4f} "
                      f"EMD {s['emd']:.3f} boundary edges {s['boundary_edges']} {seconds:.1f} s", flush=True)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def report(rows: list[dict], anchor: str) -> None:
    by = {(r["model"], r["shape"]): r for r in rows}
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("\n| shape | " + " | ".join(f"{m} NC / CD / F" for m in models) + " |")
    print("|---|" + "---|" * len(models))
    for s in shapes:
        cells = [f"{by[m, s]['nc']:.4f} / {by[m, s]['cd_l1']:.4f} / {by[m, s]['f1']:.4f}"
                 if (m, s) in by else "–" for m in models]
        print(f"| {s[:16]} | " + " | ".join(cells) + " |")
    print(f"\nChange against {anchor} (mean over the shapes both have; worst shape in brackets; "
          "seconds as a ratio):\n")
    print("| model | n | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for m in models:
        if m == anchor:
            continue
        common = [s for s in shapes if (m, s) in by and (anchor, s) in by]
        if not common:
            continue
        cells = []
        for k in METRICS:
            if k == "seconds":
                ratio = sum(by[m, s][k] for s in common) / sum(by[anchor, s][k] for s in common)
                cells.append(f"{ratio:.2f}×")
                continue
            d = [by[m, s][k] - by[anchor, s][k] for s in common]
            worst = min(d, key=lambda x: BETTER[k] * x)
            fmt = "+.0f" if k == "boundary_edges" else "+.4f"
            cells.append(f"{statistics.mean(d):{fmt}} ({worst:{fmt}})")
        print(f"| {m} | {len(common)} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="packaged names, run folders or RUN@STEP")
    ap.add_argument("--anchor", default="peif_default")
    ap.add_argument("--checkpoint", default="latest", help="of run folders: latest, best or a step")
    ap.add_argument("--results", type=Path, default=Path("runs/bench-recon/models.jsonl"))
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    if args.fresh and args.results.exists():
        args.results.unlink()
    if find_data_root() is None:
        print("no shared data found: nothing to measure (set $EQUIVISION_DATA)")
        return
    args.results.parent.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys([args.anchor, *args.models]))
    checkpoint = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    try:
        resolved = [resolve(m, checkpoint) for m in models]  # once: a run may checkpoint meanwhile
        measure(resolved, args.results)
    except EquivisionError as e:
        sys.exit(f"recon_models.py: {e}")
    labels = [label for label, _ in resolved]
    rows = [r for r in read_rows(args.results) if r["model"] in labels]
    report(rows, labels[0])


if __name__ == "__main__":
    main()
