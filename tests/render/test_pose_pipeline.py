"""The pose pipeline: conventions end to end (image→mesh with the teacher standing in for the
network), how image files become network input, category templates, and mismatched models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from equivision.errors import CheckpointError, DataNotAvailableError, InvalidInputError, ShapeError
from equivision.groups import SO3
from equivision.io.images import ImageFile
from equivision.io.meshes import Mesh
from equivision.models.image_to_sphere import ImageToSphere, ImageToSphereConfig
from equivision.pipelines.pose import (
    PoseEstimator,
    compute_templates,
    fit_image,
    load_templates,
    save_templates,
)
from equivision.tasks.views import ViewConfig, build_view_dataset, canonical_maps, sources_from_meshes

B = 32  # the packaged teacher's input bandwidth; its stage1 maps are 32 × 32² (b = 16)


def asymmetric_mesh() -> Mesh:
    """A box with a ball on +x and a rod on +z off the middle: no rotational symmetry."""
    import trimesh

    parts = [trimesh.creation.box((1.0, 0.6, 0.4)),
             trimesh.creation.icosphere(2, 0.25).apply_translation((0.65, 0.1, 0.0)),
             trimesh.creation.cylinder(0.08, 0.8, 12).apply_translation((-0.3, 0.0, 0.55))]
    m = trimesh.util.concatenate(parts)
    return Mesh(torch.tensor(m.vertices, dtype=torch.float64), torch.tensor(m.faces, dtype=torch.long))


def posed(mesh: Mesh, r: torch.Tensor) -> Mesh:
    return Mesh(mesh.vertices @ r.T.double(), mesh.faces)


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    # a trained teacher: a randomly initialised one has all-zero maps (nothing to correlate)
    from equivision.models import load

    return load("shapes_sphere_modelnet10", model="spherical_cnn")


class Oracle(nn.Module):
    """A stand-in image network that returns the maps it is given, whatever the image."""

    def __init__(self, maps: torch.Tensor, cfg: ImageToSphereConfig) -> None:
        super().__init__()
        self.maps, self.cfg = maps, cfg
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps.expand(x.shape[0], *self.maps.shape)


def _cfg(**kw) -> ImageToSphereConfig:
    base = {"in_channels": 1, "image_size": 16, "bandwidth": 16, "out_channels": 32, "width": 4,
            "max_width": 8, "code_dim": 16}
    return ImageToSphereConfig(**{**base, **kw})


def test_image_to_mesh_finds_the_pose_when_the_network_is_the_teacher(teacher) -> None:
    mesh = asymmetric_mesh()
    rots = SO3().random(3, seed=5, dtype=torch.float64)
    spacing = math.pi / 16  # the (2b)³ grid's step at b = 16
    for r in rots:
        # the "image embedding": the teacher's maps of the re-cast posed mesh
        maps = canonical_maps(posed(mesh, r), teacher, "stage1", B).float()
        est = PoseEstimator(Oracle(maps, _cfg()), ("shading",), 16, teacher, "stage1")
        res = est.image_to_mesh(torch.rand(1, 16, 16), mesh)
        err = float(SO3.geodesic_distance(res.rotation.double(), r, check=False))
        wrong = float(SO3.geodesic_distance(res.rotation.double(), r.T, check=False))
        assert err < spacing / 2, (math.degrees(err), math.degrees(wrong))
        if float(SO3.geodesic_distance(r, r.T, check=False)) > 2 * spacing:
            assert wrong > spacing  # the transpose is far: the convention is pinned


def test_mesh_embedding_does_not_depend_on_scale_or_position(teacher) -> None:
    mesh = asymmetric_mesh()
    est = PoseEstimator(Oracle(torch.zeros(32, 32, 32), _cfg()), ("shading",), 16, teacher, "stage1")
    a = est.embed_mesh(mesh)
    b = est.embed_mesh(Mesh(mesh.vertices * 250.0 + torch.tensor([1e4, -3e3, 7e2], dtype=torch.float64),
                            mesh.faces))
    assert float((a - b).norm() / a.norm()) < 1e-3


def test_a_network_of_another_bandwidth_or_width_is_refused(teacher) -> None:
    with pytest.raises(CheckpointError, match=r"bandwidth 8.*bandwidth 16"):
        PoseEstimator(ImageToSphere(_cfg(bandwidth=8)), ("shading",), 16, teacher, "stage1")
    with pytest.raises(CheckpointError, match=r"5 channels.*32 channels"):
        PoseEstimator(ImageToSphere(_cfg(out_channels=5)), ("shading",), 16, teacher, "stage1")


def test_fit_image_derives_the_silhouette_resizes_and_refuses_what_it_cannot_derive() -> None:
    shading = torch.zeros(1, 32, 32)
    shading[0, 8:24, 10:20] = 0.1 + 0.9 * torch.rand(16, 10, generator=torch.Generator().manual_seed(0))
    img = ImageFile(shading, ("shading",), "test")
    x, notes = fit_image(img, ("shading", "silhouette"), 16)
    assert x.shape == (2, 16, 16) and len(notes) == 2
    assert set(x[1].unique().tolist()) == {0.0, 1.0}
    assert float(x[1].sum()) == pytest.approx(16 * 10 / 4, abs=8)
    same, notes = fit_image(img, ("shading",), 32)
    assert torch.equal(same, shading) and notes == []
    with pytest.raises(InvalidInputError, match="depth cannot be derived"):
        fit_image(img, ("shading", "silhouette", "depth"), 32)
    with pytest.raises(ShapeError, match="square"):
        fit_image(ImageFile(torch.rand(1, 32, 24), ("shading",), "t"), ("shading",), 32)
    with pytest.raises(InvalidInputError, match="shading cannot be derived"):
        fit_image(ImageFile(torch.rand(1, 32, 32), ("depth",), "t"), ("shading",), 32)


def test_templates_are_category_means_and_give_the_absolute_pose(tmp_path, teacher) -> None:
    import trimesh

    mesh = asymmetric_mesh()
    box = trimesh.creation.box((1.0, 0.5, 0.3))
    other = Mesh(torch.tensor(box.vertices, dtype=torch.float64), torch.tensor(box.faces, dtype=torch.long))
    build_view_dataset(tmp_path / "views", sources_from_meshes([("thing/a", 0, mesh), ("thing/b", 0, mesh),
                                                                 ("block/c", 1, other)]), teacher,
                       ViewConfig(views=1, bandwidth=B, layer="stage1", shard_size=2), show_progress=False)
    temps = compute_templates(tmp_path / "views")
    assert sorted(temps) == ["block", "thing"]
    want = canonical_maps(Mesh(mesh.vertices.float(), mesh.faces), teacher, "stage1", B)
    torch.testing.assert_close(temps["thing"], want, atol=1e-5, rtol=1e-4)
    path = save_templates(tmp_path / "t.safetensors", temps, {"name": "x", "layer": "stage1"})
    back, info = load_templates(path)
    assert info == {"name": "x", "layer": "stage1"} and torch.equal(back["block"], temps["block"])
    r = SO3().random(1, seed=2, dtype=torch.float64)[0]
    maps = canonical_maps(posed(mesh, r), teacher, "stage1", B).float()
    est = PoseEstimator(Oracle(maps, _cfg()), ("shading",), 16, teacher, "stage1", templates=back)
    res = est.absolute(torch.rand(1, 16, 16), "thing")
    assert float(SO3.geodesic_distance(res.rotation.double(), r, check=False)) < math.pi / 32
    with pytest.raises(InvalidInputError, match="known: block, thing"):
        est.absolute(torch.rand(1, 16, 16), "chair")
    with pytest.raises(DataNotAvailableError, match="no category templates"):
        PoseEstimator(Oracle(maps, _cfg()), ("shading",), 16).absolute(torch.rand(1, 16, 16), "thing")


def test_embed_images_checks_shapes() -> None:
    torch.manual_seed(0)
    est = PoseEstimator(ImageToSphere(_cfg()).eval(), ("shading",), 16)
    assert est.embed_images(torch.rand(2, 1, 16, 16)).shape == (2, 32, 32, 32)
    with pytest.raises(ShapeError, match=r"\(B, 1, 16, 16\)"):
        est.embed_images(torch.rand(2, 3, 16, 16))
    with pytest.raises(InvalidInputError, match="NaN"):
        est.embed_images(torch.full((1, 1, 16, 16), float("nan")))
