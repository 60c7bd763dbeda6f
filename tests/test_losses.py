"""L_simple: the mean squared ε error with t uniform over 0..T-1."""
import math

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, noise_prediction_loss, q_sample

S = NoiseSchedule.linear()


def test_loss_is_zero_for_a_model_that_returns_the_true_noise():
    x0 = torch.rand(16, 1, 4, 4, dtype=torch.float64) * 2 - 1

    def oracle(xt, t):
        ab = S.alpha_bars[t].reshape(-1, 1, 1, 1)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    assert noise_prediction_loss(oracle, S, x0, generator=torch.Generator().manual_seed(0)).item() < 1e-20


def test_loss_matches_manual_draw_with_the_same_generator():
    x0 = torch.rand(8, 3, dtype=torch.float64)
    model = lambda xt, t: 0.5 * xt  # noqa: E731
    loss = noise_prediction_loss(model, S, x0, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (8,), generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    xt = q_sample(S, x0, t, noise)
    assert math.isclose(loss.item(), ((model(xt, t) - noise) ** 2).mean().item(), rel_tol=1e-12)


def test_zero_predictor_loss_is_one_in_expectation():
    # eps_hat = 0 gives E||eps||^2 / D = 1; 64k values, tolerance 5 standard errors (sd of eps^2 is sqrt 2).
    x0 = torch.zeros(4096, 16)
    loss = noise_prediction_loss(lambda xt, t: torch.zeros_like(xt), S, x0, generator=torch.Generator().manual_seed(2))
    assert abs(loss.item() - 1) < 5 * math.sqrt(2 / x0.numel())


def test_timesteps_cover_0_to_T_minus_1():
    seen = []
    x0 = torch.zeros(20000, 1)
    noise_prediction_loss(lambda xt, t: seen.append(t) or torch.zeros_like(xt), S, x0,
                          generator=torch.Generator().manual_seed(3))
    t = seen[0]
    assert t.dtype == torch.long and t.min() == 0 and t.max() == 999


def test_loss_has_gradients_for_a_module():
    lin = torch.nn.Linear(3, 3)
    loss = noise_prediction_loss(lambda xt, t: lin(xt), S, torch.zeros(4, 3))
    loss.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(TypeError, match="model must be callable"):
        noise_prediction_loss(None, S, torch.zeros(2, 2))
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        noise_prediction_loss(lambda x, t: x, S, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        noise_prediction_loss(lambda x, t: x, "linear", torch.zeros(2, 2))
