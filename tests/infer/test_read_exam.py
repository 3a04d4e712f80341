"""read_exam as the CLI and the app call it: every kind of input, zips and their dangers, the Exam."""

from __future__ import annotations

import json
import os
import stat
import zipfile

import numpy as np
import pytest

from mrnet.infer import Exam, read_exam
from mrnet.infer.reading import archive
from mrnet.infer.errors import ExamReadError, InputError
from mrnet.infer.reading import ExamError, Problem
from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
from mrnet.infer.registry import PLANES
from mrnet.infer.synthetic.scanner_files import SeriesOptions, round_trip_error, write_nifti, write_series, write_study


@pytest.fixture(scope="module")
def volumes() -> dict[str, np.ndarray]:
    return make_exam(seed=3, config=PhantomConfig(slice_range=(17, 20)))[0]


@pytest.fixture
def study(volumes, tmp_path):
    """A three-plane DICOM study in folders, as a PACS exports it."""
    folder = tmp_path / "study"
    write_study(volumes, folder)
    return folder


def zip_folder(folder, path, extra=(), compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression, compresslevel=1) as out:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                out.write(file, file.relative_to(folder).as_posix())
        for name, data in extra:
            out.writestr(name, data)
    return path


def zip_entries(path, entries):
    with zipfile.ZipFile(path, "w") as out:
        for name, data in entries:
            out.writestr(name, data)
    return path


def damage_entry(path, name):
    """Flip bytes inside one stored entry, so that its CRC check fails when read."""
    with zipfile.ZipFile(path) as opened:
        info = opened.getinfo(name)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    path.write_bytes(bytes(data))


def read_error(path, **kwargs) -> ExamError:
    with pytest.raises(ExamReadError) as caught:
        read_exam(path, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------
# Kinds of input


def test_npy_folder_with_a_subset_of_planes(volumes, tmp_path):
    np.save(tmp_path / "sagittal.npy", volumes["sagittal"])
    np.save(tmp_path / "axial.npy", volumes["axial"])
    exam = read_exam(tmp_path)
    assert exam.source_kind == "npy" and exam.planes == ("axial", "sagittal")
    assert exam.missing_planes == ("coronal",)
    assert all(np.array_equal(exam.volumes[p], volumes[p]) for p in exam.planes)
    assert exam.sources["axial"].orientation == "PLI"  # rows posterior, columns left, slices inferior


def test_a_single_npy_file_in_mrnets_own_layout(volumes, tmp_path):
    path = tmp_path / "valid" / "coronal" / "1130.npy"
    path.parent.mkdir(parents=True)
    np.save(path, volumes["coronal"])
    assert read_exam(path).planes == ("coronal",)


def test_npy_that_is_not_an_mrnet_volume(tmp_path):
    np.save(tmp_path / "axial.npy", np.zeros((20, 128, 128), np.float32))
    error = read_error(tmp_path / "axial.npy")
    assert error.code == "INVALID_VOLUME" and "float32" in error.message


def test_npy_whose_name_names_no_plane(volumes, tmp_path):
    np.save(tmp_path / "volume.npy", volumes["axial"])
    assert read_error(tmp_path / "volume.npy").code == "UNKNOWN_PLANE"


def test_a_list_of_uploaded_files(volumes, tmp_path):
    # What a web upload gives: loose files with meaningless names, DICOM of two planes.
    _, axial = write_series(volumes["axial"], "axial", tmp_path / "a", SeriesOptions(shuffle_names=True))
    _, sagittal = write_series(volumes["sagittal"], "sagittal", tmp_path / "b", SeriesOptions(shuffle_names=True))
    exam = read_exam([str(p) for p in axial + sagittal])
    assert exam.planes == ("axial", "sagittal")


def test_a_list_of_nifti_files_and_a_list_with_a_zip(volumes, study, tmp_path):
    paths = [write_nifti(volumes[p], p, tmp_path / f"{p}.nii.gz") for p in ("axial", "coronal")]
    assert read_exam(paths).planes == ("axial", "coronal")
    zipped = zip_folder(study, tmp_path / "exam.zip")
    assert read_exam([zipped]).planes == PLANES


def test_a_zip_reads_like_its_folder_and_writes_nothing(study, tmp_path):
    zipped = zip_folder(study, tmp_path / "export.zip", extra=[("README.TXT", "PACS export")],
                        compression=zipfile.ZIP_DEFLATED)
    before = sorted(tmp_path.rglob("*"))
    from_zip, from_folder = read_exam(zipped), read_exam(study)
    assert sorted(tmp_path.rglob("*")) == before
    assert from_zip.planes == PLANES
    for plane in PLANES:
        assert np.array_equal(from_zip.volumes[plane], from_folder.volumes[plane])
    assert from_zip.sources["axial"].source == from_folder.sources["axial"].source == "S0002"
    assert ("NOT_DICOM", "README.TXT") in {(p.code, p.source) for p in from_zip.skipped}


def test_a_zip_of_npy_files(volumes, tmp_path):
    with zipfile.ZipFile(tmp_path / "exam.zip", "w") as out:
        for plane in PLANES:
            path = tmp_path / f"{plane}.npy"
            np.save(path, volumes[plane])
            out.write(path, f"exam/{plane}.npy")
    exam = read_exam(tmp_path / "exam.zip")
    assert exam.source_kind == "npy" and exam.planes == PLANES


def test_a_zip_of_gzipped_nifti(volumes, tmp_path):
    path = write_nifti(volumes["sagittal"], "sagittal", tmp_path / "files" / "t2.nii.gz")
    with zipfile.ZipFile(tmp_path / "exam.zip", "w") as out:
        out.write(path, "t2.nii.gz")
    exam = read_exam(tmp_path / "exam.zip")
    difference, correlation = round_trip_error(exam.volumes["sagittal"], volumes["sagittal"])
    assert difference < 3 and correlation > 0.98


# ---------------------------------------------------------------------------------------------
# Dangerous archives and folders


def test_zip_entries_leaving_the_folder_are_refused(tmp_path):
    for bad in ("../evil.dcm", "/etc/evil.dcm", "a/../../evil.dcm", "C:\\evil.dcm"):
        zipped = zip_entries(tmp_path / "bad.zip", [("good/a.dcm", b"x"), (bad, b"x")])
        error = read_error(zipped)
        assert error.code == "UNSAFE_ARCHIVE" and bad in {p.source for p in error.problems}, bad


def test_zip_symlinks_are_refused(tmp_path):
    zipped = zip_entries(tmp_path / "link.zip", [("S0002/a.dcm", b"x")])
    with zipfile.ZipFile(zipped, "a") as out:
        link = zipfile.ZipInfo("S0002/passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(link, "/etc/passwd")
    error = read_error(zipped)
    assert error.code == "UNSAFE_ARCHIVE" and error.problems == [
        Problem("UNSAFE_ARCHIVE", "S0002/passwd", "a symbolic link")]


def test_symlinks_in_a_folder_are_refused(study, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the exam")
    os.symlink(outside, study / "S0002" / "linked")
    error = read_error(study)
    assert error.code == "UNSAFE_PATH" and error.path == "S0002/linked"


def test_an_archive_too_large_is_refused(tmp_path, monkeypatch):
    zipped = zip_entries(tmp_path / "big.zip", [(f"{n}.dcm", bytes(40_000)) for n in range(3)])
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 100_000)
    error = read_error(zipped)
    assert error.code == "ARCHIVE_TOO_LARGE" and "MiB" in error.message


def test_a_compression_bomb_is_refused(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("zeros.dcm", bytes(3 * 1024**2))
    monkeypatch.setattr(archive, "RATIO_CHECK_ABOVE_BYTES", 1024)
    error = read_error(tmp_path / "bomb.zip")
    assert error.code == "ARCHIVE_TOO_LARGE" and "zeros.dcm" in error.message


def test_a_size_that_lies_is_caught_while_reading(tmp_path, monkeypatch):
    # The declared sizes pass; the bytes actually read exceed the budget.
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_STORED) as out:
        out.writestr("a.dcm", bytes(5000))
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 6000)
    info = zipfile.ZipFile(tmp_path / "a.zip").infolist()[0]
    with zipfile.ZipFile(tmp_path / "a.zip") as opened, pytest.raises(ExamReadError) as caught:
        archive._read_entry(opened, info, budget=4000)
    assert caught.value.code == "ARCHIVE_TOO_LARGE"


def test_a_damaged_entry_among_good_ones_is_left_out(study, tmp_path):
    zipped = zip_folder(study, tmp_path / "exam.zip", extra=[("notes.txt", "exported " * 20)])
    damage_entry(zipped, "notes.txt")
    exam = read_exam(zipped)
    assert exam.planes == PLANES and ("CORRUPT_FILE", "notes.txt") in {(p.code, p.source) for p in exam.skipped}


def test_a_zip_whose_only_entries_are_damaged(tmp_path):
    zipped = zip_entries(tmp_path / "exam.zip", [("a.dcm", bytes(500)), ("b.dcm", bytes(500))])
    damage_entry(zipped, "a.dcm")
    damage_entry(zipped, "b.dcm")
    error = read_error(zipped)
    assert error.code == "CORRUPT_FILE" and {p.source for p in error.problems} == {"a.dcm", "b.dcm"}


# ---------------------------------------------------------------------------------------------
# Errors of the dispatch


def test_not_found(tmp_path):
    error = read_error(tmp_path / "nowhere")
    assert error.code == "NOT_FOUND" and isinstance(error, InputError) and error.exit_code == 2


def test_unknown_format(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    error = read_error(tmp_path / "photo.jpg")
    assert error.code == "UNKNOWN_FORMAT" and error.path == "photo.jpg"


def test_an_empty_folder_has_no_images(tmp_path):
    assert read_error(tmp_path).code == "NO_IMAGES"


def test_mixed_formats(volumes, tmp_path):
    write_series(volumes["axial"], "axial", tmp_path)
    np.save(tmp_path / "sagittal.npy", volumes["sagittal"])
    error = read_error(tmp_path)
    assert error.code == "MIXED_FORMATS" and "1 npy" in error.message


def test_a_series_choice_for_an_unknown_plane(study):
    assert read_error(study, series={"oblique": "1.2.3"}).code == "UNKNOWN_PLANE"


def test_a_series_choice_that_does_not_exist_or_is_another_plane(study):
    assert read_error(study, series={"axial": "1.2.3"}).code == "SERIES_NOT_FOUND"
    coronal_uid = read_exam(study).sources["coronal"].series_uid
    assert read_error(study, series={"axial": coronal_uid}).code == "SERIES_PLANE_MISMATCH"


def test_a_series_choice_is_ignored_with_a_warning_for_npy(volumes, tmp_path):
    np.save(tmp_path / "axial.npy", volumes["axial"])
    exam = read_exam(tmp_path, series={"axial": "1.2.3"})
    assert any("DICOM only" in w for w in exam.warnings)


# ---------------------------------------------------------------------------------------------
# The Exam


def test_exam_is_convenient_for_the_cli_and_the_app(study):
    exam = read_exam(study)
    assert isinstance(exam, Exam)
    assert exam.planes == PLANES == tuple(exam.volumes) == tuple(exam.sources)
    report = json.loads(json.dumps(exam.to_dict()))
    assert report["source_kind"] == "dicom" and report["planes"] == list(PLANES)
    assert report["shapes"]["axial"][1:] == [256, 256]
    sagittal = report["sources"]["sagittal"]
    assert sagittal["description"] == "Sag T2 FS" and sagittal["orientation"] == "IPR"
    assert "described as T2" in sagittal["reason"] and "fat-sat" in sagittal["reason"]


def test_exam_error_lists_every_problem_one_per_line():
    error = ExamError("NO_USABLE_SERIES", "none usable", problems=[
        Problem("OBLIQUE", "1.2.3", "series 2: oblique"), Problem("CORRUPT_FILE", "a/b.dcm", "unreadable")])
    assert error.one_line().splitlines() == [
        "none usable [NO_USABLE_SERIES]", "  1.2.3: series 2: oblique [OBLIQUE]", "  a/b.dcm: unreadable [CORRUPT_FILE]"]
    single = ExamError("NOT_FOUND", "no such file or folder", "x")
    assert single.problems == [Problem("NOT_FOUND", "x", "no such file or folder")]
