"""Fitting the plane fusion on the tuning split (never on augmented training predictions)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from mrnet.infer.fusion import FusionModel, all_subsets, subset_key
from mrnet.infer.registry import TASKS, model_key

from . import metrics
from .rundir import RunFolder


def _split(run_dir, plane: str, task: str, split: str) -> tuple[dict[str, float], dict[str, int]]:
    """One model's logits and labels on a split, by exam id."""
    predictions = RunFolder(run_dir).model(model_key(plane, task)).read_predictions()[split]
    return (dict(zip(predictions["exam_id"], predictions["logit"])),
            dict(zip(predictions["exam_id"], predictions["label"].astype(int))))


def fit_fusion(run_dir, planes: tuple[str, ...], tasks: tuple[str, ...] = TASKS) -> tuple[dict, dict]:
    """Per task and plane subset, a FusionModel fitted on tuning logits; and its valid metrics.

    When the tuning split holds one class only, no regression can be fitted: the fusion is then the
    mean of the plane logits (method 'mean-logit'), and says so.
    """
    fusion: dict[str, dict[str, dict]] = {}
    report: dict[str, dict[str, dict]] = {}
    for task in tasks:
        fusion[task], report[task] = {}, {}
        tune, valid = {}, {}
        for plane in planes:  # every plane model saw the same exams and labels
            tune[plane], tune_y = _split(run_dir, plane, task, "tune")
            valid[plane], valid_y = _split(run_dir, plane, task, "valid")
        tune_ids, valid_ids = sorted(tune_y), sorted(valid_y)
        for subset in all_subsets():
            if not set(subset) <= set(planes):
                continue
            x = np.array([[tune[p][i] for p in subset] for i in tune_ids])
            y = np.array([tune_y[i] for i in tune_ids])
            if y.min() != y.max():
                regression = LogisticRegression(C=1.0).fit(x, y)
                weights, bias, method = regression.coef_[0], float(regression.intercept_[0]), "logistic-regression"
            else:
                weights, bias, method = np.full(len(subset), 1.0 / len(subset)), 0.0, "mean-logit"
            model = FusionModel(planes=subset, weights=tuple(float(w) for w in weights), bias=bias, threshold=0.5,
                                method=method)
            tune_p = np.array([model.probability({p: tune[p][i] for p in subset}) for i in tune_ids])
            model = FusionModel(planes=subset, weights=model.weights, bias=bias, method=method,
                                threshold=metrics.youden_threshold(y, tune_p))
            valid_p = np.array([model.probability({p: valid[p][i] for p in subset}) for i in valid_ids])
            fusion[task][subset_key(subset)] = model.to_dict()
            report[task][subset_key(subset)] = {
                "tune_auc": metrics.auc(y, tune_p),
                "valid": metrics.at_threshold([valid_y[i] for i in valid_ids], valid_p, model.threshold)}
    return fusion, report


def fused_predictions(run_dir, planes: tuple[str, ...], tasks: tuple[str, ...] = TASKS,
                      split: str = "valid") -> dict[str, dict[str, np.ndarray]]:
    """Per task, the fused probability of every exam of `split` over all of `planes` (the fusion the
    bundle ships, fitted on the tuning split): {"exam_id", "label", "probability"} arrays."""
    fusion, _ = fit_fusion(run_dir, planes, tasks)
    out = {}
    for task in tasks:
        model = FusionModel.from_dict(fusion[task][subset_key(planes)])
        logits = {}
        for plane in planes:
            logits[plane], labels = _split(run_dir, plane, task, split)
        ids = sorted(labels)
        out[task] = {"exam_id": np.array(ids), "label": np.array([labels[i] for i in ids]),
                     "probability": np.array([model.probability({p: logits[p][i] for p in planes}) for i in ids])}
    return out
