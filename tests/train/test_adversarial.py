"""FGSM: the step is eps * sign(grad), the parameters are untouched, the clamp holds."""

from __future__ import annotations

import pytest
import torch

from mrnet.infer.errors import InputError
from mrnet.infer.registry import NORMALISED_MAX, NORMALISED_MIN
from mrnet.train.adversarial import fgsm
from mrnet.train.data import weighted_bce
from mrnet.train.model import MRNet, normalise


@pytest.fixture
def model_and_input():
    torch.manual_seed(0)
    model = MRNet("tiny")
    volume = torch.rand(5, 256, 256) * 255
    return model, normalise(volume).contiguous(), torch.tensor([1.0])


def _loss(logit, y):
    return weighted_bce(logit, y, (0.3, 0.7))


def test_step_is_eps_times_the_sign_of_an_independent_gradient(model_and_input):
    model, x, y = model_and_input
    eps = 1e-3
    x_adv = fgsm(model, x, y, eps, loss_fn=_loss)
    # The gradient computed independently, with a plain backward pass on a copy of the model.
    twin = MRNet("tiny")
    twin.load_state_dict(model.state_dict())
    probe = x.clone().requires_grad_(True)
    _loss(twin(probe), y).backward()
    expected = (x + eps * probe.grad.sign()).clamp(NORMALISED_MIN, NORMALISED_MAX)
    assert torch.equal(x_adv, expected)
    # Away from the clamp, every element moved by exactly -eps, 0 or +eps, as the gradient's sign says.
    inside = (expected > NORMALISED_MIN) & (expected < NORMALISED_MAX)
    step = (x_adv - x)[inside]
    assert torch.allclose(step, eps * probe.grad.sign()[inside], atol=1e-6)
    assert (step.abs() > eps / 2).sum() > 1000


def test_parameters_and_their_grads_are_untouched(model_and_input):
    model, x, y = model_and_input
    _loss(model(x), y).backward()  # some gradient already accumulated, as mid-step in training
    before = {n: (p.detach().clone(), p.grad.clone()) for n, p in model.named_parameters()}
    fgsm(model, x, y, 1e-2, loss_fn=_loss)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name][0]), name
        assert torch.equal(parameter.grad, before[name][1]), name


def test_grads_stay_none_when_there_were_none(model_and_input):
    model, x, y = model_and_input
    fgsm(model, x, y, 1e-2, loss_fn=_loss)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("clamp, low, high", [("valid", NORMALISED_MIN, NORMALISED_MAX), ("seed-compat", 0.0, 1.0)])
def test_clamp_holds(model_and_input, clamp, low, high):
    model, x, y = model_and_input
    x_adv = fgsm(model, x, y, 0.5, clamp=clamp, loss_fn=_loss)
    assert x_adv.min() >= low and x_adv.max() <= high
    assert not x_adv.requires_grad


def test_eps_zero_returns_the_input(model_and_input):
    model, x, y = model_and_input
    assert torch.equal(fgsm(model, x, y, 0.0, loss_fn=_loss), x)


def test_unknown_clamp_is_refused(model_and_input):
    model, x, y = model_and_input
    with pytest.raises(InputError, match="seed-compat") as refused:
        fgsm(model, x, y, 1e-3, clamp="zero-one")
    assert refused.value.code == "BAD_OPTION" and refused.value.option == "clamp"
