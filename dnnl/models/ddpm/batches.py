"""The training batches of Algorithm 1 (x_0 ~ q(x_0)): whole batches indexed where the model runs.

The images and labels go to the device once (MNIST's training split is 188 MB in float32). Each epoch's
order is ``DistributedSampler``'s permutation for (seed, epoch), copied to the device once per epoch; a
batch is then one gather, ``images[order[i:i + B]]``, with no per-image Python, no collation and no
host-device sync. These are exactly the batches, in exactly the order, that a ``DataLoader`` over that
sampler gives (tests/test_batches.py compares them), so a seed fixes the data a run sees on every device,
and a resumed run skips the batches it has seen.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data.distributed import DistributedSampler

from ...data import mnist_tensors
from .config import TrainConfig


class DeviceBatches:
    """The (x0, y) batches of one rank from a step on: ``iter_from(step)``; ``per_epoch`` batches an epoch."""

    def __init__(self, config: TrainConfig, rank: int = 0, world: int = 1, device: torch.device | str = "cpu",
                 data: tuple[torch.Tensor, torch.Tensor] | None = None):
        images, labels = mnist_tensors("train", root=config.data_root) if data is None else data
        if config.subset is not None:
            images, labels = images[:config.subset], labels[:config.subset]
        self.labels_cpu = labels  # for checks that must not read the device
        self.sampler = DistributedSampler(range(len(images)), num_replicas=world, rank=rank, shuffle=True,
                                          seed=config.seed, drop_last=False)
        self.batch_size = config.batch_size
        self.per_epoch = len(self.sampler) // config.batch_size
        if self.per_epoch == 0:
            raise ValueError(f"each of the {world} process(es) gets {len(self.sampler)} images, fewer than "
                             f"batch_size={config.batch_size}; use a smaller batch_size or a larger subset")
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.image_shape = tuple(images.shape[1:])

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's image indices for ``epoch``, whole batches only, on the device."""
        self.sampler.set_epoch(epoch)
        indices = torch.tensor(list(self.sampler)[:self.per_epoch * self.batch_size], dtype=torch.long)
        return indices.to(self.device, non_blocking=True)

    def iter_from(self, step: int, *, labels: bool = True
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Batches ``step``, ``step + 1``, ... without end: epoch ``step // per_epoch`` on, skipping what is seen.

        ``labels=False`` yields None for the labels: an unconditional run gathers only the images.
        """
        epoch, skip = divmod(step, self.per_epoch)
        while True:
            order = self.order(epoch)
            for b in range(skip, self.per_epoch):
                idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                yield self.images[idx], self.labels[idx] if labels else None
            epoch, skip = epoch + 1, 0
