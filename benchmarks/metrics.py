"""Reconstruction metrics: how fast, against the obvious alternatives, in the same run.

* Chamfer + F-score on 100k vs 100k points: equivision (SciPy cKDTree, all cores) against
  brute force (chunked ``torch.cdist`` + ``min``), the anchor the issue names.
* EMD on 2,048 vs 2,048 points: SciPy's exact assignment (equivision) against POT's exact
  network simplex ``ot.emd2`` (same value; the anchor).
* The whole protocol (normalise, 2 × 100k samples, all metrics, EMD) on one real mesh.

    .venv/bin/python benchmarks/metrics.py [--points 100000] [--skip-brute] [--threads N] [--quick]
        [--jsonl PATH]

``--quick``: 20,000 points (the brute-force anchor then takes seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _results import RowWriter, add_jsonl_option
from equivision.metrics import earth_movers_distance, evaluate_reconstruction, point_set_metrics


def timed(fn, repeats: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def brute_chamfer_fscore(a: torch.Tensor, b: torch.Tensor, tau: float, chunk: int = 4096):
    def directed(x, y):
        return torch.cat([torch.cdist(x[i : i + chunk], y).min(1).values for i in range(0, len(x), chunk)])

    d_ab, d_ba = directed(a, b), directed(b, a)
    p, r = float((d_ab < tau).double().mean()), float((d_ba < tau).double().mean())
    return 0.5 * float(d_ab.mean() + d_ba.mean()), 2 * p * r / max(p + r, 1e-300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--skip-brute", action="store_true", help="skip the slow brute-force anchor")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="20,000 points instead of --points")
    add_jsonl_option(ap, "metrics")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console()
    rng = np.random.default_rng(0)
    n = 20_000 if args.quick else args.points
    out = RowWriter("metrics", args.jsonl, dtype="float64", mode="quick" if args.quick else "full",
                    settings={"points": n})
    t_bf = None
    a = rng.random((n, 3))
    b = a + rng.normal(scale=0.004, size=(n, 3))
    t_kd, m = timed(lambda: point_set_metrics(a, b))
    t = Table(title=f"Chamfer-L1 + F-score, {n:,} vs {n:,} points ({torch.get_num_threads()} threads)")
    for col in ("method", "seconds", "CD-L1", "F@1%", "ratio"):
        t.add_column(col, justify="left" if col == "method" else "right")
    t.add_row("equivision (cKDTree)", f"{t_kd:.3f}", f"{m.chamfer_l1:.6f}", f"{m.fscore[0.01]:.4f}", "1.00×")
    if not args.skip_brute:
        ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
        t_bf, (cd, f) = timed(lambda: brute_chamfer_fscore(ta, tb, 0.01), repeats=1)
        t.add_row("brute force (torch.cdist, float32) (anchor)", f"{t_bf:.3f}", f"{cd:.6f}", f"{f:.4f}",
                  f"{t_bf / t_kd:.1f}×")
    console.print(t)
    out.add(f"Chamfer-L1 + F-score, {n:,} vs {n:,} points", t_kd, "s", higher_is_better=False,
            anchor=None if t_bf is None else "brute force torch.cdist + min (float32)", anchor_figure=t_bf)

    import ot

    k = 2048
    x, y = rng.random((k, 3)), rng.random((k, 3))
    t_lsa, e1 = timed(lambda: earth_movers_distance(x, y), repeats=3)

    def pot():
        w = np.full(k, 1.0 / k)
        return ot.emd2(w, w, ot.dist(x, y, metric="euclidean"))

    t_pot, e2 = timed(pot, repeats=3)
    t = Table(title=f"exact EMD, {k:,} vs {k:,} points")
    for col in ("method", "seconds", "EMD", "ratio"):
        t.add_column(col, justify="left" if col == "method" else "right")
    t.add_row("equivision (scipy linear_sum_assignment)", f"{t_lsa:.3f}", f"{e1:.6f}", "1.00×")
    t.add_row("POT ot.emd2 (anchor)", f"{t_pot:.3f}", f"{e2:.6f}", f"{t_pot / t_lsa:.2f}×")
    console.print(t)
    out.add(f"exact EMD, {k:,} vs {k:,} points", t_lsa, "s", higher_is_better=False,
            anchor="POT ot.emd2", anchor_figure=t_pot)

    from equivision.data import find_data_root, mesh_files
    from equivision.data.procedural import make_shape
    from equivision.io import Mesh, load_mesh

    if find_data_root() is not None:
        path = mesh_files("abc")[0]
        ref = load_mesh(path)
        name = f"abc/{path.name}"
    else:
        ref = make_shape("holed_box", 0).mesh(96)
        name = "procedural holed_box"
    pred = Mesh(ref.vertices * 1.003 + 0.001, ref.faces)
    t_all, r = timed(lambda: evaluate_reconstruction(pred, ref), repeats=1)
    console.print(f"full protocol on {name} ({len(ref.faces):,} faces, 100k samples each, EMD on 2,048): "
                  f"{t_all:.2f} s — CD-L1×100 {r.cd_l1_x100:.4f}, F@1% {r.fscore[0.01]:.4f}")
    out.add(f"whole protocol on {name.split('_')[0]} ({len(ref.faces):,} faces)", t_all, "s",
            higher_is_better=False)
    print(f"{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
