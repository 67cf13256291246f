"""The reconstruction pipeline: scale handling, cleaning, bad clouds, preview."""

from __future__ import annotations

import pytest
import torch

from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.figures import save_reconstruction_preview as save_preview
from equivision.models.peif import PEIFConfig, PEIFNet
from equivision.pipelines.reconstruct import reconstruct, reconstruct_with_field


def sphere_cloud(n: int, radius: float, center, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)
    return d * radius + torch.tensor(center, dtype=torch.float64)


def unit_sphere_field(unit_cloud: torch.Tensor):
    """Exact field of the sphere through the normalised cloud (centre and radius by an
    algebraic least-squares fit, exact for points on a sphere)."""
    x = unit_cloud.double()
    a = torch.cat([2 * x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    sol = torch.linalg.lstsq(a, (x * x).sum(1, keepdim=True)).solution[:, 0]
    c = sol[:3].to(unit_cloud.dtype)
    r = float((sol[3] + sol[:3].pow(2).sum()).sqrt())

    def disp(q):
        v = q - c
        n = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (r - n) * v / n

    return disp


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_any_scale_and_position_maps_back(scale):
    center = (5.0 * scale, -2.0 * scale, 1.0 * scale)
    pts = sphere_cloud(3000, 0.5 * scale, center)
    rec = reconstruct_with_field(pts, unit_sphere_field, resolution=40)
    v = rec.mesh.vertices.double()
    radii = (v - torch.tensor(center, dtype=torch.float64)).norm(dim=-1)
    assert float((radii / (0.5 * scale) - 1).abs().max()) < 2e-3
    assert rec.mesh.to_trimesh().is_watertight


def test_duplicates_are_removed_and_bad_clouds_refused():
    pts = sphere_cloud(2000, 1.0, (0, 0, 0))
    rec = reconstruct_with_field(torch.cat([pts, pts[:500]]), unit_sphere_field, resolution=24)
    assert rec.n_points_used == 2000
    with pytest.raises(DegenerateGeometryError, match="line"):
        reconstruct_with_field(
            torch.linspace(0, 1, 100)[:, None] * torch.tensor([[1.0, 2.0, 3.0]]), unit_sphere_field
        )
    with pytest.raises(DegenerateGeometryError, match="distinct"):
        reconstruct_with_field(pts[:1].repeat(50, 1), unit_sphere_field, min_points=32)
    bad = pts.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        reconstruct_with_field(bad, unit_sphere_field)
    with pytest.raises(InvalidInputError):
        reconstruct_with_field(pts[:, :2], unit_sphere_field)


def test_model_pipeline_runs_and_refuses_tiny_clouds(tmp_path):
    torch.manual_seed(0)
    net = PEIFNet(
        PEIFConfig(k=8, feature_dim=8, top_k=2, memory_heads=1, memory_items=4, mlp_a=[16], mlp_d=[16])
    )
    pts = sphere_cloud(400, 1.0, (0, 0, 0)).float()
    with pytest.raises(DegenerateGeometryError, match="at least 8"):
        reconstruct(pts[:5], net, resolution=16)
    # an untrained network still gives a mesh (seeded), in the cloud's own coordinates
    rec = reconstruct(pts, net, resolution=16)
    assert len(rec.mesh.faces) > 0 and rec.n_points_used == 400
    # the grid is aligned with the cloud's frame: in that frame, the mesh lies in the cloud's box
    fr = rec.grid_frame
    local, v_local = ((x.double() - fr.centroids) @ fr.rotations for x in (pts, rec.mesh.vertices))
    lo, hi = local.amin(0), local.amax(0)
    margin = 0.1 * float((hi - lo).max())
    assert bool((v_local >= lo - margin).all() and (v_local <= hi + margin).all())
    save_preview(pts, rec.mesh, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_preview_of_exact_reconstruction(tmp_path):
    pts = sphere_cloud(2000, 1.0, (0, 0, 0))
    rec = reconstruct_with_field(pts, unit_sphere_field, resolution=24)
    save_preview(pts, rec.mesh, tmp_path / "preview.png", title="sphere")
    assert (tmp_path / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_each_field_model_gets_its_own_post_steps_by_default(monkeypatch):
    """PEIF gets the measured defaults of every step after extraction, the VN global field none of
    them (it completes surface away from the points); explicit values pass through unchanged."""
    from _recon_fields import tiny_peif, tiny_vn_global_field

    import equivision.pipelines.reconstruct as pipeline

    seen: dict = {}
    monkeypatch.setattr(pipeline, "reconstruct_with_field", lambda *a, **kw: seen.update(kw))
    pts = torch.randn(300, 3)
    steps = ("min_piece_fraction", "plane_filter", "fill_holes", "fairing")
    pipeline.reconstruct(pts, tiny_peif(), resolution=16)
    peif_defaults = [pipeline.PEIF_MIN_PIECE_FRACTION, pipeline.PEIF_PLANE_FILTER, pipeline.PEIF_FILL_HOLES,
                     pipeline.PEIF_FAIRING]
    assert [seen[k] for k in steps] == peif_defaults == [1e-3, 0.5, 32, 10]
    assert (seen["plane_filter_neighbours"], seen["fill_gap"], seen["fairing_max_move"]) == (3, 0.5, 0.1)
    pipeline.reconstruct(pts, tiny_vn_global_field(), resolution=16)
    assert [seen[k] for k in steps] == [0, 0, 0, 0]
    pipeline.reconstruct(pts, tiny_peif(), resolution=16, min_piece_fraction=0.0, plane_filter=0.0,
                         fill_holes=0, fairing=0)
    assert [seen[k] for k in steps] == [0, 0, 0, 0]
