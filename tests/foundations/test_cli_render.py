"""``equivision render``: the PNG grid and the array it writes, poses from the command line,
bad input as one ``error:`` line, and a fast ``import equivision.cli``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from equivision.cli import main
from equivision.groups import SO3, parse_rotation
from equivision.io import load_mesh
from equivision.render import render_views


@pytest.fixture()
def mesh_file(tmp_path: Path) -> Path:
    p = tmp_path / "bump.ply"
    cube = trimesh.creation.box(extents=(1, 1, 1))
    bump = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    bump.apply_translation((0.6, 0, 0))
    trimesh.util.concatenate([cube, bump]).export(p)
    return p


def _run(argv: list[str], capfd) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def test_one_view_png_and_array(tmp_path, mesh_file, capfd) -> None:
    png, arr = tmp_path / "v.png", tmp_path / "v.npy"
    code, out, err = _run(["render", str(mesh_file), "-o", str(png), "--array", str(arr), "--size", "32",
                           "--rotation", "axis-angle 0,0,1 30"], capfd)
    assert code == 0, err
    assert "rendered 1 view" in out
    images = np.load(arr)
    m = load_mesh(mesh_file, dtype=torch.float64)
    want = render_views(m, parse_rotation("axis-angle 0,0,1 30")[None], size=32)
    np.testing.assert_array_equal(images, want.numpy())
    pic = np.asarray(Image.open(png))
    assert pic.shape == (32, 3 * 32 + 2 * 2)  # three channels side by side, 2-pixel gaps
    np.testing.assert_array_equal(pic[:, :32], np.round(images[0, 0] * 255).astype(np.uint8))


def test_random_views_grid_is_seeded(tmp_path, mesh_file, capfd) -> None:
    args = ["--random", "10", "--seed", "3", "--size", "16", "--channels", "silhouette"]
    for name in ("a", "b"):
        code, _, err = _run(["render", str(mesh_file), "-o", str(tmp_path / f"{name}.png"),
                             "--array", str(tmp_path / f"{name}.npy"), *args], capfd)
        assert code == 0, err
    a = np.load(tmp_path / "a.npy")
    assert a.shape == (10, 1, 16, 16)
    np.testing.assert_array_equal(a, np.load(tmp_path / "b.npy"))
    m = load_mesh(mesh_file, dtype=torch.float64)
    want = render_views(m, SO3().random(10, seed=3, dtype=torch.float64), size=16, channels=["silhouette"])
    np.testing.assert_array_equal(a, want.numpy())
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (2 * 16 + 2, 8 * 16 + 7 * 2)  # rows of 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rotation", "spin 90"], "accepted forms"),
        (["--rotation", "matrix 1,0,0,0,1,0,0,0,3"], "not orthogonal"),
        (["--rotation", "identity", "--random", "2"], "not both"),
        (["--random", "0"], "--random"),
        (["--size", "0"], "--size"),
        (["--size", "100000"], "--size"),
        (["--channels", "shading,colour"], "--channels"),
        (["--array", "x.png"], "--array"),
    ],
)
def test_bad_options_are_one_error_line(tmp_path, mesh_file, capfd, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["render", str(mesh_file), "-o", str(tmp_path / "v.png"), *args], capfd)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not (tmp_path / "v.png").exists()


def test_import_of_the_cli_stays_light() -> None:
    code = "import sys, equivision.cli; print('torch' in sys.modules, 'equivision.render' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
