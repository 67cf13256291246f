"""The ``rotmnist`` task: digit classification under rotations or rescaling with the models
of :mod:`equivision.models.gcnn` (``equivision train rotmnist``, ``equivision eval rotmnist``).

Data: :mod:`equivision.data.rotmnist` (fixed seeded 8,000 / 2,000 split, protocols A, B and
"scale"). Eval metrics, in percent: ``error`` on the protocol's test set (the best-checkpoint
metric), ``error_upright`` on the upright test digits and ``error_rot90`` on the test digits
rotated by random multiples of 90°.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from equivision.data.rotmnist import (
    PROTOCOLS,
    RandomlyRescaled,
    RandomlyRotated,
    RotMNISTSplit,
    make_split,
)
from equivision.errors import ConfigError, InvalidInputError
from equivision.models.gcnn import GCNNConfig
from equivision.training.config import check_fields
from equivision.training.tasks import Task, register_task


@dataclass
class RotMNISTConfig:
    protocol: str = "A"
    """A: train and test rotated; B: train upright, test rotated; scale: train and test
    shrunk by [0.3, 1]; scale_B: train full size, test shrunk."""
    split_seed: int = 0
    transform_seed: int = 1
    n_train: int = 8000
    n_test: int = 2000
    augment: bool = False
    """Protocols A and scale: draw a fresh angle (factor) for every training digit at every
    epoch instead of one fixed per digit; the test set is unchanged."""
    model: GCNNConfig = field(default_factory=GCNNConfig)

    def __post_init__(self) -> None:
        check_fields(self, "task")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"task.protocol must be one of {', '.join(PROTOCOLS)}, got "
                              f"{self.protocol!r}")
        if self.n_train < 1 or self.n_test < 1 or self.n_train + self.n_test > 10_000:
            raise ConfigError("task.n_train and task.n_test must be >= 1 and sum to at most "
                              "10,000 (the digits available)")
        if self.model.in_channels != 1 or self.model.num_classes != 10:
            raise ConfigError("rotmnist classifies 1-channel digits into 10 classes: "
                              "task.model.in_channels must be 1 and num_classes 10")
        if self.augment and self.protocol not in ("A", "scale"):
            raise ConfigError(f"task.augment applies to protocols A and scale (their training "
                              f"digits are transformed); protocol {self.protocol!r} trains on "
                              f"untransformed digits")


@lru_cache(maxsize=4)
def _split(protocol: str, split_seed: int, transform_seed: int, n_train: int,
           n_test: int) -> RotMNISTSplit:
    return make_split(protocol, split_seed=split_seed, transform_seed=transform_seed,
                      n_train=n_train, n_test=n_test)


@register_task("rotmnist")
class RotMNISTTask(Task):
    config_cls = RotMNISTConfig
    model_name = "gcnn"
    best_metric = "error"
    best_mode = "min"

    def datasets(self, cfg: RotMNISTConfig) -> tuple[Dataset, Dataset]:
        s = _split(cfg.protocol, cfg.split_seed, cfg.transform_seed, cfg.n_train, cfg.n_test)
        train: Dataset = TensorDataset(s.train_images, s.train_labels)
        if cfg.augment and cfg.protocol == "A":
            train = RandomlyRotated(s.train_source, s.train_labels)
        elif cfg.augment and cfg.protocol == "scale":
            train = RandomlyRescaled(s.train_source, s.train_labels)
        return (train,
                TensorDataset(s.test_images, s.test_upright, s.test_rot90, s.test_labels))

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[-1]
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        err = (logits.argmax(-1) != y).float().mean() * 100
        return loss, {"error": err.detach()}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: DataLoader,
                 device: torch.device) -> dict[str, float]:
        from equivision.training.trainer import to_device

        wrong = {"error": 0, "error_upright": 0, "error_rot90": 0}
        loss_sum, count = 0.0, 0
        for batch in loader:
            x, x_up, x_90, y = to_device(batch, device)
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            wrong["error"] += int((logits.argmax(-1) != y).sum())
            wrong["error_upright"] += int((model(x_up).argmax(-1) != y).sum())
            wrong["error_rot90"] += int((model(x_90).argmax(-1) != y).sum())
            count += len(y)
        if count == 0:
            raise ConfigError("rotmnist: the test set is empty")
        return {"loss": loss_sum / count, **{k: 100.0 * v / count for k, v in wrong.items()}}


# ----------------------------------------------------------------------------- experiment

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
            return f"{self.protocol}_{self.arch}_s{seed}"
        scales = "" if self.num_scales is None else f"_S{self.num_scales}"
        scales += "" if self.scale_size is None else f"_D{self.scale_size}"
        return f"{self.protocol}_{self.schedule}_{self.arch}_w{self.width}{scales}_s{seed}"

    @classmethod
    def of_row(cls, row: dict[str, object]) -> ExperimentRun:
        """The run a result row came from (rows of the first experiment lack the later
        fields)."""
        n, d = row.get("num_scales"), row.get("scale_size")
        return cls(str(row["protocol"]), str(row["arch"]), int(row["width"]),
                   int(row.get("steps", 1000)), bool(row.get("augment", False)),
                   None if n is None else int(n), None if d is None else int(d))


#: The experiment's runs. The short schedule covers protocols A, B and scale with small
#: models; the long one (4× the steps, fresh rotations / factors at every draw, wider models
#: for A) is what protocol A's < 2.5 % goal needs. P8 at width 8 (2.65 %) was replaced by
#: width 12, about P4's parameter count, and the e2cnn anchor at width 8 (2.42 %) by width
#: 10, about P8's. Scales: the magnified-kernel CNN ("scale") and the
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


def run_experiment(out_dir: str, seeds: tuple[int, ...] = (0, 1, 2), shard: int = 0
                   ) -> list[dict[str, object]]:
    """Train every run of :data:`EXPERIMENT_RUNS` for every seed with the ordinary trainer,
    into ``out_dir/<name>``, and write ``out_dir/results_<shard>.json`` with the eval
    metrics and wall time of each. Several processes (distinct ``shard`` numbers) share the
    work (:func:`equivision.training.experiment.run_jobs`)."""
    from equivision.models import count_parameters
    from equivision.training import train
    from equivision.training.experiment import run_jobs

    def job(seed: int, run: ExperimentRun):
        def fn(run_dir):
            model = {"arch": run.arch, "width": run.width, "spatial_pool": run.spatial_pool}
            for key in ("num_scales", "scale_size"):
                if getattr(run, key) is not None:
                    model[key] = getattr(run, key)
            task = {"protocol": run.protocol, "model": model}
            if run.augment:
                task["augment"] = True
            cfg = {"train": {**EXPERIMENT_TRAIN, "steps": run.steps, "seed": seed},
                   "task": task}
            res = train(RotMNISTTask(), cfg, run_dir, overwrite=True, progress=False)
            params = count_parameters(RotMNISTTask().build_model(RotMNISTConfig(
                protocol=run.protocol, model=GCNNConfig(**model))))
            return {"protocol": run.protocol, "arch": run.arch, "width": run.width,
                    "steps": run.steps, "augment": run.augment,
                    "spatial_pool": run.spatial_pool, "num_scales": run.num_scales,
                    "scale_size": run.scale_size, "seed": seed,
                    "params": params, **res.eval_metrics}
        return run.name(seed), fn

    return run_jobs(out_dir, [job(*j) for j in experiment_jobs(seeds)], shard)


def _schedule(row: dict[str, object]) -> str:
    return ExperimentRun.of_row(row).schedule


def summarize_experiment(out_dir: str) -> str:
    """A Markdown table (mean ± std over the seeds found) from every
    ``out_dir/results_*.json`` written by :func:`run_experiment`: one block of rows per
    schedule, each with its models' parameter counts and minutes per run. Rows of runs no
    longer in :data:`EXPERIMENT_RUNS` (an earlier width, say) are left out, and counted
    under the table."""
    import statistics

    from equivision.training.experiment import mean_std, read_results

    all_rows = read_results(out_dir)
    rows = [r for r in all_rows if ExperimentRun.of_row(r) in EXPERIMENT_RUNS]
    metrics = (("A", "error", "A: rotated → rotated"), ("B", "error", "B: upright → rotated"),
               ("B", "error_rot90", "B: upright → 90° steps"),
               ("B", "error_upright", "B: upright → upright"),
               ("scale", "error", "scale: [0.3, 1] → [0.3, 1]"),
               ("scale_B", "error", "scale B: 1 → [0.3, 1]"),
               ("scale_B", "error_upright", "scale B: 1 → 1"))
    archs = [a for a in ("plain", "p4", "p8", "e2cnn_c8", "scale", "scale_zoom")
             if any(r["arch"] == a for r in rows)]
    names = {"plain": "plain CNN", "p4": "P4 (ours)", "p8": "P8 (ours)",
             "e2cnn_c8": "C8 e2cnn", "scale": "scale (ours)",
             "scale_zoom": "scale, zoomed grids (ours)"}
    out = ["| test error % | " + " | ".join(names[a] for a in archs) + " |",
           "|---|" + "---|" * len(archs)]
    for schedule in dict.fromkeys(_schedule(r) for r in rows):
        sched = [r for r in rows if _schedule(r) == schedule]
        tag = "" if schedule == "short" else (
            f" [{schedule.replace('+aug', ' steps, fresh transforms')}]")

        def pick(arch: str, protocol: str | None = None, sched=sched) -> list[dict]:
            return [r for r in sched if r["arch"] == arch
                    and (protocol is None or r["protocol"] == protocol)]

        for protocol, key, label in metrics:
            if any(r["protocol"] == protocol for r in sched):
                cells = [mean_std(r[key] for r in pick(a, protocol)) for a in archs]
                out.append(f"| {label}{tag} | " + " | ".join(cells) + " |")
        def per_protocol(arch: str, value) -> str:
            """One figure, or one per protocol where the arch has several widths."""
            protocols = list(dict.fromkeys(r["protocol"] for r in pick(arch)))
            if not protocols:
                return "—"
            if len({r["params"] for r in pick(arch)}) == 1:
                return value(pick(arch))
            return " / ".join(f"{value(pick(arch, p))} ({p})" for p in protocols)

        params = [per_protocol(a, lambda rs: f"{int(rs[0]['params']):,}") for a in archs]
        minutes = [per_protocol(a, lambda rs: f"{statistics.mean(float(r['seconds']) for r in rs) / 60:.1f}")
                   for a in archs]
        out.append(f"| parameters{tag} | " + " | ".join(params) + " |")
        out.append(f"| minutes per run{tag} | " + " | ".join(minutes) + " |")
    if (n := len(all_rows) - len(rows)) > 0:
        out.append(f"\n({n} row{'s' if n > 1 else ''} of runs no longer in the experiment "
                   "left out.)")
    return "\n".join(out) + "\n"


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
    import statistics

    from equivision.models import load
    from equivision.training.experiment import mean_std, read_results

    split = make_split("scale")
    assert split.test_scales is not None
    images = split.test_images[split.test_scales <= max_scale]
    results = read_results(out_dir)
    out = [f"| model ({len(images)} test digits shrunk to ≤ {max_scale}, magnified √2×) | "
           "predictions changed % | relative log-prob change |", "|---|---|---|"]
    for run in EXPERIMENT_RUNS:
        if run.protocol != "scale":
            continue
        rows = [r for r in results if ExperimentRun.of_row(r) == run]
        res = [magnification_consistency(load(str(Path(out_dir) / run.name(int(r["seed"])))),
                                         images) for r in rows]
        if res:
            changed = mean_std(r["changed"] for r in res)
            drift = statistics.mean(r["log_prob_change"] for r in res)
            out.append(f"| {run.arch} w{run.width}, {run.schedule} | {changed} | {drift:.3f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    # python -m equivision.tasks.rotmnist OUT_DIR [SHARD]: run (a share of) the experiment
    # python -m equivision.tasks.rotmnist OUT_DIR --summary: print the table
    # python -m equivision.tasks.rotmnist OUT_DIR --consistency: the scale runs' invariance
    import sys

    from equivision.training.experiment import main

    raise SystemExit(main(sys.argv[1:], run_experiment, summarize_experiment,
                          reports={"--consistency": summarize_consistency}))
