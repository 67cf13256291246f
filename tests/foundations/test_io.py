"""Mesh, point-cloud and MNIST I/O: round trips and every bad input."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from equivision.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    DegenerateGeometryError,
    EquivisionError,
    InvalidInputError,
    OutputExistsError,
    ShapeError,
    UnsupportedFormatError,
)
from equivision.io import (
    Mesh,
    atomic_path,
    load_mesh,
    load_mnist,
    load_point_cloud,
    read_idx,
    save_mesh,
    save_point_cloud,
)


def _tetra() -> Mesh:
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return Mesh(v, f)


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off", ".stl", ".glb"])
def test_mesh_round_trip_every_format(tmp_path, ext):
    m = _tetra()
    p = save_mesh(m, tmp_path / f"t{ext}")
    back = load_mesh(p)
    assert back.faces.shape == (4, 3) and back.vertices.dtype == torch.float32
    # formats may re-index vertices: compare the sets of triangles as coordinates
    tri = lambda mm: sorted(tuple(sorted(map(tuple, mm.vertices[f].tolist()))) for f in mm.faces)  # noqa: E731
    assert tri(back) == tri(m)


def test_shared_meshes_round_trip(tmp_path, data_root):
    for path in (
        sorted((data_root / "classic").glob("*.ply"))[:5] + sorted((data_root / "abc").glob("*.ply"))[:2]
    ):
        m = load_mesh(path)
        assert m.vertices.ndim == 2 and m.faces.shape[1] == 3 and len(m.faces) > 0
        out = save_mesh(m, tmp_path / (path.stem + ".ply"))
        back = load_mesh(out)
        assert torch.equal(back.vertices, m.vertices) and torch.equal(back.faces, m.faces)


def test_shapenet_class_folders_load(data_root):
    from equivision.data import mesh_files

    files = mesh_files("shapenet10", "chair")
    assert len(files) >= 5
    m = load_mesh(files[0])
    assert len(m.faces) > 0


@pytest.mark.parametrize("ext", [".ply", ".xyz", ".npy"])
def test_point_cloud_round_trip(tmp_path, ext):
    pts = torch.randn(50, 3)
    nrm = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
    p = save_point_cloud(pts, tmp_path / f"c{ext}", normals=nrm)
    back, back_n = load_point_cloud(p)
    assert torch.allclose(back, pts, atol=1e-6) and torch.allclose(back_n, nrm, atol=1e-6)
    p2 = save_point_cloud(pts, tmp_path / f"d{ext}")
    assert load_point_cloud(p2)[1] is None


def test_ascii_ply_and_mesh_ply_as_cloud(tmp_path):
    p = tmp_path / "a.ply"
    p.write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
        "property float z\nelement face 0\nproperty list uchar int vertex_indices\n"
        "end_header\n1 2 3\n4 5 6\n"
    )
    pts, nrm = load_point_cloud(p)
    assert pts.tolist() == [[1, 2, 3], [4, 5, 6]] and nrm is None
    save_mesh(_tetra(), tmp_path / "m.ply")
    assert load_point_cloud(tmp_path / "m.ply")[0].shape == (4, 3)


def test_missing_unreadable_and_unsupported_files(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        load_mesh(tmp_path / "nope.ply")
    with pytest.raises(DataFileNotFoundError):
        load_point_cloud(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError):
        load_mesh(tmp_path / "x.txt")
    with pytest.raises(UnsupportedFormatError):
        save_point_cloud(torch.randn(3, 3), tmp_path / "x.las")


def test_corrupt_files(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(os.urandom(300))
    with pytest.raises(EquivisionError):
        load_mesh(bad)
    with pytest.raises(CorruptFileError):
        load_point_cloud(bad)
    # truncated binary PLY
    save_point_cloud(torch.randn(100, 3), tmp_path / "t.ply")
    raw = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(raw[: len(raw) - 50])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_point_cloud(tmp_path / "t.ply")
    (tmp_path / "b.xyz").write_text("1 2\n3 4\n")
    with pytest.raises(CorruptFileError):
        load_point_cloud(tmp_path / "b.xyz")
    (tmp_path / "b.npy").write_bytes(b"not numpy")
    with pytest.raises(CorruptFileError):
        load_point_cloud(tmp_path / "b.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(CorruptFileError):  # never unpickled
        load_point_cloud(tmp_path / "o.npy")


def test_empty_no_faces_and_nan(tmp_path):
    (tmp_path / "e.xyz").write_text("")
    with pytest.raises(DegenerateGeometryError):
        load_point_cloud(tmp_path / "e.xyz")
    save_point_cloud(torch.randn(10, 3), tmp_path / "cloud.ply")
    with pytest.raises(DegenerateGeometryError, match="no faces"):
        load_mesh(tmp_path / "cloud.ply")
    (tmp_path / "n.xyz").write_text("0 0 0\nnan 1 2\n")
    with pytest.raises(InvalidInputError, match="NaN"):
        load_point_cloud(tmp_path / "n.xyz")
    with pytest.raises(InvalidInputError):
        save_mesh(
            Mesh(torch.tensor([[0.0, 0, float("inf")]] * 3), torch.tensor([[0, 1, 2]])), tmp_path / "x.ply"
        )
    with pytest.raises(DegenerateGeometryError):
        save_mesh(Mesh(torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.long)), tmp_path / "y.ply")
    with pytest.raises(ShapeError):
        save_point_cloud(torch.randn(10, 2), tmp_path / "z.ply")
    with pytest.raises(InvalidInputError):
        save_point_cloud(torch.ones(10, 3, dtype=torch.long), tmp_path / "z.ply")
    with pytest.raises(InvalidInputError):
        save_mesh(Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 5]])), tmp_path / "w.ply")


def test_writers_refuse_to_overwrite_and_leave_no_partial_files(tmp_path):
    p = save_point_cloud(torch.randn(5, 3), tmp_path / "c.ply")
    before = p.read_bytes()
    with pytest.raises(OutputExistsError):
        save_point_cloud(torch.randn(5, 3), p)
    assert p.read_bytes() == before
    save_point_cloud(torch.randn(5, 3), p, overwrite=True)
    assert p.read_bytes() != before
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "half.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer crashed")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.ply"]
    with pytest.raises(DataFileNotFoundError):
        save_point_cloud(torch.randn(5, 3), tmp_path / "no" / "dir.ply")


def test_mnist_real_file(data_root):
    d = data_root / "mnist"
    assert (
        hashlib.md5((d / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
        == "9fb629c4189551a2d022fa330f9573f3"
    )
    images, labels = load_mnist(d)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).min() > 800


def test_idx_errors(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        read_idx(tmp_path / "none")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(CorruptFileError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(CorruptFileError, match="expected 5"):
        read_idx(tmp_path / "short")
    (tmp_path / "ok").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03abc")
    assert read_idx(tmp_path / "ok").tolist() == [97, 98, 99]
    with pytest.raises(DataFileNotFoundError):
        load_mnist(tmp_path)


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    p = save_point_cloud(torch.randn(5, 3), tmp_path / "perm.npy")
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)
