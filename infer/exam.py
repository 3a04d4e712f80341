"""One entry point that turns any exam into MRNet volumes: `read_exam`.

It accepts what scanners, PACS and MRNet itself produce: a DICOM folder, a zip, a multi-frame
DICOM file, NIfTI files (one per plane), MRNet npy files, or a list of such paths. Every plane comes
back as MRNet sees it (uint8, S x 256 x 256, axes as `registry.PLANE_AXES`), with where it came from,
what was left out and why. Nothing here carries patient data: no names, ids or dates are read into
any field, message or warning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ExamReadError
from .geometry import direction_letter
from .registry import PLANE_AXES, PLANES, SLICE_SIZE

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

    def one_line(self) -> str:
        first = super().one_line()
        if len(self.problems) <= 1:
            return first
        lines = [f"  {p.source}: {p.message} [{p.code}]" if p.source else f"  {p.message} [{p.code}]"
                 for p in self.problems]
        return "\n".join([first, *lines])


@dataclass(frozen=True)
class EchoInfo:
    """The echo chosen from a multi-echo series, and how."""

    number: int | None
    echo_time_ms: float | None
    echoes: int  # how many echoes the series has
    rule: str


@dataclass(frozen=True)
class SeriesInfo:
    """Where one plane's volume came from.

    `orientation` gives the patient directions (L R P A S I) that the rows, columns and slices of
    the data ran to as acquired, e.g. "IPR"; `obliquity_deg` is the angle between the slice normal
    and the patient axis of its plane. `spacing_mm` is (row, column, slice) as acquired.
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
            "sources": {p: asdict(s) for p, s in self.sources.items()},
            "skipped": [p._asdict() for p in self.skipped],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# Dispatch

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _kind_of(name: str, head: bytes) -> str | None:
    lower = name.lower()
    if lower.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if lower.endswith(".npy"):
        return "npy"
    if head[128:132] == b"DICM":  # the test pydicom.misc.is_dicom makes, also for in-memory files
        return "dicom"
    return None


def read_exam(path: str | os.PathLike | Sequence[str | os.PathLike],
              series: Mapping[str, str] | None = None) -> Exam:
    """Read an exam into MRNet volumes, one per plane found.

    `path` is a DICOM folder (read recursively), a zip, a DICOM file (e.g. enhanced multi-frame),
    NIfTI files (one per plane), MRNet npy files (`axial.npy`, ...; or a folder of them), or a list
    of such paths. `series` maps planes to SeriesInstanceUIDs and overrides the DICOM series choice.
    Raises `ExamError` (an `ExamReadError`) with a stable code and every problem found.
    """
    from .archive import gather  # noqa: PLC0415  (archive imports this module's types)

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ExamError("NOT_FOUND", "no exam path given")
    if series:
        unknown = sorted(set(series) - set(PLANES))
        if unknown:
            raise ExamError("UNKNOWN_PLANE", f"series choice for unknown plane(s) {', '.join(unknown)}; "
                            f"planes are {', '.join(PLANES)}")

    files, skipped = gather(paths)
    by_kind: dict[str, list] = {}
    for source in files:
        kind = _kind_of(source.name, source.head(132))
        if kind is None:
            skipped.append(Problem("NOT_DICOM", source.name, "not a DICOM, NIfTI or npy file"))
        else:
            by_kind.setdefault(kind, []).append(source)

    if not by_kind:
        if len(files) == 1 and files[0].path is not None and Path(paths[0]).is_file():
            raise ExamError("UNKNOWN_FORMAT", "not a DICOM file, zip, NIfTI (.nii, .nii.gz) or MRNet .npy file",
                            files[0].name)
        damaged = [p for p in skipped if p.code == "CORRUPT_FILE"]
        if damaged and len(damaged) == len(skipped):
            raise ExamError("CORRUPT_FILE", f"all {len(damaged)} file(s) are damaged", problems=damaged)
        raise ExamError("NO_IMAGES", f"no DICOM, NIfTI or npy files among {len(files)} file(s)",
                        problems=[p for p in skipped if p.code != "NOT_DICOM"])
    if len(by_kind) > 1:
        counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items()))
        raise ExamError("MIXED_FORMATS", f"an exam must be one kind of file, found {counts}")

    kind, sources = next(iter(by_kind.items()))
    if kind == "dicom":
        from .dicom import read_dicom  # noqa: PLC0415  (pydicom is needed only here)
        exam = read_dicom(sources, series=series, skipped=skipped)
    elif kind == "nifti":
        from .nifti import read_nifti  # noqa: PLC0415  (nibabel is needed only here)
        exam = read_nifti(sources, skipped=skipped)
    else:
        exam = read_npy(sources, skipped=skipped)
    if series and kind != "dicom":
        exam.warnings.append(f"a series choice applies to DICOM only; ignored for {kind} input")
    return exam


# ---------------------------------------------------------------------------------------------
# MRNet npy files: the arrays are MRNet volumes already, their plane is in their name


def plane_from_name(name: str) -> str | None:
    """The plane a file name spells: its own name first, then its folder's (MRNet's layout is
    `train/sagittal/0000.npy`)."""
    parts = [part.lower() for part in re.split(r"[\\/]", name) if part]
    for part in reversed(parts[-2:]):
        found = [p for p in PLANES if p in part]
        if len(found) == 1:
            return found[0]
    return None


def read_npy(sources, skipped: list[Problem] | None = None) -> Exam:
    """MRNet npy volumes (uint8, S x 256 x 256), the plane of each given by its name."""
    skipped = list(skipped or [])
    volumes, infos, problems = {}, {}, []
    for source in sources:
        # A file given by itself is named without its folder; its folder may still name the plane.
        plane = plane_from_name(f"{source.path.parent.name}/{source.path.name}" if source.path else source.name)
        if plane is None:
            problems.append(Problem("UNKNOWN_PLANE", source.name,
                                    f"the file name names no plane ({', '.join(PLANES)})"))
            continue
        try:
            with source.open_binary() as handle:
                volume = np.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            problems.append(Problem("CORRUPT_FILE", source.name, f"not a readable npy file ({type(error).__name__})"))
            continue
        if volume.dtype != np.uint8 or volume.ndim != 3 or volume.shape[1:] != (SLICE_SIZE, SLICE_SIZE):
            problems.append(Problem("INVALID_VOLUME", source.name,
                                    f"an MRNet volume is uint8 (S, {SLICE_SIZE}, {SLICE_SIZE}), "
                                    f"this is {volume.dtype} {volume.shape}"))
            continue
        if plane in volumes:
            problems.append(Problem("NOT_CHOSEN", source.name, f"a second {plane} volume; "
                                    f"using {infos[plane].source}"))
            continue
        volumes[plane] = volume
        axes = PLANE_AXES[plane]
        infos[plane] = SeriesInfo(
            plane=plane, source=source.name, description=Path(source.name).name, n_slices=volume.shape[0],
            reason="MRNet npy volume; plane from the file name",
            orientation="".join(direction_letter(v) for v in (axes.row, axes.col, axes.slice)),
            obliquity_deg=0.0)
    if not volumes:
        if len(problems) == 1:
            raise ExamError(problems[0].code, problems[0].message, problems[0].source, problems=problems)
        codes = {p.code for p in problems}
        code = codes.pop() if len(codes) == 1 else "NO_USABLE_SERIES"
        raise ExamError(code, f"none of the {len(sources)} npy files is usable", problems=problems)
    skipped += problems
    return Exam("npy", volumes, infos, skipped=skipped)
