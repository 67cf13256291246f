"""Helpers of the training-engine tests: tiny toy configs, and the environment of
subprocesses (one thread, like the test process, so results compare bitwise)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from equivision.models.weights import read_tensors
from equivision.training import read_metrics
from equivision.training.checkpoint import checkpoint_steps, find_checkpoint

PYTHON = sys.executable
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def toy_config(**train: Any) -> dict[str, Any]:
    base = {"steps": 40, "batch_size": 32, "lr": 0.01, "log_every": 5, "eval_every": 20,
            "checkpoint_every": 20, "keep_last": 10}
    base.update(train)
    return {"train": base, "task": {"n_train": 256, "n_eval": 64, "model": {"hidden": 16}}}


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def final_weights(run_dir: Path, which: str | int = "latest") -> dict[str, torch.Tensor]:
    return read_tensors(find_checkpoint(run_dir, which).path / "model.safetensors")


def curve(run_dir: Path, split: str, metric: str) -> list[tuple[int, float]]:
    return [(s, v) for s, sp, m, v in read_metrics(run_dir) if sp == split and m == metric]


def deterministic_rows(run_dir: Path) -> list[tuple[int, str, str, float]]:
    """metrics.csv without the wall-clock throughput."""
    return [r for r in read_metrics(run_dir) if r[2] != "samples_per_s"]


def copy_run_up_to(src: Path, dst: Path, step: int) -> None:
    """``dst``: a copy of the run folder ``src`` without its checkpoints after ``step`` (as if
    the run had been killed there)."""
    import shutil

    from equivision.training.checkpoint import checkpoints_dir

    shutil.copytree(src, dst)
    for s in checkpoint_steps(dst):
        if s > step:
            shutil.rmtree(checkpoints_dir(dst) / f"step-{s:08d}")


def run_until_first_checkpoint_then_kill(cmd: list[str], run: Path, timeout_s: float = 120) -> None:
    """Start ``cmd`` (a training command writing into ``run``), SIGKILL it as soon as a
    checkpoint exists, and check it really died part-way."""
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout_s
        while not checkpoint_steps(run):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
