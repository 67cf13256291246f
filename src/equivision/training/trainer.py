"""The trainer: one loop for every task, on CPU, CUDA and under torchrun.

:func:`train` takes a task (see :mod:`equivision.training.tasks`), a :class:`RunConfig` and
a run folder; it handles devices (optional mixed precision on CUDA), seeding,
DistributedDataParallel when started by ``torchrun`` (each process takes its shard of every
global batch; only rank 0 logs and writes), gradient clipping, learning-rate schedules,
periodic evaluation, a progress bar, ``metrics.csv`` (plus TensorBoard event files when the
``tensorboard`` package is installed) and checkpoints (see
:mod:`equivision.training.checkpoint`).

Determinism: the data order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and the
position inside an epoch follows from the step, so a run resumed from a checkpoint (model,
optimizer, scheduler, scaler, RNG states of every rank) continues exactly where the killed
run was; on CPU the final weights are identical to an uninterrupted run's.
"""

from __future__ import annotations

import csv
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch.utils.data import DataLoader, DistributedSampler, Subset

from equivision import __version__
from equivision.data.seeds import rank_seed, shuffle_seed
from equivision.errors import (
    CheckpointError,
    ConfigError,
    EquivisionError,
    InvalidInputError,
    OutputExistsError,
)
from equivision.io import atomic_path
from equivision.io.atomic import check_folder_output, clear_folder, write_marker
from equivision.runs import read_run_config
from equivision.training import checkpoint as ckpt
from equivision.training import distributed as dist
from equivision.training.batches import to_device
from equivision.training.config import (
    RunConfig,
    TrainConfig,
    build_run_config,
    check_device_name,
    diff_dicts,
    to_dict,
)
from equivision.training.tasks import Task, get_task


class TrainingError(EquivisionError, RuntimeError):
    """Training cannot go on (the loss became NaN or infinite)."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    eval_metrics: dict[str, float] = field(default_factory=dict)
    train_metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- helpers

def _init_weights(model: torch.nn.Module, source: str) -> None:
    """Fine-tuning: ``model`` takes the weights of a run folder (best checkpoint), a packaged
    model or a safetensors file, checked by tensor names and shapes."""
    from equivision.models import PRETRAINED_DIR, list_pretrained, load_weights

    p = Path(source)
    if not p.exists():
        if source not in list_pretrained():
            raise ConfigError(f"train.init_from: {source!r} is neither a run folder, a weights file "
                              f"nor a packaged model ({', '.join(list_pretrained())})")
        p = PRETRAINED_DIR / f"{source}.safetensors"
    load_weights(model, p)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's and Python's global RNGs."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def resolve_device(name: str, info: dist.DistInfo) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a device; under torchrun with CUDA each
    process takes ``cuda:LOCAL_RANK``."""
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked but no CUDA device is available; "
                              "use --device cpu")
        if name == "cuda":
            return torch.device("cuda", info.local_rank if info.enabled else 0)
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} asked but only {torch.cuda.device_count()} "
                              "CUDA device(s) exist")
        return dev
    if name != "cpu":
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def lr_factor(tc: TrainConfig) -> Callable[[int], float]:
    """Multiplier of the base learning rate after ``step`` completed optimizer steps."""

    def f(step: int) -> float:
        if step < tc.warmup_steps:
            return (step + 1) / tc.warmup_steps
        t = min(1.0, (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps))
        if tc.schedule == "cosine":
            return tc.min_lr_factor + (1 - tc.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))
        if tc.schedule == "linear":
            return 1.0 - (1.0 - tc.min_lr_factor) * t
        if tc.schedule == "step":
            return tc.step_gamma ** ((step - tc.warmup_steps) // tc.step_size)
        return 1.0

    return f


def make_optimizer(params: Iterator[torch.nn.Parameter], tc: TrainConfig
                   ) -> torch.optim.Optimizer:
    if tc.optimizer == "adam":
        return torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
    if tc.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)


class WeightAverage:
    """Exponential moving average of a model's floating-point state (parameters and float
    buffers, e.g. batch-norm statistics); integer buffers are copied. See
    ``TrainConfig.ema_decay`` for the decay rule."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """Decay used for the update after ``step`` completed steps (``step`` >= 1)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = self.decay_at(step)
        for k, v in model.state_dict().items():
            avg = self.state[k]
            if avg.is_floating_point():
                avg.lerp_(v.detach(), 1.0 - d)
            else:
                avg.copy_(v)

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange the model's weights and the average (call twice to undo)."""
        for k, v in model.state_dict().items():
            tmp = v.detach().clone()
            v.copy_(self.state[k])
            self.state[k].copy_(tmp)


RAW_PREFIX = "raw_model."
"""train_state key prefix of the raw (not averaged) weights when train.ema_decay > 0."""


class MetricsLog:
    """``metrics.csv`` (step,split,metric,value) and, when available, TensorBoard events."""

    HEADER = ("step", "split", "metric", "value")

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path = run_dir / "metrics.csv"
        self.tb_dir = run_dir / "tensorboard"
        self.enabled = enabled
        self.tb: Any = None

    def start(self, keep_up_to_step: int | None) -> None:
        """New log (``None``) or, on resume, keep only the rows up to the checkpoint step."""
        if not self.enabled:
            return
        rows: list[list[str]] = []
        if keep_up_to_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f)][1:]
            rows = [r for r in rows if len(r) == 4 and r[0].isdigit()
                    and int(r[0]) <= keep_up_to_step]
        with atomic_path(self.path, overwrite=True) as tmp, \
                open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(self.HEADER)
            w.writerows(rows)
        try:  # needs the optional `tensorboard` package
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        # On resume the events are rebuilt from the trimmed CSV. purge_step is not enough:
        # readers apply it only when the new event file sorts after the old one, and file
        # names (time, host, pid, counter) do not sort by creation within one second.
        if keep_up_to_step is not None and self.tb_dir.is_dir():
            for old in self.tb_dir.glob("events.out.tfevents.*"):
                old.unlink()
        self.tb = SummaryWriter(log_dir=str(self.tb_dir))
        for step, split, metric, value in rows:
            self.tb.add_scalar(f"{split}/{metric}", float(value), int(step))
        self.tb.flush()

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            for k, v in metrics.items():
                w.writerow([step, split, k, repr(float(v))])
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f"{split}/{k}", float(v), step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> list[tuple[int, str, str, float]]:
    """Rows of a run's ``metrics.csv`` as ``(step, split, metric, value)``."""
    with open(Path(run_dir) / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return [(int(r[0]), r[1], r[2], float(r[3])) for r in rows]


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


# ----------------------------------------------------------------------------- run folder

# Top-level entries a run folder owns (see the layout in checkpoint.py); --overwrite removes
# these and nothing else.
RUN_ENTRIES = ("config.json", "metrics.csv", "best.json", "checkpoints", "tensorboard")


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Before any work: a new run needs a new or empty folder, or ``overwrite`` of a run folder
    equivision marked (never the current folder, a parent of it, the home folder, an unmarked
    folder, or one holding files the run did not write: refused, naming the first)."""
    if resume:
        return
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"run folder {run_dir} already exists; pass --resume to "
                                "continue it or --overwrite to start it afresh")
    check_folder_output(run_dir, "run", overwrite, what="run folder")


def _prepare_run_dir(run_dir: Path, cfg: RunConfig, overwrite: bool) -> None:
    try:
        if overwrite:
            clear_folder(run_dir, "run", what="run folder")
        run_dir.mkdir(parents=True, exist_ok=True)
    except EquivisionError:
        raise
    except OSError as e:
        raise InvalidInputError(f"cannot create the run folder {run_dir}: {e.strerror or e}; "
                                "choose another --run") from e
    write_marker(run_dir, "run", RUN_ENTRIES)  # first, so a run killed at once is still ours
    data = {**cfg.to_dict(), "equivision_version": __version__}
    ckpt.write_json(run_dir / "config.json", data)


def load_run_config(run_dir: Path, task: Task) -> RunConfig:
    """The resolved config saved in a run folder, checked against ``task``."""
    data = read_run_config(run_dir)
    data.pop("equivision_version", None)
    named = data.get("task_name")
    if named != task.name:
        raise ConfigError(f"run {run_dir} is of task {named!r}, not {task.name!r}")
    return build_run_config(task.name, task.config_cls, data)


# ----------------------------------------------------------------------------- train

def train(task: str | Task, config: RunConfig | dict[str, Any] | None, run_dir: str | Path,
          *, resume: bool = False, overwrite: bool = False, device: str | None = None,
          console: Console | None = None, progress: bool | None = None,
          from_step: int | None = None) -> TrainResult:
    """Train ``task`` with ``config`` into ``run_dir``; see the module docstring.

    ``config``: a :class:`RunConfig`, a dict shaped like the JSON file, or None (defaults;
    with ``resume`` the run's saved config). ``resume``: continue from the latest intact
    checkpoint (a corrupt newer one is skipped with a warning; a given config must equal the
    saved one). ``from_step`` (with ``resume``): continue from that checkpoint instead. Either
    way the metrics and checkpoints after the resumed step are dropped. ``overwrite``:
    replace an existing run folder. ``device`` overrides ``train.device``. Returns the final
    metrics (every rank)."""
    task = get_task(task) if isinstance(task, str) else task
    run_dir = Path(run_dir)
    console = console or Console(stderr=True)
    cfg = config if isinstance(config, RunConfig) or config is None else \
        build_run_config(task.name, task.config_cls, config)
    if isinstance(cfg, RunConfig) and cfg.task_name != task.name:
        raise ConfigError(f"the config is for task {cfg.task_name!r}, not {task.name!r}")
    if from_step is not None and not resume:
        raise ConfigError("--from-step needs --resume")
    info = dist.from_env()
    start: ckpt.CheckpointInfo | None = None
    if resume:
        saved = load_run_config(run_dir, task)
        if cfg is not None:
            diff = diff_dicts(saved.to_dict(), cfg.to_dict())
            if diff:
                raise ConfigError(f"--resume: the config differs from the one saved in "
                                  f"{run_dir}/config.json in {', '.join(diff)}; drop --config "
                                  "or start a new run")
        cfg = saved
        if from_step is not None:
            start = ckpt.find_checkpoint(run_dir, from_step)
            ckpt.verify_checkpoint(start)
            later = [s for s in ckpt.checkpoint_steps(run_dir) if s > from_step]
            if later and info.is_main:
                console.print(f"resuming from step {from_step}: the metrics and checkpoints "
                              f"after it (steps {', '.join(map(str, later))}) are dropped",
                              highlight=False, soft_wrap=True)
        else:
            start, skipped = ckpt.find_resumable(run_dir)
            if skipped and info.is_main:
                why = "; ".join(f"step {s}: {w}" for s, w in skipped)
                console.print(f"warning: resuming from step {start.step}; skipped and removed "
                              f"the newer checkpoint(s) that do not read back intact ({why})",
                              highlight=False, soft_wrap=True)
    elif cfg is None:
        cfg = build_run_config(task.name, task.config_cls, None)
    tc = cfg.train
    if tc.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size {tc.batch_size} must be divisible by the number "
                          f"of processes ({info.world_size})")
    _check_run_dir(run_dir, resume, overwrite)
    dev = resolve_device(device or tc.device, info)
    owns_group = info.enabled and not torch.distributed.is_initialized()
    dist.init(info, dev, tc.dist_timeout_s)
    try:
        return _Run(task, cfg, run_dir, info, dev, console, progress, start, overwrite).loop()
    finally:
        if owns_group:
            dist.shutdown()


class _Run:
    """State of one training run (one per process)."""

    def __init__(self, task: Task, cfg: RunConfig, run_dir: Path, info: dist.DistInfo,
                 device: torch.device, console: Console, progress: bool | None,
                 start: ckpt.CheckpointInfo | None, overwrite: bool) -> None:
        self.task, self.cfg, self.tc = task, cfg, cfg.train
        self.run_dir, self.info, self.device, self.console = run_dir, info, device, console
        self.show_bar = info.is_main and (console.is_terminal if progress is None else progress)
        tc = self.tc
        self.best_metric = tc.best_metric or task.best_metric
        self.best_mode = tc.best_mode or task.best_mode

        # model and data first: their config errors must come before the run folder exists
        seed_everything(tc.seed)  # same initial weights on every rank
        self.model = task.build_model(cfg.task)
        if tc.init_from and start is None:  # on resume the checkpoint's weights win
            _init_weights(self.model, tc.init_from)
        self.model = self.model.to(device)
        self.train_ds, self.eval_ds = task.datasets(cfg.task)
        self.per_rank_batch = tc.batch_size // info.world_size
        self.batches_per_epoch = len(self.train_ds) // tc.batch_size  # type: ignore[arg-type]
        if self.batches_per_epoch == 0:
            raise ConfigError(f"the training set has {len(self.train_ds)} samples, fewer "  # type: ignore[arg-type]
                              f"than train.batch_size = {tc.batch_size}")

        # rank 0 prepares the folder; the others wait so that they never see a half-made one
        ok = True
        if info.is_main:
            try:
                if start is None:
                    self._check_best_metric()
                    _prepare_run_dir(run_dir, cfg, overwrite)
                else:
                    ckpt.remove_partial(run_dir)
            except BaseException:
                dist.broadcast_flag(False, info, device)
                raise
        ok = dist.broadcast_flag(ok, info, device)
        if not ok:
            raise TrainingError("rank 0 could not prepare the run folder; see its error")
        self.log = MetricsLog(run_dir, enabled=info.is_main)
        self.log.start(None if start is None else start.step)
        seed_everything(rank_seed(tc.seed, info.rank))  # per-rank dropout/augmentation

        self.use_amp = tc.amp and device.type == "cuda"
        if tc.amp and not self.use_amp and info.is_main:
            console.print("warning: train.amp needs CUDA; training in float32 on the CPU")
        self.amp_dtype = torch.bfloat16 if tc.amp_dtype == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp
                                           and self.amp_dtype == torch.float16)
        self.ddp: torch.nn.Module = self.model
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=task.find_unused_parameters)
        self.optimizer = make_optimizer(self.model.parameters(), tc)
        self.ema = WeightAverage(self.model, tc.ema_decay) if tc.ema_decay > 0 else None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(tc))
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}
        if start is not None:
            self._restore(start)
            if info.is_main:
                self._forget_after(start.step)

    def _check_best_metric(self) -> None:
        """A train.best_metric the task does not report fails here, before the run folder
        exists, instead of at the first evaluation: one eval batch shows the metric names."""
        if not self.tc.best_metric or self.tc.best_metric == self.task.best_metric:
            return
        n = min(len(self.eval_ds), self.tc.eval_batch_size or self.tc.batch_size)  # type: ignore[arg-type]
        loader = DataLoader(Subset(self.eval_ds, range(n)), batch_size=max(n, 1),
                            collate_fn=self.task.collate)
        rng = ckpt.capture_rng()  # the probe must not shift the run's random streams
        self.model.eval()
        try:
            names = sorted(self.task.evaluate(self.model, loader, self.device))
            if self.tc.ema_decay > 0:
                names += [f"raw_{n}" for n in names]
        finally:
            self.model.train()
            ckpt.restore_rng(rng)
        if self.best_metric not in names:
            raise ConfigError(f"train.best_metric {self.best_metric!r} is not among the eval "
                              f"metrics of task {self.task.name!r}: {', '.join(names)}")

    # -- checkpoints
    def _restore(self, info: ckpt.CheckpointInfo) -> None:
        meta = info.meta
        if meta.get("model", {}).get("name") != self.task.model_name:
            raise CheckpointError(f"checkpoint {info.path} holds model "
                                  f"{meta.get('model', {}).get('name')!r}, not "
                                  f"{self.task.model_name!r}")
        diff = diff_dicts(meta.get("model", {}).get("config"), to_dict(self.cfg.task.model))
        if diff:
            raise CheckpointError(f"checkpoint {info.path} was written for another "
                                  f"{self.task.model_name} config (differs in {', '.join(diff)})")
        from equivision.models.weights import load_into

        load_into(self.model, ckpt.load_checkpoint_tensors(info, "model"), str(info.path))
        state = ckpt.load_checkpoint_tensors(info, "train_state")
        if self.ema is not None:  # the checkpoint's model is the average; raw weights apart
            raw = {k[len(RAW_PREFIX):]: v for k, v in state.items() if k.startswith(RAW_PREFIX)}
            if not raw:
                raise CheckpointError(f"checkpoint {info.path} holds no raw weights "
                                      f"({RAW_PREFIX}*) for train.ema_decay > 0")
            self.ema = WeightAverage(self.model, self.tc.ema_decay)
            load_into(self.model, raw, f"{info.path} (raw weights)")
        state = {k: v for k, v in state.items() if not k.startswith(RAW_PREFIX)}
        try:
            self.optimizer.load_state_dict(
                ckpt.unflatten_state(state, meta["optimizer"], self.device))
            self.scheduler.load_state_dict(meta["scheduler"])
            if meta.get("scaler"):
                self.scaler.load_state_dict(meta["scaler"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"checkpoint {info.path} has an optimizer/scheduler state "
                                  f"that does not fit this run ({e})") from e
        rngs = meta.get("rng", [])
        if len(rngs) == self.info.world_size:
            ckpt.restore_rng(rngs[self.info.rank])
        elif self.info.is_main:
            self.console.print(f"warning: checkpoint written by {len(rngs)} process(es), resumed "
                               f"by {self.info.world_size}: RNG streams restart from the seed")
        self.step = info.step
        self.best = meta.get("best")
        self.last_eval = meta.get("metrics", {}).get("eval", {})
        self.last_train = meta.get("metrics", {}).get("train", {})

    def _forget_after(self, step: int) -> None:
        """A resume from ``step`` drops the checkpoints after it (the metrics are trimmed by
        MetricsLog.start) and points best.json at the restored best."""
        ckpt.drop_after(self.run_dir, step)
        try:
            best = ckpt.read_best(self.run_dir)
        except CheckpointError:
            best = {"step": step + 1}  # corrupt: rewrite it
        if best is not None and best["step"] > step:
            if self.best is not None:
                ckpt.write_best(self.run_dir, self.best["step"], self.best["metric"],
                                self.best["value"])
            else:
                (self.run_dir / "best.json").unlink()

    def _save(self, mark_best: bool) -> None:
        # every rank holds the same weights (DDP), so every rank refuses alike
        params = [p.detach() for p in self.model.parameters()]
        if self.ema is not None:
            params += [v for v in self.ema.state.values() if v.is_floating_point()]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            raise TrainingError(f"the model's weights became NaN or infinite by step "
                                f"{self.step} (not checkpointed); lower train.lr or set "
                                "train.grad_clip")
        rngs = dist.gather_json(ckpt.capture_rng(), self.info, self.device)
        if not self.info.is_main:
            return
        opt_tensors, opt_json = ckpt.flatten_state(self.optimizer.state_dict())
        model_state = self.model.state_dict()
        if self.ema is not None:  # users load the average; resume needs the raw weights too
            opt_tensors.update({RAW_PREFIX + k: v.detach().cpu().contiguous()
                                for k, v in model_state.items()})
            model_state = self.ema.state
        sched = self.scheduler.state_dict()  # lr_lambdas: [None] (a plain function)
        meta = {
            "task": self.task.name, "config": self.cfg.to_dict(),
            "model": {"name": self.task.model_name, "config": to_dict(self.cfg.task.model)},
            "world_size": self.info.world_size, "optimizer": opt_json, "scheduler": sched,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": rngs, "metrics": {"train": self.last_train, "eval": self.last_eval},
            "best": self.best, "equivision_version": __version__,
        }
        ckpt.save_checkpoint(self.run_dir, self.step, model_state, opt_tensors, meta)
        if mark_best and self.best is not None:
            ckpt.write_best(self.run_dir, self.step, self.best["metric"], self.best["value"])
        keep = {self.best["step"]} if self.best is not None else set()
        ckpt.prune_checkpoints(self.run_dir, self.tc.keep_last, keep)

    # -- data
    def _epoch_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        tc, b = self.tc, self.per_rank_batch
        sampler = DistributedSampler(self.train_ds, num_replicas=self.info.world_size,
                                     rank=self.info.rank, shuffle=True, seed=tc.seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        indices = list(sampler)[skip_batches * b: self.batches_per_epoch * b]
        return DataLoader(self.train_ds, batch_size=b, sampler=indices, drop_last=True,
                          num_workers=tc.num_workers, collate_fn=self.task.collate,
                          pin_memory=self.device.type == "cuda",
                          # a private generator: DataLoader would otherwise draw its worker
                          # seed from the global RNG, which resume restores
                          generator=torch.Generator().manual_seed(shuffle_seed(tc.seed, epoch)))

    def _eval_loader(self) -> DataLoader:
        bs = self.tc.eval_batch_size or self.tc.batch_size
        return DataLoader(self.eval_ds, batch_size=bs, shuffle=False,
                          num_workers=self.tc.num_workers, collate_fn=self.task.collate,
                          generator=torch.Generator().manual_seed(0))

    def _autocast(self) -> Any:
        if self.use_amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return nullcontext()

    # -- evaluation
    def _evaluate(self) -> bool:
        """Evaluate on rank 0; returns (on every rank) whether this is the best so far."""
        better = False
        if self.info.is_main:
            self.model.eval()
            with self._autocast():
                metrics = self.task.evaluate(self.model, self._eval_loader(), self.device)
                if self.ema is not None:  # the raw weights' figures, then the average's
                    raw = {f"raw_{k}": float(v) for k, v in metrics.items()}
                    self.ema.swap(self.model)
                    try:
                        metrics = {**self.task.evaluate(self.model, self._eval_loader(),
                                                        self.device), **raw}
                    finally:
                        self.ema.swap(self.model)
            self.model.train()
            self.last_eval = {k: float(v) for k, v in metrics.items()}
            self.log.write(self.step, "eval", self.last_eval)
            if self.best_metric not in self.last_eval:
                raise ConfigError(f"best metric {self.best_metric!r} is not among the eval "
                                  f"metrics {sorted(self.last_eval)}; set train.best_metric")
            value = self.last_eval[self.best_metric]
            if _is_better(value, None if self.best is None else self.best["value"],
                          self.best_mode):
                self.best = {"step": self.step, "metric": self.best_metric, "value": value}
                better = True
        return dist.broadcast_flag(better, self.info, self.device)

    # -- the loop
    def loop(self) -> TrainResult:
        tc, info = self.tc, self.info
        if self.step >= tc.steps:
            if info.is_main:
                self.console.print(f"{self.run_dir}: already trained to step {self.step}")
            return self._result()
        bar = _Progress(self.console, tc.steps, self.step, enabled=self.show_bar)
        sums: torch.Tensor | None = None
        names: list[str] = []
        window, t0 = 0, time.perf_counter()
        last_save, save_every_s, time_due = time.monotonic(), tc.checkpoint_minutes * 60, False
        rows: list[torch.Tensor] = []  # this log window's per-step values, to date a NaN
        self.ddp.train()
        with bar:
            while self.step < tc.steps:
                epoch, skip = divmod(self.step, self.batches_per_epoch)
                for batch in self._epoch_loader(epoch, skip):
                    batch = to_device(batch, self.device)
                    with self._autocast():
                        loss, metrics = self.task.loss(self.ddp, batch)
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scaler.scale(loss).backward()
                    if tc.grad_clip > 0:
                        self.scaler.unscale_(self.optimizer)
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    lr = self.optimizer.param_groups[0]["lr"]
                    self.scheduler.step()
                    self.step += 1
                    if self.ema is not None:
                        self.ema.update(self.model, self.step)

                    values = {"loss": loss.detach(), **{k: v.detach() if isinstance(
                        v, torch.Tensor) else torch.tensor(float(v)) for k, v in metrics.items()}}
                    names = list(values)
                    row = torch.stack([v.float().reshape(()).to(self.device)
                                       for v in values.values()])
                    sums = row if sums is None else sums + row
                    rows.append(row)
                    window += 1
                    done = self.step >= tc.steps
                    if self.step % tc.log_every == 0 or done:
                        # the time trigger rides on this reduction: any rank due -> all save
                        due = save_every_s > 0 and time.monotonic() - last_save >= save_every_s
                        flag = torch.tensor([float(due)], device=self.device)
                        mean = dist.all_reduce_mean(torch.cat([sums / window, flag]), info).tolist()
                        time_due = mean.pop() > 0
                        dt = max(time.perf_counter() - t0, 1e-9)
                        self.last_train = dict(zip(names, mean, strict=True))
                        bad = [k for k, v in self.last_train.items() if not math.isfinite(v)]
                        if bad:
                            local = (~torch.isfinite(torch.stack(rows))).any(1).nonzero()
                            where = (f"at step {self.step - window + 1 + int(local[0])}"
                                     if len(local) else f"by step {self.step}")
                            raise TrainingError(f"the training {bad[0]} became "
                                                f"{self.last_train[bad[0]]} {where}; lower "
                                                "train.lr or set train.grad_clip")
                        self.log.write(self.step, "train", {
                            **self.last_train, "lr": lr,
                            "samples_per_s": window * tc.batch_size / dt})
                        bar.update(self.step, self.last_train["loss"],
                                   window * tc.batch_size / dt)
                        sums, window, t0 = None, 0, time.perf_counter()
                        rows.clear()
                    better = False
                    paused = time.perf_counter()  # eval and checkpoints are not throughput
                    if done or (tc.eval_every and self.step % tc.eval_every == 0):
                        better = self._evaluate()
                        if info.is_main and not bar.enabled:
                            shown = ", ".join(f"{k} {v:.4g}" for k, v in self.last_eval.items())
                            self.console.print(f"step {self.step}/{tc.steps}: eval {shown}")
                    if done or better or time_due or (tc.checkpoint_every
                                                      and self.step % tc.checkpoint_every == 0):
                        self._save(mark_best=better)
                        last_save, time_due = time.monotonic(), False
                    t0 += time.perf_counter() - paused
                    if done:
                        break
        self.log.close()
        if info.is_main:
            self.console.print(f"trained {self.task.name} to step {self.step}; run folder "
                               f"{self.run_dir}")
        return self._result()

    def _result(self) -> TrainResult:
        return TrainResult(self.run_dir, self.step, dict(self.last_eval),
                           dict(self.last_train), self.best)


class _Progress:
    """A rich progress bar with loss and throughput (rank 0, on a terminal only)."""

    def __init__(self, console: Console, total: int, done: int, enabled: bool) -> None:
        self.enabled = enabled
        self._p = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("loss {task.fields[loss]}"),
                               TextColumn("{task.fields[rate]} samples/s"),
                               TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self._id = self._p.add_task("train", total=total, completed=done, loss="-", rate="-")

    def __enter__(self) -> _Progress:
        if self._p is not None:
            self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def update(self, step: int, loss: float, rate: float) -> None:
        if self._p is not None:
            self._p.update(self._id, completed=step, loss=f"{loss:.4g}", rate=f"{rate:.0f}")


# ----------------------------------------------------------------------------- evaluate

def evaluate_run(task: str | Task, run_dir: str | Path, *, checkpoint: str | int = "best",
                 device: str | None = None) -> tuple[int, dict[str, float]]:
    """Evaluate a run's checkpoint on the task's eval set: ``(step, metrics)``."""
    task = get_task(task) if isinstance(task, str) else task
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, task)
    info = ckpt.find_checkpoint(run_dir, checkpoint)
    dev = resolve_device(device or cfg.train.device, dist.DistInfo())
    from equivision.models import load

    model = load(run_dir, model=task.model_name, config=cfg.task.model, checkpoint=info.step,
                 device=dev)
    _, eval_ds = task.datasets(cfg.task)
    loader = DataLoader(eval_ds, batch_size=cfg.train.eval_batch_size or cfg.train.batch_size,
                        shuffle=False, collate_fn=task.collate,
                        generator=torch.Generator().manual_seed(0))
    metrics = task.evaluate(model, loader, dev)
    return info.step, {k: float(v) for k, v in metrics.items()}
