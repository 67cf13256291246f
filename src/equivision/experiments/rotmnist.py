"""The rotated-MNIST experiment: the models of :mod:`equivision.models.gcnn` on the
:mod:`equivision.tasks.rotmnist` task's protocols, several schedules, three seeds each.

``python -m equivision.experiments.rotmnist OUT_DIR [SHARD]`` runs (a share of) it,
``OUT_DIR --summary`` prints its table and ``OUT_DIR --consistency`` the scale runs'
invariance to magnification (:mod:`equivision.experiments.runner`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from equivision.data.rotmnist import make_split
from equivision.errors import InvalidInputError
from equivision.experiments.runner import (
    Job,
    Row,
    listed_rows,
    main,
    markdown_table,
    mean_std,
    minutes_per_run,
    read_results,
    run_jobs,
    run_name,
)
from equivision.models import count_parameters, load
from equivision.models.gcnn import GCNNConfig
from equivision.tasks.rotmnist import RotMNISTConfig, RotMNISTTask
from equivision.training import train


@dataclass(frozen=True)
class ExperimentRun:
    """One row-and-column of the experiment's table, trained for every seed."""

    protocol: str
    arch: str
    width: int
    steps: int = 1000
    """Adam steps of batch 64 (1000 = 8 epochs of the 8,000 training digits)."""
    augment: bool = False
    num_scales: int | None = None
    """Scales of the scale archs (``None``: the model's default)."""
    scale_size: int | None = None
    """Neighbouring scales per scale group convolution (``None``: the model's default)."""

    @property
    def schedule(self) -> str:
        """``"short"`` (1000 steps, fixed transforms) or e.g. ``"4000+aug"``."""
        if self.steps == 1000 and not self.augment:
            return "short"
        return f"{self.steps}{'+aug' if self.augment else ''}"

    @property
    def spatial_pool(self) -> str:
        """Global max over the plane for the scale protocols (a mean dilutes a small digit's
        features by its area, which no scale-equivariant layer can undo), mean otherwise."""
        return "max" if self.protocol.startswith("scale") else "mean"

    def name(self, seed: int) -> str:
        if self.schedule == "short":  # the first experiment's names, kept for its results
            return run_name(self.protocol, self.arch, seed=seed)
        scales = [] if self.num_scales is None else [f"S{self.num_scales}"]
        scales += [] if self.scale_size is None else [f"D{self.scale_size}"]
        return run_name(self.protocol, self.schedule, self.arch, f"w{self.width}", *scales, seed=seed)

    @classmethod
    def of_row(cls, row: Row) -> ExperimentRun:
        """The run a result row came from (rows of the first experiment lack the later
        fields)."""
        n, d = row.get("num_scales"), row.get("scale_size")
        return cls(str(row["protocol"]), str(row["arch"]), int(row["width"]),
                   int(row.get("steps", 1000)), bool(row.get("augment", False)),
                   None if n is None else int(n), None if d is None else int(d))


#: The experiment's runs. The short schedule covers protocols A, B and scale with small
#: models; the long one (4× the steps, fresh rotations / factors at every draw, wider models
#: for A) is what protocol A's < 2.5 % goal needs. P8 runs at width 12 (about P4's parameter
#: count; at width 8 it reached 2.65 %) and the e2cnn anchor at width 10 (about P8's).
#: Scales: the magnified-kernel CNN ("scale") and the
#: zoomed-grid one ("scale_zoom", 4 zooms, no scale mixing, parameter-matched to the plain
#: CNN); the scale protocol also runs 4,000 steps on its fixed training set (the usual
#: MNIST-scale setting, each training digit shrunk once).
EXPERIMENT_RUNS: tuple[ExperimentRun, ...] = (
    ExperimentRun("A", "plain", 8), ExperimentRun("A", "p4", 8), ExperimentRun("A", "p8", 6),
    ExperimentRun("A", "e2cnn_c8", 6),
    ExperimentRun("B", "plain", 8), ExperimentRun("B", "p4", 8), ExperimentRun("B", "p8", 6),
    ExperimentRun("B", "e2cnn_c8", 6),
    ExperimentRun("scale", "plain", 8), ExperimentRun("scale", "scale", 12),
    ExperimentRun("A", "plain", 12, 4000, True), ExperimentRun("A", "p4", 12, 4000, True),
    ExperimentRun("A", "p8", 12, 4000, True), ExperimentRun("A", "e2cnn_c8", 10, 4000, True),
    ExperimentRun("scale", "plain", 8, 4000, True), ExperimentRun("scale", "scale", 12, 4000, True),
    ExperimentRun("scale", "scale_zoom", 16, num_scales=4, scale_size=1),
    ExperimentRun("scale", "scale_zoom", 16, 4000, True, num_scales=4, scale_size=1),
    ExperimentRun("scale", "plain", 8, 4000),
    ExperimentRun("scale", "scale_zoom", 16, 4000, num_scales=4, scale_size=1),
)
_SLOW = {"p8", "e2cnn_c8"}


def experiment_jobs(seeds: tuple[int, ...] = (0, 1, 2)) -> list[tuple[int, ExperimentRun]]:
    """``(seed, run)`` in the order they run: per schedule, the first seed of every
    protocol-A model, then the fast models (plain, P4, scale) for every seed, then the slow
    ones (P8, e2cnn) for the remaining seeds of A, then those of B; so a run cut short
    still holds complete comparisons."""
    out: list[tuple[int, ExperimentRun]] = []
    for schedule in dict.fromkeys(r.schedule for r in EXPERIMENT_RUNS):
        runs = [r for r in EXPERIMENT_RUNS if r.schedule == schedule]
        first = [(seeds[0], r) for r in runs if r.protocol == "A"]
        fast = [(s, r) for s in seeds for r in runs if r.arch not in _SLOW]
        slow = [(s, r) for p in ("A", "B") for s in seeds for r in runs
                if r.arch in _SLOW and r.protocol == p]
        for job in first + fast + slow:
            if job not in out:
                out.append(job)
    return out


EXPERIMENT_TRAIN = {"batch_size": 64, "lr": 1e-2, "schedule": "cosine", "device": "cpu",
                    "log_every": 50}


def _job(seed: int, run: ExperimentRun) -> Job:
    def fn(run_dir: Path) -> Row:
        model: dict[str, Any] = {"arch": run.arch, "width": run.width,
                                 "spatial_pool": run.spatial_pool}
        for key in ("num_scales", "scale_size"):
            if getattr(run, key) is not None:
                model[key] = getattr(run, key)
        task: dict[str, Any] = {"protocol": run.protocol, "model": model}
        if run.augment:
            task["augment"] = True
        cfg = {"train": {**EXPERIMENT_TRAIN, "steps": run.steps, "seed": seed}, "task": task}
        res = train(RotMNISTTask(), cfg, run_dir, overwrite=True, progress=False)
        params = count_parameters(RotMNISTTask().build_model(RotMNISTConfig(
            protocol=run.protocol, model=GCNNConfig(**model))))
        return {"protocol": run.protocol, "arch": run.arch, "width": run.width,
                "steps": run.steps, "augment": run.augment,
                "spatial_pool": run.spatial_pool, "num_scales": run.num_scales,
                "scale_size": run.scale_size, "seed": seed,
                "params": params, **res.eval_metrics}
    return run.name(seed), fn


def run_experiment(out_dir: str, seeds: tuple[int, ...] = (0, 1, 2), shard: int = 0) -> list[Row]:
    """Train every run of :data:`EXPERIMENT_RUNS` for every seed with the ordinary trainer,
    into ``out_dir/<name>``, and write ``out_dir/results_<shard>.json`` with the eval
    metrics and wall time of each. Several processes (distinct ``shard`` numbers) share the
    work (:func:`equivision.experiments.runner.run_jobs`)."""
    return run_jobs(out_dir, [_job(*j) for j in experiment_jobs(seeds)], shard)


_METRICS = (("A", "error", "A: rotated → rotated"), ("B", "error", "B: upright → rotated"),
            ("B", "error_rot90", "B: upright → 90° steps"),
            ("B", "error_upright", "B: upright → upright"),
            ("scale", "error", "scale: [0.3, 1] → [0.3, 1]"),
            ("scale_B", "error", "scale B: 1 → [0.3, 1]"),
            ("scale_B", "error_upright", "scale B: 1 → 1"))
_ARCH_NAMES = {"plain": "plain CNN", "p4": "P4 (ours)", "p8": "P8 (ours)",
               "e2cnn_c8": "C8 e2cnn", "scale": "scale (ours)",
               "scale_zoom": "scale, zoomed grids (ours)"}


def _schedule(row: Row) -> str:
    return ExperimentRun.of_row(row).schedule


def _schedule_rows(sched: list[Row], archs: list[str], tag: str) -> list[list[str]]:
    """The table rows of one schedule's results ``sched``: the metrics of each protocol run,
    then the parameters and minutes per run of each arch in ``archs``."""
    def pick(arch: str, protocol: str | None = None) -> list[Row]:
        return [r for r in sched if r["arch"] == arch
                and (protocol is None or r["protocol"] == protocol)]

    def per_protocol(arch: str, value: Callable[[list[Row]], str]) -> str:
        """One figure, or one per protocol where the arch has several widths."""
        protocols = list(dict.fromkeys(r["protocol"] for r in pick(arch)))
        if not protocols:
            return "—"
        if len({r["params"] for r in pick(arch)}) == 1:
            return value(pick(arch))
        return " / ".join(f"{value(pick(arch, p))} ({p})" for p in protocols)

    out = [[f"{label}{tag}", *(mean_std(r[key] for r in pick(a, protocol)) for a in archs)]
           for protocol, key, label in _METRICS if any(r["protocol"] == protocol for r in sched)]
    out.append([f"parameters{tag}",
                *(per_protocol(a, lambda rs: f"{int(rs[0]['params']):,}") for a in archs)])
    out.append([f"minutes per run{tag}", *(per_protocol(a, minutes_per_run) for a in archs)])
    return out


def summarize_experiment(out_dir: str) -> str:
    """A Markdown table (mean ± std over the seeds found) from every
    ``out_dir/results_*.json`` written by :func:`run_experiment`: one block of rows per
    schedule, each with its models' parameter counts and minutes per run. Rows of runs no
    longer in :data:`EXPERIMENT_RUNS` (an earlier width, say) are left out, and counted
    under the table."""
    rows, note = listed_rows(read_results(out_dir),
                             lambda r: ExperimentRun.of_row(r) in EXPERIMENT_RUNS)
    archs = [a for a in _ARCH_NAMES if any(r["arch"] == a for r in rows)]
    body: list[list[str]] = []
    for schedule in dict.fromkeys(_schedule(r) for r in rows):
        tag = "" if schedule == "short" else (
            f" [{schedule.replace('+aug', ' steps, fresh transforms')}]")
        body += _schedule_rows([r for r in rows if _schedule(r) == schedule], archs, tag)
    return markdown_table(["test error %", *(_ARCH_NAMES[a] for a in archs)], body, note)


def magnification_consistency(model: torch.nn.Module, images: Tensor, *,
                              factor: float = 2**0.5, batch: int = 500) -> dict[str, float]:
    """How far a classifier is from scale invariance on real digits: ``changed``, the percent
    of predictions that change when ``images (N, 1, H, W)`` are magnified ``factor`` times
    about their centre (pass digits small enough to stay inside the frame), and
    ``log_prob_change``, the relative change ``|f(g·x) − f(x)| / |f(x)|`` of the
    log-probabilities (the quantity :func:`~equivision.testing.equivariance_error` reports
    for an invariant output, from the same two passes)."""
    from equivision.groups import ScaleTranslation2D, act_on_image

    if images.ndim != 4 or len(images) == 0:
        raise InvalidInputError(f"images must be a non-empty batch (N, C, H, W), got "
                                f"{tuple(images.shape)}")
    g = torch.tensor([0.0, 0.0, factor], dtype=torch.float64)
    model.eval()

    def log_probs(x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cat([model(x[i:i + batch]).double().log_softmax(-1)
                              for i in range(0, len(x), batch)])

    before = log_probs(images)
    after = log_probs(act_on_image(ScaleTranslation2D(), g, images))
    return {"changed": 100.0 * float((before.argmax(-1) != after.argmax(-1)).double().mean()),
            "log_prob_change": float((after - before).norm() / before.norm())}


def summarize_consistency(out_dir: str, max_scale: float = 0.7) -> str:
    """A Markdown table of :func:`magnification_consistency` (√2) for every scale-protocol run
    of the experiment found in ``out_dir``, on the test digits shrunk to ``≤ max_scale`` (so
    that the magnified digit stays in the frame)."""
    split = make_split("scale")
    assert split.test_scales is not None
    images = split.test_images[split.test_scales <= max_scale]
    results = read_results(out_dir)
    body: list[list[str]] = []
    for run in EXPERIMENT_RUNS:
        if run.protocol != "scale":
            continue
        rows = [r for r in results if ExperimentRun.of_row(r) == run]
        res = [magnification_consistency(load(str(Path(out_dir) / run.name(int(r["seed"])))),
                                         images) for r in rows]
        if res:
            drift = statistics.mean(r["log_prob_change"] for r in res)
            body.append([f"{run.arch} w{run.width}, {run.schedule}",
                         mean_std(r["changed"] for r in res), f"{drift:.3f}"])
    return markdown_table([f"model ({len(images)} test digits shrunk to ≤ {max_scale}, "
                           "magnified √2×)", "predictions changed %", "relative log-prob change"],
                          body)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:], run_experiment, summarize_experiment,
                          reports={"--consistency": summarize_consistency}))
