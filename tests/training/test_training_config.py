"""Typed run configs: defaults, overrides, unknown keys and wrong types refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from equivision.errors import ConfigError, DataFileNotFoundError
from equivision.training import TrainConfig, build_run_config, from_dict, read_json, to_dict
from equivision.training.config import diff_dicts
from equivision.training.toy import ToyConfig


@dataclass
class Inner:
    width: int = 4
    scale: float = 1.0


@dataclass
class Outer:
    name: str = "a"
    flag: bool = False
    mode: Literal["x", "y"] = "x"
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (1, 2.0)
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_overrides() -> None:
    o = from_dict(Outer, {"flag": True, "inner": {"scale": 3}, "sizes": [5, 6, 7],
                          "maybe": 2, "pair": [3, 4]})
    assert o == Outer(flag=True, inner=Inner(4, 3.0), sizes=(5, 6, 7), maybe=2, pair=(3, 4.0))
    assert isinstance(o.inner.scale, float)  # an integer is accepted for a float field
    assert from_dict(Outer, {}) == Outer()
    assert from_dict(Outer, to_dict(o)) == o  # JSON round trip


@pytest.mark.parametrize(("data", "needle"), [
    ({"nmae": "b"}, "unknown key(s) nmae"),
    ({"inner": {"widht": 3}}, "inner.widht"),
    ({"flag": 1}, "flag must be true or false"),
    ({"inner": {"width": 2.5}}, "inner.width must be an integer"),
    ({"inner": {"width": True}}, "inner.width must be an integer"),
    ({"inner": {"scale": "1"}}, "inner.scale must be a number"),
    ({"name": 3}, "name must be a string"),
    ({"mode": "z"}, "mode must be one of"),
    ({"sizes": 3}, "sizes must be a list"),
    ({"sizes": [1, "2"]}, "sizes[1] must be an integer"),
    ({"pair": [1]}, "pair must have 2 entries"),
    ({"maybe": "x"}, "maybe must be an integer"),
    ({"inner": [1]}, "inner must be a JSON object"),
])
def test_bad_values_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data)
    assert needle in str(e.value)


def test_run_config_sections() -> None:
    cfg = build_run_config("toy", ToyConfig, {"train": {"lr": 0.1},
                                              "task": {"model": {"hidden": 8}}})
    assert cfg.train.lr == 0.1 and cfg.train.steps == TrainConfig().steps
    assert cfg.task.model.hidden == 8 and cfg.task.n_train == ToyConfig().n_train
    d = cfg.to_dict()
    assert d["task_name"] == "toy" and d["train"]["lr"] == 0.1
    assert build_run_config("toy", ToyConfig, d) == cfg  # the saved form reads back
    with pytest.raises(ConfigError, match="unknown top-level key"):
        build_run_config("toy", ToyConfig, {"optim": {}})
    with pytest.raises(ConfigError, match="for task 'other'"):
        build_run_config("toy", ToyConfig, {"task_name": "other"})
    with pytest.raises(ConfigError, match=r"train\.lr"):
        build_run_config("toy", ToyConfig, {"train": {"lr": "fast"}})


@pytest.mark.parametrize("train", [{"steps": 0}, {"lr": 0.0}, {"lr": -1.0}, {"grad_clip": -1.0},
                                   {"device": "tpu"}, {"keep_last": 0}, {"lr": float("nan")}])
def test_train_values_checked(train: dict) -> None:
    with pytest.raises(ConfigError, match=r"train\."):
        from_dict(TrainConfig, train, "train")


def test_read_json_errors(tmp_path) -> None:
    with pytest.raises(DataFileNotFoundError):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{train: }")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        read_json(tmp_path / "list.json")


def test_diff_dicts() -> None:
    assert diff_dicts({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2}}) == []
    assert diff_dicts({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 0}) == ["b.c", "d"]
    assert diff_dicts({"l": [1, 2]}, {"l": [1]}) == ["l"]
