"""Where a run executes: the torchrun environment, the device's arithmetic, and the signals that stop it."""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

import torch

NO_SCALER = torch.amp.GradScaler("cpu", enabled=False)  # a disabled scaler passes everything through


def distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment; (0, 1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def precision(device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """(autocast dtype, GradScaler): bf16 on CUDA, fp16 + an enabled scaler without bf16, fp32 elsewhere."""
    if device.type != "cuda":
        return None, NO_SCALER
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False)
    return torch.float16, torch.amp.GradScaler("cuda")


@contextmanager
def stop_on_signals():
    """Turn Ctrl-C and SIGTERM into a request to stop after the current step (a second Ctrl-C stops at once)."""
    stop: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum, frame):
        if stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.append(signum)

    previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
