"""The shapes-sphere experiment: the spherical CNN against the equirectangular baseline
(:mod:`equivision.tasks.shapes_sphere`) on every collection and protocol, three seeds each.

``python -m equivision.experiments.shapes_sphere OUT_DIR [SHARD]`` runs (a share of) it and
``OUT_DIR --summary`` prints its table (:mod:`equivision.experiments.runner`).

``python -m equivision.experiments.shapes_sphere OUT_DIR --collection modelnet10 [SHARD/NSHARDS]``
runs the ModelNet10 experiment instead (:func:`run_modelnet10_experiment`: the six-channel
teacher's recipe at half its steps, official split, resumable across sessions, and ShapeNet's
objects of the shared classes as a second test);
``OUT_DIR --collection modelnet10 --summary`` prints its table; ``--recipe CONFIG`` trains
both models with a training config's recipe instead (:data:`MODELNET10_FINAL_RECIPE` is the
packaged teacher's).
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from equivision.data.registry import class_names
from equivision.data.shapes_sphere import PROTOCOLS, shared_class_signals
from equivision.errors import ConfigError
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
    run_resumable_jobs,
    train_or_resume,
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


#: The ModelNet10 experiment's schedule: the six-channel teacher's recipe
#: (``configs/shapes_sphere_modelnet10_hull6.json``: AdamW, weight decay 0.05) at half its
#: steps, so the 12 runs fit in one session on two cores, with a single eval at the end.
MODELNET10_TRAIN = {**EXPERIMENT_TRAIN, "steps": 2000, "optimizer": "adamw", "weight_decay": 0.05,
                    "warmup_steps": 50, "eval_every": 2000, "checkpoint_every": 250}
#: Its data: 16 cached rotations per training mesh, each turned about the pole afresh every
#: time it is drawn; 4 seeded rotations per test mesh; the six ray-cast channels of Esteves
#: et al. (distance, cos and sin of the hit angle, for the mesh and for its convex hull).
MODELNET10_DATA: dict[str, object] = {
    "train_rotations": 16, "test_rotations": 4, "augment_azimuth": True,
    "channels": ["distance", "cosine", "sine", "hull_distance", "hull_cosine", "hull_sine"]}
#: Model fields shared by both models (the teacher's dropout; one input channel per ray-cast one).
MODELNET10_MODEL: dict[str, object] = {"dropout": 0.3, "in_channels": 6}
#: The collection whose objects of ModelNet10's classes are the second test set.
MODELNET10_CROSS = "shapenet10"
#: Pose of each protocol's test signals.
TEST_KIND = {"upright-upright": "upright", "so3-so3": "so3", "upright-so3": "so3"}


#: The packaged teacher's recipe (``shapes_sphere_modelnet10_mixup``): the six-channel recipe at
#: 4,000 steps with weight averaging, anisotropically scaled training copies and mixup (a path
#: relative to the repository root).
MODELNET10_FINAL_RECIPE = "configs/shapes_sphere_modelnet10_hull6_scaled_mixup.json"
#: A seed's trainings in the order they run: shard ``k`` of 2 gets one spherical and one
#: baseline training of every seed (the spherical CNN costs about twice the baseline), the
#: SO(3)-trained spherical CNN first.
MODELNET10_ORDER = (("spherical", "so3"), ("spherical", "upright"), ("baseline", "upright"),
                    ("baseline", "so3"))


def modelnet10_jobs(seeds: tuple[int, ...] = (0, 1, 2)) -> list[tuple[int, str, str]]:
    """``(seed, model, training)`` of the ModelNet10 experiment, seed by seed
    (:data:`MODELNET10_ORDER`): 4 trainings a seed, whose models fill the 6 (model, protocol)
    cells."""
    return [(s, m, t) for s in seeds for m, t in MODELNET10_ORDER]


def recipe_from_config(path: str | Path) -> dict[str, dict]:
    """The recipe of a ``shapes-sphere`` training config (such as
    :data:`MODELNET10_FINAL_RECIPE`) as :func:`run_modelnet10_experiment`'s overrides:
    ``{"train": ..., "data": ..., "model": ...}``. Kept out: the seed (each job has its own),
    the task's collection, protocol and class list (the experiment's), the model's class count;
    evaluation runs once, at the final step (the reported model is the final one). A file that
    is missing, not JSON or not a ``shapes-sphere`` config raises :class:`ConfigError`."""
    import json

    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"recipe {path}: cannot read it ({e.strerror or e})") from e
    except ValueError as e:
        raise ConfigError(f"recipe {path}: not JSON ({e})") from e
    if not (isinstance(cfg, dict) and cfg.get("task_name") == "shapes-sphere"
            and isinstance(cfg.get("train"), dict) and isinstance(cfg.get("task"), dict)):
        raise ConfigError(f"recipe {path}: not a shapes-sphere training config (task_name, train, task)")
    train_cfg = {k: v for k, v in cfg["train"].items() if k != "seed"}
    train_cfg["eval_every"] = int(train_cfg.get("steps", MODELNET10_TRAIN["steps"]))
    task = dict(cfg["task"])
    model = {k: v for k, v in (task.pop("model", None) or {}).items() if k != "num_classes"}
    data = {k: v for k, v in task.items() if k not in ("collection", "protocol", "classes")}
    return {"train": train_cfg, "data": data, "model": model}


def _model_fields(model: str, shared: dict) -> dict:
    """The recipe's model fields for ``model``: all of them for the spherical CNN; for the
    baseline only those of :data:`MODELNET10_MODEL` (dropout, input channels), since its
    other fields (its channel list) keep it parameter-matched."""
    if model == "baseline":
        return {k: v for k, v in shared.items() if k in MODELNET10_MODEL}
    return dict(shared)


def _modelnet10_job(seed: int, model: str, training: str, train_cfg: dict, data: dict,
                    shared_model: dict, model_cfgs: dict[str, dict]) -> Job:
    def fn(run_dir: Path) -> Row:
        task = get_task(EXPERIMENT_MODELS[model])
        task_cfg = {"collection": "modelnet10", "protocol": EXPERIMENT_TRAINING[training][0], **data,
                    "model": {"num_classes": len(class_names("modelnet10")),
                              **_model_fields(model, shared_model), **model_cfgs.get(model, {})}}
        res = train_or_resume(task, {"train": {**train_cfg, "seed": seed}, "task": task_cfg}, run_dir,
                              progress=False)
        cfg = load_run_config(run_dir, task).task
        net = load(run_dir, model=task.model_name, checkpoint="latest")
        row = {"collection": "modelnet10", "model": model, "training": training, "seed": seed,
               "params": count_parameters(net), "train_accuracy": res.train_metrics.get("accuracy")}
        for protocol in EXPERIMENT_TRAINING[training]:
            split = cached_split(replace(cfg.data_config(), protocol=protocol), cfg.cache_dir)
            row[protocol] = accuracy(net, split.test_x, split.test_y)
            x, y, _ = shared_class_signals(MODELNET10_CROSS, "modelnet10", kind=TEST_KIND[protocol],
                                           bandwidth=cfg.bandwidth, rotations=cfg.test_rotations,
                                           rotation_seed=cfg.rotation_seed, channels=cfg.channels)
            row[f"{MODELNET10_CROSS}:{protocol}"] = accuracy(net, x, y)
        return row
    return run_name("modelnet10", model, training, seed=seed), fn


def run_modelnet10_experiment(out_dir: str, seeds: tuple[int, ...] = (0, 1, 2), shard: int = 0,
                              nshards: int = 1, *, train_cfg: dict | None = None, data: dict | None = None,
                              model_cfgs: dict[str, dict] | None = None,
                              recipe: str | Path | None = None) -> list[Row]:
    """Train the spherical CNN and the baseline on ModelNet10's training folder, upright and
    SO(3)-posed, for every seed (:func:`modelnet10_jobs`), into
    ``out_dir/modelnet10_<model>_<training>_s<seed>``; each row holds the final model's
    accuracy on ModelNet10's test folder and on ShapeNet's chairs, bathtubs and toilets
    (``shapenet10:<protocol>``, :func:`~equivision.data.shapes_sphere.shared_class_signals`)
    under every protocol it serves. ``train_cfg``, ``data`` and ``model_cfgs`` (model →
    config fields) override :data:`MODELNET10_TRAIN`, :data:`MODELNET10_DATA` and
    :data:`MODELNET10_MODEL` (a smoke test's tiny runs). ``recipe``: a training config whose
    schedule, data and model fields (:func:`recipe_from_config`) replace those three first,
    for both models (the baseline takes the model fields it has), e.g.
    :data:`MODELNET10_FINAL_RECIPE`. The folder records the recipe it was started with
    (``recipe.json``): continuing it under another one raises :class:`ConfigError`. Jobs
    outlive a session: ``SHARD/NSHARDS`` processes share them, and a job cut short continues
    from its checkpoints (:func:`~equivision.experiments.runner.run_resumable_jobs`)."""
    import json

    from equivision.io import atomic_path

    base = recipe_from_config(recipe) if recipe is not None else {"train": {}, "data": {}, "model": {}}
    t = {**MODELNET10_TRAIN, **base["train"], **(train_cfg or {})}
    d = {**MODELNET10_DATA, **base["data"], **(data or {})}
    m = {**MODELNET10_MODEL, **base["model"]}
    record = {"recipe": str(recipe) if recipe is not None else None, "train": t, "data": d, "model": m,
              "model_cfgs": model_cfgs or {}}
    out = Path(out_dir)
    stored = out / "recipe.json"
    if stored.is_file():
        try:
            before = json.loads(stored.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ConfigError(f"{stored} is not readable JSON ({e})") from e
        if {k: v for k, v in before.items() if k != "recipe"} != {k: v for k, v in record.items()
                                                                   if k != "recipe"}:
            was = before.get('recipe') or 'the built-in one'
            raise ConfigError(f"{out} was started with another recipe ({was}"
                              f"); continue it with that one, or use another folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(stored) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    jobs = [_modelnet10_job(*j, t, d, m, model_cfgs or {}) for j in modelnet10_jobs(seeds)]
    return run_resumable_jobs(out_dir, jobs, shard, nshards)


def summarize_modelnet10(out_dir: str) -> str:
    """The ModelNet10 experiment's Markdown table (accuracy %, mean ± std over the seeds
    found), ModelNet10's test folder first, then ShapeNet's objects of the shared classes."""
    rows = [r for r in read_results(out_dir) if r.get("collection") == "modelnet10"]
    body: list[list[str]] = []
    for model in EXPERIMENT_MODELS:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        cells = []
        for prefix in ("", f"{MODELNET10_CROSS}:"):
            acc = {p: [r[prefix + p] for r in mine if prefix + p in r] for p in PROTOCOLS}
            cells += [mean_std(acc["upright-upright"]), mean_std(acc["so3-so3"]),
                      mean_std(acc["upright-so3"])]
            if not prefix:
                up, up_so3 = acc["upright-upright"], acc["upright-so3"]
                drop = statistics.mean(up) - statistics.mean(up_so3) if up and up_so3 else float("nan")
                cells.append(f"{drop:.2f}")
        body.append([model, *cells, f"{int(mine[0]['params']):,}", minutes_per_run(mine)])
    table = markdown_table(["model", "z → z", "SO3 → SO3", "z → SO3", "drop z → SO3",
                            "ShapeNet z → z", "ShapeNet SO3 → SO3", "ShapeNet z → SO3",
                            "parameters", "minutes per run"], body)
    seeds = sorted({int(r["seed"]) for r in rows})
    recipe = _recorded_recipe(Path(out_dir))
    return table + f"\nseeds {', '.join(map(str, seeds))}; recipe: {recipe}\n"


def _recorded_recipe(out: Path) -> str:
    """The recipe an experiment folder records (``recipe.json``), for under its table."""
    import json

    try:
        rec = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not recorded (a folder from before recipes were recorded)"
    t, d = rec.get("train", {}), rec.get("data", {})
    copies = d.get("train_scalings", 0) if d.get("train_scale_range") else 0
    return (f"{rec.get('recipe') or 'the built-in MODELNET10_TRAIN/DATA/MODEL'} ({t.get('steps')} steps, "
            f"mixup {d.get('mixup_alpha', 0)}, scaled copies {copies})")


#: Experiments selectable with ``--collection``: (run, summary).
EXPERIMENTS = {"all": (run_experiment, summarize_experiment),
               "modelnet10": (run_modelnet10_experiment, summarize_modelnet10)}


def cli(argv: list[str]) -> int:
    """``OUT_DIR [--collection NAME] [SHARD | --summary]`` (see the module docstring)."""
    import sys

    args = list(argv)
    name = "all"
    if "--collection" in args:
        i = args.index("--collection")
        if i + 1 >= len(args):
            print("error: --collection needs a name (modelnet10)", file=sys.stderr)
            return 2
        name = args.pop(i + 1)
        args.pop(i)
        if name not in EXPERIMENTS:
            err = ConfigError(f"unknown experiment collection {name!r}; known: {', '.join(EXPERIMENTS)}")
            print(f"error: {err}", file=sys.stderr)
            return 2
    run, summarize = EXPERIMENTS[name]
    if "--recipe" in args:
        i = args.index("--recipe")
        if name != "modelnet10" or i + 1 >= len(args):
            print("error: --recipe CONFIG goes with --collection modelnet10 and needs a config file",
                  file=sys.stderr)
            return 2
        path = args.pop(i + 1)
        args.pop(i)
        run = functools.partial(run, recipe=path)
    return main(args, run, summarize)


if __name__ == "__main__":
    import sys

    raise SystemExit(cli(sys.argv[1:]))
