"""Reading one crop window from a lazy volume: padded borders, optional resampling.

A window is ``size`` target voxels per axis whose first voxel sits on source voxel ``start``
(integer, may be negative) and whose voxels step ``ratio = target_spacing / source_spacing``
source voxels apart. Target voxel ``i`` of an axis lies at continuous source index
``c = start + i * ratio``; it is inside the volume when ``-0.5 <= c < n - 0.5`` (the voxel's own
footprint, ITK's rule). Images are interpolated linearly (neighbours clamped at the edge), labels
take the nearest voxel (``floor(c + 0.5)``); target voxels outside are padding. Only the source
box the window needs is read. With ``ratio == 1`` this is plain slicing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AxisMap", "Window", "axis_map"]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AxisMap:
    """How the target voxels of one axis map onto one source axis of length ``n``."""

    start: int
    size: int
    ratio: float
    n: int
    lo: int  # first source index read
    hi: int  # one past the last source index read (lo == hi: nothing inside)
    valid: npt.NDArray[np.bool_]
    i0: npt.NDArray[np.intp]  # linear: lower neighbour, relative to lo
    i1: npt.NDArray[np.intp]  # linear: upper neighbour, relative to lo
    weight: FloatArray  # linear: weight of the upper neighbour
    nearest: npt.NDArray[np.intp]  # nearest voxel, relative to lo

    @property
    def identity(self) -> bool:
        return self.ratio == 1.0


def axis_map(start: int, size: int, ratio: float, n: int) -> AxisMap:
    coords = start + np.arange(size, dtype=np.float64) * ratio
    valid = (coords >= -0.5) & (coords < n - 0.5)
    floor = np.floor(coords).astype(np.intp)
    i0 = np.clip(floor, 0, n - 1)
    i1 = np.clip(floor + 1, 0, n - 1)
    nearest = np.clip(np.floor(coords + 0.5).astype(np.intp), 0, n - 1)
    weight = np.clip(coords - floor, 0.0, 1.0).astype(np.float32)
    if not valid.any():
        lo = hi = 0
    elif ratio == 1.0:
        lo, hi = max(start, 0), min(start + size, n)
    else:
        # The upper neighbour is only read where it carries weight.
        upper = np.where(weight > 0, i1, i0)
        lo = int(min(i0[valid].min(), nearest[valid].min()))
        hi = int(max(upper[valid].max(), nearest[valid].max())) + 1
    return AxisMap(
        start=start,
        size=size,
        ratio=ratio,
        n=n,
        lo=lo,
        hi=hi,
        valid=valid,
        i0=_local(i0, lo, hi),
        i1=_local(i1, lo, hi),
        weight=weight,
        nearest=_local(nearest, lo, hi),
    )


def _local(index: npt.NDArray[np.intp], lo: int, hi: int) -> npt.NDArray[np.intp]:
    # Padding voxels and weightless neighbours may fall outside the read box: clamp them in.
    local: npt.NDArray[np.intp] = np.clip(index - lo, 0, max(hi - lo - 1, 0))
    return local


class Window:
    """One crop window over a volume of spatial shape ``shape`` (z, y, x)."""

    def __init__(
        self,
        start: Sequence[int],
        size: Sequence[int],
        ratio: Sequence[float],
        shape: Sequence[int],
    ) -> None:
        self.start = tuple(int(v) for v in start)
        self.size = tuple(int(v) for v in size)
        self.axes = tuple(
            axis_map(self.start[a], self.size[a], float(ratio[a]), int(shape[a])) for a in range(3)
        )
        self.empty = any(ax.lo == ax.hi for ax in self.axes)
        self.identity = all(ax.identity for ax in self.axes)

    @property
    def source_box(self) -> tuple[slice, slice, slice]:
        """The source region the window reads."""
        z, y, x = (slice(ax.lo, ax.hi) for ax in self.axes)
        return (z, y, x)

    @property
    def inside(self) -> npt.NDArray[np.bool_]:
        """Which target voxels lie in the volume (the rest is padding), (Z, Y, X)."""
        vz, vy, vx = (ax.valid for ax in self.axes)
        inside: npt.NDArray[np.bool_] = vz[:, None, None] & vy[None, :, None] & vx[None, None, :]
        return inside

    @property
    def placement(self) -> tuple[slice, slice, slice]:
        """Identity windows: where the read box lands in the padded output."""
        z, y, x = (slice(ax.lo - ax.start, ax.hi - ax.start) for ax in self.axes)
        return (z, y, x)

    def sample_linear(self, region: npt.NDArray[Any]) -> FloatArray:
        """Resample a read region (..., z, y, x) onto the window, linearly; padding is 0."""
        lead = region.shape[:-3]
        out = np.zeros((*lead, *self.size), dtype=np.float32)
        if self.empty:
            return out
        if self.identity:
            out[(..., *self.placement)] = region
            return out
        data = region.astype(np.float32, copy=False)
        for a, ax in enumerate(self.axes):
            axis = data.ndim - 3 + a
            shape = [1] * data.ndim
            shape[axis] = ax.size
            weight = ax.weight.reshape(shape)
            low = np.take(data, ax.i0, axis=axis)
            high = np.take(data, ax.i1, axis=axis)
            data = low + (high - low) * weight
        out[...] = np.where(self.inside, data, np.float32(0))
        return out

    def sample_nearest(self, region: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
        """Resample a read region (z, y, x) onto the window, nearest voxel; padding is 0."""
        out = np.zeros(self.size, dtype=dtype)
        if self.empty:
            return out
        if self.identity:
            out[self.placement] = region
            return out
        nz, ny, nx = (ax.nearest for ax in self.axes)
        picked = region[np.ix_(nz, ny, nx)]
        out[...] = np.where(self.inside, picked, 0)
        return out
