"""Model registry and loading for inference.

A model is registered by name with the dataclass of its configuration and a builder::

    from dataclasses import dataclass
    from equivision.models import register_model

    @dataclass
    class MyNetConfig:
        width: int = 16

    @register_model("mynet", MyNetConfig)
    def build_mynet(cfg: MyNetConfig) -> torch.nn.Module:
        return MyNet(cfg.width)

Weights are stored only as safetensors, beside a JSON that names the model and its config.
:func:`load` accepts either

* a run folder written by ``equivision train`` (its best checkpoint by default), or
* the name of a packaged pretrained default: ``src/equivision/pretrained/<name>.json`` +
  ``<name>.safetensors`` (made from a run with :func:`export_pretrained`).

A checkpoint whose model name, configuration or tensor shapes differ from the model asked
for is refused with :class:`~equivision.errors.CheckpointError` naming the mismatch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from equivision._registry import import_each
from equivision.configio import diff_dicts, from_dict, to_dict
from equivision.errors import CheckpointError, ConfigError, UnknownModelError
from equivision.models.weights import (
    check_compatible,
    file_sha256,
    load_into,
    read_tensors,
    save_tensors,
)
from equivision.runs import find_checkpoint

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
PRETRAINED_FORMAT = "equivision-pretrained/1"

# Modules that register models when imported. Every model family is listed here, including one
# defined beside its task: the registry never imports training to find a model.
MODEL_MODULES: list[str] = [
    "equivision.models.toy",
    "equivision.models.peif",
    "equivision.models.spherical_cnn",
    "equivision.models.equirect_cnn",
    "equivision.models.gcnn",
    "equivision.models.vector_neurons",
    "equivision.models.vn_global_field",
    "equivision.models.image_to_sphere",
    "equivision.models.sphere_to_image",
    "equivision.models.view_baseline",
    "equivision.models.pose_regression",
]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_cls: type
    build: Callable[[Any], torch.nn.Module]


_MODELS: dict[str, ModelSpec] = {}
_import_errors: dict[str, str | None] = {}  # module -> why it failed (None: imported)


def register_model(name: str, config_cls: type) -> Callable[[Callable[[Any], torch.nn.Module]],
                                                             Callable[[Any], torch.nn.Module]]:
    """Decorator: register ``build(cfg) -> nn.Module`` under ``name`` with its config class."""

    def deco(build: Callable[[Any], torch.nn.Module]) -> Callable[[Any], torch.nn.Module]:
        old = _MODELS.get(name)
        if old is not None and old.build is not build:
            raise ValueError(f"model {name!r} is already registered by {old.build.__module__}")
        _MODELS[name] = ModelSpec(name, config_cls, build)
        return build

    return deco


def _import_all() -> None:
    import_each(MODEL_MODULES, _import_errors)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def list_models() -> list[str]:
    """Names of the registered models."""
    _import_all()
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    _import_all()
    if name not in _MODELS:
        failed = "; ".join(f"{m} ({err})" for m, err in _import_errors.items() if err)
        raise UnknownModelError(f"unknown model {name!r}; registered models: "
                                f"{', '.join(sorted(_MODELS)) or 'none'}"
                                + (f"; modules that failed to import: {failed}" if failed
                                   else ""))
    return _MODELS[name]


def model_config(name: str, config: Any = None) -> Any:
    """The config dataclass of model ``name`` from a dataclass, a dict (checked) or None
    (defaults)."""
    spec = get_model_spec(name)
    if config is None:
        return spec.config_cls()
    if isinstance(config, spec.config_cls):
        return config
    if isinstance(config, dict):
        return from_dict(spec.config_cls, config, "model")
    raise ConfigError(f"model {name!r} takes a {spec.config_cls.__name__} or a dict, "
                      f"got {type(config).__name__}")


def build_model(name: str, config: Any = None) -> torch.nn.Module:
    """Build registered model ``name`` (fresh weights) from its config."""
    return get_model_spec(name).build(model_config(name, config))


def list_pretrained() -> list[str]:
    """Names of the packaged pretrained defaults."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.json")
                  if p.with_suffix(".safetensors").is_file())


def load(name_or_run_dir: str | os.PathLike[str], *, model: str | None = None,
         config: Any = None, checkpoint: str | int = "best",
         device: str | torch.device = "cpu") -> torch.nn.Module:
    """A model in eval mode with trained weights, for inference.

    ``name_or_run_dir``: a run folder (``checkpoint`` = "best", "latest" or a step number) or
    the name of a packaged pretrained default (see :func:`list_pretrained`).
    ``model`` / ``config``: when given, the checkpoint must be of this registered model and
    this configuration (dataclass or dict), else :class:`CheckpointError` names the
    difference. Tensor names and shapes are always checked against the built model."""
    ref = _resolve(name_or_run_dir, checkpoint)
    name, stored_cfg = ref["model_name"], ref["model_config"]
    if model is not None and model != name:
        raise CheckpointError(f"{ref['source']} holds model {name!r}, not {model!r}")
    try:
        cfg = model_config(name, stored_cfg)
    except ConfigError as e:
        raise CheckpointError(f"{ref['source']}: its model config does not fit model {name!r} "
                              f"as registered now ({e})") from e
    if config is not None:
        asked = to_dict(model_config(name, config))
        diff = diff_dicts(to_dict(cfg), asked)
        if diff:
            raise CheckpointError(f"{ref['source']} was trained with another {name} config; "
                                  f"it differs in {', '.join(diff)}")
    tensors = read_tensors(ref["weights"], sha256=ref.get("sha256"))
    _check_shapes_first(name, cfg, tensors, str(ref["weights"]))
    try:
        net = build_model(name, cfg)
    except (RuntimeError, MemoryError) as e:  # e.g. a config whose sizes cannot be allocated
        raise CheckpointError(f"{ref['source']}: cannot build model {name!r} from its config "
                              f"({' '.join(str(e).split())[:200]})") from e
    load_into(net, tensors, str(ref["weights"]))
    return net.to(device).eval()


def _check_shapes_first(name: str, cfg: Any, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Compare the weights with a storage-less (meta-device) build of the model, so that a
    config claiming a huge model is refused before its parameters are allocated."""
    try:
        with torch.device("meta"):
            skeleton = build_model(name, cfg)
    except Exception:  # builders that compute buffers from data cannot run on meta: skip
        return
    check_compatible(skeleton, tensors, source)


def load_weights(module: torch.nn.Module, path: str | os.PathLike[str]) -> torch.nn.Module:
    """Load a safetensors file (a run folder's best checkpoint, or a file) into an existing
    module, after checking tensor names and shapes."""
    p = Path(path)
    if p.is_dir():
        p = Path(_resolve(p, "best")["weights"])
    load_into(module, read_tensors(p), str(p))
    return module


def _resolve(name_or_run_dir: str | os.PathLike[str], checkpoint: str | int) -> dict[str, Any]:
    p = Path(name_or_run_dir)
    if p.is_dir():
        info = find_checkpoint(p, checkpoint)
        m = info.meta.get("model")
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            raise CheckpointError(f"{info.path / 'meta.json'} does not name its model "
                                  "(expected a 'model' object with a 'name'); it is corrupt")
        files = info.meta.get("files", {})
        entry = files.get("model.safetensors", {}) if isinstance(files, dict) else None
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or (sha is not None and not isinstance(sha, str)):
            raise CheckpointError(f"{info.path / 'meta.json'} has a malformed 'files' entry; "
                                  "it is corrupt")
        return {"source": f"checkpoint {info.path}", "model_name": m["name"],
                "model_config": m.get("config"), "weights": info.path / "model.safetensors",
                "sha256": sha}
    name = str(name_or_run_dir)
    meta_path = PRETRAINED_DIR / f"{name}.json"
    if os.sep in name or "/" in name or not meta_path.is_file():
        known = ", ".join(list_pretrained()) or "none"
        raise UnknownModelError(f"{name!r} is neither a run folder nor a pretrained model "
                                f"(pretrained: {known})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta_path} is not valid JSON: {e}") from e
    if meta.get("format") != PRETRAINED_FORMAT:
        raise CheckpointError(f"{meta_path} is not an equivision pretrained file")
    return {"source": f"pretrained {name!r}", "model_name": meta["model"]["name"],
            "model_config": meta["model"]["config"],
            "weights": meta_path.with_suffix(".safetensors"), "sha256": meta.get("sha256")}


def export_pretrained(run_dir: str | os.PathLike[str], name: str,
                      out_dir: str | os.PathLike[str] = PRETRAINED_DIR, *,
                      checkpoint: str | int = "best", note: str = "",
                      overwrite: bool = False) -> Path:
    """Write ``<out_dir>/<name>.json`` + ``<name>.safetensors`` from a run's checkpoint: both
    or neither; both outputs are checked before the checkpoint is read."""
    from equivision.errors import InvalidInputError
    from equivision.io import OutputSpec, atomic_paths, check_outputs

    if not name or "/" in name or os.sep in name or name.startswith("."):
        raise InvalidInputError(f"pretrained name {name!r} must be a plain file name "
                                "(no '/', no leading '.')")
    out = Path(out_dir)
    weights, meta_path = out / f"{name}.safetensors", out / f"{name}.json"
    check_outputs([OutputSpec("weights", weights), OutputSpec("metadata", meta_path)], overwrite=overwrite)
    info = find_checkpoint(Path(run_dir), checkpoint)
    tensors = read_tensors(info.path / "model.safetensors",
                           sha256=info.meta["files"]["model.safetensors"]["sha256"])
    net = build_model(info.meta["model"]["name"], info.meta["model"]["config"])
    check_compatible(net, tensors, str(info.path))
    with atomic_paths([weights, meta_path], overwrite=overwrite) as (tmp_weights, tmp_meta):
        save_tensors(tensors, tmp_weights)
        meta = {"format": PRETRAINED_FORMAT, "model": info.meta["model"],
                "sha256": file_sha256(tmp_weights), "task": info.meta.get("task"),
                "step": info.step, "metrics": info.meta.get("metrics", {}), "note": note,
                "config": info.meta.get("config")}
        tmp_meta.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return weights


__all__ = [
    "PRETRAINED_DIR",
    "ModelSpec",
    "UnknownModelError",
    "build_model",
    "count_parameters",
    "export_pretrained",
    "get_model_spec",
    "list_models",
    "list_pretrained",
    "load",
    "load_weights",
    "model_config",
    "register_model",
]
