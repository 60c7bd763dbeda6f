"""The diffusers baseline shared by the benchmarks: a UNet2DModel matched to one of our U-Nets."""
from __future__ import annotations

import math

import torch
from torch import nn


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def diffusers_unet(widths: tuple[int, ...], layers_per_block: int, groups: int, size: int, dropout: float = 0.0,
                   attention: bool = True):
    """diffusers' UNet2DModel with the same shape of network: plain res-blocks, attention (if any) only in the
    middle."""
    from diffusers import UNet2DModel

    levels = len(widths)
    return UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, block_out_channels=widths,
        layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels, norm_num_groups=groups, attention_head_dim=widths[-1] // 4,
        dropout=dropout, add_attention=attention,
    )


def match_diffusers(ours: nn.Module, size: int = 28, groups: int = 8, dropout: float = 0.0):
    """The UNet2DModel closest in parameter count to ``ours`` (a dnnl UNet), and its widths.

    Its first width equals ours (both spend the same on the full-resolution level); the deeper widths
    are ours times one factor, rounded to multiples of ``groups`` and of 4 (the attention heads). It has
    mid-block attention where ours has self-attention, and none where ours has none.
    """
    widths, layers, target = tuple(ours.channels), ours.num_res_blocks, n_params(ours)
    step = groups * 4 // math.gcd(groups, 4)
    seen, best = set(), None
    for k in range(8, 65):
        factor = k / 32
        cand = (widths[0],) + tuple(max(step, round(w * factor / step) * step) for w in widths[1:])
        if cand in seen:
            continue
        seen.add(cand)
        with torch.device("meta"):
            gap = abs(n_params(diffusers_unet(cand, layers, groups, size, attention=ours.attention)) - target)
        if best is None or gap < best[0]:
            best = (gap, cand)
    return diffusers_unet(best[1], layers, groups, size, dropout, ours.attention), best[1]


class DiffusersEps(nn.Module):
    """A UNet2DModel as an ε-predictor with our calling convention: ``model(x_t, t) -> ε``."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t).sample
