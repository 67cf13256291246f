"""The packaged shape classifier and `equivision classify`."""

from __future__ import annotations

import json

import pytest

from equivision.cli import main
from equivision.data.procedural import make_shape
from equivision.errors import CheckpointError
from equivision.groups import SO3
from equivision.io import Mesh, save_mesh
from equivision.pipelines.classify import SHAPENET10_CLASSES, classify_mesh, load_classifier
from equivision.testing import assert_equivariant


def test_class_names_follow_the_registry(data_root):
    from equivision.data import get_collection

    assert tuple(sorted(get_collection("shapenet10").classes)) == SHAPENET10_CLASSES


def test_pretrained_classifier_is_rotation_invariant_in_practice():
    """Through the harness: probabilities of a rotated mesh against the original's. Ray casting
    re-samples the rotated mesh, so the bound is measured (relative error < 0.05 here)."""
    net, classes = load_classifier("shapes_sphere_shapenet10")
    assert classes == SHAPENET10_CLASSES
    mesh = make_shape("cylinder", 3).mesh(32)
    probs = lambda m: classify_mesh(m, net, classes).probabilities  # noqa: E731
    assert abs(float(probs(mesh).sum()) - 1) < 1e-5
    rotate_mesh = lambda r, m: Mesh(m.vertices @ r.T, m.faces)  # noqa: E731
    assert_equivariant(probs, mesh, rotate_mesh, None, SO3().random(3, seed=0), tol=0.05)


def test_cli(tmp_path, capsys):
    path = save_mesh(make_shape("box", 0).mesh(24), tmp_path / "box.ply")
    assert main(["classify", str(path), "--top", "2"]) == 0
    assert "probability" in capsys.readouterr().out
    assert main(["classify", str(path), "--json", "--model", "shapes_sphere_shapenet10"]) == 0
    probs = json.loads(capsys.readouterr().out)
    assert set(probs) == set(SHAPENET10_CLASSES)
    assert main(["classify", str(path), "--model", "no_such_model"]) == 2
    assert "no_such_model" in capsys.readouterr().err
    assert main(["classify", str(path), "--model", "toy"]) == 2  # a packaged model of another kind
    err = capsys.readouterr().err
    assert "toy_mlp" in err and "spherical_cnn" in err


def test_wrong_model_kind_is_refused():
    try:
        load_classifier("toy")
    except CheckpointError as e:
        assert "spherical_cnn" in str(e)
    else:
        raise AssertionError("a toy checkpoint was accepted as a classifier")


def test_a_checkpoint_for_another_bandwidth_is_refused():
    """Zonal filters have the same tensor shapes at every bandwidth, so the check is on the
    stored configuration, which names the difference."""
    from equivision.models import load

    with pytest.raises(CheckpointError, match="bandwidths"):
        load("shapes_sphere_shapenet10", model="spherical_cnn",
             config={"num_classes": 10, "dropout": 0.1, "bandwidths": [16, 8, 4, 2]})
