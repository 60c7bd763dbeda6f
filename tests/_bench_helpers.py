"""Importing a module of benchmarks/ from a test (the scripts import each other by their plain names)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def bench_module(name: str):
    """The module ``benchmarks/<name>.py``, imported with benchmarks/ on the path only while it loads."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
