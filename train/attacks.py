"""White-box L-infinity attacks on grey-level volumes: FGSM and PGD, for evaluation under attack.

Each attack perturbs one or more volumes (float, grey levels 0..255, shape (S, H, W)) to raise a
scalar loss that the caller builds from them: a plane model's BCE on its exam logit, or the BCE of
a task's fused logit over the three planes of an exam (see `robustness.py`). The attack space is
the uint8 volume, the unit a scanner file carries, and every result is projected to the eps ball
around the clean volume and to the valid intensity range [0, 255]. Values are not rounded to
integers: a rounded attack could not move at eps < 0.5, and the continuous one bounds what any
integer perturbation of the same size can do.

This is not `adversarial.fgsm`, the step used for retraining: that one works on the normalised
three-channel input, where each of the three copies of a pixel gets its own sign, an input no
uint8 volume can produce. Here one value per voxel moves.

    FGSM   x' = clip(x + eps * sign(grad_x L))
    PGD    x_0 = clip(x + U(-eps, eps)) (random start), then `steps` times
           x_{k+1} = clip(proj_eps(x_k + alpha * sign(grad_x L))), alpha = 2.5 eps / steps unless given

(Madry et al. 2018, whose step rule this is: eps/4 at 10 steps, and at any number of steps enough to
cross the whole ball from the far side of a random start. With a fixed eps/4, PGD-2 could move a
voxel only eps/2 from where it started and was measurably weaker than FGSM.) The gradient is taken with respect to the inputs only. Class weights of the
training loss are left out: a positive weight scales the loss of an exam and does not change the
sign of its gradient, so FGSM and PGD are the same with or without them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from mrnet.infer.errors import InputError

GREY_MIN, GREY_MAX = 0.0, 255.0
ATTACKS = ("fgsm", "pgd")
PGD_REACH = 2.5  # alpha = PGD_REACH * eps / steps: the steps together cross the ball 2.5 times over

Loss = Callable[[list[torch.Tensor]], torch.Tensor]


def _check(eps: float) -> None:
    if not eps >= 0:  # also refuses NaN
        raise InputError("BAD_OPTION", f"eps must be >= 0 grey levels, not {eps}", option="eps")


def _gradients(loss_fn: Loss, volumes: list[torch.Tensor]) -> list[torch.Tensor]:
    inputs = [v.detach().requires_grad_(True) for v in volumes]
    return list(torch.autograd.grad(loss_fn(inputs), inputs))


def _project(x: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """Into the eps ball around `clean`, then into [0, 255] (boxes: either order gives the same point)."""
    return torch.minimum(torch.maximum(x, clean - eps), clean + eps).clamp_(GREY_MIN, GREY_MAX)


def fgsm_ladder(loss_fn: Loss, volumes: Sequence[torch.Tensor], eps_values: Sequence[float]
                ) -> list[list[torch.Tensor]]:
    """FGSM at every eps of a ladder from one gradient (the step direction does not depend on eps)."""
    for eps in eps_values:
        _check(eps)
    clean = [v.detach().to(torch.float32) for v in volumes]
    signs = [g.sign() for g in _gradients(loss_fn, clean)] if any(e > 0 for e in eps_values) else None
    return [clean if eps == 0 else [(x + eps * s).clamp_(GREY_MIN, GREY_MAX) for x, s in zip(clean, signs)]
            for eps in eps_values]


def fgsm(loss_fn: Loss, volumes: Sequence[torch.Tensor], eps: float) -> list[torch.Tensor]:
    """One signed-gradient step of size eps on every volume at once; returns detached volumes."""
    return fgsm_ladder(loss_fn, volumes, [eps])[0]


def pgd(loss_fn: Loss, volumes: Sequence[torch.Tensor], eps: float, steps: int, step_size: float | None = None,
        random_start: bool = True, generators: Sequence[torch.Generator] | None = None) -> list[torch.Tensor]:
    """Projected gradient descent on the loss, all volumes jointly. The random start of volume k is
    drawn from `generators[k]` (torch's global generator without them), so it can be reproduced."""
    _check(eps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError("BAD_OPTION", f"a whole number of steps >= 1, not {steps!r}", option="pgd_steps")
    clean = [v.detach().to(torch.float32) for v in volumes]
    if eps == 0:
        return clean
    alpha = PGD_REACH * eps / steps if step_size is None else step_size
    x = [c.clone() for c in clean]
    if random_start:
        generators = generators or [None] * len(clean)
        x = [_project(c + (torch.rand(c.shape, generator=g) * 2 - 1).to(c.device) * eps, c, eps)
             for c, g in zip(clean, generators)]
    for _ in range(steps):
        x = [_project(xi + alpha * g.sign(), c, eps) for xi, c, g in zip(x, clean, _gradients(loss_fn, x))]
    return x
