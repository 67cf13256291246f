"""The experiment runner shared by the rotmnist and shapes-sphere experiments."""

from __future__ import annotations

import json
import math

import pytest

from equivision.errors import ConfigError
from equivision.experiments.runner import claim, mean_std, read_results, run_jobs


def test_claim_is_exclusive(tmp_path):
    assert claim(tmp_path, "a")
    assert not claim(tmp_path, "a")
    assert claim(tmp_path, "b")


def test_two_shards_share_the_jobs_and_results_gather(tmp_path):
    ran: list[str] = []

    def job(name: str, value: float):
        def fn(run_dir):
            ran.append(run_dir.name)
            return {"value": value}
        return name, fn

    jobs = [job("x", 1.0), job("y", 2.0), job("z", 4.0)]
    assert claim(tmp_path, "y")  # as if another process had taken it
    rows0 = run_jobs(tmp_path, jobs, shard=0)
    assert ran == ["x", "z"] and [r["name"] for r in rows0] == ["x", "z"]
    assert all(r["seconds"] >= 0 and r["threads"] >= 1 for r in rows0)
    assert run_jobs(tmp_path, jobs, shard=1) == []  # everything is claimed
    (tmp_path / "results_1.json").write_text(json.dumps([{"name": "y", "value": 2.0}]))
    rows = read_results(tmp_path)
    assert sorted(r["name"] for r in rows) == ["x", "y", "z"]
    # a later process reusing shard 0 with new jobs keeps the shard's earlier rows
    rows0 = run_jobs(tmp_path, [*jobs, job("w", 8.0)], shard=0)
    assert [r["name"] for r in rows0] == ["x", "z", "w"] and ran[-1] == "w"
    assert sorted(r["name"] for r in read_results(tmp_path)) == ["w", "x", "y", "z"]


def test_read_results_of_an_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="run the experiment first"):
        read_results(tmp_path)


def test_mean_std():
    assert mean_std([]) == "—"
    assert mean_std([3.0]) == "3.00 ± 0.00 (n=1)"
    sd = math.sqrt(((1 - 2) ** 2 + (3 - 2) ** 2) / 1)
    assert mean_std([1.0, 3.0], digits=1) == f"2.0 ± {sd:.1f} (n=2)"


def test_main_runs_summarises_and_prints_reports(tmp_path, capsys):
    from equivision.experiments.runner import main

    calls: list[tuple] = []

    def run(out: str, shard: int) -> None:
        calls.append(("run", out, shard))

    reports = {"--extra": lambda out: f"extra of {out}\n"}
    assert main([str(tmp_path), "3"], run, lambda out: "", reports) == 0
    assert calls == [("run", str(tmp_path), 3)]
    assert main([str(tmp_path), "--summary"], run, lambda out: f"table of {out}\n", reports) == 0
    assert main([str(tmp_path), "--extra"], run, lambda out: "", reports) == 0
    out = capsys.readouterr().out
    assert f"table of {tmp_path}" in out and f"extra of {tmp_path}" in out
    assert len(calls) == 1  # neither report ran the experiment
    assert main([], run, lambda out: "", reports) == 2
    assert "--summary | --extra" in capsys.readouterr().err
