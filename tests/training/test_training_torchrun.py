"""``torchrun --nproc_per_node=2 -m equivision train`` (gloo, CPU) gives the loss curve of one
process with the same global batch; only rank 0 writes; an error on one rank stops all."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch
from training_helpers import (
    TORCHRUN,
    curve,
    final_weights,
    subprocess_env,
    toy_config,
    write_config,
)

from equivision.training import read_metrics, train
from equivision.training.checkpoint import checkpoint_steps, checkpoints_dir


def _torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "equivision",
                           *args], env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, quiet_console) -> None:
    cfg = toy_config(steps=30, log_every=1, eval_every=15, checkpoint_every=15)
    cfg_file = write_config(tmp_path / "c.json", cfg)
    run2 = tmp_path / "two"
    p = _torchrun("train", "toy", "--config", str(cfg_file), "--run-dir", str(run2),
                  "--device", "cpu")
    assert p.returncode == 0, p.stderr[-3000:]
    run1 = tmp_path / "one"
    train("toy", cfg, run1, console=quiet_console)

    one, two = curve(run1, "train", "loss"), curve(run2, "train", "loss")
    assert [s for s, _ in two] == list(range(1, 31))  # one row per step: rank 0 alone logs
    torch.testing.assert_close(torch.tensor([v for _, v in two]),
                               torch.tensor([v for _, v in one]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor([v for _, v in curve(run2, "eval", "mse")]),
                               torch.tensor([v for _, v in curve(run1, "eval", "mse")]),
                               rtol=1e-5, atol=1e-6)
    w1, w2 = final_weights(run1), final_weights(run2)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6)
    assert checkpoint_steps(run2) == [15, 30]
    # rank 0 alone writes; "tensorboard" is there when the optional package is installed
    assert sorted(p.name for p in run2.iterdir() if p.name != "tensorboard") == [
        ".equivision.json", "best.json", "checkpoints", "config.json", "metrics.csv"]
    assert len(read_metrics(run2)) == len(read_metrics(run1))

    # resume under torchrun from step 15: every rank restores its own RNG state
    part = tmp_path / "two-resumed"
    shutil.copytree(run2, part)
    shutil.rmtree(checkpoints_dir(part) / "step-00000030")
    p = _torchrun("train", "toy", "--run-dir", str(part), "--resume", "--device", "cpu")
    assert p.returncode == 0, p.stderr[-3000:]
    w3 = final_weights(part)
    for k in w2:
        torch.testing.assert_close(w3[k], w2[k], rtol=0, atol=1e-6)
    resumed, straight = curve(part, "train", "loss"), curve(run2, "train", "loss")
    assert [s for s, _ in resumed] == [s for s, _ in straight]
    assert [v for _, v in resumed] == pytest.approx([v for _, v in straight], rel=1e-6, abs=1e-7)


@pytest.mark.slow
def test_an_uncreatable_run_folder_stops_every_rank(tmp_path) -> None:
    """The run folder cannot be created (its parent is a file): every rank refuses it in the
    output checks before the process group forms, with one error line: nothing hangs."""
    (tmp_path / "file").write_text("not a folder")
    cfg_file = write_config(tmp_path / "c.json", toy_config())
    p = _torchrun("train", "toy", "--config", str(cfg_file), "--run-dir",
                  str(tmp_path / "file" / "run"), timeout=120)
    assert p.returncode != 0
    assert "file is not a folder; cannot create" in p.stderr
