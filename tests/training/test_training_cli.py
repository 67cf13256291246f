"""``equivision train`` / ``eval``: end to end, and bad input as one line + exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from training_helpers import PYTHON, subprocess_env, toy_config, write_config

from equivision.cli import main
from equivision.training.checkpoint import find_checkpoint


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run through the CLI, shared by the read-only tests below."""
    d = tmp_path_factory.mktemp("cli")
    cfg = write_config(d / "c.json", toy_config(steps=20, eval_every=10, checkpoint_every=10))
    run = d / "run"
    assert main(["train", "toy", "--config", str(cfg), "--run", str(run), "--device", "cpu"]) == 0
    return cfg, run


def test_train_then_eval(trained, capsys) -> None:
    _cfg, run = trained
    code, out, err = _run(capsys, "eval", "toy", "--run", str(run), "--checkpoint", "latest")
    assert code == 0, err
    assert "mse" in out and "at step 20" in out
    final = [r for r in (run / "metrics.csv").read_text().splitlines() if ",eval,mse," in r][-1]
    assert f"{float(final.split(',')[-1]):.6g}" in out  # eval = the run's last evaluation
    best = json.loads((run / "best.json").read_text())
    code, out, _ = _run(capsys, "eval", "toy", "--run", str(run))  # the best by default
    assert code == 0 and f"at step {best['step']}" in out
    assert f"{best['value']:.6g}" in out


def _one_line_exit_2(code: int, err: str, needle: str) -> None:
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]


@pytest.mark.parametrize(("config", "needle"), [
    ({"train": {"stepz": 3}}, "unknown key(s) train.stepz"),
    ({"train": {"steps": "3"}}, "train.steps must be an integer"),
    ({"task": {"model": {"hidden": 1.5}}}, "task.model.hidden must be an integer"),
    ({"trian": {}}, "unknown top-level key(s) trian"),
])
def test_bad_config(tmp_path, capsys, config, needle) -> None:
    cfg = write_config(tmp_path / "c.json", config)
    code, _, err = _run(capsys, "train", "toy", "--config", str(cfg), "--run",
                        str(tmp_path / "run"))
    _one_line_exit_2(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_bad_files_and_folders(trained, tmp_path, capsys) -> None:
    cfg, run = trained
    (tmp_path / "broken.json").write_text("{")
    _one_line_exit_2(*_run(capsys, "train", "toy", "--config", str(tmp_path / "broken.json"))[::2],
                     "not valid JSON")
    _one_line_exit_2(*_run(capsys, "train", "nope")[::2], "unknown task 'nope'")
    # an existing run is never overwritten without --overwrite
    before = (run / "metrics.csv").read_bytes()
    _one_line_exit_2(*_run(capsys, "train", "toy", "--config", str(cfg), "--run",
                           str(run))[::2], "already exists")
    assert (run / "metrics.csv").read_bytes() == before
    # a run folder without checkpoints
    empty = tmp_path / "empty"
    shutil.copytree(run, empty)
    shutil.rmtree(empty / "checkpoints")
    _one_line_exit_2(*_run(capsys, "eval", "toy", "--run", str(empty))[::2], "no checkpoints")
    _one_line_exit_2(*_run(capsys, "train", "toy", "--run", str(empty), "--resume")[::2],
                     "no checkpoints")
    _one_line_exit_2(*_run(capsys, "eval", "toy", "--run", str(tmp_path / "missing"))[::2],
                     "does not exist")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors(trained, tmp_path, capsys, damage) -> None:
    _, run = trained
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    f = find_checkpoint(bad, "best").path / "model.safetensors"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else b"\x08" + raw[1:])
    code, _, err = _run(capsys, "eval", "toy", "--run", str(bad))
    _one_line_exit_2(code, err, "corrupt")


def test_checkpoint_of_another_model(trained, tmp_path, capsys) -> None:
    """A checkpoint folder copied from a run with another model config is refused, by eval
    and by --resume."""
    _cfg, run = trained
    other_cfg = toy_config(steps=10, eval_every=0, checkpoint_every=0)
    other_cfg["task"]["model"]["hidden"] = 8
    other = tmp_path / "other"
    assert main(["train", "toy", "--config", str(write_config(tmp_path / "o.json", other_cfg)),
                 "--run", str(other)]) == 0
    capsys.readouterr()
    mixed = tmp_path / "mixed"
    shutil.copytree(run, mixed)
    src = find_checkpoint(other, "latest").path
    shutil.copytree(src, mixed / "checkpoints" / "step-00000099")
    (mixed / "best.json").write_text(json.dumps({"step": 99, "metric": "mse", "value": 0.0}))
    code, _, err = _run(capsys, "eval", "toy", "--run", str(mixed))
    _one_line_exit_2(code, err, "differs in hidden")
    code, _, err = _run(capsys, "train", "toy", "--run", str(mixed), "--resume")
    _one_line_exit_2(code, err, "another toy_mlp config (differs in hidden)")


def test_real_subprocess_bad_input(tmp_path) -> None:
    cfg = write_config(tmp_path / "c.json", {"train": {"lr": "high"}})
    p = subprocess.run([PYTHON, "-m", "equivision", "train", "toy", "--config", str(cfg),
                        "--run", str(tmp_path / "run")], capture_output=True, text=True,
                       env=subprocess_env(), timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: train.lr must be a number, got a string "
                                             '("high")']
    assert "Traceback" not in p.stderr
