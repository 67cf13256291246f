"""Machine-readable benchmark rows shared by every script in ``benchmarks/`` (run as
``python benchmarks/<name>.py``, so this module is importable as ``_results``).

Each measured row becomes one JSON object on its own line, appended to
``benchmarks/results/<benchmark>.jsonl`` (or ``--jsonl PATH``), with the figure, the anchor
measured beside it in the same run, their ratio, and where and when it was measured (machine,
device, threads, torch, commit, date). ``benchmarks/report.py`` turns these rows into the
tables of ``RESULTS.md`` and compares them with the per-machine references.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import torch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
# CPU features that decide which kernels torch (and the library's bfloat16 choice) can use
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def add_jsonl_option(parser: argparse.ArgumentParser, benchmark: str) -> None:
    """Adds ``--jsonl PATH`` (default ``benchmarks/results/<benchmark>.jsonl``, appended)."""
    parser.add_argument("--jsonl", type=Path, default=RESULTS_DIR / f"{benchmark}.jsonl",
                        help="JSON lines file the measured rows are appended to (default: %(default)s)")


def _cpuinfo(text: str | None = None) -> dict[str, Any]:
    """CPU model, logical core count and the flags of :data:`CPU_FLAGS` from ``/proc/cpuinfo``
    text (read from the system when ``text`` is None; empty where there is none)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    model, flags, cores = platform.processor() or platform.machine(), set(), 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name":
            model = value.strip()
        elif key in ("flags", "Features"):
            flags = set(value.split())
        elif key == "processor":
            cores += 1
    return {"cpu": model, "cores": cores or os.cpu_count() or 1,
            "flags": [f for f in CPU_FLAGS if f in flags]}


@cache
def _system_cpu() -> tuple[tuple[str, Any], ...]:
    return tuple(_cpuinfo().items())


def machine_info(device: str | torch.device = "cpu", cpuinfo_text: str | None = None) -> dict[str, Any]:
    """``{cpu, cores, flags, gpu}`` of this machine; ``gpu`` is the CUDA device's name when
    ``device`` is a CUDA device, else None."""
    info = dict(_system_cpu()) if cpuinfo_text is None else _cpuinfo(cpuinfo_text)
    dev = torch.device(device)
    info["gpu"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    return info


def machine_slug(info: dict[str, Any]) -> str:
    """Short file-name-safe name of a machine: the GPU's name for GPU rows, else the CPU
    model, core count and whether it has AMX (which changes the bfloat16 figures)."""
    def slug(text: str) -> str:
        text = re.sub(r"\((r|tm)\)|cpu @.*|@.*", "", text.lower())
        return re.sub(r"[^a-z0-9]+", "-", text).strip("-")

    if info.get("gpu"):
        return slug(info["gpu"])
    amx = "-amx" if "amx_bf16" in info.get("flags", ()) else ""
    return f"{slug(info['cpu'])}-{info['cores']}c{amx}"


def git_commit(repo: Path = BENCH_DIR.parent) -> str:
    """Short hash of ``HEAD``, with ``-dirty`` when tracked files differ from it; ``unknown``
    outside a git checkout."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


@cache
def _commit_of_this_checkout() -> str:
    return git_commit()


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: a figure that was not measured is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RowWriter:
    """Appends rows of one benchmark run to a JSON lines file.

    ``context`` (device, dtype, threads, mode, settings…) is written into every row; the
    machine, torch version, commit and date are filled in here. ``higher_is_better`` tells
    ``report.py --compare`` which way a change is a regression.
    """

    def __init__(self, benchmark: str, path: Path | str, *, device: str | torch.device = "cpu",
                 commit: str | None = None, **context: Any) -> None:
        self.benchmark, self.path = benchmark, Path(path)
        self.machine = machine_info(device)
        self.base = {
            "benchmark": benchmark, "machine": self.machine, "machine_slug": machine_slug(self.machine),
            "device": str(torch.device(device)), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "commit": commit or _commit_of_this_checkout(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.base.update(context)
        self.count = 0

    def add(self, case: str, figure: float | None, unit: str, *, higher_is_better: bool,
            anchor: str | None = None, anchor_figure: float | None = None,
            ratio: float | None = None, **extra: Any) -> dict[str, Any]:
        """Appends one row and returns it. ``ratio`` defaults to ``figure / anchor_figure``;
        pass it explicitly where the printed table defines it the other way round (and say
        how in ``ratio_of``)."""
        if ratio is None and figure is not None and anchor_figure:
            ratio = figure / anchor_figure
        row = {**self.base, "case": case, "figure": figure, "unit": unit,
               "higher_is_better": higher_is_better, "anchor": anchor, "anchor_figure": anchor_figure,
               "ratio": ratio, **extra}
        row = {k: _clean(v) for k, v in row.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one write of one line per row: an interrupted run leaves whole rows only
        with self.path.open("a") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1
        return row


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """Every row of the given JSON lines files (blank lines skipped)."""
    rows: list[dict[str, Any]] = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows
