"""The training batches are gathered on the device, yet they are a DataLoader's batches, in its order.

The reference below is the loop's earlier data path: a ``DataLoader`` over a ``TensorDataset``, sampled
by ``DistributedSampler`` with ``set_epoch(e)``, with a resumed run skipping the batches it had seen.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from dnnl.models.ddpm import TrainConfig
from dnnl.models.ddpm.batches import DeviceBatches

N = 53  # not a multiple of the batch size or of the world size: drop_last and padding both matter


def _data(n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with the number i, so a batch names the images it holds; label i is i mod 10."""
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return images, torch.arange(n) % 10


def _reference(config: TrainConfig, rank: int, world: int, epochs: int, n: int = N):
    images, labels = _data(n)
    if config.subset is not None:
        images, labels = images[:config.subset], labels[:config.subset]
    dataset = TensorDataset(images, labels)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    per_epoch = len(sampler) // config.batch_size
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        indices = list(sampler)[:per_epoch * config.batch_size]
        yield from DataLoader(dataset, batch_size=config.batch_size, sampler=indices, drop_last=True)


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"batch_size": 8, "seed": 0, **kw})


@pytest.mark.parametrize("world,rank", [(1, 0), (2, 0), (2, 1), (3, 2)])
@pytest.mark.parametrize("seed,subset", [(0, None), (7, None), (3, 30)])
def test_the_batches_are_the_dataloaders_in_its_order(world, rank, seed, subset):
    config = _config(seed=seed, subset=subset)
    ours = DeviceBatches(config, rank, world, data=_data())
    epochs = 3
    want = list(_reference(config, rank, world, epochs))
    got = list(itertools.islice(ours.iter_from(0), ours.per_epoch * epochs))
    assert len(want) == len(got) == ours.per_epoch * epochs
    for step, ((x_ref, y_ref), (x, y)) in enumerate(zip(want, got)):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref), f"batch {step} differs"
        assert x.shape == (config.batch_size, 1, 4, 4)
        assert torch.equal(y, x[:, 0, 0, 0].long() % 10), "a label left its image"


def test_the_epochs_differ_and_each_holds_distinct_images():
    ours = DeviceBatches(_config(), data=_data())
    first, second = ours.order(0), ours.order(1)
    assert len(set(first.tolist())) == len(first) == ours.per_epoch * 8
    assert not torch.equal(first, second), "every epoch must be reshuffled"


@pytest.mark.parametrize("step", [0, 1, 5, 6, 7, 13])
def test_a_resumed_run_sees_the_batches_an_unbroken_run_sees_from_its_step(step):
    config = _config()
    whole = list(itertools.islice(DeviceBatches(config, data=_data()).iter_from(0), 20))
    resumed = list(itertools.islice(DeviceBatches(config, data=_data()).iter_from(step), 20 - step))
    assert DeviceBatches(config, data=_data()).per_epoch == 6  # steps 6 and 12 begin epochs 1 and 2
    for (x_w, y_w), (x_r, y_r) in zip(whole[step:], resumed):
        assert torch.equal(x_w, x_r) and torch.equal(y_w, y_r)


def test_the_images_are_moved_once_and_batches_are_gathered_from_them():
    ours = DeviceBatches(_config(), data=_data())
    x, y = next(ours.iter_from(0))
    assert x.device == ours.images.device and y.device == ours.labels.device
    assert x.dtype == torch.float32 and y.dtype == torch.long


def test_an_unconditional_run_gathers_the_same_images_and_no_labels():
    ours = DeviceBatches(_config(), data=_data())
    for (x, y), (x_lab, _) in zip(itertools.islice(ours.iter_from(3, labels=False), 8),
                                  itertools.islice(ours.iter_from(3), 8)):
        assert y is None and torch.equal(x, x_lab)


def test_too_little_data_for_one_batch_names_the_sizes():
    with pytest.raises(ValueError, match=r"each of the 2 process\(es\) gets 4 images, fewer than batch_size=8"):
        DeviceBatches(_config(subset=7), rank=0, world=2, data=_data())
