"""The shared figures: PNGs of the size asked for, written whole, shapes drawn +y up."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch

from equivision.data.procedural import make_shape
from equivision.figures import (
    frame_cube,
    render_sphere_signal,
    save_cloud_row,
    save_group_maps,
    save_image_row,
    save_mesh_row,
    save_reconstruction_preview,
    save_sphere_maps,
    scatter_cloud,
)
from equivision.figures._mpl import pyplot


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_image_row_and_group_maps_have_the_asked_size(tmp_path):
    g = torch.Generator().manual_seed(0)
    imgs = [(f"view {i}", torch.rand(12, 12, generator=g)) for i in range(3)]
    save_image_row(tmp_path / "row.png", imgs)
    assert _png_size(tmp_path / "row.png") == (round(2.0 * 3 * 110), round(2.4 * 110))
    rows = [(torch.rand(9, 9, generator=g), torch.randn(4, 9, 9, generator=g), "input") for _ in range(2)]
    save_group_maps(tmp_path / "maps.png", rows, ["a", "b", "c", "d"], "title")
    assert _png_size(tmp_path / "maps.png") == (1100, 539)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.png", "row.png"]  # no temporaries left


def test_sphere_figures(tmp_path):
    sig = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))
    render_sphere_signal(sig, tmp_path / "s.png", "signal")
    assert _png_size(tmp_path / "s.png") == (1300, 380)
    save_sphere_maps(tmp_path / "m.png", [("a", sig[0], "viridis"), ("b", sig[1], "coolwarm")], "maps")
    assert _png_size(tmp_path / "m.png") == (round(6.5 * 110), round(3.2 * 110))


def test_shape_figures_replace_what_is_there(tmp_path):
    mesh = make_shape("torus", 0).mesh(16)
    pts = mesh.vertices[:200]
    out = tmp_path / "clouds.png"
    out.write_bytes(b"old")
    save_cloud_row(out, [("a", pts), ("b", -pts)])
    assert _png_size(out) == (550, 308)
    save_mesh_row(tmp_path / "meshes.png", [("torus", mesh)])
    assert _png_size(tmp_path / "meshes.png") == (150, 300)
    save_reconstruction_preview(pts * 10 + 3, mesh, tmp_path / "preview.png", title="t")
    assert _png_size(tmp_path / "preview.png") == (990, 495)


def test_views_put_y_up_in_a_cube_about_the_centre():
    plt = pyplot()
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    pts = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    scatter_cloud(ax, pts, size=1.0)
    frame_cube(ax, (1.0, 2.0, 3.0), 0.5)
    # matplotlib's axes are (x, z, y) of the shape: its vertical axis is the shape's y
    assert ax.get_xlim() == pytest.approx((0.5, 1.5))
    assert ax.get_ylim() == pytest.approx((2.5, 3.5))
    assert ax.get_zlim() == pytest.approx((1.5, 2.5))
    _xs, ys, zs = ax.collections[0]._offsets3d
    assert list(zs) == [2.0, 0.0] and list(ys) == [3.0, 0.0]
    plt.close(fig)
