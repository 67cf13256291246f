"""Where a reconstruction loses normal consistency: PEIF's default pipeline beside Open3D's ball
pivoting on the same cloud, on the tangent-plane filter's validation shapes (none of them is
scored by the reconstruction benchmark).

``OMP_NUM_THREADS=1 python benchmarks/recon_normal_diagnosis.py [INDEX ...]`` (default: 0 4, an
ABC training part and a ShapeNet chair; indices into ``recon_plane_filter.validation_shapes()``).

Per shape: a 10k-point cloud (seed 50 + index), 100k samples on the reference and on each mesh.
Prints NC in both directions; the reference→prediction NC of reference samples binned by
their distance to the reference's creases (edges whose faces meet at more than 30°), in voxels
of the resolution-128 grid (in the cloud's units); the angle error on flat parts (4+ voxels
from a crease); and the prediction's samples binned by their distance to the reference, with
their share and NC. A low-NC share far from the reference means misplaced surface; a high
angle error on flat parts means a rough field. Needs open3d (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).parent))
from equivision.geometry import normalize_mesh, sample_surface_uniform
from equivision.io import Mesh, load_mesh
from equivision.models import load
from equivision.pipelines.reconstruct import reconstruct
from recon_plane_filter import validation_shapes, voxel_in_cloud_units
from reconstruction import o3d_ball_pivoting

CREASE_DEGREES = 30.0
CREASE_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, np.inf))
OFFSET_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, np.inf))


def crease_points(mesh: Mesh, degrees: float = CREASE_DEGREES, per_edge: int = 50) -> np.ndarray:
    """``(P, 3)`` points along the edges whose two faces meet at more than ``degrees``
    (unoriented normals; vertices welded by position first)."""
    v, f = mesh.vertices.double().numpy(), mesh.faces.numpy()
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-30
    _, weld = np.unique(np.round(v, 9), axis=0, return_inverse=True)
    weld = weld.ravel()
    edges = np.sort(weld[np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])], 1)
    face = np.tile(np.arange(len(f)), 3)
    key = edges[:, 0] * (len(v) + 1) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    key, edges, face = key[order], edges[order], face[order]
    pair = key[1:] == key[:-1]  # an edge shared by two faces (more: counted pairwise)
    cos = np.abs((n[face[:-1][pair]] * n[face[1:][pair]]).sum(1))
    sharp = edges[:-1][pair][cos < np.cos(np.radians(degrees))]
    welded = np.zeros((weld.max() + 1, 3))
    welded[weld] = v
    t = np.linspace(0.0, 1.0, per_edge)[None, :, None]
    a, b = welded[sharp[:, 0]][:, None], welded[sharp[:, 1]][:, None]
    return (a * (1 - t) + b * t).reshape(-1, 3)


def _binned(values: np.ndarray, key: np.ndarray, bins) -> list[tuple[float, float]]:
    out = []
    for lo, hi in bins:
        m = (key >= lo) & (key < hi)
        out.append((float(m.mean()), float(values[m].mean()) if m.any() else float("nan")))
    return out


def _row(bins, cells: list[str]) -> str:
    return ", ".join(f"[{lo:g}, {hi:g}) {c}" for (lo, hi), c in zip(bins, cells, strict=True))


def diagnose(index: int, net: torch.nn.Module) -> None:
    set_name, f = validation_shapes()[index]
    ref, _, _ = normalize_mesh(load_mesh(f))
    pts, _ = sample_surface_uniform(ref, 10_000, seed=50 + index)
    rec = reconstruct(pts, net, resolution=128)
    voxel = voxel_in_cloud_units(pts, rec.stats.voxel)
    meshes = {"PEIF (default)": rec.mesh, "ball pivoting": o3d_ball_pivoting(pts.numpy())}
    rp, rn = (t.double().numpy() for t in sample_surface_uniform(ref, 100_000,
                                                                  generator=torch.Generator().manual_seed(0)))
    cp = crease_points(ref)
    to_crease = cKDTree(cp).query(rp)[0] / voxel if len(cp) else np.full(len(rp), np.inf)
    shares = _binned(np.zeros(len(rp)), to_crease, CREASE_BINS)
    print(f"\n{set_name} {f.stem}: voxel {voxel:.5f}; reference samples by distance to a crease: "
          + _row(CREASE_BINS, [f"{s:.3f}" for s, _ in shares]))
    for name, mesh in meshes.items():
        pp, pn = (t.double().numpy() for t in sample_surface_uniform(mesh, 100_000,
                                                                      generator=torch.Generator().manual_seed(1)))
        _, j = cKDTree(pp).query(rp)
        c_rp = np.abs((rn * pn[j]).sum(1))
        d, k = cKDTree(rp).query(pp)
        c_pr = np.abs((pn * rn[k]).sum(1))
        flat = np.degrees(np.arccos(np.clip(c_rp[to_crease >= 4], 0, 1)))
        print(f"  {name}: NC {0.5 * (c_rp.mean() + c_pr.mean()):.4f} (ref→pred {c_rp.mean():.4f}, "
              f"pred→ref {c_pr.mean():.4f}); flat-part angle error median {np.median(flat):.2f}°, "
              f"90th pct {np.percentile(flat, 90):.2f}°")
        print("    ref→pred NC by distance to a crease (voxels): "
              + _row(CREASE_BINS, [f"{v:.4f}" for _, v in _binned(c_rp, to_crease, CREASE_BINS)]))
        print("    prediction samples by distance to the reference (voxels), share / NC: "
              + _row(OFFSET_BINS, [f"{s:.3f} / {v:.3f}" for s, v in _binned(c_pr, d / voxel, OFFSET_BINS)]),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("indices", nargs="*", type=int, default=[0, 4])
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load("peif_default", model="peif")
    for i in args.indices:
        diagnose(i, net)


if __name__ == "__main__":
    main()
