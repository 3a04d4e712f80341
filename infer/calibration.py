"""Per-plane probability calibration, as a bundle carries it: p = sigmoid(a * logit + b).

The plane models are trained with class-weighted BCE, so their raw sigmoids sit on one side of
0.5 for most exams; an export fits a and b per model on the tuning split (`mrnet.train.calibration`
says how and why Platt scaling) and writes them into the model's manifest entry. Bundles written
before that (schema 1 without "calibration") still load: their per-plane probabilities stay the
raw sigmoid of the logit, and every output says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

METHOD_NAMES = {"platt": "Platt scaling", "temperature": "temperature scaling"}
METHODS = tuple(METHOD_NAMES)
CALIBRATED_HOW = ("p = sigmoid(a * logit + b), a and b fitted per model on the tuning split ({name}); "
                  "plane_logits holds the raw logits")
RAW_HOW = "raw sigmoid(logit): this bundle carries no calibration"
MIXED_HOW = ("p = sigmoid(a * logit + b) for the models whose manifest entry has a calibration, the raw "
             "sigmoid(logit) for the others; plane_logits holds the raw logits")


def sigmoid(z: float) -> float:
    """The logistic function without overflow for large |z|."""
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class PlaneCalibration:
    """p = sigmoid(a * logit + b); temperature scaling is the case b = 0, a = 1 / T."""

    method: str
    a: float
    b: float

    def probability(self, logit: float) -> float:
        return sigmoid(self.a * logit + self.b)

    def to_dict(self) -> dict:
        return {"method": self.method, "a": self.a, "b": self.b, "formula": "p = sigmoid(a * logit + b)"}

    @staticmethod
    def from_dict(data: dict) -> "PlaneCalibration":
        """Raises ValueError (the bundle reader turns it into MANIFEST_INVALID) when malformed."""
        if not isinstance(data, dict) or data.get("method") not in METHODS:
            raise ValueError(f"calibration method must be one of {', '.join(METHODS)}")
        a, b = float(data["a"]), float(data["b"])
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError("calibration parameters must be finite numbers")
        return PlaneCalibration(method=data["method"], a=a, b=b)


def plane_probability(logit: float, calibration: PlaneCalibration | None) -> float:
    """The per-plane probability: calibrated where the bundle says how, the raw sigmoid otherwise."""
    return calibration.probability(logit) if calibration is not None else sigmoid(logit)


def describe(calibrations: Iterable[PlaneCalibration | None]) -> dict:
    """What a prediction says about its per-plane probabilities: calibrated or not, and how."""
    methods = {c.method if c is not None else "none" for c in calibrations}
    if methods == {"none"}:
        return {"calibrated": False, "method": "none", "how": RAW_HOW}
    if len(methods) == 1:
        method = methods.pop()
        return {"calibrated": True, "method": method, "how": CALIBRATED_HOW.format(name=METHOD_NAMES[method])}
    return {"calibrated": False, "method": "mixed", "how": MIXED_HOW}
