"""The training engine: one trainer for every model, on CPU, CUDA and under torchrun.

* :mod:`~equivision.training.config`: typed run configs (:class:`TrainConfig` + the task's
  dataclass) read from JSON with unknown-key and type checks (by :mod:`equivision.configio`,
  which :mod:`equivision.models` shares).
* :mod:`~equivision.training.tasks`: the task registry (:func:`register_task`, :class:`Task`)
  and the contract a task implements; :mod:`~equivision.training.toy` is the example.
* :mod:`~equivision.training.trainer`: :func:`train` and :func:`evaluate_run`.
* :mod:`~equivision.training.checkpoint`: safetensors + JSON checkpoints, atomic, keep the
  last k and the best; :mod:`equivision.runs` reads them back.
* :mod:`~equivision.training.batches`: moving and measuring batches (trainer and tasks).
* :mod:`~equivision.training.distributed`: torchrun process groups (gloo on CPU, NCCL on CUDA).
"""

from equivision.training.config import (
    RunConfig,
    TrainConfig,
    build_run_config,
    from_dict,
    read_json,
    to_dict,
)
from equivision.training.tasks import TASK_MODULES, Task, get_task, list_tasks, register_task
from equivision.training.trainer import (
    TrainingError,
    TrainResult,
    evaluate_run,
    load_run_config,
    read_metrics,
    train,
)

__all__ = [
    "TASK_MODULES",
    "RunConfig",
    "Task",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "build_run_config",
    "evaluate_run",
    "from_dict",
    "get_task",
    "list_tasks",
    "load_run_config",
    "read_json",
    "read_metrics",
    "register_task",
    "to_dict",
    "train",
]
