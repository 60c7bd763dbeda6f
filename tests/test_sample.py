"""Tests for dnnl.models.ddpm.sample: samplers checked against exact oracles and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dnnl.models.ddpm import DDPMScheduler, NoiseSchedule, ideal_eps, p_sample_step
from dnnl.models.ddpm.sample import (ddim_step, make_grid_image, sample, sampling_timesteps, save_gif,
                                     save_grid)

T = 1000
SCHEDULE = NoiseSchedule.linear(T)
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
    x = sample(point_mass_eps, SCHEDULE, (8, 1, 2, 2), steps=steps, method=method, generator=g, progress=False)
    torch.testing.assert_close(x, X0.expand(8, -1, -1, -1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method,steps", [("ddpm", 100), ("ddim", 25)])
def test_ideal_denoiser_on_two_points_lands_on_one_of_them(method, steps):
    data = torch.stack([torch.full((1, 2, 2), -0.6), torch.full((1, 2, 2), 0.6)])
    g = torch.Generator().manual_seed(1)
    x = sample(lambda xt, t: ideal_eps(SCHEDULE, xt, t, data), SCHEDULE, (400, 1, 2, 2), steps=steps,
               method=method, generator=g, progress=False)
    dist = torch.cdist(x.reshape(400, -1).double(), data.reshape(2, -1).double())  # (400, 2)
    assert dist.min(dim=1).values.max() < 1e-3
    # by symmetry each point takes half the samples: 400 draws give a standard deviation of 0.025
    share = (dist.argmin(dim=1) == 1).double().mean().item()
    assert abs(share - 0.5) < 0.1, share


def test_ddim_with_the_x0_oracle_stays_on_the_forward_line():
    """With the exact ε of a point mass, every DDIM state is √ᾱ_τ x_0 + √(1 − ᾱ_τ) ε̂ for one fixed ε̂."""
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(4, 1, 2, 2, generator=g, dtype=torch.float64)
    x, states, labels = sample(point_mass_eps, SCHEDULE, (4, 1, 2, 2), steps=20, method="ddim", noise=noise,
                               progress=False, return_trajectory=True)
    taus = sampling_timesteps(SCHEDULE, 20)
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


def chain_gains(taus, method):
    """Per step, x_prev = a·x + b·z for the exact Gaussian ε; from the paper's formulas, in float64."""
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
            out.append((a, beta * (1 - ab_p) / (1 - ab)))       # variance β̃ of the step
    return out


@pytest.mark.parametrize("steps", [pytest.param(1000, marks=pytest.mark.slow), 100, 10])
def test_ddpm_sample_variance_matches_closed_form_for_gaussian_data(steps):
    taus = sampling_timesteps(SCHEDULE, steps).tolist()
    var = 1.0
    for a, b2 in chain_gains(taus, "ddpm"):
        var = a * a * var + b2
    g = torch.Generator().manual_seed(3)
    x = sample(gaussian_eps, SCHEDULE, (4000, 1, 2, 2), steps=steps, generator=g, clip=False, progress=False)
    # 16,000 draws: the variance estimate has relative standard error √(2/16000) ≈ 1.1%; allow 5%
    assert abs(x.double().var().item() / var - 1) < 0.05, (x.var().item(), var)
    assert abs(x.double().mean().item()) < 5 * math.sqrt(var / x.numel())


@pytest.mark.parametrize("steps", [1000, 20, 3])
def test_ddim_is_the_closed_form_linear_map_for_gaussian_data(steps):
    taus = sampling_timesteps(SCHEDULE, steps).tolist()
    gain = math.prod(a for a, _ in chain_gains(taus, "ddim"))
    noise = torch.randn(16, 1, 2, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = sample(gaussian_eps, SCHEDULE, noise.shape, steps=steps, method="ddim", noise=noise, clip=False,
               progress=False)
    torch.testing.assert_close(x, gain * noise, atol=1e-10, rtol=1e-10)


# --------------------------------------------------------------------------- the scheduler's code path

def test_strided_sampler_agrees_step_by_step_with_ddpm_scheduler():
    shape = (3, 1, 4, 4)
    _, states, labels = sample(smooth_eps, SCHEDULE, shape, steps=25, generator=torch.Generator().manual_seed(5),
                               progress=False, return_trajectory=True)
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


def test_full_chain_is_algorithm_2_and_matches_the_scheduler_at_all_steps():
    shape = (2, 1, 3, 3)
    x_full = sample(smooth_eps, SCHEDULE, shape, generator=torch.Generator().manual_seed(6), progress=False)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(shape, generator=g)
    for t in range(T - 1, -1, -1):
        tt = torch.full((shape[0],), t, dtype=torch.long)
        x = p_sample_step(SCHEDULE, smooth_eps(x, tt), x, t, generator=g, clip=True)
    torch.testing.assert_close(x_full, x, atol=0, rtol=0)
    scheduler = DDPMScheduler(num_train_timesteps=T, clip_sample=True)  # set_timesteps(T) by default
    g = torch.Generator().manual_seed(6)
    x = torch.randn(shape, generator=g)
    for t in scheduler.timesteps:
        x = scheduler.step(smooth_eps(x, t.expand(shape[0])), int(t), x, generator=g).prev_sample
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
               generator=torch.Generator().manual_seed(9))
    assert x.shape == (6, 3, 4, 4) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    unclipped = sample(wild, SCHEDULE, (6, 3, 4, 4), steps=30, method=method, progress=False, clip=False,
                       generator=torch.Generator().manual_seed(9))
    assert unclipped.abs().max() > 1  # so the clipped bound above is not trivially true


@pytest.mark.parametrize("steps,expected", [(None, T + 1), (40, 41), (1, 2)])
def test_trajectory_holds_every_state_with_its_paper_step(steps, expected):
    x, states, labels = sample(smooth_eps, SCHEDULE, (2, 1, 2, 2), steps=steps, progress=False,
                               return_trajectory=True, generator=torch.Generator().manual_seed(10))
    assert len(states) == len(labels) == expected
    assert all(s.device.type == "cpu" and s.shape == (2, 1, 2, 2) for s in states)
    taus = sampling_timesteps(SCHEDULE, steps)
    assert labels == [int(t) + 1 for t in taus] + [0]
    if steps is None:
        assert labels[0] == T and labels[-2] == 1
    torch.testing.assert_close(states[-1], x)


def test_same_generator_gives_the_same_samples_and_another_seed_does_not():
    run = lambda seed: sample(smooth_eps, SCHEDULE, (4, 1, 4, 4), steps=20, progress=False,  # noqa: E731
                              generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(run(11), run(11), atol=0, rtol=0)
    assert not torch.allclose(run(11), run(12))


def test_given_noise_fixes_the_start_of_the_chain():
    noise = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(13))
    a = sample(smooth_eps, SCHEDULE, noise.shape, steps=10, method="ddim", noise=noise, progress=False,
               generator=torch.Generator().manual_seed(1))
    b = sample(smooth_eps, SCHEDULE, noise.shape, steps=10, method="ddim", noise=noise, progress=False,
               generator=torch.Generator().manual_seed(2))
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
    x = sample(model, SCHEDULE, (2, 1, 2, 2), steps=5, progress=False)
    assert model.modes == {False} and model.grad == {False}
    assert model.training and not x.requires_grad


# --------------------------------------------------------------------------- chunks

@pytest.mark.parametrize("method,steps", [("ddpm", None), ("ddpm", 10), ("ddim", 10)])
def test_batch_size_equals_separate_calls_for_the_chunks_in_order(method, steps):
    chunked = sample(smooth_eps, SCHEDULE, (5, 1, 2, 2), steps=steps, method=method, progress=False, batch_size=2,
                     generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    parts = [sample(smooth_eps, SCHEDULE, (b, 1, 2, 2), steps=steps, method=method, generator=g, progress=False)
             for b in (2, 2, 1)]
    assert chunked.shape == (5, 1, 2, 2)
    assert torch.equal(chunked, torch.cat(parts))


def test_batch_size_with_given_noise_and_ddim_changes_nothing():
    noise = torch.randn(7, 1, 2, 2, generator=torch.Generator().manual_seed(4))
    whole = sample(smooth_eps, SCHEDULE, (7, 1, 2, 2), steps=20, method="ddim", noise=noise, progress=False)
    for b in (1, 3, 7, 50):
        chunked = sample(smooth_eps, SCHEDULE, (7, 1, 2, 2), steps=20, method="ddim", noise=noise, progress=False,
                         batch_size=b)
        torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_batch_size_joins_the_trajectory_along_the_batch():
    noise = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(5))
    x, states, labels = sample(smooth_eps, SCHEDULE, (5, 1, 2, 2), steps=8, method="ddim", noise=noise,
                               progress=False, return_trajectory=True)
    xc, states_c, labels_c = sample(smooth_eps, SCHEDULE, (5, 1, 2, 2), steps=8, method="ddim", noise=noise,
                                    progress=False, return_trajectory=True, batch_size=2)
    assert labels_c == labels and len(states_c) == len(states) == 9
    for a, b in zip(states_c, states):
        assert a.shape == (5, 1, 2, 2)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(xc, x, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs,error,match", [
    ({"steps": 0}, ValueError, r"steps must be in \[1, 1000\]"),
    ({"steps": 1001}, ValueError, r"steps must be in \[1, 1000\]"),
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
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
    ({"batch_size": True}, TypeError, "batch_size must be an int"),
    ({"batch_size": 1, "noise": torch.zeros(3, 1, 2, 2)}, ValueError, "noise must have shape"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    args = {"model": smooth_eps, "schedule": SCHEDULE, "shape": (2, 1, 2, 2), "progress": False}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sample(args.pop("model"), args.pop("schedule"), args.pop("shape"), **args)


# --------------------------------------------------------------------------- pictures

def test_grid_png_and_grid_image(tmp_path):
    from PIL import Image

    images = torch.linspace(-1, 1, 10 * 28 * 28).reshape(10, 1, 28, 28)
    path = save_grid(images, tmp_path / "sub" / "grid.png", nrow=5)
    with Image.open(path) as im:
        assert im.size == (5 * 30 + 2, 2 * 30 + 2)  # 28-pixel tiles with 2-pixel padding
    array = make_grid_image(images, nrow=5)
    assert array.shape == (2 * 30 + 2, 5 * 30 + 2, 3) and array.dtype == np.float32
    assert array.min() >= 0 and array.max() <= 1
    # the first tile's first pixel is -1 (black) and the last tile's last pixel is +1 (white)
    assert array[2, 2, 0] == 0 and array[30 + 29, 4 * 30 + 29, 0] == 1
    with pytest.raises(ValueError, match="nrow"):
        save_grid(images, tmp_path / "bad.png", nrow=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        make_grid_image(images[0])


def test_gif_of_the_reverse_chain(tmp_path):
    from PIL import Image

    _, states, _ = sample(smooth_eps, SCHEDULE, (4, 1, 8, 8), steps=30, progress=False, return_trajectory=True)
    path = save_gif(states, tmp_path / "chain.gif", nrow=2, frames=10, duration_ms=50, scale=3)
    with Image.open(path) as im:
        assert im.is_animated and im.n_frames == 10
        assert im.size == (3 * (2 * 10 + 2), 3 * (2 * 10 + 2))
        im.seek(im.n_frames - 1)
        assert im.info["duration"] >= 50
    with pytest.raises(ValueError, match="trajectory must be a non-empty list"):
        save_gif([], tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="frames"):
        save_gif(states, tmp_path / "x.gif", frames=0)
