"""Lazy volumes: numpy slicing that reads only the chunks it touches."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mamamia._atomic import atomic_write
from mamamia._errors import BoxOutOfRange, InvalidIndex, InvalidRequest
from mamamia._geometry import affine_lps, affine_ras, crop_origin_xyz

__all__ = ["ArrayLike", "Geometry", "Volume", "box_range"]


class ArrayLike(Protocol):
    """What a Volume needs of its backing array (a zarr.Array satisfies it)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    def __getitem__(self, key: Any) -> Any: ...


@dataclass(frozen=True)
class Geometry:
    """Physical geometry as SimpleITK reports it (LPS, x-y-z order)."""

    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]
    orientation: str


def box_range(axis: str, start: int | None, stop: int | None, size: int) -> tuple[int, int]:
    """``[start, stop)`` of one axis of ``size`` voxels: the one box rule of the SDK and server.

    A range must lie inside the volume and hold at least one voxel; a range that leaves it,
    even partly, is refused (never clipped), so the box returned is always the box asked for.
    Negative bounds count from the end, as in numpy; ``None`` means the axis's start or end.
    """
    lo = 0 if start is None else (start + size if start < 0 else start)
    hi = size if stop is None else (stop + size if stop < 0 else stop)
    shown = f"{axis}={'' if start is None else start}:{'' if stop is None else stop}"
    if not 0 <= lo <= size or not 0 <= hi <= size:
        inside_lo, inside_hi = max(lo, 0), min(hi, size)
        part = (
            f"; the part inside is {axis}={inside_lo}:{inside_hi}"
            if inside_lo < inside_hi
            else "; no part of it is inside"
        )
        raise BoxOutOfRange(
            f"{shown} leaves the volume: axis {axis} has {size} voxels (valid 0:{size}){part}"
        )
    if lo >= hi:
        raise BoxOutOfRange(
            f"{shown} is empty: a range start:stop on axis {axis} needs start < stop"
        )
    return lo, hi


def _check_item(item: Any, axis: str, size: int) -> Any:
    """One axis's key entry checked against the box rule (integers and step-1 slices)."""
    if isinstance(item, slice):
        if item.step not in (None, 1):
            raise InvalidIndex(f"axis {axis}: a step of {item.step} is not supported; use 1")
        for bound in (item.start, item.stop):
            if bound is not None and not isinstance(bound, int | np.integer):
                raise InvalidIndex(f"axis {axis}: slice bound {bound!r} is not an integer")
        start = None if item.start is None else int(item.start)
        stop = None if item.stop is None else int(item.stop)
        lo, hi = box_range(axis, start, stop, size)
        return slice(lo, hi)
    if isinstance(item, int | np.integer) and not isinstance(item, bool):
        index = int(item)
        if not -size <= index < size:
            raise BoxOutOfRange(
                f"index {index} is outside axis {axis}: it has {size} voxels "
                f"(valid 0..{size - 1}, or -{size}..-1 from the end)"
            )
        return index + size if index < 0 else index
    return item  # integer arrays and masks: zarr's own (fancy) indexing


def _expand_key(key: Any, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[Any, ...]:
    """Normalise a numpy-style key to one checked entry per axis (Ellipsis expanded)."""
    ndim = len(shape)
    items = key if isinstance(key, tuple) else (key,)
    if sum(1 for item in items if item is Ellipsis) > 1:
        raise InvalidIndex("an index can only have a single ellipsis ('...')")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = ndim - (len(items) - 1)
        items = items[:at] + (slice(None),) * fill + items[at + 1 :]
    if len(items) > ndim:
        raise InvalidIndex(
            f"too many indices: {len(items)} for a {ndim}-d volume of axes {', '.join(axes)}"
        )
    items = tuple(items) + (slice(None),) * (ndim - len(items))
    return tuple(_check_item(i, a, n) for i, a, n in zip(items, axes, shape, strict=True))


class Volume:
    """One lazily read volume of a case.

    Images are indexed ``(phase, z, y, x)``, masks ``(z, y, x)``. ``volume[1, 10:74]`` reads only
    the chunks that the selection touches. Geometry follows SimpleITK: ``spacing_xyz``,
    ``origin_xyz`` and ``direction`` in LPS; ``spacing`` is the same spacing in array order.
    """

    def __init__(
        self,
        array: ArrayLike,
        geometry: Geometry,
        *,
        patient_id: str,
        kind: str,
        phase_times_s: Sequence[float | None] = (),
    ) -> None:
        self._array = array
        self._geometry = geometry
        self.patient_id = patient_id
        self.kind = kind
        self._is_mask = kind != "image"
        self.phase_times_s = tuple(phase_times_s)

    def __repr__(self) -> str:
        return (
            f"<Volume {self.patient_id} {self.kind} shape={self.shape} dtype={self.dtype} "
            f"spacing={self.spacing} {self.orientation}>"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """Array order: (phase, z, y, x) for images, (z, y, x) for masks."""
        full = tuple(int(n) for n in self._array.shape)
        return full[1:] if self._is_mask else full

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of voxels (of all phases, for an image)."""
        return int(np.prod(self.shape))

    @property
    def axes(self) -> tuple[str, ...]:
        """Axis names in array order: ("phase", "z", "y", "x") or ("z", "y", "x")."""
        return ("z", "y", "x") if self._is_mask else ("phase", "z", "y", "x")

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        """The whole volume, read, so that numpy functions take a Volume (``np.sum(mask)``)."""
        if copy is False:
            raise ValueError(
                "a Volume is read from its chunks, so it cannot be viewed without a copy"
            )
        data = self.to_numpy()
        return data if dtype is None else data.astype(dtype, copy=False)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(str(self._array.dtype))

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """(z, y, x)."""
        z, y, x = self.shape[-3:]
        return (z, y, x)

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        return self._geometry.spacing_xyz

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in array order (z, y, x), matching the axes you slice."""
        x, y, z = self._geometry.spacing_xyz
        return (z, y, x)

    @property
    def origin_xyz(self) -> tuple[float, float, float]:
        return self._geometry.origin_xyz

    @property
    def direction(self) -> tuple[float, ...]:
        return self._geometry.direction

    @property
    def orientation(self) -> str:
        return self._geometry.orientation

    @property
    def geometry(self) -> Geometry:
        return self._geometry

    def affine(self, ras: bool = False) -> npt.NDArray[np.float64]:
        """The 4x4 from NIfTI-style index (i, j, k) = (x, y, z) to mm (LPS, or RAS as nibabel)."""
        g = self._geometry
        make = affine_ras if ras else affine_lps
        return make(g.spacing_xyz, g.origin_xyz, g.direction)

    def origin_of(self, start_zyx: Sequence[int]) -> tuple[float, float, float]:
        """LPS position of the voxel at array index ``start_zyx``."""
        g = self._geometry
        return crop_origin_xyz(g.spacing_xyz, g.origin_xyz, g.direction, start_zyx)

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        """Numpy indexing within the box rule (:func:`box_range`): out-of-range is refused."""
        items = _expand_key(key, self.shape, self.axes)
        if self._is_mask:
            items = (0, *items)
        return np.asarray(self._array[items])

    async def read_async(self, key: Any) -> npt.NDArray[Any]:
        """``volume[key]`` for async code: the chunk decodes run off the event loop."""
        items = _expand_key(key, self.shape, self.axes)
        if self._is_mask:
            items = (0, *items)
        reader = getattr(self._array, "getitem_async", None)
        if reader is not None:
            return np.asarray(await reader(items))
        return np.asarray(await asyncio.to_thread(self._array.__getitem__, items))

    def to_numpy(self) -> npt.NDArray[Any]:
        """The whole volume in memory."""
        return self[...]

    def _phase_array(self, phase: int | None) -> npt.NDArray[Any]:
        if self._is_mask:
            if phase is not None:
                raise InvalidRequest(f"a {self.kind} mask has no phases (phase={phase})")
            return self.to_numpy()
        if phase is None:
            raise InvalidRequest("pick a phase: image.to_sitk(phase=1) (images are 4-D)")
        if not 0 <= phase < self.shape[0]:
            raise InvalidRequest(f"phase {phase} is outside 0..{self.shape[0] - 1}")
        return self[phase]

    def to_sitk(self, phase: int | None = None) -> Any:
        """A SimpleITK image with the exact geometry (one phase for images)."""
        try:
            import SimpleITK as sitk
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("to_sitk needs SimpleITK: pip install 'mamamia[sitk]'") from exc
        image = sitk.GetImageFromArray(self._phase_array(phase))
        image.SetSpacing(self.spacing_xyz)
        image.SetOrigin(self.origin_xyz)
        image.SetDirection(self.direction)
        return image

    def to_nifti(self, path: str | Path, phase: int | None = None) -> Path:
        """Write a .nii(.gz) whose affine puts the voxels where they lie (all phases if None)."""
        import nibabel as nib

        target = Path(path)
        if self._is_mask or phase is not None:
            data = np.ascontiguousarray(self._phase_array(phase).transpose(2, 1, 0))
        else:
            data = np.ascontiguousarray(self.to_numpy().transpose(3, 2, 1, 0))
        image = nib.Nifti1Image(data, self.affine(ras=True))
        image.header.set_xyzt_units("mm", "sec")
        with atomic_write(target) as tmp:
            nib.save(image, str(tmp))
        return target
