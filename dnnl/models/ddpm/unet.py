"""A small time-conditioned U-Net that predicts the noise ε_θ(x_t, t) of Eq. @eq-l-simple.

Read top to bottom: the sinusoidal time embedding, a residual block, self-attention,
down/up-sampling, then the U-Net that wires them together with skip connections.
Each level halves the image side, so a side of 28 with three levels runs 28 -> 14 -> 7.
With ``num_classes`` it is the conditional ε_θ(x_t, t, y) of chapter 7 (Eq. @eq-ch7-cond-eps): a label
embedding, with one extra "no label" token ∅, is added to the time embedding.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_float, check_int

__all__ = ["UNet", "sinusoidal_embedding"]


def sinusoidal_embedding(t: torch.Tensor | int, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps (Eq. @eq-ch4-time-embedding): (B,) -> (B, dim) float32, [sin | cos].

    Frequency k of dim/2 is max_period^(-k/(dim/2)), so low k changes fast with t and high k slowly.
    ``t`` is a number or a real tensor of shape () or (B,); ``max_period`` > 0.
    """
    if check_int(dim, "dim", low=2) % 2:
        raise ValueError(f"dim must be an even int >= 2 (got {dim!r})")
    max_period = check_float(max_period, "max_period", low=0, open_low=True)
    if isinstance(t, torch.Tensor):
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must be a real tensor or a number (got dtype {t.dtype})")
    elif isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise TypeError(f"t must be a real tensor or a number (got {type(t).__name__} {t!r})")
    t = torch.as_tensor(t)
    if t.dim() == 0:
        t = t[None]
    if t.dim() != 1:
        raise ValueError(f"t must be a scalar or have shape (B,) (got shape {tuple(t.shape)})")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, add the time embedding, GroupNorm -> SiLU -> conv, plus a skip."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Linear(time_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # the block starts as its skip path
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W pixels, with a residual connection."""

    def __init__(self, ch: int, groups: int, heads: int):
        super().__init__()
        if ch % heads:
            raise ValueError(f"attention channels ({ch}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        y = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Halve the side with a stride-2 3x3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the side: a 3x3 convolution to the next level's width, then nearest-neighbour upsampling.

    Convolving before upsampling costs a quarter of the other order; the next block's convolutions at
    the higher resolution smooth the 2x2 copies.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2.0, mode="nearest")


class UNet(nn.Module):
    """ε_θ(x_t, t): images (B, C, H, W) in, noise prediction of the same shape out.

    ``channels[i]`` is the width at level i; the side halves between levels, so H and W must be
    divisible by 2**(len(channels) - 1). ``attention`` adds self-attention at the lowest resolution.
    The defaults are the quick (CPU) size; ``TrainConfig.full()`` uses (64, 128, 256) with 2 blocks per level.

    ``num_classes`` makes it conditional, ε_θ(x_t, t, y) (Eq. @eq-ch7-cond-eps): ``label_emb`` holds
    ``num_classes + 1`` vectors added to the time embedding; index ``num_classes`` is "no label" (∅). It starts
    at zero, so a fresh conditional model, or one loaded from unconditional weights, ignores y at first.
    With ``num_classes=None`` the parameters and state-dict keys are exactly those of an unconditional U-Net.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: tuple[int, ...] = (16, 32, 64),
                 num_res_blocks: int = 1, attention: bool = True, time_dim: int | None = None,
                 groups: int = 8, heads: int = 4, dropout: float = 0.0, image_size: int | None = None,
                 num_classes: int | None = None):
        super().__init__()
        channels, groups, heads = _check_widths(channels, groups, heads)
        in_channels, out_channels = check_int(in_channels, "in_channels"), check_int(out_channels, "out_channels")
        num_res_blocks = check_int(num_res_blocks, "num_res_blocks")
        if not isinstance(attention, bool):
            raise TypeError(f"attention must be True or False (got {type(attention).__name__} {attention!r})")
        time_dim = None if time_dim is None else check_int(time_dim, "time_dim")
        dropout = check_float(dropout, "dropout", low=0, high=1, open_high=True)
        image_size = None if image_size is None else check_int(image_size, "image_size")
        num_classes = None if num_classes is None else check_int(num_classes, "num_classes (None or an int)")
        self.in_channels, self.out_channels, self.channels = in_channels, out_channels, channels
        self.num_res_blocks, self.num_classes, self.attention = num_res_blocks, num_classes, attention
        self.factor = 2 ** (len(channels) - 1)
        if image_size is not None:
            self._check_side(image_size, image_size)
        time_dim = time_dim or 4 * channels[0]

        self.time_mlp = nn.Sequential(nn.Linear(channels[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)

        def block(i, o):
            return ResBlock(i, o, time_dim, groups, dropout)

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        ch = channels[0]
        for level, c in enumerate(channels):
            self.down.append(nn.ModuleList([block(ch if j == 0 else c, c) for j in range(num_res_blocks)]))
            ch = c
            last = level == len(channels) - 1
            self.downsample.append(nn.Identity() if last else Downsample(c))

        self.mid1 = block(ch, ch)
        self.mid_attn = SelfAttention(ch, groups, heads) if attention else nn.Identity()
        self.mid2 = block(ch, ch)

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(channels))):
            c = channels[level]  # the skip from the down path has c channels too
            self.up.append(nn.ModuleList([block(ch + c if j == 0 else c, c) for j in range(num_res_blocks)]))
            ch = channels[level - 1] if level > 0 else c
            self.upsample.append(Upsample(c, ch) if level > 0 else nn.Identity())

        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start by predicting ε = 0, i.e. loss ≈ 1
        nn.init.zeros_(self.conv_out.bias)
        if num_classes is not None:  # last, and drawing no random numbers: the other weights match an unconditional U-Net
            self.label_emb = nn.Embedding(num_classes + 1, time_dim, _weight=torch.zeros(num_classes + 1, time_dim))

    def _check_side(self, h: int, w: int) -> None:
        if h % self.factor or w % self.factor:
            levels = len(self.channels)
            raise ValueError(f"image size {h}x{w} does not fit a U-Net with {levels} levels: H and W must be "
                             f"divisible by 2**{levels - 1} = {self.factor}. Use fewer levels (channels) "
                             f"or pad the images (e.g. 28 -> 32).")

    def _timesteps(self, t: torch.Tensor | int, batch: int, device: torch.device) -> torch.Tensor:
        """t as an int64 (B,) tensor on ``device``, without a host–device sync.

        The sign of t is checked for an int and for a CPU tensor; reading an accelerator tensor's
        values would wait for the device, so there only the dtype and shape are checked.
        """
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            if not 0 <= t < 2**63:
                raise ValueError(f"t must be >= 0 and fit in int64 (got {t}); code timesteps run 0..T-1")
            return torch.full((batch,), int(t), dtype=torch.long, device=device)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"t must be an int or an int64 tensor of shape (B,) (got {type(t).__name__})")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must hold integer timesteps (int64), not {t.dtype}")
        if t.dim() == 0 or t.shape == (1,):
            t = t.reshape(()).expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a scalar or have shape (B,) = ({batch},) (got shape {tuple(t.shape)})")
        if t.device.type == "cpu" and t.numel() and int(t.min()) < 0:
            raise ValueError(f"t must be >= 0 (got min {int(t.min())}); code timesteps run 0..T-1")
        return t.to(device=device, dtype=torch.long)

    def _input(self, x) -> torch.Tensor:
        """x checked as (B, in_channels, H, W) floats and cast to the model's dtype (fp32 inputs pass unchanged)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, C, H, W) (got {shape})")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (got dtype {x.dtype}); the U-Net computes in "
                            f"{self.stem.weight.dtype} and casts other float inputs to it")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have in_channels={self.in_channels} channels (got {x.shape[1]})")
        self._check_side(x.shape[2], x.shape[3])
        return x.to(self.stem.weight.dtype)

    def _labels(self, y, batch: int, device: torch.device) -> torch.Tensor | None:
        """y as an int64 (B,) tensor on ``device`` (None -> all "no label"), without a host–device sync.

        The range 0..num_classes is checked for an int and for a CPU tensor only, as for t.
        """
        if self.num_classes is None:
            if y is not None:
                raise ValueError("y must be None: this U-Net is unconditional (num_classes=None); build it with "
                                 "UNet(..., num_classes=10) to condition on a label")
            return None
        top = self.num_classes
        if y is None:
            return torch.full((batch,), top, dtype=torch.long, device=device)
        if isinstance(y, numbers.Integral) and not isinstance(y, bool):
            if not 0 <= y <= top:
                raise ValueError(f"y must be in [0, {top}] (got {y}); {top} is the 'no label' token")
            return torch.full((batch,), int(y), dtype=torch.long, device=device)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be None, an int or an int64 tensor of shape (B,) (got {type(y).__name__})")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"y must hold integer class labels (int64), not {y.dtype}")
        if y.shape != (batch,):
            raise ValueError(f"y must have shape (B,) = ({batch},) (got shape {tuple(y.shape)})")
        if y.device.type == "cpu" and y.numel():
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi > top:
                raise ValueError(f"y must be in [0, {top}] (got {lo if lo < 0 else hi}); {top} is the 'no label' token")
        return y.to(device=device, dtype=torch.long)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """x (B, C, H, W) and int64 t (B,) (or one int for the whole batch) -> ε prediction (B, C, H, W).

        ``y``: class labels (B,) in 0..num_classes (num_classes = "no label"), one int, or None ("no label"
        for all); only a model built with ``num_classes`` takes one. Float inputs of another dtype are cast
        to the model's dtype, which is the output's dtype.
        """
        x = self._input(x)
        t = self._timesteps(t, x.shape[0], x.device)
        y = self._labels(y, x.shape[0], x.device)

        temb = self.time_mlp(sinusoidal_embedding(t, self.channels[0]).to(x.dtype))
        if y is not None:
            temb = temb + self.label_emb(y)  # Eq. @eq-ch7-cond-eps: the label joins the time embedding
        h = self.stem(x)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for blk in blocks:
                h = blk(h, temb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for blocks, up in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in blocks:
                h = blk(h, temb)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _check_widths(channels, groups, heads) -> tuple[tuple[int, ...], int, int]:
    """channels as a non-empty tuple of positive ints, each divisible by groups; groups and heads >= 1."""
    if isinstance(channels, (numbers.Number, str, bytes)) or not hasattr(channels, "__iter__"):
        raise TypeError(f"channels must be a tuple of positive ints, one width per level, such as (16, 32, 64) "
                        f"(got {type(channels).__name__} {channels!r})")
    channels = tuple(channels)
    if not channels:
        raise ValueError("channels must be a non-empty tuple of positive ints (got ())")
    channels = tuple(check_int(c, f"channels[{i}]") for i, c in enumerate(channels))
    groups, heads = check_int(groups, "groups"), check_int(heads, "heads")
    if any(c % groups for c in channels):
        raise ValueError(f"every entry of channels must be divisible by groups={groups} (got {channels})")
    return channels, groups, heads
