"""Typed errors with stable codes: the one error language of the library and the three CLIs.

Tests assert the code; the command-line tools map each family to one line and an exit status:

    InputError   2  bad input: an exam, a data set, an option or a run folder that cannot be used
    BundleError  3  a model bundle that is missing, incomplete, tampered with or inconsistent
    RunError     4  a run that failed on its own: an export that lost parity with torch, and the like
    (anything else is a bug: exit 1, "internal error")

Messages name the file and never carry patient data. An error about a setting names it the
library's way (`option="device"`); the CLIs print it the command line's way (`--device`).
"""

from __future__ import annotations

from pathlib import Path


class MRNetError(Exception):
    """Base class: a stable `code`, a human message and, where known, the file or the setting at fault."""

    exit_code = 1

    def __init__(self, code: str, message: str, path: str | Path | None = None, option: str | None = None):
        self.code = code
        self.message = message
        self.path = str(path) if path is not None else None
        self.option = option
        super().__init__(self.one_line())

    def one_line(self, cli: bool = False) -> str:
        """`path: message [CODE]`; a setting is named `device:` in the library, `--device:` with `cli`."""
        where = f"{self.path}: " if self.path else ""
        if self.option:
            where += (f"--{self.option.replace('_', '-')}" if cli else self.option) + ": "
        return f"{where}{self.message} [{self.code}]"


class InputError(MRNetError):
    """Bad input: an exam, data set, option or run folder that cannot be used as asked (exit status 2)."""

    exit_code = 2


class ExamReadError(InputError):
    """An exam (DICOM, NIfTI, npy) that cannot be turned into MRNet volumes."""


class DatasetError(InputError):
    """An MRNet-layout data set that cannot be used."""


class BundleError(MRNetError):
    """A model bundle that is missing, incomplete, tampered with or inconsistent (exit status 3)."""

    exit_code = 3


class RunError(MRNetError):
    """A training or export run that failed for a reason of its own, not its input (exit status 4)."""

    exit_code = 4
