"""Tests for dnnl.models.ddpm.elbo, the bound's terms: Gaussian KL, the discretised decoder, the prior, vlb_terms with the oracle ε, optimal variances."""
import math

import pytest
import torch

from dnnl.models.ddpm import (NoiseSchedule, discretized_gaussian_log_likelihood, normal_kl, optimal_variances,
                              prior_bpd, q_posterior, vlb_terms)

S = NoiseSchedule.linear()
LN2 = math.log(2)


def test_normal_kl_reference_values():
    z = torch.zeros((), dtype=torch.float64)
    assert math.isclose(normal_kl(z, z, z + 1, z).item(), 0.5, rel_tol=1e-12)
    assert math.isclose(normal_kl(z, torch.tensor(math.log(2.0), dtype=torch.float64), 0.0, 0.0).item(),
                        0.5 * (1 - math.log(2)), rel_tol=1e-12)


def test_normal_kl_matches_monte_carlo():
    # E_{x~p}[log p(x) - log q(x)] over 400k seeded draws; tolerance 5 standard errors.
    g = torch.Generator().manual_seed(0)
    m1, s1, m2, s2 = 0.3, 0.7, -0.2, 1.3
    x = m1 + s1 * torch.randn(400_000, generator=g, dtype=torch.float64)
    logp = torch.distributions.Normal(m1, s1).log_prob(x)
    logq = torch.distributions.Normal(m2, s2).log_prob(x)
    d = logp - logq
    kl = normal_kl(torch.tensor(m1, dtype=torch.float64), torch.tensor(2 * math.log(s1), dtype=torch.float64),
                   torch.tensor(m2, dtype=torch.float64), torch.tensor(2 * math.log(s2), dtype=torch.float64))
    assert abs(d.mean().item() - kl.item()) < 5 * d.std().item() / math.sqrt(len(d))


def test_normal_kl_is_zero_for_equal_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    m, lv = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    assert normal_kl(m, lv, m, lv).abs().max() < 1e-15
    assert (normal_kl(m, lv, m + 0.1, lv * 0.5) > 0).all()


def test_normal_kl_rejects_numbers_only():
    with pytest.raises(TypeError, match="at least one torch.Tensor"):
        normal_kl(0.0, 0.0, 1.0, 0.0)


def _decoder_bits(x_level, tanh=False):
    x = torch.tensor([x_level / 127.5 - 1], dtype=torch.float64)
    log_scale = 0.5 * S.posterior_log_variance_clipped[0]
    return -discretized_gaussian_log_likelihood(x, x.clone(), log_scale).item() / LN2


def test_decoder_reference_values_exact_cdf():
    assert math.isclose(_decoder_bits(128), 1.305378, abs_tol=2e-6)   # interior pixel
    assert math.isclose(_decoder_bits(0), 0.509825, abs_tol=2e-6)     # edge pixel at -1
    assert math.isclose(_decoder_bits(255), 0.509825, abs_tol=2e-6)   # edge pixel at +1


def test_decoder_probabilities_sum_to_one_over_256_levels():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    for mean, log_scale in ((0.1, math.log(0.05)), (-0.97, math.log(0.3)), (0.5, math.log(0.004))):
        logp = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean),
                                                   torch.tensor(log_scale, dtype=torch.float64))
        assert math.isclose(logp.exp().sum().item(), 1.0, rel_tol=1e-9)


def test_decoder_rejects_data_outside_minus_one_one():
    x = torch.tensor([0.0, 255.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x must lie in \[-1, 1\]"):
        discretized_gaussian_log_likelihood(x, x, torch.tensor(0.0, dtype=torch.float64))


def test_prior_bpd_reference_values():
    x = torch.tensor([[1.0], [-1.0], [0.0]], dtype=torch.float64)
    bpd = prior_bpd(S, x)
    assert math.isclose(bpd[0].item(), 2.9112945e-5, rel_tol=1e-6)
    assert math.isclose(bpd[1].item(), 2.9112945e-5, rel_tol=1e-6)
    assert math.isclose(bpd[2].item(), 5.87e-10, rel_tol=1e-2)


@pytest.fixture(scope="module")
def oracle_vlb():
    g = torch.Generator().manual_seed(2)
    levels = torch.randint(0, 256, (3, 1, 4, 4), generator=g)
    levels[0, 0, 0, :] = 0
    levels[0, 0, 1, :] = 255
    x0 = levels.double() / 127.5 - 1

    def eps_oracle(xt, t):  # the true noise, recomputed from x0
        ab = S.alpha_bars[t].reshape(-1, 1, 1, 1)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    return x0, levels, vlb_terms(S, eps_oracle, x0, generator=g)


def test_vlb_terms_shapes(oracle_vlb):
    _, _, out = oracle_vlb
    assert out["terms_bpd"].shape == (3, 1000) and out["prior_bpd"].shape == (3,) and out["total_bpd"].shape == (3,)
    assert torch.allclose(out["total_bpd"], out["prior_bpd"] + out["terms_bpd"].sum(1))


def test_vlb_terms_with_oracle_eps_have_zero_kl(oracle_vlb):
    _, _, out = oracle_vlb
    assert out["terms_bpd"][:, 1:].abs().max().item() < 1e-9


def test_vlb_decoder_term_with_oracle_matches_edge_and_interior_values(oracle_vlb):
    x0, levels, out = oracle_vlb
    edge = ((levels == 0) | (levels == 255)).double().reshape(3, -1).mean(1)
    expected = 0.509825 * edge + 1.305378 * (1 - edge)
    assert torch.allclose(out["terms_bpd"][:, 0], expected, atol=1e-5)


def test_vlb_prior_matches_prior_bpd(oracle_vlb):
    x0, _, out = oracle_vlb
    assert torch.allclose(out["prior_bpd"], prior_bpd(S, x0))


def test_vlb_kl_terms_of_a_biased_predictor_match_the_weighted_eps_error():
    # KL(q || p_theta) = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) * ||eps - eps_theta||^2 (per dim, nats).
    x0 = torch.zeros(1, 8, dtype=torch.float64)
    delta = 0.1
    out = vlb_terms(S, lambda xt, t: (xt - S.alpha_bars[t].sqrt().reshape(-1, 1) * x0)
                    / (1 - S.alpha_bars[t]).sqrt().reshape(-1, 1) + delta, x0,
                    generator=torch.Generator().manual_seed(3))
    t = torch.arange(1, 1000)
    w = S.betas[t] ** 2 / (2 * S.posterior_variance[t] * S.alphas[t] * (1 - S.alpha_bars[t]))
    assert torch.allclose(out["terms_bpd"][0, 1:], w * delta ** 2 / LN2, rtol=1e-8)


def test_vlb_terms_rejects_bad_eps_fn():
    x0 = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="eps_fn must be callable"):
        vlb_terms(S, 3, x0)
    with pytest.raises(ValueError, match="same shape"):
        vlb_terms(S, lambda xt, t: xt[:, :1], x0)


def _biased_eps_fn(x0, delta):
    """The true noise (recomputed from x0) plus a constant offset delta: x̂_0 is off by √((1−ᾱ)/ᾱ)·delta."""
    def eps_fn(xt, t):
        ab = S.alpha_bars[t].reshape(-1, *([1] * (x0.ndim - 1)))
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt() + delta
    return eps_fn


def test_optimal_variances_closed_form_for_a_biased_predictor():
    # x0 - x̂0 = -√((1-ᾱ)/ᾱ)·delta exactly, so σ*² = β̃ + c² (1-ᾱ)/ᾱ delta² for t >= 1.
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 1, 2, 2)
    delta = 0.2
    v = optimal_variances(S, _biased_eps_fn(x0, delta), x0, generator=torch.Generator().manual_seed(4))
    expected = S.posterior_variance + S.posterior_mean_coef1 ** 2 * (1 - S.alpha_bars) / S.alpha_bars * delta ** 2
    assert v.dtype == torch.float64 and v.shape == (1000,)
    assert torch.allclose(v[1:], expected[1:], rtol=1e-9)
    assert (v[1:] > S.posterior_variance[1:]).all()


def test_optimal_variances_of_the_oracle_are_the_posterior_variances():
    x0 = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(1, 1, 4, 4)
    v = optimal_variances(S, _biased_eps_fn(x0, 0.0), x0, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(v[1:], S.posterior_variance[1:], rtol=1e-9)


def test_optimal_variances_keep_the_fixed_decoder_variance():
    x0 = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(1, 1, 4, 4)
    v = optimal_variances(S, _biased_eps_fn(x0, 0.3), x0, generator=torch.Generator().manual_seed(5))
    assert math.isclose(v[0].item(), S.posterior_variance[1].item(), rel_tol=1e-12)


def test_optimal_variances_minimise_every_kl_term_on_the_same_draws():
    # With the same generator seed both functions see the same x_t, so each KL term at σ*² must be below
    # the terms at σ*²·(1 ± 10%), and equal to ½ log(σ*²/β̃) nats (the mean-error part cancels the −1).
    g = torch.Generator().manual_seed(6)
    x0 = torch.randint(0, 256, (4, 1, 4, 4), generator=g).double() / 127.5 - 1
    wobble = torch.randn(4, 1, 4, 4, generator=g, dtype=torch.float64)

    def eps_fn(xt, t):  # an imperfect predictor whose error varies over pixels and steps
        ab = S.alpha_bars[t].reshape(-1, 1, 1, 1)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt() + 0.3 * torch.sin(3 * xt) + 0.1 * wobble

    v = optimal_variances(S, eps_fn, x0, generator=torch.Generator().manual_seed(7))
    terms = {k: vlb_terms(S, eps_fn, x0, variances=v * k, generator=torch.Generator().manual_seed(7))["terms_bpd"]
             .mean(0) for k in (0.9, 1.0, 1.1)}
    assert (terms[1.0][1:] < terms[0.9][1:]).all() and (terms[1.0][1:] < terms[1.1][1:]).all()
    closed = 0.5 * torch.log(v[1:] / S.posterior_variance[1:]) / LN2
    assert torch.allclose(terms[1.0][1:], closed, rtol=1e-6, atol=1e-12)
    fixed = vlb_terms(S, eps_fn, x0, generator=torch.Generator().manual_seed(7))["terms_bpd"].mean(0)
    assert terms[1.0][1:].sum() < fixed[1:].sum()


def test_vlb_terms_uses_the_given_decoder_variance():
    x0 = torch.tensor([[-1.0, 0.0, 1.0, 0.5]], dtype=torch.float64)
    v = S.posterior_variance.clone()
    v[0] = 0.05 ** 2
    out = vlb_terms(S, _biased_eps_fn(x0, 0.0), x0, variances=v, generator=torch.Generator().manual_seed(8))
    mean = x0  # the oracle's x̂_0 is x0, and μ_θ at t = 0 is x̂_0
    expected = -discretized_gaussian_log_likelihood(x0, mean, torch.tensor(math.log(0.05), dtype=torch.float64))
    assert math.isclose(out["terms_bpd"][0, 0].item(), expected.mean().item() / LN2, rel_tol=1e-9)


@pytest.mark.parametrize("bad, err, match", [
    ([1.0] * 1000, TypeError, "variances must be a tensor"),
    (torch.ones(999, dtype=torch.float64), ValueError, r"shape \(T,\) = \(1000,\)"),
    (-torch.ones(1000, dtype=torch.float64), ValueError, "finite and > 0"),
    (torch.full((1000,), float("nan"), dtype=torch.float64), ValueError, "finite and > 0"),
])
def test_vlb_terms_rejects_bad_variances(bad, err, match):
    x0 = torch.zeros(1, 4, dtype=torch.float64)
    with pytest.raises(err, match=match):
        vlb_terms(S, _biased_eps_fn(x0, 0.0), x0, variances=bad)


def test_optimal_variances_rejects_bad_eps_fn():
    with pytest.raises(TypeError, match="eps_fn must be callable"):
        optimal_variances(S, None, torch.zeros(1, 4, dtype=torch.float64))
