"""The diffusers DDIMScheduler as an oracle for tests/test_ddim*.py (float64 ᾱ patched in)."""
import torch

from dnnl.models.ddpm import NoiseSchedule

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def oracle(T=1000, *, spacing="leading", clip=False, prediction_type="epsilon", set_alpha_to_one=True,
           schedule=None):
    """diffusers' DDIMScheduler with our float64 ᾱ patched in (its own betas are float32)."""
    import diffusers

    schedule = schedule or NoiseSchedule.linear(T)
    ref = diffusers.DDIMScheduler(num_train_timesteps=schedule.T, clip_sample=clip, timestep_spacing=spacing,
                                  prediction_type=prediction_type, set_alpha_to_one=set_alpha_to_one)
    ref.alphas_cumprod = schedule.alpha_bars.clone()
    ref.final_alpha_cumprod = torch.tensor(1.0, dtype=F64) if set_alpha_to_one else schedule.alpha_bars[0].clone()
    return ref
