"""Which cases a shard reads in one epoch, and the random stream of each sample.

The order is a function of (seed, epoch) alone: the sorted case ids are shuffled with a generator
seeded by both, then dealt to ranks (``perm[rank::world_size]``) and each rank's list to its
DataLoader workers (``rank_list[worker::num_workers]``). Splitting by rank first keeps what a rank
sees independent of its worker count. ``even=True`` pads every rank's list to the same length
with cases from the start of the permutation (what ``DistributedSampler`` does), so DDP ranks
run the same number of steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ShardSlot", "case_key", "epoch_order", "rank_slots", "sample_rng", "shard_slots"]


@dataclass(frozen=True)
class ShardSlot:
    """One case visit: ``copy`` is 0 for the case's own slot, 1+ for padding with ``even``."""

    patient_id: str
    copy: int = 0


def case_key(patient_id: str) -> int:
    """A stable 64-bit number for a case id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(patient_id.encode("utf-8")).digest()[:8], "little")


def epoch_order(case_ids: Sequence[str], seed: int, epoch: int) -> list[str]:
    """The cases of one epoch in shuffled order (the same for every rank and worker)."""
    ordered = sorted(case_ids)
    rng = np.random.default_rng([_u64(seed), _u64(epoch), 0x5EED])
    return [ordered[i] for i in rng.permutation(len(ordered))]


def rank_slots(
    case_ids: Sequence[str], *, seed: int, epoch: int, rank: int, world_size: int, even: bool
) -> list[ShardSlot]:
    """The case visits of one rank in one epoch."""
    order = epoch_order(case_ids, seed, epoch)
    slots = [ShardSlot(pid) for pid in order]
    if even and order:
        total = -(-len(order) // world_size) * world_size
        # Padding repeats the permutation's head, marked as copies so their crops differ.
        slots += [
            ShardSlot(order[i % len(order)], 1 + i // len(order)) for i in range(total - len(order))
        ]
    return slots[rank::world_size]


def shard_slots(
    case_ids: Sequence[str],
    *,
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
    even: bool,
) -> list[ShardSlot]:
    """The case visits of one DataLoader worker of one rank in one epoch."""
    mine = rank_slots(case_ids, seed=seed, epoch=epoch, rank=rank, world_size=world_size, even=even)
    return mine[worker::num_workers]


def sample_rng(seed: int, epoch: int, slot: ShardSlot) -> np.random.Generator:
    """The random stream of one case visit: independent of threads, ranks and workers."""
    return np.random.default_rng(
        [_u64(seed), _u64(epoch), case_key(slot.patient_id), slot.copy, 0xC509]
    )


def _u64(value: int) -> int:
    # SeedSequence wants non-negative entries; fold negatives in without collisions in practice.
    return int(value) % (1 << 64)
