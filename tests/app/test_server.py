"""A real server and gradio_client: the `/predict` endpoint, as an API user calls it."""

from __future__ import annotations

import shutil

import pytest
from helpers import files_under
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from mrnet.app.ui import Limits, serving
from mrnet.infer.registry import PLANES, TASKS


@pytest.fixture(scope="module")
def server(predictor, tmp_path_factory):
    # No grace period: each request's uploads are gone when its answer arrives, so tests can look.
    uploads = tmp_path_factory.mktemp("gradio-uploads")
    with serving(predictor, uploads, Limits(upload_grace_s=0)) as demo:
        yield Client(demo.local_url, verbose=False), uploads


def test_the_api_has_one_named_endpoint_taking_files(server):
    client, _ = server
    info = client.view_api(print_info=False, return_format="dict")
    assert list(info["named_endpoints"]) == ["/predict"]
    assert [p["parameter_name"] for p in info["named_endpoints"]["/predict"]["parameters"]] == ["files"]


def test_the_page_says_whether_the_per_plane_probabilities_are_calibrated(server, predictor):
    from mrnet.app.handlers import planes_label

    client, _ = server
    labels = [c.get("props", {}).get("label") for c in client.config["components"]]
    assert planes_label(predictor) in labels


def test_phantom_exam_gives_three_probabilities(server, phantom_files):
    client, uploads = server
    label, findings, planes, report = client.predict(files=[handle_file(str(p)) for p in phantom_files],
                                                     api_name="/predict")
    assert len(label["confidences"]) == len(TASKS)
    by_task = {row[0]: row for row in findings["data"]}
    assert len(by_task) == len(TASKS)
    for task in TASKS:
        fused = report["tasks"][task]
        assert 0 < fused["probability"] < 1 and fused["planes_used"] == list(PLANES)
        assert any(c["confidence"] == pytest.approx(fused["probability"]) for c in label["confidences"])
    assert [row[0] for row in planes["data"]] == list(PLANES)
    assert report["planes"] == list(PLANES)
    assert files_under(uploads) == []


@pytest.mark.slow  # gradio_client uploads the 192 files one request at a time
def test_a_real_dicom_series_gives_a_sagittal_only_result(server, tmp_path, shared_dicom):
    client, uploads = server
    # Scanner-like names without an extension: the server must sniff the content, not the name.
    copy = tmp_path / "exam"
    copy.mkdir()
    for k, source in enumerate(sorted(shared_dicom.iterdir())):
        shutil.copyfile(source, copy / f"IM{k:04d}")
    label, findings, planes, report = client.predict(files=[handle_file(str(p)) for p in sorted(copy.iterdir())],
                                                     api_name="/predict")
    assert report["planes"] == ["sagittal"]
    assert {row[4] for row in findings["data"]} == {"sagittal"}  # fused over sagittal alone
    rows = {row[0]: row for row in planes["data"]}
    assert rows["sagittal"][2] == report["provenance"]["shapes"]["sagittal"][0]
    assert "echo" in rows["sagittal"][1]  # a multi-echo series: the echo chosen is named
    assert all(rows[p][1] == "not in this exam" for p in PLANES if p != "sagittal")
    assert len(label["confidences"]) == len(TASKS)
    assert files_under(uploads) == []


def test_a_file_that_is_no_image_is_a_clean_error(server, tmp_path):
    client, uploads = server
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not an exam\n")
    with pytest.raises(AppError) as caught:
        client.predict(files=[handle_file(str(notes))], api_name="/predict")
    message = str(caught.value)
    assert message == "notes.txt: not a DICOM file, zip, NIfTI (.nii, .nii.gz) or MRNet .npy file [UNKNOWN_FORMAT]"
    assert "Traceback" not in message and str(uploads) not in message
    assert files_under(uploads) == []
