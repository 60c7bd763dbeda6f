import torch
import pytest

from dnnl import data
from dnnl.data import MNIST_FILES, data_root, mnist, to_model_range, to_unit


def test_mnist_items_are_float32_1x28x28_in_model_range(mnist_root):
    ds = mnist("train", root=mnist_root)
    assert len(ds) == 60_000
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert x.min() == -1 and x.max() == 1  # background is -1, full ink is +1
    assert isinstance(y, int) and 0 <= y <= 9


def test_mnist_test_split_has_10000_images(mnist_root):
    assert len(mnist("test", root=mnist_root)) == 10_000


def test_mnist_pixels_match_raw_bytes(mnist_root):
    ds = mnist("test", root=mnist_root)
    x, _ = ds[7]
    assert torch.allclose(x[0], to_model_range(ds.data[7]), atol=1e-6)


def test_dnnl_data_env_is_used_when_no_root_given(mnist_root, monkeypatch):
    monkeypatch.setenv("DNNL_DATA", str(mnist_root))
    assert data_root() == mnist_root
    assert len(mnist("test")) == 10_000


def test_root_argument_beats_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNL_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"


def test_default_root_is_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("DNNL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data_root() == tmp_path / "dnnl" / "data"


def test_missing_files_error_names_files_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        mnist("train", root=tmp_path, download=False)
    message = str(info.value)
    for name in MNIST_FILES:
        assert name in message
    assert str(tmp_path / "MNIST" / "raw") in message


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(data.datasets, "MNIST", offline)
    with pytest.raises(FileNotFoundError, match="MNIST/raw") as info:
        mnist("train", root=tmp_path)
    assert "download failed" in str(info.value)
    assert all(name in str(info.value) for name in MNIST_FILES)


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        mnist("valid")


def test_to_unit_maps_model_range_to_unit_interval_and_clamps():
    x = torch.tensor([-1.0, 0.0, 1.0, -3.0, 3.0])
    assert torch.equal(to_unit(x), torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0]))


def test_to_model_range_from_uint8_and_unit_float():
    u8 = torch.tensor([0, 255], dtype=torch.uint8)
    assert torch.equal(to_model_range(u8), torch.tensor([-1.0, 1.0]))
    assert torch.equal(to_model_range(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))
    x = torch.rand(4, 1, 5, 5)
    assert torch.allclose(to_unit(to_model_range(x)), x, atol=1e-6)


def test_to_model_range_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_model_range(torch.tensor([-1.0, 1.0]))
    with pytest.raises(TypeError, match="uint8"):
        to_model_range(torch.tensor([1, 2]))


def test_mnist_tensors_are_the_dataset_items_in_memory(mnist_root):
    from dnnl.data import mnist, mnist_tensors

    images, labels = mnist_tensors("test", mnist_root)
    ds = mnist("test", mnist_root)
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    for i in (0, 1, 4321, 9999):
        x, y = ds[i]
        assert torch.equal(images[i], x) and labels[i].item() == y
