"""The ``equivision`` command-line application and its error policy.

Library errors (:class:`~equivision.errors.EquivisionError`) become one line on stderr and
exit code 2, never a traceback. Commands live in sibling modules that import :data:`app`
and are imported by :mod:`equivision.cli`.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from equivision import __version__
from equivision.errors import EquivisionError

console = Console()
err_console = Console(stderr=True)

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
    err_console.print(f"error: {first}", style="bold red", highlight=False, soft_wrap=True)
    return 2


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
