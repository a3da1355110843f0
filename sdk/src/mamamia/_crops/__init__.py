"""Streaming training and inference crops from a catalog (``Catalog.crops``).

Written against the Catalog / Case / Volume interface only, so local and remote catalogs stream
the same crops.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mamamia._crops._config import CropConfig, make_config
from mamamia._crops._grid import GridStitcher, grid_starts
from mamamia._crops._stream import CropStream, cohort_ids

if TYPE_CHECKING:
    from mamamia._catalog import Catalog
    from mamamia._cohort import Cohort

__all__ = [
    "REMOTE_THREADS",
    "CropConfig",
    "CropStream",
    "GridStitcher",
    "crop_stream",
    "grid_starts",
]

#: Default reader threads over a server (requests overlap; measured ~1.7x over 2 threads).
REMOTE_THREADS = 8


def crop_stream(
    catalog: Catalog,
    cohort: Cohort | Iterable[str],
    *,
    size: Any = (64, 64, 64),
    phases: Any = (0, 1),
    subtraction: bool = True,
    label: str | None = "expert",
    sampler: str = "tumor",
    pos_ratio: float = 0.5,
    per_case: int = 1,
    normalize: str | None = "zscore",
    spacing: Any = None,
    overlap: Any = None,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    even: bool = False,
    threads: int | None = None,
    prefetch: int | None = None,
) -> CropStream:
    """The crops of ``cohort`` (see ``Catalog.crops`` and docs/crops.md)."""
    if threads is None:
        # Local reads are CPU-bound (decompression); remote ones wait on the network.
        threads = REMOTE_THREADS if catalog.remote else min(4, os.cpu_count() or 1)
    config = make_config(
        size=size,
        phases=phases,
        subtraction=subtraction,
        label=label,
        sampler=sampler,
        pos_ratio=pos_ratio,
        per_case=per_case,
        normalize=normalize,
        spacing=spacing,
        overlap=overlap,
        seed=seed,
        threads=threads,
        prefetch=prefetch,
    )
    return CropStream(
        catalog,
        cohort_ids(cohort),
        config,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        even=even,
    )
