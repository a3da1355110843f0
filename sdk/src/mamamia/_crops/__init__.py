"""Streaming training and inference crops from a catalog (``Catalog.crops``).

Written against the Catalog / Case / Volume interface only, so local and remote catalogs stream
the same crops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mamamia._crops._crop_options import CropOptions
from mamamia._crops._grid import GridStitcher, grid_starts
from mamamia._crops._stream import REMOTE_THREADS, CropStream, cohort_ids

if TYPE_CHECKING:
    from mamamia._catalog import Catalog
    from mamamia._cohort import Cohort

__all__ = [
    "REMOTE_THREADS",
    "CropOptions",
    "CropStream",
    "GridStitcher",
    "crop_stream",
    "grid_starts",
]


def crop_stream(
    catalog: Catalog, cohort: Cohort | Iterable[str], options: CropOptions
) -> CropStream:
    """The crops of ``cohort`` (see ``Catalog.crops`` and docs/crops.md)."""
    return CropStream(catalog, cohort_ids(cohort), options)
