"""Grid tiling for inference and the stitcher that puts per-tile predictions back together."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mamamia._errors import InvalidRequest

__all__ = ["GridStitcher", "axis_starts", "grid_starts"]


def axis_starts(n: int, size: int, overlap: int) -> list[int]:
    """Tile starts along one axis: step ``size - overlap``, the last tile flush with the end.

    An axis shorter than the tile gets one tile at 0, padded past the end.
    """
    if n <= size:
        return [0]
    step = size - overlap
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def grid_starts(
    shape: Sequence[int], size: Sequence[int], overlap: Sequence[int]
) -> list[tuple[int, int, int]]:
    """Every tile start (z, y, x) covering a volume of ``shape``, in C order."""
    per_axis = [axis_starts(int(shape[a]), int(size[a]), int(overlap[a])) for a in range(3)]
    return [(z, y, x) for z, y, x in itertools.product(*per_axis)]


class GridStitcher:
    """Averages per-tile predictions back into one volume.

    ``GridStitcher(shape)`` takes the volume's spatial shape (z, y, x); ``add(prediction, index)``
    takes a tile's prediction (``(..., Z, Y, X)``, any leading channel axes; torch tensors and
    numpy arrays alike) and the crop's ``index``; parts of the tile outside the volume (padding)
    are dropped. ``result()`` is the voxel-wise mean over the tiles that covered each voxel.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        if len(shape) != 3 or any(int(n) <= 0 for n in shape):
            raise InvalidRequest(f"GridStitcher needs a spatial shape (z, y, x), not {shape!r}")
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self._sum: npt.NDArray[np.float64] | None = None
        self._count = np.zeros(self.shape, dtype=np.uint16)
        self.tiles = 0

    def add(self, prediction: Any, index: Sequence[int]) -> None:
        data = _to_numpy(prediction)
        if data.ndim < 3:
            raise InvalidRequest(
                f"a tile prediction needs (..., Z, Y, X) axes, not shape {data.shape}"
            )
        lead, tile = data.shape[:-3], data.shape[-3:]
        if self._sum is None:
            self._sum = np.zeros((*lead, *self.shape), dtype=np.float64)
        elif self._sum.shape[:-3] != lead:
            raise InvalidRequest(
                f"tile prediction has leading axes {lead}, earlier tiles had {self._sum.shape[:-3]}"
            )
        start = [int(v) for v in index]
        target: list[slice] = []
        source: list[slice] = []
        for a in range(3):
            lo, hi = max(start[a], 0), min(start[a] + tile[a], self.shape[a])
            if lo >= hi:
                return  # the tile lies wholly outside the volume
            target.append(slice(lo, hi))
            source.append(slice(lo - start[a], hi - start[a]))
        into: tuple[Any, ...] = (Ellipsis, *target)
        take: tuple[Any, ...] = (Ellipsis, *source)
        self._sum[into] += data[take]
        self._count[tuple(target)] += 1
        self.tiles += 1

    @property
    def complete(self) -> bool:
        """Whether every voxel has been covered by at least one tile."""
        return bool(self._count.all())

    def result(self, dtype: Any = np.float32) -> npt.NDArray[Any]:
        """The stitched volume ``(..., z, y, x)``; raises if some voxel was never covered."""
        if self._sum is None:
            raise InvalidRequest("no tile prediction was added to the stitcher")
        missing = int((self._count == 0).sum())
        if missing:
            raise InvalidRequest(
                f"{missing} voxels of the {self.shape} volume were covered by no tile"
            )
        mean = self._sum / self._count
        return mean.astype(dtype, copy=False)


def _to_numpy(value: Any) -> npt.NDArray[Any]:
    detach = getattr(value, "detach", None)
    if callable(detach):  # a torch tensor: off the graph and onto the CPU first
        value = detach().cpu().numpy()
    return np.asarray(value)
