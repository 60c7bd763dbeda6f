import torch
import pytest
import torchvision.datasets

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

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)  # what dnnl.data calls
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


# --------------------------------------------------------------------------- damaged files

def _idx(path, dims, payload=None):
    """Write an IDX file of unsigned bytes with the given dims (payload: the data bytes, zeros by default)."""
    header = bytes([0, 0, 8, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    n = 1
    for d in dims:
        n *= d
    path.write_bytes(header + (bytes(n) if payload is None else payload))


def _fake_mnist(root, n_train=3, n_test=2):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", (n, 28, 28))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", (n,), bytes(range(n)))
    return raw


def test_well_formed_small_idx_files_load(tmp_path):
    _fake_mnist(tmp_path)
    ds = mnist("train", root=tmp_path, download=False)
    assert len(ds) == 3 and ds[2][1] == 2


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("<html>404 not found</html>\n" * 40), "bad magic number"),
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated"),
    (lambda p: p.write_bytes(p.read_bytes() + b"\0" * 5), "too long"),
    (lambda p: p.write_bytes(p.read_bytes()[:10]), "truncated"),
    (lambda p: _idx(p, (3, 28)), "2-D array, expected 3-D"),
    (lambda p: _idx(p, (3, 32, 32)), r"shape \(32, 32\), expected \(28, 28\)"),
])
def test_a_damaged_image_file_is_named_with_what_is_wrong(tmp_path, damage, reason):
    raw = _fake_mnist(tmp_path)
    bad = raw / "train-images-idx3-ubyte"
    damage(bad)
    with pytest.raises(ValueError, match=reason) as info:
        mnist("train", root=tmp_path, download=False)
    assert str(bad) in str(info.value)
    mnist("test", root=tmp_path, download=False)  # the other split is still fine


def test_images_and_labels_of_different_lengths_are_refused(tmp_path):
    raw = _fake_mnist(tmp_path)
    _idx(raw / "train-labels-idx1-ubyte", (5,), bytes(5))
    with pytest.raises(ValueError, match="3 images but .* holds 5 labels") as info:
        mnist("train", root=tmp_path, download=False)
    assert "train-images-idx3-ubyte" in str(info.value) and "train-labels-idx1-ubyte" in str(info.value)


def test_test_images_beside_train_labels_are_refused(mnist_root, tmp_path):
    """The real case: the 10k test images copied over the training images, beside the 60k training labels."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).symlink_to(mnist_root / "MNIST" / "raw" / name)
    (raw / "train-images-idx3-ubyte").unlink()
    (raw / "train-images-idx3-ubyte").symlink_to(mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte")
    with pytest.raises(ValueError, match="10000 images but .* holds 60000 labels"):
        mnist("train", root=tmp_path, download=False)


def test_a_label_outside_0_to_9_is_refused(tmp_path):
    raw = _fake_mnist(tmp_path)
    _idx(raw / "train-labels-idx1-ubyte", (3,), bytes([1, 2, 200]))
    with pytest.raises(ValueError, match="a label of 200"):
        mnist("train", root=tmp_path, download=False)


def test_the_download_failure_reason_is_kept_whole(tmp_path, monkeypatch):
    """torchvision puts the reason after a first line that ends in a colon; the message keeps it."""
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example.org/mnist/, got:\n"
                           "<urlopen error [Errno -3] Temporary failure in name resolution>\n")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)  # what dnnl.data calls
    with pytest.raises(FileNotFoundError, match="Temporary failure in name resolution"):
        mnist("train", root=tmp_path)


def test_an_empty_download_error_still_says_what_failed(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("\n")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)  # what dnnl.data calls
    with pytest.raises(FileNotFoundError, match="download failed: ConnectionError"):
        mnist("train", root=tmp_path)
