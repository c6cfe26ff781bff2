"""The batch order: seeded per epoch, resumable at any global batch, disjoint slices per rank."""

from __future__ import annotations

import torch

from ganlib.batch_order import epoch_batches, rank_batches


def test_batch_order_is_deterministic_and_ranks_are_disjoint() -> None:
    a = list(zip(range(7), epoch_batches(50, 16, seed=3, start_batch=0), strict=False))
    b = list(zip(range(4), epoch_batches(50, 16, seed=3, start_batch=3), strict=False))
    for (_, x), (_, y) in zip(a[3:], b, strict=True):
        assert torch.equal(x, y)  # starting at batch 3 continues the same order
    epoch0 = torch.cat([x for _, x in a[:3]])
    assert len(set(epoch0.tolist())) == 48  # no repeats within an epoch (ragged tail dropped)
    r0 = list(zip(range(5), rank_batches(50, 16, 3, 0, rank=0, world=2), strict=False))
    r1 = list(zip(range(5), rank_batches(50, 16, 3, 0, rank=1, world=2), strict=False))
    for (_, g), (_, x0), (_, x1) in zip(a, r0, r1, strict=False):
        assert len(x0) == len(x1) == 8
        assert torch.equal(torch.cat([x0, x1]), g)  # disjoint halves of the same global batch
