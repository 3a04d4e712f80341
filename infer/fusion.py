"""Plane fusion: one probability per task from the planes an exam has.

Per task, a logistic regression on the plane models' logits (as MRNet combined its three planes),
fitted on the tuning split for every non-empty subset of planes, so an exam with a missing plane
still gets a fused probability from a model fitted for exactly that subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from .calibration import sigmoid
from .registry import PLANES


def subset_key(planes) -> str:
    """A canonical name for a subset of planes, in registry order: e.g. 'axial+sagittal'."""
    return "+".join(p for p in PLANES if p in set(planes))


def all_subsets() -> list[tuple[str, ...]]:
    """The 7 non-empty subsets of the three planes, largest first."""
    return [c for k in range(len(PLANES), 0, -1) for c in combinations(PLANES, k)]


@dataclass(frozen=True)
class FusionModel:
    """p = sigmoid(bias + sum(weight_plane * logit_plane)); decide positive when p >= threshold."""

    planes: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    method: str = "logistic-regression"

    def logit(self, logits: dict[str, float]) -> float:
        """The fused logit: bias + sum(weight_plane * logit_plane)."""
        return self.bias + sum(w * logits[p] for p, w in zip(self.planes, self.weights))

    def probability(self, logits: dict[str, float]) -> float:
        return sigmoid(self.logit(logits))

    def to_dict(self) -> dict:
        return {"planes": list(self.planes), "weights": list(self.weights), "bias": self.bias,
                "threshold": self.threshold, "method": self.method}

    @staticmethod
    def from_dict(data: dict) -> "FusionModel":
        return FusionModel(planes=tuple(data["planes"]), weights=tuple(float(w) for w in data["weights"]),
                           bias=float(data["bias"]), threshold=float(data["threshold"]),
                           method=data.get("method", "logistic-regression"))
