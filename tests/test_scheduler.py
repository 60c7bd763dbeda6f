"""DDPMScheduler against diffusers' DDPMScheduler used as an oracle (float64-patched, clip_sample=False)."""
import math

import pytest
import torch

from dnnl.models.ddpm import DDPMScheduler, NoiseSchedule, p_sample_step, timesteps_for

diffusers = pytest.importorskip("diffusers")


def oracle(variance_type="fixed_small", clip=False):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                  clip_sample=clip, variance_type=variance_type)
    s = NoiseSchedule.linear()
    ref.betas = s.betas.clone()
    ref.alphas = s.alphas.clone()
    ref.alphas_cumprod = s.alpha_bars.clone()
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    return ref


def test_add_noise_matches_diffusers():
    ours, ref = DDPMScheduler(clip_sample=False), oracle()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 17, 500, 998, 999])
    assert (ours.add_noise(x0, noise, t) - ref.add_noise(x0, noise, t)).abs().max() < 1e-15


def test_stock_float32_diffusers_agrees_within_1e_3():
    ours, ref = DDPMScheduler(clip_sample=False), diffusers.DDPMScheduler(clip_sample=False)
    x0 = torch.rand(4, 3) * 2 - 1
    noise = torch.randn(4, 3)
    t = torch.tensor([0, 3, 400, 999])
    assert (ours.add_noise(x0, noise, t) - ref.add_noise(x0, noise, t)).abs().max() < 1e-3


def test_leading_timesteps_match_diffusers():
    ours, ref = DDPMScheduler(), oracle()
    for n in (1000, 250, 50, 10, 7, 1):
        ours.set_timesteps(n)
        ref.set_timesteps(n)
        assert ours.timesteps.tolist() == ref.timesteps.tolist(), n
    ours.set_timesteps(50)
    assert ours.timesteps[:2].tolist() == [980, 960] and ours.timesteps[-1] == 0


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("n", [1000, 250, 50, 10])
def test_step_matches_diffusers(variance_type, n):
    ours = DDPMScheduler(clip_sample=False, variance_type=variance_type)
    ref = oracle(variance_type)
    ours.set_timesteps(n)
    ref.set_timesteps(n)
    g = torch.Generator().manual_seed(n)
    sample = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    worst = 0.0
    for t in ours.timesteps[:: max(1, n // 25)].tolist() + [int(ours.timesteps[-1])]:
        eps = torch.randn(sample.shape, generator=g, dtype=torch.float64)
        a = ours.step(eps, t, sample, generator=torch.Generator().manual_seed(t))
        b = ref.step(eps, t, sample, generator=torch.Generator().manual_seed(t))
        worst = max(worst, (a.prev_sample - b.prev_sample).abs().max().item(),
                    (a.pred_original_sample - b.pred_original_sample).abs().max().item())
    assert worst < 1e-10


def test_clip_sample_matches_diffusers():
    ours, ref = DDPMScheduler(clip_sample=True), oracle(clip=True)
    ours.set_timesteps(50)
    ref.set_timesteps(50)
    sample = torch.full((2, 3), 2.5, dtype=torch.float64)
    eps = torch.full((2, 3), -0.4, dtype=torch.float64)
    a = ours.step(eps, 500, sample, generator=torch.Generator().manual_seed(0))
    b = ref.step(eps, 500, sample, generator=torch.Generator().manual_seed(0))
    assert (a.prev_sample - b.prev_sample).abs().max() < 1e-10
    assert a.pred_original_sample.max() <= 1.0


def test_strided_step_uses_effective_beta_not_the_training_beta():
    ours = DDPMScheduler(clip_sample=False)
    ours.set_timesteps(10)
    s = ours.schedule
    t, prev = 500, ours.previous_timestep(500)
    assert prev == 400
    sample = torch.zeros(1, 1, dtype=torch.float64)
    eps = torch.ones(1, 1, dtype=torch.float64)
    out = ours.step(eps, t, sample, generator=torch.Generator().manual_seed(0)).pred_original_sample
    ab_t, ab_prev = s.alpha_bars[t], s.alpha_bars[prev]
    beta_eff = 1 - ab_t / ab_prev
    mean = (ab_prev.sqrt() * beta_eff * out + (ab_t / ab_prev).sqrt() * (1 - ab_prev) * sample) / (1 - ab_t)
    # Deterministic part: run step with variance 0 by checking the mean through two different seeds' average.
    a = ours.step(eps, t, sample, generator=torch.Generator().manual_seed(1)).prev_sample
    b_ = ours.step(eps, t, sample, generator=torch.Generator().manual_seed(2)).prev_sample
    var = (1 - ab_prev) / (1 - ab_t) * beta_eff
    za = (a - mean) / var.sqrt()
    zb = (b_ - mean) / var.sqrt()
    z1 = torch.randn(1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z2 = torch.randn(1, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(za, z1) and torch.allclose(zb, z2)
    assert not math.isclose(float(beta_eff), float(s.betas[t]), rel_tol=0.1)


def test_full_chain_step_equals_p_sample_step():
    ours = DDPMScheduler(clip_sample=False)
    s = ours.schedule
    x = torch.randn(2, 3, dtype=torch.float64)
    eps = torch.randn(2, 3, dtype=torch.float64)
    for t in (999, 500, 1, 0):
        a = ours.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        b = p_sample_step(s, eps, x, t, generator=torch.Generator().manual_seed(t))
        assert torch.allclose(a, b, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="beta_schedule"):
        DDPMScheduler(beta_schedule="quadratic")
    with pytest.raises(ValueError, match="variance_type"):
        DDPMScheduler(variance_type="learned")
    s = DDPMScheduler()
    with pytest.raises(ValueError, match=r"num_inference_steps must be an int in \[1, 1000\]"):
        s.set_timesteps(0)
    with pytest.raises(TypeError, match="num_inference_steps must be an int"):
        s.set_timesteps(10.0)
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="not on the current chain"):
        s.step(torch.zeros(1, 2), 999, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"timestep must be in \[0, 999\]"):
        s.step(torch.zeros(1, 2), 1000, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="single int"):
        s.step(torch.zeros(2, 2), torch.tensor([900, 900]), torch.zeros(2, 2))


def test_from_schedule_runs_on_any_noise_schedule():
    cos = NoiseSchedule.cosine(T=200)
    s = DDPMScheduler.from_schedule(cos, clip_sample=False)
    assert s.schedule is cos and s.num_train_timesteps == 200 and s.timesteps[0] == 199
    x = torch.randn(2, 3, dtype=torch.float64)
    eps = torch.randn(2, 3, dtype=torch.float64)
    a = s.step(eps, 150, x, generator=torch.Generator().manual_seed(0)).prev_sample
    b = p_sample_step(cos, eps, x, 150, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-12)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        DDPMScheduler.from_schedule("cosine")
    with pytest.raises(ValueError, match="variance_type"):
        DDPMScheduler.from_schedule(cos, variance_type="learned")


def test_timesteps_for_is_diffusers_leading_spacing():
    for T, n in ((1000, 1000), (1000, 250), (1000, 50), (1000, 7), (1000, 1), (200, 33), (10, 3)):
        ref = diffusers.DDPMScheduler(num_train_timesteps=T)
        ref.set_timesteps(n)
        assert timesteps_for(T, n).tolist() == ref.timesteps.tolist(), (T, n)
    assert timesteps_for(1000).tolist() == list(range(999, -1, -1))


@pytest.mark.parametrize("n", [1000, 50, 7])
def test_previous_timestep_matches_diffusers(n):
    ours, ref = DDPMScheduler(), oracle()
    ours.set_timesteps(n)
    ref.set_timesteps(n)
    for t in ours.timesteps.tolist():
        assert ours.previous_timestep(t) == int(ref.previous_timestep(t)), t


def test_step_computes_x0_once(monkeypatch):
    import importlib

    sample_module = importlib.import_module("dnnl.models.ddpm.sample")  # the module, not the function
    calls = []
    real = sample_module._predict_x0
    monkeypatch.setattr(sample_module, "_predict_x0", lambda *a: calls.append(1) or real(*a))
    s = DDPMScheduler()
    s.set_timesteps(10)
    out = s.step(torch.randn(2, 3), 500, torch.randn(2, 3), generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1 and out.pred_original_sample.shape == (2, 3)


@pytest.mark.parametrize("kwargs", [{"beta_start": 0.5}, {"beta_end": 0.05}, {"beta_start": 1e-4, "beta_end": 0.02}])
def test_cosine_schedule_refuses_linear_arguments(kwargs):
    with pytest.raises(ValueError, match=r"beta_(start|end).* only apply to beta_schedule='linear'"):
        DDPMScheduler(beta_schedule="cosine", **kwargs)
    with pytest.raises(ValueError, match="only apply to beta_schedule='linear'"):
        DDPMScheduler(beta_schedule="squaredcos_cap_v2", **kwargs)


def test_linear_beta_arguments_are_used():
    s = DDPMScheduler(num_train_timesteps=100, beta_start=1e-3, beta_end=0.05)
    torch.testing.assert_close(s.schedule.betas, NoiseSchedule.linear(100, 1e-3, 0.05).betas, atol=0, rtol=0)
    assert DDPMScheduler(beta_schedule="cosine", num_train_timesteps=100).schedule.betas.equal(
        NoiseSchedule.cosine(100).betas)
