"""Command-line interface. Each command module registers itself on :data:`app` when
imported here; keep the imports below in the order commands should appear in ``--help``.
Command modules import torch and the library inside their bodies, so ``--help`` and
``--version`` start in a fraction of a second."""

from equivision.cli import classify as _classify  # noqa: F401
from equivision.cli import data as _data  # noqa: F401
from equivision.cli import demo as _demo  # noqa: F401
from equivision.cli import evaluate as _evaluate  # noqa: F401
from equivision.cli import info as _info  # noqa: F401  (registers commands)
from equivision.cli import pose as _pose  # noqa: F401
from equivision.cli import reconstruct as _reconstruct  # noqa: F401
from equivision.cli import render as _render  # noqa: F401
from equivision.cli import sample as _sample  # noqa: F401
from equivision.cli import sphere as _sphere  # noqa: F401
from equivision.cli import synthesize as _synthesize  # noqa: F401
from equivision.cli import train as _train  # noqa: F401
from equivision.cli.app import app, check_device, entry_point, fail, main

__all__ = ["app", "check_device", "entry_point", "fail", "main"]
