"""`mrnet-predict --format sr`: a DICOM SR under the source study, checked by parsing it with
highdicom and pydicom and by dcmtk's `dsrdump`; errors for exams that cannot have one."""

from __future__ import annotations

import json
import shutil
import subprocess

import highdicom as hd
import pydicom
import pytest
from typer.testing import CliRunner

from mrnet.infer.synthetic.scanner_files import FAKE_PATIENT
from mrnet.infer.cli import app
from mrnet.infer.dicom_results import codes
from mrnet.infer.registry import PLANES, TASKS
from mrnet.infer.synthetic.phantom import make_exam
from mrnet.infer.synthetic.scanner_files import Study, write_series

needs_dsrdump = pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dcmtk's dsrdump is not installed "
                                   "(apt-get install dcmtk; make system-deps does)")


def _predict(*args):
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def _groups(report) -> dict[str, hd.sr.MeasurementsAndQualitativeEvaluations]:
    out = {}
    for group in report.content.get_image_measurement_groups():
        for task, finding in codes.FINDING.items():
            if group.finding_type == finding:
                out[task] = group
    return out


def _value(group, name) -> float:
    return float(group.get_measurements(name=name)[0].value)


def check_report(path, source_folder, prediction: dict) -> hd.sr.ComprehensiveSR:
    """The report's identification, findings and references against its source and the prediction."""
    report = hd.sr.srread(path)
    source = pydicom.dcmread(next(p for p in sorted(source_folder.rglob("*")) if p.is_file()),
                             stop_before_pixels=True)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate"):
        assert str(report.get(keyword)) == str(source.get(keyword)), keyword
    assert report.SeriesInstanceUID != source.SeriesInstanceUID and report.Modality == "SR"
    assert "not for clinical use" in report.SeriesDescription and report.ContentQualification == "RESEARCH"
    groups = _groups(report)
    assert set(groups) == set(TASKS)
    for task, group in groups.items():
        fused = prediction["tasks"][task]
        assert _value(group, codes.PROBABILITY) == pytest.approx(fused["probability"], abs=1e-9)
        assert _value(group, codes.THRESHOLD) == pytest.approx(fused["threshold"], abs=1e-9)
        decision = group.get_qualitative_evaluations(name=codes.FINDING[task])[0].value
        assert decision == (codes.PRESENT if fused["decision"] else codes.ABSENT)
        used = [e.value for e in group.get_qualitative_evaluations(name=codes.PLANES_USED)]
        assert used == [codes.PLANE[p] for p in fused["planes_used"]]
        for plane in prediction["planes"]:
            measurement = group.get_measurements(name=codes.plane_probability(plane))[0]
            assert float(measurement.value) == pytest.approx(prediction["plane_probabilities"][plane][task])
            referenced = {image.referenced_sop_instance_uid for image in measurement.referenced_images}
            assert len(referenced) == prediction["provenance"]["sources"][plane]["n_slices"]
        parameters = " | ".join(item.value for item in hd.sr.utils.find_content_items(
            group[0], name=pydicom.sr.codedict.codes.DCM.AlgorithmParameters))
        for needle in (prediction["bundle"]["version"], prediction["bundle"]["manifest_sha256"],
                       "Not for clinical use"):
            assert needle in parameters
    evidence_series = {series for _, series in report.get_evidence_series()}
    assert evidence_series == {prediction["provenance"]["sources"][p]["series_uid"] for p in prediction["planes"]}
    return report


def dsrdump_ok(path) -> str:
    result = subprocess.run(["dsrdump", "+Pl", "+Pt", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return result.stdout


def _json(exam, tmp_path):
    out = tmp_path / "prediction.json"
    result = _predict(exam, "--format", "json", "--out", out)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["exams"][0]


@needs_dsrdump
def test_the_real_series_gets_a_report_under_its_study(shared_dicom, tmp_path):
    out = tmp_path / "result.dcm"
    result = _predict(shared_dicom, "--format", "sr", "--out", out)
    assert result.exit_code == 0, result.output
    assert "not for clinical use" in result.output.lower()
    report = check_report(out, shared_dicom, _json(shared_dicom, tmp_path))
    assert [m.name.meaning for m in _groups(report)["acl"].get_measurements()][2:] == [
        "Probability from the sagittal models"]
    dump = dsrdump_ok(out)
    assert "Imaging Measurement Report" in dump and "Tear of anterior cruciate ligament" in dump


@needs_dsrdump
def test_a_three_plane_phantom_study_gets_three_planes_of_references(phantom_study, tmp_path):
    out = tmp_path / "result.dcm"
    result = _predict(phantom_study, "--format", "sr", "--out", out)
    assert result.exit_code == 0, result.output
    prediction = _json(phantom_study, tmp_path)
    assert prediction["planes"] == list(PLANES)
    report = check_report(out, phantom_study, prediction)
    assert str(report.PatientName) == FAKE_PATIENT["PatientName"]
    # Patient data goes into the report and nowhere else: not into what the command prints.
    for value in FAKE_PATIENT.values():
        assert value not in result.output
    dsrdump_ok(out)


def test_overlays_add_a_secondary_capture_per_plane_and_task(phantom_study, tmp_path):
    out = tmp_path / "result.dcm"
    result = _predict(phantom_study, "--format", "sr", "--out", out, "--overlays")
    assert result.exit_code == 0, result.output
    captures = sorted(tmp_path.glob("result.sc*.dcm"))
    assert len(captures) == len(PLANES) * len(TASKS)
    report = pydicom.dcmread(out)
    series = set()
    for path in captures:
        image = pydicom.dcmread(path)
        assert image.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert image.StudyInstanceUID == report.StudyInstanceUID and image.PatientID == FAKE_PATIENT["PatientID"]
        assert image.BurnedInAnnotation == "YES" and "not for clinical use" in image.SeriesDescription
        assert image.pixel_array.shape[1:] == (256, 3) and image.pixel_array.shape[0] > 256
        series.add(image.SeriesInstanceUID)
    assert len(series) == 1 and series != {report.SeriesInstanceUID}


def test_several_exams_give_one_file_each_in_a_folder(phantom_study, shared_dicom, tmp_path):
    out = tmp_path / "reports"
    result = _predict(phantom_study, shared_dicom, "--format", "sr", "--out", out)
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{phantom_study.name}.sr.dcm", f"{shared_dicom.name}.sr.dcm"])
    studies = {pydicom.dcmread(out / f).StudyInstanceUID for f in files}
    assert len(studies) == 2


def test_an_npy_exam_cannot_have_a_report(npy_exam, tmp_path):
    out = tmp_path / "result.dcm"
    result = _predict(npy_exam, "--format", "sr", "--out", out)
    assert result.exit_code == 2
    assert "[SR_NEEDS_DICOM]" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_sr_needs_an_output_path(phantom_study):
    result = _predict(phantom_study, "--format", "sr")
    assert result.exit_code == 2 and "[BAD_OPTION]" in result.output


def test_planes_from_two_studies_make_no_report(tmp_path):
    volumes, _ = make_exam(5)
    folder = tmp_path / "mixed"
    write_series(volumes["sagittal"], "sagittal", folder / "a", study=Study(seed=1))
    write_series(volumes["coronal"], "coronal", folder / "b", study=Study(seed=2))
    result = _predict(folder, "--format", "sr", "--out", tmp_path / "result.dcm")
    assert result.exit_code == 2 and "[SR_MIXED_STUDIES]" in result.output
