"""Local frames for millions of patches: equivision's frames against the paper's per-patch SVD.

PEIF computes each patch's frame by an SVD of the centred patch (0.447 s of 0.669 s per 10k
queries on an RTX 4090, its Table 7). The anchor here is that SVD, batched
(``torch.linalg.svd`` of the ``(B, K, 3)`` centred patches, no sign disambiguation), measured in
the same run on the same patches; equivision's ``local_frames`` does more (float64, signs,
degenerate cases) with either the closed-form 3×3 eigensolver or batched ``eigh``. Also: K-NN
patch search and the exact closest points used to prepare training data.

    .venv/bin/python benchmarks/reconstruction_frames.py [--patches 262144] [--k 32] [--threads N]
        [--device cuda] [--quick] [--jsonl PATH]

``--quick``: 32,768 patches instead of ``--patches``.
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from _results import RowWriter, add_jsonl_option
from equivision.data.procedural import make_shape
from equivision.geometry import sample_surface_uniform
from equivision.recon import knn_patches, local_frames
from equivision.recon.closest import closest_points_on_mesh


def timed(fn, sync=lambda: None, repeats: int = 2) -> float:
    """Best of ``repeats`` wall-clock times (the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patches", type=int, default=262_144)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="32,768 patches instead of --patches")
    add_jsonl_option(ap, "reconstruction_frames")
    args = ap.parse_args()
    if args.quick:
        args.patches = 32_768
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    console = Console()

    shape = make_shape("torus", 0)
    mesh = shape.mesh(96)
    cloud, _ = sample_surface_uniform(mesh, 10_000, seed=0)
    base, _ = sample_surface_uniform(mesh, args.patches, seed=1)
    queries = base + 0.01 * torch.randn(args.patches, 3, generator=torch.Generator().manual_seed(2))
    t_knn = timed(lambda: knn_patches(cloud, queries, args.k), repeats=1)
    patches, _ = knn_patches(cloud, queries, args.k)
    patches, queries = patches.to(dev), queries.to(dev)

    def svd_anchor():
        c = patches - patches.mean(1, keepdim=True)
        return torch.linalg.svd(c, full_matrices=False)

    rows = [
        ("K-NN patches (cKDTree, all cores)", t_knn),
        ("paper: batched SVD of patches (float32) (anchor)", timed(svd_anchor, sync)),
        ("local_frames, closed-form eigen", timed(lambda: local_frames(patches, queries), sync)),
        ("local_frames, batched eigh", timed(lambda: local_frames(patches, queries, eigen="eigh"), sync)),
    ]
    anchor = rows[1][1]
    t = Table(title=f"{args.patches:,} patches of K = {args.k} on {dev} ({torch.get_num_threads()} threads)")
    for col in ("step", "seconds", "patches / s", "vs SVD anchor"):
        t.add_column(col, justify="right" if col != "step" else "left")
    for name, sec in rows:
        t.add_row(name, f"{sec:.3f}", f"{args.patches / sec:,.0f}", f"{sec / anchor:.2f}×")
    console.print(t)
    f = local_frames(patches, queries)
    share = float((f.status != 0).float().mean())
    console.print(f"patches on the degenerate-case route: {100 * share:.2f}%")
    out = RowWriter("reconstruction_frames", args.jsonl, device=dev, dtype="float32 patches",
                    mode="quick" if args.quick else "full", settings={"patches": args.patches, "k": args.k})
    n = f"{args.patches:,} patches, K = {args.k}"
    out.add(f"K-NN patch search (cKDTree), {n}", args.patches / rows[0][1], "patches/s",
            higher_is_better=True)
    for name, sec in rows[2:]:
        out.add(f"{name}, {n}", args.patches / sec, "patches/s", higher_is_better=True,
                anchor="batched SVD (paper)", anchor_figure=args.patches / anchor,
                degenerate_share=share)

    # exact closest points for training data (unit-box torus mesh, near-surface queries)
    n_q = 16_384
    qd = queries[:n_q].cpu().double()
    mesh64 = type(mesh)(mesh.vertices.double(), mesh.faces)
    t_cp = timed(lambda: closest_points_on_mesh(mesh64, qd), repeats=1)
    console.print(f"exact closest points: {n_q:,} queries on a {len(mesh.faces):,}-face mesh in "
                  f"{t_cp:.2f} s ({n_q / t_cp:,.0f} queries/s)")
    out.add(f"exact closest points, {n_q:,} queries, {len(mesh.faces):,}-face mesh", n_q / t_cp,
            "queries/s", higher_is_better=True)
    print(f"{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
