"""The scaffolding the experiments share (:mod:`equivision.experiments.runner`): run names,
shards that keep earlier rows, summaries that drop runs no longer listed, table formatting,
the command line, and the deprecated ``python -m equivision.tasks.*`` aliases."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from equivision.errors import ConfigError
from equivision.experiments.runner import (
    listed_rows,
    main,
    markdown_table,
    mean_std,
    minutes_per_run,
    read_results,
    run_jobs,
    run_name,
)


def test_run_name_joins_parts_then_seed():
    assert run_name("A", "p4", seed=2) == "A_p4_s2"
    assert run_name("scale", "4000+aug", "scale_zoom", "w12", "S4", seed=0) == \
        "scale_4000+aug_scale_zoom_w12_S4_s0"


def test_rotmnist_and_shapes_sphere_names_come_from_the_shared_scheme():
    from equivision.experiments import rotmnist, shapes_sphere

    run = rotmnist.ExperimentRun("scale", "scale_zoom", 16, 4000, True, num_scales=4, scale_size=1)
    assert run.name(1) == "scale_4000+aug_scale_zoom_w16_S4_D1_s1"
    assert rotmnist.ExperimentRun("A", "p8", 6).name(0) == "A_p8_s0"
    names = [shapes_sphere._job(*j)[0] for j in shapes_sphere.experiment_jobs((3,))]
    assert names[0] == "shapenet10_spherical_upright_s3" and len(set(names)) == len(names)


def test_a_failing_job_keeps_the_rows_written_before_it(tmp_path):
    def ok(value: float):
        return lambda run_dir: {"value": value}

    def broken(run_dir):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        run_jobs(tmp_path, [("a", ok(1.0)), ("b", broken), ("c", ok(3.0))], shard=2)
    on_disk = json.loads((tmp_path / "results_2.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in on_disk] == ["a"]
    assert list(on_disk[0]) == ["name", "value", "seconds", "threads"]  # the results format
    # written atomically: no temporary left beside it; c never started, so it is unclaimed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.claim", "b.claim", "results_2.json"]
    # a restart on the same shard keeps row a and skips the claimed jobs a and b
    rows = run_jobs(tmp_path, [("a", ok(9.0)), ("b", ok(9.0)), ("c", ok(3.0))], shard=2)
    assert [(r["name"], r["value"]) for r in rows] == [("a", 1.0), ("c", 3.0)]
    assert [r["name"] for r in read_results(tmp_path)] == ["a", "c"]


def test_listed_rows_drops_and_counts_runs_no_longer_listed():
    rows = [{"width": 8}, {"width": 10}, {"width": 8}, {"width": 6}]
    kept, note = listed_rows(rows, lambda r: r["width"] == 8)
    assert kept == [{"width": 8}, {"width": 8}]
    assert note == "(2 rows of runs no longer in the experiment left out.)"
    assert listed_rows(rows[:2], lambda r: r["width"] == 8)[1] == \
        "(1 row of runs no longer in the experiment left out.)"
    assert listed_rows(rows, lambda r: True) == (rows, "")


def test_mean_std_minutes_and_table_formatting():
    assert mean_std([2.0, 4.0, 6.0], digits=1) == "4.0 ± 2.0 (n=3)"
    assert mean_std([1.234]) == "1.23 ± 0.00 (n=1)"
    assert minutes_per_run([{"seconds": 60.0}, {"seconds": "150"}]) == "1.8"
    table = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]], note="(a note)")
    assert table == "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n(a note)\n"
    assert markdown_table(["x"], []) == "| x |\n|---|\n"


def test_main_refuses_a_bad_shard_and_reports_bad_input_in_one_line(tmp_path, capsys):
    calls: list[int] = []
    assert main([str(tmp_path), "--sumary"], lambda out, shard: calls.append(shard),
                lambda out: "") == 2
    assert calls == [] and capsys.readouterr().err.startswith("usage: ")
    # SHARD/NSHARDS for a module whose run takes a shard number only: one line, not a TypeError
    assert main([str(tmp_path), "0/2"], lambda out, shard: calls.append(shard), lambda out: "") == 2
    assert calls == [] and "shard number" in capsys.readouterr().err
    # --help prints the usage and starts nothing; a flag where OUT_DIR goes is refused
    assert main(["--help"], lambda out, shard: calls.append(shard), lambda out: "") == 0
    assert capsys.readouterr().out.startswith("usage: ")
    assert main(["--collection-typo", "0"], lambda out, shard: calls.append(shard), lambda out: "") == 2
    assert calls == [] and capsys.readouterr().err.startswith("usage: ")

    def summarize(out: str) -> str:
        raise ConfigError("no results here")

    assert main([str(tmp_path), "--summary"], lambda out, shard: None, summarize) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: no results here\n" and captured.out == ""


@pytest.mark.parametrize("name", ["rotmnist", "shapes_sphere"])
def test_the_old_task_commands_forward_with_a_note(tmp_path, name):
    rows = ([{"protocol": "A", "arch": "p4", "width": 8, "seed": 0, "params": 100,
              "seconds": 60.0, "error": 5.0}] if name == "rotmnist" else
            [{"collection": "procedural", "model": "baseline", "training": "so3", "seed": 0,
              "params": 100, "seconds": 60.0, "so3-so3": 50.0}])
    (tmp_path / "results_0.json").write_text(json.dumps(rows), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(module: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, str(tmp_path), "--summary"],
                              capture_output=True, text=True, env=env, timeout=300)

    new, old = run(f"equivision.experiments.{name}"), run(f"equivision.tasks.{name}")
    assert new.returncode == old.returncode == 0, (new.stderr, old.stderr)
    assert old.stdout == new.stdout
    assert ("| 5.00 ± 0.00 (n=1) |" if name == "rotmnist" else "| 50.00 ± 0.00 (n=1) |") in new.stdout
    assert new.stderr == ""
    assert old.stderr == (f"note: python -m equivision.tasks.{name} is deprecated; use "
                          f"python -m equivision.experiments.{name}\n")
