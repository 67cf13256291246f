"""The package's layering: the import-linter contract in pyproject.toml holds, and it catches
an upward import; models never import training; training's task registry does not import
its trainer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("lint-imports is not installed (pip install import-linter, or the test extra)")
        exe = Path(found)
    return str(exe)


def _run_lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([_lint_imports(), "--no-logo", "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_contract_is_kept() -> None:
    r = _run_lint(ROOT, SRC)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 1 kept, 0 broken." in r.stdout


def test_import_contract_breaks_on_an_upward_import(tmp_path: Path) -> None:
    """A copy of the package with one module of ``groups`` importing ``models`` (far above
    it) must break the same contract, naming that import."""
    lint = _lint_imports()
    shutil.copytree(SRC / "equivision", tmp_path / "src" / "equivision",
                    ignore=shutil.ignore_patterns("__pycache__", "pretrained", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "src" / "equivision" / "groups" / "_upward.py").write_text(
        "from equivision.models import load  # noqa: F401\n")
    r = subprocess.run([lint, "--no-logo", "--no-cache"], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "src")},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "equivision.groups is not allowed to import equivision.models" in r.stdout
    assert "equivision.groups._upward -> equivision.models" in r.stdout


def test_importing_models_does_not_import_training() -> None:
    code = ("import sys, equivision.models as m; m.list_models(); "
            "print(sorted(k for k in sys.modules if k.startswith('equivision.training')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(SRC)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_no_static_import_chain_upward() -> None:
    """Lazy (function-level) imports count too: grimp sees every import statement."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("equivision", cache_dir=None)
    for importer, imported in [("equivision.models", "equivision.training"),
                               ("equivision.training.tasks", "equivision.training.trainer"),
                               ("equivision.demo", "equivision.cli")]:
        chain = graph.find_shortest_chain(importer=importer, imported=imported, as_packages=True)
        assert chain is None, f"{importer} reaches {imported} through {' -> '.join(chain)}"
