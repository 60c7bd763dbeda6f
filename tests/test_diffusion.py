"""Forward process and posteriors: closed forms in float64 and Monte-Carlo moments (seeded)."""
import math

import pytest
import torch

from dnnl.models.ddpm import (NoiseSchedule, oracle_denoise, p_mean_variance, p_sample_step, predict_x0,
                              q_mean_variance, q_posterior, q_sample)

S = NoiseSchedule.linear()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_q_sample_matches_formula_with_given_noise():
    x0 = torch.rand(4, 1, 5, 5, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=gen())
    t = torch.tensor([0, 10, 500, 999])
    xt = q_sample(S, x0, t, noise)
    ab = S.alpha_bars[t].reshape(-1, 1, 1, 1)
    assert torch.allclose(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * noise, rtol=0, atol=1e-15)


def test_q_sample_t0_uses_alpha_bar_0_not_identity():
    x0 = torch.ones(1, 3, dtype=torch.float64)
    noise = torch.ones(1, 3, dtype=torch.float64)
    xt = q_sample(S, x0, 0, noise)
    assert torch.allclose(xt, torch.full_like(xt, math.sqrt(0.9999) + math.sqrt(1e-4)))


@pytest.mark.parametrize("t", [0, 99, 499, 999])
def test_q_sample_monte_carlo_moments(t):
    # 200k draws: the standard error of the mean is sqrt(var/200k) <= 0.0023; tolerance 5 s.e.
    n = 200_000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    xt = q_sample(S, x0, t, generator=gen(1))
    ab = float(S.alpha_bars[t])
    se = math.sqrt((1 - ab) / n)
    assert abs(xt.mean().item() - math.sqrt(ab) * 0.7) < 5 * se + 1e-12
    assert abs(xt.var().item() - (1 - ab)) < 5 * (1 - ab) * math.sqrt(2 / n) + 1e-12


def test_step_by_step_chain_matches_closed_form_moments():
    # Running x_t = sqrt(1-b) x_{t-1} + sqrt(b) z for 300 steps has the moments of q(x_300 | x0).
    n, steps = 100_000, 300
    g = gen(2)
    x = torch.full((n,), -0.5, dtype=torch.float64)
    for i in range(steps):
        b = S.betas[i]
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    ab = float(S.alpha_bars[steps - 1])
    assert abs(x.mean().item() - math.sqrt(ab) * -0.5) < 5 * math.sqrt((1 - ab) / n)
    assert abs(x.var().item() - (1 - ab)) < 5 * (1 - ab) * math.sqrt(2 / n)


def test_q_mean_variance_closed_form():
    x0 = torch.randn(2, 3, dtype=torch.float64)
    m, v, lv = q_mean_variance(S, x0, 250)
    ab = S.alpha_bars[250]
    assert torch.allclose(m, ab.sqrt() * x0) and torch.allclose(v, (1 - ab).expand_as(x0))
    assert torch.allclose(lv, v.log())


def test_q_posterior_matches_bayes_completing_the_square():
    # Posterior of x_{t-1} from the product q(x_t|x_{t-1}) q(x_{t-1}|x0), computed in float64 directly.
    x0 = torch.tensor([[0.3, -0.8]], dtype=torch.float64)
    xt = torch.tensor([[1.1, 0.2]], dtype=torch.float64)
    for t in (1, 2, 50, 999):
        a, ab_prev, b = S.alphas[t], S.alpha_bars[t - 1], S.betas[t]
        prec = a / b + 1 / (1 - ab_prev)
        mean = (a.sqrt() * xt / b + ab_prev.sqrt() * x0 / (1 - ab_prev)) / prec
        m, v, lv = q_posterior(S, x0, xt, t)
        assert torch.allclose(m, mean, rtol=1e-11) and torch.allclose(v, (1 / prec).expand_as(v), rtol=1e-11)
        assert torch.allclose(lv, v.log(), rtol=1e-11)


def test_q_posterior_at_t0_returns_x0_mean_and_clipped_log_variance():
    x0 = torch.tensor([[0.3]], dtype=torch.float64)
    xt = torch.tensor([[0.9]], dtype=torch.float64)
    m, v, lv = q_posterior(S, x0, xt, 0)
    assert torch.allclose(m, x0, atol=1e-12) and v.item() == 0
    assert math.isclose(lv.item(), -9.8167251, rel_tol=1e-7)


def test_oracle_denoise_moments_match_q_posterior():
    n = 200_000
    for t in (1, 10, 500, 999):
        x0 = torch.full((n, 1), 0.4, dtype=torch.float64)
        xt = torch.full((n, 1), -0.3, dtype=torch.float64)
        s = oracle_denoise(S, x0, xt, t, generator=gen(t))
        m, v, _ = q_posterior(S, x0[:1], xt[:1], t)
        se = math.sqrt(v.item() / n)
        assert abs(s.mean().item() - m.item()) < 5 * se
        assert abs(s.var().item() / v.item() - 1) < 5 * math.sqrt(2 / n)


def test_oracle_denoise_residual_is_standard_normal():
    n, t = 100_000, 300
    x0 = torch.zeros(n, 1, dtype=torch.float64)
    xt = torch.full((n, 1), 0.5, dtype=torch.float64)
    m, v, _ = q_posterior(S, x0, xt, t)
    z = (oracle_denoise(S, x0, xt, t, generator=gen(3)) - m) / v.sqrt()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.std().item() - 1) < 5 * math.sqrt(0.5 / n)


def test_oracle_denoise_then_forward_step_reproduces_q_xt_given_x0():
    # x_t ~ q(x_t|x0), x_{t-1} ~ q(x_{t-1}|x_t,x0) is a draw of q(x_{t-1}|x0); one forward step gives q(x_t|x0) again.
    n, t = 200_000, 200
    g = gen(4)
    x0 = torch.full((n, 1), 0.8, dtype=torch.float64)
    xt = q_sample(S, x0, t, generator=g)
    x_prev = oracle_denoise(S, x0, xt, t, generator=g)
    ab_prev = float(S.alpha_bars[t - 1])
    assert abs(x_prev.mean().item() - math.sqrt(ab_prev) * 0.8) < 5 * math.sqrt((1 - ab_prev) / n)
    assert abs(x_prev.var().item() / (1 - ab_prev) - 1) < 5 * math.sqrt(2 / n)
    b = S.betas[t]
    x_again = (1 - b).sqrt() * x_prev + b.sqrt() * torch.randn(x_prev.shape, generator=g, dtype=torch.float64)
    ab = float(S.alpha_bars[t])
    assert abs(x_again.mean().item() - math.sqrt(ab) * 0.8) < 5 * math.sqrt((1 - ab) / n)
    assert abs(x_again.var().item() / (1 - ab) - 1) < 5 * math.sqrt(2 / n)


def _denoise_v1(x0, xt, t, betas):
    """The reference text's step: the mean plus the standard deviation, with no random z (the bug)."""
    alphas = 1 - betas
    ab = alphas.cumprod(0)
    ab_prev = ab[t - 1] if t > 0 else torch.tensor(1.0, dtype=betas.dtype)
    mean = ab_prev.sqrt() * betas[t] / (1 - ab[t]) * x0 + alphas[t].sqrt() * (1 - ab_prev) / (1 - ab[t]) * xt
    var = (1 - ab_prev) / (1 - ab[t]) * betas[t]
    return mean + var.sqrt() if t > 0 else mean


def _posterior_sample_moments_ok(step, t=200, n=50_000):
    g = gen(5)
    x0 = torch.full((n, 1), 0.8, dtype=torch.float64)
    xt = q_sample(S, x0, t, generator=g)
    x_prev = step(x0, xt, t, g)
    m, v, _ = q_posterior(S, x0, xt, t)
    resid = (x_prev - m) / v.sqrt()
    return abs(resid.mean().item()) < 5 / math.sqrt(n) and abs(resid.std().item() - 1) < 0.05


def test_posterior_moment_check_accepts_oracle_denoise_and_rejects_reference_denoise_v1():
    assert _posterior_sample_moments_ok(lambda x0, xt, t, g: oracle_denoise(S, x0, xt, t, generator=g))
    assert not _posterior_sample_moments_ok(lambda x0, xt, t, g: _denoise_v1(x0, xt, t, S.betas))


def test_oracle_denoise_adds_no_noise_at_t0():
    x0 = torch.randn(3, 4, dtype=torch.float64)
    xt = torch.randn(3, 4, dtype=torch.float64)
    a = oracle_denoise(S, x0, xt, 0, generator=gen(6))
    m, _, _ = q_posterior(S, x0, xt, 0)
    assert torch.equal(a, m)


def test_oracle_denoise_batched_t_noise_only_where_t_positive():
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    xt = torch.ones(2, 3, dtype=torch.float64)
    out = oracle_denoise(S, x0, xt, torch.tensor([0, 5]), generator=gen(7))
    m, _, _ = q_posterior(S, x0, xt, torch.tensor([0, 5]))
    assert torch.equal(out[0], m[0]) and not torch.equal(out[1], m[1])


def test_predict_x0_inverts_q_sample():
    x0 = torch.rand(5, 2, dtype=torch.float64) * 2 - 1
    noise = torch.randn(5, 2, dtype=torch.float64, generator=gen(8))
    t = torch.tensor([0, 1, 100, 500, 999])
    xt = q_sample(S, x0, t, noise)
    assert torch.allclose(predict_x0(S, xt, t, noise), x0, atol=1e-10)


def test_p_mean_matches_algorithm_2_form_for_all_t():
    # mu from x0_hat(eps) equals (x_t - beta_t/sqrt(1-abar_t) eps)/sqrt(alpha_t) for every t, to 1.2e-12.
    g = gen(9)
    t = torch.arange(1000)
    xt = torch.randn(1000, 3, dtype=torch.float64, generator=g)
    eps = torch.randn(1000, 3, dtype=torch.float64, generator=g)
    mean, _, _ = p_mean_variance(S, eps, xt, t)
    b, a, ab = (v.reshape(-1, 1) for v in (S.betas, S.alphas, S.alpha_bars))
    alg2 = (xt - b / (1 - ab).sqrt() * eps) / a.sqrt()
    assert (mean - alg2).abs().max().item() <= 1.2e-12


def test_p_mean_variance_clip_clamps_x0_hat():
    xt = torch.full((1, 2), 3.0, dtype=torch.float64)
    eps = torch.zeros(1, 2, dtype=torch.float64)
    m_clip, v, _ = p_mean_variance(S, eps, xt, 10, clip=True)
    m_ref, _, _ = q_posterior(S, torch.ones(1, 2, dtype=torch.float64), xt, 10)
    assert torch.allclose(m_clip, m_ref)
    m_free, _, _ = p_mean_variance(S, eps, xt, 10)
    assert not torch.allclose(m_free, m_clip)
    assert torch.allclose(v, S.posterior_variance[10].expand_as(v))


def test_p_sample_step_moments_and_t0():
    n = 200_000
    xt = torch.full((n, 1), 0.2, dtype=torch.float64)
    eps = torch.full((n, 1), 0.1, dtype=torch.float64)
    out = p_sample_step(S, eps, xt, 400, generator=gen(10))
    m, v, _ = p_mean_variance(S, eps[:1], xt[:1], 400)
    assert abs(out.mean().item() - m.item()) < 5 * math.sqrt(v.item() / n)
    assert abs(out.var().item() / v.item() - 1) < 5 * math.sqrt(2 / n)
    m0, _, _ = p_mean_variance(S, eps[:4], xt[:4], 0)
    assert torch.equal(p_sample_step(S, eps[:4], xt[:4], 0, generator=gen(11)), m0)


def test_generator_makes_draws_reproducible():
    x0 = torch.zeros(2, 3)
    assert torch.equal(q_sample(S, x0, 10, generator=gen(12)), q_sample(S, x0, 10, generator=gen(12)))
    assert torch.equal(oracle_denoise(S, x0, x0, 10, generator=gen(13)), oracle_denoise(S, x0, x0, 10, generator=gen(13)))


def test_float32_inputs_give_float32_outputs():
    x0 = torch.zeros(2, 1, 3, 3)
    xt = q_sample(S, x0, torch.tensor([3, 4]))
    assert xt.dtype == torch.float32
    m, v, lv = q_posterior(S, x0, xt, torch.tensor([3, 4]))
    assert m.dtype == v.dtype == lv.dtype == torch.float32
