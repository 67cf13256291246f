"""Scaffolding shared by the experiments: many seeded training runs in one folder, shared by
several processes, and the Markdown tables that summarise them.

An experiment is a list of named jobs; each job trains (and evaluates) one run in
``out_dir/<name>`` (:func:`run_name`) and returns a row of results. :func:`run_jobs` lets
several processes work through the same list: a process claims a job by creating
``<name>.claim`` exclusively, so no job runs twice, and writes its rows to
``out_dir/results_<shard>.json`` (rewritten atomically after each job, so a run cut short
keeps what it finished). :func:`read_results` gathers the rows of every shard,
:func:`listed_rows` sets aside those of runs no longer in the experiment, and
:func:`mean_std`, :func:`minutes_per_run` and :func:`markdown_table` format the summary.
:func:`run_resumable_jobs` is the variant for jobs longer than a session: fixed shards
(``SHARD/NSHARDS``), and a job cut short is continued from its checkpoints, not skipped.
:func:`main` is the command line of every experiment module.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from equivision.errors import ConfigError, EquivisionError

Row = dict[str, Any]
Job = tuple[str, Callable[[Path], Row]]


def run_name(*parts: object, seed: int) -> str:
    """The folder of one run: its ``parts`` joined by ``_``, then ``_s<seed>``."""
    return "_".join(str(p) for p in (*parts, f"s{seed}"))


def claim(out_dir: Path, name: str) -> bool:
    """Claim job ``name`` in ``out_dir``: ``True`` for the first process that asks."""
    try:
        os.close(os.open(out_dir / f"{name}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def run_jobs(out_dir: str | Path, jobs: Sequence[Job], shard: int = 0) -> list[Row]:
    """Run every unclaimed job ``(name, fn)`` as ``fn(out_dir / name)``; each row gets the job's
    ``name``, wall ``seconds`` and torch ``threads``. Returns the shard's rows (those of an
    earlier process with the same ``shard`` included)."""
    from equivision.io import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = out / f"results_{shard}.json"
    # a shard number used before keeps its rows (its jobs stay claimed, so none repeats)
    rows: list[Row] = json.loads(results.read_text(encoding="utf-8")) if results.exists() else []
    for name, fn in jobs:
        if not claim(out, name):
            continue  # another process took it
        t0 = time.perf_counter()
        row = fn(out / name)
        rows.append({"name": name, **row, "seconds": time.perf_counter() - t0,
                     "threads": torch.get_num_threads()})
        with atomic_path(results, overwrite=True) as tmp:
            tmp.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return rows


def parse_shard(text: str) -> tuple[int, int]:
    """``"SHARD/NSHARDS"`` (or ``"SHARD"``: one of one) → ``(shard, nshards)``, checked."""
    parts = text.split("/")
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"shard must be SHARD/NSHARDS (e.g. 0/3), got {text!r}")
    shard, n = int(parts[0]), int(parts[1]) if len(parts) == 2 else 1
    if not 0 <= shard < n:
        raise ConfigError(f"shard {shard} is not among 0..{n - 1} (SHARD/NSHARDS)")
    return shard, n


def _hold(path: Path) -> IO[str] | None:
    """An open file on ``path`` with an exclusive lock taken, or ``None`` when another process
    holds it. The OS drops the lock when the process dies, so a lock left unheld means its
    holder ended, however it ended."""
    import fcntl

    f = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _kept_seconds(job_dir: Path, starts: Sequence[float]) -> float:
    """Wall seconds the earlier, interrupted sessions of a job contributed: each from its start
    to the last file it wrote in ``job_dir`` (what came after was lost, and is redone)."""
    mtimes = sorted(p.stat().st_mtime for p in job_dir.rglob("*")) if job_dir.is_dir() else []
    total = 0.0
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        written = [t for t in mtimes if start <= t < end]
        total += max(written) - start if written else 0.0
    return total


def run_resumable_jobs(out_dir: str | Path, jobs: Sequence[Job], shard: int = 0,
                       nshards: int = 1) -> list[Row]:
    """Like :func:`run_jobs`, for jobs that outlive a session: this process takes the jobs
    whose index is ``shard`` modulo ``nshards``, and a job cut short (the session ended, the
    process was killed) is run again by the next process that reaches it, its ``fn`` finding
    its own partial run folder (:func:`train_or_resume` continues from its checkpoints).

    A job is done when a row of its name is in some ``results_*.json``; while running, its
    ``<name>.claim`` is locked (released by the OS however the process ends), so two processes
    never run one job, and an unlocked claim without a row marks an interrupted job. The claim
    records each session's start; a row's ``seconds`` adds to this session's time what the
    interrupted ones kept (:func:`_kept_seconds`), and ``sessions`` counts them. One process
    per shard at a time (``results_<shard>.lock``): a second one raises ConfigError."""
    from equivision.io import atomic_path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard_lock = _hold(out / f"results_{shard}.lock")
    if shard_lock is None:
        raise ConfigError(f"shard {shard} of {out} is being run by another process; run another "
                          "shard, or wait for it to end")
    try:
        results = out / f"results_{shard}.json"
        rows: list[Row] = json.loads(results.read_text(encoding="utf-8")) if results.exists() else []
        for name, fn in jobs[shard::nshards]:
            claim_file = _hold(out / f"{name}.claim")
            if claim_file is None:
                continue  # running in another process
            with claim_file:
                done = {r["name"] for r in _all_rows(out)}
                if name in done:
                    continue
                claim_file.seek(0)
                text = claim_file.read().strip()
                starts: list[float] = json.loads(text)["starts"] if text else []
                t0, start = time.perf_counter(), time.time()
                claim_file.seek(0)
                claim_file.truncate()
                claim_file.write(json.dumps({"starts": [*starts, start]}) + "\n")
                claim_file.flush()
                kept = _kept_seconds(out / name, starts)
                row = fn(out / name)
                rows.append({"name": name, **row, "seconds": kept + time.perf_counter() - t0,
                             "sessions": len(starts) + 1, "threads": torch.get_num_threads()})
                # the row is on disk before the claim's lock goes, so no one reruns a finished job
                with atomic_path(results, overwrite=True) as tmp:
                    tmp.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        return rows
    finally:
        shard_lock.close()


def train_or_resume(task: Any, config: dict[str, Any], run_dir: Path, **kwargs: Any) -> Any:
    """Train ``config`` into ``run_dir``, or continue it from its latest intact checkpoint when
    an interrupted session left some (the saved config must equal ``config``: a job whose
    schedule changed is a different run, under another name). A folder without a checkpoint
    yet is started afresh. Returns the trainer's result."""
    from equivision.runs import checkpoint_steps
    from equivision.training import train

    if run_dir.is_dir() and checkpoint_steps(run_dir):
        return train(task, config, run_dir, resume=True, **kwargs)
    return train(task, config, run_dir, overwrite=True, **kwargs)


def _all_rows(out: Path) -> list[Row]:
    rows: list[Row] = []
    for p in sorted(out.glob("results_*.json")):
        rows += json.loads(p.read_text(encoding="utf-8"))
    return rows


def read_results(out_dir: str | Path) -> list[Row]:
    """The rows of every ``out_dir/results_*.json``."""
    rows = _all_rows(Path(out_dir))
    if not rows:
        raise ConfigError(f"{out_dir} holds no results_*.json; run the experiment first")
    return rows


def listed_rows(rows: Sequence[Row], listed: Callable[[Row], bool]) -> tuple[list[Row], str]:
    """The ``rows`` of runs still in the experiment (``listed(row)``), and a note counting the
    others for under the table (``""`` when there are none): results of an earlier plan (a
    width since changed, say) stay in the folder but must not mix into the table."""
    kept = [r for r in rows if listed(r)]
    n = len(rows) - len(kept)
    note = f"({n} row{'s' if n > 1 else ''} of runs no longer in the experiment left out.)"
    return kept, note if n > 0 else ""


def mean_std(values: Iterable[float], digits: int = 2) -> str:
    """``"mean ± std (n=k)"`` (sample std; 0 for one value), or ``"—"`` for none."""
    vals = [float(v) for v in values]
    if not vals:
        return "—"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.{digits}f} ± {sd:.{digits}f} (n={len(vals)})"


def minutes_per_run(rows: Iterable[Row]) -> str:
    """The mean wall time of ``rows`` (their ``seconds``) in minutes, one decimal."""
    return f"{statistics.mean(float(r['seconds']) for r in rows) / 60:.1f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], note: str = "") -> str:
    """A Markdown table of ``header`` and ``rows`` (cells as text), ``note`` after a blank line
    when given; ends with a newline."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in rows]
    if note:
        out.append(f"\n{note}")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str], run: Callable[..., object], summarize: Callable[[str], str],
         reports: Mapping[str, Callable[[str], str]] | None = None) -> int:
    """Command line of an experiment module: ``OUT_DIR [SHARD | SHARD/NSHARDS]`` runs (a share
    of) it with one torch thread per process (several single-thread processes beat one
    multi-thread one on small models; ``SHARD/NSHARDS`` calls ``run(..., shard=, nshards=)``,
    for modules on :func:`run_resumable_jobs`); ``OUT_DIR --summary`` prints its table;
    ``OUT_DIR --<report>`` prints one of the module's other ``reports`` (flag → function of
    ``OUT_DIR``). Bad input (no results yet, a wrong config) prints one line ``error: ...``
    on stderr and returns 2."""
    import sys

    tables = {"--summary": summarize, **(reports or {})}
    usage = f"usage: python -m <experiment module> OUT_DIR [SHARD | SHARD/NSHARDS | {' | '.join(tables)}]"
    if any(a in ("-h", "--help") for a in argv):
        print(usage)
        return 0
    sharded = len(argv) == 2 and "/" in argv[1]  # SHARD/NSHARDS: run takes nshards too
    # an option-like OUT_DIR is a mistyped flag, not a folder to start hours of training in
    if not argv or len(argv) > 2 or argv[0].startswith("-") or (
            len(argv) == 2 and argv[1] not in tables and not argv[1].isdigit() and not sharded):
        print(usage, file=sys.stderr)
        return 2
    try:
        if len(argv) == 2 and argv[1] in tables:
            print(tables[argv[1]](argv[0]), end="")
            return 0
        torch.set_num_threads(1)
        if sharded:
            import inspect

            if "nshards" not in inspect.signature(run).parameters:
                print(f"error: this experiment takes a shard number, not {argv[1]}", file=sys.stderr)
                return 2
            shard, nshards = parse_shard(argv[1])
            run(argv[0], shard=shard, nshards=nshards)
        else:
            run(argv[0], shard=int(argv[1]) if len(argv) == 2 else 0)
    except EquivisionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
