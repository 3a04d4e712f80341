"""Reading DICOM studies: the real knee series, phantom studies written with pydicom, and every error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGExtended12Bit, MPEG2MPML, generate_uid

from mrnet.infer import Exam, read_exam
from mrnet.infer.errors import ExamReadError
from mrnet.infer.reading import ExamError
from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
from mrnet.infer.registry import PLANES
from mrnet.infer.synthetic.scanner_files import (FAKE_PATIENT, SeriesOptions, Study, round_trip_error, write_localizer,
                                         write_series, write_study)


@pytest.fixture(scope="module")
def volumes() -> dict[str, np.ndarray]:
    return make_exam(seed=3, config=PhantomConfig(slice_range=(17, 20)))[0]


@pytest.fixture
def real_series(tmp_path, shared_dicom):
    """A writable copy of the shared real knee series (the original is read-only)."""
    return shutil.copytree(shared_dicom, tmp_path / "real")


def assert_round_trip(got, want, max_mean_abs=3.0, min_corr=0.98):
    difference, correlation = round_trip_error(got, want)
    assert got.dtype == np.uint8
    assert difference < max_mean_abs and correlation > min_corr, (difference, correlation)


def read_error(path, **kwargs) -> ExamError:
    with pytest.raises(ExamReadError) as caught:
        read_exam(path, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------
# The real series: GE, Explicit VR Big Endian, 8 echoes x 24 oblique sagittal slices


def _real_echo_images(folder, echo_number):
    """(LPS x of the slice, raw pixels) of one echo's files, read here without the reader."""
    found = []
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        if int(ds.EchoNumbers) == echo_number:
            found.append((float(ds.ImagePositionPatient[0]), ds.pixel_array.astype(np.float64)))
    return sorted(found, key=lambda item: item[0])


def test_real_series_reads_as_sagittal_with_its_echo_recorded(shared_dicom):
    exam = read_exam(shared_dicom)
    assert isinstance(exam, Exam) and exam.source_kind == "dicom"
    assert exam.planes == ("sagittal",) and exam.missing_planes == ("axial", "coronal")
    volume = exam.volumes["sagittal"]
    assert volume.shape == (24, 256, 256) and volume.dtype == np.uint8
    assert volume.min() == 0 and volume.max() == 255
    info = exam.sources["sagittal"]
    assert info.series_number == 8 and info.n_slices == 24 and info.matrix == (256, 256)
    assert info.spacing_mm == (0.625, 0.625, 4.0)
    assert 5 < info.obliquity_deg < 15  # oblique sagittal, still sagittal
    # Rows run inferior, columns posterior, slices (sorted along the normal) to the patient's right.
    assert info.orientation == "IPR"
    # Eight echoes, 6.3 to 50.5 ms: the one closest to a T2 fat-sat echo time (60 ms) is the 8th.
    assert info.echo.echoes == 8 and info.echo.number == 8
    assert info.echo.echo_time_ms == pytest.approx(50.496)
    assert "60 ms" in info.echo.rule and "sagittal" in info.reason
    assert exam.skipped == [] and exam.warnings == []


def test_real_series_slices_run_right_to_left_and_images_keep_anterior_left_superior_up(shared_dicom):
    volume = read_exam(shared_dicom).volumes["sagittal"].astype(np.float64)
    raw = _real_echo_images(shared_dicom, 8)  # sorted by LPS x: patient right (small x) first
    # Image rows of this series run inferior and columns posterior (ImageOrientationPatient), which
    # is already MRNet's sagittal layout: each slice must match its raw image, not a flipped one.
    for k in (0, 11, 23):
        image = raw[k][1]
        assert np.corrcoef(volume[k].ravel(), image.ravel())[0, 1] > 0.99
        assert np.corrcoef(volume[k].ravel(), image[::-1].ravel())[0, 1] < 0.9
        assert np.corrcoef(volume[k].ravel(), image[:, ::-1].ravel())[0, 1] < 0.9


def test_real_series_reads_the_same_whatever_file_names_and_instance_numbers(real_series, shared_dicom):
    expected = read_exam(shared_dicom).volumes["sagittal"]
    paths = sorted(real_series.iterdir())
    rng = np.random.default_rng(0)
    for path, name in zip(paths, rng.permutation(len(paths))):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = 1000 - int(ds.InstanceNumber)
        ds.save_as(real_series / f"x{name:04d}", enforce_file_format=True)  # keeps Big Endian
        path.unlink()
    assert pydicom.dcmread(next(real_series.iterdir())).file_meta.TransferSyntaxUID.name == "Explicit VR Big Endian"
    assert np.array_equal(read_exam(real_series).volumes["sagittal"], expected)


def test_real_series_with_a_corrupt_file_a_stray_file_and_a_duplicate_is_still_read(real_series):
    (real_series / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(1).bytes(4000))
    (real_series / "notes.txt").write_text("exported by a PACS")
    shutil.copy(real_series / "E3655S8I016.MR.dcm", real_series / "copy_of_16")  # echo 8, slice 2
    exam = read_exam(real_series)
    assert exam.planes == ("sagittal",) and exam.volumes["sagittal"].shape == (24, 256, 256)
    codes = {(p.code, p.source) for p in exam.skipped}
    assert ("CORRUPT_FILE", "junk.dcm") in codes and ("NOT_DICOM", "notes.txt") in codes
    assert any("junk.dcm" in w and "CORRUPT_FILE" in w for w in exam.warnings)
    assert any("duplicate" in w for w in exam.warnings)


def test_a_damaged_end_slice_is_left_out_with_a_warning(volumes, tmp_path):
    _, paths = write_series(volumes["axial"], "axial", tmp_path)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) - 5000])  # pixel data cut short: the header still reads
    exam = read_exam(tmp_path)
    assert exam.sources["axial"].n_slices == len(paths) - 1
    assert any(paths[0].name in w and "CORRUPT_FILE" in w for w in exam.warnings)


def test_a_damaged_middle_slice_is_named_in_the_error(volumes, tmp_path):
    _, paths = write_series(volumes["axial"], "axial", tmp_path)
    data = paths[6].read_bytes()
    paths[6].write_bytes(data[: len(data) - 5000])
    error = read_error(tmp_path)
    assert error.code == "INCONSISTENT_SPACING" and f"damaged pixel data in {paths[6].name}" in error.message


# ---------------------------------------------------------------------------------------------
# Orientation conventions, checked on hand-made series (no scanner_files geometry involved)

# Per plane: how the hand-made images are stored (ImageOrientationPatient: where columns, then
# rows, run), the axis the slices step along, where the marker goes in the stored image and on
# which slice, and where MRNet's conventions put it (registry.PLANE_AXES, in words):
#   axial: anterior at top, patient right on image left, slices superior -> inferior;
#   coronal: superior at top, patient right on image left, slices posterior -> anterior;
#   sagittal: superior at top, anterior on the left, slices patient right -> left.
# The marker sits in the patient's right-anterior-superior corner of the stack.
HAND_MADE = {
    # columns to patient left, rows to posterior; slices stored inferior -> superior.
    "axial": {"iop": (1, 0, 0, 0, 1, 0), "step": (0, 0, 1), "marker": (0, 0), "slice": "last",
              "expected": ("first", 0, 0)},
    # transposed: columns to inferior, rows to patient left; slices stored anterior -> posterior.
    "coronal": {"iop": (0, 0, -1, 1, 0, 0), "step": (0, 1, 0), "marker": (0, 0), "slice": "first",
                "expected": ("last", 0, 0)},
    # columns to anterior (so the most anterior pixel is the last column), rows to inferior;
    # slices stored right -> left.
    "sagittal": {"iop": (0, -1, 0, 0, 0, -1), "step": (1, 0, 0), "marker": (0, 255), "slice": "first",
                 "expected": ("first", 0, 0)},
}


def _hand_made_series(folder, plane, n_slices=17, size=256):
    spec = HAND_MADE[plane]
    uid = generate_uid()
    marker_slice = 0 if spec["slice"] == "first" else n_slices - 1
    for k in range(n_slices):
        # A flat background, so that the marker is the only bright voxel after windowing.
        image = np.full((size, size), 100, dtype=np.uint16)
        if k == marker_slice:
            image[spec["marker"]] = 4000
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.InstanceNumber, ds.Modality = uid, k + 1, "MR"
        ds.ImageOrientationPatient = list(spec["iop"])
        ds.ImagePositionPatient = [3.0 * k * s for s in spec["step"]]
        ds.PixelSpacing = [0.5, 0.5]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = image.tobytes()
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)


@pytest.mark.parametrize("plane", PLANES)
def test_the_right_anterior_superior_corner_lands_where_mrnet_puts_it(plane, tmp_path):
    _hand_made_series(tmp_path, plane)
    volume = read_exam(tmp_path).volumes[plane]
    where = np.unravel_index(np.argmax(volume), volume.shape)
    slice_, row, col = HAND_MADE[plane]["expected"]
    assert where == (0 if slice_ == "first" else volume.shape[0] - 1, row, col)


# ---------------------------------------------------------------------------------------------
# Round trips: phantom volume -> DICOM study -> read_exam -> the same volume

ROUND_TRIPS = {
    "plain": SeriesOptions(),
    "transposed_and_mirrored": SeriesOptions(transpose=True, flip_columns=True),
    "shuffled_names_reversed_instances": SeriesOptions(shuffle_names=True, reverse_instance_numbers=True),
    "oblique_15_degrees": SeriesOptions(tilt_deg=15),
    "rle": SeriesOptions(compression="rle"),
    "rescale_slope_intercept": SeriesOptions(rescale=(0.5, -100.0)),
    "signed_with_intercept": SeriesOptions(signed=True, rescale=(1.0, 2048.0)),
    "big_endian": SeriesOptions(big_endian=True),
    "8_bit": SeriesOptions(bits=8),
    "enhanced_multi_frame": SeriesOptions(enhanced=True),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_of_a_three_plane_study(name, volumes, tmp_path):
    options = ROUND_TRIPS[name]
    uids = write_study(volumes, tmp_path, options={p: options for p in PLANES})
    exam = read_exam(tmp_path)
    assert exam.planes == PLANES
    for plane in PLANES:
        assert_round_trip(exam.volumes[plane], volumes[plane])
        assert exam.sources[plane].series_uid == uids[plane]
        assert exam.sources[plane].n_slices == volumes[plane].shape[0]
    if name == "oblique_15_degrees":
        assert all(exam.sources[p].obliquity_deg == pytest.approx(15, abs=0.01) for p in PLANES)


@pytest.mark.parametrize("compression", ["jpeg2000", "jpegls"])
def test_round_trip_of_lossless_jpeg_series(compression, volumes, tmp_path):
    write_series(volumes["coronal"], "coronal", tmp_path, SeriesOptions(compression=compression))
    assert_round_trip(read_exam(tmp_path).volumes["coronal"], volumes["coronal"])


@pytest.mark.parametrize("syntax", ["JPEGLosslessProcess14_1", "JPEGLosslessProcess14"])
def test_round_trip_of_jpeg_lossless_series(syntax, volumes, tmp_path):
    gdcm = pytest.importorskip("gdcm")  # python-gdcm both writes these files here and decodes them
    _, paths = write_series(volumes["coronal"], "coronal", tmp_path)
    for path in paths:
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
        change.SetInput(reader.GetImage())
        assert change.Change()
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()
    assert "JPEG Lossless" in pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID.name
    assert_round_trip(read_exam(tmp_path).volumes["coronal"], volumes["coronal"])


def test_round_trip_of_a_512_matrix_keeps_the_field_of_view(volumes, tmp_path):
    write_study(volumes, tmp_path, options={p: SeriesOptions(matrix=512) for p in PLANES})
    exam = read_exam(tmp_path)
    for plane in PLANES:
        assert exam.sources[plane].matrix == (512, 512)
        assert_round_trip(exam.volumes[plane], volumes[plane], max_mean_abs=5.0, min_corr=0.97)


def test_a_rectangular_field_of_view_is_kept_whole_and_centred(volumes, tmp_path):
    # Axial images stored as MRNet shows them (rows posterior, columns left), cut to 192 columns:
    # the 256 x 0.6 mm square that holds them keeps the pixel size, the image sits in its middle.
    _, paths = write_series(volumes["axial"], "axial", tmp_path)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, :192]).tobytes()
        ds.Columns = 192
        ds.save_as(path, enforce_file_format=True)
    volume = read_exam(tmp_path).volumes["axial"]
    assert volume.shape == volumes["axial"].shape
    assert (volume[:, :, :32] == 0).all() and (volume[:, :, 224:] == 0).all()
    assert_round_trip(volume[:, :, 32:224], volumes["axial"][:, :, :192])


def test_multi_echo_series_reads_the_echo_closest_to_mrnets_sequence(volumes, tmp_path):
    sagittal = volumes["sagittal"]
    echoes = np.stack([255 - sagittal, sagittal, 255 - sagittal])  # only echo 2 is the phantom
    write_series(echoes, "sagittal", tmp_path, SeriesOptions(echo_times=(15.0, 55.0, 100.0)))
    exam = read_exam(tmp_path)
    assert_round_trip(exam.volumes["sagittal"], sagittal)
    echo = exam.sources["sagittal"].echo
    assert (echo.number, echo.echo_time_ms, echo.echoes) == (2, 55.0, 3)


def test_multi_echo_enhanced_file_reads_one_echo(volumes, tmp_path):
    axial = volumes["axial"]
    echoes = np.stack([axial, 255 - axial])
    write_series(echoes, "axial", tmp_path, SeriesOptions(echo_times=(28.0, 90.0), enhanced=True))
    exam = read_exam(tmp_path / "enhanced.dcm")  # a single multi-frame file
    assert_round_trip(exam.volumes["axial"], axial)
    assert exam.sources["axial"].echo.echo_time_ms == 28.0


# ---------------------------------------------------------------------------------------------
# Choosing series


def test_study_with_localizer_decoy_and_stray_file_chooses_mrnets_sequences(volumes, tmp_path):
    study = Study(seed=4)
    uids = write_study(volumes, tmp_path, study=study, localizer=True)
    bigger = np.concatenate([volumes["coronal"], volumes["coronal"][:4]])
    decoy, _ = write_series(bigger, "coronal", tmp_path / "S0009", SeriesOptions(
        description="Cor PD FS", series_number=9), study)
    (tmp_path / "DICOMDIR.txt").write_text("not an index")
    exam = read_exam(tmp_path)
    assert {p: exam.sources[p].series_uid for p in PLANES} == uids
    assert "described as T1" in exam.sources["coronal"].reason
    codes = {p.source: p.code for p in exam.skipped}
    loc_uid = pydicom.dcmread(next((tmp_path / "S0001").rglob("*.dcm"))).SeriesInstanceUID
    assert codes[loc_uid] == "LOCALIZER"
    assert codes[decoy] == "NOT_CHOSEN" and codes["DICOMDIR.txt"] == "NOT_DICOM"


def test_among_equal_series_the_larger_wins(volumes, tmp_path):
    study = Study(seed=5)
    coronal = volumes["coronal"]
    small, _ = write_series(coronal, "coronal", tmp_path / "a", SeriesOptions(series_number=3), study)
    large, _ = write_series(np.concatenate([coronal, coronal[:3]]), "coronal", tmp_path / "b",
                            SeriesOptions(series_number=4), study)
    exam = read_exam(tmp_path)
    assert exam.sources["coronal"].series_uid == large
    assert {p.source: p.code for p in exam.skipped} == {small: "NOT_CHOSEN"}


def test_the_caller_can_choose_a_series(volumes, tmp_path):
    study = Study(seed=6)
    write_study({"coronal": volumes["coronal"]}, tmp_path, study=study)
    decoy, _ = write_series(volumes["coronal"][::-1], "coronal", tmp_path / "S0009",
                            SeriesOptions(description="Cor PD FS", series_number=9), study)
    exam = read_exam(tmp_path, series={"coronal": decoy})
    assert exam.sources["coronal"].series_uid == decoy and "caller" in exam.sources["coronal"].reason
    assert_round_trip(exam.volumes["coronal"], volumes["coronal"][::-1])


def test_the_caller_can_force_a_short_series_with_a_warning(volumes, tmp_path):
    uid, _ = write_series(volumes["axial"][:6], "axial", tmp_path)
    assert read_error(tmp_path).code == "TOO_FEW_SLICES"
    exam = read_exam(tmp_path, series={"axial": uid})
    assert exam.sources["axial"].n_slices == 6
    assert any("6 slices" in w and "caller" in w for w in exam.warnings)


def test_an_oblique_series_is_used_up_to_the_limit_only(volumes, tmp_path):
    write_series(volumes["sagittal"], "sagittal", tmp_path / "ok", SeriesOptions(tilt_deg=30))
    assert read_exam(tmp_path / "ok").sources["sagittal"].obliquity_deg == pytest.approx(30, abs=0.01)
    write_series(volumes["sagittal"], "sagittal", tmp_path / "too", SeriesOptions(tilt_deg=40))
    assert read_error(tmp_path / "too").code == "OBLIQUE"


def test_no_patient_attribute_reaches_the_exam_or_its_errors(volumes, tmp_path):
    write_study(volumes, tmp_path / "good", localizer=True)
    text = json.dumps(read_exam(tmp_path / "good").to_dict())
    write_series(volumes["axial"][:5], "axial", tmp_path / "bad")
    error = read_error(tmp_path / "bad")
    text += error.one_line() + repr(error.problems)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
        assert FAKE_PATIENT[keyword] not in text
    assert "phantom" not in text.lower()


# ---------------------------------------------------------------------------------------------
# Errors: every code from an input that produces it


def _rewrite(path, **attributes):
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def test_inconsistent_orientation(volumes, tmp_path):
    _, paths = write_series(volumes["axial"], "axial", tmp_path)
    turn = np.radians(10)
    _rewrite(paths[5], ImageOrientationPatient=[1, 0, 0, 0, float(np.cos(turn)), float(np.sin(turn))])
    error = read_error(tmp_path)
    assert error.code == "INCONSISTENT_ORIENTATION" and paths[5].name in error.message


def test_inconsistent_matrix(volumes, tmp_path):
    _, paths = write_series(volumes["axial"], "axial", tmp_path)
    _rewrite(paths[3], PixelSpacing=[0.7, 0.7])
    assert read_error(tmp_path).code == "INCONSISTENT_MATRIX"


def test_inconsistent_spacing_names_the_gap(volumes, tmp_path):
    _, paths = write_series(volumes["coronal"], "coronal", tmp_path)
    paths[8].unlink()
    error = read_error(tmp_path)
    assert error.code == "INCONSISTENT_SPACING"
    assert paths[7].name in error.message and paths[9].name in error.message and "missing" in error.message


def test_too_few_slices(volumes, tmp_path):
    write_series(volumes["sagittal"][:5], "sagittal", tmp_path)
    assert read_error(tmp_path).code == "TOO_FEW_SLICES"


def test_only_a_localizer(volumes, tmp_path):
    write_localizer(volumes, tmp_path)
    assert read_error(tmp_path).code == "LOCALIZER"


def test_no_usable_series_carries_every_problem(volumes, tmp_path):
    write_series(volumes["sagittal"][:5], "sagittal", tmp_path / "a", SeriesOptions(series_number=1))
    write_series(volumes["axial"], "axial", tmp_path / "b", SeriesOptions(tilt_deg=40, series_number=2))
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 300)
    error = read_error(tmp_path)
    assert error.code == "NO_USABLE_SERIES" and error.exit_code == 2
    assert {p.code for p in error.problems} == {"TOO_FEW_SLICES", "OBLIQUE", "CORRUPT_FILE"}
    lines = error.one_line().splitlines()
    assert len(lines) == 4 and "[NO_USABLE_SERIES]" in lines[0] and any("junk.dcm" in line for line in lines)


def test_no_images(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    (tmp_path / "empty").mkdir()
    assert read_error(tmp_path).code == "NO_IMAGES"


def test_only_corrupt_files(tmp_path):
    for n in range(3):
        (tmp_path / f"{n}.dcm").write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * (n + 1))
    error = read_error(tmp_path)
    assert error.code == "CORRUPT_FILE" and len(error.problems) == 3


def test_images_without_geometry(volumes, tmp_path):
    _, paths = write_series(volumes["axial"], "axial", tmp_path)
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.ImageOrientationPatient
        ds.save_as(path, enforce_file_format=True)
    assert read_error(tmp_path).code == "NO_GEOMETRY"


def _series_with_foreign_pixel_data(folder, syntax, fragments, rows, cols, bits_stored, n=12):
    uid = generate_uid()
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.InstanceNumber, ds.Modality = uid, k + 1, "MR"
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [3.0 * k, 0, 0]
        ds.PixelSpacing = [1, 1]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
        ds.save_as(folder / f"img{k:02d}", enforce_file_format=True)


def test_unsupported_transfer_syntax_without_any_decoder(tmp_path):
    _series_with_foreign_pixel_data(tmp_path, MPEG2MPML, [b"\x00\x00\x01\xb3" + bytes(60)], 64, 64, 8)
    error = read_error(tmp_path)
    assert error.code == "UNSUPPORTED_TRANSFER_SYNTAX" and "img" in error.message and "MPEG2" in error.message


def test_unsupported_transfer_syntax_a_decoder_refuses(tmp_path):
    # 12-bit JPEG Extended (a real stream from pydicom's test data): GDCM and Pillow both refuse it.
    source = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))
    frames = list(pydicom.encaps.generate_fragmented_frames(source.PixelData))
    _series_with_foreign_pixel_data(tmp_path, JPEGExtended12Bit, [b"".join(frames[0])], source.Rows,
                                    source.Columns, 12)
    error = read_error(tmp_path)
    assert error.code == "UNSUPPORTED_TRANSFER_SYNTAX" and "img" in error.message and "JPEG Extended" in error.message


@pytest.mark.parametrize("sample", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                    "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm",
                                    "JPEGLSNearLossless_16.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_jpeg.dcm",
                                    "image_dfl.dcm"])
def test_the_transfer_syntaxes_listed_in_the_readme_decode(sample):
    from mrnet.infer.reading.archive import Source
    from mrnet.infer.reading.dicom_stack import decode_frames

    frames, _ = decode_frames(Source(sample, path=get_testdata_file(sample)))
    assert frames.ndim == 3 and frames.size > 0 and frames.std() > 0
