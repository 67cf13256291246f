"""``equivision train <task>`` and ``equivision eval <task>``: the training engine's CLI.

Both work the same under ``torchrun --nproc_per_node=N -m equivision train ...``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from equivision.cli.app import app, check_device, console, err_console


@app.command("train")
def train_cmd(
    task: str | None = typer.Argument(None, help="Task name (equivision train --list shows "
                                      "them)."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="JSON run config (sections 'train' and 'task')."),
    run: Path | None = typer.Option(None, "--run", "--run-dir",
                                    help="Run folder (default runs/<task>); under torchrun "
                                    "spell it --run-dir (torchrun takes --run for --run-path)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its latest "
                                "intact checkpoint (a corrupt newer one is skipped with a "
                                "warning)."),
    from_step: int | None = typer.Option(None, "--from-step", min=1,
                                         help="With --resume: continue from the checkpoint of "
                                         "this step; later metrics and checkpoints are dropped."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    device: str | None = typer.Option(None, "--device",
                                      help="auto, cpu, cuda or cuda:N (overrides the config)."),
    list_: bool = typer.Option(False, "--list", help="List the task names and exit."),
) -> None:
    """Train a task; writes config.json, metrics.csv and checkpoints into the run folder."""
    from equivision.errors import ConfigError
    from equivision.training import get_task, read_json, train

    if list_:
        from equivision.training.tasks import describe_task, list_tasks

        for name in list_tasks():
            console.print(f"{name}  {describe_task(name)}", highlight=False, soft_wrap=True)
        return
    data = read_json(config) if config is not None else None
    if task is None and isinstance(data, dict) and isinstance(data.get("task_name"), str):
        task = data["task_name"]  # the config names its task: no need to repeat it
    if task is None:
        raise ConfigError("name the task to train (equivision train --list shows them)")
    if from_step is not None and not resume:
        raise ConfigError("--from-step needs --resume")
    if device is not None:
        device = check_device(device, allow_auto=True)
    t = get_task(task)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    run_dir = run if run is not None else Path("runs") / task
    result = train(t, data, run_dir, resume=resume, overwrite=overwrite, device=device,
                   console=err_console, from_step=from_step)
    from equivision.training.distributed import from_env

    if from_env().is_main and result.eval_metrics:
        _print_metrics(f"{task}: eval at step {result.step}", result.eval_metrics)


@app.command("eval")
def eval_cmd(
    task: str = typer.Argument(..., help="Task name."),
    run: Path = typer.Option(..., "--run", "--run-dir",
                             help="Run folder written by equivision train."),
    checkpoint: str = typer.Option("best", "--checkpoint",
                                   help="best, latest or a step number."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Evaluate a run's checkpoint on the task's eval set and print the metrics."""
    if device is not None:
        device = check_device(device, allow_auto=True)
    from equivision.training import evaluate_run

    step, metrics = evaluate_run(task, run, checkpoint=checkpoint, device=device)
    _print_metrics(f"{task}: {run} at step {step}", metrics)


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    console.print(title, highlight=False, soft_wrap=True)
    t = Table()
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in metrics.items():
        t.add_row(k, f"{v:.6g}")
    console.print(t)
