"""``equivision demo``: a report of everything the library does, on embedded defaults.

Each capability registers one section with :func:`demo_section`; a section is a function
``(ctx: DemoContext) -> str`` that saves its figures with ``ctx.figure(name)`` and returns
Markdown (without its heading). Sections run in ``order``; one that raises is reported as
failed in the report and makes the command exit non-zero, the others still run.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

SectionFn = Callable[["DemoContext"], str]


@dataclass
class DemoContext:
    """What a demo section gets: where to write, which data exists, which device to use."""

    out_dir: Path
    data_root: Path | None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0

    def figure(self, name: str) -> Path:
        """Path for a figure file ``name`` (e.g. ``"so3_bunny.png"``) inside the report."""
        return self.out_dir / name

    @property
    def has_data(self) -> bool:
        return self.data_root is not None


@dataclass(frozen=True)
class _Section:
    title: str
    order: int
    fn: SectionFn


_SECTIONS: list[_Section] = []


def demo_section(title: str, order: int) -> Callable[[SectionFn], SectionFn]:
    """Register ``fn`` as a demo section titled ``title`` (lower ``order`` runs first)."""

    def deco(fn: SectionFn) -> SectionFn:
        _SECTIONS.append(_Section(title, order, fn))
        return fn

    return deco


def _load_sections() -> None:
    # Importing registers; keep one module per capability.
    from equivision.demo import (
        section_gcnn,  # noqa: F401
        section_groups,  # noqa: F401
        section_pose,  # noqa: F401
        section_reconstruction,  # noqa: F401
        section_render,  # noqa: F401
        section_sphere,  # noqa: F401
        section_spherical_cnn,  # noqa: F401
        section_vector_neurons,  # noqa: F401
    )


@dataclass
class DemoResult:
    report: Path
    failed: list[str]
    seconds: dict[str, float]


def run_demo(
    ctx: DemoContext, only: list[str] | None = None, log: Callable[[str], None] = print
) -> DemoResult:
    """Run every registered section into ``ctx.out_dir`` and write ``report.md`` there."""
    from equivision import __version__

    _load_sections()
    parts = [
        "# equivision demo report\n",
        f"equivision {__version__}, torch {torch.__version__}, device {ctx.device}. ",
        (
            f"Real data from `{ctx.data_root}`.\n"
            if ctx.data_root
            else "No shared data found: every section uses the project's procedural shapes and "
            "digits drawn from a font.\n"
        ),
    ]
    failed: list[str] = []
    seconds: dict[str, float] = {}
    for s in sorted(_SECTIONS, key=lambda s: s.order):
        if only and not any(o.lower() in s.title.lower() for o in only):
            continue
        log(f"section: {s.title}")
        t0 = time.perf_counter()
        try:
            body = s.fn(ctx)
        except Exception as e:  # report it, keep going with the other sections
            failed.append(s.title)
            body = f"**This section failed**: `{type(e).__name__}: {e}`\n\n```\n{traceback.format_exc()}```\n"
        seconds[s.title] = time.perf_counter() - t0
        parts.append(f"\n## {s.title}\n\n{body.strip()}\n\n_(section ran in {seconds[s.title]:.1f} s)_\n")
    report = ctx.out_dir / "report.md"
    report.write_text("".join(parts))
    return DemoResult(report, failed, seconds)
