"""ε/x_0/v conversions, the loss weight each implies, and DDIMScheduler against diffusers (chapter 6).

diffusers' DDIMScheduler is the oracle, patched to our float64 ᾱ; identities are checked in float64.
"""
import math

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, predict_x0, q_sample
from dnnl.models.ddpm.schedule import SPACINGS
from dnnl.models.ddpm.ddim import ddim_step_eta
from dnnl.models.ddpm.ddim_scheduler import DDIMScheduler
from dnnl.models.ddpm.prediction import eps_to_x0, prediction_loss_weight, v_from, v_to_eps, v_to_x0, x0_to_eps

diffusers = pytest.importorskip("diffusers")

S = NoiseSchedule.linear()
from _ddim_oracle import F64, oracle, randn  # noqa: E402


def eps_fn(x, t):
    """A fixed, nonlinear stand-in for a network (deterministic in x and t)."""
    return torch.tanh(x) * (0.5 + t / 2000) + 0.1 * math.sin(t / 37)


# ----------------------------------------------------------------- ε, x_0, v
def test_conversions_round_trip_in_float64():
    x0, eps = randn(6, 2, 3, seed=20), randn(6, 2, 3, seed=21)
    t = torch.tensor([0, 1, 200, 500, 998, 999])
    xt = q_sample(S, x0, t, eps)
    v = v_from(S, x0, t, eps)
    assert (eps_to_x0(S, xt, t, eps) - x0).abs().max() < 1e-11
    assert (eps_to_x0(S, xt, t, eps) - predict_x0(S, xt, t, eps)).abs().max() == 0
    assert (x0_to_eps(S, xt, t, x0) - eps).abs().max() < 1e-11
    assert (v_to_eps(S, xt, t, v) - eps).abs().max() < 1e-14
    assert (v_to_x0(S, xt, t, v) - x0).abs().max() < 1e-14
    a, s = S.sqrt_alpha_bars[t].view(-1, 1, 1), S.sqrt_one_minus_alpha_bars[t].view(-1, 1, 1)
    assert (v - (a * eps - s * x0)).abs().max() < 1e-15


def test_v_from_matches_diffusers_get_velocity():
    ref = diffusers.DDPMScheduler()
    ref.alphas_cumprod = S.alpha_bars.clone()
    x0, eps, t = randn(4, 7, seed=22), randn(4, 7, seed=23), torch.tensor([3, 99, 640, 999])
    assert (v_from(S, x0, t, eps) - ref.get_velocity(x0, eps, t)).abs().max() < 1e-15


def test_loss_weights_are_exact_identities():
    """‖x̂_0 − x_0‖² = ‖ε̂ − ε‖²/SNR and ‖v̂ − v‖² = (1 + SNR)/SNR ‖ε̂ − ε‖², per example."""
    x0, eps, eps_hat = randn(5, 9, seed=24), randn(5, 9, seed=25), randn(5, 9, seed=26)
    t = torch.tensor([0, 10, 300, 700, 999])
    xt = q_sample(S, x0, t, eps)
    x0_hat = eps_to_x0(S, xt, t, eps_hat)
    v, v_hat = v_from(S, x0, t, eps), v_from(S, x0_hat, t, eps_hat)
    err = {"epsilon": ((eps_hat - eps) ** 2).sum(1), "sample": ((x0_hat - x0) ** 2).sum(1),
           "v_prediction": ((v_hat - v) ** 2).sum(1)}
    for kind, e in err.items():
        assert torch.allclose(e, prediction_loss_weight(S, t, kind) * err["epsilon"], rtol=1e-9, atol=0), kind
    snr = S.snr()[t]
    assert torch.allclose(err["v_prediction"], (1 + snr) * err["sample"], rtol=1e-9, atol=0)
    assert torch.allclose(prediction_loss_weight(S, t, "v_prediction"), 1 / S.alpha_bars[t], rtol=1e-13)


# ----------------------------------------------------------------- DDIMScheduler against diffusers
def run_chain(sched, x, steps, eta, noises, **step_kwargs):
    sched.set_timesteps(steps)
    for k, t in enumerate(sched.timesteps.tolist()):
        x = sched.step(eps_fn(x, t), t, x, eta=eta, variance_noise=noises[k] if eta > 0 else None,
                       **step_kwargs).prev_sample
    return x


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_full_chain_matches_diffusers(spacing, eta):
    rule = "stride" if spacing == "linspace" else "chain"   # leading/trailing: both rules agree at 10 of 1000
    ours = DDIMScheduler.from_schedule(S, clip_sample=False, timestep_spacing=spacing, prev_timestep_rule=rule)
    ref = oracle(spacing=spacing)
    x, noises = randn(2, 1, 5, 5, seed=30), [randn(2, 1, 5, 5, seed=40 + k) for k in range(10)]
    a, b = run_chain(ours, x, 10, eta, noises), run_chain(ref, x, 10, eta, noises)
    assert torch.equal(ours.timesteps, ref.timesteps) and (a - b).abs().max() < 1e-12


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
@pytest.mark.parametrize("clip,use_clipped", [(False, False), (True, False), (True, True)])
def test_prediction_types_and_clipping_match_diffusers(prediction_type, clip, use_clipped):
    ours = DDIMScheduler.from_schedule(S, clip_sample=clip, prediction_type=prediction_type, timestep_spacing="trailing")
    ref = oracle(spacing="trailing", clip=clip, prediction_type=prediction_type)
    x, noises = randn(3, 8, seed=31) * 2, [randn(3, 8, seed=50 + k) for k in range(10)]
    a = run_chain(ours, x, 10, 0.5, noises, use_clipped_model_output=use_clipped)
    b = run_chain(ref, x, 10, 0.5, noises, use_clipped_model_output=use_clipped)
    assert (a - b).abs().max() < 1e-11
    out, want = ours.step(x, 999, x), ref.step(x, 999, x)
    assert (out.pred_original_sample - want.pred_original_sample).abs().max() < 1e-13


def test_set_alpha_to_one_false_matches_diffusers():
    ours = DDIMScheduler.from_schedule(S, clip_sample=False, set_alpha_to_one=False)
    ref = oracle(set_alpha_to_one=False)
    x, noises = randn(2, 6, seed=32), [randn(2, 6, seed=60 + k) for k in range(10)]
    assert (run_chain(ours, x, 10, 1.0, noises) - run_chain(ref, x, 10, 1.0, noises)).abs().max() < 1e-12


def test_chain_rule_steps_to_the_visited_timestep():
    ours = DDIMScheduler.from_schedule(S, clip_sample=False, timestep_spacing="linspace")
    stride = DDIMScheduler.from_schedule(S, clip_sample=False, timestep_spacing="linspace", prev_timestep_rule="stride")
    ours.set_timesteps(10), stride.set_timesteps(10)
    assert ours.previous_timestep(999) == 888 and stride.previous_timestep(999) == 899
    assert ours.previous_timestep(0) == -1 and stride.previous_timestep(0) == -1
    x, noises = randn(2, 6, seed=33), [randn(2, 6, seed=70 + k) for k in range(10)]
    a = run_chain(ours, x, 10, 0.0, noises)
    taus = ours.timesteps.tolist()
    y = x
    for k, t in enumerate(taus):
        y = ddim_step_eta(S, eps_fn(y, t), y, t, taus[k + 1] if k + 1 < 10 else -1, eta=0.0)
    assert (a - y).abs().max() < 1e-13
    assert (a - run_chain(oracle(spacing="linspace"), x, 10, 0.0, noises)).abs().max() > 1e-3


def test_default_constructor_and_helpers():
    sched = DDIMScheduler()
    assert torch.equal(sched.schedule.betas, S.betas) and sched.timesteps.shape == (1000,)
    sched.set_timesteps(50)
    assert sched.timesteps[:2].tolist() == [980, 960] and sched.previous_timestep(980) == 960
    x0, noise = randn(2, 3, seed=34), randn(2, 3, seed=35)
    assert torch.equal(sched.add_noise(x0, noise, torch.tensor([5, 9])), q_sample(S, x0, torch.tensor([5, 9]), noise))
    assert sched.scale_model_input(x0, 980) is x0
    prev, x0_hat = sched.step(noise, 980, x0, return_dict=False)
    assert prev.shape == x0.shape and x0_hat.abs().max() <= 1


# ----------------------------------------------------------------- bad input, caught at the door
X, E = randn(2, 3), randn(2, 3)
BAD = [
    (lambda: v_from(S, X, 1000, E), ValueError, r"t must be in \[0, 999\]"),
    (lambda: v_to_eps(S, X, 3, E[:, :1]), ValueError, "v must have the same shape"),
    (lambda: prediction_loss_weight(S, 3, "eps"), ValueError, "prediction_type must be one of"),
    (lambda: DDIMScheduler(timestep_spacing="uniform"), ValueError, "timestep_spacing must be one of"),
    (lambda: DDIMScheduler(prediction_type="noise"), ValueError, "prediction_type must be one of"),
    (lambda: DDIMScheduler(prev_timestep_rule="diffusers"), ValueError, "prev_timestep_rule must be one of"),
    (lambda: DDIMScheduler(clip_sample="no"), TypeError, "clip_sample must be True or False"),
    (lambda: DDIMScheduler.from_schedule(None), TypeError, "schedule must be a NoiseSchedule"),
    (lambda: DDIMScheduler().set_timesteps(0), ValueError, "num_inference_steps must be"),
    (lambda: DDIMScheduler().step(E, 5, X, eta=2.0), ValueError, r"eta must be a finite number in \[0, 1\]"),
    (lambda: DDIMScheduler().step(E, 1000, X), ValueError, r"timestep must be in \[0, 999\]"),
    (lambda: DDIMScheduler().step(E, torch.tensor([5, 6]), X), ValueError, "timestep must be a single int"),
    (lambda: DDIMScheduler().step(E, 5, X, variance_noise=E, generator=torch.Generator()), ValueError,
     "either variance_noise or generator"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_off_chain_timestep_is_refused():
    sched = DDIMScheduler()
    sched.set_timesteps(10)
    with pytest.raises(ValueError, match="timestep 5 is not on the current chain"):
        sched.step(E, 5, X)


def test_eta_one_scheduler_is_the_package_ddpm_scheduler_on_the_strided_chain():
    """η = 1 with ε recomputed after clipping is Algorithm 2 on the respaced chain (Eq. @eq-respaced-beta)."""
    from dnnl.models.ddpm import DDPMScheduler

    ddim = DDIMScheduler.from_schedule(S, clip_sample=True)
    ddpm = DDPMScheduler.from_schedule(S, clip_sample=True)
    ddim.set_timesteps(50), ddpm.set_timesteps(50)
    assert torch.equal(ddim.timesteps, ddpm.timesteps)
    x = y = randn(2, 1, 4, 4, seed=36) * 1.3
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for t in ddim.timesteps.tolist():
        x = ddim.step(eps_fn(x, t), t, x, eta=1.0, generator=g1, use_clipped_model_output=True).prev_sample
        y = ddpm.step(eps_fn(y, t), t, y, generator=g2).prev_sample
    assert (x - y).abs().max() < 1e-11


def test_chain_and_stride_rules_agree_exactly_where_the_docstring_says():
    chain = DDIMScheduler.from_schedule(S, timestep_spacing="leading")
    stride = DDIMScheduler.from_schedule(S, timestep_spacing="leading", prev_timestep_rule="stride")
    for spacing, n, agree in [("leading", 10, True), ("leading", 30, True), ("leading", 7, True),
                              ("trailing", 10, True), ("trailing", 40, True), ("trailing", 30, False),
                              ("linspace", 10, False)]:
        chain.timestep_spacing = stride.timestep_spacing = spacing
        chain.set_timesteps(n), stride.set_timesteps(n)
        same = all(chain.previous_timestep(t) == stride.previous_timestep(t) for t in chain.timesteps.tolist())
        assert same == agree, (spacing, n)
