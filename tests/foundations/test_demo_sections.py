"""The demo's rendering, Vector Neurons and relative-pose sections run (without the shared data,
on procedural shapes), write their figures, and state the numbers they are there to show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from equivision.demo import DemoContext, run_demo

TITLES = ["Images of meshes in known poses", "Vector Neurons: exact rotation invariance",
          "Relative pose by SO(3) correlation"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str, list[str]]:
    out = tmp_path_factory.mktemp("demo")
    res = run_demo(DemoContext(out, None), only=TITLES, log=lambda _: None)
    return out, res.report.read_text(), res.failed


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    nxt = text.find("\n## ", start + 1)
    return text[start:] if nxt < 0 else text[start:nxt]


def test_sections_ran_and_wrote_their_figures(report) -> None:
    out, text, failed = report
    assert failed == []
    for t in TITLES:
        assert "This section failed" not in _section(text, t)
    assert (out / "render_poses.png").stat().st_size > 1000
    # the pose convention check: centre pixel and sphere ray casting agree to rounding
    m = re.search(r"largest difference ([0-9.e+-]+) object radii", _section(text, TITLES[0]))
    assert m and float(m.group(1)) < 1e-9


def test_vector_neurons_invariant_pointnet_not(report) -> None:
    _, text, _ = report
    rows = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"^\| ([^|]+?) \| [0-9,]+ \| ([0-9.e+-]+) \| ([0-9.e+-]+) \|$", _section(text, TITLES[1]), re.M)}
    assert set(rows) == {"VN-PointNet", "VN-DGCNN", "PointNet (baseline)"}
    for vn in ("VN-PointNet", "VN-DGCNN"):
        assert rows[vn][1] < 1e-10 and rows[vn][0] < 1e-4
    assert rows["PointNet (baseline)"][1] > 1e-2


def test_relative_pose_found_within_5_degrees(report) -> None:
    _, text, _ = report
    row = r"^\| \d \| [0-9.]+° \| [0-9.]+° \| ([0-9.]+)° \|"
    errs = [float(e) for e in re.findall(row, _section(text, TITLES[2]), re.M)]
    assert len(errs) == 3 and max(errs) < 5.0
