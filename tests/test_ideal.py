"""The ideal denoiser E[ε | x_t] for empirical data: closed forms, Monte Carlo, and the score identity."""
import math

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, ideal_eps, ideal_score, ideal_x0, log_marginal, q_sample

S = NoiseSchedule.linear()
TWO_POINTS = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)


def two_point_eps(x, t):
    ab = float(S.alpha_bars[t])
    m = math.tanh(math.sqrt(ab) * x / (1 - ab))
    return (x - math.sqrt(ab) * m) / math.sqrt(1 - ab)


@pytest.mark.parametrize("t, x, expected", [(99, 0.3, -1.9929040402), (499, -0.7, -0.6679674400)])
def test_two_point_reference_values(t, x, expected):
    xt = torch.tensor([[x]], dtype=torch.float64)
    assert math.isclose(ideal_eps(S, xt, t, TWO_POINTS).item(), expected, abs_tol=1e-9)
    assert math.isclose(two_point_eps(x, t), expected, abs_tol=1e-9)


def test_two_point_posterior_mean_is_tanh():
    xt = torch.linspace(-3, 3, 61, dtype=torch.float64).reshape(-1, 1)
    for t in (0, 50, 300, 999):
        ab = S.alpha_bars[t]
        expected = torch.tanh(ab.sqrt() * xt / (1 - ab))
        assert torch.allclose(ideal_x0(S, xt, t, TWO_POINTS), expected, atol=1e-12)


def test_gaussian_data_matches_closed_form():
    # N(0, s^2) represented by its 40k quantiles; eps* = sqrt(1-ab) x / (ab s^2 + 1 - ab).
    s, N = 0.5, 40_000
    u = (torch.arange(N, dtype=torch.float64) + 0.5) / N
    data = (s * math.sqrt(2) * torch.erfinv(2 * u - 1)).reshape(-1, 1)
    xt = torch.linspace(-2, 2, 9, dtype=torch.float64).reshape(-1, 1)
    for t in (100, 400, 900):
        ab = S.alpha_bars[t]
        expected = (1 - ab).sqrt() * xt / (ab * s ** 2 + 1 - ab)
        assert torch.allclose(ideal_eps(S, xt, t, data), expected, atol=2e-3)


def test_ideal_eps_agrees_with_binned_monte_carlo():
    # Draw (x0, eps) pairs, keep those whose x_t lands within 0.01 of the target, average eps.
    g = torch.Generator().manual_seed(0)
    data = torch.tensor([[-0.8], [0.1], [0.9]], dtype=torch.float64)
    t, target, n = 300, 0.25, 2_000_000
    x0 = data[torch.randint(0, 3, (n,), generator=g)]
    eps = torch.randn(n, 1, generator=g, dtype=torch.float64)
    xt = q_sample(S, x0, t, eps)
    near = (xt - target).abs().squeeze(1) < 0.01
    mc = eps[near]
    se = mc.std().item() / math.sqrt(len(mc))
    exact = ideal_eps(S, torch.tensor([[target]], dtype=torch.float64), t, data).item()
    assert len(mc) > 5000
    assert abs(mc.mean().item() - exact) < 5 * se + 0.01  # 0.01 covers the bin's width


def test_autograd_of_log_marginal_equals_ideal_score():
    g = torch.Generator().manual_seed(1)
    data = torch.randn(50, 2, 3, generator=g, dtype=torch.float64)
    for t in (0, 10, 250, 999):
        xt = torch.randn(4, 2, 3, generator=g, dtype=torch.float64).requires_grad_(True)
        (grad,) = torch.autograd.grad(log_marginal(S, xt, t, data).sum(), xt)
        score = ideal_score(S, xt.detach(), t, data)
        assert (grad - score).abs().max().item() < 1e-8 * max(1.0, score.abs().max().item())


def test_log_marginal_matches_direct_mixture_density():
    data = torch.tensor([[-0.5], [0.2], [0.7]], dtype=torch.float64)
    xt = torch.tensor([[0.1], [-1.3]], dtype=torch.float64)
    t = 400
    ab = S.alpha_bars[t]
    dens = torch.exp(-(xt - ab.sqrt() * data.T) ** 2 / (2 * (1 - ab))) / torch.sqrt(2 * math.pi * (1 - ab))
    assert torch.allclose(log_marginal(S, xt, t, data), dens.mean(1).log(), atol=1e-12)


def test_chunking_does_not_change_the_answer_and_batched_t_works():
    g = torch.Generator().manual_seed(2)
    data = torch.rand(1000, 1, 4, 4, generator=g) * 2 - 1
    xt = torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([5, 300, 900])
    a = ideal_eps(S, xt, t, data, chunk_size=7)
    b = ideal_eps(S, xt, t, data, chunk_size=5000)
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6)
    for i in range(3):
        assert torch.allclose(a[i:i + 1], ideal_eps(S, xt[i:i + 1], int(t[i]), data), atol=1e-6)


def test_small_t_picks_the_nearest_training_point_without_overflow():
    # At index 0 the log-weights are about -1e5..-1e6 apart: the float64 logsumexp must not underflow.
    g = torch.Generator().manual_seed(3)
    data = torch.rand(500, 784, generator=g, dtype=torch.float64) * 2 - 1
    xt = q_sample(S, data[17:18], 0, generator=g)
    x0 = ideal_x0(S, xt, 0, data)
    assert torch.isfinite(x0).all() and torch.allclose(x0, data[17:18], atol=1e-6)


def test_sixty_thousand_mnist_sized_rows_in_batches():
    g = torch.Generator().manual_seed(4)
    data = torch.rand(60_000, 1, 28, 28, generator=g) * 2 - 1
    xt = torch.randn(2, 1, 28, 28, generator=g)
    eps = ideal_eps(S, xt, 600, data)
    assert eps.shape == xt.shape and torch.isfinite(eps).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="data rows must have the shape of one x_t"):
        ideal_eps(S, torch.zeros(2, 3), 5, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least one example"):
        ideal_eps(S, torch.zeros(2, 3), 5, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="chunk_size"):
        ideal_eps(S, torch.zeros(2, 3), 5, torch.zeros(4, 3), chunk_size=0)
    with pytest.raises(ValueError, match=r"t must be in \[0, 999\]"):
        ideal_eps(S, torch.zeros(2, 3), -1, torch.zeros(4, 3))
