"""The book's short calling style wraps the package functions exactly."""
import math

import torch

from dnnl.models.ddpm import NoiseSchedule, oracle_denoise, q_posterior, q_sample
from dnnl.models.ddpm import utils

BETAS = torch.linspace(1e-4, 0.02, 1000)


def test_add_noise_is_q_sample_with_a_float64_schedule():
    x0 = torch.rand(28, 28) * 2 - 1
    noise = torch.randn(28, 28)
    got = utils.add_noise(x0, BETAS, 999, noise)
    want = q_sample(NoiseSchedule.linear(), x0, 999, noise)
    assert torch.allclose(got, want, atol=1e-6)
    ab = float(NoiseSchedule(BETAS).alpha_bars[999])
    assert math.isclose(got[0, 0].item(), math.sqrt(ab) * x0[0, 0].item() + math.sqrt(1 - ab) * noise[0, 0].item(),
                        abs_tol=1e-6)


def test_denoise_is_a_sample_not_a_shift():
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(50_000, 1, dtype=torch.float64)
    xt = torch.full((50_000, 1), 0.3, dtype=torch.float64)
    out = utils.denoise(x0, xt, 500, BETAS, generator=g)
    m, v, _ = q_posterior(NoiseSchedule(BETAS), x0, xt, 500)
    assert abs(out.mean().item() - m[0].item()) < 5 * math.sqrt(v[0].item() / 50_000)
    assert abs(out.std().item() / v[0].sqrt().item() - 1) < 0.02
    same = oracle_denoise(NoiseSchedule(BETAS), x0, xt, 500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
