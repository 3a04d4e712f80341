"""Read a DICOM study into MRNet volumes: any number of series, files in any order, any names.

1. Read every file's header; keep images (not DICOMDIR, reports or presentation states).
2. Group images by SeriesInstanceUID; split a multi-echo series by echo and choose one echo.
3. Check each stack: one orientation, one matrix, no duplicate positions, even slice spacing.
4. Choose one series per plane by the rules in `series_rules.json`, or take the caller's choice.
5. Decode and rescale the chosen series' pixels; reorient and resample them (`geometry.py`).

Slices are ordered by their position projected on the slice normal, never by InstanceNumber or
file name. No patient attribute is ever read: messages name files and series only.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from .archive import Source
from .exam import EchoInfo, Exam, ExamError, Problem, SeriesInfo
from .geometry import OBLIQUE_LIMIT_DEG, Stack, plane_of_normal, to_mrnet, unit
from .registry import MAX_SLICES, MIN_SLICES, PLANES

# Geometry tolerances (docs/conventions.md explains them).
ORIENTATION_TOLERANCE_DEG = 1.0  # images of one stack may differ in orientation by this much
DUPLICATE_TOLERANCE_MM = 0.01  # positions closer than this along the normal are the same slice
SPACING_TOLERANCE = 0.10  # every gap between slices must be within 10 % of the median gap,
SPACING_TOLERANCE_MM = 0.10  # or within 0.1 mm of it, whichever is larger

_DICOMDIR = "1.2.840.10008.1.3.10"


@lru_cache(maxsize=1)
def series_rules() -> dict:
    """The series-selection rules shipped with the package (`series_rules.json`)."""
    text = resources.files(__package__).joinpath("series_rules.json").read_text(encoding="utf-8")
    return json.loads(text)


class _Skip(Exception):
    """A file or series that cannot be used, with the code and message to report."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Headers


@dataclass(eq=False)  # identity: two frames of one file are different images
class _Image:
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

    @property
    def name(self) -> str:
        return self.source.name if self.frame is None else f"{self.source.name} (frame {self.frame + 1})"


@dataclass
class _Series:
    uid: str
    number: int | None
    description: str
    image_type: tuple[str, ...]
    scanning_sequence: tuple[str, ...]
    scan_options: tuple[str, ...]
    sequence_name: str
    repetition_time: float | None
    inversion_time: float | None
    images: list[_Image] = field(default_factory=list)

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
        raise _Skip("NO_GEOMETRY", f"{where} has no ImageOrientationPatient, ImagePositionPatient or PixelSpacing")
    values = [_number(v) for v in orientation] + [_number(v) for v in position] + [_number(v) for v in spacing]
    if len(values) != 11 or any(v is None for v in values):
        raise _Skip("NO_GEOMETRY", f"{where} has malformed orientation, position or pixel spacing")
    along_row, along_col = np.array(values[0:3]), np.array(values[3:6])
    if (np.linalg.norm(along_row) < 0.5 or np.linalg.norm(along_col) < 0.5
            or abs(unit(along_row) @ unit(along_col)) > 0.01 or min(values[9:11]) <= 0):
        raise _Skip("NO_GEOMETRY", f"{where} has an invalid orientation or pixel spacing")
    return unit(along_row), unit(along_col), np.array(values[6:9]), (values[9], values[10])


def _decodable(syntax: str) -> bool:
    try:
        return get_decoder(UID(syntax)).is_available
    except NotImplementedError:
        return False


def _read_images(source: Source) -> tuple[_Series, list[_Image]]:
    """The series attributes and the images of one file (header only, pixels stay on disk)."""
    try:
        with source.open_binary() as handle, warnings.catch_warnings():
            # pydicom's warnings can quote element values; none of them may reach a log.
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
    except Exception as error:  # noqa: BLE001  (any parser failure means the same: unreadable)
        raise _Skip("CORRUPT_FILE", f"not a readable DICOM file ({type(error).__name__})") from None

    sop_class = UID(str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "") or ""))
    if not sop_class:
        # Every DICOM object names its SOP class; pydicom parses noise after "DICM" without complaint.
        raise _Skip("CORRUPT_FILE", "no SOP class: a damaged file or not DICOM")
    if sop_class == _DICOMDIR or "DirectoryRecordSequence" in ds:
        raise _Skip("NOT_AN_IMAGE", "a DICOMDIR index, not an image")
    if sop_class.is_valid and sop_class.name != sop_class and "Image" not in sop_class.name:
        raise _Skip("NOT_AN_IMAGE", f"a {sop_class.name} object, not an image")
    if "Rows" not in ds or "Columns" not in ds:
        if "Image" in sop_class.name:
            raise _Skip("CORRUPT_FILE", "an image header without rows and columns (truncated?)")
        raise _Skip("NOT_AN_IMAGE", "no image in this file")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise _Skip("NOT_AN_IMAGE", "a colour image, not an MR magnitude image")

    syntax = str(ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian))
    series = _Series(
        uid=str(ds.get("SeriesInstanceUID", "") or ""),
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
            images.append(_Image(
                source, frame, rows, cols, pixel_mm, along_row, along_col, position,
                echo_number=None, echo_time=_number(echo.get("EffectiveEchoTime")) if echo else None,
                instance=frame + 1,
                slope=(_number(transform.get("RescaleSlope")) or 1.0) if transform else 1.0,
                intercept=(_number(transform.get("RescaleIntercept")) or 0.0) if transform else 0.0,
                syntax=syntax))
        return series, images

    if frames > 1:
        raise _Skip("NO_GEOMETRY", "a multi-frame file without per-frame geometry")
    along_row, along_col, position, pixel_mm = _geometry(
        ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient"), ds.get("PixelSpacing"), "the image")
    echo_number = _number(ds.get("EchoNumbers"))
    image = _Image(source, None, rows, cols, pixel_mm, along_row, along_col, position,
                   echo_number=int(echo_number) if echo_number is not None else None,
                   echo_time=_number(ds.get("EchoTime")), instance=instance,
                   slope=_number(ds.get("RescaleSlope")) or 1.0,
                   intercept=_number(ds.get("RescaleIntercept")) or 0.0, syntax=syntax)
    return series, [image]


# ---------------------------------------------------------------------------------------------
# Echoes and stacks


def _split_echoes(images: list[_Image]) -> dict[tuple, list[_Image]]:
    echoes: dict[tuple, list[_Image]] = {}
    for image in images:
        te = round(image.echo_time, 2) if image.echo_time is not None else None
        echoes.setdefault((image.echo_number, te), []).append(image)
    if len(echoes) > 1 and all(te is not None for _, te in echoes):
        # Echo numbers are only labels; the same echo time is the same echo.
        by_time: dict[tuple, list[_Image]] = {}
        for (_, te), group in echoes.items():
            by_time.setdefault((None, te), []).extend(group)
        echoes = by_time
    return echoes


def _choose_echo(echoes: dict[tuple, list[_Image]], plane: str, rules: dict) -> tuple[list[_Image], EchoInfo | None]:
    """One echo of a multi-echo series: the one whose echo time is closest to the sequence MRNet
    used for the plane (ties go to the shorter echo); without echo times, the first echo."""
    if len(echoes) == 1:
        return next(iter(echoes.values())), None
    plane_rules = rules["planes"][plane]
    target = float(plane_rules["target_echo_time_ms"])
    times = sorted({te for _, te in echoes if te is not None})
    if times:
        key = min((k for k in echoes if k[1] is not None), key=lambda k: (abs(k[1] - target), k[1]))
        images = echoes[key]
        numbers = {im.echo_number for im in images}
        number = numbers.pop() if len(numbers) == 1 and None not in numbers else times.index(key[1]) + 1
        rule = (f"the echo time closest to {target:g} ms, as MRNet's {plane} {plane_rules['sequence']}"
                f" (echo times {', '.join(f'{t:g}' for t in times)} ms)")
        return images, EchoInfo(number, images[0].echo_time, len(echoes), rule)
    key = min(echoes, key=lambda k: (k[0] is None, k[0] or 0))
    return echoes[key], EchoInfo(key[0], None, len(echoes), "the first echo: the series has no echo times")


@dataclass
class _Stack:
    images: list[_Image]  # ordered along the normal, duplicates left out
    normal: np.ndarray
    spacing: float
    duplicates: int


def _check_stack(images: list[_Image], min_slices: int) -> _Stack:
    """Order the images along the slice normal and check that they form one regular stack."""
    first = images[0]
    for image in images[1:]:
        if (image.rows, image.cols) != (first.rows, first.cols) or not np.allclose(image.pixel_mm, first.pixel_mm,
                                                                                   rtol=1e-3):
            raise _Skip("INCONSISTENT_MATRIX", f"{image.name} is {image.rows}x{image.cols} at "
                        f"{image.pixel_mm[0]:g}x{image.pixel_mm[1]:g} mm, {first.name} is {first.rows}x{first.cols} "
                        f"at {first.pixel_mm[0]:g}x{first.pixel_mm[1]:g} mm")
    limit = np.cos(np.radians(ORIENTATION_TOLERANCE_DEG))
    for image in images[1:]:
        if image.along_row @ first.along_row < limit or image.along_col @ first.along_col < limit:
            raise _Skip("INCONSISTENT_ORIENTATION", f"{image.name} and {first.name} are oriented differently: "
                        "the series mixes planes")
    normal = unit(np.cross(first.along_row, first.along_col))
    ordered = sorted(images, key=lambda im: (float(im.position @ normal), im.instance, im.name))
    kept = [ordered[0]]
    for image in ordered[1:]:
        if float((image.position - kept[-1].position) @ normal) >= DUPLICATE_TOLERANCE_MM:
            kept.append(image)
    if len(kept) < max(min_slices, 2):
        raise _Skip("TOO_FEW_SLICES", f"{len(kept)} slice position(s), fewer than {max(min_slices, 2)}: "
                    "a localizer or an incomplete series")
    along = np.array([float(im.position @ normal) for im in kept])
    gaps = np.diff(along)
    typical = float(np.median(gaps))
    tolerance = max(SPACING_TOLERANCE * typical, SPACING_TOLERANCE_MM)
    worst = int(np.argmax(np.abs(gaps - typical)))
    if abs(gaps[worst] - typical) > tolerance:
        hint = " (a missing slice?)" if gaps[worst] > typical else ""
        raise _Skip("INCONSISTENT_SPACING", f"{gaps[worst]:.2f} mm between {kept[worst].name} and "
                    f"{kept[worst + 1].name}, where slices are {typical:.2f} mm apart{hint}")
    return _Stack(kept, normal, float(np.mean(gaps)), len(ordered) - len(kept))


# ---------------------------------------------------------------------------------------------
# Series selection


@dataclass
class _Candidate:
    series: _Series
    plane: str
    obliquity: float
    images: list[_Image]
    echo: EchoInfo | None
    stack: _Stack | None = None
    hard: _Skip | None = None  # cannot be read as a volume
    soft: _Skip | None = None  # can be read, but is not what MRNet saw (the caller may still choose it)
    score: int = 0
    matched: list[str] = field(default_factory=list)

    @property
    def echo_time(self) -> float | None:
        return self.images[0].echo_time

    @property
    def problem(self) -> _Skip | None:
        """The reason to report when the series is left out."""
        if self.soft is not None and self.soft.code == "LOCALIZER":
            return self.soft
        return self.hard or self.soft

    def rank(self):
        first = self.images[0]
        n = len(self.stack.images) if self.stack else 0
        return (-self.score, -n, -(first.rows * first.cols),
                self.series.number if self.series.number is not None else 1 << 30, self.series.uid)


def _search(patterns, text: str) -> bool:
    return any(re.search(pattern, text) for pattern in patterns)


def _in_range(value, bounds) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _score(candidate: _Candidate, rules: dict) -> None:
    """How well a series matches the sequence MRNet used for its plane (see series_rules.json)."""
    series, plane_rules, weights = candidate.series, rules["planes"][candidate.plane], rules["score"]
    description = series.description.lower()
    want = plane_rules["weighting"]
    said = [w for w, patterns in rules["weightings"].items() if _search(patterns, description)]
    score, matched = 0, []
    if want in said:
        score += weights["description_weighting"]
        matched.append(f"described as {want}")
    elif said:
        score += weights["description_other_weighting"]
        matched.append(f"described as {'/'.join(said)}, not {want}")
    if _in_range(candidate.echo_time, plane_rules["echo_time_ms"]):
        score += weights["echo_time"]
        matched.append(f"TE {candidate.echo_time:g} ms")
    if _in_range(series.repetition_time, plane_rules["repetition_time_ms"]):
        score += weights["repetition_time"]
        matched.append(f"TR {series.repetition_time:g} ms")
    fat = rules["fat_sat"]
    fat_sat = (_search(fat["description_patterns"], description)
               or bool(set(series.scan_options) & set(fat["scan_options"]))
               or ("IR" in series.scanning_sequence and series.inversion_time is not None
                   and series.inversion_time <= fat["stir_max_inversion_time_ms"]))
    if fat_sat == plane_rules["fat_sat"]:
        score += weights["fat_sat"]
        matched.append("fat-sat" if fat_sat else "no fat-sat")
    spin = rules["spin_echo"]
    if (set(series.scanning_sequence) & set(spin["scanning_sequence"])
            or _search(spin["sequence_name_patterns"], series.sequence_name.lower())):
        score += weights["spin_echo"]
        matched.append("spin echo")
    candidate.score, candidate.matched = score, matched


def _evaluate(series: _Series, rules: dict) -> _Candidate:
    first = series.images[0]
    plane, obliquity = plane_of_normal(np.cross(first.along_row, first.along_col))
    images, echo = _choose_echo(_split_echoes(series.images), plane, rules)
    candidate = _Candidate(series, plane, obliquity, images, echo)

    localizer = rules["localizer"]
    if _search(localizer["description_patterns"], series.description.lower()):
        candidate.soft = _Skip("LOCALIZER", f"{series.label}: a localizer, by its description")
    elif set(series.image_type) & set(localizer["image_type"]):
        candidate.soft = _Skip("LOCALIZER", f"{series.label}: a localizer, by its ImageType")

    undecodable = sorted({im.syntax for im in images if not _decodable(im.syntax)})
    try:
        if undecodable:
            name = next(im.name for im in images if im.syntax == undecodable[0])
            raise _Skip("UNSUPPORTED_TRANSFER_SYNTAX", f"{name}: transfer syntax {UID(undecodable[0]).name} "
                        "cannot be decoded with the installed plug-ins (see README, DICOM support)")
        candidate.stack = _check_stack(images, min_slices=2)
    except _Skip as skip:
        prefix = "" if skip.code == "UNSUPPORTED_TRANSFER_SYNTAX" else f"{series.label}: "
        candidate.hard = _Skip(skip.code, prefix + skip.message)
        return candidate

    n = len(candidate.stack.images)
    if candidate.soft is None:
        if n < rules["min_slices"]:
            candidate.soft = _Skip("TOO_FEW_SLICES", f"{series.label}: {n} slices, fewer than "
                                   f"{rules['min_slices']}: a localizer or an incomplete series")
        elif min(first.rows, first.cols) < localizer["min_matrix"]:
            candidate.soft = _Skip("LOCALIZER", f"{series.label}: a {first.rows}x{first.cols} matrix, "
                                   f"smaller than {localizer['min_matrix']}: a localizer")
        elif obliquity > OBLIQUE_LIMIT_DEG:
            candidate.soft = _Skip("OBLIQUE", f"{series.label}: slices {obliquity:.0f} degrees off the {plane} "
                                   f"plane, more than the {OBLIQUE_LIMIT_DEG:g} allowed")
    _score(candidate, rules)
    return candidate


# ---------------------------------------------------------------------------------------------
# Pixels


def _decode(source: Source) -> tuple[np.ndarray, bool]:
    """All frames of a file as (frames, rows, cols), and whether it is MONOCHROME1."""
    with source.open_binary() as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(handle)
        try:
            pixels = ds.pixel_array
        except (NotImplementedError, RuntimeError) as error:
            # pydicom says "does not support" when a plug-in cannot handle this syntax or precision.
            if isinstance(error, NotImplementedError) or "not support" in str(error):
                syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))).name
                raise _Skip("UNSUPPORTED_TRANSFER_SYNTAX", f"{source.name}: {syntax} pixel data cannot be "
                            "decoded with the installed plug-ins (see README, DICOM support)") from None
            raise _Skip("CORRUPT_FILE", f"{source.name}: pixel data cannot be decoded") from None
        except Exception as error:  # noqa: BLE001  (truncated or malformed pixel data)
            raise _Skip("CORRUPT_FILE", f"{source.name}: damaged pixel data ({type(error).__name__})") from None
    inverted = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    return (pixels if pixels.ndim == 3 else pixels[None]), inverted


def _load(candidate: _Candidate) -> tuple[Stack, _Stack, list[str]]:
    """Decode, rescale and stack the chosen images; a damaged file is left out with a warning
    when the slices that remain still form a regular stack."""
    decoded: dict[str, tuple[np.ndarray, bool] | _Skip] = {}
    slices, kept, notes = [], [], []
    for image in candidate.stack.images:
        key = image.source.name
        if key not in decoded:
            try:
                decoded[key] = _decode(image.source)
            except _Skip as skip:
                if skip.code == "UNSUPPORTED_TRANSFER_SYNTAX":
                    raise
                decoded[key] = skip
                notes.append(f"{skip.message}; left out [{skip.code}]")
        if isinstance(decoded[key], _Skip):
            continue
        frames, inverted = decoded[key]
        pixels = frames[image.frame or 0].astype(np.float32) * np.float32(image.slope) + np.float32(image.intercept)
        # MONOCHROME1 shows low values bright; negating keeps "bright is high" for the windowing.
        slices.append(-pixels if inverted else pixels)
        kept.append(image)
    stack = candidate.stack
    if len(kept) < len(stack.images):
        try:
            stack = _check_stack(kept, min_slices=2)
        except _Skip as skip:
            damaged = [im.name for im in stack.images if im not in kept]
            raise _Skip(skip.code, f"{candidate.series.label}: damaged pixel data in {', '.join(damaged[:3])}"
                        f"{' and more' if len(damaged) > 3 else ''}; without it, {skip.message}") from None
    directions = np.stack([stack.normal, kept[0].along_col, kept[0].along_row])
    spacing = (stack.spacing, kept[0].pixel_mm[0], kept[0].pixel_mm[1])
    return Stack(np.stack(slices), directions, spacing), stack, notes


# ---------------------------------------------------------------------------------------------
# The study


def _folder(names: list[str]) -> str:
    """The folder (relative to the exam) that holds a series' files; "." for the exam's own."""
    parents = {os.path.dirname(n) for n in names}
    return (os.path.commonpath(list(parents)) if all(parents) else "") or "."


def _reason(chosen: _Candidate, rivals: int, by_caller: bool) -> str:
    plane, rules = chosen.plane, series_rules()
    parts = [f"{plane} by its slice orientation ({chosen.obliquity:.0f} degrees oblique)"]
    if by_caller:
        parts.append("chosen by the caller")
    else:
        sequence = rules["planes"][plane]["sequence"]
        parts.append(f"MRNet's {plane} sequence is {sequence}; this series: "
                     + (", ".join(chosen.matched) if chosen.matched else "no sequence hint")
                     + f" (score {chosen.score})")
        parts.append(f"{len(chosen.stack.images)} slices; "
                     + (f"the best of {rivals + 1} usable {plane} series" if rivals else f"the only usable {plane} series"))
    return "; ".join(parts)


def _info(candidate: _Candidate, stack: _Stack, loaded: Stack, reason: str) -> SeriesInfo:
    first = stack.images[0]
    return SeriesInfo(
        plane=candidate.plane, source=_folder(sorted({im.source.name for im in stack.images})),
        description=candidate.series.description, n_slices=len(stack.images), reason=reason,
        series_uid=candidate.series.uid, series_number=candidate.series.number,
        matrix=(first.rows, first.cols),
        spacing_mm=tuple(round(float(s), 4) for s in (first.pixel_mm[0], first.pixel_mm[1], stack.spacing)),
        orientation=loaded.orientation, obliquity_deg=round(candidate.obliquity, 2), echo=candidate.echo,
        echo_time_ms=candidate.echo_time, repetition_time_ms=candidate.series.repetition_time)


def _series_problem(candidate: _Candidate, skip: _Skip | None = None) -> Problem:
    skip = skip or candidate.problem
    return Problem(skip.code, candidate.series.uid or None, skip.message)


def read_dicom(sources: list[Source], series: Mapping[str, str] | None = None,
               skipped: list[Problem] | None = None) -> Exam:
    """Read DICOM files (one study, any number of series) into an `Exam`."""
    rules = series_rules()
    skipped = list(skipped or [])
    file_problems: list[Problem] = []
    found: dict[str, _Series] = {}
    for source in sources:
        try:
            attributes, images = _read_images(source)
        except _Skip as skip:
            file_problems.append(Problem(skip.code, source.name, skip.message))
            continue
        found.setdefault(attributes.uid, attributes).images.extend(images)
    warnings_out = [f"{p.source}: {p.message}; skipped [{p.code}]" for p in file_problems if p.code == "CORRUPT_FILE"]

    if not found:
        # Every file damaged, or every image without geometry, says more than "no images".
        codes = {p.code for p in file_problems}
        code = codes.pop() if codes in ({"CORRUPT_FILE"}, {"NO_GEOMETRY"}) else "NO_IMAGES"
        raise ExamError(code, f"no usable DICOM image among {len(sources)} DICOM file(s)",
                        problems=file_problems or [Problem("NO_IMAGES", None, "no DICOM image")])

    candidates = [_evaluate(s, rules) for s in sorted(found.values(), key=lambda s: (s.number or 0, s.uid))]
    chosen_by_caller = dict(series or {})
    for plane, uid in chosen_by_caller.items():
        match = next((c for c in candidates if c.series.uid == uid), None)
        if match is None:
            raise ExamError("SERIES_NOT_FOUND", f"no series {uid} in this exam (series found: "
                            f"{', '.join(c.series.uid for c in candidates)})", uid)
        if match.plane != plane:
            raise ExamError("SERIES_PLANE_MISMATCH", f"{match.series.label} is {match.plane}, not {plane}", uid)
        if match.hard is not None:
            raise ExamError(match.hard.code, match.hard.message, uid, problems=[_series_problem(match, match.hard)])

    volumes, infos, left_out = {}, {}, []
    for plane in PLANES:
        if plane in chosen_by_caller:
            ranked = [c for c in candidates if c.series.uid == chosen_by_caller[plane]]
        else:
            ranked = sorted((c for c in candidates if c.plane == plane and c.problem is None),
                            key=_Candidate.rank)
        for index, candidate in enumerate(ranked):
            try:
                loaded, stack, notes = _load(candidate)
            except _Skip as skip:
                if plane in chosen_by_caller:
                    raise ExamError(skip.code, skip.message, candidate.series.uid,
                                    problems=[_series_problem(candidate, skip)]) from None
                candidate.hard = _Skip(skip.code, skip.message)
                continue
            by_caller = plane in chosen_by_caller
            volumes[plane] = to_mrnet(loaded, plane)
            infos[plane] = _info(candidate, stack, loaded,
                                 _reason(candidate, len(ranked) - 1 - index, by_caller))
            warnings_out += notes
            if stack.duplicates:
                warnings_out.append(f"{plane}: {stack.duplicates} image(s) at duplicate slice positions "
                                    f"left out of {candidate.series.label}")
            if not MIN_SLICES <= len(stack.images) <= MAX_SLICES:
                warnings_out.append(f"{plane}: {len(stack.images)} slices, where MRNet volumes have "
                                    f"{MIN_SLICES} to {MAX_SLICES}")
            if candidate.soft is not None:
                warnings_out.append(f"{plane}: {candidate.soft.message}; used because the caller chose it")
            left_out += [c for c in ranked[index + 1:] if c is not candidate]
            break

    chosen_uids = {info.series_uid for info in infos.values()}
    series_problems = []
    for candidate in candidates:
        if candidate.series.uid in chosen_uids:
            continue
        if candidate.problem is not None:
            series_problems.append(_series_problem(candidate))
        elif candidate in left_out:
            winner = infos[candidate.plane]
            series_problems.append(Problem(
                "NOT_CHOSEN", candidate.series.uid or None,
                f"{candidate.series.label}: {candidate.plane}, {len(candidate.stack.images)} slices, score "
                f"{candidate.score}; series {winner.series_number} '{winner.description}' was chosen"))

    if not volumes:
        if len(series_problems) == 1:
            only = series_problems[0]
            raise ExamError(only.code, only.message, only.source, problems=file_problems + series_problems)
        codes = {p.code for p in series_problems}
        code = codes.pop() if len(codes) == 1 else "NO_USABLE_SERIES"
        raise ExamError(code, f"none of the {len(candidates)} series is usable",
                        problems=file_problems + series_problems)
    return Exam("dicom", volumes, infos, skipped=skipped + file_problems + series_problems, warnings=warnings_out)
