"""The demo's handler functions, called directly: prediction, errors, the slice viewer, the examples."""

from __future__ import annotations

import numpy as np
import pytest


from mrnet.app import handlers
from mrnet.app.examples import write_examples
from mrnet.infer.errors import MRNetError
from mrnet.infer.reading import read_exam
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, TASK_TITLES, TASKS


def test_phantom_exam_gives_the_predictors_three_probabilities(phantom_files, predictor):
    out = handlers.predict_files(phantom_files, predictor)
    expected = predictor.predict(read_exam([str(p) for p in phantom_files]))

    assert len(out.probabilities) == len(TASKS)
    for task, row in zip(TASKS, out.findings):
        result = expected.tasks[task]
        decision = "positive" if result.decision else "negative"
        assert out.probabilities[f"{TASK_TITLES[task]}: {decision}"] == pytest.approx(result.probability)
        assert row == [TASK_TITLES[task], round(result.probability, 3), round(result.threshold, 3), decision,
                       "+".join(PLANES)]
        assert out.report["tasks"][task]["probability"] == pytest.approx(result.probability)
    for plane, row in zip(PLANES, out.planes):
        assert row[:3] == [plane, f"“{plane}.npy”", np.load(phantom_files[PLANES.index(plane)]).shape[0]]
        assert row[3:] == [round(expected.plane_probabilities[plane][t], 3) for t in TASKS]
    assert out.viewer.planes == PLANES
    assert out.report["bundle"]["version"] == predictor.bundle.version


def test_a_file_that_is_no_image_is_a_clean_error_with_its_code(tmp_path, predictor):
    notes = tmp_path / "upload" / "c0ffee" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("not an exam")
    with pytest.raises(MRNetError) as caught:
        handlers.predict_files([notes], predictor)
    assert caught.value.code == "UNKNOWN_FORMAT"
    lines = handlers.error_lines(caught.value, hide_folders=[tmp_path / "upload"])
    assert len(lines) == 1 and lines[0].startswith("notes.txt: ") and lines[0].endswith("[UNKNOWN_FORMAT]")
    assert str(tmp_path) not in lines[0]


def test_no_files_is_an_error_too(predictor):
    with pytest.raises(MRNetError) as caught:
        handlers.predict_files([], predictor)
    assert caught.value.code == "NO_FILES"


def test_every_problem_gets_a_line_with_its_code_up_to_a_limit(tmp_path, predictor):
    # npy files whose names name no plane: one problem each.
    count = handlers.MAX_ERROR_LINES + 5
    paths = []
    for k in range(count):
        paths.append(tmp_path / f"knee{k:02d}.npy")
        np.save(paths[-1], np.zeros((2, 2), np.uint8))
    with pytest.raises(MRNetError) as caught:
        handlers.predict_files(paths, predictor)
    lines = handlers.error_lines(caught.value, hide_folders=[tmp_path])
    assert len(lines) == handlers.MAX_ERROR_LINES
    assert all(line.endswith(f"[{caught.value.code}]") for line in lines[:-1])
    assert lines[1].startswith("knee00.npy: ")
    # the summary line plus every problem, less the lines shown
    assert lines[-1] == f"… and {count + 1 - (handlers.MAX_ERROR_LINES - 1)} more problems"


def test_banner_and_model_card_follow_the_bundle(predictor):
    synthetic = predictor.bundle.manifest["provenance"]["synthetic"]
    assert handlers.banner_text(predictor) == (handlers.DEMO_BANNER if synthetic else NOT_FOR_CLINICAL_USE)
    assert handlers.banner_text(predictor).startswith("Not for clinical use")
    card = handlers.bundle_markdown(predictor)
    assert predictor.bundle.version in card
    assert predictor.bundle.manifest["provenance"]["dataset"] in card


def test_the_planes_table_says_whether_its_probabilities_are_calibrated(predictor, tiny_bundle):
    from mrnet.infer.predictor import Predictor

    calibrated = handlers.planes_label(Predictor(tiny_bundle, device="cpu"))  # exported with calibration
    assert "calibrated (Platt scaling fitted on the tuning split)" in calibrated
    expected = predictor.bundle.plane_calibration  # the shipped demo bundle, whichever it is
    label = handlers.planes_label(predictor)
    assert ("calibrated (Platt" in label) == expected["calibrated"]
    assert ("raw sigmoids" in label) == (expected["method"] == "none")


@pytest.mark.slow
def test_both_examples_are_the_same_knee_through_the_whole_reader(tmp_path, predictor):
    examples = write_examples(tmp_path)
    results = [handlers.predict_files(example.files, predictor) for example in examples]
    assert [r.viewer.planes for r in results] == [PLANES, PLANES]
    npy, dicom = (r.report["tasks"] for r in results)
    for task in TASKS:
        # DICOM stores the phantom losslessly, so reading it back must give the same probabilities.
        assert dicom[task]["probability"] == pytest.approx(npy[task]["probability"], abs=1e-6)
    assert [row[1] for row in results[1].planes] != [row[1] for row in results[0].planes]  # series, not files
