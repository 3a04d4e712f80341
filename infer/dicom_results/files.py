"""Where `mrnet-predict --format sr` writes its reports: one exam to a file, several to a folder,
one file per exam (study), named after the exam, never after the patient."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


class ReportFiles:
    """Writes each exam's SR as soon as it is made, so a batch keeps no volumes in memory."""

    def __init__(self, out: Path | None, exams: int, overlays: bool = False):
        if out is None:
            raise InputError("BAD_OPTION", "--format sr writes DICOM files: give --out RESULT.dcm "
                             "(one exam) or --out FOLDER (several)")
        self.folder = out if exams > 1 or out.is_dir() else None
        self.file = None if self.folder is not None else out
        if self.folder is not None and self.folder.exists() and not self.folder.is_dir():
            raise InputError("BAD_OPTION", "with several exams --out must be a folder", out)
        self.overlays = overlays
        self.written: list[Path] = []

    def path_for(self, exam_name: str) -> Path:
        if self.file is not None:
            return self.file
        stem = Path(exam_name.rstrip("/")).name or "exam"
        stem = stem.removesuffix(".zip").removesuffix(".dcm") or "exam"
        path, n = self.folder / f"{stem}.sr.dcm", 1
        while path in self.written:
            n += 1
            path = self.folder / f"{stem}-{n}.sr.dcm"
        return path

    def write(self, exam_name: str, exam, prediction, paths) -> list[Path]:
        """Build and save one exam's SR (and Secondary Captures); raises `InputError` when the exam
        cannot have them. Secondary Captures go next to the SR: NAME.sc01.dcm, NAME.sc02.dcm, ..."""
        from .results import dicom_results  # noqa: PLC0415 - highdicom only for --format sr

        report, *captures = dicom_results(prediction, exam, paths, exam_name, overlays=self.overlays)
        path = self.path_for(exam_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        paths_out = [path] + [path.with_name(f"{path.name.removesuffix('.dcm')}.sc{k:02d}.dcm")
                              for k in range(1, len(captures) + 1)]
        for dataset, target in zip([report, *captures], paths_out):
            dataset.save_as(target, enforce_file_format=True)
        self.written += paths_out
        return paths_out
