"""Rotation-invariant 3D shape classification from ray-cast spherical signals.

``equivision train shapes-sphere`` trains the spherical CNN; ``shapes-sphere-baseline`` trains
the non-equivariant 2D CNN on the same equirectangular maps (:mod:`equivision.models.equirect_cnn`).
Data and protocols: :mod:`equivision.data.shapes_sphere`. Eval metric: ``accuracy`` (percent)
on the protocol's test signals (the best-checkpoint metric).
"""

from __future__ import annotations

import math
import os
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from equivision.data.registry import class_names
from equivision.data.shapes_sphere import COLLECTIONS, PROTOCOLS, SphereDataConfig, make_sphere_split
from equivision.errors import CheckpointError, ConfigError
from equivision.models.equirect_cnn import EquirectCNNConfig
from equivision.models.spherical_cnn import SphericalCNNConfig
from equivision.render.sphere import CHANNELS
from equivision.training.config import check_fields
from equivision.training.tasks import Task, register_task

if __name__ == "__main__":
    # The experiment's old command, forwarded before this module registers its tasks: the
    # experiment imports this module under its real name, which registers them once.
    import runpy
    import sys

    print("note: python -m equivision.tasks.shapes_sphere is deprecated; use "
          "python -m equivision.experiments.shapes_sphere", file=sys.stderr)
    runpy.run_module("equivision.experiments.shapes_sphere", run_name="__main__", alter_sys=True)


def _data_field_specs() -> list[tuple[str, typing.Any, typing.Any]]:
    hints = typing.get_type_hints(SphereDataConfig)
    return [(f.name, hints[f.name], field(default=f.default)) for f in fields(SphereDataConfig)]


# The data fields are SphereDataConfig's, flattened into the task's JSON object ("task":
# {"collection": ..., "bandwidth": ...}) so each is defined once there. SphereDataConfig is
# frozen (a cache key), which a mutable task config cannot inherit from; hence the generated
# base. The task adds where the cache lives and the label order its checkpoints carry.
_DataFieldsBase = make_dataclass("_DataFieldsBase", [
    *_data_field_specs(),
    ("cache_dir", str, field(default="runs/sphere-data")),
    ("classes", list[str], field(default_factory=list)),
    ("augment_azimuth", bool, field(default=False)),
    ("label_smoothing", float, field(default=0.0)),
    ("mixup_alpha", float, field(default=0.0)),
    ("distill_from", list[str], field(default_factory=list)),
    ("distill_weight", float, field(default=0.0)),
    ("distill_temperature", float, field(default=4.0)),
])
_DataFieldsBase.__module__ = __name__


@dataclass
class _DataFields(_DataFieldsBase):  # type: ignore[misc, valid-type]
    """The data fields (see :class:`~equivision.data.shapes_sphere.SphereDataConfig`), the
    cache folder, ``classes``: the label order of ``collection`` (filled from the registry
    when empty, so run folders and exported checkpoints record it; a different list is
    refused: the labels come from the registry), and ``augment_azimuth``: turn each training
    signal about the grid's pole by a fresh random multiple of the grid step every time it is
    drawn (a roll of the azimuth axis, exact on the grid), so a fixed set of cached rotations
    yields new poses every epoch at no ray-casting cost. ``channels`` are the ray-cast
    channels (:data:`~equivision.render.sphere.CHANNELS`), one per input channel of the model
    (``task.model.in_channels``). ``label_smoothing`` in [0, 1): the training loss's
    cross-entropy target puts that much mass uniformly over the classes (evaluation losses
    stay plain cross-entropy, so they compare across runs). ``mixup_alpha`` ``α ≥ 0`` (0: off):
    mixup (Zhang et al. 2018) on training batches, each batch replaced by ``λ·x + (1 − λ)·x[π]``
    for a random permutation ``π`` and ``λ ~ Beta(α, α)``, the loss ``λ·CE(y) + (1 − λ)·CE(y[π])``.
    A mixture of two signals is rotated as each is, so the equivariance of the network is
    untouched; not combined with distillation.

    ``distill_from``: trained spherical CNNs (packaged names or run folders, whose *final*
    checkpoint is read) whose averaged class probabilities at ``distill_temperature`` the
    training loss also matches (knowledge distillation, Hinton et al. 2015): the loss is
    ``(1 − w)·CE + w·T²·KL(teachers ‖ student)`` with ``w = distill_weight`` in (0, 1]. The
    teachers' probabilities are computed once per cached training signal, before any azimuth
    roll (the teachers are rotation-invariant up to their measured error); evaluation losses
    stay plain cross-entropy."""

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"task.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (math.isfinite(self.mixup_alpha) and self.mixup_alpha >= 0.0):
            raise ConfigError(f"task.mixup_alpha must be a finite number >= 0, got {self.mixup_alpha}")
        if self.mixup_alpha > 0 and self.distill_from:
            raise ConfigError("task.mixup_alpha and task.distill_from do not go together: mixup mixes the "
                              "labels, distillation matches the teachers' probabilities of unmixed signals")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ConfigError(f"task.distill_weight must be in [0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ConfigError(f"task.distill_temperature must be > 0, got {self.distill_temperature}")
        if (self.distill_weight > 0) != bool(self.distill_from):
            raise ConfigError("task.distill_from and task.distill_weight go together: list the teachers "
                              "and give a weight in (0, 1], or neither")
        if not all(isinstance(t, str) and t for t in self.distill_from):
            raise ConfigError(f"task.distill_from must list packaged names or run folders, got "
                              f"{self.distill_from!r}")
        if self.collection not in COLLECTIONS or self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"task.collection must be one of {COLLECTIONS} and task.protocol one of {PROTOCOLS}"
            )
        chans = list(self.channels)
        if not chans or any(c not in CHANNELS for c in chans) or len(set(chans)) != len(chans):
            raise ConfigError(f"task.channels must be a non-empty list of distinct names from {CHANNELS}, "
                              f"got {chans}")
        model = getattr(self, "model", None)
        if model is not None and model.in_channels != len(chans):
            raise ConfigError(f"task.model.in_channels ({model.in_channels}) must equal the number of "
                              f"task.channels ({len(chans)}: {', '.join(chans)})")
        expected = list(class_names(self.collection))
        if not self.classes:
            self.classes = expected
        elif list(self.classes) != expected:
            raise ConfigError(f"task.classes must be the label order of {self.collection} "
                              f"({', '.join(expected)}) or empty, got {', '.join(self.classes)}")

    def data_config(self) -> SphereDataConfig:
        return SphereDataConfig(**{f.name: getattr(self, f.name) for f in fields(SphereDataConfig)})


@dataclass
class ShapesSphereConfig(_DataFields):
    model: SphericalCNNConfig = field(default_factory=SphericalCNNConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model.bandwidths[0] != self.bandwidth:
            raise ConfigError(
                f"task.model.bandwidths[0] ({self.model.bandwidths[0]}) must equal "
                f"task.bandwidth ({self.bandwidth}): the network reads that grid"
            )


@dataclass
class ShapesSphereBaselineConfig(_DataFields):
    model: EquirectCNNConfig = field(default_factory=EquirectCNNConfig)


@lru_cache(maxsize=4)
def cached_split(cfg: SphereDataConfig, cache_dir: str):
    return make_sphere_split(cfg, cache_dir)


def roll_azimuth(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Signals ``(N, C, 2B, 2B)`` each rotated about the grid's pole (+z) by a uniformly random
    multiple of ``2π / 2B``: a roll of the last (azimuth) axis, one shift per signal."""
    n, w = x.shape[0], x.shape[-1]
    shift = torch.randint(0, w, (n,), generator=generator, device=x.device)
    idx = (torch.arange(w, device=x.device)[None, :] - shift[:, None]) % w  # (N, 2B)
    return x.gather(-1, idx[:, None, None, :].expand_as(x))


def distillation_targets(teachers: list[torch.nn.Module], x: torch.Tensor, temperature: float,
                         batch_size: int = 64) -> torch.Tensor:
    """The teachers' class probabilities at ``temperature``, averaged: ``(N, K)`` for signals
    ``x`` ``(N, C, 2B, 2B)`` (float32, no gradient)."""
    parts = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            parts.append(sum(t(xb.to(next(t.parameters()).device)).float().cpu().div(temperature).softmax(-1)
                             for t in teachers) / len(teachers))
    return torch.cat(parts)


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(targets ‖ softmax(logits / T))``, batch mean: logits ``(B, K)``, targets
    ``(B, K)`` probabilities. The ``T²`` keeps its gradient's scale independent of ``T``."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 autocast: in float32
    logp = F.log_softmax(logits / temperature, dim=-1)
    return F.kl_div(logp, targets.to(logp.dtype), reduction="batchmean") * temperature ** 2


def load_distillation_teachers(cfg: _DataFields, n_classes: int) -> list[torch.nn.Module]:
    """The networks of ``cfg.distill_from`` (final checkpoints), each checked to read this
    data (bandwidth, channels) and to predict its classes in its label order."""
    teachers = []
    for name in cfg.distill_from:
        net = load_teacher(name, cfg.data_config(), checkpoint="latest")
        if tuple(net.input_channels) != tuple(cfg.channels):
            raise CheckpointError(f"{name} reads the channels {', '.join(net.input_channels)}, not this "
                                  f"task's {', '.join(cfg.channels)}: it cannot teach on these signals")
        task = stored_task_config(name)
        collection = task.get("collection")
        recorded = task.get("classes") or (list(class_names(collection)) if collection in COLLECTIONS else [])
        if net.cfg.num_classes != n_classes or list(recorded) != list(cfg.classes):
            raise CheckpointError(f"{name} predicts other classes than {cfg.collection}'s "
                                  f"({', '.join(cfg.classes)}): it cannot teach this task")
        teachers.append(net)
    return teachers


class _ShapesSphereTask(Task):
    best_metric, best_mode = "accuracy", "max"
    augment_azimuth = False
    label_smoothing = 0.0
    mixup_alpha = 0.0
    distill_weight = 0.0
    distill_temperature = 1.0

    def datasets(self, cfg: _DataFields) -> tuple[Dataset, Dataset]:
        self.augment_azimuth = bool(cfg.augment_azimuth)
        self.label_smoothing = float(cfg.label_smoothing)
        self.mixup_alpha = float(cfg.mixup_alpha)
        self.distill_weight = float(cfg.distill_weight)
        self.distill_temperature = float(cfg.distill_temperature)
        split = cached_split(cfg.data_config(), cfg.cache_dir)
        n_classes = len(split.classes)
        if cfg.model.num_classes != n_classes:  # type: ignore[attr-defined]
            raise ConfigError(f"task.model.num_classes must be {n_classes} for {cfg.collection}")
        test = TensorDataset(split.test_x, split.test_y)
        if not cfg.distill_from:
            return TensorDataset(split.train_x, split.train_y), test
        teachers = load_distillation_teachers(cfg, n_classes)
        soft = distillation_targets(teachers, split.train_x, self.distill_temperature)
        return TensorDataset(split.train_x, split.train_y, soft), test

    def loss(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y, *soft = batch  # soft: the teachers' probabilities, on distilled training batches
        if self.augment_azimuth and model.training:
            # Draws from the global generator, which checkpoints save and --resume restores.
            x = roll_azimuth(x)
        if self.mixup_alpha > 0 and model.training:
            return self._mixup_loss(model, x, y)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if model.training else 0.0)
        if soft and model.training and self.distill_weight > 0:
            kd = distillation_loss(logits, soft[0], self.distill_temperature)
            loss = (1.0 - self.distill_weight) * loss + self.distill_weight * kd
        acc = (logits.argmax(-1) == y).float().mean() * 100
        return loss, {"accuracy": acc.detach()}

    def _mixup_loss(self, model: torch.nn.Module, x: torch.Tensor,
                    y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mixup of a training batch ``x`` ``(B, C, 2b, 2b)``: draws from the global generator
        (restored on --resume). Accuracy counts the label with the larger weight."""
        lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
        perm = torch.randperm(x.shape[0]).to(x.device)  # the CPU generator, which --resume restores
        logits = model(lam * x + (1.0 - lam) * x[perm])
        ls = self.label_smoothing
        loss = lam * F.cross_entropy(logits, y, label_smoothing=ls) + \
            (1.0 - lam) * F.cross_entropy(logits, y[perm], label_smoothing=ls)
        major = y if lam >= 0.5 else y[perm]
        acc = (logits.argmax(-1) == major).float().mean() * 100
        return loss, {"accuracy": acc.detach()}


@register_task("shapes-sphere")
class ShapesSphereTask(_ShapesSphereTask):
    config_cls = ShapesSphereConfig
    model_name = "spherical_cnn"


@register_task("shapes-sphere-baseline")
class ShapesSphereBaselineTask(_ShapesSphereTask):
    config_cls = ShapesSphereBaselineConfig
    model_name = "equirect_cnn"


def stored_task_config(name_or_run: str | os.PathLike[str]) -> dict:
    """The ``task`` section a packaged model (its metadata's ``config``) or a run folder
    (``config.json``) records; ``{}`` when it records none (checkpoints of early versions)."""
    import json
    from pathlib import Path

    from equivision.errors import CorruptFileError
    from equivision.models import PRETRAINED_DIR

    meta_path = PRETRAINED_DIR / f"{name_or_run}.json"
    cfg_path = Path(name_or_run) / "config.json"
    try:
        if meta_path.is_file():
            run_cfg = json.loads(meta_path.read_text(encoding="utf-8")).get("config") or {}
        elif cfg_path.is_file():
            run_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        else:
            return {}
    except (OSError, ValueError, AttributeError) as e:
        raise CorruptFileError(f"{name_or_run}: its configuration is not readable JSON ({e})") from e
    task = run_cfg.get("task") if isinstance(run_cfg, dict) else None
    return task if isinstance(task, dict) else {}


def recorded_channels(name_or_run: str | os.PathLike[str], in_channels: int) -> tuple[str, ...]:
    """The ray-cast channels a trained spherical CNN reads (its recorded ``task.channels``;
    :data:`~equivision.render.sphere.DEFAULT_CHANNELS` for runs from before the field existed),
    checked against its ``in_channels``: a :class:`CheckpointError` otherwise."""
    from equivision.render.sphere import DEFAULT_CHANNELS

    channels = stored_task_config(name_or_run).get("channels") or list(DEFAULT_CHANNELS)
    if not (isinstance(channels, list) and all(c in CHANNELS for c in channels)
            and len(channels) == in_channels):
        raise CheckpointError(f"{name_or_run}: task.channels must list {in_channels} of "
                              f"{CHANNELS}, got {channels!r}")
    return tuple(channels)


def teacher_channels(net: torch.nn.Module) -> tuple[str, ...]:
    """The channels to ray-cast for ``net``: those recorded on it as ``input_channels`` (by
    :func:`load_teacher`, ``load_classifier`` or the view datasets' teacher loader), else the
    defaults; a count other than the network's ``in_channels`` is a :class:`CheckpointError`."""
    from equivision.render.sphere import DEFAULT_CHANNELS

    channels = tuple(getattr(net, "input_channels", DEFAULT_CHANNELS))
    n = getattr(getattr(net, "cfg", None), "in_channels", len(channels))
    if len(channels) != n:
        raise CheckpointError(f"the spherical CNN reads {n} input channels, but {len(channels)} are "
                              f"recorded for it ({', '.join(channels)}); set its input_channels")
    return channels


def load_spherical_cnn(name_or_run: str | os.PathLike[str], device: str = "cpu",
                       checkpoint: str | int = "best") -> torch.nn.Module:
    """A trained spherical CNN (packaged name or run folder) in eval mode, with the ray-cast
    channels it was trained on recorded as ``input_channels`` (:func:`recorded_channels`),
    which :func:`teacher_channels` reads wherever it is cast for."""
    from equivision.models import load

    net = load(name_or_run, model="spherical_cnn", device=device, checkpoint=checkpoint)
    net.input_channels = recorded_channels(name_or_run, net.cfg.in_channels)  # type: ignore[union-attr]
    return net.eval()


def load_teacher(name_or_run: str, data: SphereDataConfig, device: str = "cpu",
                 checkpoint: str | int = "best") -> torch.nn.Module:
    """A trained spherical CNN (packaged name, e.g. ``shapes_sphere_modelnet10``, or run folder)
    whose feature maps are to be read on the signals of ``data`` (``features(x, layer)``), in
    eval mode. A network that reads another grid (its input bandwidth is not
    ``data.bandwidth``) or another number of channels than ``data.channels`` is a
    :class:`~equivision.errors.CheckpointError`: its layers would refuse, or worse misread,
    those signals."""
    net = load_spherical_cnn(name_or_run, device=device, checkpoint=checkpoint)
    cfg = net.cfg  # type: ignore[union-attr]
    if cfg.bandwidths[0] != data.bandwidth:
        raise CheckpointError(f"{name_or_run} reads bandwidth {cfg.bandwidths[0]} signals, but the "
                              f"{data.collection} data has bandwidth {data.bandwidth}; ray-cast at "
                              f"{cfg.bandwidths[0]} or pick a teacher of that bandwidth")
    if cfg.in_channels != len(data.channels):
        raise CheckpointError(f"{name_or_run} reads {cfg.in_channels} input channels, but the "
                              f"{data.collection} data has {len(data.channels)} "
                              f"({', '.join(data.channels)}); cast the channels it was trained on")
    return net
