"""DICOM headers: one file's series attributes and its 2D images (one per frame), pixels left on disk.

Only what the geometry, the echo choice and the series rules need is read. No patient attribute is
ever read: messages name files and series only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from .archive import Source
from .geometry import unit
from .types import Skipped

_DICOMDIR = "1.2.840.10008.1.3.10"

@dataclass(eq=False)  # identity: two frames of one file are different images
class ImageHeader:
    """One 2D image: a single-frame file, or one frame of a multi-frame file."""

    source: Source
    frame: int | None
    rows: int
    cols: int
    pixel_mm: tuple[float, float]  # between rows, between columns
    along_row: np.ndarray  # ImageOrientationPatient[:3]: where increasing column index goes
    along_col: np.ndarray  # ImageOrientationPatient[3:]: where increasing row index goes
    position: np.ndarray  # ImagePositionPatient of the first pixel
    echo_number: int | None
    echo_time: float | None
    instance: int
    slope: float
    intercept: float
    syntax: str
    sop_instance: str = ""  # with the SOP class and frame, what a DICOM report references
    sop_class: str = ""

    @property
    def name(self) -> str:
        return self.source.name if self.frame is None else f"{self.source.name} (frame {self.frame + 1})"


@dataclass
class SeriesHeader:
    uid: str
    study_uid: str
    number: int | None
    description: str
    image_type: tuple[str, ...]
    scanning_sequence: tuple[str, ...]
    scan_options: tuple[str, ...]
    sequence_name: str
    repetition_time: float | None
    inversion_time: float | None
    images: list[ImageHeader] = field(default_factory=list)

    @property
    def label(self) -> str:
        number = f" {self.number}" if self.number is not None else ""
        description = f" '{self.description}'" if self.description else ""
        return f"series{number}{description}"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _multi(value) -> tuple[str, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    return tuple(str(v).strip().upper() for v in values if str(v).strip())


def _first_item(ds, keyword: str):
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _frame_group(ds, frame: int, keyword: str):
    """The item of a functional-group macro for one frame: per-frame first, then shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        item = _first_item(per_frame[frame], keyword)
        if item is not None:
            return item
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    return _first_item(shared, keyword) if shared is not None else None


def _geometry(orientation, position, spacing, where: str):
    if orientation is None or position is None or spacing is None:
        raise Skipped("NO_GEOMETRY", f"{where} has no ImageOrientationPatient, ImagePositionPatient or PixelSpacing")
    values = [_number(v) for v in orientation] + [_number(v) for v in position] + [_number(v) for v in spacing]
    if len(values) != 11 or any(v is None for v in values):
        raise Skipped("NO_GEOMETRY", f"{where} has malformed orientation, position or pixel spacing")
    along_row, along_col = np.array(values[0:3]), np.array(values[3:6])
    if (np.linalg.norm(along_row) < 0.5 or np.linalg.norm(along_col) < 0.5
            or abs(unit(along_row) @ unit(along_col)) > 0.01 or min(values[9:11]) <= 0):
        raise Skipped("NO_GEOMETRY", f"{where} has an invalid orientation or pixel spacing")
    return unit(along_row), unit(along_col), np.array(values[6:9]), (values[9], values[10])


def decodable(syntax: str) -> bool:
    try:
        return get_decoder(UID(syntax)).is_available
    except NotImplementedError:
        return False


def read_headers(source: Source) -> tuple[SeriesHeader, list[ImageHeader]]:
    """The series attributes and the images of one file (header only, pixels stay on disk)."""
    try:
        with source.open_binary() as handle, warnings.catch_warnings():
            # pydicom's warnings can quote element values; none of them may reach a log.
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
    except Exception as error:  # noqa: BLE001  (any parser failure means the same: unreadable)
        raise Skipped("CORRUPT_FILE", f"not a readable DICOM file ({type(error).__name__})") from None

    sop_class = UID(str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "") or ""))
    if not sop_class:
        # Every DICOM object names its SOP class; pydicom parses noise after "DICM" without complaint.
        raise Skipped("CORRUPT_FILE", "no SOP class: a damaged file or not DICOM")
    if sop_class == _DICOMDIR or "DirectoryRecordSequence" in ds:
        raise Skipped("NOT_AN_IMAGE", "a DICOMDIR index, not an image")
    if sop_class.is_valid and sop_class.name != sop_class and "Image" not in sop_class.name:
        raise Skipped("NOT_AN_IMAGE", f"a {sop_class.name} object, not an image")
    if "Rows" not in ds or "Columns" not in ds:
        if "Image" in sop_class.name:
            raise Skipped("CORRUPT_FILE", "an image header without rows and columns (truncated?)")
        raise Skipped("NOT_AN_IMAGE", "no image in this file")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise Skipped("NOT_AN_IMAGE", "a colour image, not an MR magnitude image")

    syntax = str(ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian))
    sop_instance = str(ds.get("SOPInstanceUID", "") or "")
    series = SeriesHeader(
        uid=str(ds.get("SeriesInstanceUID", "") or ""),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        number=int(n) if (n := _number(ds.get("SeriesNumber"))) is not None else None,
        description=str(ds.get("SeriesDescription", "") or "").strip(),
        image_type=_multi(ds.get("ImageType")),
        scanning_sequence=_multi(ds.get("ScanningSequence")),
        scan_options=_multi(ds.get("ScanOptions")),
        sequence_name=str(ds.get("SequenceName", "") or ds.get("PulseSequenceName", "") or ""),
        repetition_time=_number(ds.get("RepetitionTime")),
        inversion_time=_number(ds.get("InversionTime")),
    )
    rows, cols = int(ds.Rows), int(ds.Columns)
    instance = int(_number(ds.get("InstanceNumber")) or 0)
    frames = int(_number(ds.get("NumberOfFrames")) or 1)

    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        timing = _frame_group(ds, 0, "MRTimingAndRelatedParametersSequence")
        if timing is not None and series.repetition_time is None:
            series.repetition_time = _number(timing.get("RepetitionTime"))
        images = []
        for frame in range(frames):
            plane_orientation = _frame_group(ds, frame, "PlaneOrientationSequence")
            plane_position = _frame_group(ds, frame, "PlanePositionSequence")
            measures = _frame_group(ds, frame, "PixelMeasuresSequence")
            along_row, along_col, position, pixel_mm = _geometry(
                plane_orientation.get("ImageOrientationPatient") if plane_orientation else None,
                plane_position.get("ImagePositionPatient") if plane_position else None,
                measures.get("PixelSpacing") if measures else None, f"frame {frame + 1}")
            transform = _frame_group(ds, frame, "PixelValueTransformationSequence")
            echo = _frame_group(ds, frame, "MREchoSequence")
            images.append(ImageHeader(
                source, frame, rows, cols, pixel_mm, along_row, along_col, position,
                echo_number=None, echo_time=_number(echo.get("EffectiveEchoTime")) if echo else None,
                instance=frame + 1,
                slope=(_number(transform.get("RescaleSlope")) or 1.0) if transform else 1.0,
                intercept=(_number(transform.get("RescaleIntercept")) or 0.0) if transform else 0.0,
                syntax=syntax, sop_instance=sop_instance, sop_class=str(sop_class)))
        return series, images

    if frames > 1:
        raise Skipped("NO_GEOMETRY", "a multi-frame file without per-frame geometry")
    along_row, along_col, position, pixel_mm = _geometry(
        ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient"), ds.get("PixelSpacing"), "the image")
    echo_number = _number(ds.get("EchoNumbers"))
    image = ImageHeader(source, None, rows, cols, pixel_mm, along_row, along_col, position,
                   echo_number=int(echo_number) if echo_number is not None else None,
                   echo_time=_number(ds.get("EchoTime")), instance=instance,
                   slope=_number(ds.get("RescaleSlope")) or 1.0,
                   intercept=_number(ds.get("RescaleIntercept")) or 0.0, syntax=syntax,
                   sop_instance=sop_instance, sop_class=str(sop_class))
    return series, [image]
