"""Safe output: checks done before any work, atomic writes, and folders that ``--overwrite``
may replace only because equivision marked them as its own.

* :func:`check_outputs` validates every output of a command at once, before it computes
  anything: extension, parent folder exists and can really be written (tried, since root
  passes every permission test), no clash with an existing file unless ``overwrite``, no
  existing folder where a file goes, no two outputs on one path.
* :func:`atomic_path` / :func:`atomic_paths` write to temporary files beside the targets and
  rename them into place only when every one of them was written; :func:`atomic_directory`
  does the same for a whole folder.
* A folder equivision creates as a whole (a run folder, a report folder) carries a marker
  file :data:`MARKER` naming its kind and its own entries. ``overwrite`` replaces such a
  folder only: never an unmarked one, never the current folder, one of its parents or the
  home folder, and never one that also holds entries equivision did not write (refused,
  naming the first such entry; nothing is deleted).
* Temporary names are ``.<name>.equivision-<pid>-<token>.tmp<suffix>``: a write killed by
  SIGKILL leaves one behind, and the next atomic write into that folder removes those whose
  process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from equivision.errors import (
    DataFileNotFoundError,
    EquivisionError,
    OutputClashError,
    OutputExistsError,
    OutputNotWritableError,
    UnsupportedFormatError,
)

MARKER = ".equivision.json"
MARKER_FORMAT = "equivision-folder/1"

# .<name>.equivision-<pid>-<token>.tmp[<suffix>] and the .old twin of a replaced folder
_TEMP = re.compile(r"^\..*\.equivision-(\d+)-[0-9a-f]+\.(?:tmp|old)(?:\.[^./]*)?$")
_swept: set[str] = set()  # folders already swept by this process (the sweep lists the folder)


def _default_mode(directory: bool = False) -> int:
    """The mode a plainly created file or folder would get (mkstemp/mkdtemp make 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _temp_name(target: Path, kind: str = "tmp") -> str:
    suffix = target.suffix if kind == "tmp" else ""
    return f".{target.name}.equivision-{os.getpid()}-{secrets.token_hex(4)}.{kind}{suffix}"


def is_equivision_temp(name: str) -> bool:
    """Whether ``name`` is a temporary file or folder name of an equivision atomic write."""
    return _TEMP.match(name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove equivision temporaries in ``folder`` whose writer process no longer exists;
    returns what was removed. A temporary of a live process is never touched. (PIDs are
    those of this machine: a folder shared over the network with another machine writing
    into it at the same moment is not supported.)"""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP.match(e.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        p = Path(e.path)
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass  # someone else removed it, or we may not: not our business to fail over it
    return removed


def _sweep_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        remove_stale_temps(folder)


# ----------------------------------------------------------------------------- checks

def _probe_writable(folder: Path) -> None:
    """Create and remove a file in ``folder``: permission bits say nothing to root, and a
    read-only mount is only found out by trying."""
    probe = folder / _temp_name(Path("probe"))
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as e:
        raise OutputNotWritableError(f"cannot write in folder {folder}: {e.strerror or e}; "
                                     "choose another output folder") from e


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """A single-file output ``path``: refuse an existing one unless ``overwrite``, and an
    existing folder (or other non-regular file) always; the parent folder must exist."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_file():
            raise OutputExistsError(f"{p} exists and is not a regular file; choose a file path")
        if not overwrite:
            raise OutputExistsError(f"{p} already exists; pass overwrite=True (--overwrite) to replace it")
    if not p.parent.exists():
        raise DataFileNotFoundError(f"folder {p.parent} does not exist; create it first")
    if not p.parent.is_dir():
        raise OutputExistsError(f"{p.parent} is not a folder")
    return p


def _protected(p: Path) -> str | None:
    """Why the resolved folder ``p`` may never be replaced, or None."""
    cwd = Path.cwd().resolve()
    if p == cwd:
        return "it is the current folder"
    if p in cwd.parents:
        return "it holds the current folder"
    with contextlib.suppress(RuntimeError, KeyError):
        if p == Path.home().resolve():
            return "it is the home folder"
    if p == Path(p.anchor):
        return "it is the root folder"
    return None


def read_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of a folder equivision created, or None if it has none (or a broken one)."""
    p = Path(folder) / MARKER
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT \
            or not isinstance(data.get("kind"), str) or not isinstance(data.get("entries"), list):
        return None
    return data


def write_marker(folder: str | os.PathLike[str], kind: str, entries: Iterable[str]) -> None:
    """Mark ``folder`` as equivision's, of ``kind``, owning the top-level ``entries``."""
    from equivision import __version__

    data = {"format": MARKER_FORMAT, "kind": kind, "entries": sorted(set(entries) - {MARKER}),
            "equivision_version": __version__}
    with atomic_path(Path(folder) / MARKER, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _own_entries(folder: Path, kind: str | None, what: str) -> list[Path]:
    """The entries of the marked ``folder`` to remove before replacing it; raises unless every
    entry is equivision's (listed in the marker, the marker itself, or an equivision temp)."""
    p = folder.resolve()
    why = _protected(p)
    if why is not None:
        raise OutputExistsError(f"{what} {folder}: refusing to delete it, {why}; choose a new folder")
    marker = read_marker(folder)
    if marker is None:
        raise OutputExistsError(f"{what} {folder} is not empty and was not created by equivision "
                                f"(no {MARKER}); refusing to delete it; choose a new folder")
    if kind is not None and marker["kind"] != kind:
        raise OutputExistsError(f"{what} {folder} is an equivision {marker['kind']} folder, not a "
                                f"{kind} folder; refusing to delete it")
    own = set(marker["entries"]) | {MARKER}
    entries = sorted(folder.iterdir(), key=lambda e: e.name)
    for e in entries:
        if e.name not in own and not is_equivision_temp(e.name):
            raise OutputExistsError(f"{what} {folder} holds {e.name}, which equivision did not write; "
                                    "move it away or choose a new folder (nothing was deleted)")
    return entries


def check_folder_output(path: str | os.PathLike[str], kind: str, overwrite: bool,
                        what: str = "output folder") -> Path:
    """A folder output of ``kind`` (e.g. ``"run"``, ``"demo"``): a new or empty folder is
    fine; a non-empty one needs ``overwrite`` and must be replaceable (see the module
    docstring). The nearest existing ancestor must be a writable folder."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise OutputExistsError(f"{what} {p} exists and is not a folder")
        if any(p.iterdir()):
            if not overwrite:
                raise OutputExistsError(f"{what} {p} already exists; pass --overwrite to replace it")
            _own_entries(p, kind, what)
        _probe_writable(p)
        return p
    anc = p.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise OutputExistsError(f"{anc} is not a folder; cannot create {p} in it")
    _probe_writable(anc)
    return p


def clear_folder(path: str | os.PathLike[str], kind: str, what: str = "output folder") -> None:
    """Remove equivision's own entries of the marked folder ``path`` (after the same checks as
    :func:`check_folder_output`); the folder itself stays. A missing or empty folder is left."""
    p = Path(path)
    if not p.is_dir() or not any(p.iterdir()):
        return
    for e in _own_entries(p, kind, what):
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


class OutputSpec(NamedTuple):
    """One output of a command for :func:`check_outputs`. ``label``: how the user named it
    (``"--out"``); ``suffixes``: accepted extensions (lower case, with the dot; None: any);
    ``folder_kind``: set for a folder output of that kind (a run, a report)."""

    label: str
    path: str | os.PathLike[str] | None
    suffixes: Sequence[str] | None = None
    folder_kind: str | None = None


def check_outputs(outputs: Sequence[OutputSpec], *, overwrite: bool,
                  inputs: Sequence[str | os.PathLike[str]] = ()) -> list[Path | None]:
    """Validate every output of one command before any work; outputs whose path is None are
    skipped. An output may not be one of the command's ``inputs`` (not even with
    ``overwrite``: the input would be gone before it was read). Returns the paths (None kept).
    Raises a typed error naming the option."""
    given = [(spec, Path(spec.path)) for spec in outputs if spec.path is not None]
    for spec, p in given:
        for source in inputs:
            q = Path(source)
            same = p.resolve() == q.resolve()
            if not same and p.exists() and q.exists():
                with contextlib.suppress(OSError):
                    same = os.path.samefile(p, q)
            if same:
                raise OutputClashError(f"{spec.label} {p} is the command's input; write the result "
                                       "to another file")
    for i, (spec, p) in enumerate(given):  # a clash first: it explains a wrong suffix too
        for other, q in given[:i]:
            same = p.resolve() == q.resolve()
            if not same and p.exists() and q.exists():
                with contextlib.suppress(OSError):
                    same = os.path.samefile(p, q)
            if same:
                raise OutputClashError(f"{other.label} and {spec.label} are the same path ({p}); give "
                                       "each output its own file")
    for spec, p in given:
        if spec.folder_kind is None and p.is_dir():  # says more than "wrong suffix" would
            raise OutputExistsError(f"{spec.label} {p} is a folder; give a file path")
        if spec.suffixes is not None and p.suffix.lower() not in spec.suffixes:
            raise UnsupportedFormatError(f"{spec.label} {p}: cannot write '{p.suffix}' here; use "
                                         f"{' or '.join(spec.suffixes)}")
        if spec.folder_kind is not None:
            check_folder_output(p, spec.folder_kind, overwrite, what=spec.label)
        else:
            try:
                check_writable(p, overwrite)
            except (OutputExistsError, DataFileNotFoundError) as e:
                raise type(e)(f"{spec.label}: {e}") from e
            _probe_writable(p.parent)
    return [None if spec.path is None else Path(spec.path) for spec in outputs]


# ----------------------------------------------------------------------------- writers

def _new_temp_file(target: Path) -> Path:
    _sweep_once(target.parent)
    tmp = target.parent / _temp_name(target)
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise OutputNotWritableError(f"cannot write {target}: {e.strerror or e}") from e
    return tmp


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike[str]], *, overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield one temporary path per target (in the target's folder, same suffix). When the
    block succeeds every temporary is renamed onto its target; if the block or any rename
    fails, no temporary remains and targets that did not exist before are removed again, so
    a command with two outputs never leaves the first alone. (A target that replaced an old
    file under ``overwrite`` before a later rename failed stays replaced.)"""
    targets = [check_writable(p, overwrite) for p in paths]
    tmps: list[Path] = []
    try:
        for t in targets:
            tmps.append(_new_temp_file(t))
        yield tmps
        existed = [t.exists() for t in targets]
        for t, e in zip(targets, existed, strict=True):
            if e and not overwrite:  # appeared while we were writing
                raise OutputExistsError(f"{t} appeared while writing; not replaced")
        done: list[int] = []
        try:
            for i, (tmp, t) in enumerate(zip(tmps, targets, strict=True)):
                if tmp.exists():
                    os.chmod(tmp, _default_mode())
                os.replace(tmp, t)
                done.append(i)
        except BaseException:
            for i in done:
                if not existed[i]:
                    targets[i].unlink(missing_ok=True)
            raise
    except OSError as e:
        if isinstance(e, EquivisionError):
            raise
        raise OutputNotWritableError(f"cannot write {', '.join(map(str, targets))}: "
                                     f"{e.strerror or e}") from e
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same suffix); on success rename it
    onto ``path``, on any error remove it. Readers never see a half-written file."""
    with atomic_paths([path], overwrite=overwrite) as (tmp,):
        yield tmp


def _owned_folder(p: Path) -> bool:
    """Whether folder ``p`` is equivision's: marked itself, or below an own entry of a marked
    folder (a checkpoint inside a run folder)."""
    if read_marker(p) is not None:
        return True
    child = p.absolute()
    for anc in child.parents:
        marker = read_marker(anc)
        if marker is not None:
            return child.relative_to(anc).parts[0] in marker["entries"]
    return False


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False,
                     kind: str | None = None) -> Iterator[Path]:
    """Like :func:`atomic_path` for a whole folder: fill the yielded temporary folder; it
    replaces ``path`` only when the block succeeds.

    ``kind``: mark the new folder as an equivision folder of that kind owning what the block
    wrote, and let ``overwrite`` replace an existing folder only if it is a marked folder of
    that kind holding nothing else (see :func:`check_folder_output`). Without ``kind`` an
    existing folder is replaced only inside a marked folder (a checkpoint of a run)."""
    target = Path(path)

    def check() -> None:
        if not target.exists():
            return
        if not target.is_dir():
            raise OutputExistsError(f"{target} exists and is not a folder")
        if not overwrite:
            raise OutputExistsError(f"{target} already exists; pass --overwrite to replace it")
        # even an empty one: replacing renames it away (the current folder, home, root never)
        why = _protected(target.resolve())
        if why is not None:
            raise OutputExistsError(f"{target}: refusing to replace it, {why}; choose a new folder")
        if kind is not None:
            if any(target.iterdir()):
                _own_entries(target, kind, "output folder")
        elif not _owned_folder(target):
            raise OutputExistsError(f"{target} was not written by equivision; refusing to delete it")

    check()
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(target.parent)
    tmp = target.parent / _temp_name(target)
    try:
        tmp.mkdir(mode=0o700)
    except OSError as e:
        raise OutputNotWritableError(f"cannot create {target}: {e.strerror or e}") from e
    try:
        yield tmp
        if kind is not None:
            write_marker(tmp, kind, [e.name for e in tmp.iterdir()])
        os.chmod(tmp, _default_mode(directory=True))
        check()  # the target may have changed while the block ran
        if target.exists():
            old = target.parent / _temp_name(target, "old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
