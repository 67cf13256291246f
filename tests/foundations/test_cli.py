"""The CLI: every command's help, info, data list, demo, and the one-line error policy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from equivision import __version__
from equivision.cli import main
from equivision.data import get_collection, list_collections, mesh_files
from equivision.errors import DataNotAvailableError, UnknownDatasetError


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and __version__ in out
    for cmd in (
        ["--help"],
        ["info", "--help"],
        ["data", "--help"],
        ["data", "list", "--help"],
        ["demo", "--help"],
    ):
        code, out, _ = run(cmd, capsys)
        assert code == 0 and "Usage" in out, cmd


def test_info_and_data_list(capsys, data_root):
    code, out, _ = run(["info"], capsys)
    assert code == 0 and "torch" in out and "shapenet10" in out
    code, out, _ = run(["data", "list"], capsys)
    assert code == 0 and "mnist" in out and "chair" in out


def test_data_list_without_data(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIVISION_DATA", str(tmp_path))
    code, out, _ = run(["data", "list"], capsys)
    assert code == 0 and "No shared data" in out


def test_registry(data_root):
    names = [c.name for c in list_collections()]
    assert names == ["shapenet10", "classic", "abc", "modelnet10", "mnist"]
    sn = get_collection("shapenet10")
    assert len(sn.classes) == 10 and sn.count == sum(sn.classes.values())
    assert len(mesh_files("abc")) == get_collection("abc").count
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'modelnet'"):
        get_collection("modelnet")
    with pytest.raises(UnknownDatasetError, match="no class"):
        mesh_files("shapenet10", "sofa")
    with pytest.raises(UnknownDatasetError):
        mesh_files("mnist")


def test_bad_data_env_is_one_line_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIVISION_DATA", str(tmp_path / "missing"))
    code, _out, err = run(["data", "list"], capsys)
    assert code == 2 and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    with pytest.raises(DataNotAvailableError):
        get_collection("abc")


def test_usage_error_exit_2(capsys):
    code, _, err = run(["data", "list", "--bogus"], capsys)
    assert code == 2 and "No such option" in err


def test_demo_writes_report_and_refuses_to_overwrite(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    code, _out, err = run(["demo", "--out", str(out_dir), "--only", "harness"], capsys)
    assert code == 0, err
    report = (out_dir / "report.md").read_text()
    assert "equivariance harness" in report and "not equivariant" in report
    code, _, err = run(["demo", "--out", str(out_dir), "--only", "harness"], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    code, _, err = run(["demo", "--out", str(out_dir), "--only", "harness", "--overwrite"], capsys)
    assert code == 0, err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_demo_falls_back_to_procedural_data(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIVISION_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    code, out, err = run(["demo", "--out", str(tmp_path / "d"), "--only", "groups"], capsys)
    assert code == 0, err
    assert "no shared data found" in out
    report = (tmp_path / "d" / "report.md").read_text()
    assert "procedural torus" in report and "drawn from a font" in report
    assert (tmp_path / "d" / "plane_actions.png").stat().st_size > 1000


def test_real_subprocess_error_has_no_traceback(tmp_path):
    env_missing = {"EQUIVISION_DATA": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "equivision", "data", "list"],
        capture_output=True,
        text=True,
        env=env_missing,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and r.stderr.startswith("error:")
