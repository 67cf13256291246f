"""What equivision writes: checked before work, atomic, and ``--overwrite`` replaces only folders
and files equivision wrote itself (never the current or home folder, never foreign files)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from equivision.cli import main
from equivision.data.procedural import make_shape
from equivision.errors import (
    DataFileNotFoundError,
    InvalidInputError,
    OutputClashError,
    OutputExistsError,
    OutputNotWritableError,
    UnsupportedFormatError,
)
from equivision.io import MARKER, OutputSpec, atomic_path, atomic_paths, check_outputs, save_mesh
from equivision.io.atomic import (
    atomic_directory,
    check_folder_output,
    clear_folder,
    is_equivision_temp,
    read_marker,
    remove_stale_temps,
    write_marker,
)
from equivision.models import export_pretrained
from equivision.training import train

TINY = {"train": {"steps": 20, "checkpoint_every": 10}}


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _one_line(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in " ".join(err.split()), err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _quiet() -> Console:
    return Console(file=io.StringIO())


@pytest.fixture()
def readonly_dir(tmp_path):
    """An existing folder nobody can write in, even root: a read-only tmpfs mounted for the
    test, else /sys (sysfs refuses new files to root too)."""
    d = tmp_path / "ro"
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
                             capture_output=True).returncode == 0
    target = d if mounted else Path("/sys")
    try:
        try:
            (target / ".equivision-probe").write_bytes(b"")
        except OSError:
            yield target
        else:
            (target / ".equivision-probe").unlink()
            pytest.skip("no read-only folder for root here (mount -o ro failed and /sys is writable)")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.fixture()
def mesh_file(tmp_path):
    return save_mesh(make_shape("torus", 1).mesh(12), tmp_path / "torus.ply")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- run folders

def test_train_overwrite_refuses_the_current_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "data.csv").write_text("d\n")
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    _one_line(*_cli(capsys, "train", "toy", "--run", ".", "--overwrite"), "it is the current folder")
    # a parent of the current folder, even marked
    write_marker(tmp_path, "run", ["config.json", "data.csv", "sub"])
    before = _tree(tmp_path)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    _one_line(*_cli(capsys, "train", "toy", "--run", "..", "--overwrite"), "holds the current folder")
    assert _tree(tmp_path) == before


def test_overwrite_refuses_the_home_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    write_marker(home, "run", ["config.json"])
    (home / "config.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(OutputExistsError, match="home folder"):
        check_folder_output(home, "run", overwrite=True)
    with pytest.raises(OutputExistsError, match="home folder"):
        clear_folder(home, "run")
    assert (home / "config.json").is_file()


def test_train_overwrite_refuses_an_unmarked_folder_with_a_config(tmp_path, capsys):
    p = tmp_path / "p"
    (p / "src").mkdir(parents=True)
    (p / "config.json").write_text("{}")
    (p / "src" / "thesis.tex").write_text("chapter 1")
    before = _tree(p)
    _one_line(*_cli(capsys, "train", "toy", "--run", str(p), "--overwrite"), "not created by equivision")
    assert _tree(p) == before


def test_overwrite_replaces_a_marked_run_and_refuses_one_with_foreign_files(tmp_path):
    run = tmp_path / "run"
    train("toy", TINY, run, console=_quiet(), progress=False)
    marker = read_marker(run)
    assert marker is not None and marker["kind"] == "run" and "checkpoints" in marker["entries"]
    (run / "metrics.csv").write_text("tampered\n")
    (run / "checkpoints" / "step-00000999").mkdir()  # inside an own entry: goes with it
    train("toy", TINY, run, overwrite=True, console=_quiet(), progress=False)
    assert (run / "metrics.csv").read_text().startswith("step,split,metric,value")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000010", "step-00000020"]
    assert read_marker(run)["kind"] == "run"
    # a file the user put in the run folder: refused, naming it, before any work; nothing deleted
    (run / "notes.txt").write_text("mine")
    before = _tree(run)
    with pytest.raises(OutputExistsError, match=r"holds notes\.txt"):
        train("toy", TINY, run, overwrite=True, console=_quiet(), progress=False)
    assert _tree(run) == before
    # a marked folder of another kind is not a run folder
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "report.md").write_text("r")
    write_marker(demo, "demo", ["report.md"])
    with pytest.raises(OutputExistsError, match="demo folder, not a run folder"):
        train("toy", TINY, demo, overwrite=True, console=_quiet(), progress=False)
    assert (demo / "report.md").is_file()


# ----------------------------------------------------------------------------- demo

def test_demo_overwrite_replaces_only_its_own_folder(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.tex").write_text("keep")
    _one_line(*_cli(capsys, "demo", "-o", str(d), "--overwrite", "--only", "harness"), "not created by")
    assert _tree(d) == {"thesis.tex": b"keep"}

    mine = tmp_path / "mine"
    assert main(["demo", "-o", str(mine), "--only", "harness"]) == 0
    marker = read_marker(mine)
    assert marker["kind"] == "demo" and "report.md" in marker["entries"]
    (mine / "report.md").write_text("old")
    assert main(["demo", "-o", str(mine), "--only", "harness", "--overwrite"]) == 0
    assert (mine / "report.md").read_text() != "old"
    (mine / "extra.txt").write_text("mine")
    capsys.readouterr()
    _one_line(*_cli(capsys, "demo", "-o", str(mine), "--only", "harness", "--overwrite"), "holds extra.txt")
    assert (mine / "extra.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if is_equivision_temp(p.name)]


# ----------------------------------------------------------------------------- single files

def test_reconstruct_outputs_are_checked_before_any_work(tmp_path, capsys):
    missing_cloud = str(tmp_path / "no-such-cloud.ply")  # any input error would come later
    out = tmp_path / "out.ply"
    _one_line(*_cli(capsys, "reconstruct", missing_cloud, "-o", str(out), "--preview", str(out)),
              "--out and --preview are the same path")
    _one_line(*_cli(capsys, "reconstruct", missing_cloud, "-o", str(tmp_path / "rec.xyz")), "'.xyz'")
    _one_line(*_cli(capsys, "reconstruct", missing_cloud, "-o", str(out), "--preview",
                    str(tmp_path / "p.jpg")), "use .png")
    folder = tmp_path / "folder.ply"
    folder.mkdir()
    for f in (folder, tmp_path):  # with or without a mesh suffix
        _one_line(*_cli(capsys, "reconstruct", missing_cloud, "-o", str(f), "--overwrite"), "is a folder")
    _one_line(*_cli(capsys, "reconstruct", missing_cloud, "-o", str(tmp_path / "nope" / "o.ply")),
              "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.ply"]


def test_sphere_outputs_are_checked_before_any_work(tmp_path, capsys, mesh_file):
    _one_line(*_cli(capsys, "sphere", str(mesh_file), "-o", str(tmp_path / "s.jpg")), "use .png")
    _one_line(*_cli(capsys, "sphere", str(mesh_file), "-o", str(tmp_path / "s.png"),
                    "--signal", str(tmp_path / "s.txt")), "use .npy")
    existing = tmp_path / "s.npy"
    existing.write_bytes(b"mine")
    _one_line(*_cli(capsys, "sphere", str(mesh_file), "-o", str(tmp_path / "s.png"),
                    "--signal", str(existing)), "already exists")
    assert existing.read_bytes() == b"mine" and not (tmp_path / "s.png").exists()


def test_same_file_under_two_names_is_refused(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "b.png")
    with pytest.raises(OutputClashError, match="--out and --preview"):
        check_outputs([OutputSpec("--out", a), OutputSpec("--preview", tmp_path / "b.png")], overwrite=True)
    with pytest.raises(OutputClashError):
        check_outputs([OutputSpec("--out", a), OutputSpec("--preview", tmp_path / "." / "a.png")],
                      overwrite=True)
    assert check_outputs([OutputSpec("--out", a), OutputSpec("--x", None)], overwrite=True) == [a, None]


def test_read_only_folder_is_one_line_and_leaves_nothing(tmp_path, capsys, mesh_file, readonly_dir):
    before = sorted(p.name for p in tmp_path.iterdir())
    _one_line(*_cli(capsys, "sphere", str(mesh_file), "-o", str(readonly_dir / "s.png")), "cannot write")
    # second output unwritable: the first must not appear
    _one_line(*_cli(capsys, "sphere", str(mesh_file), "-o", str(tmp_path / "s.png"),
                    "--signal", str(readonly_dir / "s.npy")), "cannot write")
    _one_line(*_cli(capsys, "reconstruct", str(tmp_path / "c.ply"), "-o", str(tmp_path / "m.ply"),
                    "--preview", str(readonly_dir / "p.png")), "cannot write")
    _one_line(*_cli(capsys, "demo", "-o", str(readonly_dir / "report"), "--only", "harness"), "cannot write")
    _one_line(*_cli(capsys, "train", "toy", "--run", str(readonly_dir / "run")), "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(OutputNotWritableError), atomic_path(readonly_dir / "x.bin") as tmp:
        tmp.write_bytes(b"x")


def test_a_failing_second_output_leaves_no_first(tmp_path, monkeypatch):
    first, second = tmp_path / "a.ply", tmp_path / "b.png"
    with pytest.raises(RuntimeError), atomic_paths([first, second]) as (ta, tb):
        ta.write_bytes(b"mesh")
        raise RuntimeError("the preview failed")
    assert sorted(tmp_path.iterdir()) == []
    # the second rename fails (disk gone, say): the first, new, target is removed again
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OutputNotWritableError, match="No space left"), \
            atomic_paths([first, second]) as (ta, tb):
        ta.write_bytes(b"mesh")
        tb.write_bytes(b"png")
    assert len(calls) == 2 and sorted(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_only_with_overwrite(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="already exists"), atomic_path(p) as tmp:
        tmp.write_bytes(b"new")
    assert p.read_bytes() == b"old"
    with atomic_path(p, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert p.read_bytes() == b"new" and sorted(x.name for x in tmp_path.iterdir()) == ["a.bin"]
    (tmp_path / "d.bin").mkdir()
    with pytest.raises(OutputExistsError, match="not a regular file"), \
            atomic_path(tmp_path / "d.bin", overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert (tmp_path / "d.bin").is_dir()


def test_export_pretrained_checks_outputs_first(tmp_path):
    (tmp_path / "toy.json").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"toy\.json already exists"):
        export_pretrained(tmp_path / "no-run", "toy", tmp_path)  # before the missing run
    with pytest.raises(InvalidInputError, match="plain file name"):
        export_pretrained(tmp_path / "no-run", "../toy", tmp_path)
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        export_pretrained(tmp_path / "no-run", "other", tmp_path)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["toy.json"]


# ----------------------------------------------------------------------------- folders, temps

def test_atomic_directory_replaces_only_equivision_folders(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("a")
    with pytest.raises(OutputExistsError, match="not written by equivision"), \
            atomic_directory(user, overwrite=True) as tmp:
        (tmp / "b").write_text("b")
    assert _tree(user) == {"a.txt": b"a"}
    # an own entry of a marked folder (a checkpoint in a run) may be replaced
    run = tmp_path / "run"
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    write_marker(run, "run", ["checkpoints"])
    with atomic_directory(run / "checkpoints" / "step-1", overwrite=True) as tmp:
        (tmp / "meta.json").write_text("{}")
    assert _tree(run / "checkpoints") == {"step-1/meta.json": b"{}"}
    with pytest.raises(UnsupportedFormatError):
        check_outputs([OutputSpec("--out", tmp_path / "x.jpg", (".png",))], overwrite=False)


def test_atomic_directory_never_replaces_the_current_folder_even_empty(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for kind in ("run", None):
        with pytest.raises(OutputExistsError, match="current folder"), \
                atomic_directory(here, overwrite=True, kind=kind) as tmp:
            (tmp / "x").write_text("x")
        assert here.is_dir() and Path.cwd() == here.resolve() and list(here.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no temp, nothing renamed


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    dead = _dead_pid()
    stale_file = tmp_path / f".mesh.ply.equivision-{dead}-0a1b2c3d.tmp.ply"
    stale_file.write_bytes(b"half")
    stale_dir = tmp_path / f".report.equivision-{dead}-0a1b2c3d.tmp"
    (stale_dir / "sub").mkdir(parents=True)
    live = tmp_path / f".other.ply.equivision-{os.getppid()}-0a1b2c3d.tmp.ply"
    live.write_bytes(b"in progress")
    legacy = tmp_path / ".a.ply.abc123.tmp.ply"  # no pid: cannot tell, kept
    legacy.write_bytes(b"?")
    assert is_equivision_temp(stale_file.name) and is_equivision_temp(stale_dir.name)
    assert not is_equivision_temp("mesh.ply") and not is_equivision_temp(legacy.name)
    with atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"x")
        assert is_equivision_temp(tmp.name) and f"-{os.getpid()}-" in tmp.name
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([live.name, legacy.name, "new.bin"])
    # a folder written by atomic_directory is swept the same way
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / f".x.equivision-{dead}-ffff0000.old").mkdir()
    with atomic_directory(sub / "out", kind="demo") as tmp:
        (tmp / "f").write_text("f")
    assert sorted(p.name for p in sub.iterdir()) == ["out"]
    assert json.loads((sub / "out" / MARKER).read_text())["entries"] == ["f"]
    assert remove_stale_temps(tmp_path) == []


def test_a_killed_writer_leaves_a_temp_the_next_write_removes(tmp_path):
    code = ("import os, sys\nfrom equivision.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), 9)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.ply")], capture_output=True)
    assert r.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and is_equivision_temp(left[0]) and left[0].endswith(".ply")
    with atomic_path(tmp_path / "b.ply") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.ply"]
    assert (tmp_path / "b.ply").read_bytes() == b"whole"


@pytest.mark.parametrize("command", ["sample", "reconstruct", "render", "sphere"])
def test_an_output_may_not_be_the_commands_input_even_with_overwrite(tmp_path, capfd, command):
    import trimesh

    from equivision.cli import main

    mesh = tmp_path / "m.ply"
    trimesh.creation.icosphere(1).export(mesh)
    before = mesh.read_bytes()
    extra = {"sample": ["-n", "50"], "reconstruct": ["-r", "16"], "render": ["--size", "8"],
             "sphere": ["-b", "4"]}[command]
    code = main([command, str(mesh), "-o", str(mesh), "--overwrite", *extra])
    err = capfd.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is the command's input" in err, err
    assert mesh.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ply"]
