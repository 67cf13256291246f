"""The trainer in-process: learning, determinism, resume, schedules, run-folder rules."""

from __future__ import annotations

import pytest
import torch
from training_helpers import copy_run_up_to, curve, deterministic_rows, final_weights, toy_config

from equivision.errors import CheckpointError, ConfigError, OutputExistsError
from equivision.training import TrainConfig, TrainingError, evaluate_run, train
from equivision.training.checkpoint import checkpoint_steps, read_best
from equivision.training.trainer import lr_factor


def test_toy_learns_and_writes_its_run_folder(tmp_path, quiet_console) -> None:
    run = tmp_path / "run"
    r = train("toy", toy_config(steps=120, eval_every=40, checkpoint_every=40, keep_last=1,
                                lr=0.05), run, console=quiet_console)
    assert r.step == 120
    losses = [v for _, v in curve(run, "train", "loss")]
    assert len(losses) == 120 // 5
    assert sum(losses[-4:]) / 4 < 0.25 * sum(losses[:4]) / 4  # it learns
    evals = curve(run, "eval", "mse")
    assert [s for s, _ in evals] == [40, 80, 120]
    assert r.eval_metrics["mse"] == evals[-1][1]
    # keep_last=1 plus the best (the last eval here is also the best, so one folder)
    best = read_best(run)
    assert best is not None and best["step"] == min(evals, key=lambda e: e[1])[0]
    assert set(checkpoint_steps(run)) == {120, best["step"]}
    assert (run / "config.json").is_file()
    step, metrics = evaluate_run("toy", run, checkpoint="latest")
    assert step == 120 and metrics["mse"] == pytest.approx(r.eval_metrics["mse"], rel=1e-6)


def test_same_seed_same_run_other_seed_other_run(tmp_path, quiet_console) -> None:
    cfg = toy_config(steps=20, eval_every=0, checkpoint_every=0)
    train("toy", cfg, tmp_path / "a", console=quiet_console)
    train("toy", cfg, tmp_path / "b", console=quiet_console)
    assert deterministic_rows(tmp_path / "a") == deterministic_rows(tmp_path / "b")
    cfg["train"]["seed"] = 1
    train("toy", cfg, tmp_path / "c", console=quiet_console)
    wa, wc = final_weights(tmp_path / "a"), final_weights(tmp_path / "c")
    assert not torch.equal(wa["net.0.weight"], wc["net.0.weight"])


@pytest.mark.parametrize("train_cfg", [
    {"optimizer": "adam", "schedule": "cosine", "warmup_steps": 5},
    {"optimizer": "sgd", "schedule": "step", "step_size": 7, "grad_clip": 0.5, "lr": 0.05},
])
def test_resume_from_an_earlier_checkpoint_matches_uninterrupted(tmp_path, quiet_console,
                                                                 train_cfg) -> None:
    # 256 samples / 32 = 8 batches per epoch: step 20 resumes in the middle of epoch 2
    cfg = toy_config(steps=50, checkpoint_every=10, eval_every=25, log_every=1, **train_cfg)
    full = tmp_path / "full"
    train("toy", cfg, full, console=quiet_console)
    part = tmp_path / "part"
    copy_run_up_to(full, part, 20)
    r = train("toy", None, part, resume=True, console=quiet_console)
    assert r.step == 50
    a, b = final_weights(full), final_weights(part)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    _assert_rows_close(deterministic_rows(part), deterministic_rows(full))
    # resuming a finished run changes nothing
    again = train("toy", None, part, resume=True, console=quiet_console)
    assert again.step == 50 and again.eval_metrics == r.eval_metrics


def _assert_rows_close(a: list, b: list) -> None:
    assert [r[:3] for r in a] == [r[:3] for r in b]
    for x, y in zip(a, b, strict=True):
        assert abs(x[3] - y[3]) <= 1e-6 * max(1.0, abs(y[3])), (x, y)


@pytest.mark.parametrize(("schedule", "oracle"), [
    ("cosine", lambda opt, n: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n,
                                                                         eta_min=0.1)),
    ("linear", lambda opt, n: torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.1, total_iters=n)),
    ("step", lambda opt, n: torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)),
])
def test_lr_schedules_match_torch_schedulers(schedule: str, oracle) -> None:
    n = 20
    tc = TrainConfig(steps=n, lr=1.0, schedule=schedule, min_lr_factor=0.1, step_size=4,
                     step_gamma=0.5)
    f = lr_factor(tc)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = oracle(opt, n)
    for step in range(n):
        assert f(step) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), step
        opt.step()
        sched.step()


def test_warmup_is_linear_from_one_over_w() -> None:
    f = lr_factor(TrainConfig(steps=100, warmup_steps=4, schedule="constant"))
    assert [f(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_run_folder_rules(tmp_path, quiet_console) -> None:
    run = tmp_path / "run"
    cfg = toy_config(steps=5, eval_every=0, checkpoint_every=0)
    train("toy", cfg, run, console=quiet_console)
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train("toy", cfg, run, console=quiet_console)
    assert (run / "metrics.csv").read_bytes() == before  # untouched
    cfg["train"]["seed"] = 3
    with pytest.raises(ConfigError, match=r"differs .* in train.seed"):
        train("toy", cfg, run, resume=True, console=quiet_console)
    train("toy", cfg, run, overwrite=True, console=quiet_console)
    assert (run / "metrics.csv").read_bytes() != before
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="refusing to delete"):
        train("toy", cfg, other, overwrite=True, console=quiet_console)
    assert (other / "precious.txt").read_text() == "keep me"
    with pytest.raises(CheckpointError, match="not a run folder"):
        train("toy", None, other, resume=True, console=quiet_console)


def test_bad_settings(tmp_path, quiet_console) -> None:
    with pytest.raises(ConfigError, match=r"fewer than train\.batch_size"):
        train("toy", {"train": {"batch_size": 64}, "task": {"n_train": 10}}, tmp_path / "a",
              console=quiet_console)
    with pytest.raises(ConfigError, match="unknown task"):
        train("nope", None, tmp_path / "b", console=quiet_console)
    with pytest.raises(ConfigError, match=r"best_metric 'acc' is not among .*: loss, mse"):
        train("toy", toy_config(steps=2, best_metric="acc"), tmp_path / "c",
              console=quiet_console)
    assert not (tmp_path / "c").exists()  # refused before the run folder was made
    with pytest.raises(ConfigError, match="absurdly large"):
        train("toy", toy_config(steps=30, lr=1e6), tmp_path / "d", console=quiet_console)
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step \d+"):
        train("toy", toy_config(steps=30, lr=100.0, optimizer="sgd", momentum=0.0),
              tmp_path / "d", console=quiet_console)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            train("toy", toy_config(steps=2), tmp_path / "e", device="cuda",
                  console=quiet_console)


def test_progress_bar_on_a_terminal(tmp_path) -> None:
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    train("toy", toy_config(steps=10, eval_every=0, checkpoint_every=0), tmp_path / "r",
          console=console)
    text = buf.getvalue()
    assert "10/10" in text and "samples/s" in text and "loss 0." in text


def test_task_contract_is_checked_at_registration() -> None:
    from dataclasses import dataclass

    from equivision.training import Task, register_task

    @dataclass
    class NoModel:
        n: int = 1

    class Bad(Task):
        config_cls = NoModel
        model_name = "toy_mlp"

    with pytest.raises(TypeError, match="'model' field"):
        register_task("bad-task")(Bad)


def test_a_broken_task_module_does_not_hide_the_others(monkeypatch) -> None:
    from equivision.training import tasks

    monkeypatch.setattr(tasks, "TASK_MODULES", [*tasks.TASK_MODULES, "equivision.no_such_mod"])
    monkeypatch.setattr(tasks, "_import_errors", dict(tasks._import_errors))
    assert "toy" in tasks.list_tasks()
    with pytest.raises(ConfigError, match=r"failed to import: equivision\.no_such_mod"):
        tasks.get_task("missing")


def test_init_from_starts_at_another_runs_weights(tmp_path, quiet_console) -> None:
    train("toy", toy_config(steps=60, lr=0.05, eval_every=0, checkpoint_every=0), tmp_path / "a",
          console=quiet_console)
    trained_mse = curve(tmp_path / "a", "eval", "mse")[-1][1]
    fresh = toy_config(steps=1, lr=1e-9, eval_every=0, checkpoint_every=0)
    train("toy", fresh, tmp_path / "random", console=quiet_console)
    fresh["train"]["init_from"] = str(tmp_path / "a")
    train("toy", fresh, tmp_path / "b", console=quiet_console)
    # one step at lr 1e-9 from a's best weights: b evaluates as a did; a random start does not
    assert curve(tmp_path / "b", "eval", "mse")[-1][1] == pytest.approx(trained_mse, rel=1e-4)
    assert curve(tmp_path / "random", "eval", "mse")[-1][1] > 1.4 * trained_mse
    other = toy_config(steps=1, init_from=str(tmp_path / "a"))
    other["task"]["model"]["hidden"] = 8  # another shape: refused, naming the tensors
    with pytest.raises(CheckpointError):
        train("toy", other, tmp_path / "c", console=quiet_console)
    with pytest.raises(ConfigError, match="init_from"):
        train("toy", toy_config(steps=1, init_from="no-such-model"), tmp_path / "d", console=quiet_console)
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
