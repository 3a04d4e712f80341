"""Export: nine checked ONNX files, parity with torch, metadata that round-trip into the manifest."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from mrnet.infer.bundle import load_bundle
from mrnet.infer.registry import PLANES, PREPROCESSING_VERSION, TASKS, model_key
from mrnet.train.checkpoint import load_torch
from mrnet.train.export import ExportError, check_parity, export_onnx
from mrnet.train.model import MRNet


def test_bundle_holds_nine_checked_models_with_metadata(tiny_bundle, tiny_run):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert sorted(manifest["models"]) == sorted(model_key(p, t) for p in PLANES for t in TASKS)
    assert manifest["provenance"]["synthetic"] is True
    assert "Not for clinical use" in manifest["notice"]
    for key, entry in manifest["models"].items():
        model = onnx.load(str(tiny_bundle / entry["file"]))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 18
        meta = {p.key: p.value for p in model.metadata_props}
        assert (meta["plane"], meta["task"], meta["preprocessing"]) == (entry["plane"], entry["task"],
                                                                        PREPROCESSING_VERSION)
        for name in ("backbone", "eps", "retrain_pct", "protocol", "toolkit_version", "data_fingerprint",
                     "metrics_tune", "metrics_valid"):
            assert name in meta, name
        assert json.loads(meta["metrics_valid"]) == entry["metrics"]["valid"]
        assert meta["data_fingerprint"] == manifest["provenance"]["data_fingerprint"]
        inputs = model.graph.input[0]
        assert inputs.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert [d.dim_param or d.dim_value for d in inputs.type.tensor_type.shape.dim][1:] == [256, 256]
        assert entry["parity_max_abs_diff"] < 1e-4
    load_bundle(tiny_bundle)  # verifies every sha256 and the grid


def test_exported_graph_matches_torch_at_every_slice_count(tiny_bundle, tiny_run):
    import onnxruntime as ort

    best = load_torch(tiny_run / "models" / "axial-acl" / "best.pt")
    net = MRNet(best["backbone"]).eval()
    net.load_state_dict(best["model"])
    session = ort.InferenceSession(str(tiny_bundle / "axial-acl.onnx"), providers=["CPUExecutionProvider"])
    for slices in (1, 17, 61, 128):
        volume = np.random.default_rng(slices).integers(0, 256, (slices, 256, 256), dtype=np.uint8)
        logit, cam = session.run(["logit", "cam"], {"volume": volume})
        with torch.no_grad():
            expected_logit, expected_cam = net.forward_volume_with_cam(torch.from_numpy(volume))
        assert cam.shape == (slices, 7, 7)
        np.testing.assert_allclose(logit, expected_logit.numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(cam, expected_cam.numpy(), rtol=1e-3, atol=1e-4)


def test_parity_check_fails_loudly(tmp_path):
    net = MRNet("tiny").eval()
    path = tmp_path / "model.onnx"
    export_onnx(net, path)
    assert check_parity(net, path) < 1e-4
    with torch.no_grad():
        net.classifier.bias += 0.01  # the torch model no longer matches the file
    with pytest.raises(ExportError) as caught:
        check_parity(net, path)
    assert caught.value.code == "PARITY_FAILED"


def test_export_refuses_a_non_empty_folder(tiny_run, tiny_bundle):
    from typer.testing import CliRunner

    from mrnet.train.cli import app

    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(tiny_bundle), "--quiet"])
    assert result.exit_code == 2 and "OUTPUT_NOT_EMPTY" in result.output
