"""Calibration: the metrics against hand-computed values and scikit-learn, Platt and temperature fits
that recover known parameters, and a phantom run's report and bundle carrying the calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve

from mrnet.infer.registry import PLANES, TASKS, model_key
from mrnet.train import calibration
from mrnet.train.rundir import RunFolder, read_run


def test_ece_by_hand():
    # Bins of width 1/15: 0.05 -> bin 0, 0.1 -> bin 1, 0.9 -> bin 13, 0.95 and 0.97 -> bin 14.
    # |0 - 0.05| + |1 - 0.1| + |1 - 0.9| + 2 * |0.5 - 0.96| = 1.97, over 5 exams.
    labels, probabilities = [0, 1, 1, 0, 1], [0.05, 0.1, 0.9, 0.95, 0.97]
    assert calibration.expected_calibration_error(labels, probabilities) == pytest.approx(1.97 / 5)
    assert calibration.expected_calibration_error([0, 1], [0.5, 0.5]) == pytest.approx(0.0)


def test_ece_puts_a_probability_on_an_edge_in_the_lower_bin_as_calibration_curve_does():
    # 4 bins: 0.25 is the edge between bins 0 and 1; with 0.2 in bin 0 the two share a bin:
    # |1 - 0.45| / 2 = 0.275 (in bin 1 it would be (0.2 + 0.75) / 2 = 0.475).
    assert calibration.expected_calibration_error([0, 1], [0.2, 0.25], bins=4) == pytest.approx(0.275)
    observed, predicted = calibration_curve([0, 1], [0.2, 0.25], n_bins=4)
    assert list(observed) == [0.5] and list(predicted) == pytest.approx([0.225])


def test_ece_matches_scikit_learns_calibration_curve():
    rng = np.random.default_rng(3)
    probabilities = rng.uniform(0, 1, 300)
    labels = (rng.uniform(0, 1, 300) < probabilities ** 2).astype(int)
    observed, predicted = calibration_curve(labels, probabilities, n_bins=15, strategy="uniform")
    counts, _ = np.histogram(probabilities, bins=np.linspace(0, 1, 16))  # no probability sits on an edge
    expected = float(np.sum(counts[counts > 0] * np.abs(observed - predicted)) / labels.size)
    assert calibration.expected_calibration_error(labels, probabilities) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.05  # p^2 is far from p: the comparison is not between two zeros


def test_brier_by_hand():
    # ((0.8 - 1)^2 + (0.3 - 0)^2 + (0.4 - 1)^2) / 3
    assert calibration.brier_score([1, 0, 1], [0.8, 0.3, 0.4]) == pytest.approx((0.04 + 0.09 + 0.36) / 3)


def test_slope_and_intercept_through_two_groups_by_hand():
    # Two logit values: the logistic fit passes through both groups' observed rates exactly.
    logits = np.array([-1.0] * 10 + [2.0] * 10)
    labels = np.array([1] * 2 + [0] * 8 + [1] * 7 + [0] * 3)  # rates 0.2 and 0.7
    slope = (logit(0.7) - logit(0.2)) / 3.0
    intercept = logit(0.2) + slope
    got = calibration.calibration_slope_intercept(labels, logits)
    assert got == pytest.approx((slope, intercept), abs=1e-3)
    assert slope == pytest.approx(0.7445, abs=1e-4)


def test_slope_and_intercept_of_logits_that_barely_vary():
    # The same two groups at logits -0.001 and 0.002 (a barely trained model's spread): the slope
    # is 1000 times larger, the intercept the same.
    logits = np.array([-1e-3] * 10 + [2e-3] * 10)
    labels = np.array([1] * 2 + [0] * 8 + [1] * 7 + [0] * 3)
    slope = (logit(0.7) - logit(0.2)) / 3e-3
    got = calibration.calibration_slope_intercept(labels, logits)
    assert got == pytest.approx((slope, logit(0.2) + slope * 1e-3), rel=1e-4)


def _minimise_cross_entropy(logits, targets):
    """An independent fit: Nelder-Mead on the cross-entropy of sigmoid(a * logit + b) against targets."""
    def loss(q):
        s = q[0] * logits + q[1]
        return -np.sum(targets * np.log(expit(s)) + (1 - targets) * np.log(expit(-s)))
    return minimize(loss, [1.0, 0.0], method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 40_000}).x


def test_fits_on_a_small_tuning_split_with_flat_logits_match_an_independent_minimisation():
    # 32 exams whose logits sit at 0.07 +- 0.004, as a barely trained demo model's do: scikit-learn
    # on the raw logits stops about 0.5 % short of the optimum here; the fits must reach it.
    rng = np.random.default_rng(5)
    labels = (rng.uniform(size=32) < 0.25).astype(int)
    logits = 0.07 + 0.004 * rng.normal(size=32) + 0.003 * labels
    platt = calibration.fit_platt(logits, labels)
    expected = _minimise_cross_entropy(logits, calibration.smoothed_targets(labels))
    assert (platt.a, platt.b) == pytest.approx(tuple(expected), rel=1e-5)
    assert expected[0] == pytest.approx(200.26, abs=0.01)
    expected = _minimise_cross_entropy(logits, labels.astype(float))
    assert calibration.calibration_slope_intercept(labels, logits) == pytest.approx(tuple(expected), rel=1e-5)


def test_slope_and_intercept_of_calibrated_and_overconfident_probabilities():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 20000)
    labels = (rng.uniform(size=z.size) < expit(z)).astype(int)
    assert calibration.calibration_slope_intercept(labels, z) == pytest.approx((1.0, 0.0), abs=0.06)
    # Logits twice too large (overconfident): slope 1/2.
    assert calibration.calibration_slope_intercept(labels, 2 * z)[0] == pytest.approx(0.5, abs=0.03)


def test_slope_is_undefined_without_two_classes_a_varying_logit_or_overlap():
    assert all(math.isnan(v) for v in calibration.calibration_slope_intercept([1, 1, 1], [0.1, 0.2, 0.3]))
    assert all(math.isnan(v) for v in calibration.calibration_slope_intercept([0, 1, 0], [0.4, 0.4, 0.4]))
    assert all(math.isnan(v) for v in calibration.calibration_slope_intercept([0, 0, 1], [-1.0, 0.0, 1.0]))


def _synthetic(a: float, b: float, n: int = 20000, seed: int = 1):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    return z, (rng.uniform(size=n) < expit(a * z + b)).astype(int)


def test_platt_recovers_known_parameters():
    z, labels = _synthetic(0.6, -1.2)
    fitted = calibration.fit_platt(z, labels)
    assert fitted.method == "platt"
    assert (fitted.a, fitted.b) == pytest.approx((0.6, -1.2), abs=0.05)


def test_platt_recovers_known_parameters_on_logits_that_barely_vary():
    z, labels = _synthetic(0.6, -1.2)
    fitted = calibration.fit_platt(z / 100, labels)
    assert (fitted.a, fitted.b) == pytest.approx((60.0, -1.2), rel=0.06)


def test_temperature_recovers_a_known_temperature():
    z, labels = _synthetic(1 / 2.5, 0.0)
    fitted = calibration.fit_temperature(z, labels)
    assert fitted.b == 0.0 and 1 / fitted.a == pytest.approx(2.5, abs=0.15)


def test_a_shift_that_class_weighting_makes_is_undone_by_platt_not_by_a_temperature():
    # Calibrated logits moved by +1.5, as class-weighted training moves them: Platt's b undoes
    # the shift; a temperature can only shrink the logits towards 0.5.
    z, labels = _synthetic(1.0, 0.0, seed=2)
    held_z, held_labels = _synthetic(1.0, 0.0, seed=3)
    platt = calibration.fit_platt(z + 1.5, labels)
    temperature = calibration.fit_temperature(z + 1.5, labels)
    assert (platt.a, platt.b) == pytest.approx((1.0, -1.5), abs=0.06)
    ece = {name: calibration.expected_calibration_error(held_labels, expit(c.a * (held_z + 1.5) + c.b))
           for name, c in (("platt", platt), ("temperature", temperature))}
    assert ece["platt"] < 0.02 and ece["temperature"] > 0.05


def test_platt_stays_finite_on_separated_tuning_exams_and_never_flips_a_ranking():
    separated = calibration.fit_platt([-2.0, -1.0, 1.0, 2.0], [0, 0, 1, 1])
    assert math.isfinite(separated.a) and separated.a > 0 and expit(2 * separated.a + separated.b) < 0.95
    # The only positive has the lowest logit: the unconstrained fit would give a < 0. Platt's
    # targets are 2/3 for the positive and 1/5 for the three negatives; their mean is the constant.
    flipped = calibration.fit_platt([-2.0, 1.0, 1.5, 2.0], [1, 0, 0, 0])
    assert flipped.a == 0.0 and expit(flipped.b) == pytest.approx((2 / 3 + 3 / 5) / 4)


def test_phantom_run_calibration_lowers_the_ece_of_the_models_that_are_far_off(tiny_run):
    """On the tiny phantom run (1 epoch, 24 train / 8 valid exams), the class-weighted models' raw
    sigmoids sit near 0.5 whatever the label; Platt scaling, fitted on the tuning exams only, moves
    them to the tuning base rate and below. Asserted: over the models whose raw valid ECE exceeds
    0.2, the mean ECE after Platt scaling is lower than before."""
    run = read_run(tiny_run)
    models = calibration.calibrate_run(tiny_run)
    assert sorted(models) == sorted(model_key(p, t) for p in PLANES for t in TASKS)
    for key, m in models.items():
        predictions = RunFolder(tiny_run).model(key).read_predictions()
        assert m.tune_exams == len(run.tune_ids) == predictions["tune"]["label"].size
        assert m.valid_exams == predictions["valid"]["label"].size
        assert m.raw["ece"] == pytest.approx(calibration.expected_calibration_error(
            predictions["valid"]["label"], predictions["valid"]["probability"]), abs=1e-5)
    far_off = [m for m in models.values() if m.raw["ece"] > 0.2]
    assert far_off, "no model with a raw ECE above 0.2: the assertion would be empty"
    assert np.mean([m.calibrated["ece"] for m in far_off]) < np.mean([m.raw["ece"] for m in far_off])


def test_the_run_report_has_a_calibration_section_with_its_diagram(tiny_run):
    report = (tiny_run / "report.md").read_text()
    section = report[report.index("## Calibration"):]
    assert "![reliability diagrams](calibration.png)" in section
    assert (tiny_run / "calibration.png").stat().st_size > 10_000
    models = calibration.calibrate_run(tiny_run)
    for key, m in models.items():
        assert f"| {key} | {m.platt.a:.3f} | {m.platt.b:+.3f} | {m.raw['ece']:.3f} → {m.calibrated['ece']:.3f} |" \
            in section
    for task in TASKS:
        assert f"| fused {task} | {'+'.join(PLANES)} |" in section


def test_the_bundle_carries_each_models_calibration_and_the_fused_tasks(tiny_bundle, tiny_run):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    models = calibration.calibrate_run(tiny_run)
    for key, entry in manifest["models"].items():
        stored = entry["calibration"]
        assert stored["method"] == "platt"
        assert (stored["a"], stored["b"]) == (models[key].platt.a, models[key].platt.b)
        assert stored["fitted_on"]["split"] == "tune" and stored["fitted_on"]["exams"] == models[key].tune_exams
        assert stored["valid"]["raw"]["ece"] == pytest.approx(models[key].raw["ece"])
        assert stored["valid"]["calibrated"]["brier"] == pytest.approx(models[key].calibrated["brier"])
    for task in TASKS:
        fused = manifest["fusion_calibration"][task]
        assert fused["planes"] == "+".join(PLANES) and fused["split"] == "valid"
        assert 0 <= fused["ece"] <= 1 and 0 <= fused["brier"] <= 1
