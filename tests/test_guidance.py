"""Tests for dnnl.models.ddpm.guidance: label dropout and classifier-free guidance (chapter 7)."""
from __future__ import annotations

import math

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, UNet, cfg_eps, drop_labels, guided, sample

NULL = 10


def _cond_unet(seed=0):
    """A small conditional U-Net with random non-zero weights, so the label and every layer matter."""
    model = UNet(channels=(8, 16), groups=4, heads=2, num_classes=10)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def _pair(seed=0, shape=(3, 1, 4, 4)):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=torch.float64),
            torch.randn(shape, generator=gen, dtype=torch.float64))


# --------------------------------------------------------------------------- the combination

def _check_combination(fn):
    """What any implementation of Eq. (cfg) must satisfy: the closed form and both ends of the w scale."""
    c, u = _pair()
    for w in (0.0, 0.5, 1.0, 3.0, 7.5):
        torch.testing.assert_close(fn(c, u, w), (1 + w) * c - w * u, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fn(c, u, 0.0), c, rtol=0, atol=0)          # w = 0: the conditional model
    torch.testing.assert_close(fn(c, u, -1.0), u, rtol=1e-12, atol=1e-12)  # w = -1: the unconditional one


def test_cfg_eps_is_the_closed_form_with_w_0_conditional_and_w_minus_1_unconditional():
    _check_combination(cfg_eps)
    c, u = _pair(1)
    for gamma in (1.0, 2.0, 4.0):  # the other convention: gamma * c + (1 - gamma) * u, with gamma = 1 + w
        torch.testing.assert_close(cfg_eps(c, u, gamma - 1), gamma * c + (1 - gamma) * u, rtol=1e-12, atol=1e-12)
    assert cfg_eps(c.float(), u.float(), 2).dtype == torch.float32


@pytest.mark.parametrize("wrong", [
    lambda c, u, w: (1 + w) * u - w * c,   # sign error: the branches swapped
    lambda c, u, w: w * c - (w - 1) * u,   # the gamma = 1 + w convention read as w
    lambda c, u, w: (1 + w) * c,           # the unconditional branch dropped
], ids=["swapped", "gamma-as-w", "no-uncond"])
def test_the_combination_check_catches_the_usual_mistakes(wrong):
    with pytest.raises(AssertionError):
        _check_combination(wrong)


# --------------------------------------------------------------------------- guided(model, y, w)

def test_guided_equals_two_separate_forwards():
    model = _cond_unet()
    gen = torch.Generator().manual_seed(3)
    x, t = torch.randn(4, 1, 8, 8, generator=gen), torch.tensor([5, 200, 700, 999])
    y = torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        cond, uncond = model(x, t, y), model(x, t, None)
        for w in (0.5, 2.0, 8.0):
            torch.testing.assert_close(guided(model, y, w)(x, t), (1 + w) * cond - w * uncond,
                                       rtol=1e-5, atol=1e-5)
        assert torch.equal(guided(model, y, 0.0)(x, t), cond)       # w = 0: the conditional branch only
        assert torch.equal(guided(model, y, -1.0)(x, t), uncond)    # w = -1: the unconditional branch only
        torch.testing.assert_close(guided(model, 3, 2.0)(x, t), guided(model, torch.full((4,), 3), 2.0)(x, t),
                                   rtol=0, atol=0)


def test_guided_runs_both_branches_in_one_batched_forward():
    model = _cond_unet()
    calls = []
    model.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        guided(model, torch.tensor([1, 2, 3]), 2.0)(torch.randn(3, 1, 8, 8), torch.tensor([1, 1, 1]))
    assert calls == [6]


def test_sample_takes_a_guided_model_and_leaves_the_unet_in_its_mode():
    model = _cond_unet()
    sched = NoiseSchedule.linear(T=50)

    def run(eps_fn):
        return sample(eps_fn, sched, (4, 1, 8, 8), steps=5, progress=False,
                      generator=torch.Generator().manual_seed(0)).images

    a = run(guided(model, torch.tensor([0, 1, 2, 3]), 2.0))
    assert a.shape == (4, 1, 8, 8) and torch.isfinite(a).all()
    assert torch.equal(a, run(guided(model, torch.tensor([0, 1, 2, 3]), 2.0)))  # seeded: reproducible
    # w = 0 is plain conditional sampling
    y = torch.tensor([4, 4, 5, 5])
    torch.testing.assert_close(run(guided(model, y, 0.0)), run(lambda x, t: model(x, t, y)), rtol=0, atol=0)
    assert not torch.equal(a, run(guided(model, torch.tensor([0, 1, 2, 3]), 0.0)))  # w matters
    model.train()
    run(guided(model, 1, 1.0))
    assert model.training  # sample() put it in eval mode for the run and back afterwards


def test_a_label_tensor_must_match_the_batch():
    eps_fn = guided(_cond_unet(), torch.tensor([1, 2]), 1.0)
    with pytest.raises(ValueError, match="2 labels y but x holds 3 examples"):
        eps_fn(torch.randn(3, 1, 8, 8), torch.tensor([1, 1, 1]))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(w=math.nan), ValueError, r"w \(the guidance weight"),
    (dict(w=-1.5), ValueError, r"w \(the guidance weight.*>= -1"),
    (dict(w="2"), TypeError, r"w \(the guidance weight"),
    (dict(w=True), TypeError, r"w \(the guidance weight"),
    (dict(y=10), ValueError, r"y must be an int in \[0, 9\]"),
    (dict(y=torch.tensor([0, 10])), ValueError, r"y must be in \[0, 9\] \(got 10\)"),
    (dict(y=torch.tensor([1.0])), TypeError, "y must hold integer class labels"),
    (dict(y=torch.tensor([[1]])), ValueError, r"y must have shape \(B,\)"),
    (dict(y="3"), TypeError, "y must be an int64 tensor"),
])
def test_guided_refuses_bad_arguments_with_their_name(kwargs, error, match):
    args = dict(model=_cond_unet(), y=torch.tensor([1]), w=1.0) | kwargs
    with pytest.raises(error, match=match):
        guided(**args)


def test_guided_needs_a_conditional_model():
    with pytest.raises(ValueError, match="model must be a conditional U-Net"):
        guided(UNet(channels=(8, 16), groups=4, heads=2), 1, 1.0)
    with pytest.raises(TypeError, match="model must be a conditional UNet"):
        guided(lambda x, t, y: x, 1, 1.0)


def test_cfg_eps_refuses_bad_arguments():
    c, u = _pair()
    with pytest.raises(ValueError, match="eps_uncond must have the same shape as eps_cond"):
        cfg_eps(c, u[:2], 1.0)
    with pytest.raises(TypeError, match="eps_cond must be a floating-point tensor"):
        cfg_eps(c.long(), u, 1.0)
    with pytest.raises(ValueError, match=r"w \(the guidance weight"):
        cfg_eps(c, u, math.inf)


# --------------------------------------------------------------------------- label dropout

def test_label_dropout_rate_is_p_uncond():
    """Monte Carlo: 200,000 labels, seed 0; the share set to "no label" is p within 0.003 (4.5 sigma at p = 0.1)."""
    y = torch.arange(200_000) % 10
    for p in (0.1, 0.3):
        out = drop_labels(y, p, 10, torch.Generator().manual_seed(0))
        dropped = out == NULL
        assert abs(dropped.double().mean().item() - p) < 0.003
        assert torch.equal(out[~dropped], y[~dropped])  # the others are untouched
        # dropped evenly across classes: each digit loses a share p of its labels (tolerance 0.01, 20,000 each)
        for k in range(10):
            assert abs(dropped[y == k].double().mean().item() - p) < 0.01
    assert torch.equal(drop_labels(y, 0.0, 10, torch.Generator().manual_seed(0)), y)


def test_label_dropout_is_determined_by_the_generator():
    y = torch.arange(1000) % 10
    a = drop_labels(y, 0.2, 10, torch.Generator().manual_seed(5))
    assert torch.equal(a, drop_labels(y, 0.2, 10, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, drop_labels(y, 0.2, 10, torch.Generator().manual_seed(6)))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(p_uncond=1.0), ValueError, r"p_uncond must be a finite number in \[0, 1\)"),
    (dict(p_uncond=-0.1), ValueError, r"p_uncond must be a finite number in \[0, 1\)"),
    (dict(p_uncond="0.1"), TypeError, "p_uncond must be a real number"),
    (dict(y=torch.tensor([0, 11])), ValueError, r"y must be in \[0, 10\] \(got 11\)"),
    (dict(y=torch.tensor([0.0])), TypeError, "y must hold integer class labels"),
    (dict(num_classes=0), ValueError, "num_classes must be an int >= 1"),
    (dict(generator=0), TypeError, "generator must be a torch.Generator"),
])
def test_drop_labels_refuses_bad_arguments(kwargs, error, match):
    args = dict(y=torch.tensor([0, 1]), p_uncond=0.1, num_classes=10, generator=None) | kwargs
    with pytest.raises(error, match=match):
        drop_labels(**args)
