"""Evaluation metrics, from scikit-learn: AUC, accuracy, sensitivity, specificity, Youden, bootstrap.

AUC is undefined (NaN) when a set holds one class only; every function says so instead of guessing.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, recall_score, roc_auc_score, roc_curve

BOOTSTRAP_SAMPLES = 2000


def auc(labels, probabilities) -> float:
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, probabilities))


def at_threshold(labels, probabilities, threshold: float = 0.5) -> dict[str, float]:
    """AUC, and accuracy, sensitivity and specificity of the decision p >= threshold."""
    labels = np.asarray(labels).astype(int)
    decisions = (np.asarray(probabilities) >= threshold).astype(int)
    has_pos, has_neg = bool((labels == 1).any()), bool((labels == 0).any())
    return {
        "auc": auc(labels, probabilities),
        "accuracy": float(accuracy_score(labels, decisions)) if labels.size else float("nan"),
        "sensitivity": float(recall_score(labels, decisions, pos_label=1, zero_division=0))
        if has_pos else float("nan"),
        "specificity": float(recall_score(labels, decisions, pos_label=0, zero_division=0))
        if has_neg else float("nan"),
        "threshold": float(threshold),
    }


def youden_threshold(labels, probabilities) -> float:
    """The probability threshold maximising sensitivity + specificity - 1 (0.5 if undefined)."""
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, probabilities)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def _bootstrap_indices(labels: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Resamples of the exams (with replacement), as rows of indices; rows with one class are dropped."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, labels.size, (samples, labels.size))
    picked = labels[index]
    return index[picked.min(axis=1) != picked.max(axis=1)]


def _auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of every row at once, by the Mann-Whitney rank sum (ties count one half).

    This is the statistic `roc_auc_score` computes (a test checks that they agree); it is used
    for the thousands of bootstrap resamples only, where scikit-learn's per-call input validation
    would cost minutes.
    """
    ranks = rankdata(scores, axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sum = (ranks * labels).sum(axis=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def bootstrap_auc_ci(labels, probabilities, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the AUC."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan"), float("nan")
    index = _bootstrap_indices(labels, samples, seed)
    values = _auc_rows(labels[index], probabilities[index])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(labels, probabilities_a, probabilities_b, level: float = 0.95,
                     samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of AUC(b) - AUC(a) on the same exams: the difference, its CI, a two-sided p."""
    labels = np.asarray(labels)
    a, b = np.asarray(probabilities_a), np.asarray(probabilities_b)
    if labels.size == 0 or labels.min() == labels.max():
        nan = float("nan")
        return {"delta": nan, "low": nan, "high": nan, "p_value": nan}
    index = _bootstrap_indices(labels, samples, seed)
    deltas = _auc_rows(labels[index], b[index]) - _auc_rows(labels[index], a[index])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    # Two-sided p: how often the resampled difference falls on the other side of zero.
    p_value = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    return {"delta": auc(labels, b) - auc(labels, a), "low": float(low), "high": float(high),
            "p_value": float(p_value)}
