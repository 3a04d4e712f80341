"""Calibrated per-plane probabilities: what a bundle carries, what the Predictor returns, and older
bundles without a calibration, with real ONNX Runtime sessions."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from mrnet.infer.bundle import load_bundle
from mrnet.infer.calibration import PlaneCalibration, plane_probability, sigmoid
from mrnet.infer.errors import BundleError
from mrnet.infer.predictor import Predictor
from mrnet.infer.registry import PLANES, TASKS, model_key


def _exam(npy_exam):
    return {p: np.load(npy_exam / f"{p}.npy") for p in PLANES}


def _strip_calibration(bundle, target):
    """A copy of `bundle` with the manifest an older export wrote: no calibration anywhere."""
    shutil.copytree(bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    for entry in manifest["models"].values():
        del entry["calibration"]
    del manifest["fusion_calibration"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_platt_probability_is_sigmoid_of_a_logit_plus_b():
    calibration = PlaneCalibration(method="platt", a=2.0, b=-1.0)
    assert calibration.probability(0.25) == pytest.approx(1 / (1 + math.exp(0.5)))
    assert plane_probability(0.25, None) == pytest.approx(1 / (1 + math.exp(-0.25)))
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0  # no overflow


def test_the_predictors_plane_probabilities_are_the_bundles_calibration_of_its_logits(tiny_bundle, npy_exam):
    predictor = Predictor(tiny_bundle, device="cpu")
    manifest = predictor.bundle.manifest
    result = predictor.predict(_exam(npy_exam))
    record = json.loads(json.dumps(result.to_dict()))
    assert record["plane_probabilities_calibration"]["calibrated"] is True
    assert record["plane_probabilities_calibration"]["method"] == "platt"
    assert "tuning split (Platt scaling)" in record["plane_probabilities_calibration"]["how"]
    for plane in PLANES:
        for task in TASKS:
            stored = manifest["models"][model_key(plane, task)]["calibration"]
            z = record["plane_logits"][plane][task]
            assert record["plane_probabilities"][plane][task] == pytest.approx(
                1 / (1 + math.exp(-(stored["a"] * z + stored["b"]))), abs=1e-12)
    # The fusion still reads the raw logits.
    for task in TASKS:
        fusion = predictor.bundle.fusion[task]["+".join(PLANES)]
        assert result.tasks[task].probability == pytest.approx(
            fusion.probability({p: result.plane_logits[p][task] for p in PLANES}), abs=1e-12)


def test_a_bundle_without_calibration_loads_and_gives_raw_sigmoids_saying_so(tiny_bundle, npy_exam, tmp_path):
    old = _strip_calibration(tiny_bundle, tmp_path / "old")
    assert all(m.calibration is None for m in load_bundle(old).models.values())
    exam = _exam(npy_exam)
    result = Predictor(old, device="cpu").predict(exam)
    calibrated = Predictor(tiny_bundle, device="cpu").predict(exam)
    assert result.plane_calibration == {"calibrated": False, "method": "none",
                                        "how": "raw sigmoid(logit): this bundle carries no calibration"}
    for plane in PLANES:
        for task in TASKS:
            z = result.plane_logits[plane][task]
            assert z == calibrated.plane_logits[plane][task]
            assert result.plane_probabilities[plane][task] == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-12)
    assert {t: r.probability for t, r in result.tasks.items()} == {t: r.probability
                                                                  for t, r in calibrated.tasks.items()}


def test_a_bundle_with_some_models_calibrated_says_so(tiny_bundle, tmp_path):
    target = tmp_path / "mixed"
    shutil.copytree(tiny_bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    del manifest["models"][model_key(PLANES[0], TASKS[0])]["calibration"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    description = load_bundle(target).plane_calibration
    assert description["calibrated"] is False and description["method"] == "mixed"


@pytest.mark.parametrize("calibration", [{"method": "isotonic", "a": 1.0, "b": 0.0},
                                         {"method": "platt", "a": "NaN", "b": 0.0},
                                         {"method": "platt", "b": 0.0}, "platt"])
def test_a_malformed_calibration_is_refused(tiny_bundle, tmp_path, calibration):
    target = tmp_path / "bad"
    shutil.copytree(tiny_bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["models"][model_key(PLANES[1], TASKS[2])]["calibration"] = calibration
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as caught:
        load_bundle(target)
    assert caught.value.code == "MANIFEST_INVALID" and model_key(PLANES[1], TASKS[2]) in caught.value.message
