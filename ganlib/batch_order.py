"""The order training reads images in: a seeded permutation per epoch, indexed by the global batch counter.

A resumed run starts at its global batch and sees exactly the batches a straight run would have seen; under
DDP each rank takes its own disjoint slice of every global batch. Each batch is gathered by index from the
memory-mapped shards (never a copy of the whole set, so RAM stays flat in the dataset size; a split larger
than the page cache mapped for random reads, see ``ShardedImages.for_random_access``): in the training
process, or by torch DataLoader workers, which yield the same batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .data.shards import ShardedImages


def epoch_batches(n: int, batch_size: int, seed: int, start_batch: int) -> Iterator[torch.Tensor]:
    """Index batches from a fresh seeded permutation each epoch, starting at global batch ``start_batch``."""
    per_epoch = max(n // batch_size, 1)  # drop the ragged tail so every batch has the same size
    b = start_batch
    while True:
        epoch, i = divmod(b, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        for j in range(i, per_epoch):
            yield perm[j * batch_size : (j + 1) * batch_size]
            b += 1


def rank_batches(
    n: int, batch_size: int, seed: int, start_batch: int, rank: int, world: int
) -> Iterator[torch.Tensor]:
    """This rank's disjoint slice of every global batch."""
    local = batch_size // world
    for idx in epoch_batches(n, batch_size, seed, start_batch):
        yield idx[rank * local : (rank + 1) * local]


class ImageBatches(torch.utils.data.Dataset):
    """``dataset[index_batch]`` -> (uint8 images, index_batch); reads only those rows from the shards."""

    def __init__(self, images: np.ndarray | ShardedImages) -> None:
        self.images = images.for_random_access() if isinstance(images, ShardedImages) else images

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.images[idx.numpy()])), idx

    def __len__(self) -> int:
        return len(self.images)


class _BatchOrder(torch.utils.data.Sampler):
    """The batch order as a sampler: each item is a whole index batch."""

    def __init__(self, make: Callable[[], Iterator[torch.Tensor]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.make()


def real_batches(
    images: np.ndarray,
    batch_size: int,
    seed: int,
    start_batch: int,
    *,
    rank: int = 0,
    world: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, index batch) of this rank, in order from global batch ``start_batch``: gathered here
    (``num_workers=0``) or by that many DataLoader workers."""
    order = functools.partial(rank_batches, len(images), batch_size, seed, start_batch, rank, world)
    reader = ImageBatches(images)
    if num_workers == 0:
        return map(reader.__getitem__, order())
    # The loader gets its own generator: its seed draw must not shift the global RNG (the latents).
    loader = torch.utils.data.DataLoader(
        reader,
        sampler=_BatchOrder(order),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )
    return iter(loader)
