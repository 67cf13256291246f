"""`equivision reconstruct` with the packaged default, and its one-line errors."""

from __future__ import annotations

import pytest
import torch

from equivision.cli import main
from equivision.data.procedural import make_shape
from equivision.geometry import sample_surface_uniform
from equivision.io import load_mesh, save_point_cloud
from equivision.models import list_pretrained


@pytest.fixture(scope="module")
def cloud_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cloud")
    pts, _ = sample_surface_uniform(make_shape("torus", 2).mesh(48), 3000, seed=0)
    return save_point_cloud(pts * 7.0 + 3.0, d / "torus.ply")  # any scale and position


@pytest.mark.skipif("peif_default" not in list_pretrained(), reason="no packaged PEIF default")
def test_reconstructs_with_the_packaged_default(cloud_file, tmp_path, capsys):
    out, prev = tmp_path / "torus_mesh.ply", tmp_path / "torus.png"
    code = main(["reconstruct", str(cloud_file), "-o", str(out), "-r", "48", "--preview", str(prev)])
    assert code == 0, capsys.readouterr().err
    mesh = load_mesh(out)
    # the mesh lies where the cloud is: in its coordinates, not the unit box's
    assert torch.allclose(mesh.vertices.mean(0), torch.full((3,), 3.0), atol=0.5)
    assert prev.read_bytes()[:4] == b"\x89PNG"
    assert "faces" in capsys.readouterr().out
    # --precision float32 forces the float32 network whatever the CPU
    out32 = tmp_path / "torus_f32.ply"
    code = main(["reconstruct", str(cloud_file), "-o", str(out32), "-r", "32", "--precision", "float32"])
    assert code == 0, capsys.readouterr().err
    assert "network in float32" in capsys.readouterr().out.replace("\n", " ")
    # --fill-holes reports what it closed
    outf = tmp_path / "torus_fill.ply"
    code = main(["reconstruct", str(cloud_file), "-o", str(outf), "-r", "32", "--fill-holes", "16"])
    assert code == 0, capsys.readouterr().err
    assert "holes closed" in capsys.readouterr().out.replace("\n", " ")


def test_errors_are_one_line_exit_2(cloud_file, tmp_path, capsys):
    existing = tmp_path / "exists.ply"
    existing.write_text("x")
    cases = [
        (["reconstruct", str(tmp_path / "nope.ply"), "-o", str(tmp_path / "a.ply")], "does not exist"),
        (["reconstruct", str(cloud_file), "-o", str(existing)], "already exists"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "b.ply"), "--model", "toy"], "peif"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "c.ply"), "--model", "nothing"], "nothing"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "e.ply"), "--precision", "half"],
         "--precision"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "f.ply"), "--min-piece-fraction", "1.5"],
         "--min-piece-fraction"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "g.ply"), "--plane-filter", "-1"],
         "--plane-filter"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "h.ply"), "--plane-filter", "nan"],
         "--plane-filter"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "i.ply"), "--plane-filter-neighbours", "0"],
         "--plane-filter-neighbours"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "j.ply"), "--fill-holes", "2"],
         "--fill-holes"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "k.ply"), "--fill-holes", "-3"],
         "--fill-holes"),
        (["reconstruct", str(cloud_file), "-o", str(tmp_path / "l.ply"), "--fairing", "-1"], "--fairing"),
    ]
    if not torch.cuda.is_available():
        cases.append(
            (["reconstruct", str(cloud_file), "-o", str(tmp_path / "d.ply"), "--device", "cuda"], "CUDA")
        )
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
