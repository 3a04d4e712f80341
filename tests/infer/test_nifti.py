"""Reading NIfTI exams: plane from the affine, RAS to LPS, round trips and errors."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from mrnet.infer import read_exam
from mrnet.infer.errors import ExamReadError
from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
from mrnet.infer.registry import PLANES
from mrnet.infer.synthetic.scanner_files import round_trip_error, write_nifti


@pytest.fixture(scope="module")
def volumes() -> dict[str, np.ndarray]:
    return make_exam(seed=3, config=PhantomConfig(slice_range=(17, 20)))[0]


def assert_round_trip(got, want):
    difference, correlation = round_trip_error(got, want)
    assert got.dtype == np.uint8 and difference < 3.0 and correlation > 0.98, (difference, correlation)


def read_error(path) -> ExamReadError:
    with pytest.raises(ExamReadError) as caught:
        read_exam(path)
    return caught.value


@pytest.mark.parametrize("canonical", [False, True], ids=["slices-third-axis", "closest-canonical-RAS"])
@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_round_trip_of_three_gzipped_files(canonical, tilt, volumes, tmp_path):
    # File names say nothing: the plane must come from the affine.
    paths = [write_nifti(volumes[p], p, tmp_path / f"scan{i}.nii.gz", tilt_deg=tilt, canonical=canonical)
             for i, p in enumerate(PLANES)]
    exam = read_exam(paths)
    assert exam.source_kind == "nifti" and exam.planes == PLANES
    for plane in PLANES:
        assert_round_trip(exam.volumes[plane], volumes[plane])
        assert exam.sources[plane].obliquity_deg == pytest.approx(tilt, abs=0.01)
    assert exam.warnings == []


def test_a_folder_of_uncompressed_files(volumes, tmp_path):
    for plane in ("coronal", "sagittal"):
        write_nifti(volumes[plane], plane, tmp_path / f"{plane}.nii")
    exam = read_exam(tmp_path)
    assert exam.planes == ("coronal", "sagittal")
    assert "file name agrees" in exam.sources["coronal"].reason


# A hand-made affine (no scanner_files geometry): i runs to the patient's Right, j Anterior,
# k Superior (RAS, nibabel's canonical), voxels 0.5 x 0.5 x 3 mm, so the slices are along k
# (axial). The marker sits at the largest i, j, k: the right-anterior-superior corner, which
# MRNet's axial layout puts at slice 0 (superior first), row 0 (anterior up), column 0 (right on
# the image left).
def test_the_right_anterior_superior_corner_lands_where_mrnet_puts_it(tmp_path):
    data = np.full((256, 256, 17), 100, dtype=np.int16)
    data[-1, -1, -1] = 4000
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "x.nii.gz")
    volume = read_exam(tmp_path / "x.nii.gz").volumes["axial"]
    assert np.unravel_index(np.argmax(volume), volume.shape) == (0, 0, 0)


def test_a_sagittal_stack_stored_posterior_inferior_left(tmp_path):
    # i runs Posterior, j Inferior, k Left (3 mm slices): the marker at i=0, j=0, k=0 is the most
    # anterior, superior and right voxel, which MRNet's sagittal layout puts at (0, 0, 0).
    data = np.full((256, 256, 17), 100, dtype=np.int16)
    data[0, 0, 0] = 4000
    affine = np.array([[0, 0, -3.0, 0], [-0.5, 0, 0, 0], [0, -0.5, 0, 0], [0, 0, 0, 1]])
    assert nib.aff2axcodes(affine) == ("P", "I", "L")
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "x.nii")
    exam = read_exam(tmp_path / "x.nii")
    volume = exam.volumes["sagittal"]
    where = np.unravel_index(np.argmax(volume), volume.shape)
    assert where == (0, 0, 0)


def test_near_isotropic_voxels_take_the_plane_named_in_the_file(volumes, tmp_path):
    path = write_nifti(volumes["coronal"], "coronal", tmp_path / "knee_coronal.nii.gz", pixel_mm=0.8, slice_mm=0.8)
    exam = read_exam(path)
    assert exam.planes == ("coronal",) and "file name" in exam.sources["coronal"].reason
    assert_round_trip(exam.volumes["coronal"], volumes["coronal"])


def test_a_file_name_that_disagrees_with_the_affine_is_warned_about(volumes, tmp_path):
    path = write_nifti(volumes["axial"], "axial", tmp_path / "sagittal.nii.gz")
    exam = read_exam(path)
    assert exam.planes == ("axial",)
    assert any("file name says sagittal" in w for w in exam.warnings)


def test_a_4d_file_uses_its_first_volume(volumes, tmp_path):
    path = write_nifti(volumes["axial"], "axial", tmp_path / "a.nii.gz")
    image = nib.load(path)
    data = np.stack([np.asarray(image.dataobj), 4000 - np.asarray(image.dataobj)], axis=-1)
    nib.save(nib.Nifti1Image(data, image.affine, image.header), tmp_path / "echoes.nii.gz")
    exam = read_exam(tmp_path / "echoes.nii.gz")
    assert_round_trip(exam.volumes["axial"], volumes["axial"])
    assert any("first is used" in w for w in exam.warnings)


def test_two_files_of_one_plane_keep_the_one_named_for_it(volumes, tmp_path):
    named = write_nifti(volumes["sagittal"], "sagittal", tmp_path / "sagittal.nii.gz")
    other = write_nifti(volumes["sagittal"][:-2], "sagittal", tmp_path / "other.nii.gz")
    exam = read_exam([other, named])
    assert exam.sources["sagittal"].source == "sagittal.nii.gz"
    assert [(p.code, p.source) for p in exam.skipped] == [("NOT_CHOSEN", "other.nii.gz")]


def test_missing_orientation(tmp_path):
    image = nib.Nifti1Image(np.zeros((64, 64, 20), np.int16), np.eye(4))
    image.set_qform(None, code=0)
    image.set_sform(None, code=0)
    nib.save(image, tmp_path / "x.nii")
    assert read_error(tmp_path / "x.nii").code == "MISSING_ORIENTATION"


def test_a_2d_image_has_too_few_slices(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((64, 64), np.int16), np.eye(4)), tmp_path / "x.nii")
    assert read_error(tmp_path / "x.nii").code == "TOO_FEW_SLICES"


def test_a_corrupt_file(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 30))
    error = read_error(tmp_path / "x.nii.gz")
    assert error.code == "CORRUPT_FILE" and error.path == "x.nii.gz"


def test_an_oblique_file_beyond_the_limit(volumes, tmp_path):
    write_nifti(volumes["coronal"], "coronal", tmp_path / "x.nii.gz", tilt_deg=40)
    assert read_error(tmp_path / "x.nii.gz").code == "OBLIQUE"


def test_several_bad_files(volumes, tmp_path):
    write_nifti(volumes["coronal"], "coronal", tmp_path / "a.nii.gz", tilt_deg=40)
    (tmp_path / "b.nii").write_bytes(b"\0" * 400)
    error = read_error(tmp_path)
    assert error.code == "NO_USABLE_SERIES"
    assert sorted((p.code, p.source) for p in error.problems) == [("CORRUPT_FILE", "b.nii"), ("OBLIQUE", "a.nii.gz")]
