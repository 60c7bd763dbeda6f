"""Learned variances and L_hybrid (chapter 3): the range against diffusers, the loss's parts, the bound,
the sampler, widening a checkpoint and training with resume."""
from __future__ import annotations

import math

import pytest
import torch

from dnnl.models.ddpm import (DECODER_FLOOR, NoiseSchedule, TrainConfig, UNet, hybrid_loss, init_weights,
                              learned_log_variance, noise_prediction_loss, normal_kl, p_mean_variance, q_posterior,
                              sample, split_prediction, vlb_terms)
from dnnl.models.ddpm.losses import _draw_t, _vlb_nats
from _train_helpers import one_thread, resumes_bit_identically  # noqa: F401


def _v_for(schedule, log_variance: torch.Tensor) -> torch.Tensor:
    """The v whose learned range gives ``log_variance`` (T,) at each step: the range solved for v."""
    v = torch.empty(schedule.T, dtype=torch.float64)
    for t in range(schedule.T):
        low = learned_log_variance(schedule, torch.full((1,), -1.0, dtype=torch.float64), t)
        high = learned_log_variance(schedule, torch.full((1,), 1.0, dtype=torch.float64), t)
        v[t] = 2 * (log_variance[t] - low) / (high - low) - 1
    return v


class FixedOutput(torch.nn.Module):
    """ε = a fixed function of x_t, and v = a per-step constant: a model whose every output is known."""

    def __init__(self, v_per_step: torch.Tensor | None = None, learned: bool = True):
        super().__init__()
        self.v, self.learned = v_per_step, learned

    def forward(self, x, t):
        eps = 0.3 * x + 0.01 * t.to(x.dtype).reshape(-1, 1, 1, 1)
        if not self.learned:
            return eps
        v = torch.zeros_like(eps) if self.v is None else self.v[t].to(x.dtype).reshape(-1, 1, 1, 1).expand_as(eps)
        return torch.cat([eps, v], dim=1)


def test_the_learned_range_matches_diffusers_for_every_step_after_the_first():
    from diffusers import DDPMScheduler

    ours = NoiseSchedule.linear(1000)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type="learned_range")
    for t in (1, 2, 10, 500, 999):
        for v in (-1.0, -0.3, 0.0, 0.7, 1.0, 1.8):
            got = learned_log_variance(ours, torch.tensor([v], dtype=torch.float64), t).exp().item()
            want = ref._get_variance(t, predicted_variance=torch.tensor([v], dtype=torch.float32)).exp().item()
            # diffusers forms 1 - ᾱ_t in float32: near t = 1 it is about 2e-4 with an error of about 6e-8,
            # and at t = 10 the error is still 2e-4 relative
            assert got == pytest.approx(want, rel=1e-3), (t, v)


def test_the_range_runs_from_beta_tilde_to_beta_and_at_step_one_from_the_floor_to_beta_1():
    s = NoiseSchedule.cosine(200)
    ends = torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64)
    for t in (1, 57, 199):
        low, high, mid = learned_log_variance(s, ends, t)
        assert low.item() == pytest.approx(math.log(s.posterior_variance[t].item()), abs=1e-12)
        assert high.item() == pytest.approx(math.log(s.betas[t].item()), abs=1e-12)
        assert mid.item() == pytest.approx((low.item() + high.item()) / 2, abs=1e-12)  # geometric mean
    low, high, _ = learned_log_variance(s, ends, 0)
    assert high.item() == pytest.approx(math.log(s.betas[0].item()), abs=1e-12)
    assert low.item() == pytest.approx(math.log(s.betas[0].item() * DECODER_FLOOR), abs=1e-12)


def test_split_prediction_names_the_channels_it_wants():
    eps, v = split_prediction(torch.arange(8.0).reshape(1, 2, 2, 2), 1)
    assert eps.tolist() == [[[[0, 1], [2, 3]]]] and v.tolist() == [[[[4, 5], [6, 7]]]]
    with pytest.raises(ValueError, match=r"2 x 1 channels.*UNet\(out_channels=2\)"):
        split_prediction(torch.zeros(1, 1, 2, 2), 1)


def test_with_no_vlb_weight_l_hybrid_is_l_simple_on_the_same_draws():
    s, x0 = NoiseSchedule.linear(50), torch.rand(6, 1, 4, 4) * 2 - 1
    hybrid = hybrid_loss(FixedOutput(), s, x0, vlb_weight=0.0, generator=torch.Generator().manual_seed(3))
    simple = noise_prediction_loss(FixedOutput(learned=False), s, x0, generator=torch.Generator().manual_seed(3))
    assert hybrid.item() == pytest.approx(simple.item(), rel=1e-6)


def test_the_vlb_term_holds_the_mean_fixed_and_trains_only_v():
    """Stop-gradient on the mean (Eq. @eq-l-hybrid): the ε half gets L_simple's gradient and nothing more."""
    s, x0 = NoiseSchedule.linear(50), torch.rand(6, 1, 4, 4) * 2 - 1
    out = torch.randn(6, 2, 4, 4, requires_grad=True)
    grads = []
    for weight in (0.0, 1e-3):
        out.grad = None
        hybrid_loss(lambda x, t: out, s, x0, vlb_weight=weight, generator=torch.Generator().manual_seed(0)).backward()
        grads.append(out.grad.clone())
    assert torch.equal(grads[0][:, :1], grads[1][:, :1])  # ε: identical
    assert grads[0][:, 1:].abs().max() == 0 and grads[1][:, 1:].abs().max() > 0  # v: only from L_vlb


def test_each_vlb_term_is_the_kl_or_the_decoder_nll_of_the_learned_gaussian():
    s = NoiseSchedule.linear(30)
    x0 = (torch.randint(0, 256, (4, 1, 3, 3)).double() / 255) * 2 - 1
    xt, v = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(4, 1, 3, 3, dtype=torch.float64)
    eps = 0.5 * xt
    t = torch.tensor([0, 1, 7, 29])
    got = _vlb_nats(s, x0, xt, t, eps, v)
    mean, _, _ = p_mean_variance(s, eps, xt, t)
    log_var = learned_log_variance(s, v, t)
    true_mean, _, true_log_var = q_posterior(s, x0, xt, t)
    kl = normal_kl(true_mean, true_log_var, mean, log_var).flatten(1).mean(1)
    from dnnl.models.ddpm import discretized_gaussian_log_likelihood
    nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).flatten(1).mean(1)
    assert torch.allclose(got[1:], kl[1:], rtol=1e-12) and torch.allclose(got[:1], nll[:1], rtol=1e-12)


def test_the_decoder_share_draws_t0_that_often_and_its_weights_keep_the_expectation():
    T, share, n = 1000, 0.25, 40_000
    t, w = _draw_t(T, n, torch.device("cpu"), torch.Generator().manual_seed(0), share)
    freq = (t == 0).float().mean().item()
    assert abs(freq - share) < 4 * math.sqrt(share * (1 - share) / n)  # Monte Carlo, 4 standard errors, seed 0
    assert (t[t > 0] >= 1).all() and t.max() < T
    assert w[t == 0].unique().tolist() == pytest.approx([1 / (T * share)])
    assert w[t > 0].unique().tolist() == pytest.approx([(T - 1) / (T * (1 - share))])
    assert share * w[t == 0][0].item() + (1 - share) * w[t > 0][0].item() == pytest.approx(1.0)  # E[1/(T p_t)] = 1
    uniform_t, uniform_w = _draw_t(T, 8, torch.device("cpu"), torch.Generator().manual_seed(0), None)
    assert uniform_w.tolist() == [1.0] * 8


def test_the_bound_with_v_at_the_fixed_variances_equals_the_fixed_bound():
    s, x0 = NoiseSchedule.linear(40), (torch.randint(0, 256, (3, 1, 4, 4)).float() / 255) * 2 - 1
    v = _v_for(s, s.posterior_log_variance_clipped)
    fixed = vlb_terms(s, FixedOutput(learned=False), x0, generator=torch.Generator().manual_seed(1))
    learned = vlb_terms(s, FixedOutput(v), x0, generator=torch.Generator().manual_seed(1), learned_variance=True)
    assert torch.allclose(fixed["terms_bpd"], learned["terms_bpd"], rtol=1e-4, atol=1e-7)
    wider = vlb_terms(s, FixedOutput(v + 0.5), x0, generator=torch.Generator().manual_seed(1), learned_variance=True)
    assert not torch.allclose(fixed["total_bpd"], wider["total_bpd"])
    with pytest.raises(ValueError, match="learned_variance=True takes the variances from the model"):
        vlb_terms(s, FixedOutput(v), x0, variances=s.betas, learned_variance=True)
    with pytest.raises(ValueError, match="2 x 1 channels"):
        vlb_terms(s, FixedOutput(learned=False), x0, learned_variance=True)


def test_sampling_with_v_at_minus_one_is_the_fixed_small_sampler():
    s = NoiseSchedule.linear(100)
    v = torch.full((100,), -1.0)
    noise = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    kw = dict(steps=20, noise=noise, progress=False)
    fixed = sample(FixedOutput(learned=False), s, (4, 1, 4, 4), generator=torch.Generator().manual_seed(5), **kw)
    learned = sample(FixedOutput(v), s, (4, 1, 4, 4), generator=torch.Generator().manual_seed(5),
                     variance_type="learned_range", **kw)
    assert torch.allclose(fixed.images, learned.images, atol=1e-5)
    large = sample(FixedOutput(v + 2.0), s, (4, 1, 4, 4), generator=torch.Generator().manual_seed(5),
                   variance_type="learned_range", **kw)
    as_large = sample(FixedOutput(learned=False), s, (4, 1, 4, 4), generator=torch.Generator().manual_seed(5),
                      variance_type="fixed_large", **kw)
    assert torch.allclose(large.images, as_large.images, atol=1e-5)  # v = +1: the chain's β
    with pytest.raises(ValueError, match="learned-variance model.*variance_type='learned_range'"):
        sample(FixedOutput(v), s, (4, 1, 4, 4), **kw)


def test_init_weights_widens_an_eps_only_checkpoint_and_v_starts_at_zero(tmp_path):
    torch.manual_seed(0)
    small = dict(channels=(8, 16), groups=4, heads=2)
    eps_only = UNet(**small)
    with torch.no_grad():
        for p in eps_only.parameters():
            p.normal_(0, 0.05)
    torch.save(eps_only.state_dict(), tmp_path / "w.pt")
    wide = UNet(**small, out_channels=2)
    init_weights(wide, tmp_path / "w.pt")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 40])
    with torch.no_grad():
        eps, v = split_prediction(wide(x, t), 1)
        assert torch.allclose(eps, eps_only(x, t), atol=1e-6) and v.abs().max() == 0


def test_a_learned_variance_run_resumes_bit_identically_and_learns_v(mnist_root, tmp_path, one_thread):  # noqa: F811
    whole = resumes_bit_identically(mnist_root, tmp_path, learn_variance=True, decoder_share=0.25, attention=False)
    assert whole.model.conv_out.weight.shape[0] == 2 and whole.model.conv_out.weight[1].abs().sum() > 0


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(learn_variance="yes"), TypeError, "learn_variance must be True or False"),
    (dict(decoder_share=1.0), ValueError, "decoder_share"),
    (dict(vlb_weight=-1.0), ValueError, "vlb_weight"),
])
def test_bad_learned_variance_fields_are_refused_with_their_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_hybrid_loss_refuses_bad_arguments_by_name():
    s, x0 = NoiseSchedule.linear(20), torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="decoder_share"):
        hybrid_loss(FixedOutput(), s, x0, decoder_share=0.0)
    with pytest.raises(ValueError, match="vlb_weight"):
        hybrid_loss(FixedOutput(), s, x0, vlb_weight=float("nan"))
    with pytest.raises(ValueError, match="2 x 1 channels"):
        hybrid_loss(FixedOutput(learned=False), s, x0)
