"""Surface quality of the extraction on exact displacement fields: normals, pieces, holes.

The exact field of a mesh (closest points from :func:`equivision.recon.closest_points_on_mesh`)
is what a perfect network would give; the extraction alone decides how the surface hangs
together there."""

from __future__ import annotations

import pytest
import torch
import trimesh

from equivision.geometry import sample_surface_uniform
from equivision.io import Mesh
from equivision.metrics import evaluate_reconstruction
from equivision.recon import closest_points_on_mesh
from equivision.recon.extract import SurfaceTopology, extract_mesh_udf, surface_topology


def exact_field(mesh: Mesh):
    def disp(q: torch.Tensor) -> torch.Tensor:
        p, _, _ = closest_points_on_mesh(mesh, q.double())
        return p - q.double()

    return disp


def as_mesh(tm: trimesh.Trimesh) -> Mesh:
    return Mesh(torch.as_tensor(tm.vertices, dtype=torch.float64),
                torch.as_tensor(tm.faces, dtype=torch.long))


SHAPES = {
    "sphere": lambda: trimesh.creation.icosphere(5, radius=0.4),
    "box": lambda: trimesh.creation.box((0.8, 0.6, 0.5)),
    "torus": lambda: trimesh.creation.torus(0.3, 0.1, major_sections=96, minor_sections=48),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_exact_field_gives_one_closed_piece_with_true_normals(name):
    ref = as_mesh(SHAPES[name]())
    pts, _ = sample_surface_uniform(ref, 8000, seed=0)
    mesh, _ = extract_mesh_udf(exact_field(ref), pts.double(), resolution=96, fill_gaps=True)
    assert surface_topology(mesh) == SurfaceTopology(1, 0, 0)
    m = evaluate_reconstruction(mesh, ref, n_points=100_000, emd_draws=1, emd_points=64, seed=0)
    assert m.normal_consistency is not None and m.normal_consistency >= 0.99
    assert m.fscore[0.01] >= 0.99


def test_local_pseudo_sign_leaves_holes_in_a_box_that_the_global_sign_closes():
    """Near a box's edges the directions of neighbouring nodes point to different faces: the
    per-tetrahedron test finds crossed-edge patterns no labelling explains, and neighbours
    disagree. The global labels cannot disagree."""
    ref = as_mesh(SHAPES["box"]())
    pts, _ = sample_surface_uniform(ref, 8000, seed=0)
    local, _ = extract_mesh_udf(exact_field(ref), pts.double(), resolution=64, sign="local")
    glob, _ = extract_mesh_udf(exact_field(ref), pts.double(), resolution=64, sign="global")
    assert surface_topology(local).boundary_edges > 100
    assert surface_topology(glob) == SurfaceTopology(1, 0, 0)


def test_an_open_sheet_stays_open_with_the_global_sign():
    """A flat square does not separate space: the labels cannot be consistent around its rim.
    The crossing test keeps the surface from continuing past it; where the spanning forest's
    cut runs near the rim a few faces are lost (2 % of the area here, against none for the
    local pseudo-sign: the price of closing closed surfaces)."""
    half = 0.3
    sq = trimesh.Trimesh([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]],
                         [[0, 1, 2], [0, 2, 3]])
    ref = as_mesh(sq)
    pts, _ = sample_surface_uniform(ref, 6000, seed=0)
    mesh, _ = extract_mesh_udf(exact_field(ref), pts.double(), resolution=64)
    topo = surface_topology(mesh)
    assert topo.boundary_edges > 0 and topo.nonmanifold_edges == 0
    assert float(mesh.vertices[:, 2].abs().max()) < 1e-9
    assert float(mesh.vertices[:, :2].abs().max()) <= half + 1e-9  # nothing past the rim
    pieces = mesh.to_trimesh().split(only_watertight=False)
    largest = max(p.area for p in pieces)
    assert (2 * half) ** 2 * 0.97 < largest <= (2 * half) ** 2 * (1 + 1e-9)
    assert sum(p.area for p in pieces) - largest < 1e-4  # any other piece is a sliver


def test_surface_topology_counts():
    tet = trimesh.creation.box((1, 1, 1))
    assert surface_topology(as_mesh(tet)) == SurfaceTopology(1, 0, 0)
    one = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]))
    assert surface_topology(one) == SurfaceTopology(1, 3, 0)
    # two triangles far apart, and a fin of three triangles on one edge
    two = Mesh(torch.cat([one.vertices, one.vertices + 5]), torch.tensor([[0, 1, 2], [3, 4, 5]]))
    assert surface_topology(two) == SurfaceTopology(2, 6, 0)
    fin = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]]),
               torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4]]))
    assert surface_topology(fin) == SurfaceTopology(1, 6, 1)
    # repeated vertices at the same place count as one (anchors write meshes that way)
    split = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]),
                 torch.tensor([[0, 1, 2], [3, 5, 4]]))
    assert surface_topology(split) == SurfaceTopology(1, 4, 0)
