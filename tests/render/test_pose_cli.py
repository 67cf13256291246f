"""``equivision pose``: JSON fields of the three modes, render → pose round trip through the
lossless image file, and one line with exit 2 for every bad input or output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import equivision.models as models
from equivision.cli import main
from equivision.configio import to_dict
from equivision.io.meshes import Mesh, save_mesh
from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig
from equivision.models.weights import save_tensors
from equivision.pipelines.pose import compute_templates, save_templates
from equivision.tasks.views import ViewConfig, build_view_dataset, sources_from_meshes

TEACHER = "shapes_sphere_modelnet10"
THREE = ["shading", "silhouette", "depth"]


def _mesh() -> Mesh:
    import trimesh

    parts = [trimesh.creation.box((1.0, 0.6, 0.4)),
             trimesh.creation.icosphere(2, 0.25).apply_translation((0.65, 0.1, 0.0)),
             trimesh.creation.cylinder(0.08, 0.8, 12).apply_translation((-0.3, 0.0, 0.55))]
    m = trimesh.util.concatenate(parts)
    return Mesh(torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long))


def _package(folder: Path, name: str, cfg: ImageToSphereConfig, task: dict) -> None:
    torch.manual_seed(0)
    net = ImageToSphere(cfg)
    save_tensors(net.state_dict(), folder / f"{name}.safetensors")
    meta = {"format": models.PRETRAINED_FORMAT, "model": {"name": "image_to_sphere", "config": to_dict(cfg)},
            "config": {"task": task}}
    (folder / f"{name}.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pose")
    mesh = _mesh()
    save_mesh(mesh, root / "thing.ply")
    views = root / "views"
    build_view_dataset(views, sources_from_meshes([("thing/a", 0, mesh)]), TEACHER,
                       ViewConfig(views=1, bandwidth=32, layer="stage1"), show_progress=False)
    pre = root / "pretrained"
    pre.mkdir()
    for ext in ("json", "safetensors"):
        (pre / f"{TEACHER}.{ext}").symlink_to(models.PRETRAINED_DIR / f"{TEACHER}.{ext}")
    small = {"image_size": 64, "bandwidth": 16, "out_channels": 32, "width": 8, "max_width": 32,
             "code_dim": 64}
    _package(pre, "tiny3", ImageToSphereConfig(in_channels=3, **small),
             {"train_views": str(views), "channels": THREE})
    _package(pre, "tiny1", ImageToSphereConfig(in_channels=1, **small),
             {"train_views": str(views), "channels": ["shading"]})
    _package(pre, "tiny_b8", ImageToSphereConfig(in_channels=1, **{**small, "bandwidth": 8}),
             {"train_views": str(views), "channels": ["shading"]})
    save_templates(pre / "tiny3.templates.safetensors", compute_templates(views),
                   {"name": TEACHER, "layer": "stage1"})
    return {"root": root, "pre": pre, "mesh": root / "thing.ply", "views": views}


@pytest.fixture
def run(env, monkeypatch, capsys):
    monkeypatch.setattr(models, "PRETRAINED_DIR", env["pre"])

    def go(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["pose", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return go


def _render(run, env, out: Path, rotation: str = "identity") -> Path:
    code = main(["render", str(env["mesh"]), "--out", str(out.with_suffix(".grid.png")),
                 "--rotation", rotation, "--tensors", str(out)])
    assert code == 0
    return out


def _one_error(code: int, err: str, match: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert match in lines[0], lines[0]


def test_relative_pose_json_fields_and_render_round_trip(run, env, tmp_path) -> None:
    a = _render(run, env, tmp_path / "a.safetensors")
    b = _render(run, env, tmp_path / "b.safetensors", "axis-angle 0,0,1 90")
    code, out, err = run(a, b, "--model", "tiny3", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["mode"] == "relative" and d["notes"] == []
    r = np.array(d["matrix"])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
    assert len(d["quaternion_xyzw"]) == 4 and len(d["axis"]) == 3 and len(d["euler_zyz_deg"]) == 3
    assert 0 <= d["confidence"] <= 1 and isinstance(d["symmetric"], bool)
    # the second peak, described like the answer, at the angle reported from the answer
    r2 = np.array(d["second"]["matrix"])
    np.testing.assert_allclose(r2 @ r2.T, np.eye(3), atol=1e-5)
    cos = np.clip((np.trace(r.T @ r2) - 1) / 2, -1, 1)
    assert abs(np.degrees(np.arccos(cos)) - d["second_angle_deg"]) < 0.05
    assert d["second"]["score"] <= d["score"] + 1e-9 * abs(d["score"])
    from safetensors import safe_open

    with safe_open(str(b), framework="pt") as f:  # the pose is recorded bit for bit
        rot = np.array([float(v) for v in f.metadata()["rotation"].split(",")]).reshape(3, 3)
    np.testing.assert_allclose(rot, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_mesh_and_category_modes_with_figures(run, env, tmp_path) -> None:
    a = _render(run, env, tmp_path / "a.safetensors", "euler-zyz 10,40,-20")
    fig, ren = tmp_path / "fig.png", tmp_path / "ren.png"
    code, out, err = run(a, "--mesh", env["mesh"], "--model", "tiny3", "--json", "--figure", fig,
                         "--render", ren)
    assert code == 0, err
    assert json.loads(out)["mode"] == "mesh" and fig.stat().st_size > 0 and ren.stat().st_size > 0
    code, out, err = run(a, "--category", "thing", "--model", "tiny3")
    assert code == 0, err
    assert "quaternion" in out and "Euler ZYZ" in out and "confidence" in out
    code, _, err = run(a, "--category", "chair", "--model", "tiny3")
    _one_error(code, err, "no template for category 'chair'")


def test_png_flavours_for_a_one_channel_network(run, env, tmp_path) -> None:
    g = np.zeros((64, 64), np.float64)
    g[20:44, 16:40] = np.linspace(0.2, 1, 24)[None]
    Image.fromarray((g * 255).astype(np.uint8)).save(tmp_path / "g8.png")
    Image.fromarray((g * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = (g * 255).astype(np.uint8)[..., None]
    rgba[..., 3] = (g > 0) * 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((g[::2, ::2] * 255).astype(np.uint8)).save(tmp_path / "small.png")
    for a, b in (("g8", "g16"), ("rgba", "small")):
        code, out, err = run(tmp_path / f"{a}.png", tmp_path / f"{b}.png", "--model", "tiny1", "--json")
        assert code == 0, err
        notes = json.loads(out)["notes"]
        assert (notes == ["small.png: resized from 32×32 to 64×64"]) == (b == "small")
    # the 3-channel network needs depth, which a grey PNG does not hold: refused, not invented
    code, _, err = run(tmp_path / "g8.png", tmp_path / "g16.png", "--model", "tiny3")
    _one_error(code, err, "depth cannot be derived")


def test_bad_inputs_exit_2_with_one_line(run, env, tmp_path) -> None:
    a = _render(run, env, tmp_path / "a.safetensors")
    (tmp_path / "text.png").write_text("hello")
    Image.new("L", (64, 64), 0).save(tmp_path / "black.png")
    noise = np.random.default_rng(0).random((64, 48))
    Image.fromarray((noise * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    from safetensors.torch import save_file

    save_file({"image": torch.zeros(1, 0, 0)}, str(tmp_path / "empty.safetensors"),
              metadata={"channels": "shading"})
    cases = [
        ((tmp_path / "text.png", a), "not a readable image"),
        ((tmp_path / "none.png", a), "no such file"),
        ((tmp_path / "black.png", a), "constant"),
        ((tmp_path / "empty.safetensors", a), "empty"),
        ((tmp_path / "wide.png", tmp_path / "wide.png", "--model", "tiny1"), "square"),
        ((a, a, "--model", "tiny_b8"), "bandwidth 8"),
        ((a, a, "--model", "tiny3", "--teacher", TEACHER, "--layer", "stage2"), "64 channels at bandwidth 8"),
        ((a, a, "--model", "tiny3", "--teacher", TEACHER), "needs --layer"),
        ((a, a, "--model", "image_to_sphere_modelnet10"), "image_to_sphere_modelnet10"),
        ((a, a, "--model", "tiny3", "--mesh", env["mesh"]), "exactly one of"),
        ((a, "--model", "tiny3"), "exactly one of"),
        ((a, a, "--model", "tiny3", "--render", tmp_path / "r.png"), "needs --mesh"),
        ((a, a, "--model", "tiny3", "--figure", a), "input"),
        ((a, a, "--model", "tiny3", "--figure", tmp_path / "f.jpg"), ".png"),
        ((a, a, "--model", "tiny1", "--category", "thing"), "exactly one of"),
    ]
    for args, match in cases:
        code, _, err = run(*args)
        _one_error(code, err, match)
    code, _, err = run(a, "--category", "thing", "--model", "tiny1")
    _one_error(code, err, "no category templates")
    # templates given by file work for another network of the same maps; a missing file does not
    code, out, err = run(a, "--category", "thing", "--model", "tiny1", "--templates",
                         env["pre"] / "tiny3.templates.safetensors", "--json")
    assert code == 0 and json.loads(out)["mode"] == "category", err
    code, _, err = run(a, "--category", "thing", "--model", "tiny1", "--templates", tmp_path / "no.st")
    _one_error(code, err, "does not exist")


def test_outputs_are_checked_first_and_kept_without_overwrite(run, env, tmp_path) -> None:
    a = _render(run, env, tmp_path / "a.safetensors")
    fig = tmp_path / "fig.png"
    fig.write_bytes(b"mine")
    code, _, err = run(a, a, "--model", "tiny3", "--figure", fig)
    _one_error(code, err, "exists")
    assert fig.read_bytes() == b"mine"
    # a bad image fails after the outputs were checked, and writes nothing
    fresh = tmp_path / "fresh.png"
    code, _, err = run(tmp_path / "missing.png", a, "--model", "tiny3", "--figure", fresh)
    assert code == 2 and not fresh.exists()
    code, _, err = run(a, a, "--model", "tiny3", "--figure", fig, "--overwrite")
    assert code == 0, err
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_folder_model_with_templates_made_beside_it(run, env, tmp_path) -> None:
    from equivision.training import get_task, train

    code, _, err = run("--make-templates", env["views"], "--model", "tiny3")
    _one_error(code, err, "is not one")  # a packaged name: the package is not written to
    small = {"in_channels": 3, "image_size": 64, "bandwidth": 16, "out_channels": 32, "width": 8,
             "max_width": 32, "code_dim": 64}
    cfg = {"train": {"steps": 1, "batch_size": 1, "eval_every": 1, "log_every": 1, "checkpoint_every": 1,
                     "seed": 0, "device": "cpu", "warmup_steps": 0},
           "task": {"train_views": str(env["views"]), "eval_views": str(env["views"]), "model": small}}
    train(get_task("image-to-sphere"), cfg, tmp_path / "run", console=None)
    a = _render(run, env, tmp_path / "a.safetensors")
    code, _, err = run(a, "--category", "thing", "--model", tmp_path / "run")
    _one_error(code, err, "no category templates")
    code, out, err = run("--make-templates", env["views"], "--model", tmp_path / "run")
    assert code == 0 and (tmp_path / "run" / "templates.safetensors").is_file(), err
    code, _, err = run("--make-templates", env["views"], "--model", tmp_path / "run")
    _one_error(code, err, "exists")
    code, out, err = run(a, "--category", "thing", "--model", tmp_path / "run", "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "category"


def test_mesh_of_another_scale_gives_the_same_pose_and_bad_meshes_are_refused(run, env, tmp_path) -> None:
    a = _render(run, env, tmp_path / "a.safetensors", "axis-angle 1,1,0 50")
    m = _mesh()
    save_mesh(Mesh(m.vertices.double() * 300 + torch.tensor([5e3, 0, -2e3], dtype=torch.float64), m.faces),
              tmp_path / "big.ply")
    answers = []
    for mesh in (env["mesh"], tmp_path / "big.ply"):
        code, out, err = run(a, "--mesh", mesh, "--model", "tiny3", "--json")
        assert code == 0, err
        answers.append(np.array(json.loads(out)["matrix"]))
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-2)
    flat = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], np.float64)
    save_mesh(Mesh(torch.tensor(flat), torch.tensor([[0, 1, 2], [1, 2, 3]])), tmp_path / "line.ply")
    code, _, err = run(a, "--mesh", tmp_path / "line.ply", "--model", "tiny3")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    code, _, err = run(a, "--mesh", tmp_path / "none.ply", "--model", "tiny3")
    _one_error(code, err, "none.ply")
