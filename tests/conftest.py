"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """A folder holding MNIST/raw/: ``$DNNL_DATA`` if set, else the package's default data folder; skip otherwise."""
    from dnnl.data import data_root

    root = data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST not found in {root}: set DNNL_DATA to a folder that holds MNIST/raw/")
    return root
