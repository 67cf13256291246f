"""The sphere demo section runs on procedural data and reports a recovered rotation."""

from __future__ import annotations

import re
from pathlib import Path

from equivision.demo import DemoContext
from equivision.demo.section_sphere import sphere_section


def test_sphere_section_runs_without_shared_data(tmp_path: Path) -> None:
    text = sphere_section(DemoContext(out_dir=tmp_path, data_root=None))
    assert (tmp_path / "sphere_rotation_align.png").stat().st_size > 10_000
    assert "procedural" in text
    # the refined alignment error is reported in degrees and is small
    refined = float(re.search(r"\*\*([0-9.]+)°\*\* after refinement", text).group(1))
    assert refined < 0.1
