"""FGSM adversarial examples, as the seed paper uses them for retraining.

    x_adv = x + eps * sign(grad_x J(theta, x, y))

`x` is the normalised float input (S, 3, 256, 256) and eps is on that normalised scale (the
paper's figures use 1e-5; its sweep goes to 3e-3). J is the class-weighted BCE of training.
"""

from __future__ import annotations

from typing import Callable

import torch
from mrnet.infer.registry import NORMALISED_MAX, NORMALISED_MIN
from torch import nn

# Where x_adv may lie after the step.
#   valid: the range a real uint8 volume can take after normalisation, [(0-58.09)/49.73, (255-58.09)/49.73].
#   seed-compat: [0, 1], as the paper's published code clamps after normalising. That clips every
#     pixel darker than the mean intensity (about 80 % of them) to 0 and leaves eps nearly
#     irrelevant; it exists only to replicate the paper's numbers.
CLAMPS: dict[str, tuple[float, float]] = {
    "valid": (NORMALISED_MIN, NORMALISED_MAX),
    "seed-compat": (0.0, 1.0),
}


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, clamp: str = "valid",
         loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """One fast-gradient-sign step away from the true label `y`; returns a detached `x_adv`.

    The gradient is taken with respect to the input only (`torch.autograd.grad`), so the
    parameters' `.grad` are left exactly as they were. With eps = 0 the result is `x` (clamped).
    """
    if clamp not in CLAMPS:
        raise ValueError(f"unknown clamp {clamp!r}: choose from {', '.join(CLAMPS)}")
    loss_fn = loss_fn or nn.functional.binary_cross_entropy_with_logits
    x_in = x.detach().clone().requires_grad_(True)
    loss = loss_fn(model(x_in), y)
    (grad,) = torch.autograd.grad(loss, x_in)
    low, high = CLAMPS[clamp]
    return (x.detach() + eps * grad.sign()).clamp_(low, high)
