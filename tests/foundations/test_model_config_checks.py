"""Model configs built in Python are held to the same rules as configs read from JSON."""

from __future__ import annotations

import math

import pytest

from equivision.errors import ConfigError
from equivision.models import build_model
from equivision.models.equirect_cnn import EquirectCNNConfig
from equivision.models.gcnn import GCNNConfig
from equivision.models.peif import PEIFConfig
from equivision.models.spherical_cnn import SphericalCNNConfig
from equivision.models.toy import ToyMLPConfig

BAD = [
    (PEIFConfig, {"k": 0}, r"model\.k "),
    (PEIFConfig, {"feature_dim": -8}, r"model\.feature_dim"),
    (PEIFConfig, {"top_k": 2.5}, r"model\.top_k must be an integer"),
    (PEIFConfig, {"memory_items": 0}, r"model\.memory_items"),
    (PEIFConfig, {"mlp_a": []}, r"model\.mlp_a needs at least one"),
    (PEIFConfig, {"mlp_d": [256, 0]}, r"model\.mlp_d\[1\]"),
    (PEIFConfig, {"pose_normalization": "yes"}, r"model\.pose_normalization"),
    (SphericalCNNConfig, {"in_channels": 0}, r"model\.in_channels"),
    (SphericalCNNConfig, {"channels": [32, -1, 8]}, r"model\.channels\[1\]"),
    (SphericalCNNConfig, {"bandwidths": [32, 16, 8, 0]}, r"model\.bandwidths\[3\]"),
    (SphericalCNNConfig, {"dropout": math.nan}, r"model\.dropout"),
    (SphericalCNNConfig, {"dropout": 1.0}, r"model\.dropout"),
    (SphericalCNNConfig, {"n_anchors": "8"}, r"model\.n_anchors"),
    (GCNNConfig, {"width": 0}, r"model\.width"),
    (GCNNConfig, {"arch": "p5"}, r"model\.arch"),
    (GCNNConfig, {"depth": True}, r"model\.depth"),
    (EquirectCNNConfig, {"num_classes": -1}, r"model\.num_classes"),
    (EquirectCNNConfig, {"channels": [32, 0]}, r"model\.channels\[1\]"),
    (EquirectCNNConfig, {"dropout": -0.1}, r"model\.dropout"),
    (ToyMLPConfig, {"hidden": 0}, r"model\.hidden"),
    (ToyMLPConfig, {"depth": 1.0}, r"model\.depth must be an integer"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), BAD,
                         ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in BAD])
def test_bad_model_config_raises_config_error(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [PEIFConfig, SphericalCNNConfig, GCNNConfig, EquirectCNNConfig, ToyMLPConfig])
def test_default_model_configs_are_valid(cls: type) -> None:
    cls()


def test_int_for_a_float_field_becomes_a_float() -> None:
    assert isinstance(SphericalCNNConfig(dropout=0).dropout, float)


def test_build_model_from_json_dict_refuses_the_same() -> None:
    with pytest.raises(ConfigError, match=r"model\.hidden"):
        build_model("toy_mlp", {"hidden": 0})
