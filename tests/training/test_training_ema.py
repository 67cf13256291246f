"""The weight average (train.ema_decay): its update rule against a NumPy recursion, what a
run writes and evaluates, and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from training_helpers import copy_run_up_to, curve, deterministic_rows, final_weights, toy_config

from equivision.errors import ConfigError
from equivision.models.weights import read_tensors
from equivision.training import evaluate_run, train
from equivision.training.checkpoint import checkpoint_steps, find_checkpoint
from equivision.training.config import build_run_config
from equivision.training.tasks import get_task
from equivision.training.trainer import RAW_PREFIX, WeightAverage, seed_everything


def _numpy_average(weights: list[np.ndarray], decay: float) -> np.ndarray:
    """avg_0 = w_0; avg_t = d_t avg_(t-1) + (1 - d_t) w_t, d_t = min(decay, (1+t)/(10+t))."""
    avg = weights[0].astype(np.float64)
    for t, w in enumerate(weights[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))
        avg = d * avg + (1 - d) * w
    return avg


def test_update_matches_the_numpy_recursion_and_copies_integer_buffers() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    states = []
    avg = WeightAverage(model, decay=0.95)
    states.append({k: v.clone() for k, v in model.state_dict().items()})
    for t in range(1, 40):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.normal_()
            model[1].num_batches_tracked += 1
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        avg.update(model, t)
    for k, v in avg.state.items():
        if v.is_floating_point():
            ref = _numpy_average([s[k].numpy() for s in states], 0.95)
            np.testing.assert_allclose(v.numpy(), ref, rtol=0, atol=1e-5)
        else:
            assert torch.equal(v, states[-1][k])
    # swap exchanges the weights and the average; a second swap undoes it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    averaged = {k: v.clone() for k, v in avg.state.items()}
    avg.swap(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, averaged[k]) and torch.equal(avg.state[k], before[k])
    avg.swap(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_a_run_checkpoints_the_average_and_evaluates_both(tmp_path, quiet_console) -> None:
    decay = 0.9
    steps = 24
    cfg = toy_config(steps=steps, checkpoint_every=1, keep_last=100, eval_every=12,
                     ema_decay=decay)
    run = tmp_path / "ema"
    train("toy", cfg, run, console=quiet_console)
    plain = toy_config(steps=steps, checkpoint_every=1, keep_last=100, eval_every=12)
    train("toy", plain, tmp_path / "plain", console=quiet_console)

    # the initial weights, as the trainer builds them
    rc = build_run_config("toy", get_task("toy").config_cls, cfg)
    seed_everything(rc.train.seed)
    init = get_task("toy").build_model(rc.task).state_dict()
    assert checkpoint_steps(run) == list(range(1, steps + 1))
    raws = [{k: v.numpy() for k, v in init.items()}]
    for s in range(1, steps + 1):
        info = find_checkpoint(run, s)
        state = read_tensors(info.path / "train_state.safetensors")
        raw = {k[len(RAW_PREFIX):]: v for k, v in state.items() if k.startswith(RAW_PREFIX)}
        assert set(raw) == set(init)
        # averaging does not change training: the raw weights are the plain run's, bitwise
        plain_w = final_weights(tmp_path / "plain", s)
        for k in raw:
            assert torch.equal(raw[k], plain_w[k])
        raws.append({k: v.numpy() for k, v in raw.items()})
        model_w = read_tensors(info.path / "model.safetensors")
        for k in init:
            ref = _numpy_average([r[k] for r in raws], decay)
            np.testing.assert_allclose(model_w[k].numpy(), ref, rtol=0, atol=1e-6)
    # raw_mse is the plain run's mse; mse is the average's, which evaluate_run reproduces
    assert curve(run, "eval", "raw_mse") == curve(tmp_path / "plain", "eval", "mse")
    ema_mse = curve(run, "eval", "mse")
    assert [s for s, _ in ema_mse] == [12, 24]
    assert ema_mse != curve(run, "eval", "raw_mse")
    step, metrics = evaluate_run("toy", run, checkpoint=steps)
    assert step == steps and metrics["mse"] == pytest.approx(ema_mse[-1][1], rel=1e-6)


def test_resume_continues_the_average_exactly(tmp_path, quiet_console) -> None:
    cfg = toy_config(steps=30, checkpoint_every=10, eval_every=15, log_every=1,
                     ema_decay=0.95)
    full = tmp_path / "full"
    train("toy", cfg, full, console=quiet_console)
    part = tmp_path / "part"
    copy_run_up_to(full, part, 10)
    train("toy", None, part, resume=True, console=quiet_console)
    for name in ("model.safetensors", "train_state.safetensors"):
        a = read_tensors(find_checkpoint(full, 30).path / name)
        b = read_tensors(find_checkpoint(part, 30).path / name)
        assert set(a) == set(b)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    rows_a, rows_b = deterministic_rows(full), deterministic_rows(part)
    assert [r[:3] for r in rows_a] == [r[:3] for r in rows_b]


def test_best_metric_may_name_the_raw_weights(tmp_path, quiet_console) -> None:
    cfg = toy_config(steps=10, eval_every=5, ema_decay=0.9, best_metric="raw_mse")
    r = train("toy", cfg, tmp_path / "r", console=quiet_console)
    assert r.best is not None and r.best["metric"] == "raw_mse"
    bad = toy_config(steps=10, ema_decay=0.9, best_metric="no_such")
    with pytest.raises(ConfigError, match="raw_mse"):
        train("toy", bad, tmp_path / "bad", console=quiet_console)


@pytest.mark.parametrize("decay", [1.0, -0.1, math.nan, 2.0])
def test_bad_decays_are_refused(tmp_path, quiet_console, decay: float) -> None:
    with pytest.raises(ConfigError, match="ema_decay"):
        train("toy", toy_config(steps=2, ema_decay=decay), tmp_path / "x", console=quiet_console)
    assert not (tmp_path / "x").exists()


def test_how_often_a_run_evaluates_does_not_change_what_it_trains(tmp_path, quiet_console) -> None:
    """Evaluation draws from its own generator, never the training stream: a run evaluated at
    every step ends with the weights of one evaluated only at its end, bitwise (what lets the
    ModelNet10 experiment evaluate once and still reproduce its recipe's packaged network)."""
    for name, every in (("often", 1), ("once", 12)):
        train("toy", toy_config(steps=12, eval_every=every, ema_decay=0.9), tmp_path / name,
              console=quiet_console)
    often, once = final_weights(tmp_path / "often", 12), final_weights(tmp_path / "once", 12)
    assert set(often) == set(once) and all(torch.equal(often[k], once[k]) for k in often)
    assert len(curve(tmp_path / "often", "eval", "mse")) == 12
