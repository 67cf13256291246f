"""Anisotropic scaling of view datasets (the paper's augmentation): each view's image and
target come from the same scaled copy of the mesh, the canonical maps stay the unscaled mesh's,
the copies are seeded by the mesh's name, and unscaled datasets keep their keys."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from equivision.cli import main
from equivision.data.cache import cache_key
from equivision.data.procedural import make_shape
from equivision.data.seeds import name_seed
from equivision.errors import ConfigError
from equivision.models.spherical_cnn import SphericalCNN, SphericalCNNConfig
from equivision.render.camera import render_views
from equivision.tasks.views import (
    VIEWS_VERSION,
    ViewConfig,
    ViewDataset,
    build_item,
    build_view_dataset,
    canonical_maps,
    dataset_key,
    rotated_targets,
    scale_mesh,
    sources_from_meshes,
    view_rotations,
    view_scales,
)

B = 8
CFG = ViewConfig(views=6, bandwidth=B, layer="stage1", shard_size=2, seed=3, scalings=3, scale_range=0.3)


def _teacher() -> SphericalCNN:
    torch.manual_seed(4)
    return SphericalCNN(SphericalCNNConfig(stem_channels=4, channels=[4], bandwidths=[B, 4])).eval()


def _source(name: str = "cone-1"):
    return sources_from_meshes([(name, 1, make_shape("cone", 1).mesh(16))])[0]


def test_scales_are_seeded_per_mesh_within_range_and_shared_by_a_copys_views() -> None:
    s = view_scales(CFG, "cone-1")
    assert s.shape == (6, 3) and s.dtype == torch.float64
    assert bool(((s >= 0.7) & (s <= 1.3)).all())
    assert torch.equal(s[:3], s[3:])  # view i belongs to copy i % 3
    assert len({tuple(r.tolist()) for r in s[:3]}) == 3
    assert torch.equal(s, view_scales(CFG, "cone-1"))
    assert not torch.equal(s, view_scales(CFG, "cone-2"))
    assert torch.equal(view_scales(ViewConfig(views=4), "x"), torch.ones(4, 3, dtype=torch.float64))


def test_each_view_is_its_scaled_copy_rendered_with_that_copys_rotated_maps() -> None:
    net, src = _teacher(), _source()
    item = build_item(src, net, CFG)
    mesh = src.load()
    rots = view_rotations(CFG.views, CFG.dof, name_seed(CFG.seed, src.name), CFG.up)
    scales = view_scales(CFG, src.name)
    assert torch.equal(item["scales"], scales.float())
    for i in (0, 4):
        copy = scale_mesh(mesh, scales[i])
        img = render_views(copy, rots[i:i + 1], size=CFG.image_size, channels=CFG.channels)[0]
        assert torch.allclose(item["images"][i], img.float(), atol=1e-6)
        tgt = rotated_targets(canonical_maps(copy, net, CFG.layer, CFG.bandwidth), rots[i:i + 1])[0]
        assert torch.allclose(item["targets"][i], tgt.float(), atol=1e-5)
    # the canonical maps (the templates' input) are the unscaled mesh's
    assert torch.allclose(item["canonical"], canonical_maps(mesh, net, CFG.layer, CFG.bandwidth).float())
    # the scaling changes what is seen: the unscaled dataset's views differ
    plain = build_item(src, net, ViewConfig(views=6, bandwidth=B, layer="stage1", seed=3))
    assert torch.equal(plain["rotations"], item["rotations"])
    assert (plain["images"] - item["images"]).abs().max() > 0.1
    assert "scales" not in plain


def test_unscaled_keys_are_those_of_datasets_built_before_scaling_existed() -> None:
    src, cfg = [_source()], ViewConfig(views=2, bandwidth=B)
    old = {k: v for k, v in asdict(cfg).items() if k not in ("shard_size", "scalings", "scale_range")}
    want = cache_key("views", VIEWS_VERSION, old, cfg.shard_size, "d",
                     [[s.name, s.label, s.fingerprint] for s in src])
    assert dataset_key(src, "d", cfg) == want
    assert dataset_key(src, "d", ViewConfig(views=2, bandwidth=B, scale_range=0.2)) != want


def test_a_scaled_dataset_builds_and_records_its_scaling(tmp_path) -> None:
    out = tmp_path / "ds"
    srcs = [_source("a"), _source("b"), _source("c")]
    m = build_view_dataset(out, srcs, _teacher(), CFG, show_progress=False)
    assert m["config"]["scalings"] == 3 and m["config"]["scale_range"] == 0.3
    ds = ViewDataset(out)
    assert len(ds) == 18
    assert "scales" in ds.shard(0) and ds.shard(0)["scales"].shape == (2, 6, 3)


def test_bad_scaling_is_a_config_error_and_the_cli_refuses_in_one_line(tmp_path, capsys) -> None:
    for kw in ({"scale_range": -0.1}, {"scale_range": 1.0}, {"scalings": 0}, {"scalings": 9, "views": 8},
               {"scalings": 2}):
        with pytest.raises(ConfigError):
            ViewConfig(**kw)
    assert main(["data", "views", str(tmp_path / "x"), "--scalings", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scale_range" in err[0]
    assert not (tmp_path / "x").exists()
