"""The shapes-sphere experiment: the spherical CNN against the equirectangular baseline
(:mod:`equivision.tasks.shapes_sphere`) on every collection and protocol, three seeds each.

``python -m equivision.experiments.shapes_sphere OUT_DIR [SHARD]`` runs (a share of) it and
``OUT_DIR --summary`` prints its table (:mod:`equivision.experiments.runner`).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import torch

from equivision.data.registry import class_names
from equivision.data.shapes_sphere import PROTOCOLS
from equivision.experiments.runner import (
    Job,
    Row,
    main,
    markdown_table,
    mean_std,
    minutes_per_run,
    read_results,
    run_jobs,
    run_name,
)
from equivision.models import count_parameters, load
from equivision.tasks.shapes_sphere import cached_split
from equivision.training import get_task, load_run_config, train

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


def _job(seed: int, collection: str, model: str, training: str) -> Job:
    def fn(run_dir: Path) -> Row:
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
            split = cached_split(replace(cfg.data_config(), protocol=protocol), cfg.cache_dir)
            row[protocol] = accuracy(net, split.test_x, split.test_y)
        return row
    return run_name(collection, model, training, seed=seed), fn


def run_experiment(out_dir: str, seeds: tuple[int, ...] = (0, 1, 2), shard: int = 0) -> list[Row]:
    """Train the spherical CNN and the baseline for every collection, training rotation and
    seed (:func:`experiment_jobs`) into ``out_dir/<collection>_<model>_<training>_s<seed>``;
    each row holds the final model's accuracy on the test set of every protocol it serves.
    Several processes may share the work (:func:`equivision.experiments.runner.run_jobs`)."""
    return run_jobs(out_dir, [_job(*j) for j in experiment_jobs(seeds)], shard)


def summarize_experiment(out_dir: str) -> str:
    """A Markdown table (accuracy %, mean ± std over the seeds found) from the results of
    :func:`run_experiment`."""
    rows = read_results(out_dir)
    body: list[list[str]] = []
    for collection in EXPERIMENT_DATA:
        for model in EXPERIMENT_MODELS:
            mine = [r for r in rows if r["collection"] == collection and r["model"] == model]
            if not mine:
                continue
            acc = {p: [r[p] for r in mine if p in r] for p in PROTOCOLS}
            mean = {p: statistics.mean(v) if v else float("nan") for p, v in acc.items()}
            body.append([collection, model, mean_std(acc["upright-upright"]),
                         mean_std(acc["so3-so3"]), mean_std(acc["upright-so3"]),
                         f"{mean['upright-upright'] - mean['so3-so3']:.2f}",
                         f"{mean['upright-upright'] - mean['upright-so3']:.2f}",
                         f"{int(mine[0]['params']):,}", minutes_per_run(mine)])
    return markdown_table(["collection", "model", "upright → upright", "SO3 → SO3",
                           "upright → SO3", "drop to SO3/SO3", "drop to upright/SO3",
                           "parameters", "minutes per run"], body)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:], run_experiment, summarize_experiment))
