"""Rotation-invariant 3D shape classification from ray-cast spherical signals.

``equivision train shapes-sphere`` trains the spherical CNN; ``shapes-sphere-baseline`` trains
the non-equivariant 2D CNN on the same equirectangular maps (:mod:`equivision.models.equirect_cnn`).
Data and protocols: :mod:`equivision.data.shapes_sphere`. Eval metric: ``accuracy`` (percent)
on the protocol's test signals (the best-checkpoint metric).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, make_dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from equivision.data.registry import class_names
from equivision.data.shapes_sphere import COLLECTIONS, PROTOCOLS, SphereDataConfig, make_sphere_split
from equivision.errors import ConfigError
from equivision.models.equirect_cnn import EquirectCNNConfig
from equivision.models.spherical_cnn import SphericalCNNConfig
from equivision.training.config import check_fields
from equivision.training.tasks import Task, register_task


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
])
_DataFieldsBase.__module__ = __name__


@dataclass
class _DataFields(_DataFieldsBase):  # type: ignore[misc, valid-type]
    """The data fields (see :class:`~equivision.data.shapes_sphere.SphereDataConfig`), the
    cache folder, and ``classes``: the label order of ``collection`` (filled from the
    registry when empty, so run folders and exported checkpoints record it; a different
    list is refused: the labels come from the registry)."""

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if self.collection not in COLLECTIONS or self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"task.collection must be one of {COLLECTIONS} and task.protocol one of {PROTOCOLS}"
            )
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
def _split(cfg: SphereDataConfig, cache_dir: str):
    return make_sphere_split(cfg, cache_dir)


class _ShapesSphereTask(Task):
    best_metric, best_mode = "accuracy", "max"

    def datasets(self, cfg: _DataFields) -> tuple[Dataset, Dataset]:
        split = _split(cfg.data_config(), cfg.cache_dir)
        n_classes = len(split.classes)
        if cfg.model.num_classes != n_classes:  # type: ignore[attr-defined]
            raise ConfigError(f"task.model.num_classes must be {n_classes} for {cfg.collection}")
        return TensorDataset(split.train_x, split.train_y), TensorDataset(split.test_x, split.test_y)

    def loss(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean() * 100
        return loss, {"accuracy": acc.detach()}


@register_task("shapes-sphere")
class ShapesSphereTask(_ShapesSphereTask):
    config_cls = ShapesSphereConfig
    model_name = "spherical_cnn"


@register_task("shapes-sphere-baseline")
class ShapesSphereBaselineTask(_ShapesSphereTask):
    config_cls = ShapesSphereBaselineConfig
    model_name = "equirect_cnn"


# ----------------------------------------------------------------------------- experiment

#: Training schedule of every experiment run (the packaged default's, with a single eval at
#: the end: the reported accuracy is the final model's, never a checkpoint picked on the test set).
EXPERIMENT_TRAIN = {"steps": 300, "batch_size": 32, "optimizer": "adam", "lr": 3e-3,
                    "schedule": "cosine", "warmup_steps": 20, "eval_every": 300,
                    "checkpoint_every": 300, "log_every": 50, "device": "cpu"}
#: Data of each collection. ShapeNet: 58 training / 16 test objects; procedural: 8 families,
#: 16 training and 8 test shapes each.
EXPERIMENT_DATA: dict[str, dict[str, int]] = {
    "shapenet10": {"train_rotations": 16, "test_rotations": 8},
    "procedural": {"train_rotations": 8, "test_rotations": 4, "procedural_train_per_family": 16,
                   "procedural_test_per_family": 8},
}
#: Training rotations → the protocols whose test sets the trained model is evaluated on (an
#: upright-trained model serves both upright/upright and upright/SO3, as in the literature).
EXPERIMENT_TRAINING = {"upright": ("upright-upright", "upright-so3"), "so3": ("so3-so3",)}
EXPERIMENT_MODELS = {"spherical": "shapes-sphere", "baseline": "shapes-sphere-baseline"}


def experiment_jobs(seeds: tuple[int, ...] = (0, 1, 2)) -> list[tuple[int, str, str, str]]:
    """``(seed, collection, model, training)`` in the order they run: seed by seed, so a run
    cut short still holds complete comparisons."""
    return [(s, c, m, t) for s in seeds for c in EXPERIMENT_DATA for t in EXPERIMENT_TRAINING
            for m in EXPERIMENT_MODELS]


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """Percent of signals ``x`` ``(N, C, 2B, 2B)`` whose predicted class is ``y`` ``(N,)``."""
    model.eval()
    right = sum(int((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
                for i in range(0, len(y), batch_size))
    return 100.0 * right / max(len(y), 1)


def run_experiment(out_dir: str, seeds: tuple[int, ...] = (0, 1, 2), shard: int = 0) -> list[dict]:
    """Train the spherical CNN and the baseline for every collection, training rotation and
    seed (:func:`experiment_jobs`) into ``out_dir/<collection>_<model>_<training>_s<seed>``;
    each row holds the final model's accuracy on the test set of every protocol it serves.
    Several processes may share the work (:func:`equivision.training.experiment.run_jobs`)."""
    from equivision.models import count_parameters, load
    from equivision.training import get_task, load_run_config, train
    from equivision.training.experiment import run_jobs

    def job(seed: int, collection: str, model: str, training: str):
        def fn(run_dir):
            task = get_task(EXPERIMENT_MODELS[model])
            n_classes = len(class_names(collection))
            task_cfg = {"collection": collection, "protocol": EXPERIMENT_TRAINING[training][0],
                        **EXPERIMENT_DATA[collection],
                        "model": {"num_classes": n_classes, "dropout": 0.1}}
            res = train(task, {"train": {**EXPERIMENT_TRAIN, "seed": seed}, "task": task_cfg},
                        run_dir, overwrite=True, progress=False)
            cfg = load_run_config(run_dir, task).task
            net = load(run_dir, model=task.model_name, checkpoint="latest")
            row = {"collection": collection, "model": model, "training": training, "seed": seed,
                   "params": count_parameters(net), "train_accuracy": res.train_metrics.get("accuracy")}
            for protocol in EXPERIMENT_TRAINING[training]:
                split = _split(replace(cfg.data_config(), protocol=protocol), cfg.cache_dir)
                row[protocol] = accuracy(net, split.test_x, split.test_y)
            return row
        return f"{collection}_{model}_{training}_s{seed}", fn

    return run_jobs(out_dir, [job(*j) for j in experiment_jobs(seeds)], shard)


def summarize_experiment(out_dir: str) -> str:
    """A Markdown table (accuracy %, mean ± std over the seeds found) from the results of
    :func:`run_experiment`."""
    import statistics

    from equivision.training.experiment import mean_std, read_results

    rows = read_results(out_dir)
    out = ["| collection | model | upright → upright | SO3 → SO3 | upright → SO3 | "
           "drop to SO3/SO3 | drop to upright/SO3 | parameters | minutes per run |",
           "|---|---|---|---|---|---|---|---|---|"]
    for collection in EXPERIMENT_DATA:
        for model in EXPERIMENT_MODELS:
            mine = [r for r in rows if r["collection"] == collection and r["model"] == model]
            if not mine:
                continue
            acc = {p: [r[p] for r in mine if p in r] for p in PROTOCOLS}
            mean = {p: statistics.mean(v) if v else float("nan") for p, v in acc.items()}
            out.append(
                f"| {collection} | {model} | {mean_std(acc['upright-upright'])} | "
                f"{mean_std(acc['so3-so3'])} | {mean_std(acc['upright-so3'])} | "
                f"{mean['upright-upright'] - mean['so3-so3']:.2f} | "
                f"{mean['upright-upright'] - mean['upright-so3']:.2f} | {int(mine[0]['params']):,} | "
                f"{statistics.mean(float(r['seconds']) for r in mine) / 60:.1f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    # python -m equivision.tasks.shapes_sphere OUT_DIR [SHARD]: run (a share of) the experiment
    # python -m equivision.tasks.shapes_sphere OUT_DIR --summary: print the table
    import sys

    from equivision.training.experiment import main

    raise SystemExit(main(sys.argv[1:], run_experiment, summarize_experiment))
