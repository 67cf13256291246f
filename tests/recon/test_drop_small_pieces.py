"""Dropping small pieces of an extracted mesh: whole pieces under the face fraction go, nothing
moves, shared-coordinate vertices join pieces as in surface_topology, bad fractions refused."""

from __future__ import annotations

import pytest
import torch
import trimesh

from equivision.errors import InvalidInputError
from equivision.io import Mesh
from equivision.recon.extract import drop_small_pieces, surface_topology


def _two_pieces() -> tuple[Mesh, Mesh, Mesh]:
    big = Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=3))  # 1,280 faces
    tiny = Mesh(torch.tensor([[3.0, 0, 0], [3.1, 0, 0], [3.0, 0.1, 0]]), torch.tensor([[0, 1, 2]]))
    both = Mesh(torch.cat([tiny.vertices, big.vertices]),
                torch.cat([tiny.faces, big.faces + len(tiny.vertices)]))
    return big, tiny, both


def test_small_pieces_go_and_the_rest_is_unchanged() -> None:
    big, _, both = _two_pieces()
    assert surface_topology(both).pieces == 2
    out = drop_small_pieces(both, 0.01)
    assert surface_topology(out).pieces == 1
    assert torch.equal(out.vertices, big.vertices) and torch.equal(out.faces, big.faces)
    assert drop_small_pieces(both, 0.0) is both  # off
    assert len(drop_small_pieces(both, 1e-4).faces) == len(both.faces)  # 1 face of 1,281 is kept


def test_pieces_touching_through_duplicated_vertices_count_as_one() -> None:
    # the tiny triangle shares an edge with the big piece only through copies of its vertices
    big, _, _ = _two_pieces()
    a, b = big.faces[0, 0], big.faces[0, 1]
    apex = (big.vertices[a] + big.vertices[b]) / 2 * 1.2
    tri = torch.stack([big.vertices[a], big.vertices[b], apex])
    extra = torch.tensor([[0, 1, 2]]) + len(big.vertices)
    m = Mesh(torch.cat([big.vertices, tri]), torch.cat([big.faces, extra]))
    assert surface_topology(m).pieces == 1
    assert len(drop_small_pieces(m, 0.01).faces) == len(m.faces)


def test_bad_fraction_is_refused_and_an_empty_mesh_passes() -> None:
    _, _, both = _two_pieces()
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(InvalidInputError, match="min_fraction"):
            drop_small_pieces(both, bad)
    empty = Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
    assert drop_small_pieces(empty, 0.1) is empty


def test_reconstruct_drops_small_pieces_by_default_for_peif_and_never_moves_a_vertex() -> None:
    from equivision.data.procedural import make_shape
    from equivision.geometry import sample_surface_uniform
    from equivision.models import list_pretrained, load
    from equivision.pipelines.reconstruct import PEIF_MIN_PIECE_FRACTION, reconstruct

    if "peif_default" not in list_pretrained():
        pytest.skip("no packaged PEIF default")
    net = load("peif_default", model="peif")
    pts, _ = sample_surface_uniform(make_shape("torus", 2).mesh(48), 3000, seed=0)
    kept = reconstruct(pts, net, resolution=48, min_piece_fraction=0.0, compute_dtype=torch.float32).mesh
    default = reconstruct(pts, net, resolution=48, compute_dtype=torch.float32).mesh
    want = drop_small_pieces(kept, PEIF_MIN_PIECE_FRACTION)
    assert torch.equal(default.vertices, want.vertices) and torch.equal(default.faces, want.faces)
    assert surface_topology(default).pieces <= surface_topology(kept).pieces
    with pytest.raises(InvalidInputError, match="min_piece_fraction"):
        reconstruct(pts, net, resolution=48, min_piece_fraction=-1.0)
