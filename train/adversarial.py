"""FGSM adversarial examples, as the seed paper uses them for retraining.

    x_adv = x + eps * sign(grad_x J(theta, x, y))

`x` is the normalised float input (S, 3, 256, 256) and eps is on that normalised scale (the
paper's figures use 1e-5; its sweep goes to 3e-3). J is the class-weighted BCE of training.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mrnet.infer.errors import InputError

from .spec import CLAMPS  # where x_adv may lie after the step (spec.py says why)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, clamp: str = "valid",
         loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """One fast-gradient-sign step away from the true label `y`; returns a detached `x_adv`.

    The gradient is taken with respect to the input only (`torch.autograd.grad`), so the
    parameters' `.grad` are left exactly as they were. With eps = 0 the result is `x` (clamped).
    """
    if clamp not in CLAMPS:
        raise InputError("BAD_OPTION", f"one of {', '.join(CLAMPS)}, not {clamp!r}", option="clamp")
    loss_fn = loss_fn or nn.functional.binary_cross_entropy_with_logits
    x_in = x.detach().clone().requires_grad_(True)
    loss = loss_fn(model(x_in), y)
    (grad,) = torch.autograd.grad(loss, x_in)
    low, high = CLAMPS[clamp]
    return (x.detach() + eps * grad.sign()).clamp_(low, high)
