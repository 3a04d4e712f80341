"""Metrics agree with scikit-learn computed by hand on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from mrnet.train import metrics


@pytest.fixture
def predictions():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.25, 200), 0, 1)
    return labels, scores


def test_threshold_metrics_match_the_confusion_matrix(predictions):
    labels, scores = predictions
    result = metrics.at_threshold(labels, scores, 0.5)
    tn, fp, fn, tp = confusion_matrix(labels, scores >= 0.5).ravel()
    assert result["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["accuracy"] == pytest.approx((tp + tn) / len(labels))
    assert result["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert result["specificity"] == pytest.approx(tn / (tn + fp))


def test_youden_threshold_maximises_sensitivity_plus_specificity(predictions):
    labels, scores = predictions
    best = metrics.youden_threshold(labels, scores)
    j = lambda t: sum(metrics.at_threshold(labels, scores, t)[k] for k in ("sensitivity", "specificity"))  # noqa: E731
    assert all(j(best) >= j(t) - 1e-12 for t in np.unique(scores))


def test_one_class_gives_nan_auc_not_a_crash():
    assert np.isnan(metrics.auc([1, 1, 1], [0.2, 0.4, 0.9]))
    assert metrics.youden_threshold([0, 0], [0.1, 0.2]) == 0.5


def test_bootstrap_ci_brackets_the_auc_and_paired_test_is_antisymmetric(predictions):
    labels, scores = predictions
    low, high = metrics.bootstrap_auc_ci(labels, scores, samples=500)
    assert low < metrics.auc(labels, scores) < high
    noisy = np.clip(scores + np.random.default_rng(1).normal(0, 0.3, scores.size), 0, 1)
    forward = metrics.paired_bootstrap(labels, noisy, scores, samples=500)
    backward = metrics.paired_bootstrap(labels, scores, noisy, samples=500)
    assert forward["delta"] == pytest.approx(-backward["delta"])
    assert forward["delta"] > 0 and forward["p_value"] < 0.05
    same = metrics.paired_bootstrap(labels, scores, scores, samples=200)
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_bootstrap_auc_statistic_is_scikit_learns_auc():
    from mrnet.train.metrics import _auc_rows

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, (50, 40))
    labels[:, 0], labels[:, 1] = 0, 1
    scores = np.round(rng.uniform(0, 1, (50, 40)), 1)  # rounded: many ties
    expected = [roc_auc_score(y, p) for y, p in zip(labels, scores)]
    np.testing.assert_allclose(_auc_rows(labels, scores), expected, rtol=1e-12)
