"""What the training tests share: one torch thread, and a very small model on a 64-image subset."""
import pytest
import torch

from dnnl.models.ddpm import TrainConfig


@pytest.fixture
def one_thread():
    """The tiny models here are overhead-bound: one thread is faster and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(root, out, **kw):
    """A very small model on a 64-image subset: four batches per epoch, so runs cross epochs."""
    base = dict(channels=(8, 16, 16), steps=20, batch_size=16, subset=64, lr=1e-3, warmup=5, dropout=0.1,
                data_root=str(root), out_dir=str(out), log_every=5, checkpoint_every=10)
    return TrainConfig(**{**base, **kw})
