"""The global-vs-local cells of benchmarks/reconstruction.py: degraded clouds and the tables
(without running the benchmark, which is long)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import reconstruction


def test_degraded_clouds_are_seeded_and_sized():
    pts = torch.randn(10_000, 3, generator=torch.Generator().manual_seed(0))
    crop = reconstruction.degraded_cloud("half-space crop", pts, 7)
    assert 4000 < len(crop) < 6000
    assert torch.equal(crop, reconstruction.degraded_cloud("half-space crop", pts, 7))
    assert reconstruction.degraded_cloud("300 points, noise 0.005", pts, 7).shape == (300, 3)
    two_k = reconstruction.degraded_cloud("2k points (both fields)", pts, 7)
    assert two_k.shape == (2000, 3) and bool((two_k[:, None] == pts[None]).all(-1).any(-1).all())


def test_report_prints_both_fields_on_degraded_clouds(capsys):
    def row(variant: str, method: str, cd: float) -> dict:
        return {"set": "abc", "shape": "s1", "variant": variant, "method": method, "resolution": 128,
                "cd_l1": cd, "emd": 1.0, "nc": 0.9, "f1": 0.8, "emd_std": 0.1, "pieces": 1,
                "boundary_edges": 0, "seconds": 2.0, "queries": 1000, "field_seconds": 1.0}

    rows = [row("clean", m, 0.5) for m in ("equivision", "equivision, rotated", "vn global",
                                           "vn global, rotated")]
    rows += [row("half-space crop", m, cd) for m, cd in (("equivision", 1.0), ("equivision, rotated", 1.0),
                                                         ("vn global", 2.0), ("vn global, rotated", 2.2))]
    reconstruction.report(rows, 128)
    out = capsys.readouterr().out
    assert "half-space crop (resolution 128" in out
    assert "| abc | vn global | 2.0000 |" in out
    assert "vn global (half-space crop): relative change under rotation: cd_l1 10.00%" in out
    assert "| abc | vn global | 128 | 2.0 | 1,000 | 1 |" in out
