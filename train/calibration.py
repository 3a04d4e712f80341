"""Calibrating the per-plane probabilities on the tuning split, and measuring calibration on valid.

What ships is Platt scaling, p = sigmoid(a * logit + b), fitted per model on the tuning split's
logits (predictions.csv, "tune" rows). Temperature scaling, p = sigmoid(logit / T), is fitted and
reported beside it. Why Platt: the models are trained with class-weighted BCE, which moves every
logit by about log(negatives / positives) -- a shift of the decision boundary, not a change of
scale -- and a temperature cannot move a boundary; b can. Measured on the `make demo` run (phantom
data seed 1, 160 train of which 32 tune, 40 valid exams; preset demo, run seed 0; the FGSM-retrained
models that the bundle ships), mean of the nine on valid:

    ECE    raw 0.237   Platt 0.083   temperature 0.162
    Brier  raw 0.248   Platt 0.179   temperature 0.204

The demo's logits sit close together (axial ACL: 0.068 to 0.076 on every exam, 25 % positive):
to bring such logits below 0.5 a temperature would have to be negative, so for four of the nine
models its best fit is T = infinity, a constant 0.5 (Brier 0.250), while Platt's b moves them down
(axial ACL: ECE 0.293 raw, 0.031 Platt, 0.275 temperature). Temperature won on two models by ECE
(axial abnormal 0.059 against 0.063, coronal ACL 0.102 against 0.144), Platt on the other seven.

Definitions (on the valid split, for the raw sigmoid, the calibrated probability and the fused task
probability alike):

- ECE (expected calibration error): 15 equal-width bins on [0, 1]; bin k holds the probabilities in
  (k/15, (k+1)/15] (the first also holds 0), as scikit-learn's `calibration_curve` bins them; ECE is
  sum_k (n_k / N) * |mean label in k - mean probability in k|, empty bins contributing nothing.
- Brier score: mean (p - y)^2 (`sklearn.metrics.brier_score_loss`).
- Calibration slope and intercept: the logistic regression y ~ sigmoid(intercept + slope * logit(p))
  fitted without a penalty (Cox's logistic recalibration, both fitted together); a calibrated
  model has slope 1 and intercept 0. Undefined (NaN) when the valid split holds one class, when the
  probability is constant, or when one threshold separates the classes (the maximum-likelihood
  slope is then infinite).

Fitting uses scikit-learn's LogisticRegression on the one logit, without a penalty, on Platt's
(1999) smoothed targets: positives count as (N+ + 1) / (N+ + 2) and negatives as 1 / (N- + 2) (each
exam entered twice, once per class, weighted by its target). With tuning splits of a few dozen exams
a model often separates them perfectly, and without smoothing a and b would run off to infinity.
A fitted a below zero (the model ranks its tuning exams against their labels) is set to zero, the
constrained optimum of the same convex fit: such a model gets the tuning base rate, not a flipped
ranking.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit as sigmoid
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from mrnet.infer.calibration import PlaneCalibration
from mrnet.infer.fusion import FusionModel, subset_key
from mrnet.infer.registry import TASKS, model_key

from . import metrics
from .rundir import RunFolder

ECE_BINS = 15


def expected_calibration_error(labels, probabilities, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width bins, weighted by the exams in each (see the module docstring)."""
    labels, probabilities = np.asarray(labels, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
    if labels.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], probabilities)  # calibration_curve's binning
    # n_k * |mean label - mean probability| is |sum of labels - sum of probabilities| within bin k.
    gap = np.abs(np.bincount(index, labels, bins) - np.bincount(index, probabilities, bins))
    return float(gap.sum() / labels.size)


def brier_score(labels, probabilities) -> float:
    labels = np.asarray(labels)
    return float(brier_score_loss(labels, probabilities, pos_label=1)) if labels.size else float("nan")


def _logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
              intercept: bool = True) -> tuple[float, float]:
    """(coefficient, intercept) of y ~ sigmoid(coefficient * x + intercept), without a penalty.

    scikit-learn fits x standardised, mapped back after: a barely trained model's logits span
    0.01, and on so flat a problem lbfgs stops at its tolerance long before the optimum.
    """
    centre = float(x.mean()) if intercept else 0.0
    scale = float(np.sqrt(np.mean((x - centre) ** 2)))
    fit = LogisticRegression(C=np.inf, fit_intercept=intercept, tol=1e-10, max_iter=10_000)
    fit.fit(((x - centre) / scale)[:, None], y, sample_weight=weights)
    coefficient = float(fit.coef_[0][0]) / scale
    return coefficient, float(fit.intercept_[0]) - coefficient * centre  # intercept_ is 0.0 without one


def calibration_slope_intercept(labels, logits) -> tuple[float, float]:
    """(slope, intercept) of the unpenalised logistic regression of the labels on the logits."""
    labels, logits = np.asarray(labels).astype(int), np.asarray(logits, dtype=np.float64)
    auc = metrics.auc(labels, logits)
    # One class, a constant logit (slope and intercept not identifiable), or classes that one
    # threshold separates (no finite maximum): undefined.
    if math.isnan(auc) or auc in (0.0, 1.0) or np.ptp(logits) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            return _logistic(logits, labels)
        except ConvergenceWarning:
            return float("nan"), float("nan")


def calibration_metrics(labels, logits) -> dict[str, float]:
    """ECE, Brier score, slope and intercept of the probabilities sigmoid(logits)."""
    probabilities = sigmoid(logits)
    slope, intercept = calibration_slope_intercept(labels, logits)
    return {"ece": expected_calibration_error(labels, probabilities), "brier": brier_score(labels, probabilities),
            "slope": slope, "intercept": intercept}


def smoothed_targets(labels) -> np.ndarray:
    """Platt's targets: (N+ + 1) / (N+ + 2) for a positive, 1 / (N- + 2) for a negative."""
    labels = np.asarray(labels).astype(int)
    positives, negatives = int(labels.sum()), int(labels.size - labels.sum())
    return np.where(labels == 1, (positives + 1) / (positives + 2), 1.0 / (negatives + 2))


def _fit_logistic(logits, labels, intercept: bool) -> tuple[float, float]:
    """(a, b) minimising the cross-entropy of sigmoid(a * logit + b) against Platt's targets, a >= 0."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = smoothed_targets(labels)
    n = logits.size
    x = np.concatenate([logits, logits])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    weights = np.concatenate([targets, 1.0 - targets])
    if np.ptp(logits) > 0:
        a, b = _logistic(x, y, weights, intercept)
        if a >= 0:
            return a, b
    # a = 0 (a constant logit, or a fit that would flip the ranking): the best constant probability.
    mean = float(targets.mean())
    return 0.0, (math.log(mean / (1 - mean)) if intercept else 0.0)


def fit_platt(logits, labels) -> PlaneCalibration:
    """Platt scaling: p = sigmoid(a * logit + b)."""
    a, b = _fit_logistic(logits, labels, intercept=True)
    return PlaneCalibration(method="platt", a=a, b=b)


def fit_temperature(logits, labels) -> PlaneCalibration:
    """Temperature scaling: p = sigmoid(logit / T), kept as a = 1 / T, b = 0 (a = 0: T infinite)."""
    a, _ = _fit_logistic(logits, labels, intercept=False)
    return PlaneCalibration(method="temperature", a=a, b=0.0)


@dataclass(frozen=True)
class ModelCalibration:
    """One model's calibration, fitted on tune, and its valid metrics raw, Platt- and temperature-scaled."""

    platt: PlaneCalibration
    temperature: PlaneCalibration
    tune_exams: int
    tune_positives: int
    valid_exams: int
    raw: dict[str, float]
    calibrated: dict[str, float]
    temperature_scaled: dict[str, float]

    def to_manifest(self) -> dict:
        """The manifest entry's "calibration": what ships (Platt), where it was fitted, what it did."""
        return {**self.platt.to_dict(),
                "fitted_on": {"split": "tune", "exams": self.tune_exams, "positives": self.tune_positives,
                              "targets": "Platt (1999) smoothed"},
                "valid": {"exams": self.valid_exams, "raw": _json_metrics(self.raw),
                          "calibrated": _json_metrics(self.calibrated)},
                "temperature_alternative": {"t": _inverse(self.temperature.a),
                                            "valid": _json_metrics(self.temperature_scaled)}}


def _inverse(a: float) -> float | None:
    return 1.0 / a if a > 0 else None


def _json_metrics(values: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an undefined metric is null."""
    return {k: (None if math.isnan(v) else v) for k, v in values.items()}


def calibrate_model(predictions: dict[str, dict[str, np.ndarray]]) -> ModelCalibration | None:
    """Fit on the "tune" rows of one model's predictions, measure on its "valid" rows (None without tune rows)."""
    tune, valid = predictions.get("tune"), predictions.get("valid")
    if tune is None or tune["label"].size == 0:
        return None
    platt = fit_platt(tune["logit"], tune["label"])
    temperature = fit_temperature(tune["logit"], tune["label"])
    labels, logits = (valid["label"], valid["logit"]) if valid is not None else (np.zeros(0), np.zeros(0))
    return ModelCalibration(
        platt=platt, temperature=temperature, tune_exams=int(tune["label"].size),
        tune_positives=int(tune["label"].sum()), valid_exams=int(labels.size),
        raw=calibration_metrics(labels, logits),
        calibrated=calibration_metrics(labels, platt.a * logits + platt.b),
        temperature_scaled=calibration_metrics(labels, temperature.a * logits))


def calibrate_models(predictions: dict[str, dict[str, dict[str, np.ndarray]]]) -> dict[str, ModelCalibration]:
    """`calibrate_model` of each model's predictions, keyed as given; models without tune rows left out."""
    out = {key: calibrate_model(p) for key, p in predictions.items()}
    return {key: c for key, c in out.items() if c is not None}


def calibrate_run(run_dir: str | Path) -> dict[str, ModelCalibration]:
    """Every finished model's calibration, keyed `plane-task`, in registry order."""
    return calibrate_models({key: m.predictions for key, m in RunFolder(run_dir).finished_models().items()})


@dataclass(frozen=True)
class FusedValid:
    """A task's fused probability on the valid exams, for the full set of the run's planes."""

    subset: str
    labels: np.ndarray
    logits: np.ndarray  # FusionModel.logit of each exam
    metrics: dict[str, float]


def fused_valid(run_dir: str | Path, fusion: dict[str, dict[str, dict]], planes: tuple[str, ...],
                tasks: tuple[str, ...] = TASKS) -> dict[str, FusedValid]:
    """Per task, the calibration of the fused probability (the fusion over all of `planes`) on valid."""
    folder = RunFolder(run_dir)
    out = {}
    for task in tasks:
        model = FusionModel.from_dict(fusion[task][subset_key(planes)])
        valid = {p: folder.model(model_key(p, task)).read_predictions()["valid"] for p in model.planes}
        by_id = {p: dict(zip(v["exam_id"], v["logit"])) for p, v in valid.items()}
        first = valid[model.planes[0]]
        ids, labels = list(first["exam_id"]), first["label"].astype(int)
        logits = np.array([model.logit({p: by_id[p][i] for p in model.planes}) for i in ids])
        out[task] = FusedValid(subset_key(planes), labels, logits, calibration_metrics(labels, logits))
    return out


def fusion_manifest(fused: dict[str, FusedValid]) -> dict:
    """The manifest's "fusion_calibration": per task, the fused probability's valid metrics."""
    return {task: {"planes": f.subset, "split": "valid", "exams": int(f.labels.size), **_json_metrics(f.metrics)}
            for task, f in fused.items()}


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _arrow(before: float, after: float, digits: int = 3) -> str:
    return f"{_fmt(before, digits)} → {_fmt(after, digits)}"


def report_section(run_dir: str | Path, image: str = "calibration.png") -> list[str]:
    """The "Calibration" section of a run's report.md, as lines; writes the reliability diagrams to
    RUN/`image`. Empty when no model has a tuning split to fit on."""
    from .calibration_plot import plot_reliability
    from .fusion import fit_fusion

    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    spec = folder.record().spec
    predictions = {key: m.predictions for key, m in folder.finished_models().items()}
    models = calibrate_models(predictions)
    if not models:
        return []
    complete = all(model_key(p, t) in models for p in spec.planes for t in spec.tasks)
    fused = fused_valid(run_dir, fit_fusion(run_dir, spec.planes, spec.tasks)[0], spec.planes, spec.tasks) \
        if complete else {}
    plot_reliability(models, {key: p["valid"] for key, p in predictions.items() if key in models}, fused,
                     run_dir / image, ECE_BINS)

    some = next(iter(models.values()))
    lines = ["## Calibration", "",
             "Per-plane probabilities ship Platt-scaled, p = sigmoid(a · logit + b): a and b fitted per model on "
             f"the {some.tune_exams} tuning exams (Platt's smoothed targets), measured here on the "
             f"{some.valid_exams} valid exams. a = 0 where the fit would flip the model's ranking (it ranks "
             "its tuning exams against their labels) or its logit is constant: the model then says the tuning "
             "base rate. Temperature scaling, p = sigmoid(logit / T), is shown beside; it cannot remove the "
             "shift that class-weighted training puts into the logits.", "",
             f"ECE: {ECE_BINS} equal-width bins, the exam-weighted mean |observed rate − mean probability| "
             f"(with {some.valid_exams} exams, a noisy estimate); Brier: mean squared error of the probability; "
             "slope and intercept: logistic regression of the labels on logit(p), 1 and 0 when calibrated (– "
             "where undefined: one class, a constant probability, or a threshold that separates the classes).",
             "",
             "| model | a | b | ECE raw → Platt | Brier raw → Platt | slope raw → Platt | intercept raw → Platt "
             "| ECE temperature (T) |", "|---|---|---|---|---|---|---|---|"]
    for key, m in models.items():
        t = _inverse(m.temperature.a)
        lines.append(f"| {key} | {m.platt.a:.3f} | {m.platt.b:+.3f} | {_arrow(m.raw['ece'], m.calibrated['ece'])} | "
                     f"{_arrow(m.raw['brier'], m.calibrated['brier'])} | "
                     f"{_arrow(m.raw['slope'], m.calibrated['slope'], 2)} | "
                     f"{_arrow(m.raw['intercept'], m.calibrated['intercept'], 2)} | "
                     f"{_fmt(m.temperature_scaled['ece'])} ({'∞' if t is None else f'{t:.2f}'}) |")
    mean = {name: {which: float(np.nanmean([getattr(m, which)[name] for m in models.values()]))
                   for which in ("raw", "calibrated", "temperature_scaled")} for name in ("ece", "brier")}
    lines += [f"| **mean of {len(models)}** | | | {_arrow(mean['ece']['raw'], mean['ece']['calibrated'])} | "
              f"{_arrow(mean['brier']['raw'], mean['brier']['calibrated'])} | | | "
              f"{_fmt(mean['ece']['temperature_scaled'])} |", ""]
    if fused:
        lines += ["The fused task probability is itself a logistic regression on the plane logits fitted on the "
                  "tuning split (what `mrnet-predict` reports per task); its calibration on valid:", "",
                  "| task | planes | ECE | Brier | slope | intercept |", "|---|---|---|---|---|---|"]
        for task, f in fused.items():
            lines.append(f"| fused {task} | {f.subset} | {_fmt(f.metrics['ece'])} | {_fmt(f.metrics['brier'])} | "
                         f"{_fmt(f.metrics['slope'], 2)} | {_fmt(f.metrics['intercept'], 2)} |")
        lines.append("")
    lines += [f"![reliability diagrams]({image})", ""]
    return lines
