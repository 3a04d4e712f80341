"""mrnet-node with real peers: dcmtk's storescu sends, the node scores, dcmtk's storescp receives
the SR, which highdicom parses and dsrdump reads without error."""

from __future__ import annotations

import subprocess

import highdicom as hd
import pydicom
import pytest

from helpers import write_phantom_study
from mrnet.infer.synthetic.scanner_files import FAKE_PATIENT
from peers import dcmtk, node, storescp, storescu, wait_for
from mrnet.infer.dicom_results import codes
from mrnet.infer.registry import PLANES
from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
from mrnet.infer.synthetic.scanner_files import SeriesOptions, Study, write_localizer, write_study

pytestmark = pytest.mark.slow
STABLE = "1"


def _complete(path) -> bool:
    """storescp writes a received file in place: it is there before it is whole."""
    try:
        pydicom.dcmread(path)
        return True
    except Exception:  # noqa: BLE001 - any parse failure here means: not yet written out
        return False


def _reports(folder, n, timeout=90):
    return wait_for(lambda: (files := sorted(folder.glob("SR*"))) and len(files) >= n
                    and all(_complete(f) for f in files) and files, timeout, f"{n} report(s) in {folder}")


def _study_uid(folder) -> str:
    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    return pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID


def _dsrdump(path) -> str:
    result = subprocess.run([dcmtk("dsrdump"), "+Pl", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return result.stdout


def test_the_real_series_comes_back_as_a_report_and_leaves_nothing_behind(shared_dicom, tmp_path):
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE) as running:
        sent = storescu(running.port, shared_dicom)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        [report_path] = _reports(tmp_path / "received", 1)
        report = hd.sr.srread(report_path)
        assert report.StudyInstanceUID == _study_uid(shared_dicom)
        assert "not for clinical use" in report.SeriesDescription
        assert "Tear of anterior cruciate ligament" in _dsrdump(report_path)
        wait_for(lambda: not running.received_files(), 10, "received files to be deleted")
        assert not any((tmp_path / "work" / "outbox").iterdir())
    log = running.text()
    assert "192 instance(s)" in log and "stored at DEST@127.0.0.1" in log


def test_a_phantom_study_gets_three_planes_and_the_log_no_patient_data(phantom_study, tmp_path):
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE) as running:
        assert storescu(running.port, phantom_study).returncode == 0
        [report_path] = _reports(tmp_path / "received", 1)
    report = hd.sr.srread(report_path)
    assert str(report.PatientName) == FAKE_PATIENT["PatientName"] and report.PatientID == FAKE_PATIENT["PatientID"]
    planes = {m.name.meaning for g in report.content.get_image_measurement_groups() for m in g.get_measurements()}
    assert {f"Probability from the {p} models" for p in PLANES} <= planes
    log = running.text()
    # (PatientSex "O" is one letter: any log has it.)
    for secret in [FAKE_PATIENT[k] for k in ("PatientName", "PatientID", "PatientBirthDate")] + [
            _study_uid(phantom_study), "Phantom"]:
        assert secret not in log


def test_concurrent_associations_with_two_interleaved_studies(tmp_path):
    folders = [write_phantom_study(tmp_path / f"study{k}", seed=10 + k, slices=18)[0] for k in range(2)]
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE) as running:
        # Two associations at once, each sending a study; their instances arrive interleaved.
        senders = [storescu(running.port, folder, calling=f"SCU{k}", wait=False) for k, folder in enumerate(folders)]
        outputs = [s.communicate(timeout=300)[0] for s in senders]
        assert all(s.returncode == 0 for s in senders), outputs
        reports = _reports(tmp_path / "received", 2)
    studies = {pydicom.dcmread(p).StudyInstanceUID for p in reports}
    assert studies == {_study_uid(f) for f in folders}
    assert running.text().count("planes axial+coronal+sagittal") == 2


def test_allow_ae_refuses_other_calling_titles(phantom_study, tmp_path):
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE,
                 "--allow-ae", "PACS,OTHER") as running:
        refused = storescu(running.port, phantom_study, calling="INTRUDER")
        assert refused.returncode != 0
        wait_for(lambda: "AE_NOT_ALLOWED" in running.text(), 10, "the refusal in the log")
        assert not running.received_files()
        assert storescu(running.port, phantom_study, calling="PACS").returncode == 0
        _reports(tmp_path / "received", 1)


def test_a_study_the_reader_refuses_gets_a_coded_log_line_and_no_report(tmp_path):
    volumes, _ = make_exam(4, config=None)
    write_localizer(volumes, tmp_path / "localizer", Study(seed=4))
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE) as running:
        assert storescu(running.port, tmp_path / "localizer").returncode == 0
        line = wait_for(lambda: next((l for l in running.text().splitlines() if "refused:" in l), None), 60,
                        "the refusal")
        assert "[LOCALIZER]" in line or "[NO_USABLE_SERIES]" in line, line
        wait_for(lambda: not running.received_files(), 10, "received files to be deleted")
    assert not list((tmp_path / "received").glob("SR*"))


def test_the_outbox_keeps_a_result_until_the_destination_answers(phantom_study, tmp_path):
    from peers import free_port

    dest_port = free_port()  # nothing listens there yet
    with node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE, "--retries", "1",
              "--retry-interval", "2") as running:
        assert storescu(running.port, phantom_study).returncode == 0
        wait_for(lambda: "kept in the outbox" in running.text(), 60, "the result to wait in the outbox")
        outbox = tmp_path / "work" / "outbox"
        assert len([p for p in outbox.iterdir() if not p.name.startswith(".")]) == 1
        assert running.text().count("[SEND_FAILED]") == 2  # the first try and one retry
        with storescp(tmp_path / "received", port=dest_port):
            [report_path] = _reports(tmp_path / "received", 1, timeout=30)
            wait_for(lambda: not any(outbox.iterdir()), 10, "the outbox to empty")
    assert pydicom.dcmread(report_path).StudyInstanceUID == _study_uid(phantom_study)


def test_keep_leaves_the_received_files_and_overlays_come_with_the_report(phantom_study, tmp_path):
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE, "--keep",
                 "--overlays") as running:
        assert storescu(running.port, phantom_study).returncode == 0
        [report] = _reports(tmp_path / "received", 1)
        captures = wait_for(lambda: len(found := list((tmp_path / "received").glob("SC*"))) == 9
                            and all(_complete(f) for f in found) and found, 30,
                            "nine Secondary Captures")
    study = pydicom.dcmread(report).StudyInstanceUID
    assert {pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for p in captures} == {study}
    kept = [p for p in (tmp_path / "work" / "kept").rglob("*.dcm")]
    assert len(kept) == sum(1 for p in phantom_study.rglob("*") if p.is_file())


def test_a_result_left_in_the_outbox_is_sent_after_a_restart(phantom_study, tmp_path):
    from peers import free_port

    dest_port, work = free_port(), tmp_path / "work"
    with node(work, f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE, "--retries", "0") as running:
        assert storescu(running.port, phantom_study).returncode == 0
        wait_for(lambda: "kept in the outbox" in running.text(), 60, "the result to wait in the outbox")
    assert "1 result(s) wait in the outbox" in running.text()
    with storescp(tmp_path / "received", port=dest_port), node(work, f"DEST@127.0.0.1:{dest_port}"):
        [report_path] = _reports(tmp_path / "received", 1, timeout=30)
    assert pydicom.dcmread(report_path).StudyInstanceUID == _study_uid(phantom_study)
    assert not any((work / "outbox").iterdir()) and not any((work / "incoming").iterdir())


def test_an_enhanced_mr_study_is_accepted_and_its_frames_referenced(tmp_path):
    volumes, _ = make_exam(6, config=PhantomConfig(slice_range=(18, 18)))
    write_study(volumes, tmp_path / "enhanced", Study(seed=6),
                options={plane: SeriesOptions(enhanced=True) for plane in volumes})
    with storescp(tmp_path / "received") as dest_port, \
            node(tmp_path / "work", f"DEST@127.0.0.1:{dest_port}", "--stable-seconds", STABLE) as running:
        assert storescu(running.port, tmp_path / "enhanced").returncode == 0
        [report_path] = _reports(tmp_path / "received", 1)
    assert "3 instance(s), planes axial+coronal+sagittal" in running.text()
    report = hd.sr.srread(report_path)
    [group] = [g for g in report.content.get_image_measurement_groups() if g.finding_type == codes.FINDING["acl"]]
    [sagittal] = group.get_measurements(name=codes.plane_probability("sagittal"))
    frames = sorted(f for image in sagittal.referenced_images for f in image.referenced_frame_numbers)
    assert frames == list(range(1, 19))
