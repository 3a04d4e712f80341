"""What the three command-line tools share: one-line errors, exit statuses, `--debug`.

A typed `MRNetError` becomes one line naming the file (or the option) and the stable code, and
its family's exit status (bad input 2, model bundle 3, failed run 4: see `errors.py`). Anything
else is a bug: one line and exit 1. The traceback is shown only with `--debug`. The policy sits in
the click command classes, so it holds for the installed scripts and for `typer.testing.CliRunner`
alike.
"""

from __future__ import annotations

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from .errors import MRNetError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Flags:
    """Set by each tool's `--debug` option before a command runs."""

    debug = False


def _report(error: Exception) -> int:
    if isinstance(error, MRNetError):
        lines = error.one_line(cli=True).splitlines()
        stderr.print(f"error: {lines[0]}", markup=False)
        for line in lines[1:]:
            stderr.print(line, markup=False)
        return error.exit_code
    stderr.print(f"internal error: {type(error).__name__}: {error} (run again with --debug for details)",
                 markup=False)
    return 1


class _Guarded:
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as error:  # noqa: BLE001 - no traceback reaches a user without --debug
            if Flags.debug:
                raise
            ctx.exit(_report(error))


class GuardedGroup(_Guarded, TyperGroup):
    """A typer group (several commands) with the project's error policy."""


class GuardedCommand(_Guarded, TyperCommand):
    """A single typer command with the project's error policy."""


def set_debug(debug: bool) -> None:
    Flags.debug = debug
