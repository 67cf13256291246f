"""The Vector Neurons experiment: VN-PointNet, VN-DGCNN and the plain PointNet and DGCNN on
ModelNet10 (:mod:`equivision.tasks.modelnet_points`), trained upright-about-z and SO(3)-posed,
three seeds each; the z-trained models are scored on the z and the SO(3) test rotations
(z/z, z/SO3), the SO(3)-trained ones on SO(3) (SO3/SO3).

``python -m equivision.experiments.modelnet_points OUT_DIR [SHARD/NSHARDS] [--steps SPEC]
[--models LIST]`` runs (a share of) it; a run cut short when a session ends is continued from
its checkpoints by the next process of the same shard
(:func:`equivision.experiments.runner.run_resumable_jobs`). ``OUT_DIR --summary [--steps
SPEC] [--models LIST] [--sphere DIR]`` prints its table; ``--sphere`` adds the spherical
CNN's rows from the shapes-sphere ModelNet10 experiment's folder, when it holds any.
``--steps``: ``720`` (every model) or ``vn_dgcnn=360,dgcnn=720`` (the rest keep
:data:`DEFAULT_STEPS`); the step count is part of each run's name, so another schedule makes
new runs, and the summary shows the runs of the schedule it is given.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from equivision.errors import ConfigError
from equivision.experiments.runner import (
    Job,
    Row,
    listed_rows,
    main,
    markdown_table,
    mean_std,
    minutes_per_run,
    read_results,
    run_name,
    run_resumable_jobs,
    train_or_resume,
)

#: Model → task.
MODELS = {"vn_pointnet": "modelnet-vn-pointnet", "vn_dgcnn": "modelnet-vn-dgcnn",
          "pointnet": "modelnet-pointnet", "dgcnn": "modelnet-dgcnn"}
#: Training rotations → (the task's protocol, the test rotations the model is scored on).
TRAININGS = {"z": ("z-z", ("z", "so3")), "so3": ("so3-so3", ("so3",))}
#: Training steps of 32 clouds per model (1,167 training clouds: 36.5 steps an epoch).
DEFAULT_STEPS = {m: 720 for m in MODELS}
#: The schedule of the shipped ``configs/vn_*.json`` with a single eval at the end (the
#: reported accuracy is the final model's), checkpoints every 60 steps and 10 minutes.
EXPERIMENT_TRAIN: dict[str, Any] = {"batch_size": 32, "optimizer": "adam", "lr": 1e-3,
                                    "weight_decay": 1e-4, "schedule": "cosine", "log_every": 20,
                                    "checkpoint_every": 60, "checkpoint_minutes": 10.0,
                                    "device": "cpu"}
#: Random rotations per test cloud in the measured invariance error.
INVARIANCE_ROTATIONS = 2
#: Protocol cells of the table, as the rows' keys.
CELLS = ("z-z", "z-so3", "so3-so3")


def parse_steps(spec: str | None) -> dict[str, int]:
    """``--steps`` (see the module docstring) → steps per model."""
    steps = dict(DEFAULT_STEPS)
    if not spec:
        return steps
    if spec.isdigit():
        return {m: int(spec) for m in MODELS}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        if name not in MODELS or not value.isdigit():
            raise ConfigError(f"--steps takes N or model=N,... with models {', '.join(MODELS)}; "
                              f"got {item!r}")
        steps[name] = int(value)
    if min(steps.values()) < 1:
        raise ConfigError("--steps must be >= 1")
    return steps


def parse_models(spec: str | None) -> list[str]:
    """``--models a,b`` → the models, checked (all of them by default)."""
    if not spec:
        return list(MODELS)
    names = spec.split(",")
    bad = [n for n in names if n not in MODELS]
    if bad:
        raise ConfigError(f"unknown model(s) {', '.join(bad)}; known: {', '.join(MODELS)}")
    return names


def experiment_jobs(seeds: Sequence[int] = (0, 1, 2),
                    models: Sequence[str] = tuple(MODELS)) -> list[tuple[int, str, str]]:
    """``(seed, model, training)`` in the order they run: seed by seed, so a cut-short
    experiment still holds complete comparisons; a model's two trainings side by side, so
    two shards (taking every other job) get the same models, not one model each."""
    return [(s, m, t) for s in seeds for m in models for t in TRAININGS]


def job_name(model: str, training: str, steps: int, seed: int) -> str:
    return run_name(model, training, f"{steps}steps", seed=seed)


@torch.no_grad()
def invariance_error(net: torch.nn.Module, points: torch.Tensor, rotations: int = INVARIANCE_ROTATIONS,
                     seed: int = 0, batch_size: int = 32) -> tuple[float, float]:
    """``(logits, probabilities)``: the largest change, over the clouds ``points (M, N, 3)``
    (float32) and ``rotations`` seeded uniform rotations each, of the model's logits and of its
    softmax probabilities when a cloud is rotated (``X Rᵀ``); the model in eval mode."""
    from equivision.tasks.modelnet_points import random_rotations

    net.eval()
    g = torch.Generator().manual_seed(seed)
    worst_logit = worst_prob = 0.0
    for i in range(0, len(points), batch_size):
        x = points[i:i + batch_size].float()
        ref = net(x)
        for _ in range(rotations):
            r = random_rotations("so3", len(x), g).float()
            out = net(x @ r.transpose(1, 2))
            worst_logit = max(worst_logit, float((out - ref).abs().max()))
            worst_prob = max(worst_prob, float((out.softmax(-1) - ref.softmax(-1)).abs().max()))
    return worst_logit, worst_prob


def _job(seed: int, model: str, training: str, steps: int, train_cfg: dict, data: dict,
         model_cfg: dict) -> Job:
    def fn(run_dir: Path) -> Row:
        from equivision.models import count_parameters, load
        from equivision.tasks.modelnet_points import evaluate_run, load_clouds
        from equivision.training import get_task, load_run_config

        task = get_task(MODELS[model])
        protocol, tests = TRAININGS[training]
        cfg = {"task_name": task.name,
               "train": {**train_cfg, "steps": steps, "eval_every": steps, "seed": seed,
                         "warmup_steps": max(1, steps // 20)},
               "task": {"protocol": protocol, **data, "model": model_cfg}}
        res = train_or_resume(task, cfg, run_dir, progress=False)
        row: Row = {"model": model, "training": training, "seed": seed, "steps": steps,
                    "train_accuracy": res.train_metrics.get("accuracy")}
        for test in tests:
            row[f"{training}-{test}"] = evaluate_run(run_dir, test)
        tcfg = load_run_config(run_dir, task).task
        net = load(run_dir, model=task.model_name, checkpoint="latest")
        row["params"] = count_parameters(net)
        points, _ = load_clouds("test", tcfg.n_points, tcfg.sample_seed, tcfg.max_test_per_class,
                                tcfg.cache_dir)
        row["invariance_logits"], row["invariance_probs"] = invariance_error(net, points, seed=seed)
        return row
    return job_name(model, training, steps, seed), fn


def run_experiment(out_dir: str, shard: int = 0, nshards: int = 1, *, seeds: Sequence[int] = (0, 1, 2),
                   steps: dict[str, int] | None = None, models: Sequence[str] | None = None,
                   train_cfg: dict | None = None, data: dict | None = None,
                   model_cfgs: dict[str, dict] | None = None) -> list[Row]:
    """Train every ``(seed, model, training)`` of :func:`experiment_jobs` whose index is
    ``shard`` modulo ``nshards`` into ``out_dir/<model>_<training>_<steps>steps_s<seed>``; each
    row holds the final model's accuracy under the protocols it serves, its parameter count,
    its invariance error (:func:`invariance_error` on the upright test clouds) and the wall
    seconds of its sessions. ``steps`` (model → steps) overrides :data:`DEFAULT_STEPS`;
    ``train_cfg``, ``data`` (task fields) and ``model_cfgs`` (model → fields) override the
    schedule, the data and the models' defaults (a smoke test's tiny runs)."""
    st = {**DEFAULT_STEPS, **(steps or {})}
    t = {**EXPERIMENT_TRAIN, **(train_cfg or {})}
    jobs = [_job(s, m, tr, st[m], t, data or {}, (model_cfgs or {}).get(m, {}))
            for s, m, tr in experiment_jobs(seeds, models or list(MODELS))]
    return run_resumable_jobs(out_dir, jobs, shard, nshards)


def _sphere_rows(sphere_dir: str | None) -> list[Row]:
    """The spherical CNN's ModelNet10 rows of the shapes-sphere experiment, renamed to this
    table's cells; none when the folder holds no results."""
    if not sphere_dir or not list(Path(sphere_dir).glob("results_*.json")):
        return []
    names = {"upright-upright": "z-z", "upright-so3": "z-so3", "so3-so3": "so3-so3"}
    return [{**{names.get(k, k): v for k, v in r.items()}, "model": "spherical CNN"}
            for r in read_results(sphere_dir)
            if r.get("collection") == "modelnet10" and r.get("model") == "spherical"]


def summarize_experiment(out_dir: str, steps: dict[str, int] | None = None,
                         models: Sequence[str] | None = None, sphere_dir: str | None = None) -> str:
    """The Markdown table: accuracy % (mean ± std over the seeds found) per model and protocol,
    the z/SO3 − z/z gap, the largest invariance error of the model's runs (logits and
    probabilities, float32), parameters and minutes per run; runs of another schedule than
    ``steps`` are left out (counted under the table)."""
    st = {**DEFAULT_STEPS, **(steps or {})}
    rows, note = listed_rows(read_results(out_dir), lambda r: r.get("steps") == st.get(r.get("model")))
    rows += _sphere_rows(sphere_dir)
    body: list[list[str]] = []
    for model in [*(models or MODELS), "spherical CNN"]:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        acc = {c: [float(r[c]) for r in mine if c in r] for c in CELLS}
        gap = statistics.mean(acc["z-so3"]) - statistics.mean(acc["z-z"]) \
            if acc["z-so3"] and acc["z-z"] else float("nan")
        inv = [(r["invariance_logits"], r["invariance_probs"]) for r in mine if "invariance_logits" in r]
        inv_cells = [f"{max(i[0] for i in inv):.1e}", f"{max(i[1] for i in inv):.1e}"] if inv else ["—", "—"]
        body.append([model, mean_std(acc["z-z"]), mean_std(acc["z-so3"]), mean_std(acc["so3-so3"]),
                     f"{gap:.2f}", *inv_cells, f"{int(mine[0]['params']):,}", minutes_per_run(mine)])
    return markdown_table(["model", "z/z", "z/SO3", "SO3/SO3", "z/SO3 − z/z",
                           "invariance error (logits, max)", "invariance error (probabilities, max)",
                           "parameters", "minutes per run"], body, note)


def _pop_option(args: list[str], flag: str) -> str | None:
    if flag not in args:
        return None
    i = args.index(flag)
    if i + 1 >= len(args):
        raise ConfigError(f"{flag} needs a value")
    value = args.pop(i + 1)
    args.pop(i)
    return value


def cli(argv: Sequence[str]) -> int:
    """The command line (see the module docstring)."""
    import sys

    args = list(argv)
    try:
        steps = parse_steps(_pop_option(args, "--steps"))
        models = parse_models(_pop_option(args, "--models"))
        sphere = _pop_option(args, "--sphere")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return main(args, partial(run_experiment, steps=steps, models=models),
                partial(summarize_experiment, steps=steps, models=models, sphere_dir=sphere))


if __name__ == "__main__":
    import sys

    raise SystemExit(cli(sys.argv[1:]))
