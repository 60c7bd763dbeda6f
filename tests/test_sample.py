"""Tests for dnnl.models.ddpm.sample: samplers checked against exact oracles and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dnnl.models.ddpm import DDPMScheduler, NoiseSchedule, SampleOutput, ideal_eps, p_sample_step, timesteps_for
from dnnl.models.ddpm.sample import ddim_step, sample

T = 1000
SCHEDULE = NoiseSchedule.linear(T)


def _parts(out: SampleOutput):
    """(images, trajectory, paper steps) of a ``sample(..., return_trajectory=True)`` output."""
    assert isinstance(out, SampleOutput) and out.trajectory is not None
    return out.images, out.trajectory, out.paper_steps
X0 = torch.tensor([[[[-1.0, -0.5], [0.25, 0.9]]]])  # one data point, shape (1, 1, 2, 2)


def point_mass_eps(x, t):
    """The exact ε given x_t when all data sits on X0: ε = (x_t − √ᾱ_t X0)/√(1 − ᾱ_t), in float64."""
    ab = SCHEDULE.alpha_bars[t].reshape(-1, 1, 1, 1)
    return ((x.double() - ab.sqrt() * X0.double()) / (1 - ab).sqrt()).to(x.dtype)


def smooth_eps(x, t):
    """A deterministic, t-dependent stand-in for a network."""
    return 0.7 * torch.tanh(x) + 0.05 * torch.cos(t.float() / 50).reshape(-1, 1, 1, 1)


# --------------------------------------------------------------------------- oracles recover data

@pytest.mark.parametrize("method,steps", [("ddpm", None), ("ddpm", 50), ("ddpm", 7), ("ddim", None), ("ddim", 10)])
def test_point_mass_oracle_recovers_the_data_point(method, steps):
    g = torch.Generator().manual_seed(0)
    x = sample(point_mass_eps, SCHEDULE, (8, 1, 2, 2), steps=steps, method=method, generator=g, progress=False).images
    torch.testing.assert_close(x, X0.expand(8, -1, -1, -1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method,steps", [("ddpm", 100), ("ddim", 25)])
def test_ideal_denoiser_on_two_points_lands_on_one_of_them(method, steps):
    data = torch.stack([torch.full((1, 2, 2), -0.6), torch.full((1, 2, 2), 0.6)])
    g = torch.Generator().manual_seed(1)
    x = sample(lambda xt, t: ideal_eps(SCHEDULE, xt, t, data), SCHEDULE, (400, 1, 2, 2), steps=steps,
               method=method, generator=g, progress=False).images
    dist = torch.cdist(x.reshape(400, -1).double(), data.reshape(2, -1).double())  # (400, 2)
    assert dist.min(dim=1).values.max() < 1e-3
    # by symmetry each point takes half the samples: 400 draws give a standard deviation of 0.025
    share = (dist.argmin(dim=1) == 1).double().mean().item()
    assert abs(share - 0.5) < 0.1, share


def test_ddim_with_the_x0_oracle_stays_on_the_forward_line():
    """With the exact ε of a point mass, every DDIM state is √ᾱ_τ x_0 + √(1 − ᾱ_τ) ε̂ for one fixed ε̂."""
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(4, 1, 2, 2, generator=g, dtype=torch.float64)
    x, states, labels = _parts(sample(point_mass_eps, SCHEDULE, (4, 1, 2, 2), steps=20, method="ddim", noise=noise,
                               progress=False, return_trajectory=True))
    taus = timesteps_for(SCHEDULE.T, 20)
    ab0 = SCHEDULE.alpha_bars[taus[0]]
    eps_hat = (noise - ab0.sqrt() * X0.double()) / (1 - ab0).sqrt()
    for state, paper_t in zip(states, labels):
        ab = SCHEDULE.alpha_bars[paper_t - 1] if paper_t > 0 else torch.tensor(1.0, dtype=torch.float64)
        torch.testing.assert_close(state, ab.sqrt() * X0.double() + (1 - ab).sqrt() * eps_hat, atol=1e-12, rtol=0)
    torch.testing.assert_close(x, X0.double().expand(4, -1, -1, -1), atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- Gaussian data, closed form

S = 0.5  # data x_0 ~ N(0, S²) per pixel, whose exact ε is linear in x_t


def gaussian_eps(x, t):
    ab = SCHEDULE.alpha_bars[t].reshape(-1, 1, 1, 1).to(x.dtype)
    return (1 - ab).sqrt() * x / (ab * S**2 + 1 - ab)


def chain_gains(taus, method, variance="fixed_small"):
    """Per step, x_prev = a·x + b·z for the exact Gaussian ε; from the paper's formulas, in float64.

    b² is the chain's β̃ (``fixed_small``) or β (``fixed_large``); the last step adds no noise."""
    ab_all = NoiseSchedule.linear(T).alpha_bars.tolist()
    out = []
    for i, tau in enumerate(taus):
        ab = ab_all[tau]
        ab_p = ab_all[taus[i + 1]] if i + 1 < len(taus) else 1.0
        k = math.sqrt(1 - ab) / (ab * S**2 + 1 - ab)          # ε = k x
        c = (1 - math.sqrt(1 - ab) * k) / math.sqrt(ab)       # x̂_0 = c x
        if method == "ddim":
            out.append((math.sqrt(ab_p) * c + math.sqrt(1 - ab_p) * k, 0.0))
        else:
            beta = 1 - ab / ab_p                               # effective β of the strided chain
            a = beta * math.sqrt(ab_p) / (1 - ab) * c + (1 - ab_p) * math.sqrt(1 - beta) / (1 - ab)
            last = i + 1 == len(taus)
            b2 = beta * (1 - ab_p) / (1 - ab) if variance == "fixed_small" else (0.0 if last else beta)
            out.append((a, b2))                                 # variance β̃ (or β) of the step
    return out


@pytest.mark.parametrize("steps", [pytest.param(1000, marks=pytest.mark.slow), 100, 10])
def test_ddpm_sample_variance_matches_closed_form_for_gaussian_data(steps):
    taus = timesteps_for(SCHEDULE.T, steps).tolist()
    var = 1.0
    for a, b2 in chain_gains(taus, "ddpm"):
        var = a * a * var + b2
    g = torch.Generator().manual_seed(3)
    x = sample(gaussian_eps, SCHEDULE, (4000, 1, 2, 2), steps=steps, generator=g, clip=False, progress=False).images
    # 16,000 draws: the variance estimate has relative standard error √(2/16000) ≈ 1.1%; allow 5%
    assert abs(x.double().var().item() / var - 1) < 0.05, (x.var().item(), var)
    assert abs(x.double().mean().item()) < 5 * math.sqrt(var / x.numel())


@pytest.mark.parametrize("steps", [100, 50, 10])  # at all 1,000 steps the two chains differ by only 1.9 %
def test_fixed_large_variance_matches_closed_form_for_gaussian_data(steps):
    """σ² = β of the chain: the samples' variance follows the recursion with β in place of β̃, and it differs
    from the β̃ chain's by three times the tolerance or more (so the test can tell the two apart)."""
    taus = timesteps_for(SCHEDULE.T, steps).tolist()
    var, var_small = 1.0, 1.0
    for (a, b2), (_, b2_small) in zip(chain_gains(taus, "ddpm", "fixed_large"), chain_gains(taus, "ddpm")):
        var, var_small = a * a * var + b2, a * a * var_small + b2_small
    assert var / var_small - 1 > 0.15, (var, var_small)
    g = torch.Generator().manual_seed(7)
    x = sample(gaussian_eps, SCHEDULE, (4000, 1, 2, 2), steps=steps, generator=g, clip=False, progress=False,
               variance_type="fixed_large").images
    # 16,000 draws: relative standard error of the variance ≈ 1.1%; allow 5%
    assert abs(x.double().var().item() / var - 1) < 0.05, (x.var().item(), var)


@pytest.mark.parametrize("steps", [1000, 20, 3])
def test_ddim_is_the_closed_form_linear_map_for_gaussian_data(steps):
    taus = timesteps_for(SCHEDULE.T, steps).tolist()
    gain = math.prod(a for a, _ in chain_gains(taus, "ddim"))
    noise = torch.randn(16, 1, 2, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = sample(gaussian_eps, SCHEDULE, noise.shape, steps=steps, method="ddim", noise=noise, clip=False,
               progress=False).images
    torch.testing.assert_close(x, gain * noise, atol=1e-10, rtol=1e-10)


# --------------------------------------------------------------------------- the scheduler's code path

def test_strided_sampler_agrees_step_by_step_with_ddpm_scheduler():
    shape = (3, 1, 4, 4)
    _, states, labels = _parts(sample(smooth_eps, SCHEDULE, shape, steps=25, generator=torch.Generator().manual_seed(5),
                               progress=False, return_trajectory=True))
    scheduler = DDPMScheduler(num_train_timesteps=T, clip_sample=True)
    scheduler.set_timesteps(25)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=g)
    torch.testing.assert_close(states[0], x, atol=0, rtol=0)
    for k, t in enumerate(scheduler.timesteps):
        assert labels[k] == int(t) + 1
        x = scheduler.step(smooth_eps(x, t.expand(shape[0])), int(t), x, generator=g).prev_sample
        torch.testing.assert_close(states[k + 1], x, atol=0, rtol=0)
    assert labels[-1] == 0


def test_fixed_large_sampler_is_the_fixed_large_scheduler_loop():
    """``variance_type="fixed_large"`` runs the loop DDPMScheduler(variance_type="fixed_large") runs, bit for bit."""
    shape = (3, 1, 4, 4)
    x_sample = sample(smooth_eps, SCHEDULE, shape, steps=25, generator=torch.Generator().manual_seed(8),
                      progress=False, variance_type="fixed_large").images
    scheduler = DDPMScheduler(num_train_timesteps=T, clip_sample=True, variance_type="fixed_large")
    scheduler.set_timesteps(25)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(shape, generator=g)
    for t in scheduler.timesteps:
        x = scheduler.step(smooth_eps(x, t.expand(shape[0])), int(t), x, generator=g).prev_sample
    torch.testing.assert_close(x_sample, x, atol=0, rtol=0)
    small = sample(smooth_eps, SCHEDULE, shape, steps=25, generator=torch.Generator().manual_seed(8), progress=False)
    assert (small.images - x_sample).abs().max() > 1e-3  # the default (β̃) is another chain


def test_full_chain_is_the_scheduler_loop_and_algorithm_2_at_all_steps():
    """steps=None runs the one loop over all T steps: bit for bit DDPMScheduler's chain, and Algorithm 2
    (p_sample_step on the training β's) up to float32 rounding: the chain's β' = 1 − ᾱ_t/ᾱ_{t−1}
    equal β_t only to rounding, and σ_t is √β̃_t rather than exp(½ log β̃_t)."""
    shape = (2, 1, 3, 3)
    x_full = sample(smooth_eps, SCHEDULE, shape, generator=torch.Generator().manual_seed(6), progress=False).images
    scheduler = DDPMScheduler(num_train_timesteps=T, clip_sample=True)  # set_timesteps(T) by default
    g = torch.Generator().manual_seed(6)
    x = torch.randn(shape, generator=g)
    for t in scheduler.timesteps:
        x = scheduler.step(smooth_eps(x, t.expand(shape[0])), int(t), x, generator=g).prev_sample
    torch.testing.assert_close(x_full, x, atol=0, rtol=0)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(shape, generator=g)
    for t in range(T - 1, -1, -1):
        tt = torch.full((shape[0],), t, dtype=torch.long)
        x = p_sample_step(SCHEDULE, smooth_eps(x, tt), x, t, generator=g, clip=True)
    torch.testing.assert_close(x_full, x, atol=1e-5, rtol=1e-5)


def test_ddim_step_equals_the_formula():
    xt = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    eps = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 500, 999])
    ab = SCHEDULE.alpha_bars[t].reshape(-1, 1, 1, 1)
    ab_p = torch.where(t > 0, SCHEDULE.alpha_bars[(t - 1).clamp(min=0)], 1.0).reshape(-1, 1, 1, 1)
    x0 = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
    torch.testing.assert_close(ddim_step(SCHEDULE, eps, xt, t), ab_p.sqrt() * x0 + (1 - ab_p).sqrt() * eps,
                               atol=1e-12, rtol=1e-12)


# --------------------------------------------------------------------------- shapes, range, randomness

@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_samples_have_the_shape_and_lie_in_range_when_clipped(method):
    wild = lambda x, t: 3 * torch.sin(7 * x) + 0.01 * t.float().reshape(-1, 1, 1, 1)  # noqa: E731
    x = sample(wild, SCHEDULE, (6, 3, 4, 4), steps=30, method=method, progress=False,
               generator=torch.Generator().manual_seed(9)).images
    assert x.shape == (6, 3, 4, 4) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    unclipped = sample(wild, SCHEDULE, (6, 3, 4, 4), steps=30, method=method, progress=False, clip=False,
                       generator=torch.Generator().manual_seed(9)).images
    assert unclipped.abs().max() > 1  # so the clipped bound above is not trivially true


@pytest.mark.parametrize("steps,expected", [(None, T + 1), (40, 41), (1, 2)])
def test_trajectory_holds_every_state_with_its_paper_step(steps, expected):
    x, states, labels = _parts(sample(smooth_eps, SCHEDULE, (2, 1, 2, 2), steps=steps, progress=False,
                               return_trajectory=True, generator=torch.Generator().manual_seed(10)))
    assert len(states) == len(labels) == expected
    assert all(s.device.type == "cpu" and s.shape == (2, 1, 2, 2) for s in states)
    taus = timesteps_for(SCHEDULE.T, steps)
    assert labels == [int(t) + 1 for t in taus] + [0]
    if steps is None:
        assert labels[0] == T and labels[-2] == 1
    torch.testing.assert_close(states[-1], x)


def test_same_generator_gives_the_same_samples_and_another_seed_does_not():
    run = lambda seed: sample(smooth_eps, SCHEDULE, (4, 1, 4, 4), steps=20, progress=False,  # noqa: E731
                              generator=torch.Generator().manual_seed(seed)).images
    torch.testing.assert_close(run(11), run(11), atol=0, rtol=0)
    assert not torch.allclose(run(11), run(12))


def test_given_noise_fixes_the_start_of_the_chain():
    noise = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(13))
    a = sample(smooth_eps, SCHEDULE, noise.shape, steps=10, method="ddim", noise=noise, progress=False,
               generator=torch.Generator().manual_seed(1)).images
    b = sample(smooth_eps, SCHEDULE, noise.shape, steps=10, method="ddim", noise=noise, progress=False,
               generator=torch.Generator().manual_seed(2)).images
    torch.testing.assert_close(a, b, atol=0, rtol=0)


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.modes, self.grad = set(), set()

    def forward(self, x, t):
        self.modes.add(self.training)
        self.grad.add(torch.is_grad_enabled())
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        return self.scale * x


def test_module_runs_in_eval_mode_without_grad_and_its_mode_is_restored():
    model = _Recorder().train()
    x = sample(model, SCHEDULE, (2, 1, 2, 2), steps=5, progress=False).images
    assert model.modes == {False} and model.grad == {False}
    assert model.training and not x.requires_grad


# --------------------------------------------------------------------------- chunks

@pytest.mark.parametrize("method,steps", [("ddpm", None), ("ddpm", 10), ("ddim", 10)])
def test_batch_size_equals_separate_calls_for_the_chunks_in_order(method, steps):
    chunked = sample(smooth_eps, SCHEDULE, (5, 1, 2, 2), steps=steps, method=method, progress=False, batch_size=2,
                     generator=torch.Generator().manual_seed(3)).images
    g = torch.Generator().manual_seed(3)
    parts = [sample(smooth_eps, SCHEDULE, (b, 1, 2, 2), steps=steps, method=method, generator=g, progress=False).images
             for b in (2, 2, 1)]
    assert chunked.shape == (5, 1, 2, 2)
    assert torch.equal(chunked, torch.cat(parts))


def test_batch_size_with_given_noise_and_ddim_changes_nothing():
    noise = torch.randn(7, 1, 2, 2, generator=torch.Generator().manual_seed(4))
    whole = sample(smooth_eps, SCHEDULE, (7, 1, 2, 2), steps=20, method="ddim", noise=noise, progress=False).images
    for b in (1, 3, 7, 50):
        chunked = sample(smooth_eps, SCHEDULE, (7, 1, 2, 2), steps=20, method="ddim", noise=noise, progress=False,
                         batch_size=b).images
        torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_batch_size_joins_the_trajectory_along_the_batch():
    noise = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(5))
    x, states, labels = _parts(sample(smooth_eps, SCHEDULE, (5, 1, 2, 2), steps=8, method="ddim", noise=noise,
                               progress=False, return_trajectory=True))
    xc, states_c, labels_c = _parts(sample(smooth_eps, SCHEDULE, (5, 1, 2, 2), steps=8, method="ddim", noise=noise,
                                    progress=False, return_trajectory=True, batch_size=2))
    assert labels_c == labels and len(states_c) == len(states) == 9
    for a, b in zip(states_c, states):
        assert a.shape == (5, 1, 2, 2)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(xc, x, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs,error,match", [
    ({"steps": 0}, ValueError, r"steps must be an int in \[1, 1000\]"),
    ({"steps": 1001}, ValueError, r"steps must be an int in \[1, 1000\]"),
    ({"steps": 2.5}, TypeError, "steps must be an int"),
    ({"method": "euler"}, ValueError, "method must be one of"),
    ({"shape": 5}, TypeError, "shape must be a tuple"),
    ({"shape": (0, 1, 2, 2)}, ValueError, "positive ints"),
    ({"shape": (4,)}, ValueError, "positive ints"),
    ({"noise": torch.zeros(3, 1, 2, 2)}, ValueError, "noise must have shape"),
    ({"schedule": "linear"}, TypeError, "schedule must be a NoiseSchedule"),
    ({"model": 3}, TypeError, "model must be an nn.Module or a callable"),
    ({"model": lambda x, t: x[:, :, :1]}, ValueError, "must return an ε prediction"),
    ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
    ({"batch_size": True}, TypeError, "batch_size must be an int"),
    ({"batch_size": 1, "noise": torch.zeros(3, 1, 2, 2)}, ValueError, "noise must have shape"),
    ({"variance_type": "learned"}, ValueError, r"variance_type must be one of \['fixed_small', 'fixed_large', 'learned_range'\]"),
    ({"variance_type": "fixed_large", "method": "ddim"}, ValueError, "variance_type applies to method='ddpm' only"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    args = {"model": smooth_eps, "schedule": SCHEDULE, "shape": (2, 1, 2, 2), "progress": False}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sample(args.pop("model"), args.pop("schedule"), args.pop("shape"), **args)


# --------------------------------------------------------------------------- the output type

@pytest.mark.parametrize("method,steps", [("ddpm", None), ("ddpm", 10), ("ddim", 7)])
def test_sample_returns_one_output_type(method, steps):
    out = sample(smooth_eps, SCHEDULE, (3, 1, 2, 2), steps=steps, method=method, progress=False,
                 generator=torch.Generator().manual_seed(0))
    assert isinstance(out, SampleOutput) and out.trajectory is None
    assert out.images.shape == (3, 1, 2, 2)
    assert torch.equal(out.timesteps, timesteps_for(T, steps)) and out.timesteps.dtype == torch.long
    assert out.paper_steps == [int(t) + 1 for t in out.timesteps] + [0]
    traj = sample(smooth_eps, SCHEDULE, (3, 1, 2, 2), steps=steps, method=method, progress=False,
                  generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert torch.equal(traj.images, out.images) and len(traj.trajectory) == len(out.timesteps) + 1


def test_numpy_integers_are_accepted_for_steps_batch_size_and_shape():
    a = sample(smooth_eps, SCHEDULE, (np.int64(3), 1, 2, 2), steps=np.int32(10), batch_size=np.int64(2),
               progress=False, generator=torch.Generator().manual_seed(0)).images
    b = sample(smooth_eps, SCHEDULE, (3, 1, 2, 2), steps=10, batch_size=2, progress=False,
               generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(a, b)


# --------------------------------------------------------------------------- checks at the door only

def _count_checks(monkeypatch) -> dict:
    """Wrap every ``check_*`` helper, in every module that holds one, with a call counter."""
    import importlib

    counts: dict[str, int] = {}
    for name in ("_validate", "schedule", "diffusion", "sample", "scheduler", "losses", "unet"):
        module = importlib.import_module(f"dnnl.models.ddpm.{name}")
        for attr, fn in list(vars(module).items()):
            if attr.startswith("check_") and callable(fn):
                def counted(*args, _fn=fn, _attr=attr, **kwargs):
                    counts[_attr] = counts.get(_attr, 0) + 1
                    return _fn(*args, **kwargs)
                monkeypatch.setattr(module, attr, counted)
    return counts


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_sample_checks_its_arguments_once_not_once_per_step(monkeypatch, method):
    counts = _count_checks(monkeypatch)
    totals = {}
    for k in (2, 40):
        counts.clear()
        sample(smooth_eps, SCHEDULE, (2, 1, 2, 2), steps=k, method=method, progress=False,
               generator=torch.Generator().manual_seed(0), return_trajectory=True)
        totals[k] = dict(counts)
    assert totals[2] == totals[40], totals
    assert sum(totals[2].values()) > 0  # the counter does see the checks at the door


def test_the_check_counter_sees_a_loop_that_checks_at_every_step(monkeypatch):
    """The control for the test above: the public p_sample_step checks t, so its count grows with k."""
    counts = _count_checks(monkeypatch)
    totals = {}
    for k in (2, 40):
        counts.clear()
        x = torch.zeros(2, 1, 2, 2)
        for t in range(k - 1, -1, -1):
            x = p_sample_step(SCHEDULE, smooth_eps(x, torch.full((2,), t)), x, t)
        totals[k] = sum(counts.values())
    assert totals[40] > totals[2]


def test_gpu_sync_check_exits_cleanly_without_cuda():
    """benchmarks/gpu_sync_check.py needs CUDA; elsewhere it says so and exits with status 0."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_sync_check.py"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA device" in proc.stdout
