"""Anisotropically scaled training copies in the shapes-sphere data: each training signal is
the ray cast of its copy (checked against casting the scaled mesh directly), test signals are
untouched, the cache key of unscaled configurations is unchanged, bad settings are refused."""

from __future__ import annotations

import pytest
import torch

from equivision.data.seeds import stream_seed
from equivision.data.shapes_sphere import (
    SphereDataConfig,
    _rotations,
    _sources,
    make_sphere_split,
    signals_cache_path,
    train_scales,
)
from equivision.errors import InvalidInputError
from equivision.io.meshes import Mesh
from equivision.render.sphere import raycast_sphere

SMALL = dict(collection="procedural", bandwidth=8, train_rotations=3, test_rotations=2,
             procedural_train_per_family=1, procedural_test_per_family=1)


def test_scaled_copies_are_the_casts_of_scaled_meshes(tmp_path) -> None:
    cfg = SphereDataConfig(**SMALL, train_scale_range=0.3, train_scalings=2)
    plain = make_sphere_split(SphereDataConfig(**SMALL), tmp_path, show_progress=False)
    scaled = make_sphere_split(cfg, tmp_path, show_progress=False)
    assert scaled.train_x.shape == plain.train_x.shape and torch.equal(scaled.train_y, plain.train_y)
    assert torch.equal(scaled.test_x, plain.test_x)  # test signals are never scaled
    assert not torch.allclose(scaled.train_x, plain.train_x)
    train, _, _ = _sources(cfg)
    for idx in (0, len(train) - 1):
        mesh = train[idx][2]()
        rots = _rotations("so3", 3, stream_seed(cfg.rotation_seed, idx), "+y")
        s = train_scales(cfg, idx)
        assert s.shape == (2, 3) and bool(((s >= 0.7) & (s <= 1.3)).all())
        for j in range(3):  # rotation j casts copy j mod 2
            v = mesh.vertices
            ref = raycast_sphere(Mesh(v * s[j % 2].to(v.dtype), mesh.faces), 8, rotations=rots[j:j + 1])
            torch.testing.assert_close(scaled.train_x[3 * idx + j], ref[0], atol=1e-5, rtol=0)
    # seeded: a second build of another folder gives the same signals
    again = make_sphere_split(cfg, tmp_path / "again", show_progress=False)
    assert torch.equal(again.train_x, scaled.train_x)


def test_scaling_keys_its_own_cache_and_leaves_unscaled_keys_alone(tmp_path) -> None:
    base = signals_cache_path(SphereDataConfig(collection="procedural"), tmp_path)
    assert base.name == "procedural-so3-so3-b32-900622bcedbe4760.safetensors"  # as before scaling
    assert signals_cache_path(SphereDataConfig(collection="procedural", train_scalings=7), tmp_path) == base
    a = signals_cache_path(SphereDataConfig(collection="procedural", train_scale_range=0.2), tmp_path)
    b = signals_cache_path(SphereDataConfig(collection="procedural", train_scale_range=0.2,
                                            train_scalings=2), tmp_path)
    assert len({base, a, b}) == 3


@pytest.mark.parametrize("kw", [{"train_scale_range": -0.1}, {"train_scale_range": 1.0},
                                {"train_scalings": 0}, {"train_scalings": True}, {"train_scalings": 2.0}])
def test_bad_scaling_is_refused(kw: dict) -> None:
    with pytest.raises(InvalidInputError, match="train_scal"):
        SphereDataConfig(collection="procedural", **kw)
