"""TensorBoard scalars mirror metrics.csv when the optional `tensorboard` package is installed."""

from __future__ import annotations

import pytest

from equivision.training import read_metrics, train

pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")


def test_event_files_hold_the_csv_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = {"train": {"steps": 20, "batch_size": 16, "log_every": 5, "eval_every": 10, "device": "cpu"},
           "task": {"n_train": 64, "n_eval": 32}}
    result = train("toy", cfg, tmp_path / "run", progress=False)
    acc = EventAccumulator(str(result.run_dir / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    rows = read_metrics(result.run_dir)
    assert {f"{split}/{name}" for _, split, name, _ in rows} <= tags
    loss = {e.step: e.value for e in acc.Scalars("train/loss")}
    csv_loss = {step: v for step, split, name, v in rows if split == "train" and name == "loss"}
    assert loss.keys() == csv_loss.keys()
    assert all(abs(loss[s] - csv_loss[s]) < 1e-6 * max(1.0, abs(csv_loss[s])) for s in loss)
