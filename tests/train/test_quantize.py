"""int8 export: checked QDQ files, a dynamic slice axis, the AUC gate, and the Predictor's choice.

The tiny models of `tiny_run` (one epoch on 24 phantom exams, 8 valid) are no accuracy test; what
is tested is the machinery: calibration, the files, what the manifest records, and that a model
failing the gate ships in fp32 only. Most tests quantise a copy of `tiny_bundle` in place with
`quantize_run` (what `export_run` does inside its staging folder) instead of exporting again.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import onnx
import pytest

from mrnet.infer.bundle import available_precisions, load_bundle, sha256_file
from mrnet.infer.errors import BundleError
from mrnet.infer.predictor import Predictor
from mrnet.infer.registry import PLANES, TASKS, model_key
from mrnet.train import quantize
from mrnet.train.rundir import read_run

KEYS = [model_key(p, t) for p in PLANES for t in TASKS]


def _quantized_copy(tiny_bundle, tiny_run, target, **gates):
    """Copy the fp32 bundle and quantise it as export_run would; returns (folder, report)."""
    shutil.copytree(tiny_bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    report = quantize.quantize_run(target, manifest["models"], read_run(tiny_run), manifest["fusion"], **gates)
    manifest["quantization"] = report.manifest
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target, report


@pytest.fixture(scope="module")
def int8_bundle(tiny_bundle, tiny_run, tmp_path_factory):
    """Quantised with an always-open gate (|delta| <= 1): every model whose AUC is defined ships int8."""
    return _quantized_copy(tiny_bundle, tiny_run, tmp_path_factory.mktemp("int8") / "bundle", gate=1.0)


def _valid_has_both_classes(tiny_run, task):
    from mrnet.infer.dataset import load_split

    labels = load_split(read_run(tiny_run).spec.data, "valid").labels[task]
    return labels.min() != labels.max()


def test_int8_files_are_checked_qdq_models_with_a_dynamic_slice_axis(int8_bundle, tiny_run):
    import onnxruntime as ort

    folder, report = int8_bundle
    manifest = json.loads((folder / "manifest.json").read_text())
    shipped = [k for k in KEYS if "int8" in manifest["models"][k]]
    assert shipped and tuple(shipped) == report.int8_keys
    for key in shipped:
        entry = manifest["models"][key]
        path = folder / entry["int8"]["file"]
        assert entry["int8"]["sha256"] == sha256_file(path) and path.name == f"{key}.int8.onnx"
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        ops = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # preprocessing inside
        meta = {p.key: p.value for p in model.metadata_props}
        assert (meta["plane"], meta["task"], meta["precision"]) == (entry["plane"], entry["task"], "int8")
        assert meta["calibration_fingerprint"] == manifest["quantization"]["calibration"]["fingerprint"]
    session = ort.InferenceSession(str(folder / f"{shipped[0]}.int8.onnx"), providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(folder / f"{shipped[0]}.onnx"), providers=["CPUExecutionProvider"])
    for slices in (1, 17, 61):
        volume = np.random.default_rng(slices).integers(0, 256, (slices, 256, 256), dtype=np.uint8)
        logit, cam = session.run(["logit", "cam"], {"volume": volume})
        assert logit.shape == (1,) and cam.shape == (slices, 7, 7) and np.isfinite(cam).all()
        reference = fp32.run(["logit"], {"volume": volume})[0]
        assert abs(float(logit[0] - reference[0])) < 0.5  # quantised, not broken


def test_manifest_records_precision_calibration_and_deltas(int8_bundle, tiny_run):
    folder, report = int8_bundle
    record = json.loads((folder / "manifest.json").read_text())["quantization"]
    run = read_run(tiny_run)
    split = quantize.calibration_split(run)
    assert split.ids == tuple(run.tune_ids)
    assert record["calibration"] == {"split": "tune", "exams": len(run.tune_ids),
                                     "fingerprint": quantize.calibration_fingerprint(split, PLANES)}
    assert record["calibration"]["fingerprint"].startswith("sha256:")
    assert record["method"]["format"] == "QDQ" and record["gate"]["max_abs_auc_delta"] == 1.0
    assert record["precision"] == ("int8" if len(report.int8_keys) == 9 else "mixed")
    for key in KEYS:
        result = record["models"][key]
        defined = _valid_has_both_classes(tiny_run, key.split("-")[1])
        assert result["passed"] == defined  # an open gate fails only an AUC that cannot be measured
        if defined:
            assert math.isclose(result["auc_delta"], result["int8_auc"] - result["fp32_auc"], abs_tol=1e-12)
        # An open gate accepts the first ladder step: every convolution quantised.
        assert result["quantized"] == quantize.LADDER[0][0] and 0 <= result["tune_pairs_reordered"] <= 1
        assert result["cam_max_rel_diff"] >= 0 and result["logit_max_abs_diff"] >= 0
    assert set(record["fusion"]) == set(TASKS)
    for task, fused in record["fusion"].items():
        assert {"fp32_auc", "int8_auc", "auc_delta", "passed"} <= set(fused)


def test_discordance_counts_reordered_pairs():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    assert quantize.discordance(a, a + 5) == 0.0
    assert quantize.discordance(a, a[::-1].copy()) == 1.0
    assert quantize.discordance(a, np.array([0.2, 0.1, 0.3, 0.4])) == 1 / 6


def test_a_model_failing_the_gate_keeps_fp32_and_the_export_says_so(tiny_bundle, tiny_run, tmp_path):
    folder, report = _quantized_copy(tiny_bundle, tiny_run, tmp_path / "closed", gate=-1.0)
    manifest = json.loads((folder / "manifest.json").read_text())
    steps = [name for name, _ in quantize.LADDER]
    assert all(r["quantized"] in steps for r in manifest["quantization"]["models"].values())
    assert report.int8_keys == () and manifest["quantization"]["precision"] == "fp32"
    assert not any("int8" in entry for entry in manifest["models"].values())
    assert not list(folder.glob("*.int8.onnx"))  # no file left behind that the manifest does not list
    assert len(report.messages) == 9 and all("keeping fp32" in m for m in report.messages)
    assert available_precisions(manifest) == {"fp32"}
    with pytest.raises(BundleError) as caught:
        Predictor(folder, device="cpu", precision="int8")
    assert caught.value.code == "PRECISION_UNAVAILABLE"
    assert Predictor(folder, device="cpu", precision="auto").precision == "fp32"


def test_a_task_failing_the_fused_gate_keeps_fp32_for_its_models(tiny_bundle, tiny_run, tmp_path):
    folder, report = _quantized_copy(tiny_bundle, tiny_run, tmp_path / "fused", gate=1.0, fused_gate=-1.0)
    record = json.loads((folder / "manifest.json").read_text())["quantization"]
    assert report.int8_keys == ()
    failed = [m for m in report.messages if "fused int8 fails" in m]
    assert len(failed) == sum(_valid_has_both_classes(tiny_run, t) for t in TASKS)
    assert all(not r["passed"] for r in record["models"].values())
    assert all(f["int8_models"] == 0 for f in record["fusion"].values())


def test_predictor_runs_int8_on_cpu_and_reports_a_mixed_set(int8_bundle, npy_exam, tmp_path):
    from mrnet.infer.reading import read_exam

    folder, report = int8_bundle
    exam = read_exam(npy_exam)
    for precision in ("auto", "int8"):
        predictor = Predictor(folder, device="cpu", precision=precision)
        assert predictor.provider == "CPUExecutionProvider"
        for key in report.int8_keys:
            assert predictor.bundle.models[key].path.name == f"{key}.int8.onnx"
            assert predictor.bundle.models[key].precision == "int8"
    int8 = predictor.predict(exam)
    fp32 = Predictor(folder, device="cpu", precision="fp32").predict(exam)
    assert fp32.precision == "fp32"
    for task in TASKS:
        assert abs(int8.tasks[task].probability - fp32.tasks[task].probability) < 0.1

    # One model without an int8 file (it failed the gate): int8 runs that one in fp32, and says so.
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    for key in KEYS[1:]:
        manifest["models"][key].setdefault("int8", {"file": f"{key}.onnx", "sha256": manifest["models"][key]["sha256"]})
    manifest["models"][KEYS[0]].pop("int8", None)
    (partial / "manifest.json").write_text(json.dumps(manifest))
    assert available_precisions(manifest) == {"fp32", "int8"}
    bundle = load_bundle(partial, precision="int8")
    assert bundle.models[KEYS[0]].precision == "fp32" and bundle.models[KEYS[0]].path.name == f"{KEYS[0]}.onnx"
    predictor = Predictor(partial, device="cpu", precision="auto")
    assert predictor.precision == "mixed"
    runtime = predictor.predict(exam).to_dict()["runtime"]
    assert runtime["precision"] == "mixed" and runtime["model_precisions"][KEYS[0]] == "fp32"
    assert runtime["model_precisions"][KEYS[1]] == "int8"


def test_export_cli_rejects_an_unknown_precision(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from mrnet.train.cli import app

    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "b"), "--precision", "fp16",
                                      "--quiet"])
    assert result.exit_code == 2 and "BAD_OPTION" in result.output


@pytest.mark.slow
def test_export_cli_writes_an_int8_bundle(tiny_run, tmp_path, capsys):
    from typer.testing import CliRunner

    from mrnet.train.cli import app

    out = tmp_path / "int8"
    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(out), "--precision", "int8", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["quantization"]
    assert "int8 gate on valid" in result.output and f"int8 models: {record['int8_models']} of 9" in result.output
    for key, result_ in record["models"].items():
        assert ("int8" in manifest["models"][key]) == result_["passed"]
        if not result_["passed"]:
            assert f"{key}: int8 fails the gate" in result.output or "fused int8 fails" in result.output
    load_bundle(out, precision="int8" if record["int8_models"] else "fp32")  # every sha256 checks out
