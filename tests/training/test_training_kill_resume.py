"""A run SIGKILLed part-way and resumed with --resume ends exactly like an uninterrupted run."""

from __future__ import annotations

import subprocess

import pytest
import torch
from training_helpers import (
    PYTHON,
    deterministic_rows,
    final_weights,
    run_until_first_checkpoint_then_kill,
    subprocess_env,
    toy_config,
    write_config,
)

from equivision.training import train
from equivision.training.checkpoint import checkpoint_steps


@pytest.mark.slow
def test_sigkill_then_resume_is_identical(tmp_path, quiet_console) -> None:
    steps = 1500  # ~2 ms a step: the kill lands long before the end
    cfg = toy_config(steps=steps, checkpoint_every=100, eval_every=500, log_every=50, keep_last=3)
    cfg_file = write_config(tmp_path / "c.json", cfg)
    run = tmp_path / "killed"
    cmd = [PYTHON, "-m", "equivision", "train", "toy", "--config", str(cfg_file), "--run",
           str(run), "--device", "cpu"]
    run_until_first_checkpoint_then_kill(cmd, run)
    done = checkpoint_steps(run)
    assert done and max(done) < steps  # really interrupted
    resumed = subprocess.run([*cmd, "--resume"], env=subprocess_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert max(checkpoint_steps(run)) == steps

    ref = tmp_path / "uninterrupted"
    train("toy", cfg, ref, console=quiet_console)
    a, b = final_weights(ref), final_weights(run)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    rows_a, rows_b = deterministic_rows(ref), deterministic_rows(run)
    assert [r[:3] for r in rows_b] == [r[:3] for r in rows_a]  # no duplicated or lost rows
    for x, y in zip(rows_a, rows_b, strict=True):
        assert abs(x[3] - y[3]) <= 1e-6 * max(1.0, abs(x[3])), (x, y)
