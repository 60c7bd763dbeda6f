"""How the benchmark scripts describe the machine they ran on."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """For example 'AMD EPYC 7B13, 2 cores visible, 2 torch threads' (plus the GPU when there is one)."""
    text = f"{cpu_name()}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads"
    if torch.cuda.is_available():
        text = f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}; {text}"
    return text
