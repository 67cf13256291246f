"""``equivision demo``: write the report of everything the library does."""

from __future__ import annotations

from pathlib import Path

import typer

from equivision.cli.app import app, check_device, console, fail
from equivision.data import find_data_root


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for report.md and figures."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report folder."),
    only: list[str] = typer.Option([], "--only", help="Run only sections whose title contains this."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
) -> None:
    """Run every capability on embedded defaults and write runs/demo/report.md with figures."""
    from equivision.io import OutputSpec, atomic_directory, check_outputs

    device = check_device(device)
    check_outputs([OutputSpec("--out", out, folder_kind="demo")], overwrite=overwrite)
    import torch

    from equivision.demo import DemoContext, run_demo

    root = find_data_root()
    if root is None:
        console.print("no shared data found: using procedural shapes and font-drawn digits")
    # marked as a demo folder, so a later --overwrite may replace it (and nothing else)
    with atomic_directory(out, overwrite=overwrite, kind="demo") as tmp:
        ctx = DemoContext(out_dir=tmp, data_root=root, device=torch.device(device), seed=seed)
        # style=, not markup: log lines carry paths and values
        result = run_demo(ctx, only=only or None, log=lambda m: console.print(m, style="dim"))
    console.print(f"report written to {out / 'report.md'}")
    if result.failed:
        fail(f"{len(result.failed)} demo section(s) failed: {', '.join(result.failed)}; see the report")
