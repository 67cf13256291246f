"""The ``equivision`` command-line application and its error policy.

Library errors (:class:`~equivision.errors.EquivisionError`) become one line on stderr and
exit code 2, never a traceback. Commands live in sibling modules that import :data:`app`
and are imported by :mod:`equivision.cli`.
"""

from __future__ import annotations

import re
import sys

import typer
from rich.console import Console

from equivision import __version__
from equivision.errors import EquivisionError

# Markup off: paths and values the user typed ("[draft].ply", "a[/b].ply") print literally;
# styling goes through ``style=`` or escaped markup (rich.markup.escape).
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

app = typer.Typer(
    name="equivision",
    help="Rotation-equivariant 3D vision: groups, G-CNNs, spherical CNNs, SO(3) pose, "
    "pose-invariant surface reconstruction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"equivision {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
) -> None:
    """Rotation-equivariant 3D vision."""


def fail(message: str) -> None:
    """Print one error line and exit 2 (for checks done in the CLI itself)."""
    raise typer.Exit(_print_error(message))


def _print_error(message: str) -> int:
    first = " ".join(str(message).split())  # one line, whatever the exception text held
    err_console.print(f"error: {first}", style="bold red", markup=False, highlight=False, soft_wrap=True)
    return 2


_DEVICE = re.compile(r"cuda(?::(\d+))?")


def check_device(device: str, *, allow_auto: bool = False) -> str:
    """A ``--device`` value checked before any work: ``cpu``, ``cuda``, ``cuda:N`` with N below
    this machine's CUDA device count, and ``auto`` where ``allow_auto``. Returns it lower-cased;
    raises :class:`~equivision.errors.InvalidInputError` otherwise (torch is imported here,
    not at start-up, so ``--help`` stays fast)."""
    from equivision.errors import InvalidInputError

    d = device.strip().lower()
    if d == "cpu" or (allow_auto and d == "auto"):
        return d
    m = _DEVICE.fullmatch(d)
    if m is None:
        accepted = "cpu, cuda, cuda:N or auto" if allow_auto else "cpu, cuda or cuda:N"
        raise InvalidInputError(f"--device must be {accepted}, got {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise InvalidInputError(f"--device {device} asked but no CUDA device is available; use --device cpu")
    n = torch.cuda.device_count()
    if m.group(1) is not None and int(m.group(1)) >= n:
        raise InvalidInputError(
            f"--device {device}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return d


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``equivision`` script; returns the exit code.

    Typer handles usage errors itself (its one-line message, exit 2); library errors are
    caught here and printed as one line with exit 2.
    """
    try:
        app(args=argv, prog_name="equivision")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except EquivisionError as e:
        return _print_error(str(e))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


def entry_point() -> None:
    """Console-script wrapper: ``sys.exit(main())``."""
    sys.exit(main())
