"""The packaged image network ``image_to_sphere_modelnet10``: it loads with its templates and
teacher, and recovers the pose of a ModelNet10 test chair it never saw from one rendered view."""

from __future__ import annotations

import json

import pytest
import torch

from equivision.cli import main
from equivision.data.registry import find_data_root
from equivision.groups.parse import parse_rotation
from equivision.metrics.rotations import rotation_errors
from equivision.models import list_pretrained
from equivision.pipelines.pose import DEFAULT_POSE_MODEL, PoseEstimator

_ROOT = find_data_root()
CHAIR = None if _ROOT is None else _ROOT / "modelnet10" / "test" / "chair" / "chair_0891.ply"
needs_chair = pytest.mark.skipif(CHAIR is None or not CHAIR.is_file(),
                                 reason="the shared ModelNet10 data is not on this machine")


def test_the_default_is_packaged_with_templates_and_its_teacher() -> None:
    assert DEFAULT_POSE_MODEL in list_pretrained()
    est = PoseEstimator.load(DEFAULT_POSE_MODEL)
    assert sorted(est.templates) == sorted(["bathtub", "bed", "chair", "desk", "dresser", "monitor",
                                            "night_stand", "sofa", "table", "toilet"])
    x = torch.rand(2, 3, 64, 64)
    e = est.embed_images(x)
    assert e.shape == (2, 32, 32, 32) and torch.isfinite(e).all()


@needs_chair
def test_image_to_mesh_pose_of_an_unseen_chair(tmp_path, capsys) -> None:
    rot = "axis-angle 1,1,0 60"
    view = tmp_path / "b.safetensors"
    assert main(["render", str(CHAIR), "-o", str(tmp_path / "b.png"), "--tensors", str(view),
                 "--rotation", rot, "--channels", "shading,silhouette,depth"]) == 0
    capsys.readouterr()
    assert main(["pose", str(view), "--mesh", str(CHAIR), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    found = torch.tensor(out["matrix"], dtype=torch.float64)
    err = torch.rad2deg(rotation_errors(found, parse_rotation(rot).double())).item()
    # measured 3.1° with the 16,000-step network (5.2° with the 8,000-step one; grid
    # spacing at b = 16 is 11.25°); a wrong convention gives tens of degrees
    assert err < 20.0, err
    # the render's PNG names its tiles, so pose reads the same three channels from it (8-bit)
    assert main(["pose", str(tmp_path / "b.png"), "--mesh", str(CHAIR), "--json"]) == 0
    from_png = torch.tensor(json.loads(capsys.readouterr().out)["matrix"], dtype=torch.float64)
    assert torch.rad2deg(rotation_errors(from_png, found)).item() < 1.0


@needs_chair
def test_packaged_decoder_synthesizes_from_a_render(tmp_path, capsys) -> None:
    from PIL import Image

    view = tmp_path / "v.png"
    assert main(["render", str(CHAIR), "-o", str(view), "--rotation", "axis-angle 1,0,0 30",
                 "--channels", "shading,silhouette,depth"]) == 0
    assert main(["synthesize", str(view), "--views", "4", "-o", str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as im:  # 2 rows of 4 views, each shading | silhouette
        assert im.size == (4 * (2 * 64 + 2) + 3 * 2, 2 * 64 + 2)
    assert "synthesized 8 views" in capsys.readouterr().out


# the first test mesh of each class by name: a rule, not a pick
_MESHES = ("bathtub/bathtub_0107", "bed/bed_0517", "chair/chair_0891", "desk/desk_0201",
           "dresser/dresser_0204", "monitor/monitor_0467", "night_stand/night_stand_0201",
           "sofa/sofa_0681", "table/table_0393", "toilet/toilet_0347")
needs_modelnet = pytest.mark.skipif(_ROOT is None or not all(
    (_ROOT / "modelnet10" / "test" / f"{m}.ply").is_file() for m in _MESHES),
    reason="the shared ModelNet10 test meshes are not on this machine")


@needs_modelnet
def test_relative_and_absolute_pose_of_unseen_test_meshes() -> None:
    """One unseen test mesh per class, each in two seeded random poses: the packaged network
    finds the rotation between the two images and each image's pose against its class
    template. A wrong convention, stale templates or an untrained network give errors of
    ~130°: a random rotation is within 20° of the truth with probability 0.0022, so 3 of 10
    by chance has probability about 1e-6, while the test split's Acc@15 is 0.67 (relative)
    and 0.55 (absolute), and its dresser and night stand are near-symmetric boxes."""
    from equivision.groups import SO3
    from equivision.io import load_mesh
    from equivision.render.camera import render_views

    est = PoseEstimator.load(DEFAULT_POSE_MODEL)
    rel, absolute = [], []
    for i, name in enumerate(_MESHES):
        mesh = load_mesh(_ROOT / "modelnet10" / "test" / f"{name}.ply")
        rots = SO3().random(2, seed=100 + i, dtype=torch.float64)
        img = render_views(mesh, rots, size=64, channels=("shading", "silhouette", "depth")).float()
        found = est.relative(img[0], img[1]).rotation.double()
        rel.append(torch.rad2deg(rotation_errors(found, rots[1] @ rots[0].T)).item())
        found = est.absolute(img[0], name.split("/")[0]).rotation.double()
        absolute.append(torch.rad2deg(rotation_errors(found, rots[0])).item())
    # measured 2026-12-04 (the 16,000-step network), classes in the order above: relative
    # 179.8 (bathtub, a half-turn class), 3.2, 91.4, 7.3, 3.7, 3.1, 90.3, 179.9, 7.8, 6.5;
    # absolute 4.4, 1.8, 87.9, 176.1 (desk, half-turn), 3.0, 4.7, 120.7, 90.9, 178.4, 16.6
    assert sum(e < 20.0 for e in rel) >= 3, rel
    assert sum(e < 20.0 for e in absolute) >= 3, absolute
