'''The task registry: what ``equivision train <task>`` and ``equivision eval <task>`` run.

A task ties together a configuration dataclass, a registered model, the datasets and the
loss. The trainer does everything else (devices, torchrun, schedules, checkpoints, logs).
The contract, as a complete minimal example (this is the toy task of
:mod:`equivision.training.toy`, shortened)::

    from dataclasses import dataclass, field

    import torch
    from torch.utils.data import Dataset, TensorDataset

    from equivision.models.toy import ToyMLPConfig          # registered as "toy_mlp"
    from equivision.training import Task, register_task

    @dataclass
    class ToyConfig:                      # every field has a default; JSON "task" overrides
        n_train: int = 512
        n_eval: int = 256
        noise: float = 0.05
        data_seed: int = 1234
        model: ToyMLPConfig = field(default_factory=ToyMLPConfig)   # required field

    @register_task("toy")
    class ToyTask(Task):
        config_cls = ToyConfig
        model_name = "toy_mlp"            # built with equivision.models.build_model
        best_metric, best_mode = "mse", "min"

        def datasets(self, cfg: ToyConfig) -> tuple[Dataset, Dataset]:
            g = torch.Generator().manual_seed(cfg.data_seed)  # never the global RNG
            def make(n):
                x = torch.rand(n, 2, generator=g) * 2 - 1
                y = target(x) + cfg.noise * torch.randn(n, 1, generator=g)
                return TensorDataset(x, y)
            return make(cfg.n_train), make(cfg.n_eval)

        def loss(self, model, batch):         # batch: what the DataLoader yields, on device
            x, y = batch
            mse = torch.nn.functional.mse_loss(model(x), y)
            return mse, {"mse": mse.detach()}  # loss to minimise, metrics to log

Rules of the contract:

* ``config_cls`` is a dataclass with defaults and a field ``model`` holding the config
  dataclass of the registered model ``model_name`` (checkpoints record both, so
  :func:`equivision.models.load` rebuilds the model from a run folder alone).
* ``datasets(cfg)`` returns ``(train, eval)`` map-style ``Dataset``s of equal-size samples;
  any randomness must come from the config's seeds (or from the index), never from the
  global RNG at construction time, so that every torchrun process builds the same data.
* ``loss(model, batch)`` returns ``(scalar loss, {name: scalar})``; it must be a *mean* over
  the batch so that N processes with batch B/N give the gradient of one process with B, and
  it must call ``model(...)`` itself (under torchrun ``model`` is the
  DistributedDataParallel wrapper, whose forward synchronises the gradients; calling
  ``model.module.encoder(x)`` would bypass it).
* ``evaluate(model, loader, device)`` returns eval metrics; the default averages the
  metrics (and the loss) of ``loss`` over the eval set, weighted by batch size.
* ``collate`` (optional) is the DataLoader's ``collate_fn``.

A task module registers itself when imported; add it to :data:`TASK_MODULES` so the CLI
finds it by name.
'''

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from equivision._registry import import_each
from equivision.errors import ConfigError
from equivision.training.batches import batch_size_of, to_device

# Modules that register tasks when imported; a new task module is listed here.
TASK_MODULES: list[str] = [
    "equivision.training.toy",
    "equivision.tasks.recon",
    "equivision.tasks.recon_vn_global",
    "equivision.tasks.shapes_sphere",
    "equivision.tasks.rotmnist",
    "equivision.tasks.modelnet_points",
    "equivision.tasks.image_to_sphere",
    "equivision.tasks.view_synthesis",
    "equivision.tasks.pose_regression",
]

Batch = Any


class Task:
    """Base class of a training task; subclass it and decorate with :func:`register_task`."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type]
    model_name: ClassVar[str]
    best_metric: ClassVar[str] = "loss"
    best_mode: ClassVar[str] = "min"
    collate: ClassVar[Callable[[list[Any]], Batch] | None] = None
    find_unused_parameters: ClassVar[bool] = False
    """Passed to DistributedDataParallel: True when some parameters get no gradient."""
    description: ClassVar[str] = ""
    """One line for ``equivision train --list``; empty = the first sentence of the task
    module's docstring."""

    def build_model(self, cfg: Any) -> torch.nn.Module:
        from equivision.models import build_model

        return build_model(self.model_name, cfg.model)

    def datasets(self, cfg: Any) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor,
                                                                  dict[str, torch.Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]:
        sums: dict[str, float] = {}
        count = 0
        for batch in loader:
            batch = to_device(batch, device)
            n = batch_size_of(batch)
            loss, metrics = self.loss(model, batch)
            for k, v in {"loss": loss, **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
        if count == 0:
            raise ConfigError(f"task {self.name!r}: the eval dataset is empty")
        return {k: v / count for k, v in sums.items()}


_TASKS: dict[str, type[Task]] = {}
_import_errors: dict[str, str | None] = {}  # module -> why it failed (None: imported)


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator registering a :class:`Task` subclass under ``name``."""

    def deco(cls: type[Task]) -> type[Task]:
        old = _TASKS.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"task {name!r} is already registered by {old.__module__}")
        for attr in ("config_cls", "model_name"):
            if not hasattr(cls, attr):
                raise TypeError(f"task {name!r} must define {attr}")
        if not dataclasses.is_dataclass(cls.config_cls) or "model" not in {
                f.name for f in dataclasses.fields(cls.config_cls)}:
            raise TypeError(f"task {name!r}: config_cls must be a dataclass with a 'model' "
                            "field (the config of the registered model model_name)")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def _import_all() -> None:
    import_each(TASK_MODULES, _import_errors)


def list_tasks() -> list[str]:
    _import_all()
    return sorted(_TASKS)


def describe_task(name: str) -> str:
    """One line about task ``name``: its ``description`` or the first sentence of its
    module's docstring, with the model it trains."""
    cls = type(get_task(name))
    text = cls.description
    if not text:
        import sys

        doc = (sys.modules[cls.__module__].__doc__ or "").strip()
        text = " ".join(doc.split("\n\n")[0].split()).split(". ")[0].rstrip(".")
        # plain text for a terminal: no reST roles, no "(equivision train x)" asides
        text = re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("``", "")
        text = re.sub(r"\s*\([^()]*equivision (train|eval)[^()]*\)", "", text)
        text = re.sub(r"^The \S+ task: ", "", text)
        text = text[:1].upper() + text[1:]
    return f"{text} (model {cls.model_name})" if text else f"model {cls.model_name}"


def get_task(name: str) -> Task:
    """A fresh instance of the task registered as ``name``."""
    _import_all()
    if name not in _TASKS:
        failed = "; ".join(f"{m} ({err})" for m, err in _import_errors.items() if err)
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}"
                          + (f"; modules that failed to import: {failed}" if failed else ""))
    return _TASKS[name]()
