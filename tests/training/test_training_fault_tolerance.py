"""Fault tolerance of training: default checkpoints, resume past a corrupt checkpoint or from a
chosen step, TensorBoard without replayed steps, config checks for Python-built configs, and
errors that come before the run folder exists."""

from __future__ import annotations

import io
import json
import subprocess

import pytest
import torch
from rich.console import Console
from training_helpers import (
    PYTHON,
    deterministic_rows,
    final_weights,
    run_until_first_checkpoint_then_kill,
    subprocess_env,
    toy_config,
    write_config,
)

from equivision.cli import main
from equivision.errors import CheckpointError, ConfigError
from equivision.training import TrainConfig, TrainingError, train
from equivision.training.checkpoint import checkpoint_steps, checkpoints_dir, step_dir_name
from equivision.training.toy import ToyConfig


def _corrupt(run, step: int, name: str = "model.safetensors") -> None:
    p = checkpoints_dir(run) / step_dir_name(step) / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different digest
    p.write_bytes(bytes(data))


def _same_weights(a, b) -> None:
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=1e-6)


def _same_rows(a, b) -> None:
    ra, rb = deterministic_rows(a), deterministic_rows(b)
    assert [r[:3] for r in rb] == [r[:3] for r in ra]  # no duplicated or lost rows
    for x, y in zip(ra, rb, strict=True):
        assert abs(x[3] - y[3]) <= 1e-6 * max(1.0, abs(x[3])), (x, y)


# ----------------------------------------------------------------------------- config checks

@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"optimizer": "adamx"}, "train.optimizer must be one of"),
    ({"schedule": "cosin"}, "train.schedule must be one of"),
    ({"steps": "10"}, "train.steps must be an integer"),
    ({"batch_size": True}, "train.batch_size must be an integer"),
    ({"lr": 1e300}, "absurdly large"),
    ({"lr": float("inf")}, "train.lr must be a finite number"),
    ({"lr": float("nan")}, "train.lr must be a finite number"),
    ({"momentum": 1.5}, "train.momentum must be a finite number in [0, 1]"),
    ({"weight_decay": float("nan")}, "train.weight_decay"),
    ({"checkpoint_minutes": -1.0}, "train.checkpoint_minutes"),
    ({"dist_timeout_s": 0.0}, "train.dist_timeout_s"),
    ({"warmup_steps": 2000}, "train.warmup_steps"),
    ({"device": "cuda:x"}, "train.device"),
    ({"amp_dtype": "float8"}, "train.amp_dtype must be one of"),
])
def test_python_construction_is_checked(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert needle in str(e.value)


def test_python_construction_converts_like_json() -> None:
    c = TrainConfig(lr=1, optimizer="sgd")
    assert isinstance(c.lr, float) and c.lr == 1.0
    assert TrainConfig().checkpoint_every > 0 and TrainConfig().checkpoint_minutes > 0
    with pytest.raises(ConfigError, match=r"task\.noise must be a number"):
        ToyConfig(noise="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"task\.n_train must be an integer"):
        ToyConfig(n_train=2.5)  # type: ignore[arg-type]


def test_cli_refuses_absurd_lr_and_bad_best_metric_before_the_run_folder(tmp_path, capsys) -> None:
    for i, train_cfg in enumerate([{"lr": 1e300}, {"best_metric": "acc", "steps": 2}]):
        cfg = write_config(tmp_path / f"c{i}.json", toy_config(**train_cfg))
        run = tmp_path / f"run{i}"
        code = main(["train", "toy", "--config", str(cfg), "--run", str(run), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        assert "Traceback" not in err
        assert not run.exists()  # a corrected rerun needs no --overwrite


def test_train_list_and_missing_task(capsys) -> None:
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "toy" in lines and "toy_mlp" in lines["toy"]
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: name the task to train (equivision train --list shows them)"


# ----------------------------------------------------------------------------- checkpoints

def test_time_trigger_checkpoints_without_a_step_count(tmp_path, quiet_console) -> None:
    # a tiny interval makes every log point due; 0 disables the trigger
    cfg = toy_config(steps=20, log_every=5, eval_every=0, checkpoint_every=0,
                     checkpoint_minutes=1e-9)
    train("toy", cfg, tmp_path / "timed", console=quiet_console)
    assert checkpoint_steps(tmp_path / "timed") == [5, 10, 15, 20]
    cfg["train"]["checkpoint_minutes"] = 0.0
    train("toy", cfg, tmp_path / "untimed", console=quiet_console)
    assert checkpoint_steps(tmp_path / "untimed") == [20]


def test_diverging_weights_are_never_checkpointed(tmp_path, quiet_console) -> None:
    run = tmp_path / "nan"
    cfg = toy_config(steps=40, lr=100.0, optimizer="sgd", momentum=0.0, log_every=40,
                     eval_every=0, checkpoint_every=1)
    with pytest.raises(TrainingError, match=r"became NaN or infinite by step \d+"):
        train("toy", cfg, run, console=quiet_console)
    for s in checkpoint_steps(run):
        w = final_weights(run, s)
        assert all(bool(torch.isfinite(t).all()) for t in w.values()), s


@pytest.fixture()
def finished(tmp_path, quiet_console):
    """An uninterrupted 60-step run with checkpoints at 20, 40, 60."""
    cfg = toy_config(steps=60, eval_every=20, checkpoint_every=20)
    run = tmp_path / "ref"
    train("toy", cfg, run, console=quiet_console)
    assert checkpoint_steps(run) == [20, 40, 60]
    return cfg, run


def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_latest_falls_back_with_one_warning(tmp_path, finished) -> None:
    _cfg, ref = finished
    run = _copy_run(ref, tmp_path / "broken")
    _corrupt(run, 60)
    buf = io.StringIO()
    train("toy", None, run, resume=True, console=Console(file=buf, width=400))
    warnings = [ln for ln in buf.getvalue().splitlines() if ln.startswith("warning")]
    assert len(warnings) == 1, buf.getvalue()
    assert "resuming from step 40" in warnings[0] and "step 60" in warnings[0]
    assert "SHA-256" in warnings[0]  # why it was skipped
    assert checkpoint_steps(run) == [20, 40, 60]
    _same_weights(ref, run)
    _same_rows(ref, run)


def test_no_intact_checkpoint_is_refused(tmp_path, finished, quiet_console) -> None:
    _cfg, ref = finished
    run = _copy_run(ref, tmp_path / "all-broken")
    for s in (20, 40, 60):
        _corrupt(run, s, "train_state.safetensors")
    with pytest.raises(CheckpointError, match=r"no checkpoint .* is intact"):
        train("toy", None, run, resume=True, console=quiet_console)


def test_resume_from_step_drops_what_came_after(tmp_path, finished, capsys) -> None:
    _cfg, ref = finished
    run = _copy_run(ref, tmp_path / "rewind")
    with pytest.raises(CheckpointError, match="no checkpoint at step 30; it has steps 20, 40, 60"):
        train("toy", None, run, resume=True, from_step=30)
    with pytest.raises(ConfigError, match="--from-step needs --resume"):
        train("toy", None, run, from_step=20)
    (run / "best.json").write_text(json.dumps({"step": 60, "metric": "mse", "value": 0.0}))
    code = main(["train", "toy", "--run", str(run), "--resume", "--from-step", "20",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "resuming from step 20" in err and "40, 60" in err
    assert checkpoint_steps(run) == [20, 40, 60]
    _same_weights(ref, run)
    _same_rows(ref, run)
    assert json.loads((run / "best.json").read_text()) == json.loads((ref / "best.json").read_text())


def test_tensorboard_holds_each_step_once_after_resume(tmp_path, finished) -> None:
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _cfg, ref = finished
    run = _copy_run(ref, tmp_path / "tb")
    train("toy", None, run, resume=True, from_step=20, progress=False)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    events = acc.Scalars("train/loss")
    steps = [e.step for e in events]
    assert len(steps) == len(set(steps)), sorted(steps)  # the replayed 25..60 appear once
    csv_loss = {s: v for s, sp, m, v in deterministic_rows(run) if sp == "train" and m == "loss"}
    assert sorted(steps) == sorted(csv_loss)
    assert all(abs(e.value - csv_loss[e.step]) < 1e-6 * max(1.0, abs(csv_loss[e.step]))
               for e in events)
    evals = [e.step for e in acc.Scalars("eval/mse")]
    assert sorted(evals) == [20, 40, 60]


@pytest.mark.slow
def test_default_config_run_killed_midway_resumes(tmp_path, quiet_console) -> None:
    # default checkpoint settings: only the length and the data are set
    steps = 1200
    cfg = {"train": {"steps": steps, "lr": 0.01},
           "task": {"n_train": 256, "n_eval": 64, "model": {"hidden": 16}}}
    every = TrainConfig().checkpoint_every
    assert 0 < every < steps
    cfg_file = write_config(tmp_path / "c.json", cfg)
    run = tmp_path / "killed"
    cmd = [PYTHON, "-m", "equivision", "train", "toy", "--config", str(cfg_file), "--run",
           str(run), "--device", "cpu"]
    run_until_first_checkpoint_then_kill(cmd, run)
    done = checkpoint_steps(run)
    assert done and max(done) < steps  # killed midway, after a default checkpoint
    resumed = subprocess.run([*cmd, "--resume"], env=subprocess_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert max(checkpoint_steps(run)) == steps
    ref = tmp_path / "uninterrupted"
    train("toy", cfg, ref, console=quiet_console)
    _same_weights(ref, run)
    _same_rows(ref, run)


def test_resume_never_deletes_a_checkpoint_folder_holding_foreign_files(tmp_path, finished) -> None:
    _cfg, ref = finished
    run = _copy_run(ref, tmp_path / "foreign")
    notes = checkpoints_dir(run) / step_dir_name(60) / "notes.txt"
    notes.write_text("the user's notes")
    with pytest.raises(CheckpointError, match="did not write"):
        train("toy", None, run, resume=True, from_step=20, progress=False)
    assert notes.read_text() == "the user's notes"


def test_only_pure_checkpoint_folders_and_equivision_temporaries_are_removed(tmp_path) -> None:
    from equivision.training.checkpoint import CHECKPOINT_FILES, remove_checkpoint_dir, remove_partial

    ours = tmp_path / "ours"
    ours.mkdir()
    for n in CHECKPOINT_FILES:
        (ours / n).write_bytes(b"x")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "meta.json").write_text("{}")
    (mixed / "thesis.tex").write_text("tex")
    link = tmp_path / "link"
    link.symlink_to(ours)
    assert not remove_checkpoint_dir(link) and link.is_symlink() and ours.is_dir()
    assert not remove_checkpoint_dir(mixed) and (mixed / "thesis.tex").is_file()
    assert remove_checkpoint_dir(ours) and not ours.exists()

    run = tmp_path / "run"
    ckpts = checkpoints_dir(run)
    ckpts.mkdir(parents=True)
    user = ckpts / ".backup.old"  # hidden and .old, but not an equivision temporary
    user.mkdir()
    stale = ckpts / f".{step_dir_name(5)}.equivision-999999999-abcd1234.tmp"
    stale.mkdir()
    remove_partial(run)
    assert user.is_dir() and not stale.exists()
