"""Shared pytest fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_SHARED_DATA = Path("/work/shared/data")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """A folder holding MNIST/raw/: $DNNL_DATA if set, else a local shared copy; skip otherwise."""
    env = os.environ.get("DNNL_DATA", "").strip()
    root = Path(env) if env else _SHARED_DATA
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip("MNIST not found: set DNNL_DATA to a folder that holds MNIST/raw/")
    return root
