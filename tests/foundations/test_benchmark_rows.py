"""The benchmarks' machine-readable rows (benchmarks/_results.py) and the report that turns
them into RESULTS.md tables and regression checks (benchmarks/report.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _results  # noqa: E402
import report  # noqa: E402

CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16
"""


def test_machine_from_cpuinfo() -> None:
    info = _results.machine_info("cpu", cpuinfo_text=CPUINFO)
    assert info == {"cpu": "Intel(R) Xeon(R) Platinum 8488C", "cores": 2,
                    "flags": ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"], "gpu": None}
    assert _results.machine_slug(info) == "intel-xeon-platinum-8488c-2c-amx"
    plain = _results.machine_info("cpu", cpuinfo_text=CPUINFO.replace(" amx_bf16", ""))
    assert _results.machine_slug(plain) == "intel-xeon-platinum-8488c-2c"
    assert _results.machine_slug({**info, "gpu": "NVIDIA H200"}) == "nvidia-h200"


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def test_commit_detection(tmp_path: Path) -> None:
    assert _results.git_commit(tmp_path) == "unknown"  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    clean = _results.git_commit(tmp_path)
    assert len(clean) >= 7 and not clean.endswith("-dirty")
    (tmp_path / "b.txt").write_text("untracked files do not make the tree dirty")
    assert _results.git_commit(tmp_path) == clean
    (tmp_path / "a.txt").write_text("2")
    assert _results.git_commit(tmp_path) == clean + "-dirty"


def test_rows_have_the_fields_and_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bench.jsonl"
    w = _results.RowWriter("bench", path, commit="abc1234", dtype="float32", mode="quick")
    w.add("case one", 2.0, "s", higher_is_better=False, anchor="theirs", anchor_figure=4.0)
    w.add("case two", float("nan"), "ms", higher_is_better=False)
    _results.RowWriter("bench", path, commit="abc1234").add("case one", 3.0, "s", higher_is_better=False)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 3
    first = rows[0]
    for key in ("benchmark", "case", "figure", "unit", "anchor", "anchor_figure", "ratio", "machine",
                "machine_slug", "device", "dtype", "threads", "torch", "commit", "date", "higher_is_better"):
        assert key in first, key
    assert first["ratio"] == 0.5 and first["commit"] == "abc1234" and first["device"] == "cpu"
    assert rows[1]["figure"] is None and rows[1]["ratio"] is None  # NaN is not JSON
    assert rows[2]["figure"] == 3.0 and "dtype" not in rows[2]


def _row(case: str, figure: float, date: str, bench: str = "bench", slug: str = "m1") -> dict:
    return {"benchmark": bench, "case": case, "figure": figure, "unit": "s", "higher_is_better": False,
            "anchor": "theirs", "anchor_figure": 2.0, "ratio": figure / 2.0, "machine_slug": slug,
            "machine": {"cpu": "CPU X", "cores": 2, "flags": [], "gpu": None}, "device": "cpu",
            "threads": 1, "torch": "2.13", "commit": "abc", "date": date, "mode": "quick"}


def test_newest_row_per_case_and_machine() -> None:
    rows = [_row("a", 1.0, "2026-01-02T00:00:00+00:00"), _row("a", 9.0, "2026-01-01T00:00:00+00:00"),
            _row("a", 5.0, "2026-01-01T00:00:00+00:00", slug="m2"),
            _row("b", 7.0, "2026-01-01T00:00:00+00:00")]
    got = {(r["case"], r["machine_slug"]): r["figure"] for r in report.newest(rows)}
    assert got == {("a", "m1"): 1.0, ("a", "m2"): 5.0, ("b", "m1"): 7.0}


MD = """# Results

Prose before, kept.

<!-- generated:bench -->
old table | 123456
<!-- end -->

Hand-written prose between, kept.

<!-- generated:other -->
hand-written table of a benchmark with no rows
<!-- end -->
"""


def test_regenerate_replaces_markers_and_keeps_prose() -> None:
    rows = [_row("a", 1.25, "2026-01-02T00:00:00+00:00"), _row("a", 9.0, "2026-01-01T00:00:00+00:00")]
    new, done, kept = report.regenerate(MD, rows)
    assert done == ["bench"] and kept == ["other"]
    assert "123456" not in new and "| a | 1.25 | s | theirs | 2.00 | 0.6250 |" in new
    assert "9.00" not in new  # the older row of the same case is not shown
    for kept_text in ("Prose before, kept.", "Hand-written prose between, kept.",
                      "hand-written table of a benchmark with no rows"):
        assert kept_text in new
    assert new.count("<!-- generated:bench -->") == 1 and new.count("<!-- end -->") == 2
    again, _, _ = report.regenerate(new, rows)
    assert again == new  # idempotent


def test_compare_flags_regressions_in_the_right_direction(tmp_path: Path) -> None:
    slow = _row("time", 1.3, "2026-01-02T00:00:00+00:00")
    fast = {**_row("rate", 70.0, "2026-01-02T00:00:00+00:00"), "unit": "1/s", "higher_is_better": True}
    ok = _row("fine", 1.1, "2026-01-02T00:00:00+00:00")
    ref_path = tmp_path / "m1.csv"
    report.write_reference(ref_path, [{**slow, "figure": 1.0}, {**fast, "figure": 100.0},
                                      {**ok, "figure": 1.0}])
    res = {c["case"]: c for c in report.compare([slow, fast, ok], report.read_reference(ref_path), 0.25)}
    assert res["time"]["regression"] and res["rate"]["regression"] and not res["fine"]["regression"]
    assert res["time"]["change"] == pytest.approx(1.3)


def test_report_cli_regenerates_and_compares(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results, md, refs = tmp_path / "results", tmp_path / "RESULTS.md", tmp_path / "refs"
    results.mkdir()
    md.write_text(MD)
    (results / "bench.jsonl").write_text(json.dumps(_row("a", 1.0, "2026-01-02T00:00:00+00:00")) + "\n")
    assert report.main(["--results", str(results), "--file", str(md)]) == 0
    assert "| a | 1.00 |" in md.read_text()
    assert report.main(["--results", str(results), "--references", str(refs), "--write-reference"]) == 0
    assert (refs / "m1.csv").exists()
    with (results / "bench.jsonl").open("a") as fh:
        fh.write(json.dumps(_row("a", 2.0, "2026-01-03T00:00:00+00:00")) + "\n")
    capsys.readouterr()
    assert report.main(["--results", str(results), "--references", str(refs), "--compare"]) == 0
    assert "REGRESSION (slower)" in capsys.readouterr().out
    assert report.main(["--results", str(results), "--references", str(refs), "--compare", "--strict"]) == 1
    assert report.main(["--results", str(tmp_path / "none"), "--file", str(md)]) == 2


def test_gpu_script_says_why_without_cuda(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path), "PYTHON": sys.executable}
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 3, p.stderr
    assert "no CUDA device" in p.stderr
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written


def test_reconstruction_summary_rows(tmp_path: Path) -> None:
    import reconstruction

    def r(method: str, shape: str, **kw: float) -> dict:
        return {"set": "abc", "shape": shape, "variant": "clean", "method": method,
                "resolution": 128 if method == "equivision" else None, **kw}

    rows = [r("equivision", "a", seconds=10.0, cd_l1=0.4, f1=0.9),
            r("equivision", "b", seconds=20.0, cd_l1=0.6, f1=0.8),
            r(reconstruction.ANCHOR, "a", seconds=2.0, cd_l1=1.0, f1=0.5),
            r(reconstruction.ANCHOR, "b", failed="empty mesh", seconds=1.0),
            {**r("equivision", "a", seconds=99.0, cd_l1=9.0, f1=0.1), "variant": "noise 0.01"}]
    path = tmp_path / "recon.jsonl"
    n = reconstruction.summary_rows(rows, 128, _results.RowWriter("reconstruction", path, commit="x"))
    got = {row["case"]: row for row in map(json.loads, path.read_text().splitlines())}
    assert n == 3 == len(got)
    sec = got["abc, seconds, resolution 128, clean"]
    assert sec["figure"] == pytest.approx(15.0) and sec["anchor_figure"] == pytest.approx(2.0)
    assert sec["n"] == 2 and not sec["higher_is_better"]
    assert got["abc, f1, resolution 128, clean"]["higher_is_better"]
