"""Where a DICOM exam came from, as a report needs it: the study, and per plane the series and
the images used; and the source study's patient and study identification.

The identification is read here, from one of the source images' own header, for the one purpose
of copying it into the report so that a PACS files the report under the same patient and study.
It never goes into an `Exam`, a message or a log line.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from ..errors import InputError
from ..reading import Exam, ImageRef
from ..reading.archive import gather

# Copied from the source (Patient, General Study, Patient Study modules). A type 2 attribute the
# source lacks is written empty, as the standard asks.
PATIENT_AND_STUDY_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                           "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


@dataclass(frozen=True)
class PlaneSource:
    series_uid: str
    images: tuple[ImageRef, ...]


@dataclass(frozen=True)
class SourceStudy:
    """`header` holds one source image's header (patient and study identification included):
    pass it to the report, never to a log."""

    study_uid: str
    planes: dict[str, PlaneSource]
    header: Dataset

    def __repr__(self) -> str:  # a stray print or log of this object shows no patient data
        return f"SourceStudy(planes={list(self.planes)}, images={sum(len(p.images) for p in self.planes.values())})"

    def evidence(self) -> list[Dataset]:
        """One dataset per image used, the first with the patient and study identification:
        what highdicom's SR takes as `evidence`."""
        items = [self.header]
        first = self.header.SOPInstanceUID
        for plane in self.planes.values():
            for sop_instance in dict.fromkeys(image.sop_instance for image in plane.images):
                if sop_instance == first:
                    continue
                item = Dataset()
                item.StudyInstanceUID = self.study_uid
                item.SeriesInstanceUID = plane.series_uid
                item.SOPInstanceUID = sop_instance
                item.SOPClassUID = next(i.sop_class for i in plane.images if i.sop_instance == sop_instance)
                items.append(item)
        return items


def source_study(exam: Exam, paths: str | os.PathLike | Sequence[str | os.PathLike], name: str = "") -> SourceStudy:
    """The study an exam read by `read_exam(paths)` came from. Raises `InputError` when the exam
    is not DICOM (`SR_NEEDS_DICOM`) or its planes come from different studies (`SR_MIXED_STUDIES`)."""
    where = name or None
    kind = exam.source_kind if isinstance(exam, Exam) else "npy (an MRNet data set exam)"
    if kind != "dicom":
        raise InputError("SR_NEEDS_DICOM", f"a DICOM report needs a DICOM exam; this one is {kind}, "
                         "which has no patient or study to file the report under", where)
    studies = {info.study_uid for info in exam.sources.values()}
    if len(studies) != 1 or None in studies or any(not info.images for info in exam.sources.values()):
        raise InputError("SR_MIXED_STUDIES", f"the planes come from {len(studies)} studies; a report belongs "
                         "to one study (choose its series with --series, or give one study per exam)", where)
    planes = {plane: PlaneSource(info.series_uid or "", info.images) for plane, info in exam.sources.items()}
    header = _first_header(paths, {image.sop_instance for plane in planes.values() for image in plane.images})
    if header is None:
        raise InputError("SR_SOURCE_GONE", "the exam's source images can no longer be read", where)
    return SourceStudy(study_uid=studies.pop(), planes=planes, header=header)


def _first_header(paths, wanted: set[str]) -> Dataset | None:
    """The header of the first file among `paths` that is one of the images used."""
    files, _ = gather([paths] if isinstance(paths, (str, os.PathLike)) else list(paths))
    for source in files:
        if source.head(132)[128:132] != b"DICM":
            continue
        try:
            with source.open_binary() as handle, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's warnings can quote element values
                header = pydicom.dcmread(handle, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - the reader has already reported damaged files
            continue
        if str(header.get("SOPInstanceUID", "")) in wanted:
            for keyword in PATIENT_AND_STUDY_TYPE2:
                if keyword not in header:
                    setattr(header, keyword, "")
            return header
    return None
