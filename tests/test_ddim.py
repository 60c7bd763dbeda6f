"""The η family of DDIM, its non-Markovian posterior, inversion and the spacing rules (chapter 6).

Oracles: the package's own DDPM step (η = 1) and DDIM step (η = 0), closed forms in float64, a Monte
Carlo check with a stated seed and tolerance, and diffusers' DDIMScheduler patched to float64 ᾱ.
"""
import math

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, ddim_step, p_sample_step, predict_x0, q_posterior, q_sample, \
    timesteps_for
from dnnl.models.ddpm.schedule import SPACINGS
from dnnl.models.ddpm.ddim import ddim_inversion_step, ddim_sigma, ddim_step_eta, q_sigma_posterior, \
    rescale_zero_terminal_snr, respaced_betas, visits_step_T

diffusers = pytest.importorskip("diffusers")

S = NoiseSchedule.linear()
from _ddim_oracle import F64, oracle, randn  # noqa: E402


# ----------------------------------------------------------------- σ_t(η)
def test_sigma_eta_one_is_the_ddpm_posterior_std():
    t = torch.arange(1, S.T)
    assert torch.allclose(ddim_sigma(S, t, t - 1, 1.0) ** 2, S.posterior_variance[1:], rtol=1e-12, atol=0)
    assert ddim_sigma(S, 0, -1, 1.0) == 0 and ddim_sigma(S, 999, 899, 0.0) == 0


def test_sigma_closed_form_on_strided_pairs_and_against_diffusers():
    ab = S.alpha_bars
    ref = oracle()
    for t, tp, eta in [(999, 899, 1.0), (500, 250, 0.5), (100, 0, 0.3), (40, -1, 1.0)]:
        ab_prev = ab[tp] if tp >= 0 else torch.tensor(1.0, dtype=F64)
        want = eta * math.sqrt((1 - ab_prev) / (1 - ab[t]) * (1 - ab[t] / ab_prev))
        assert abs(float(ddim_sigma(S, t, tp, eta)) - want) < 1e-15
        assert abs(float(ddim_sigma(S, t, tp, eta)) - eta * float(ref._get_variance(t, tp)) ** 0.5) < 1e-15


def test_sigma_batched_shape():
    out = ddim_sigma(S, torch.tensor([10, 20, 30]), torch.tensor([5, 10, -1]), 1.0)
    assert out.shape == (3,) and out[2] == 0 and out.dtype == F64


# ----------------------------------------------------------------- the step: both ends
@pytest.mark.parametrize("clip", [False, True])
def test_eta_one_consecutive_equals_p_sample_step(clip):
    x, eps = randn(4, 3, 5, seed=1) * 1.5, randn(4, 3, 5, seed=2)
    for t in [999, 500, 37, 1, 0]:
        ours = ddim_step_eta(S, eps, x, t, t - 1, eta=1.0, generator=torch.Generator().manual_seed(t), clip=clip)
        ddpm = p_sample_step(S, eps, x, t, generator=torch.Generator().manual_seed(t), clip=clip)
        assert (ours - ddpm).abs().max() < 1e-12, t
    t = torch.tensor([999, 500, 1, 0])
    ours = ddim_step_eta(S, eps, x, t, t - 1, eta=1.0, generator=torch.Generator().manual_seed(5), clip=clip)
    ddpm = p_sample_step(S, eps, x, t, generator=torch.Generator().manual_seed(5), clip=clip)
    assert (ours - ddpm).abs().max() < 1e-12


@pytest.mark.parametrize("clip", [False, True])
def test_eta_zero_equals_the_package_ddim_step(clip):
    x, eps = randn(3, 8, seed=3) * 2, randn(3, 8, seed=4)
    for t in [999, 400, 0]:
        assert (ddim_step_eta(S, eps, x, t, t - 1, eta=0.0, clip=clip) - ddim_step(S, eps, x, t, clip=clip)).abs().max() < 1e-13
    taus = timesteps_for(1000, 20)                       # 950, 900, ..., 0
    chain = NoiseSchedule.respaced(S, taus)              # chain index i is taus[-1 - i]
    for i in [19, 7, 0]:
        t, tp = int(taus.flip(0)[i]), (int(taus.flip(0)[i - 1]) if i else -1)
        full = ddim_step_eta(S, eps, x, t, tp, eta=0.0, clip=clip)
        assert (full - ddim_step(chain, eps, x, i, clip=clip)).abs().max() < 1e-13


def test_clip_recomputes_eps_from_the_clipped_x0():
    x, eps = randn(64, seed=5) * 3, randn(64, seed=6) * 3
    t, tp = 50, 10
    x0_hat = predict_x0(S, x, t, eps)
    assert (x0_hat.abs() > 1).any()                      # the clamp is active
    x0c = x0_hat.clamp(-1, 1)
    eps_c = (x - S.sqrt_alpha_bars[t] * x0c) / S.sqrt_one_minus_alpha_bars[t]
    want = S.alpha_bars[tp].sqrt() * x0c + (1 - S.alpha_bars[tp]).sqrt() * eps_c
    assert (ddim_step_eta(S, eps, x, t, tp, eta=0.0, clip=True) - want).abs().max() < 1e-13
    stale = S.alpha_bars[tp].sqrt() * x0c + (1 - S.alpha_bars[tp]).sqrt() * eps   # ε not recomputed
    assert (ddim_step_eta(S, eps, x, t, tp, eta=0.0, clip=True) - stale).abs().max() > 1e-2


@pytest.mark.parametrize("n", [10, 50])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_step_matches_diffusers(n, spacing, clip, eta):
    ref = oracle(spacing=spacing, clip=clip)
    ref.set_timesteps(n)
    taus = timesteps_for(1000, n, spacing=spacing)
    assert taus.tolist() == ref.timesteps.tolist()
    x = randn(2, 1, 4, 4, seed=n) * 1.2
    worst = 0.0
    for k, t in enumerate(taus.tolist()):
        tp = int(taus[k + 1]) if k + 1 < n else -1
        assert tp == max(t - 1000 // n, -1)               # diffusers' rule agrees with the chain here
        eps, z = randn(2, 1, 4, 4, seed=100 + k), randn(2, 1, 4, 4, seed=200 + k)
        ours = ddim_step_eta(S, eps, x, t, tp, eta=eta, noise=z, clip=clip)
        want = ref.step(eps, t, x, eta=eta, variance_noise=z, use_clipped_model_output=clip).prev_sample
        worst = max(worst, (ours - want).abs().max().item())
        x = ours
    assert worst < 1e-12


def test_noise_and_generator_draw_the_same_z_and_eta_zero_draws_none():
    x, eps = randn(3, 4, seed=7), randn(3, 4, seed=8)
    a = ddim_step_eta(S, eps, x, 300, 200, eta=0.7, generator=torch.Generator().manual_seed(1))
    b = ddim_step_eta(S, eps, x, 300, 200, eta=0.7, noise=torch.randn(3, 4, generator=torch.Generator().manual_seed(1),
                                                                      dtype=F64))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    ddim_step_eta(S, eps, x, 300, 200, eta=0.0, generator=g)
    assert torch.equal(g.get_state(), state)


def test_step_without_noise_is_the_q_sigma_mean_at_x0_hat():
    x, eps = randn(5, 3, seed=9), randn(5, 3, seed=10)
    t, tp, eta = 700, 350, 0.6
    mean, var = q_sigma_posterior(S, predict_x0(S, x, t, eps), x, t, tp, eta)
    assert (ddim_step_eta(S, eps, x, t, tp, eta=eta, noise=torch.zeros_like(x)) - mean).abs().max() < 1e-13
    assert torch.allclose(var, ddim_sigma(S, t, tp, eta).expand_as(x) ** 2, rtol=1e-14, atol=0)


# ----------------------------------------------------------------- inversion
def test_inversion_exactly_undoes_the_eta_zero_step_for_the_same_eps():
    x, eps = randn(4, 6, seed=11), randn(4, 6, seed=12)
    for t, tp in [(999, 899), (400, 100), (20, -1)]:
        x_prev = ddim_step_eta(S, eps, x, t, tp, eta=0.0)
        assert (ddim_inversion_step(S, eps, x_prev, tp, t) - x).abs().max() < 1e-12


def _affine(t, t_next, like):
    """x_next = A x + B ε of one inversion step, read off the step itself (it is affine in x and ε)."""
    zero = torch.zeros_like(like)
    A = ddim_inversion_step(S, zero, torch.ones_like(like), t, t_next)
    B = ddim_inversion_step(S, torch.ones_like(like), zero, t, t_next)
    return A, B


def test_inversion_round_trip_with_the_exact_eps_of_a_linear_function():
    k = lambda t: 0.2 + 0.5 * math.cos(t / 300)  # ε(x, t) = k_t x + b_t, linear in x
    b = lambda t: 0.05 * math.sin(t / 50)
    eps = lambda x, t: k(t) * x + b(t)
    x0 = randn(3, 10, seed=13).clamp(-1, 1)
    chain = timesteps_for(1000, 25, spacing="trailing").flip(0).tolist()   # 39, 79, ..., 999
    x, t = x0, -1
    for t_next in chain:  # encode with the exact ε at the *new* point: x_next = A x + B (k x_next + b)
        A, B = _affine(t, t_next, x)
        x = (A * x + B * b(t_next)) / (1 - B * k(t_next))
        t = t_next
    for i, t in enumerate(reversed(chain)):  # decode with the same ε-function
        tp = chain[-2 - i] if i + 1 < len(chain) else -1
        x = ddim_step_eta(S, eps(x, t), x, t, tp, eta=0.0)
    assert (x - x0).abs().max() < 1e-10


def test_naive_inversion_error_shrinks_with_more_steps():
    """ε evaluated at the current point (the usual inversion) errs at first order in the step size.

    Data N(0, I) has the exact ε(x_t) = √(1 − ᾱ_t) x_t, so the error comes from the inversion alone.
    """
    x0 = randn(2000, seed=14)
    errors = {}
    for n in (10, 100):
        chain = timesteps_for(1000, n, spacing="trailing").flip(0).tolist()
        x, prev = x0, -1
        for t in chain:
            e = S.sqrt_one_minus_alpha_bars[prev] * x if prev >= 0 else torch.zeros_like(x)
            x = ddim_inversion_step(S, e, x, prev, t)
            prev = t
        for i, t in enumerate(reversed(chain)):
            tp = chain[-2 - i] if i + 1 < len(chain) else -1
            x = ddim_step_eta(S, S.sqrt_one_minus_alpha_bars[t] * x, x, t, tp, eta=0.0)
        errors[n] = (x - x0).abs().max().item()
    assert errors[100] < errors[10] / 4 and errors[10] > 1e-3, errors


# ----------------------------------------------------------------- q_σ keeps the marginals
def test_q_sigma_posterior_eta_one_consecutive_is_q_posterior():
    x0, xt = randn(4, 5, seed=15), randn(4, 5, seed=16)
    for t in [999, 10, 1]:
        mean, var = q_sigma_posterior(S, x0, xt, t, t - 1, 1.0)
        want_mean, want_var, _ = q_posterior(S, x0, xt, t)
        assert (mean - want_mean).abs().max() < 1e-12 and torch.allclose(var, want_var, rtol=1e-12, atol=0)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_q_sigma_marginal_closed_form(eta):
    """The mean is affine in x_t: slope c, so Var(x_prev) = c²(1 − ᾱ_t) + σ² = 1 − ᾱ_prev exactly."""
    x0 = randn(6, seed=17)
    for t, tp in [(999, 899), (600, 100), (5, 4)]:
        m0, var = q_sigma_posterior(S, x0, S.sqrt_alpha_bars[t] * x0, t, tp, eta)   # x_t at its mean
        m1, _ = q_sigma_posterior(S, x0, S.sqrt_alpha_bars[t] * x0 + 1, t, tp, eta)
        slope = m1 - m0
        assert (m0 - S.sqrt_alpha_bars[tp] * x0).abs().max() < 1e-14
        assert torch.allclose(slope ** 2 * (1 - S.alpha_bars[t]) + var, 1 - S.alpha_bars[tp].expand(6), rtol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_q_sigma_marginal_monte_carlo(eta):
    """x_t ~ q(x_t | x_0), then x_prev ~ q_σ: mean and variance of q(x_prev | x_0) within 5 standard errors."""
    g = torch.Generator().manual_seed(2021)
    n = 200_000
    x0 = torch.tensor([-1.0, -0.3, 0.4, 1.0], dtype=F64).repeat(n // 4)
    for t, tp in [(999, 799), (400, 399), (300, 50)]:
        xt = q_sample(S, x0, t, torch.randn(n, generator=g, dtype=F64))
        mean, var = q_sigma_posterior(S, x0, xt, t, tp, eta)
        x_prev = mean + var.sqrt() * torch.randn(n, generator=g, dtype=F64)
        resid = (x_prev - S.sqrt_alpha_bars[tp] * x0).reshape(-1, 4)      # columns: the four x_0 values
        v = float(1 - S.alpha_bars[tp])
        m_per = n // 4
        assert (resid.mean(0).abs() < 5 * math.sqrt(v / m_per)).all(), (t, tp, resid.mean(0))
        assert ((resid.var(0) / v - 1).abs() < 5 * math.sqrt(2 / m_per)).all(), (t, tp, resid.var(0) / v)


# ----------------------------------------------------------------- spacing rules
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("T", [1000, 999, 50, 7])
def test_timesteps_for_match_diffusers(spacing, T):
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    for n in sorted({1, 2, 3, 7, 10, 13, 29, 50, T // 2, T} & set(range(1, T + 1))):
        ref.set_timesteps(n)
        ours, theirs = timesteps_for(T, n, spacing=spacing).tolist(), ref.timesteps.tolist()
        if len(theirs) == n + 1:  # diffusers' trailing np.arange sometimes adds a spurious -1
            assert spacing == "trailing" and theirs[-1] == -1, (T, n)
            theirs = theirs[:-1]
        assert ours == theirs, (T, n)


def test_trailing_extra_step_quirk_is_real_and_dropped():
    ref = diffusers.DDIMScheduler(num_train_timesteps=50, timestep_spacing="trailing")
    ref.set_timesteps(29)
    assert len(ref.timesteps) == 30 and int(ref.timesteps[-1]) == -1
    assert len(timesteps_for(50, 29, spacing="trailing")) == 29


@pytest.mark.parametrize("spacing", SPACINGS)
def test_timesteps_for_are_valid_chains(spacing):
    for T in (1000, 37):
        for n in range(1, T + 1, 1 if T < 100 else 7):
            ts = timesteps_for(T, n, spacing=spacing)
            assert ts.dtype == torch.long and ts.shape == (n,), (T, n)
            assert (ts[:-1] > ts[1:]).all() and ts.min() >= 0 and ts.max() <= T - 1, (T, n)


def test_leading_is_timesteps_for_and_which_chains_visit_step_T():
    assert torch.equal(timesteps_for(1000, 50), (torch.arange(50) * 20).flip(0))
    lead = timesteps_for(1000, 10, spacing="leading")
    assert int(lead[0]) + 1 == 901 and not visits_step_T(lead, 1000)
    assert visits_step_T(timesteps_for(1000, 1000), 1000)
    for n in (1, 3, 10, 29, 333):
        assert visits_step_T(timesteps_for(1000, n, spacing="trailing"), 1000)
        assert visits_step_T(timesteps_for(1000, n, spacing="linspace"), 1000) == (n > 1)  # 1 step: just 0
    assert visits_step_T([5, 999, 0], 1000) and not visits_step_T(torch.tensor([0, 998]), 1000)


def test_respaced_betas_closed_form_and_the_eta_one_link():
    taus = timesteps_for(1000, 10, spacing="trailing")
    betas = respaced_betas(S, taus)
    ab, prev = S.alpha_bars, 1.0
    for i, t in enumerate(sorted(taus.tolist())):
        assert abs(float(betas[i]) - (1 - float(ab[t]) / prev)) < 1e-15
        prev = float(ab[t])
    assert torch.allclose(torch.cumprod(1 - betas, 0), ab[taus.flip(0)], rtol=1e-13, atol=0)
    chain = NoiseSchedule.respaced(S, taus)
    assert torch.equal(betas, chain.betas)
    visited = taus.flip(0)  # ascending: chain index i is visited[i]
    sig = ddim_sigma(S, visited, torch.cat([torch.tensor([-1]), visited[:-1]]), 1.0)
    assert torch.allclose(sig ** 2, chain.posterior_variance, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("make", [NoiseSchedule.linear, NoiseSchedule.cosine])
def test_rescale_zero_terminal_snr_matches_diffusers(make):
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr as ref

    betas = make(1000).betas
    ours = rescale_zero_terminal_snr(betas)
    assert ours.dtype == F64 and (ours - ref(betas.clone())).abs().max() < 1e-14
    ab = torch.cumprod(1 - ours, 0)
    assert ab[-1] == 0 and ours[-1] == 1 and abs(float(ab[0]) - float(make(1000).alpha_bars[0])) < 1e-15
    assert (ours[:-1] > 0).all() and (ours < 1 + 1e-15).all()


# ----------------------------------------------------------------- bad input, caught at the door
X, E = randn(2, 3), randn(2, 3)
BAD = [
    (lambda: ddim_sigma(S, 10, 9, 1.5), ValueError, "eta must be"),
    (lambda: ddim_sigma(S, 10, 9, "0"), TypeError, "eta must be"),
    (lambda: ddim_sigma(S, 10, 9, float("nan")), ValueError, "eta must be"),
    (lambda: ddim_sigma(S, 10, 10, 1.0), ValueError, "t_prev must be smaller than t"),
    (lambda: ddim_sigma(S, 1000, 9, 1.0), ValueError, r"t must be in \[0, 999\]"),
    (lambda: ddim_sigma(S, 10, -2, 1.0), ValueError, r"t_prev must be in \[-1, 999\]"),
    (lambda: ddim_sigma(S, 10, 2.0, 1.0), TypeError, "t_prev must be"),
    (lambda: ddim_sigma("linear", 10, 9, 1.0), TypeError, "schedule must be a NoiseSchedule"),
    (lambda: ddim_step_eta(S, E, X, 10, 9), TypeError, "eta"),
    (lambda: ddim_step_eta(S, E[:1], X, 10, 9, eta=0.0), ValueError, "eps must have the same shape"),
    (lambda: ddim_step_eta(S, E, X, 10, 9, eta=0.5, noise=E, generator=torch.Generator()), ValueError,
     "either noise or generator"),
    (lambda: ddim_step_eta(S, E, X, 10, 9, eta=0.5, noise=E[:, :2]), ValueError, "noise must have the same shape"),
    (lambda: ddim_step_eta(S, E, X, 10, 9, eta=0.5, generator=0), TypeError, "generator must be"),
    (lambda: ddim_step_eta(S, E, X, 10, 9, eta=0.0, clip="yes"), TypeError, "clip must be True or False"),
    (lambda: ddim_step_eta(S, E, X, torch.tensor([10, 20, 30]), 9, eta=0.0), ValueError, "t must hold one"),
    (lambda: ddim_step_eta(S, E, X, torch.tensor([10, 20]), torch.tensor([5, 25]), eta=0.0), ValueError,
     "t_prev must be smaller than t"),
    (lambda: ddim_step_eta(S, E.long(), X, 10, 9, eta=0.0), TypeError, "eps must be a floating-point"),
    (lambda: ddim_inversion_step(S, E, X, 10, 5), ValueError, "t must be smaller than t_next"),
    (lambda: ddim_inversion_step(S, E, X, -1, -1), ValueError, r"t_next must be in \[0, 999\]"),
    (lambda: q_sigma_posterior(S, X, X[:1], 10, 9, 0.5), ValueError, "x0 must have the same shape"),
    (lambda: timesteps_for(1000, 10, spacing="uniform"), ValueError, "spacing must be one of"),
    (lambda: timesteps_for(1000, 1001), ValueError, r"steps must be an int in \[1, 1000\]"),
    (lambda: timesteps_for(1000, 0), ValueError, "steps must be"),
    (lambda: timesteps_for(1000.0, 10), TypeError, "T must be an int"),
    (lambda: visits_step_T([0, 1000], 1000), ValueError, r"timesteps must be in \[0, 999\]"),
    (lambda: visits_step_T([0.5], 1000), TypeError, "timesteps must be integers"),
    (lambda: respaced_betas(S, []), ValueError, "at least one step"),
    (lambda: rescale_zero_terminal_snr([0.1, 1.5]), ValueError, "every beta"),
    (lambda: rescale_zero_terminal_snr("linear"), TypeError, "betas must be"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_float32_data_gets_float32_results_from_float64_coefficients():
    x, eps, z = randn(4, 5, seed=40), randn(4, 5, seed=41), randn(4, 5, seed=42)
    want = ddim_step_eta(S, eps, x, 900, 500, eta=0.5, noise=z, clip=True)
    got = ddim_step_eta(S, eps.float(), x.float(), 900, 500, eta=0.5, noise=z.float(), clip=True)
    assert got.dtype == torch.float32 and (got.double() - want).abs().max() < 1e-5
    mean, var = q_sigma_posterior(S, x.float(), x.float(), 900, 500, 0.5)
    assert mean.dtype == var.dtype == torch.float32
