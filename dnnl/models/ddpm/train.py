"""Train ε_θ on MNIST with L_simple (Algorithm 1, Eq. @eq-l-simple): one loop for CPU, GPU and multi-GPU.

- ``TrainConfig.quick()`` sizes a run for a 2-core CPU, ``TrainConfig.full()`` for a GPU; same code.
- Checkpoints are atomic and hold everything needed to resume bit-identically: model, EMA, optimizer,
  LR schedule, step, RNG states, config and loss history. They load with ``torch.load(weights_only=True)``.
- Randomness never depends on how a run was split: the data order of epoch e comes from (seed, e), and
  the noise and timesteps of step s on rank r from (seed, r, s).
- Under ``torchrun --nproc_per_node=N`` the same loop runs DistributedDataParallel; rank 0 logs and saves.

Command line: ``python -m dnnl.models.ddpm.train --preset quick --out runs/quick``.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from ... import get_device, get_mode, set_seed
from ...data import mnist_tensors
from .losses import noise_prediction_loss
from .schedule import NoiseSchedule
from .unet import UNet

__all__ = ["TrainConfig", "TrainResult", "train", "save_checkpoint", "load_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
# Fields that may change between a run and its resumption; every other field must match.
# A resumed run with a new ``decay_steps`` continues on the new learning-rate curve from its step.
_RESUMABLE = {"steps", "decay_steps", "out_dir", "data_root", "num_workers", "log_every", "checkpoint_every",
              "sample_every", "sample_steps"}


# --------------------------------------------------------------------------- configuration

@dataclass
class TrainConfig:
    """Everything a run depends on. ``batch_size`` is per process; the global batch is batch_size × world size."""

    preset: str = "custom"
    # model (see UNet)
    channels: tuple[int, ...] = (16, 32, 64)
    num_res_blocks: int = 1
    attention: bool = True
    dropout: float = 0.0
    # diffusion
    T: int = 1000
    schedule: str = "linear"
    # optimisation
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    decay_steps: int | None = None
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    # data
    data_root: str | None = None
    subset: int | None = None
    num_workers: int = 0
    # bookkeeping
    out_dir: str = "runs/quick"
    log_every: int = 25
    checkpoint_every: int = 500
    sample_every: int = 0
    sample_steps: int = 100

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine' (got {self.schedule!r})")
        positive = ("T", "steps", "batch_size", "log_every", "checkpoint_every", "sample_steps", "num_res_blocks")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int (got {value!r})")
        if self.decay_steps is not None and (isinstance(self.decay_steps, bool)
                                             or not isinstance(self.decay_steps, int) or self.decay_steps < 1):
            raise ValueError(f"decay_steps must be None (no decay) or a positive int (got {self.decay_steps!r})")
        for name in ("warmup", "num_workers", "sample_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0 (got {value!r})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite float (got {self.lr!r})")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (got {self.ema_decay!r})")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 (got {self.grad_clip!r}); use math.inf for no clipping")
        if self.subset is not None and (isinstance(self.subset, bool) or not isinstance(self.subset, int)
                                        or self.subset < 1):
            raise ValueError(f"subset must be None or a positive int (got {self.subset!r})")

    @classmethod
    def quick(cls, **overrides) -> "TrainConfig":
        """CPU size: recognisable digits in under 15 minutes on 2 cores.

        The learning rate decays to zero over the run (``decay_steps`` follows ``steps`` unless given).
        """
        return cls._preset(dict(preset="quick", out_dir="runs/quick", steps=1600, batch_size=128), overrides)

    @classmethod
    def full(cls, **overrides) -> "TrainConfig":
        """GPU size: a wider, deeper U-Net trained for longer with a slower EMA."""
        base = dict(preset="full", channels=(64, 128, 256), num_res_blocks=2, dropout=0.1, steps=20_000,
                    batch_size=128, lr=2e-4, warmup=1000, ema_decay=0.9999, num_workers=4,
                    out_dir="runs/full", log_every=50, checkpoint_every=2000, sample_every=2000)
        return cls._preset(base, overrides)

    @classmethod
    def _preset(cls, base: dict, overrides: dict) -> "TrainConfig":
        merged = {**base, **overrides}
        merged.setdefault("decay_steps", merged["steps"])
        return cls(**merged)

    @classmethod
    def preset_named(cls, name: str, **overrides) -> "TrainConfig":
        """``TrainConfig.quick`` or ``TrainConfig.full`` by name."""
        if name not in ("quick", "full"):
            raise ValueError(f"preset must be 'quick' or 'full' (got {name!r})")
        return getattr(cls, name)(**overrides)

    def to_dict(self) -> dict:
        """Plain types only (lists, not tuples), so a checkpoint loads with weights_only=True."""
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    def model_kwargs(self, in_channels: int = 1) -> dict:
        """The UNet constructor arguments this config describes (plain types)."""
        return dict(in_channels=in_channels, out_channels=in_channels, channels=list(self.channels),
                    num_res_blocks=self.num_res_blocks, attention=self.attention, dropout=self.dropout)

    def build_model(self, in_channels: int = 1) -> UNet:
        """The U-Net this config describes."""
        return UNet(**self.model_kwargs(in_channels))

    def build_schedule(self) -> NoiseSchedule:
        """The β schedule this config describes (float64)."""
        return getattr(NoiseSchedule, self.schedule)(T=self.T)


@dataclass
class TrainResult:
    """What :func:`train` returns. ``losses[i]`` is the L_simple of step i+1 (mean over all processes).

    ``wall_time`` covers every stretch of a resumed run; ``images_per_sec`` this call's stretch only,
    by the wall clock (checkpoints and sample previews included).
    """

    model: nn.Module
    ema_model: nn.Module
    losses: list[float]
    checkpoint: Path
    steps: int
    wall_time: float
    images_per_sec: float
    config: TrainConfig = field(repr=False, default=None)


# --------------------------------------------------------------------------- learning rate and EMA

def lr_factor(step: int, config: TrainConfig) -> float:
    """The multiplier of ``config.lr`` at optimiser step ``step`` (0-based): warm-up × decay (Eq. @eq-ch4-lr).

    The warm-up rises linearly to 1 over ``warmup`` steps. The decay is 1 with ``decay_steps=None``,
    else a cosine from 1 at step 0 to 0 at ``decay_steps`` (and 0 after). A short run gains the most
    from the decay: its last steps are small, so the weights settle near a minimum instead of jumping
    around it.
    """
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
    return min(decay, (1 + n) / (10 + n))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay · θ_ema + (1 − decay) · θ for every parameter (Eq. @eq-ch4-ema); buffers are copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` atomically: to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old checkpoint or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Load a checkpoint written by :func:`train` (plain tensors and Python types only)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# --------------------------------------------------------------------------- helpers

def _step_seed(seed: int, rank: int, step: int) -> int:
    """A seed for the noise and timesteps of one step, independent of how the run was split."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment; (0, 1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def _precision(device: torch.device):
    """(autocast context, GradScaler or None): bf16 on CUDA, fp16 + scaler without bf16, fp32 elsewhere."""
    if device.type != "cuda":
        return nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _check_resume_config(saved: dict, config: TrainConfig) -> None:
    now = config.to_dict()
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in now
            if k not in _RESUMABLE and saved.get(k) != now[k]]
    if diff:
        raise ValueError("cannot resume: the config differs from the checkpoint's in " + "; ".join(diff)
                         + f". Only {sorted(_RESUMABLE)} may change on resume.")


# --------------------------------------------------------------------------- the loop

def train(config: TrainConfig, *, resume: bool = False, progress: bool = True,
          model: nn.Module | None = None) -> TrainResult:
    """Minimise L_simple (Algorithm 1, Eq. @eq-l-simple) with AdamW, an LR warm-up and decay (:func:`lr_factor`),
    gradient clipping and an EMA.

    ``resume=True`` continues from ``<out_dir>/checkpoint.pt`` (if present) up to ``config.steps``;
    on CPU the result is bit-identical to an uninterrupted run. A non-finite loss stops the run with a
    ``RuntimeError``; the last checkpoint on disk is the last good one. Every device gets channels_last
    and (on CPU and CUDA) the fused AdamW; CUDA adds bf16 autocast (fp16 with a GradScaler where bf16 is
    missing) and TF32 matmuls; elsewhere the arithmetic is plain fp32.

    ``model`` trains another network with the same recipe instead of ``config.build_model()``: any module
    that maps (x_t, t) to an ε prediction of x_t's shape (its weights are then seeded by the caller).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (got {type(config).__name__}); try TrainConfig.quick()")
    rank, world, local_rank = _distributed()
    own_group = world > 1 and not dist.is_initialized()
    device = get_device()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(config, resume, progress, rank, world, device, model)
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(config: TrainConfig, resume: bool, progress: bool, rank: int, world: int,
           device: torch.device, model: nn.Module | None) -> TrainResult:
    out_dir = Path(config.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # data: epoch e is DistributedSampler's permutation for (seed, e); this rank takes its share
    dataset = TensorDataset(*mnist_tensors("train", root=config.data_root))  # in memory: 188 MB
    if config.subset is not None:
        dataset = Subset(dataset, range(min(config.subset, len(dataset))))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed,
                                 drop_last=False)
    batches_per_epoch = len(sampler) // config.batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"each of the {world} process(es) gets {len(sampler)} images, fewer than "
                         f"batch_size={config.batch_size}; use a smaller batch_size or a larger subset")
    image_shape = tuple(dataset[0][0].shape)

    # model, EMA, optimiser, LR warm-up
    set_seed(config.seed)
    if model is None:
        model = config.build_model(image_shape[0])
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or None (got {type(model).__name__})")
    model = model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    schedule = config.build_schedule()
    if cuda:
        schedule = schedule.to(device)
    model = model.to(memory_format=torch.channels_last)  # the layout fast GPU convolutions want; neutral on CPU
    fused = device.type in ("cpu", "cuda")  # one kernel for the whole AdamW update
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  fused=fused or None)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    autocast, scaler = _precision(device)

    step, losses, past_wall, past_cpu = 0, [], 0.0, 0.0
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location="cpu")  # load_state_dict moves tensors to the device
        _check_resume_config(state["config"], config)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, losses, past_wall = state["step"], list(state["losses"]), state["wall_time"]
        past_cpu = state.get("cpu_time", math.nan)  # nan: the earlier part was not measured
        if rank < len(state["rng"]):
            _set_rng_state(state["rng"][rank])
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)

    def checkpoint_state() -> dict:
        rng = [None] * world
        if world > 1:
            dist.all_gather_object(rng, _rng_state())
        else:
            rng = [_rng_state()]
        return {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "lr_scheduler": lr_schedule.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "step": step, "config": config.to_dict(), "losses": list(losses), "rng": rng,
                "wall_time": past_wall + time.perf_counter() - t0,
                "cpu_time": past_cpu + time.process_time() - cpu0,  # this process's CPU seconds
                "world_size": world}

    noise_gen = torch.Generator(device if cuda else "cpu")
    pending: list[torch.Tensor] = []  # losses not yet copied to the host (avoids a GPU sync per step)

    def flush() -> None:
        if not pending:
            return
        chunk = torch.stack(pending).float()
        if world > 1:
            dist.all_reduce(chunk)
            chunk /= world
        values = chunk.tolist()
        pending.clear()
        for i, v in enumerate(values):
            if not math.isfinite(v):
                bad = step - len(values) + i + 1
                kept = f"{ckpt_path} (step {load_checkpoint(ckpt_path)['step']})" if ckpt_path.exists() else "none"
                raise RuntimeError(f"non-finite loss {v} at step {bad}; training stopped. Last good checkpoint: "
                                   f"{kept}. Try a lower lr (now {config.lr}) or grad_clip (now {config.grad_clip}).")
        losses.extend(values)

    start_step, t0, cpu0 = step, time.perf_counter(), time.process_time()
    bar = tqdm(total=config.steps, initial=step, desc=f"train ({config.preset}, {device.type})",
               disable=not progress or rank != 0, dynamic_ncols=True)
    model.train()
    while step < config.steps:
        epoch, skip = divmod(step, batches_per_epoch)
        sampler.set_epoch(epoch)
        indices = list(sampler)[skip * config.batch_size: batches_per_epoch * config.batch_size]
        loader = DataLoader(dataset, batch_size=config.batch_size, sampler=indices, drop_last=True,
                            num_workers=config.num_workers, pin_memory=cuda,
                            generator=torch.Generator().manual_seed(config.seed + epoch))  # not the global RNG
        for x0, _ in loader:
            x0 = x0.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            noise_gen.manual_seed(_step_seed(config.seed, rank, step))
            with autocast:
                loss = noise_prediction_loss(net, schedule, x0, generator=noise_gen)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            lr_schedule.step()
            ema_update(ema, model, ema_decay_at(step, config.ema_decay))
            step += 1
            pending.append(loss.detach())

            last = step == config.steps
            save = step % config.checkpoint_every == 0 or last
            if step % config.log_every == 0 or save:
                flush()
                rate = (step - start_step) * config.batch_size * world / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{np.mean(losses[-config.log_every:]):.4f}", img_s=f"{rate:.0f}")
            bar.update(1)
            if save:
                state = checkpoint_state()
                if rank == 0:
                    save_checkpoint(state, ckpt_path)
            if config.sample_every and (step % config.sample_every == 0 or last) and rank == 0:
                _save_samples(ema, schedule, image_shape, config, step, out_dir / "samples")
            if last:
                break
    bar.close()
    wall = time.perf_counter() - t0
    if world > 1:
        dist.barrier()  # rank 0 has finished writing before anyone reads the checkpoint
    done = step - start_step
    return TrainResult(model=model.eval(), ema_model=ema, losses=losses, checkpoint=ckpt_path, steps=step,
                       wall_time=past_wall + wall,
                       images_per_sec=done * config.batch_size * world / wall if done else 0.0, config=config)


def _save_samples(ema: nn.Module, schedule, image_shape, config: TrainConfig, step: int, folder: Path) -> None:
    """A grid of 64 EMA samples with a ``sample_steps``-step chain, saved as samples/step_XXXXXX.png."""
    from .sample import sample, save_grid  # only needed when previews are on

    device = next(ema.parameters()).device
    gen = torch.Generator(device if device.type == "cuda" else "cpu").manual_seed(config.seed)
    images = sample(ema, schedule, (64, *image_shape), steps=config.sample_steps, generator=gen, progress=False)
    save_grid(images, folder / f"step_{step:06d}.png")


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> TrainResult:
    parser = argparse.ArgumentParser(
        prog="python -m dnnl.models.ddpm.train",
        description="Train the DDPM U-Net on MNIST (Algorithm 1). Runs under torchrun for several GPUs.")
    parser.add_argument("--preset", choices=("quick", "full"), default=None,
                        help="model and run size (default: quick without a GPU, full with one)")
    parser.add_argument("--out", dest="out_dir", help="output folder for checkpoint.pt and samples/")
    parser.add_argument("--steps", type=int, help="total optimiser steps")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    parser.add_argument("--subset", type=int, help="train on the first N images only")
    parser.add_argument("--batch-size", type=int, help="images per step per process")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="seed for the weights, data order and noise")
    parser.add_argument("--data-root", help="folder that holds MNIST/raw/ (default: $DNNL_DATA or the cache)")
    parser.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    parser.add_argument("--sample-every", type=int, help="save a grid of EMA samples every N steps (0: never)")
    parser.add_argument("--checkpoint-every", type=int, help="save a checkpoint every N steps")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = vars(parser.parse_args(argv))
    preset = args.pop("preset") or get_mode()
    resume, no_progress = args.pop("resume"), args.pop("no_progress")
    config = TrainConfig.preset_named(preset, **{k: v for k, v in args.items() if v is not None})
    result = train(config, resume=resume, progress=not no_progress)
    if _distributed()[0] == 0:
        tail = result.losses[-config.log_every:]
        print(f"done: {result.steps} steps, final loss {np.mean(tail):.4f}, {result.images_per_sec:.0f} img/s, "
              f"{result.wall_time:.0f} s; checkpoint {result.checkpoint}")
    return result


if __name__ == "__main__":
    main()
