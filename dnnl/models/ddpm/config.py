"""What a training run depends on (:class:`TrainConfig`) and what it returns (:class:`TrainResult`)."""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from ._validate import check_float, check_int
from .schedule import NoiseSchedule
from .unet import UNet

__all__ = ["TrainConfig", "TrainResult"]

# integer fields and their lowest allowed value
_INTS = {"num_res_blocks": 1, "T": 2, "steps": 1, "batch_size": 1, "warmup": 0, "seed": 0, "num_workers": 0,
         "log_every": 1, "checkpoint_every": 1, "sample_every": 0}
# float fields: (low, high, open_low, open_high)
_FLOATS = {"dropout": (0.0, 1.0, False, True), "p_uncond": (0.0, 1.0, False, True), "lr": (0.0, None, True, False),
           "label_lr_scale": (0.0, None, True, False), "vlb_weight": (0.0, None, False, False),
           "weight_decay": (0.0, None, False, False), "ema_decay": (0.0, 1.0, False, True)}


def _check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))} (got {value!r})")
    return value


def _check_path(value, name: str, optional: bool = False, what: str = "folder path"):
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a {what} (str or Path){' or None' if optional else ''} "
                        f"(got {type(value).__name__} {value!r})")
    return str(value)


def _check_channels(value) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"channels must be a non-empty tuple of ints, one width per level (got {value!r})")
    return tuple(check_int(c, f"channels[{i}]") for i, c in enumerate(value))


@dataclass
class TrainConfig:
    """Everything a run depends on. ``batch_size`` is per process; the global batch is batch_size × world size.

    Every field is checked on construction; NumPy numbers are stored as Python ones.

    ``num_classes`` trains the conditional ε_θ(x_t, t, y) of chapter 7 on the MNIST labels, each replaced by
    "no label" with probability ``p_uncond`` (Eq. @eq-ch7-label-dropout). ``init_from`` starts a fresh run
    from saved weights (a state dict, or a training checkpoint's EMA), for example the shipped unconditional
    checkpoint: every weight must fit, except a conditional model's label embedding, which stays at zero.
    ``label_lr_scale`` lets that new embedding learn at ``lr × label_lr_scale`` while the loaded weights are
    fine-tuned at ``lr`` (1: one learning rate for all).

    ``min_snr_gamma`` weights the loss by min(SNR_t, γ) / SNR_t (Eq. @eq-ch4-min-snr); None trains on
    L_simple itself.

    ``learn_variance`` gives the U-Net a second output map v for its reverse variance (Eq. @eq-learned-range)
    and trains with L_hybrid = L_simple + ``vlb_weight`` × L_vlb (Eq. @eq-l-hybrid), t = 0 drawn with
    probability ``decoder_share`` (None: uniform, as Nichol & Dhariwal). ``init_from`` may then name the weights
    of an ε-only U-Net: they fill the ε half of the output, and v starts at zero.

    The batches are indexed on the device from the images held there (``batches.py``), so ``num_workers``
    has no effect; it stays a field so that the configs in older checkpoints still load.
    """

    preset: str = "custom"
    # model (see UNet)
    channels: tuple[int, ...] = (16, 32, 64)
    num_res_blocks: int = 1
    attention: bool = True
    dropout: float = 0.0
    num_classes: int | None = None
    p_uncond: float = 0.1
    init_from: str | None = None
    # diffusion
    T: int = 1000
    schedule: str = "linear"
    min_snr_gamma: float | None = None
    learn_variance: bool = False
    vlb_weight: float = 1e-3
    decoder_share: float | None = None
    # optimisation
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    decay_steps: int | None = None
    weight_decay: float = 0.0
    label_lr_scale: float = 1.0
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
        if not isinstance(self.preset, str):
            raise TypeError(f"preset must be a str (got {type(self.preset).__name__} {self.preset!r})")
        self.schedule = _check_choice(self.schedule, "schedule", ("linear", "cosine"))
        self.channels = _check_channels(self.channels)
        if not isinstance(self.attention, (bool, np.bool_)):
            raise TypeError(f"attention must be True or False (got {type(self.attention).__name__} {self.attention!r})")
        self.attention = bool(self.attention)
        if not isinstance(self.learn_variance, (bool, np.bool_)):
            raise TypeError(f"learn_variance must be True or False (got {type(self.learn_variance).__name__} "
                            f"{self.learn_variance!r})")
        self.learn_variance = bool(self.learn_variance)
        if self.decoder_share is not None:
            self.decoder_share = check_float(self.decoder_share, "decoder_share (None or a float)", low=0.0,
                                             high=1.0, open_low=True, open_high=True)
        for name, low in _INTS.items():
            setattr(self, name, check_int(getattr(self, name), name, low=low))
        self.sample_steps = check_int(self.sample_steps, "sample_steps", low=1, high=self.T)
        if self.min_snr_gamma is not None:
            self.min_snr_gamma = check_float(self.min_snr_gamma, "min_snr_gamma (None or a float)", low=0.0,
                                             open_low=True)
        for name in ("decay_steps", "subset", "num_classes"):
            if getattr(self, name) is not None:
                setattr(self, name, check_int(getattr(self, name), f"{name} (None or an int)", low=1))
        for name, (low, high, open_low, open_high) in _FLOATS.items():
            setattr(self, name, check_float(getattr(self, name), name, low=low, high=high, open_low=open_low,
                                            open_high=open_high))
        clip = self.grad_clip
        if not (isinstance(clip, numbers.Real) and not isinstance(clip, bool) and clip == math.inf):
            try:
                clip = check_float(clip, "grad_clip", low=0, open_low=True)
            except ValueError as err:
                raise ValueError(f"{err}; use math.inf for no clipping") from None
        self.grad_clip = float(clip)
        self.data_root = _check_path(self.data_root, "data_root", optional=True)
        self.init_from = _check_path(self.init_from, "init_from", optional=True, what="weights file path")
        self.out_dir = _check_path(self.out_dir, "out_dir")

    @classmethod
    def quick(cls, **overrides) -> "TrainConfig":
        """CPU size: recognisable digits in under 15 minutes on 2 cores.

        The learning rate decays to zero over the run (``decay_steps`` follows ``steps`` unless given).
        Batch 64, the min-SNR-5 weighting (Eq. @eq-ch4-min-snr), the cosine schedule (Eq.
        @eq-cosine-schedule) and no self-attention each gave better samples in the same CPU time than batch
        128, L_simple, the linear schedule and attention at 7×7 (``benchmarks/cpu_ablation.py``).
        """
        base = dict(preset="quick", out_dir="runs/quick", steps=3000, batch_size=64, min_snr_gamma=5.0,
                    schedule="cosine", attention=False)
        return cls._preset(base, overrides)

    @classmethod
    def full(cls, **overrides) -> "TrainConfig":
        """GPU size: a wider, deeper U-Net trained for longer with a slower EMA."""
        base = dict(preset="full", channels=(64, 128, 256), num_res_blocks=2, dropout=0.1, steps=20_000,
                    batch_size=128, lr=2e-4, warmup=1000, ema_decay=0.9999,
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
        """The UNet constructor arguments this config describes (plain types; ``num_classes`` only when set)."""
        out_channels = 2 * in_channels if self.learn_variance else in_channels  # ε, then v
        kwargs = dict(in_channels=in_channels, out_channels=out_channels, channels=list(self.channels),
                      num_res_blocks=self.num_res_blocks, attention=self.attention, dropout=self.dropout)
        return kwargs if self.num_classes is None else dict(kwargs, num_classes=self.num_classes)

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
