"""What every benchmark script shares: the machine it ran on, the provenance of a result, and how a result is saved."""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
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
    """For example 'AMD EPYC 7B13, 2 cores visible, 2 torch threads, torch 2.14.1, device cpu' (and the GPU)."""
    import dnnl

    text = (f"{cpu_name()}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, device {dnnl.get_device()}")
    if torch.cuda.is_available():
        text = f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}; {text}"
    return text


def device_tag(device: torch.device) -> str:
    """The suffix of a result file: "" for a CPU run, "_cuda" (the device type) elsewhere, so both sets stay."""
    return "" if device.type == "cpu" else f"_{device.type}"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall clock read after it is true (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


RESULTS = Path(__file__).resolve().parent / "results"


def utc_now() -> str:
    """The time of a result, in the one format every record uses: '2026-11-26 12:49 UTC'."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def provenance() -> dict:
    """Where and when a result was measured: {"machine": ..., "torch": ..., "date": ...}."""
    return {"machine": machine(), "torch": torch.__version__, "date": utc_now()}


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON atomically: a unique temp file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_result(name: str | os.PathLike, result: dict, *, write: bool = True, echo: bool = True) -> dict:
    """Print ``result`` as indented JSON (the last thing every script prints) and store it atomically.

    ``name`` is a file in benchmarks/results/ (``"throughput.json"``) or a path of its own (``--out``).
    ``write=False`` (smoke runs, partial runs) only prints, so the committed results stay as measured;
    ``echo=False`` only stores (a script that saves as it goes prints once, at the end).
    """
    if write:
        write_json(RESULTS / name if Path(name).name == str(name) else Path(name), result)
    if echo:
        print(json.dumps(result, indent=2))
    return result
