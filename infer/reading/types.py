"""The types every reader shares, below all of them: an `Exam`, where each plane came from, what
was left out (`Problem`) and the error an unreadable exam raises (`ExamError`).

Nothing here carries patient data: no names, ids or dates are read into any field, message or warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ExamReadError
from ..registry import PLANES

SOURCE_KINDS = ("dicom", "nifti", "npy")


class Problem(NamedTuple):
    """One thing that went wrong or was left out: a stable code, the file or series it concerns
    (a path relative to the exam, or a SeriesInstanceUID), and a message for people."""

    code: str
    source: str | None
    message: str


class ExamError(ExamReadError):
    """An exam that cannot be read. `code` is the main reason; `problems` lists everything found,
    one line each, so that a command-line tool can print them all."""

    def __init__(self, code: str, message: str, path: str | Path | None = None,
                 problems: Sequence[Problem] = ()):
        self.problems = list(problems) or [Problem(code, str(path) if path is not None else None, message)]
        super().__init__(code, message, path)

    def one_line(self, cli: bool = False) -> str:
        first = super().one_line(cli)
        if len(self.problems) <= 1:
            return first
        lines = [f"  {p.source}: {p.message} [{p.code}]" if p.source else f"  {p.message} [{p.code}]"
                 for p in self.problems]
        return "\n".join([first, *lines])


class Skipped(Exception):
    """A file or series a reader cannot use, with the code and message to report; the reader
    catches it, records a `Problem` and goes on with the rest of the exam."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def nothing_usable(problems: Sequence[Problem], summary: str, shown: Sequence[Problem] | None = None) -> ExamError:
    """The error for an exam in which no file or series could be used.

    One problem speaks for itself; several with one code share that code; otherwise the code is
    NO_USABLE_SERIES with `summary` as the message. `shown` (default: `problems`) is what the error
    lists, which may include problems that did not decide the code (e.g. unreadable files).
    """
    shown = list(problems if shown is None else shown)
    if len(problems) == 1:
        only = problems[0]
        return ExamError(only.code, only.message, only.source, problems=shown)
    codes = {p.code for p in problems}
    return ExamError(codes.pop() if len(codes) == 1 else "NO_USABLE_SERIES", summary, problems=shown)


@dataclass(frozen=True)
class EchoInfo:
    """The echo chosen from a multi-echo series, and how."""

    number: int | None
    echo_time_ms: float | None
    echoes: int  # how many echoes the series has
    rule: str


class ImageRef(NamedTuple):
    """One image a plane's volume was made of, as a DICOM report references it (no patient data)."""

    sop_class: str
    sop_instance: str
    frame: int | None = None  # 1-based frame number in a multi-frame file


@dataclass(frozen=True)
class SeriesInfo:
    """Where one plane's volume came from.

    `orientation` gives the patient directions (L R P A S I) that the rows, columns and slices of
    the data ran to as acquired, e.g. "IPR"; `obliquity_deg` is the angle between the slice normal
    and the patient axis of its plane. `spacing_mm` is (row, column, slice) as acquired. For DICOM,
    `study_uid` and `images` (the images used, in slice order) let a report reference its sources;
    `to_dict` leaves `images` out.
    """

    plane: str
    source: str
    description: str
    n_slices: int
    reason: str
    series_uid: str | None = None
    series_number: int | None = None
    matrix: tuple[int, int] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    orientation: str | None = None
    obliquity_deg: float | None = None
    echo: EchoInfo | None = None
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    study_uid: str | None = None
    images: tuple[ImageRef, ...] = ()


@dataclass
class Exam:
    """MRNet volumes of the planes found, with their provenance.

    `volumes[plane]` is uint8 (S, 256, 256) oriented as `registry.PLANE_AXES`; `sources[plane]` says
    where it came from; `skipped` lists every file or series left out and why; `warnings` what the
    reader had to work around.
    """

    source_kind: str
    volumes: dict[str, np.ndarray]
    sources: dict[str, SeriesInfo]
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        # Registry order, whatever order the reader found the planes in.
        self.volumes = {p: self.volumes[p] for p in PLANES if p in self.volumes}
        self.sources = {p: self.sources[p] for p in PLANES if p in self.sources}

    @property
    def planes(self) -> tuple[str, ...]:
        return tuple(self.volumes)

    @property
    def missing_planes(self) -> tuple[str, ...]:
        return tuple(p for p in PLANES if p not in self.volumes)

    def to_dict(self) -> dict:
        """Provenance as plain JSON-ready data (no pixels), e.g. for a prediction report."""
        return {
            "source_kind": self.source_kind,
            "planes": list(self.planes),
            "shapes": {p: list(v.shape) for p, v in self.volumes.items()},
            "sources": {p: {k: v for k, v in asdict(s).items() if k != "images"} for p, s in self.sources.items()},
            "skipped": [p._asdict() for p in self.skipped],
            "warnings": list(self.warnings),
        }
