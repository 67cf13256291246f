"""equivision.models: registry, loading from run folders and packaged defaults, refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from training_helpers import final_weights, toy_config

from equivision.errors import (
    CheckpointError,
    ConfigError,
    UnknownDatasetError,
    UnknownModelError,
    UnknownNameError,
)
from equivision.models import (
    PRETRAINED_DIR,
    build_model,
    export_pretrained,
    list_models,
    list_pretrained,
    load,
    load_weights,
    register_model,
)
from equivision.models.toy import ToyMLPConfig
from equivision.training import train
from equivision.training.checkpoint import checkpoints_dir, find_checkpoint
from equivision.training.toy import toy_target


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import io

    from rich.console import Console

    run = tmp_path_factory.mktemp("models") / "run"
    train("toy", toy_config(steps=40), run, console=Console(file=io.StringIO()))
    return run


def test_registry() -> None:
    assert "toy_mlp" in list_models()
    net = build_model("toy_mlp", {"hidden": 5, "depth": 1})
    assert net(torch.zeros(3, 2)).shape == (3, 1)
    with pytest.raises(ConfigError, match=r"model\.hidden must be an integer"):
        build_model("toy_mlp", {"hidden": "5"})
    with pytest.raises(UnknownModelError, match="unknown model 'nope'") as info:
        build_model("nope")
    # a model is not a dataset: only the shared base (and KeyError) catch both
    assert not isinstance(info.value, UnknownDatasetError)
    assert isinstance(info.value, UnknownNameError) and isinstance(info.value, KeyError)
    with pytest.raises(ValueError, match="already registered"):
        register_model("toy_mlp", ToyMLPConfig)(lambda cfg: torch.nn.Identity())


def test_load_from_run_folder(run_dir) -> None:
    net = load(run_dir, model="toy_mlp", config={"hidden": 16})
    assert not net.training
    w = final_weights(run_dir, "best")
    assert torch.equal(net.state_dict()["net.0.weight"], w["net.0.weight"])
    latest = load(run_dir, checkpoint="latest")
    assert torch.equal(latest.state_dict()["net.2.bias"], final_weights(run_dir)["net.2.bias"])


def test_refuses_other_model_or_config(run_dir) -> None:
    with pytest.raises(CheckpointError, match="holds model 'toy_mlp', not 'gcnn'"):
        load(run_dir, model="gcnn")
    with pytest.raises(CheckpointError, match="differs in hidden"):
        load(run_dir, config=ToyMLPConfig(hidden=32))
    with pytest.raises(CheckpointError, match=r"net.0.weight \(16, 2\) vs model \(32, 2\)"):
        load_weights(build_model("toy_mlp"), run_dir)


def test_refuses_a_checkpoint_from_another_model(run_dir, tmp_path) -> None:
    # a checkpoint whose weights are from a 16-wide net but whose JSON says 8 wide
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    info = find_checkpoint(bad, "best")
    meta = json.loads((info.path / "meta.json").read_text())
    meta["model"]["config"]["hidden"] = 8
    (info.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"shape mismatch net.0.weight \(16, 2\)"):
        load(bad)


def test_unknown_name_and_empty_run(tmp_path) -> None:
    with pytest.raises(UnknownModelError, match="neither a run folder nor a pretrained"):
        load("no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load(tmp_path / "empty")


def test_packaged_toy_default_loads_and_predicts() -> None:
    assert "toy" in list_pretrained()
    net = load("toy")
    x = torch.rand(256, 2, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        mse = torch.mean((net(x) - toy_target(x)) ** 2).item()
    meta = json.loads((PRETRAINED_DIR / "toy.json").read_text())
    assert mse < 0.05  # the target has variance ~0.25; the shipped model fits it
    assert meta["metrics"]["eval"]["mse"] < 0.05


@pytest.mark.slow
def test_packaged_toy_default_is_reproducible(tmp_path, quiet_console) -> None:
    """The documented recipe (train with the stored config on CPU, export) gives the shipped
    weights."""
    meta = json.loads((PRETRAINED_DIR / "toy.json").read_text())
    run = tmp_path / "run"
    train("toy", meta["config"], run, console=quiet_console)
    export_pretrained(run, "toy", tmp_path)
    shipped = load("toy").state_dict()
    again = load_weights(build_model("toy_mlp", meta["model"]["config"]),
                         tmp_path / "toy.safetensors").state_dict()
    for k, v in shipped.items():
        torch.testing.assert_close(again[k], v, rtol=0, atol=1e-6)
    assert checkpoints_dir(run).is_dir()


def test_a_broken_model_module_does_not_hide_the_others(monkeypatch) -> None:
    import equivision.models as models

    monkeypatch.setattr(models, "MODEL_MODULES", [*models.MODEL_MODULES, "equivision.no_such"])
    monkeypatch.setattr(models, "_import_errors", dict(models._import_errors))
    assert "toy_mlp" in models.list_models()
    with pytest.raises(UnknownModelError, match=r"failed to import: equivision\.no_such"):
        models.get_model_spec("missing")
