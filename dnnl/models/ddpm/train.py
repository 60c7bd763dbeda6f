"""Train ε_θ on MNIST with L_simple (Algorithm 1, Eq. @eq-l-simple): one loop for CPU, GPU and multi-GPU.

- :func:`train_step` is Algorithm 1's gradient step; :func:`train` runs it with a warm-up and decay of
  the learning rate (:func:`lr_factor`), an EMA (:func:`ema_update`), checkpoints and previews.
- ``TrainConfig.quick()`` sizes a run for a 2-core CPU, ``TrainConfig.full()`` for a GPU; same code.
- Checkpoints (``checkpoint.py``) hold everything needed to resume bit-identically: model, EMA, optimizer,
  LR schedule, step, RNG states, config and loss history.
- Randomness never depends on how a run was split: the data order of epoch e comes from (seed, e), and
  the noise and timesteps of step s on rank r from (seed, r, s). Whole batches are gathered on the device
  from images held there (``batches.py``): the same batches as a DataLoader, with no per-image work.
- Faults stop a run cleanly: a non-finite loss or weight, Ctrl-C or SIGTERM (which first save a checkpoint
  at the current step), a second run in the same folder, a full or read-only disk.
- Under ``torchrun --nproc_per_node=N`` the same loop runs DistributedDataParallel; rank 0 logs and saves.
- With ``TrainConfig(num_classes=10)`` it trains the conditional ε_θ(x_t, t, y) of chapter 7 on the labels,
  with label dropout (Eq. @eq-ch7-label-dropout) drawn from the step's generator.

Command line: ``python -m dnnl.models.ddpm --preset quick --out runs/quick``.
"""
from __future__ import annotations

import copy
import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ... import get_device, set_seed
from ..._threads import rebalance
from ._env import NO_SCALER, distributed, precision, stop_on_signals
from ._validate import check_float, check_int
from .batches import DeviceBatches
from .checkpoint import (CHECKPOINT_NAME, all_finite, check_folder, load_checkpoint, lock_folder, remove_stale_temps,
                         rng_state, save_checkpoint, set_rng_state)
from .config import TrainConfig, TrainResult
from .guidance import _check_labels, _label_dropout_model
from .pretrained import init_weights
from .losses import _hybrid_loss, _noise_prediction_loss, min_snr_weights
from .sample import save_preview
from .schedule import NoiseSchedule

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "train", "train_step", "lr_factor", "ema_decay_at",
           "ema_update", "save_checkpoint", "load_checkpoint", "CHECKPOINT_NAME"]

# Fields that may change between a run and its resumption; every other field must match.
# A resumed run with a new ``decay_steps`` continues on the new learning-rate curve from its step.
_RESUMABLE = {"steps", "decay_steps", "out_dir", "data_root", "num_workers", "log_every", "checkpoint_every",
              "sample_every", "sample_steps"}
# Fields added later, with the value an older checkpoint (which lacks them) was trained with.
_ADDED = {"num_classes": None, "p_uncond": 0.1, "init_from": None, "label_lr_scale": 1.0, "min_snr_gamma": None,
          "learn_variance": False, "vlb_weight": 1e-3, "decoder_share": None}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped :func:`train` after it saved a checkpoint at the current step."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


# --------------------------------------------------------------------------- learning rate and EMA

def lr_factor(step: int, config: TrainConfig) -> float:
    """The multiplier of ``config.lr`` at optimiser step ``step`` (0-based): warm-up × decay (Eq. @eq-ch4-lr).

    The warm-up rises linearly to 1 over ``warmup`` steps. The decay is 1 with ``decay_steps=None``,
    else a cosine from 1 at step 0 to 0 at ``decay_steps`` (and 0 after). A short run gains the most
    from the decay: its last steps are small, so the weights settle near a minimum instead of jumping
    around it.
    """
    step = check_int(step, "step", low=0)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (got {type(config).__name__})")
    warm = min(1.0, (step + 1) / config.warmup) if config.warmup else 1.0
    if config.decay_steps is None:
        return warm
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / config.decay_steps)))


def ema_decay_at(n: int, decay: float) -> float:
    """The EMA decay after n updates: min(decay, (1 + n) / (10 + n)) (Eq. @eq-ch4-ema).

    A plain decay of 0.9999 keeps a weight of 0.9999**n on the random initial weights: 90% after 1,000
    steps and still 37% after 10,000, so a short run's EMA model is mostly noise. The warm-up lets the
    average follow the model closely at first and slow down as training settles.
    """
    n = check_int(n, "n", low=0)
    return min(check_float(decay, "decay", low=0, high=1), (1 + n) / (10 + n))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay · θ_ema + (1 − decay) · θ for every parameter (Eq. @eq-ch4-ema); buffers are copied."""
    decay = check_float(decay, "decay", low=0, high=1)
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# --------------------------------------------------------------------------- Algorithm 1

def train_step(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, optimizer: torch.optim.Optimizer, *,
               y: torch.Tensor | None = None, p_uncond: float = 0.0, generator: torch.Generator | None = None,
               grad_clip: float = math.inf, scaler: torch.amp.GradScaler = NO_SCALER,
               autocast_dtype: torch.dtype | None = None, loss_weights: torch.Tensor | None = None,
               vlb_weight: float | None = None, decoder_share: float | None = None) -> torch.Tensor:
    """One gradient step of Algorithm 1 on the batch ``x0``; returns its loss, detached (Eq. @eq-l-simple).

    Draws t ~ U{0, …, T−1} and ε ~ N(0, I) from ``generator``, forms x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, and
    descends ∇‖ε − ε_θ(x_t, t)‖² with the gradient norm clipped to ``grad_clip``. ``scaler`` (fp16) and
    ``autocast_dtype`` (bf16 or fp16 autocast) are off by default. Only type checks happen here: the step
    makes no host-device sync, so x0, the schedule and the generator should share one device.

    ``y`` (labels (B,) for a U-Net built with ``num_classes``) trains ε_θ(x_t, t, y); first each label becomes
    "no label" with probability ``p_uncond`` (Eq. @eq-ch7-label-dropout), drawn from ``generator`` before t and ε.
    ``loss_weights`` (T,) on x0's device, for example ``min_snr_weights(schedule, 5.0)``, weights each sample's
    squared error by its timestep's weight (Eq. @eq-ch4-min-snr); None keeps L_simple. ``vlb_weight`` (for a
    model that returns ε and v) descends L_hybrid instead (Eq. @eq-l-hybrid; ``hybrid_loss``).
    """
    if not isinstance(schedule, NoiseSchedule) or not isinstance(x0, torch.Tensor):
        raise TypeError(f"schedule must be a NoiseSchedule and x0 a tensor (got {type(schedule).__name__}, "
                        f"{type(x0).__name__})")
    if not isinstance(optimizer, torch.optim.Optimizer) or not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer and scaler a torch.amp.GradScaler "
                        f"(got {type(optimizer).__name__}, {type(scaler).__name__})")
    if loss_weights is not None and (not isinstance(loss_weights, torch.Tensor) or loss_weights.shape != (schedule.T,)):
        raise TypeError(f"loss_weights must be None or a tensor of shape (T,) = ({schedule.T},) (got "
                        f"{tuple(loss_weights.shape) if isinstance(loss_weights, torch.Tensor) else loss_weights!r})")
    net = model if y is None else _label_dropout_model(model, y, p_uncond, generator)
    with torch.autocast(x0.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        if vlb_weight is None:
            loss = _noise_prediction_loss(net, schedule, x0, generator=generator, weights=loss_weights)
        else:
            loss = _hybrid_loss(net, schedule, x0, vlb_weight=vlb_weight, decoder_share=decoder_share,
                                weights=loss_weights, generator=generator)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


# --------------------------------------------------------------------------- helpers

def _step_seed(seed: int, rank: int, step: int) -> int:
    """A seed for the noise and timesteps of one step, independent of how the run was split."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


# --------------------------------------------------------------------------- the loop

def train(config: TrainConfig, *, resume: bool = False, progress: bool = True,
          model: nn.Module | None = None) -> TrainResult:
    """Minimise L_simple (Algorithm 1, Eq. @eq-l-simple) with AdamW, an LR warm-up and decay (:func:`lr_factor`),
    gradient clipping and an EMA.

    ``resume=True`` continues from ``<out_dir>/checkpoint.pt`` (if present; else it says it starts fresh)
    up to ``config.steps``; on CPU the result is bit-identical to an uninterrupted run. A non-finite loss or
    weight stops the run with a ``RuntimeError`` naming the newest finite checkpoint (no non-finite weights
    are ever saved). Ctrl-C or SIGTERM saves a checkpoint at the current step, then raises
    :class:`TrainingInterrupted`. The output folder is locked for the run. Every device gets channels_last
    and (on CPU and CUDA) the fused AdamW; CUDA adds bf16 autocast (fp16 with a GradScaler where bf16 is
    missing) and TF32 matmuls; elsewhere the arithmetic is plain fp32.

    ``model`` trains another network with the same recipe instead of ``config.build_model()``: any module
    that maps (x_t, t) to an ε prediction of x_t's shape (its weights are then seeded by the caller).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (got {type(config).__name__}); try TrainConfig.quick()")
    for name, value in (("resume", resume), ("progress", progress)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False (got {type(value).__name__} {value!r})")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or None (got {type(model).__name__})")
    rank, world, local_rank = distributed()
    own_group = world > 1 and not dist.is_initialized()
    device = get_device()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        with lock_folder(config.out_dir) if rank == 0 else nullcontext(), stop_on_signals() as stop:
            if rank == 0:
                remove_stale_temps(config.out_dir)
            run = _Run(config, rank, world, device, model)
            if rank == 0:  # model + EMA + two Adam moments, twice over (old and new file during a save)
                check_folder(config.out_dir, 2 * 4 * sum(p.numel() * p.element_size() for p in run.model.parameters()))
            if resume:
                run.resume()
            return run.loop(progress, stop)
    finally:
        if own_group:
            dist.destroy_process_group()


class _Run:
    """One training run: the objects a step updates, and everything a checkpoint holds."""

    def __init__(self, config: TrainConfig, rank: int, world: int, device: torch.device, model: nn.Module | None):
        self.config, self.rank, self.world, self.device = config, rank, world, device
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.data = DeviceBatches(config, rank, world, device)
        self.image_shape = self.data.image_shape
        set_seed(config.seed)
        model = config.build_model(self.image_shape[0]) if model is None else model
        if config.init_from is not None:
            init_weights(model, config.init_from)
        model = model.to(device)
        self.labels = config.num_classes is not None
        if self.labels:  # once here, so that no step reads the labels back from the device
            _check_labels(self.data.labels_cpu, config.num_classes, "the data's labels (num_classes too small?)",
                          allow_null=False)
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.schedule = config.build_schedule().to(device) if self.cuda else config.build_schedule()
        self.model = model.to(memory_format=torch.channels_last)  # what fast GPU convolutions want; neutral on CPU
        fused = device.type in ("cpu", "cuda")  # one kernel for the whole AdamW update
        self.optimizer = torch.optim.AdamW(_param_groups(model, config), lr=config.lr, weight_decay=config.weight_decay,
                                           fused=fused or None)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config))
        self.autocast_dtype, self.scaler = precision(device)
        self.loss_weights = (None if config.min_snr_gamma is None else  # float32 on the device, once
                             min_snr_weights(self.schedule, config.min_snr_gamma).float().to(device))
        self.hybrid = (dict(vlb_weight=config.vlb_weight, decoder_share=config.decoder_share)
                       if config.learn_variance else {})
        self.ckpt_path = Path(config.out_dir) / CHECKPOINT_NAME
        self.step, self.losses, self.past_wall, self.past_cpu = 0, [], 0.0, 0.0
        self.saved_step: int | None = None  # the step of the newest checkpoint on disk (all are finite)
        self.pending: list[torch.Tensor] = []  # losses not yet copied to the host (no GPU sync per step)

    def resume(self) -> None:
        if not self.ckpt_path.exists():
            if self.rank == 0:
                print(f"resume: no checkpoint in {self.ckpt_path.parent}; starting fresh", flush=True)
            return
        state = load_checkpoint(self.ckpt_path, map_location="cpu")  # load_state_dict moves tensors to the device
        _check_resume_config(state["config"], self.config)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.losses, self.past_wall = state["step"], list(state["losses"]), state["wall_time"]
        self.past_cpu = state.get("cpu_time", math.nan)  # nan: the earlier part was not measured
        self.saved_step = self.step
        if self.rank < len(state["rng"]):
            set_rng_state(state["rng"][self.rank])

    def last_good(self) -> str:
        return f"{self.ckpt_path} (step {self.saved_step})" if self.saved_step is not None else "none"

    def flush(self) -> None:
        """Copy the pending losses to the host (one sync) and stop on a non-finite one."""
        if not self.pending:
            return
        chunk = torch.stack(self.pending).float()
        if self.world > 1:
            dist.all_reduce(chunk)
            chunk /= self.world
        values = chunk.tolist()
        self.pending.clear()
        for i, v in enumerate(values):
            if not math.isfinite(v):
                bad = self.step - len(values) + i + 1
                raise RuntimeError(f"non-finite loss {v} at step {bad}; training stopped. Last good checkpoint: "
                                   f"{self.last_good()}. {self.hint()}")
        self.losses.extend(values)

    def hint(self) -> str:
        return f"Try a lower lr (now {self.config.lr}) or grad_clip (now {self.config.grad_clip})."

    def save(self) -> None:
        """Checkpoint the current step, after checking that the weights are finite (every rank checks)."""
        self.flush()
        if not all_finite(self.model, self.ema):
            raise RuntimeError(f"non-finite weights after step {self.step}; training stopped without saving them. "
                               f"Last good checkpoint: {self.last_good()}. {self.hint()}")
        rng = [None] * self.world
        if self.world > 1:
            dist.all_gather_object(rng, rng_state())
        else:
            rng = [rng_state()]
        state = {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_schedule.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                 "step": self.step, "config": self.config.to_dict(), "losses": list(self.losses), "rng": rng,
                 "wall_time": self.past_wall + time.perf_counter() - self.t0,
                 "cpu_time": self.past_cpu + time.process_time() - self.cpu0,  # this process's CPU seconds
                 "world_size": self.world}
        if self.rank == 0:
            save_checkpoint(state, self.ckpt_path)
        self.saved_step = self.step

    def stop_requested(self, stop: list[int], sync_point: bool) -> bool:
        """Whether a signal asked to stop; with several processes all agree, at log steps only."""
        if self.world == 1:
            return bool(stop)
        if not sync_point:
            return False
        flag = torch.tensor([float(bool(stop))], device=self.device if self.cuda else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def interrupt(self, stop: list[int]) -> None:
        if self.saved_step != self.step:
            self.save()
        signum = stop[0] if stop else signal.SIGINT  # with several processes, another rank may have the signal
        raise TrainingInterrupted(f"stopped by {signal.Signals(signum).name} at step {self.step}; checkpoint "
                                  f"{self.ckpt_path} saved. Run again with resume=True (--resume) to continue.", signum)

    def loop(self, progress: bool, stop: list[int]) -> TrainResult:
        """Algorithm 1 until ``config.steps``: a train_step, the LR schedule and the EMA per batch."""
        config, net = self.config, self.model
        if self.world > 1:
            net = nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index] if self.cuda else None)
        noise_gen = torch.Generator(self.device if self.cuda else "cpu")
        start_step, self.t0, self.cpu0 = self.step, time.perf_counter(), time.process_time()
        bar = tqdm(total=config.steps, initial=self.step, desc=f"train ({config.preset}, {self.device.type})",
                   disable=not progress or self.rank != 0, dynamic_ncols=True)
        self.model.train()
        with bar:
            if self.step < config.steps and self.stop_requested(stop, True):
                self.interrupt(stop)
            batches = self.data.iter_from(self.step, labels=self.labels)  # on the device: one gather a batch
            while self.step < config.steps:
                x0, y = next(batches)
                x0 = x0.contiguous(memory_format=torch.channels_last)
                noise_gen.manual_seed(_step_seed(config.seed, self.rank, self.step))
                loss = train_step(net, self.schedule, x0, self.optimizer, y=y, p_uncond=config.p_uncond,
                                  generator=noise_gen, grad_clip=config.grad_clip, scaler=self.scaler,
                                  autocast_dtype=self.autocast_dtype, loss_weights=self.loss_weights,
                                  **self.hybrid)
                self.lr_schedule.step()
                ema_update(self.ema, self.model, ema_decay_at(self.step, config.ema_decay))
                self.step += 1
                self.pending.append(loss)
                self.after_step(bar, start_step)
                if not self.cuda:
                    rebalance()  # other kernels may have started or finished on this CPU
                if self.step < config.steps and self.stop_requested(stop, self.step % config.log_every == 0):
                    self.interrupt(stop)
        wall = time.perf_counter() - self.t0
        if self.world > 1:
            dist.barrier()  # rank 0 has finished writing before anyone reads the checkpoint
        done = self.step - start_step
        return TrainResult(model=self.model.eval(), ema_model=self.ema, losses=self.losses, checkpoint=self.ckpt_path,
                           steps=self.step, wall_time=self.past_wall + wall,
                           images_per_sec=done * config.batch_size * self.world / wall if done else 0.0, config=config)

    def after_step(self, bar, start_step: int) -> None:
        """Log, checkpoint and preview as the config asks."""
        config, step = self.config, self.step
        last = step == config.steps
        save = step % config.checkpoint_every == 0 or last
        if step % config.log_every == 0 or save:
            self.flush()
            rate = (step - start_step) * config.batch_size * self.world / (time.perf_counter() - self.t0)
            bar.set_postfix(loss=f"{np.mean(self.losses[-config.log_every:]):.4f}", img_s=f"{rate:.0f}")
        bar.update(1)
        if save:
            self.save()
        if config.sample_every and (step % config.sample_every == 0 or last) and self.rank == 0:
            save_preview(self.ema, self.schedule, (64, *self.image_shape),
                         Path(config.out_dir) / "samples" / f"step_{step:06d}.png", steps=config.sample_steps,
                         seed=config.seed, variance_type="learned_range" if config.learn_variance else "fixed_small")


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """One AdamW group, or two where a label embedding learns at ``lr × label_lr_scale``."""
    label = [p for name, p in model.named_parameters() if name.startswith("label_emb.")]
    rest = [p for name, p in model.named_parameters() if not name.startswith("label_emb.")]
    if not label or config.label_lr_scale == 1.0:
        return [{"params": list(model.parameters())}]
    return [{"params": rest}, {"params": label, "lr": config.lr * config.label_lr_scale}]


def _check_resume_config(saved: dict, config: TrainConfig) -> None:
    now = config.to_dict()
    saved = {**_ADDED, **saved}
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in now
            if k not in _RESUMABLE and saved.get(k) != now[k]]
    if diff:
        raise ValueError("cannot resume: the config differs from the checkpoint's in " + "; ".join(diff)
                         + f". Only {sorted(_RESUMABLE)} may change on resume.")


if __name__ == "__main__":  # the older command line; ``python -m dnnl.models.ddpm`` is the same
    from .__main__ import run_cli

    run_cli()
