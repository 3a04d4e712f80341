"""Bundle verification and plane fusion, with real ONNX Runtime sessions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from mrnet.infer.bundle import load_bundle, sha256_file
from mrnet.infer.errors import BundleError
from mrnet.infer.fusion import all_subsets, subset_key
from mrnet.infer.predictor import Predictor
from mrnet.infer.registry import PLANES, TASKS


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    return target


def _manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def _code(callable_):
    with pytest.raises(BundleError) as caught:
        callable_()
    return caught.value.code


def test_a_tampered_model_is_refused(bundle_copy):
    path = bundle_copy / "sagittal-acl.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _code(lambda: load_bundle(bundle_copy)) == "CHECKSUM_MISMATCH"


def test_a_missing_model_file_and_an_incomplete_grid_are_refused(bundle_copy):
    (bundle_copy / "axial-abnormal.onnx").unlink()
    assert _code(lambda: load_bundle(bundle_copy)) == "MODEL_MISSING"
    manifest = _manifest(bundle_copy)
    del manifest["models"]["axial-abnormal"]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    assert _code(lambda: load_bundle(bundle_copy)) == "INCOMPLETE_GRID"


def test_metadata_that_disagree_with_the_manifest_are_refused(bundle_copy):
    path = bundle_copy / "coronal-meniscus.onnx"
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "task":
            prop.value = "acl"
    onnx.save(model, str(path))
    manifest = _manifest(bundle_copy)
    manifest["models"]["coronal-meniscus"]["sha256"] = sha256_file(path)  # a consistent checksum, wrong content
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    load_bundle(bundle_copy)
    assert _code(lambda: Predictor(bundle_copy, device="cpu")) == "METADATA_MISMATCH"


def test_a_folder_without_manifest_and_a_foreign_schema_are_refused(bundle_copy, tmp_path):
    assert _code(lambda: load_bundle(tmp_path / "nothing")) == "BUNDLE_NOT_FOUND"
    assert _code(lambda: load_bundle(tmp_path)) == "MANIFEST_MISSING"
    manifest = _manifest(bundle_copy)
    manifest["schema_version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    assert _code(lambda: load_bundle(bundle_copy)) == "SCHEMA_VERSION"


def test_fusion_covers_every_plane_subset(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    for task in TASKS:
        assert sorted(bundle.fusion[task]) == sorted(subset_key(s) for s in all_subsets())
        assert len(bundle.fusion[task]) == 7


@pytest.mark.parametrize("planes", [("axial", "coronal", "sagittal"), ("sagittal",), ("axial", "coronal")])
def test_prediction_fuses_exactly_the_planes_present(tiny_bundle, npy_exam, planes):
    predictor = Predictor(tiny_bundle, device="cpu")
    volumes = {p: np.load(npy_exam / f"{p}.npy") for p in planes}
    result = predictor.predict(volumes)
    assert result.planes == planes and result.provider == "CPUExecutionProvider"
    for task in TASKS:
        fused = result.tasks[task]
        assert fused.planes == planes
        model = predictor.bundle.fusion[task][subset_key(planes)]
        logits = {p: result.plane_logits[p][task] for p in planes}
        assert fused.probability == pytest.approx(model.probability(logits), abs=1e-6)
        assert fused.decision == (fused.probability >= model.threshold)
        for plane in planes:
            assert result.cams[plane][task].shape == (volumes[plane].shape[0], 7, 7)
    assert set(result.plane_probabilities) == set(planes)
    assert "Not for clinical use" in result.notice and "synthetic" in result.notice
    record = result.to_dict()
    assert json.loads(json.dumps(record))["bundle"]["version"] == predictor.bundle.version


def test_cuda_that_cannot_be_honoured_is_an_error(tiny_bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            predictor = Predictor(tiny_bundle, device="cuda")
        except Exception as error:  # noqa: BLE001 - no usable GPU here: it must be the typed error
            assert getattr(error, "code", None) == "CUDA_UNAVAILABLE"
        else:
            assert predictor.provider == "CUDAExecutionProvider"
