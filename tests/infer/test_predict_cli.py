"""`mrnet-predict` through typer's CliRunner: every format, data set roots, DICOM, exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mrnet.infer.cli import app
from mrnet.infer.registry import TASKS


def _predict(*args):
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def test_table_output_for_an_npy_exam(npy_exam, tiny_bundle):
    result = _predict(npy_exam, "--models", tiny_bundle)
    assert result.exit_code == 0, result.output
    for title in ("Abnormal", "ACL tear", "Meniscal tear", "Not for clinical use", "synthetic phantoms"):
        assert title in result.output


def test_json_output_holds_everything_and_the_notice(npy_exam, tiny_bundle, tmp_path):
    out = tmp_path / "result.json"
    result = _predict(npy_exam, "--models", tiny_bundle, "--format", "json", "--out", out, "--cams")
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert "Not for clinical use" in document["notice"] and document["provider"] == "CPUExecutionProvider"
    exam = document["exams"][0]
    assert exam["exam"] == str(npy_exam) and exam["planes"] == ["axial", "coronal", "sagittal"]
    for task in TASKS:
        assert 0.0 <= exam["tasks"][task]["probability"] <= 1.0
        assert exam["tasks"][task]["planes_used"] == ["axial", "coronal", "sagittal"]
    assert np.asarray(exam["cams"]["sagittal"]["acl"]).shape[1:] == (7, 7)
    assert {"version", "manifest_sha256", "synthetic_weights"} <= set(exam["bundle"])
    assert exam["provenance"]["source_kind"] == "npy"


def test_csv_has_one_row_per_exam_for_a_data_set_root(phantom_root, tiny_bundle):
    result = _predict(phantom_root, "--split", "valid", "--ids", "0024,0025,0026", "--models", tiny_bundle,
                      "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["exam"].rsplit("/", 1)[1] for r in rows] == ["0024", "0025", "0026"]
    assert all(r["planes"] == "axial+coronal+sagittal" and "Not for clinical use" in r["notice"] for r in rows)
    assert all(0 <= float(r["acl_probability"]) <= 1 for r in rows)


def test_the_real_dicom_series_gives_a_sagittal_result(tiny_bundle, tmp_path, shared_dicom):
    study = tmp_path / "study"
    shutil.copytree(shared_dicom, study)
    result = _predict(study, "--models", tiny_bundle, "--format", "json")
    assert result.exit_code == 0, result.output
    exam = json.loads(result.output)["exams"][0]
    assert exam["planes"] == ["sagittal"] and exam["tasks"]["acl"]["planes_used"] == ["sagittal"]
    assert exam["provenance"]["sources"]["sagittal"]["echo"] is not None


def test_the_shipped_demo_bundle_is_the_default(npy_exam):
    result = _predict(npy_exam, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["exams"][0]["bundle"]["synthetic_weights"] is True


@pytest.mark.parametrize("make_bad, code", [
    (lambda d: d / "missing", "NOT_FOUND"),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "UNKNOWN_FORMAT"),
])
def test_bad_input_exits_2_with_one_line_naming_the_file(tiny_bundle, tmp_path, make_bad, code):
    bad = make_bad(tmp_path)
    result = _predict(bad, "--models", tiny_bundle)
    assert result.exit_code == 2
    assert code in result.output and bad.name in result.output
    assert "Traceback" not in result.output


def test_a_bad_exam_among_good_ones_is_reported_and_the_rest_scored(npy_exam, tiny_bundle, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    np.save(broken / "sagittal.npy", np.zeros((3, 64, 64), np.float32))
    result = _predict(npy_exam, broken, "--models", tiny_bundle, "--format", "csv")
    assert result.exit_code == 2
    assert str(npy_exam) in result.output and "broken" in result.output


def test_a_broken_bundle_exits_3(npy_exam, tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "axial-acl.onnx").write_bytes(b"tampered")
    result = _predict(npy_exam, "--models", bundle)
    assert result.exit_code == 3 and "CHECKSUM_MISMATCH" in result.output and "axial-acl.onnx" in result.output


def test_a_data_set_root_needs_a_split(phantom_root, tiny_bundle):
    result = _predict(phantom_root, "--models", tiny_bundle)
    assert result.exit_code == 2 and "SPLIT_REQUIRED" in result.output
