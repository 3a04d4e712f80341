"""Typed errors with stable codes.

Tests assert the code; the command-line tools map each family to one line and an exit status
(bad input: 2, model bundle: 3). Messages name the file and never carry patient data.
"""

from __future__ import annotations

from pathlib import Path


class MRNetError(Exception):
    """Base class: a stable `code`, a human message and, where known, the file at fault."""

    exit_code = 1

    def __init__(self, code: str, message: str, path: str | Path | None = None):
        self.code = code
        self.message = message
        self.path = str(path) if path is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message} [{self.code}]"


class InputError(MRNetError):
    """Bad input: an exam or data set that cannot be read as asked (exit status 2)."""

    exit_code = 2


class ExamReadError(InputError):
    """An exam (DICOM, NIfTI, npy) that cannot be turned into MRNet volumes."""


class DatasetError(InputError):
    """An MRNet-layout data set that cannot be used."""


class BundleError(MRNetError):
    """A model bundle that is missing, incomplete, tampered with or inconsistent (exit status 3)."""

    exit_code = 3
