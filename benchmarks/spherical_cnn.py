"""Benchmark of the spherical-CNN pipeline: ray casting and network training throughput.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spherical_cnn.py`` (``--quick`` for a
short run, ``--device cuda`` on a GPU). Prints two tables and appends their rows to ``--jsonl``
(default ``benchmarks/results/spherical_cnn.jsonl``):

1. Ray casting (:func:`equivision.render.raycast_sphere`), meshes × rotations per second at
   bandwidth 32 and 64, with Intel Embree (``embreex``, through trimesh) against the two
   PyTorch fallbacks: the bucketed one used by default without Embree and the brute force
   over every ray–face pair (and the largest difference between their signals, as a check).
2. Forward + backward of the default :class:`~equivision.models.spherical_cnn.SphericalCNN`
   (signals per second) at bandwidth 32 and 64, against the same network with every
   :class:`~equivision.nn.SphericalConv` replaced by torch-harmonics' spectral convolution
   (``SpectralConvS2``, "driscoll-healy" zonal operator, on its equiangular grid of the same
   size); batch norm, pooling and the read-out are shared code.

Timings are wall-clock medians over interleaved repeats (the two contenders alternate, so load
from other processes hits both alike).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import Tensor, nn

from _results import RowWriter, add_jsonl_option
from _timing import interleaved_medians
from equivision.groups import SO3
from equivision.io.meshes import Mesh
from equivision.models import count_parameters
from equivision.models.spherical_cnn import SphericalCNN, SphericalCNNConfig
from equivision.nn import SphericalConv
from equivision.render import (
    embree_available,
    first_hits_embree,
    first_hits_through_point,
    first_hits_torch,
    raycast_sphere,
)
from equivision.testing.oracles import import_torch_harmonics


def benchmark_meshes(n: int) -> tuple[list[Mesh], str]:
    """``n`` ShapeNet objects of different classes when the shared data is there, else
    procedural shapes."""
    try:
        from equivision.data import get_collection, mesh_files
        from equivision.io import load_mesh

        classes = sorted(get_collection("shapenet10").classes)
        meshes = [load_mesh(mesh_files("shapenet10", c)[0]) for c in classes[:n]]
        faces = sum(int(m.faces.shape[0]) for m in meshes) // len(meshes)
        return meshes, f"{n} ShapeNet objects (mean {faces:,} faces)"
    except Exception:  # the data is optional: fall back to generated shapes
        from equivision.data.procedural import FAMILIES, make_shape

        meshes = [make_shape(FAMILIES[i % len(FAMILIES)], i).mesh(48) for i in range(n)]
        return meshes, f"{n} procedural shapes"


def bench_raycast(bandwidths: list[int], n_meshes: int, n_rot: int, repeats: int, out: RowWriter) -> None:
    meshes, what = benchmark_meshes(n_meshes)
    rots = SO3().random(n_rot, seed=0, dtype=torch.float64)
    # the brute-force fallback costs rays × faces: time it once on the first mesh and 4 rotations
    few = rots[:4]
    print(f"\n## Ray casting: {what} × {n_rot} rotations, (meshes × rotations) per second\n")
    print("Embree: median of interleaved repeats; bucketed torch (the default without Embree): one "
          "timed call, every mesh and rotation; brute-force torch: one timed call on the first "
          "mesh × 4 rotations. All float64 geometry.\n")
    print("| B | grid | Embree | bucketed torch | brute-force torch | Embree / bucketed | "
          "bucketed / brute force | max \\|Δ\\| bucketed vs brute force |")
    print("|---|---|---|---|---|---|---|---|")
    for b in bandwidths:
        t0 = time.perf_counter()
        slow = raycast_sphere(meshes[0], b, rotations=few, hits=first_hits_torch)
        brute = len(few) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        mid = [raycast_sphere(m, b, rotations=rots, hits=first_hits_through_point) for m in meshes]
        bucketed = n_meshes * n_rot / (time.perf_counter() - t0)
        diff = float((mid[0][: len(few)] - slow).abs().max())
        case = f"ray casting, B = {b}, {what} × {n_rot} rotations"
        out.add(f"{case}, bucketed torch", bucketed, "meshes×rotations/s", higher_is_better=True,
                anchor="brute-force torch (first mesh × 4 rotations)", anchor_figure=brute,
                max_abs_diff=diff)
        if embree_available():
            cast = lambda b=b: [raycast_sphere(m, b, rotations=rots, hits=first_hits_embree)  # noqa: E731
                                for m in meshes]
            t = interleaved_medians({"embree": cast}, repeats)
            fast = n_meshes * n_rot / t["embree"]
            out.add(f"{case}, Embree", fast, "meshes×rotations/s", higher_is_better=True,
                    anchor="bucketed torch", anchor_figure=bucketed)
            e_cells = f"{fast:.1f} | {bucketed:.2f} | {brute:.3f} | {fast / bucketed:.0f}×"
        else:
            e_cells = f"— | {bucketed:.2f} | {brute:.3f} | —"
        print(f"| {b} | {2 * b}² | {e_cells} | {bucketed / brute:.0f}× | {diff:.1e} |")


class TorchHarmonicsConv(nn.Module):
    """The anchor: torch-harmonics' zonal spectral convolution with ``SphericalConv``'s
    signature, ``(B, C_in, 2b_in, 2b_in) → (B, C_out, 2b_out, 2b_out)``."""

    def __init__(self, conv: SphericalConv) -> None:
        super().__init__()
        th = import_torch_harmonics()
        from torch_harmonics.examples.models._layers import SpectralConvS2

        n_in, n_out, lmax = 2 * conv.bandwidth_in, 2 * conv.bandwidth_out, conv.bandwidth_out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fwd = th.RealSHT(n_in, n_in, lmax=lmax, mmax=lmax, grid="equiangular")
            inv = th.InverseRealSHT(n_out, n_out, lmax=lmax, mmax=lmax, grid="equiangular")
        self.conv = SpectralConvS2(fwd, inv, conv.in_channels, conv.out_channels,
                                   operator_type="driscoll-healy", bias=conv.bias is not None)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)[0]


def with_torch_harmonics_convs(model: nn.Module) -> nn.Module:
    """``model`` with every :class:`SphericalConv` replaced by :class:`TorchHarmonicsConv`."""
    for name, child in model.named_children():
        if isinstance(child, SphericalConv):
            setattr(model, name, TorchHarmonicsConv(child))
        else:
            with_torch_harmonics_convs(child)
    return model


def bench_network(bandwidths: list[int], batch: int, repeats: int, device: torch.device,
                  out: RowWriter) -> None:
    print(f"\n## Spherical CNN forward + backward, batch {batch}, float32, {device.type}: "
          "signals per second\n")
    print("| bandwidth | equivision | torch-harmonics convs | ratio ours/th | parameters ours | "
          "parameters th |")
    print("|---|---|---|---|---|---|")
    for b in bandwidths:
        cfg = SphericalCNNConfig(bandwidths=[b, b // 2, b // 4, b // 8])
        torch.manual_seed(0)
        ours = SphericalCNN(cfg).to(device).train()
        theirs = with_torch_harmonics_convs(SphericalCNN(cfg)).to(device).train()
        x = torch.randn(batch, 2, 2 * b, 2 * b, device=device)
        y = torch.randint(0, 10, (batch,), device=device)

        def step(net: nn.Module, x: Tensor = x, y: Tensor = y) -> None:
            net.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            if device.type == "cuda":
                torch.cuda.synchronize()

        t = interleaved_medians({"ours": lambda o=ours: step(o), "th": lambda o=theirs: step(o)}, repeats)
        print(f"| {b} | {batch / t['ours']:.1f} | {batch / t['th']:.1f} | "
              f"{t['th'] / t['ours']:.2f}× | {count_parameters(ours):,} | {count_parameters(theirs):,} |")
        out.add(f"SphericalCNN forward + backward, B = {b}, batch {batch}", batch / t["ours"], "signals/s",
                higher_is_better=True, anchor="same network, torch-harmonics SpectralConvS2",
                anchor_figure=batch / t["th"],
                parameters={"ours": count_parameters(ours), "th": count_parameters(theirs)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer meshes and repeats, rays at B = 32 only")
    ap.add_argument("--device", default="cpu", help="device of the network benchmark")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_jsonl_option(ap, "spherical_cnn")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    mode = "quick" if args.quick else "full"
    settings = {"repeats": repeats}
    # ray casting always runs on the CPU; only the network follows --device
    rays = RowWriter("spherical_cnn", args.jsonl, dtype="float64 geometry", mode=mode, settings=settings)
    # quick: B = 32 only (the torch fallbacks at B = 64 take minutes on a small CPU)
    bench_raycast([32] if args.quick else [32, 64], 2 if args.quick else 4, 16, repeats, rays)
    net = RowWriter("spherical_cnn", args.jsonl, device=dev, dtype="float32", mode=mode, settings=settings)
    bench_network([32, 64], 16, repeats, dev, net)
    print(f"\n{rays.count + net.count} rows appended to {args.jsonl}")


if __name__ == "__main__":
    main()
