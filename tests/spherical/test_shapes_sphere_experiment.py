"""The shapes-sphere experiment's plan and table (the runs themselves take an hour)."""

from __future__ import annotations

import json

from equivision.experiments.shapes_sphere import experiment_jobs, summarize_experiment


def test_jobs_run_seed_by_seed_and_cover_every_combination():
    jobs = experiment_jobs((0, 1))
    assert len(jobs) == len(set(jobs)) == 2 * 2 * 2 * 2
    assert [j[0] for j in jobs] == sorted(j[0] for j in jobs)  # seed 0 complete first
    assert {j[2] for j in jobs} == {"spherical", "baseline"}


def test_summary_reports_mean_std_and_drops(tmp_path):
    rows = [
        {"collection": "shapenet10", "model": "spherical", "training": "upright", "seed": s,
         "params": 1000, "seconds": 60.0, "upright-upright": 80.0 + s, "upright-so3": 78.0 + s}
        for s in (0, 1)
    ] + [
        {"collection": "shapenet10", "model": "spherical", "training": "so3", "seed": s,
         "params": 1000, "seconds": 120.0, "so3-so3": 79.0 + s}
        for s in (0, 1)
    ]
    (tmp_path / "results_0.json").write_text(json.dumps(rows))
    table = summarize_experiment(str(tmp_path))
    line = next(row for row in table.splitlines() if row.startswith("| shapenet10 | spherical"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2].startswith("80.50 ± 0.71 (n=2)")
    assert cells[3].startswith("79.50") and cells[4].startswith("78.50")
    assert cells[5] == "1.00" and cells[6] == "2.00"
    assert cells[7] == "1,000" and cells[8] == "1.5"
