"""The knee phantom: determinism, prevalence, orientation conventions, lesions where they belong."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mrnet.infer.synthetic import phantom
from mrnet.infer.synthetic.dataset import write_dataset
from mrnet.infer.synthetic.phantom import T, PhantomConfig, draw_exam, draw_labels, render_tissues
from mrnet.infer.registry import MRNET_PREVALENCE, PLANES, TASKS
from mrnet.train.cli import app


def test_same_seed_same_exam_and_different_seed_differs():
    a, _ = phantom.make_exam(seed=11)
    b, _ = phantom.make_exam(seed=11)
    c, _ = phantom.make_exam(seed=12)
    for plane in PLANES:
        assert np.array_equal(a[plane], b[plane])
    assert any(a[p].shape != c[p].shape or not np.array_equal(a[p], c[p]) for p in PLANES)


def test_dataset_is_deterministic_whatever_the_worker_count(tmp_path):
    write_dataset(tmp_path / "one", 3, 2, seed=5, config=PhantomConfig(slice_range=(17, 18)), workers=1)
    write_dataset(tmp_path / "two", 3, 2, seed=5, config=PhantomConfig(slice_range=(17, 18)), workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 5 * 3 + 6 + 1
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_prevalence_follows_mrnet_and_lesions_imply_abnormal():
    labels = draw_labels(1130, MRNET_PREVALENCE, np.random.default_rng(0))
    for task in TASKS:
        assert np.mean([y[task] for y in labels]) == pytest.approx(MRNET_PREVALENCE[task], abs=0.002)
    assert all(y["abnormal"] for y in labels if y["acl"] or y["meniscus"])


def test_phantom_json_matches_the_labels(phantom_root):
    record = json.loads((phantom_root / "phantom.json").read_text())
    assert record["synthetic"] is True
    acl = dict(line.split(",") for line in (phantom_root / "train-acl.csv").read_text().split())
    for exam_id, label in acl.items():
        exam = record["exams"][exam_id]
        assert exam["labels"]["acl"] == int(label)
        assert ("acl_tear" in exam["findings"]) == (label == "1")
        if label == "1":
            sagittal = exam["lesion_boxes"]["acl_tear"]["sagittal"]
            first, last = sagittal["slices"]
            r0, c0, r1, c1 = sagittal["box"]
            assert 0 <= first <= last and 0 <= r0 <= r1 < 256 and 0 <= c0 <= c1 < 256
        abnormal_findings = {"effusion", "bone_bruise", "cartilage_defect", "acl_tear", "meniscal_tear"}
        assert bool(set(exam["findings"]) & abnormal_findings) == bool(exam["labels"]["abnormal"])


def _centre(mask, axis):
    """Mean index of a tissue mask along one array axis (0 slice, 1 row, 2 column)."""
    return np.nonzero(mask)[axis].mean()


@pytest.fixture(scope="module")
def straight_right_knee():
    spec = draw_exam("0000", {"abnormal": 0, "acl": 0, "meniscus": 0}, PhantomConfig(), seed=1)
    spec.rotation = np.eye(3)
    spec.translation = np.zeros(3)
    spec.laterality = "right"
    return spec


def test_orientation_conventions(straight_right_knee):
    spec = straight_right_knee
    tissues = {plane: render_tissues(spec, plane)[0] for plane in PLANES}
    # Patella is anterior, the popliteal vessel posterior; the femur superior, the tibia inferior.
    axial, coronal, sagittal = tissues["axial"], tissues["coronal"], tissues["sagittal"]
    assert _centre(axial == T["vessel"], 1) > 160  # axial: anterior at the top, vessel near the bottom
    assert _centre(axial[:, :128] == T["marrow"], 0) < _centre(axial[:, 128:] == T["marrow"], 0) + 5
    top, bottom = sagittal[:, :100], sagittal[:, 156:]
    assert (top == T["marrow"]).sum() > 0 and (bottom == T["marrow"]).sum() > 0
    assert _centre(sagittal == T["vessel"], 2) > 140  # sagittal: anterior on the left, vessel to the right
    assert _centre(coronal == T["vessel"], 0) < coronal.shape[0] / 2  # coronal: slices posterior -> anterior
    # Axial slices run superior -> inferior: the femoral shaft fills the first slices, not the last.
    shaft_first = (axial[0] == T["marrow"]).sum()
    assert shaft_first > 0
    # Sagittal slices run patient right -> left: for a right knee the medial condyle comes last.
    menisci = np.nonzero((sagittal == T["meniscus"]).any(axis=(1, 2)))[0]
    assert menisci.size > 0


def test_left_knee_is_the_mirror_of_the_right(straight_right_knee):
    spec = straight_right_knee
    right = render_tissues(spec, "coronal")[0]
    spec.laterality = "left"
    left = render_tissues(spec, "coronal")[0]
    spec.laterality = "right"
    assert np.mean(left[:, :, ::-1] == right) > 0.97


@pytest.mark.parametrize("labels, tissue, healthy, clear_planes", [
    ({"abnormal": 1, "acl": 1, "meniscus": 0}, "torn_acl", "ligament", ("sagittal",)),
    ({"abnormal": 1, "acl": 0, "meniscus": 1}, "meniscal_tear", "meniscus", ("sagittal", "coronal")),
])
def test_lesions_show_where_a_radiologist_looks(labels, tissue, healthy, clear_planes):
    config = PhantomConfig(difficulty=0.5)
    spec = draw_exam("0000", labels, config, 4)
    volumes, _ = phantom.render_exam(spec, config)
    contrast = {}
    for plane in PLANES:
        tissues, _ = render_tissues(spec, plane)
        assert (tissues == T[tissue]).any(), plane
        contrast[plane] = abs(volumes[plane][tissues == T[tissue]].mean()
                              - volumes[plane][tissues == T[healthy]].mean())
    weaker = [p for p in PLANES if p not in clear_planes]
    assert min(contrast[p] for p in clear_planes) > max(contrast[p] for p in weaker) > 0, contrast


def test_synth_cli_writes_the_layout(tmp_path):
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "set"), "--train", "2", "--valid", "1",
                                      "--slices", "17-17", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "set").glob("*.csv")) == sorted(
        f"{s}-{t}.csv" for s in ("train", "valid") for t in TASKS)
    assert (tmp_path / "set" / "valid" / "axial" / "0002.npy").exists()
    again = CliRunner().invoke(app, ["synth", str(tmp_path / "set")])
    assert again.exit_code == 2 and "OUTPUT_NOT_EMPTY" in again.output
