"""Write phantom volumes as DICOM series, studies and NIfTI files, with true patient geometry.

For tests, benchmarks and the web demo's example exam. A phantom volume is an MRNet volume (its
axes point as `registry.PLANE_AXES` says); the writers place it in patient space, centred on the
origin, and store it as a scanner would: each image row along ImageOrientationPatient, each slice
at its ImagePositionPatient, files in acquisition order with InstanceNumbers. Reading what they write
with `read_exam` must give the volume back, whatever options made the files: that is the round trip
the tests check.

The files carry made-up patient attributes (`FAKE_PATIENT`) so that tests can prove no patient
attribute ever reaches an `Exam`, a message or a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from ..registry import PLANE_AXES

FAKE_PATIENT = {"PatientName": "Phantom^Knee", "PatientID": "PHANTOM-7731",
                "PatientBirthDate": "19700101", "PatientSex": "O"}

# The sequence MRNet used in each plane, as a scanner would describe it.
PLANE_SEQUENCE = {
    "sagittal": {"description": "Sag T2 FS", "echo_time": 60.0, "repetition_time": 3000.0, "scan_options": ["FS"]},
    "coronal": {"description": "Cor T1", "echo_time": 12.0, "repetition_time": 600.0, "scan_options": []},
    "axial": {"description": "Ax PD FS", "echo_time": 30.0, "repetition_time": 3500.0, "scan_options": ["FS"]},
}
# Stored values are the volume times this gain: a 12-bit range, as scanners write.
_GAIN = 16

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"


@dataclass(frozen=True)
class SeriesOptions:
    """How to store one series. Defaults give a plain scanner series of the plane's MRNet sequence.

    `tilt_deg` rotates the whole stack about its column direction (an oblique series); `transpose`
    and `flip_columns` store each image transposed or mirrored, with the orientation to match;
    `matrix` 512 upsamples in-plane (same field of view); `rescale` is (slope, intercept);
    `echo_times` writes one echo per volume of a 4D input (echo, slice, row, col); `enhanced`
    writes a single Enhanced MR multi-frame file; `compression` is None, "rle", "jpeg2000" or "jpegls".
    """

    pixel_mm: float = 0.6
    slice_mm: float = 4.0
    tilt_deg: float = 0.0
    transpose: bool = False
    flip_columns: bool = False
    matrix: int = 256
    bits: int = 16
    signed: bool = False
    rescale: tuple[float, float] | None = None
    big_endian: bool = False
    compression: str | None = None
    echo_times: Sequence[float] | None = None
    enhanced: bool = False
    shuffle_names: bool = False
    reverse_instance_numbers: bool = False
    description: str | None = None
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "OTHER")
    series_number: int = 1


@dataclass
class Study:
    """What the series of one exam share. With a `seed`, UIDs are drawn from it and a study is
    reproducible; without one they are unique, so series written apart never collide."""

    seed: int | None = None
    uid: str = ""
    frame_of_reference: str = ""
    _counter: int = field(default=0, repr=False)

    def __post_init__(self):
        self.uid = self.uid or self.new_uid("study")
        self.frame_of_reference = self.frame_of_reference or self.new_uid("frame")

    def new_uid(self, what: str) -> str:
        self._counter += 1
        if self.seed is None:
            return generate_uid()
        return generate_uid(entropy_srcs=["mrnet-phantom", str(self.seed), what, str(self._counter)])


# ---------------------------------------------------------------------------------------------
# Geometry: where each voxel of an MRNet volume sits in patient space


def _rotation(axis, degrees: float) -> np.ndarray:
    """Rodrigues' rotation about a unit axis."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def volume_axes(plane: str, tilt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (slice, row, col) directions of an MRNet volume of `plane`, tilted about its column axis."""
    axes = PLANE_AXES[plane]
    turn = _rotation(axes.col, tilt_deg)
    return tuple(turn @ np.asarray(v, float) for v in (axes.slice, axes.row, axes.col))


def _upsample(volume: np.ndarray, matrix: int) -> np.ndarray:
    """A finer matrix over the same field of view: each pixel becomes a block of pixels."""
    factor, remainder = divmod(matrix, volume.shape[-1])
    if remainder or factor < 1:
        raise ValueError(f"matrix {matrix} must be a multiple of {volume.shape[-1]}")
    return volume.repeat(factor, axis=-2).repeat(factor, axis=-1)


@dataclass(frozen=True)
class _Layout:
    """How the images of a series are stored relative to the MRNet volume."""

    along_row: np.ndarray  # ImageOrientationPatient[:3]
    along_col: np.ndarray  # ImageOrientationPatient[3:]
    positions: np.ndarray  # (S, 3) ImagePositionPatient of each slice
    transpose: bool
    flip_columns: bool

    def image(self, pixels: np.ndarray) -> np.ndarray:
        out = pixels.T if self.transpose else pixels
        return out[:, ::-1] if self.flip_columns else out


def _layout(plane: str, shape: tuple[int, int, int], options: SeriesOptions) -> _Layout:
    slices, rows, cols = shape
    pixel = options.pixel_mm * 256 / rows
    s, r, c = volume_axes(plane, options.tilt_deg)
    # MRNet indices of every stored pixel, transformed exactly as the pixels are.
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    probe = _Layout(r, c, np.zeros((slices, 3)), options.transpose, options.flip_columns)
    i, j = probe.image(i), probe.image(j)

    def direction(di, dj):
        return di * r + dj * c

    along_row = direction(i[0, 1] - i[0, 0], j[0, 1] - j[0, 0])
    along_col = direction(i[1, 0] - i[0, 0], j[1, 0] - j[0, 0])
    centre = np.array([(rows - 1) / 2, (cols - 1) / 2])
    first_pixel = pixel * ((i[0, 0] - centre[0]) * r + (j[0, 0] - centre[1]) * c)
    positions = np.array([first_pixel + (k - (slices - 1) / 2) * options.slice_mm * s for k in range(slices)])
    return _Layout(along_row, along_col, positions, options.transpose, options.flip_columns)


def _stored_values(volume: np.ndarray, options: SeriesOptions) -> np.ndarray:
    """Scanner values for a uint8 volume: 12-bit (or 8-bit), through the inverse of the rescale."""
    physical = volume.astype(np.float64) * (_GAIN if options.bits == 16 else 1)
    if options.rescale:
        slope, intercept = options.rescale
        physical = (physical - intercept) / slope
    dtype = np.dtype(f"{'i' if options.signed else 'u'}{options.bits // 8}")
    info = np.iinfo(dtype)
    stored = np.rint(physical)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError(f"rescale {options.rescale} puts values outside {dtype}")
    return stored.astype(dtype)


def _bits_stored(stored: np.ndarray, options: SeriesOptions) -> int:
    """12 bits where the values fit, as most MR scanners write, else all the bits allocated."""
    if options.bits == 8:
        return 8
    low, high = (-(2**11), 2**11 - 1) if options.signed else (0, 2**12 - 1)
    return 12 if low <= stored.min() and stored.max() <= high else 16


# ---------------------------------------------------------------------------------------------
# DICOM


def _dataset(study: Study, options: SeriesOptions, plane: str, series_uid: str, sop_class: str,
             shape: tuple[int, int], bits_stored: int) -> Dataset:
    """The attributes every image of the series shares (no position, orientation or pixels)."""
    sequence = PLANE_SEQUENCE[plane]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian if options.big_endian else ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    for keyword, value in FAKE_PATIENT.items():
        setattr(ds, keyword, value)
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study.frame_of_reference
    ds.StudyDate = ds.SeriesDate = "20240101"
    ds.Modality = "MR"
    ds.Manufacturer = "mrnet-toolkit phantom"
    ds.SeriesNumber = options.series_number
    ds.SeriesDescription = options.description if options.description is not None else sequence["description"]
    ds.ImageType = list(options.image_type)
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "SK"
    ds.ScanOptions = sequence["scan_options"] or ""
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = sequence["repetition_time"]
    ds.SliceThickness = options.slice_mm
    ds.SpacingBetweenSlices = options.slice_mm
    ds.PatientPosition = "FFS"
    ds.Rows, ds.Columns = shape
    ds.PixelSpacing = [options.pixel_mm * 256 / options.matrix] * 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = options.bits
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if options.signed else 0
    if options.rescale:
        ds.RescaleSlope, ds.RescaleIntercept = options.rescale
        ds.RescaleType = "US"
    return ds


def _set_pixels(ds, images: np.ndarray, options: SeriesOptions) -> None:
    """Store pixels (frames, rows, cols) uncompressed in the dataset's byte order, or compressed."""
    data = images if images.shape[0] > 1 else images[0]
    if options.compression:
        syntax = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}[options.compression]
        ds.compress(syntax, data, generate_instance_uid=False)
        return
    order = ">" if options.big_endian else "<"
    ds.PixelData = data.astype(data.dtype.newbyteorder(order)).tobytes()
    ds["PixelData"].VR = "OW" if options.bits == 16 else "OB"


def _save(ds, path: Path, options: SeriesOptions) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if options.big_endian:
        ds.save_as(path, enforce_file_format=True, little_endian=False, implicit_vr=False)
    else:
        ds.save_as(path, enforce_file_format=True)


def write_series(volume: np.ndarray, plane: str, folder: str | Path, options: SeriesOptions = SeriesOptions(),
                 study: Study | None = None, series_uid: str | None = None,
                 first_instance: int = 1) -> tuple[str, list[Path]]:
    """Write an MRNet volume (uint8, S x 256 x 256; or echo x S x 256 x 256 with `echo_times`) as
    one DICOM series of `plane` in `folder`. Returns the SeriesInstanceUID and the files written."""
    study = study or Study()
    folder = Path(folder)
    volume = np.asarray(volume)
    echoes = volume if volume.ndim == 4 else volume[None]
    echo_times = list(options.echo_times or [PLANE_SEQUENCE[plane]["echo_time"]])
    if len(echo_times) != echoes.shape[0]:
        raise ValueError(f"{len(echo_times)} echo times for {echoes.shape[0]} echo volume(s)")
    echoes = _upsample(echoes, options.matrix)
    layout = _layout(plane, echoes.shape[1:], options)
    stored = _stored_values(echoes, options)
    images = np.stack([[layout.image(pixels) for pixels in echo] for echo in stored])  # echo, slice, r, c
    bits_stored = _bits_stored(stored, options)
    series_uid = series_uid or study.new_uid("series")
    orientation = [round(float(v), 6) for v in (*layout.along_row, *layout.along_col)]
    rng = np.random.default_rng([study.seed or 0, options.series_number])
    n_echoes, n_slices = images.shape[:2]

    if options.enhanced:
        ds = _dataset(study, options, plane, series_uid, ENHANCED_MR_IMAGE_STORAGE, images.shape[2:], bits_stored)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = study.new_uid("image")
        ds.InstanceNumber = 1
        ds.NumberOfFrames = n_echoes * n_slices
        shared = Dataset()
        shared.PixelMeasuresSequence = [Dataset()]
        shared.PixelMeasuresSequence[0].PixelSpacing = ds.PixelSpacing
        shared.PixelMeasuresSequence[0].SliceThickness = options.slice_mm
        shared.PlaneOrientationSequence = [Dataset()]
        shared.PlaneOrientationSequence[0].ImageOrientationPatient = orientation
        shared.MRTimingAndRelatedParametersSequence = [Dataset()]
        shared.MRTimingAndRelatedParametersSequence[0].RepetitionTime = ds.RepetitionTime
        if options.rescale:
            shared.PixelValueTransformationSequence = [Dataset()]
            item = shared.PixelValueTransformationSequence[0]
            item.RescaleSlope, item.RescaleIntercept = options.rescale
            item.RescaleType = "US"
        ds.SharedFunctionalGroupsSequence = [shared]
        frames = []
        for e in range(n_echoes):
            for k in range(n_slices):
                frame = Dataset()
                frame.PlanePositionSequence = [Dataset()]
                frame.PlanePositionSequence[0].ImagePositionPatient = [round(float(v), 4) for v in layout.positions[k]]
                frame.FrameContentSequence = [Dataset()]
                frame.FrameContentSequence[0].InStackPositionNumber = k + 1
                frame.MREchoSequence = [Dataset()]
                frame.MREchoSequence[0].EffectiveEchoTime = echo_times[e]
                frames.append(frame)
        ds.PerFrameFunctionalGroupsSequence = frames
        _set_pixels(ds, images.reshape(-1, *images.shape[2:]), options)
        path = folder / (f"{rng.integers(16**8):08x}" if options.shuffle_names else "enhanced.dcm")
        _save(ds, path, options)
        return series_uid, [path]

    # Scanners number images slice by slice, echoes interleaved, from the first position.
    order = [(k, e) for k in range(n_slices) for e in range(n_echoes)]
    instance_numbers = list(range(first_instance, first_instance + len(order)))
    if options.reverse_instance_numbers:
        instance_numbers.reverse()
    names = [f"IM{n:05d}.dcm" for n in instance_numbers]
    if options.shuffle_names:
        names = [f"{v:08x}" for v in rng.choice(16**8, size=len(order), replace=False)]
    paths = []
    for (k, e), number, name in zip(order, instance_numbers, names):
        ds = _dataset(study, options, plane, series_uid, MR_IMAGE_STORAGE, images.shape[2:], bits_stored)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = study.new_uid("image")
        ds.InstanceNumber = number
        ds.ImageOrientationPatient = orientation
        ds.ImagePositionPatient = [round(float(v), 4) for v in layout.positions[k]]
        ds.EchoTime = echo_times[e]
        ds.EchoNumbers = e + 1
        _set_pixels(ds, images[e, k][None], options)
        _save(ds, folder / name, options)
        paths.append(folder / name)
    return series_uid, paths


def write_localizer(volumes: dict[str, np.ndarray], folder: str | Path, study: Study | None = None,
                    series_number: int = 99) -> tuple[str, list[Path]]:
    """A three-plane localizer: three images per plane, one series, ImageType LOCALIZER."""
    study = study or Study()
    uid, paths = study.new_uid("series"), []
    options = SeriesOptions(description="3-Plane Loc", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                            series_number=series_number, slice_mm=10.0, pixel_mm=1.2)
    for plane, volume in volumes.items():
        middle = volume.shape[0] // 2
        _, written = write_series(volume[middle - 1:middle + 2], plane, Path(folder) / plane, options, study,
                                  series_uid=uid, first_instance=len(paths) + 1)
        paths += written
    return uid, paths


def write_study(volumes: dict[str, np.ndarray], folder: str | Path, study: Study | None = None,
                options: dict[str, SeriesOptions] | None = None, localizer: bool = False) -> dict[str, str]:
    """Write each plane's volume as a series of one study (a subfolder per series, as PACS export
    does), optionally with a three-plane localizer. Returns {plane: SeriesInstanceUID}."""
    study = study or Study()
    folder = Path(folder)
    uids = {}
    for number, (plane, volume) in enumerate(volumes.items(), start=2):
        plane_options = replace((options or {}).get(plane, SeriesOptions()), series_number=number)
        uids[plane], _ = write_series(volume, plane, folder / f"S{number:04d}", plane_options, study)
    if localizer:
        write_localizer(volumes, folder / "S0001", study, series_number=1)
    return uids


# ---------------------------------------------------------------------------------------------
# NIfTI


def write_nifti(volume: np.ndarray, plane: str, path: str | Path, pixel_mm: float = 0.6, slice_mm: float = 4.0,
                tilt_deg: float = 0.0, canonical: bool = False) -> Path:
    """Write an MRNet volume as NIfTI (.nii or .nii.gz), slices along the third array axis as
    converters such as dcm2niix write them; `canonical` reorders the axes to RAS instead."""
    path = Path(path)
    slices, rows, cols = volume.shape
    s, r, c = volume_axes(plane, tilt_deg)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = r * pixel_mm, c * pixel_mm, s * slice_mm  # array axes (row, col, slice)
    lps[:3, 3] = -lps[:3, :3] @ [(rows - 1) / 2, (cols - 1) / 2, (slices - 1) / 2]  # centred on the origin
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # NIfTI is RAS, DICOM and the registry LPS
    data = (np.transpose(volume, (1, 2, 0)).astype(np.int16)) * _GAIN
    image = nib.Nifti1Image(data, ras)
    image.set_qform(ras, code=1)
    image.set_sform(ras, code=1)
    if canonical:
        image = nib.as_closest_canonical(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def round_trip_error(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """How far a volume read back is from the one written: mean absolute difference in grey
    levels, and correlation. Shapes must match."""
    if got.shape != want.shape:
        raise ValueError(f"shapes differ: {got.shape} read, {want.shape} written")
    a, b = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    return float(np.abs(a - b).mean()), float(np.corrcoef(a, b)[0, 1])
