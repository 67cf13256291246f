"""The Vector Neurons experiment (:mod:`equivision.experiments.modelnet_points`) on tiny runs of
the real ModelNet10 folder (one test and two training meshes per class): fixed shards, a job
cut short continued from its checkpoints (not restarted, not skipped), the summary, and the
resumable runner underneath (:func:`equivision.experiments.runner.run_resumable_jobs`)."""

from __future__ import annotations

import json

import pytest
import torch

from equivision.data.registry import find_data_root
from equivision.errors import ConfigError
from equivision.experiments import modelnet_points as exp
from equivision.experiments.runner import parse_shard, read_results, run_resumable_jobs
from equivision.models.weights import read_tensors
from equivision.runs import checkpoint_steps, find_checkpoint

_ROOT = find_data_root()
needs_data = pytest.mark.skipif(_ROOT is None or not (_ROOT / "modelnet10").is_dir(),
                                reason="the shared ModelNet10 data is not on this machine")

MODELS = ["vn_pointnet", "pointnet"]
TINY = {"vn_pointnet": {"k": 4, "channels": [4, 5, 8], "head": [8], "dropout": 0.0},
        "pointnet": {"k": 4, "channels": [8, 8, 16], "head": [8], "dropout": 0.0}}
STEPS = {"vn_pointnet": 4, "pointnet": 4}


def _run(out, cache, shard=0, nshards=1, models=MODELS):
    return exp.run_experiment(str(out), shard, nshards, seeds=(0,), steps=STEPS, models=models,
                              train_cfg={"batch_size": 4, "checkpoint_every": 2, "log_every": 1},
                              data={"n_points": 32, "max_train_per_class": 2, "max_test_per_class": 1,
                                    "cache_dir": str(cache)},
                              model_cfgs=TINY)


class _Interrupt(Exception):
    pass


@needs_data
def test_shards_split_the_jobs_and_the_summary_reads_them(tmp_path):
    out = tmp_path / "exp"
    a = _run(out, tmp_path / "cache", 0, 2)
    b = _run(out, tmp_path / "cache", 1, 2)
    names = [exp.job_name(m, t, 4, s) for s, m, t in exp.experiment_jobs((0,), MODELS)]
    assert [r["name"] for r in a] == names[0::2] and [r["name"] for r in b] == names[1::2]
    rows = {r["name"]: r for r in read_results(out)}
    assert sorted(rows) == sorted(names)
    z = rows["vn_pointnet_z_4steps_s0"]
    assert {"z-z", "z-so3", "invariance_logits", "invariance_probs", "seconds"} <= set(z)
    assert "so3-so3" in rows["pointnet_so3_4steps_s0"] and "z-z" not in rows["pointnet_so3_4steps_s0"]
    # the VN model's logits are invariant to rounding; the plain one's are not
    assert z["invariance_logits"] < 1e-3
    assert rows["pointnet_z_4steps_s0"]["invariance_logits"] > 1e-3
    # a finished experiment run again does nothing more
    assert len(_run(out, tmp_path / "cache", 0, 2)) == 2
    table = exp.summarize_experiment(str(out), steps=STEPS)
    lines = table.splitlines()
    assert lines[0].startswith("| model | z/z | z/SO3 | SO3/SO3 | z/SO3 − z/z |")
    vn = next(line for line in lines if line.startswith("| vn_pointnet |")).split(" | ")
    gap = rows["vn_pointnet_z_4steps_s0"]["z-so3"] - rows["vn_pointnet_z_4steps_s0"]["z-z"]
    assert vn[4] == f"{gap:.2f}" and "(n=1)" in vn[1]
    # another schedule's table leaves these runs out, and says so
    other = exp.summarize_experiment(str(out), steps={"vn_pointnet": 8, "pointnet": 4})
    assert "| vn_pointnet |" not in other and "2 rows of runs no longer in the experiment" in other


@needs_data
def test_an_interrupted_job_is_resumed_from_its_checkpoint(tmp_path, monkeypatch):
    import equivision.training.checkpoint as ckpt

    real = ckpt.save_checkpoint

    def save_then_stop(run_dir, step, *args, **kwargs):
        path = real(run_dir, step, *args, **kwargs)
        if step == 2:
            raise _Interrupt  # the session ends right after the first checkpoint
        return path

    out = tmp_path / "exp"
    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_stop)
    with pytest.raises(_Interrupt):
        _run(out, tmp_path / "cache", models=["pointnet"])
    monkeypatch.setattr(ckpt, "save_checkpoint", real)
    run = out / "pointnet_z_4steps_s0"
    assert checkpoint_steps(run) == [2] and not list(out.glob("results_*.json"))
    first = (run / "checkpoints").iterdir().__next__() / "model.safetensors"
    kept = first.stat().st_mtime_ns

    rows = _run(out, tmp_path / "cache", models=["pointnet"])
    assert [r["name"] for r in rows] == ["pointnet_z_4steps_s0", "pointnet_so3_4steps_s0"]
    assert rows[0]["sessions"] == 2 and rows[1]["sessions"] == 1
    assert checkpoint_steps(run) == [2, 4]
    assert first.stat().st_mtime_ns == kept  # continued, not started afresh
    # and the resumed run ends with the weights of an uninterrupted one
    _run(tmp_path / "whole", tmp_path / "cache", models=["pointnet"])
    w_resumed = read_tensors(find_checkpoint(run, 4).path / "model.safetensors")
    w_whole = read_tensors(find_checkpoint(tmp_path / "whole" / run.name, 4).path / "model.safetensors")
    assert w_resumed.keys() == w_whole.keys()
    assert all(torch.equal(w_resumed[k], w_whole[k]) for k in w_whole)


def test_a_job_locked_by_another_process_is_left_to_it(tmp_path):
    from equivision.experiments.runner import _hold

    calls = []
    jobs = [(n, lambda d, n=n: calls.append(n) or {"v": 1}) for n in ("a", "b", "c")]
    held = _hold(tmp_path / "b.claim")  # as a running process holds it
    assert held is not None
    rows = run_resumable_jobs(tmp_path, jobs)
    assert calls == ["a", "c"] and [r["name"] for r in rows] == ["a", "c"]
    held.close()  # that process ended without a row: b was interrupted, and is run next time
    rows = run_resumable_jobs(tmp_path, jobs)
    assert calls == ["a", "c", "b"] and [r["name"] for r in rows] == ["a", "c", "b"]
    assert json.loads((tmp_path / "results_0.json").read_text())[-1]["sessions"] == 1
    assert len(json.loads((tmp_path / "b.claim").read_text())["starts"]) == 1


def test_one_process_per_shard_and_the_shard_syntax(tmp_path):
    from equivision.experiments.runner import _hold

    held = _hold(tmp_path / "results_1.lock")
    with pytest.raises(ConfigError, match=r"shard 1 .* another process"):
        run_resumable_jobs(tmp_path, [("a", lambda d: {})], shard=1, nshards=2)
    held.close()
    assert parse_shard("1/3") == (1, 3) and parse_shard("0") == (0, 1)
    for bad in ("3/3", "a/2", "1/2/3", "-1/2"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_command_line_options_are_checked(capsys):
    assert exp.cli(["out", "--steps", "vn_dgcnn=x"]) == 2
    assert capsys.readouterr().err.startswith("error: --steps takes N or model=N")
    assert exp.cli(["out", "--models", "resnet"]) == 2
    assert "unknown model(s) resnet" in capsys.readouterr().err
    assert exp.parse_steps("vn_dgcnn=360") == {**exp.DEFAULT_STEPS, "vn_dgcnn": 360}
    assert exp.parse_steps("100") == {m: 100 for m in exp.MODELS}


def test_summary_of_an_empty_folder_is_one_error_line(tmp_path, capsys):
    assert exp.cli([str(tmp_path), "--summary"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
