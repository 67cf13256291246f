"""Draw docs/images/architecture.png from the import-linter layers contract in pyproject.toml.

The picture is drawn from the contract itself, so it cannot drift from what ``lint-imports``
checks. Run from anywhere: ``.venv/bin/python docs/make_architecture_figure.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# What each package holds, in a few words (shown under its name).
ROLES = {
    "cli": "typer commands",
    "demo": "equivision demo report",
    "pipelines": "classify, reconstruct",
    "experiments": "multi-run studies",
    "tasks": "training tasks",
    "training": "trainer, checkpoints",
    "recon": "surface reconstruction",
    "figures": "plotting helpers",
    "models": "registry, load",
    "data": "datasets",
    "metrics": "Chamfer, EMD, F-score",
    "testing": "equivariance oracles",
    "nn": "equivariant layers",
    "render": "ray casting",
    "sphere": "grids, SHT, SO(3) FFT",
    "geometry": "normalise, sample",
    "groups": "SO(2), SO(3), O(3)",
    "io": "meshes, clouds, atomic writes",
    "runs": "run-folder reading",
    "configio": "config <-> JSON",
    "_registry": "registry imports",
    "_validation": "argument checks",
    "errors": "exception hierarchy",
}


def _exists(name: str) -> bool:
    base = ROOT / "src" / "equivision" / name
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def read_contract() -> tuple[list[tuple[list[str], bool, set[str]]], list[str]]:
    """Layers highest first as ``(packages, independent, planned ones)``, and the ignored
    imports."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in cfg["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    layers = []
    for raw in contract["layers"]:
        sep = "|" if "|" in raw else ":"
        names = [n.strip() for n in raw.split(sep)]
        # an optional layer that exists is checked like any other; only a missing one is planned
        planned = {n[1:-1] for n in names if n.startswith("(") and not _exists(n[1:-1])}
        layers.append(([n.strip("()") for n in names], sep == "|", planned))
    return layers, list(contract.get("ignore_imports", []))


def draw(out: Path) -> None:
    layers, ignored = read_contract()
    row_h, box_h, width = 1.0, 0.72, 10.0
    fig, ax = plt.subplots(figsize=(8.5, 0.62 * len(layers) + 1.4))
    top = len(layers) * row_h
    for i, (names, independent, planned) in enumerate(layers):
        y = top - i * row_h
        gap = 0.25
        w = (width - gap * (len(names) - 1)) / len(names)
        for j, name in enumerate(names):
            x = j * (w + gap)
            face = "#f2f2f2" if name.startswith("_") or name == "errors" else "#dde8f5"
            ax.add_patch(FancyBboxPatch((x, y - box_h), w, box_h,
                                        boxstyle="round,pad=0.02,rounding_size=0.08",
                                        facecolor=face, edgecolor="#34495e",
                                        linestyle="--" if name in planned else "-", linewidth=1.2))
            label = name + (" (planned)" if name in planned else "")
            ax.text(x + w / 2, y - box_h * 0.36, label, ha="center", va="center", fontsize=10,
                    fontweight="bold", family="monospace")
            ax.text(x + w / 2, y - box_h * 0.74, ROLES.get(name, ""), ha="center", va="center",
                    fontsize=7.5, color="#444444")
        if len(names) > 1:
            ax.text(width + 0.15, y - box_h / 2, "independent" if independent else "siblings",
                    fontsize=7, color="#666666", va="center")
        if i + 1 < len(layers):
            ax.add_patch(FancyArrowPatch((width / 2, y - box_h - 0.01), (width / 2, y - row_h + 0.01),
                                         arrowstyle="-|>", mutation_scale=10, color="#34495e", linewidth=1))
    note = "A package may import from any layer below its own, never from one above; "
    note += "boxes side by side in one row may not import each other."
    if ignored:
        note += "\nAllowed until a planned move: " + "; ".join(ignored)
    ax.text(0, top - len(layers) * row_h - 0.05, note, fontsize=7.5, va="top", color="#333333")
    ax.set_xlim(-0.1, width + 1.3)
    ax.set_ylim(top - len(layers) * row_h - 0.75, top + 0.1)
    ax.set_axis_off()
    ax.set_title("equivision: import layers (checked by lint-imports)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "architecture.png"
    draw(target)
    print(target)
