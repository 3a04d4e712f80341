"""One entry point that turns any exam into MRNet volumes: `read_exam`.

It accepts what scanners, PACS and MRNet itself produce: a DICOM folder, a zip, a multi-frame
DICOM file, NIfTI files (one per plane), MRNet npy files, or a list of such paths. Every plane comes
back as MRNet sees it (uint8, S x 256 x 256, axes as `registry.PLANE_AXES`), with where it came from,
what was left out and why.

This module only dispatches: `archive` gathers the files, and each format has its own reader
(`dicom`, `nifti`, `npy`), all of them built on `types`. None of them imports this module, so the
readers load lazily (pydicom and nibabel only when an exam needs them) without an import cycle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..registry import PLANES
from .archive import gather
from .types import EchoInfo, Exam, ExamError, ImageRef, Problem, SeriesInfo

__all__ = ["EchoInfo", "Exam", "ExamError", "ImageRef", "Problem", "SeriesInfo", "read_exam"]

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
        from .npy import read_npy  # noqa: PLC0415
        exam = read_npy(sources, skipped=skipped)
    if series and kind != "dicom":
        exam.warnings.append(f"a series choice applies to DICOM only; ignored for {kind} input")
    return exam
