"""Benchmark of the sphere and SO(3) engine against torch-harmonics and e3nn, side by side.

Run: ``.venv/bin/python benchmarks/sphere.py`` (add ``--quick`` for a short run). Prints tables
to stdout and appends its rows to ``--jsonl`` (default ``benchmarks/results/sphere.jsonl``).
Timings are wall-clock medians over interleaved repeats (ours and theirs alternate, so load
from other processes hits both alike), with torch's default thread count; peak memory is the
peak resident set of a fresh child process.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import resource
import time
import warnings
from collections.abc import Callable

import torch

from _results import RowWriter, add_jsonl_option
from _timing import interleaved_medians
from equivision.groups import SO3
from equivision.sphere import align, isht, rotate, sht
from equivision.sphere.sht import _tables
from equivision.testing.oracles import import_torch_harmonics


def _median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    return {k: 1e3 * v for k, v in interleaved_medians(fns, repeats).items()}


def bench_sht(sizes: list[int], repeats: int, out: RowWriter) -> None:
    th = import_torch_harmonics()
    from e3nn import o3

    print("\n## SHT forward + inverse, 512 signals (16 × 32 channels), float32\n")
    print("| grid | equivision | torch-harmonics | ratio th/ours | e3nn | ratio e3nn/ours "
          "| setup ours | setup th | setup e3nn | round-trip err ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        b = n // 2
        x = isht(torch.randn(16, 32, b * b))
        _tables.clear()
        t0 = time.perf_counter()
        _tables(b, dtype=torch.float32)
        setup_ours = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            fwd = th.RealSHT(n, n, lmax=b, mmax=b, grid="equiangular")
            inv = th.InverseRealSHT(n, n, lmax=b, mmax=b, grid="equiangular")
            setup_th = time.perf_counter() - t0
        fns = {"ours": lambda x=x: isht(sht(x)), "th": lambda x=x, i=inv, f=fwd: i(f(x))}
        e3_txt, e3_ratio, setup_e3 = "skipped (setup takes minutes)", "–", "–"
        if n <= 64:
            t0 = time.perf_counter()
            to_grid = o3.ToS2Grid(b - 1, (n, n), normalization="integral")
            from_grid = o3.FromS2Grid((n, n), b - 1, normalization="integral")
            setup_e3 = f"{time.perf_counter() - t0:.2f} s"
            fns["e3nn"] = lambda x=x, t=to_grid, f=from_grid: t(f(x))
        res = _median_ms(fns, repeats)
        if "e3nn" in res:
            e3_txt, e3_ratio = f"{res['e3nn']:.1f} ms", f"{res['e3nn'] / res['ours']:.2f}"
        err = float((sht(isht(sht(x))) - sht(x)).abs().max())
        print(f"| {n}² | {res['ours']:.1f} ms | {res['th']:.1f} ms | {res['th'] / res['ours']:.2f} | "
              f"{e3_txt} | {e3_ratio} | {setup_ours:.2f} s | {setup_th:.2f} s | {setup_e3} | {err:.1e} |")
        out.add(f"SHT forward + inverse, 512 signals, {n}² grid", res["ours"], "ms", higher_is_better=False,
                anchor="torch-harmonics RealSHT + InverseRealSHT", anchor_figure=res["th"],
                e3nn_ms=res.get("e3nn"), setup_s={"ours": setup_ours, "th": setup_th},
                round_trip_error=err)


def _pair(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    f = isht(torch.randn(32, b * b, generator=gen))
    r = SO3().random(1, seed=seed + 1)[0]
    return f, rotate(f, r.T), r


def _e3nn_brute_force(f: torch.Tensor, g: torch.Tensor, rots: torch.Tensor, chunk: int = 256):
    """C(R) = Σ_c f̂_c · D(R) ĝ_c with e3nn's Wigner-D, one block of rotations at a time, on
    coefficients in e3nn's own real basis (exact Driscoll–Healy quadrature of e3nn's harmonics)."""
    from e3nn import o3

    from equivision.sphere import Grid

    b = f.shape[-1] // 2
    irreps = o3.Irreps([(1, (l, (-1) ** l)) for l in range(b)])
    grid = Grid(b)
    y = o3.spherical_harmonics(list(range(b)), grid.points(dtype=f.dtype), normalize=True,
                               normalization="integral")  # (2B, 2B, B²)
    w = grid.weights(dtype=f.dtype)[:, None, None]
    fh = torch.einsum("cjk,jki->ci", f, y * w)
    gh = torch.einsum("cjk,jki->ci", g, y * w)
    best, best_r = -math.inf, None
    for i in range(0, rots.shape[0], chunk):
        d = irreps.D_from_matrix(rots[i:i + chunk])  # (k, B², B²)
        c = torch.einsum("cm,kmn,cn->k", fh, d, gh)
        j = int(c.argmax())
        if float(c[j]) > best:
            best, best_r = float(c[j]), rots[i + j]
    return best_r


def bench_align(sizes: list[int], repeats: int, brute_n: int, out: RowWriter) -> None:
    print("\n## SO(3) search for one 32-channel pair, float32\n")
    print("| B | align (grid only) | align (refined) | error grid-only | error refined "
          "| grid points |")
    print("|---|---|---|---|---|---|")
    for b in sizes:
        f, g, r = _pair(b, b)
        res = _median_ms({"grid": lambda f=f, g=g: align(f, g, refine=False),
                          "ref": lambda f=f, g=g: align(f, g)}, repeats)
        e0 = float(SO3.geodesic_distance(align(f, g, refine=False)[0].double(), r.double())) * 180 / math.pi
        e1 = float(SO3.geodesic_distance(align(f, g)[0].double(), r.double())) * 180 / math.pi
        print(f"| {b} | {res['grid']:.1f} ms | {res['ref']:.1f} ms | {e0:.3f}° | {e1:.1e}° "
              f"| {(2 * b) ** 3:,} |")
        out.add(f"align, grid only, B = {b}", res["grid"], "ms", higher_is_better=False, error_deg=e0)
        out.add(f"align, refined, B = {b}", res["ref"], "ms", higher_is_better=False, error_deg=e1)

    b = 12  # e3nn's spherical harmonics stop at l = 12
    f, g, r = _pair(b, 100)
    rots = SO3.grid(brute_n)
    _e3nn_brute_force(f, g, rots[:256])  # warm-up
    t0 = time.perf_counter()
    r_bf = _e3nn_brute_force(f, g, rots)
    t_bf = time.perf_counter() - t0
    e_bf = float(SO3.geodesic_distance(r_bf.double(), r.double())) * 180 / math.pi
    t_ours = _median_ms({"ours": lambda: align(f, g, refine=False)}, repeats)["ours"] / 1e3
    per_rot_bf = t_bf / brute_n
    per_rot_ours = t_ours / (2 * b) ** 3
    print(f"\ne3nn brute force (its Wigner-D per rotation, B = {b}, {brute_n:,} super-Fibonacci rotations): "
          f"{t_bf:.2f} s, error {e_bf:.2f}°; per rotation {1e6 * per_rot_bf:.1f} µs vs "
          f"{1e6 * per_rot_ours:.3f} µs for the SO(3) FFT grid ({(2 * b) ** 3:,} rotations in "
          f"{1e3 * t_ours:.1f} ms): ratio {per_rot_bf / per_rot_ours:,.0f}×; the same "
          f"{(2 * b) ** 3:,}-rotation search by brute force would take ≈ {per_rot_bf * (2 * b) ** 3:.0f} s")
    out.add(f"SO(3) search per rotation, B = {b}", 1e6 * per_rot_ours, "µs/rotation", higher_is_better=False,
            anchor=f"e3nn Wigner-D brute force, {brute_n:,} rotations", anchor_figure=1e6 * per_rot_bf,
            anchor_error_deg=e_bf)


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_child(q, b: int, n_pairs: int) -> None:
    import threading

    f = torch.stack([_pair(b, s)[0] for s in range(n_pairs)])
    g = torch.stack([_pair(b, s)[1] for s in range(n_pairs)])
    align(f[:1], g[:1])  # tables built and cached
    base = _rss_mib()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.0005)

    t = threading.Thread(target=sample)
    t.start()
    align(f, g)
    done.set()
    t.join()
    q.put((peak[0] - base, base))


def bench_batched(b: int, n_pairs: int, repeats: int, out: RowWriter) -> None:
    f = torch.stack([_pair(b, s)[0] for s in range(n_pairs)])
    g = torch.stack([_pair(b, s)[1] for s in range(n_pairs)])
    res = _median_ms({"one": lambda: align(f[0], g[0]), "batch": lambda: align(f, g)}, repeats)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(q, b, n_pairs))
    p.start()
    mem, base = q.get()
    p.join()
    print(f"\n## Batched align, B = {b}, 32 channels, float32\n")
    print(f"one pair: {res['one']:.1f} ms ({1e3 / res['one']:.1f} pairs/s); batch of {n_pairs}: "
          f"{res['batch']:.1f} ms ({1e3 * n_pairs / res['batch']:.1f} pairs/s); "
          f"peak resident memory of the batched call: {mem:.0f} MiB above a {base:.0f} MiB baseline "
          "(sampled every 0.5 ms)")
    out.add(f"batched align, B = {b}, {n_pairs} pairs in one call", 1e3 * n_pairs / res["batch"], "pairs/s",
            higher_is_better=True, anchor="one pair per call", anchor_figure=1e3 / res["one"],
            peak_mib_above_baseline=mem)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    add_jsonl_option(ap, "sphere")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 7
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    out = RowWriter("sphere", args.jsonl, dtype="float32", mode="quick" if args.quick else "full",
                    settings={"repeats": reps})
    bench_sht([32, 64] if args.quick else [32, 64, 128], reps, out)
    bench_align([16, 32] if args.quick else [16, 32, 64], reps, brute_n=1024 if args.quick else 4096, out=out)
    bench_batched(32, 16, reps, out)
    print(f"\n{out.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
