"""diffusers' own recipe from its "Train a diffusion model" tutorial, as a user who follows the docs writes it.

``UNet2DModel`` + ``DDPMScheduler`` (1000 linear steps), ``torch.optim.AdamW`` at 1e-4 (its default weight
decay), ``get_cosine_schedule_with_warmup`` with 500 warm-up steps, batch 16, gradient norm clipped to 1,
plain ``F.mse_loss`` on the noise and no EMA: the raw weights are what get sampled. The one change is
the data: MNIST in [-1, 1] without the tutorial's horizontal flips, which would turn digits into non-digits.
The number of steps is fixed before training from a short probe, so that the cosine curve ends on time.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

BATCH, LR, WARMUP, CLIP, T = 16, 1e-4, 500, 1.0, 1000


def _scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=T)


def tutorial_schedule():
    """The β schedule the tutorial trains on (DDPMScheduler's default, 1000 linear steps), to sample it with.

    The package's float64 ``NoiseSchedule.linear``, checked against the scheduler's own float32 betas.
    """
    from dnnl.models.ddpm import NoiseSchedule

    schedule, betas = NoiseSchedule.linear(T=T), _scheduler().betas
    if not torch.allclose(schedule.betas.float(), betas, rtol=1e-5, atol=1e-8):
        raise RuntimeError("DDPMScheduler's default betas are no longer NoiseSchedule.linear(T=1000)'s")
    return schedule


def _step(unet: nn.Module, scheduler, optimizer, lr_schedule, x0: torch.Tensor, gen: torch.Generator) -> float:
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
    pred = unet(scheduler.add_noise(x0, noise, t), t, return_dict=False)[0]
    loss = F.mse_loss(pred, noise)
    loss.backward()
    nn.utils.clip_grad_norm_(unet.parameters(), CLIP)
    optimizer.step()
    lr_schedule.step()
    optimizer.zero_grad()
    return loss.item()


def _run(unet: nn.Module, images: torch.Tensor, steps: int, total: int, seed: int,
         skip: int = 0) -> tuple[float, list[float]]:
    """``steps`` tutorial steps of a cosine curve ``total`` steps long; returns (seconds, losses).

    The clock starts after the first ``skip`` steps (a probe's warm-up).
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup

    scheduler = _scheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=LR)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=WARMUP, num_training_steps=total)
    order, gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    unet.train()
    losses, start, perm, k = [], time.perf_counter(), torch.randperm(len(images), generator=order), 0
    for i in range(steps):
        if i == skip:
            start = time.perf_counter()
        if k + BATCH > len(perm):  # a new epoch, reshuffled (DataLoader(shuffle=True, drop_last=True))
            perm, k = torch.randperm(len(images), generator=order), 0
        losses.append(_step(unet, scheduler, optimizer, lr_schedule, images[perm[k:k + BATCH]], gen))
        k += BATCH
    return time.perf_counter() - start, losses


def train_tutorial(unet: nn.Module, images: torch.Tensor, seconds: float, *, seed: int = 0,
                   probe_steps: int = 30) -> tuple[nn.Module, dict]:
    """Train ``unet`` (a UNet2DModel) with the tutorial's recipe for about ``seconds``; returns (unet, record)."""
    probe, _ = _run(copy.deepcopy(unet), images, 5 + probe_steps, 10 ** 6, seed, skip=5)
    rate = probe_steps * BATCH / max(probe, 1e-9)
    steps = max(1, int(seconds * rate / BATCH))
    wall, losses = _run(unet, images, steps, steps, seed)
    tail = losses[-100:]
    record = {"steps": steps, "batch_size": BATCH, "wall_time_s": round(wall, 3),
              "images_per_sec": round(steps * BATCH / wall, 1), "final_loss": round(sum(tail) / len(tail), 5),
              "budget_s": round(seconds, 1), "probe_images_per_sec": round(rate, 1),
              "recipe": f"diffusers tutorial: AdamW lr {LR:g} (weight decay 0.01), {WARMUP} warm-up steps, "
                        f"cosine decay, batch {BATCH}, grad clip {CLIP:g}, no EMA, no flips"}
    return unet.eval(), record
