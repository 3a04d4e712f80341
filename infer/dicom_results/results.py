"""An exam's results as DICOM objects: the SR, and with `overlays` the Secondary Capture images."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pydicom.dataset import Dataset

from ..predictor import Prediction
from ..reading import Exam
from .sources import source_study


def dicom_results(prediction: Prediction, exam: Exam, paths: str | os.PathLike | Sequence[str | os.PathLike],
                  name: str = "", overlays: bool = False) -> list[Dataset]:
    """[SR, *Secondary Captures] for an exam read by `read_exam(paths)`, under its source study.
    Raises `InputError` for an exam that is not DICOM or mixes studies."""
    from .structured_report import structured_report  # noqa: PLC0415 - highdicom loads with the first report

    source = source_study(exam, paths, name)
    results = [structured_report(prediction, source)]
    if overlays:
        from .secondary_capture import secondary_captures  # noqa: PLC0415

        results += secondary_captures(prediction, exam, source)
    return results
