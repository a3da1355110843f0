"""Per-volume statistics and per-case derived features (tumour size, box, centroid, dice...).

Every value is a plain Python number or None: NaN and infinities never leave this module.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "EXACT_PERCENTILE_VOXELS",
    "FEATURE_COLUMNS",
    "check_mask_values",
    "dice",
    "enhancement_ratio",
    "intensity_stats",
    "mask_features",
    "voxel_checksum",
]

#: Volumes up to this many voxels get exact percentiles; bigger ones use a fixed strided
#: subsample of about this size (the same voxels on every run, so results are reproducible).
#: A full partition of a real phase costs about as much as decompressing it.
EXACT_PERCENTILE_VOXELS = 1 << 18

#: Derived per-case columns, in table order (the ``auto_`` ones come from the automatic mask).
FEATURE_COLUMNS: tuple[str, ...] = (
    "tumor_voxels",
    "tumor_volume_cm3",
    "tumor_bbox_min_zyx",
    "tumor_bbox_max_zyx",
    "tumor_centroid_xyz_mm",
    "auto_tumor_voxels",
    "auto_tumor_volume_cm3",
    "auto_tumor_bbox_min_zyx",
    "auto_tumor_bbox_max_zyx",
    "auto_tumor_centroid_xyz_mm",
    "auto_expert_dice",
    "enhancement_ratio",
)


def _as_bool(mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A boolean view of a 0/1 uint8 mask (no copy), else a converted copy."""
    if mask.dtype == np.uint8:
        return mask.view(np.bool_)
    return mask.astype(bool, copy=False)


def finite(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite."""
    v = float(value)
    return v if math.isfinite(v) else None


def voxel_checksum(array: np.ndarray[Any, Any]) -> str:
    """``sha256:<hex>`` of the voxel bytes in C order, little-endian."""
    a = np.ascontiguousarray(array)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not _little()):
        a = a.astype(a.dtype.newbyteorder("<"))
    return "sha256:" + hashlib.sha256(a.data.cast("B")).hexdigest()


def _little() -> bool:
    return bool(np.little_endian)


def intensity_stats(array: np.ndarray[Any, Any]) -> dict[str, float | None]:
    """mean, std (population), p1 and p99 (numpy's linear interpolation) of one volume."""
    flat = array.reshape(-1)
    if flat.size == 0:
        return {"mean": None, "std": None, "p1": None, "p99": None}
    if flat.dtype.kind in "iu" and flat.dtype.itemsize <= 2:
        # Exact integer sums (no float64 copy of the volume): var = E[x^2] - E[x]^2.
        n = flat.size
        total = int(flat.sum(dtype=np.int64))
        squares = int(np.einsum("i,i->", flat, flat, dtype=np.int64))
        mean = total / n
        std = math.sqrt(max(squares - total * total / n, 0.0) / n)
    else:
        mean = float(flat.mean(dtype=np.float64))
        std = float(flat.std(dtype=np.float64))
    sample = flat
    if flat.size > EXACT_PERCENTILE_VOXELS:
        step = -(-flat.size // EXACT_PERCENTILE_VOXELS)
        sample = flat[::step]
    p1, p99 = np.percentile(sample, [1.0, 99.0])
    return {"mean": finite(mean), "std": finite(std), "p1": finite(p1), "p99": finite(p99)}


def check_mask_values(mask: np.ndarray[Any, Any]) -> list[float]:
    """Up to five values in ``mask`` that are neither 0 nor 1 (empty when the mask is valid)."""
    if mask.dtype.kind in "ui" and (
        mask.size == 0 or (int(mask.min()) >= 0 and int(mask.max()) <= 1)
    ):
        return []
    bad = mask[(mask != 0) & (mask != 1)]
    if bad.size == 0:
        return []
    values = np.unique(bad[: 1 << 20])[:5]
    return [float(v) for v in values]


def mask_features(
    mask: np.ndarray[Any, Any] | None,
    spacing_xyz: Sequence[float],
    origin_xyz: Sequence[float],
    direction: Sequence[float],
    prefix: str = "",
) -> dict[str, Any]:
    """Tumour voxel count, volume, half-open bounding box (z, y, x) and LPS centroid (x, y, z)."""
    keys = ("voxels", "volume_cm3", "bbox_min_zyx", "bbox_max_zyx", "centroid_xyz_mm")
    out: dict[str, Any] = {f"{prefix}tumor_{k}": None for k in keys}
    if mask is None:
        return out
    m = _as_bool(mask)
    n = int(np.count_nonzero(m))
    out[f"{prefix}tumor_voxels"] = n
    voxel_mm3 = float(np.prod(np.asarray(spacing_xyz, dtype=np.float64)))
    out[f"{prefix}tumor_volume_cm3"] = finite(n * voxel_mm3 / 1000.0)
    if n == 0:
        return out
    bbox_min: list[int] = []
    bbox_max: list[int] = []
    mean_index_zyx: list[float] = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        profile = np.count_nonzero(m, axis=others)
        hit = np.flatnonzero(profile)
        bbox_min.append(int(hit[0]))
        bbox_max.append(int(hit[-1]) + 1)
        mean_index_zyx.append(float(np.dot(np.arange(profile.size), profile) / n))
    out[f"{prefix}tumor_bbox_min_zyx"] = bbox_min
    out[f"{prefix}tumor_bbox_max_zyx"] = bbox_max
    ijk = np.array(mean_index_zyx[::-1], dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    point = np.asarray(origin_xyz, dtype=np.float64) + d @ (
        np.asarray(spacing_xyz, dtype=np.float64) * ijk
    )
    centroid = [finite(v) for v in point]
    out[f"{prefix}tumor_centroid_xyz_mm"] = None if None in centroid else centroid
    return out


def dice(a: np.ndarray[Any, Any] | None, b: np.ndarray[Any, Any] | None) -> float | None:
    """Dice overlap of two binary masks; None when either is missing or both are empty."""
    if a is None or b is None:
        return None
    aa = _as_bool(a)
    bb = _as_bool(b)
    total = int(np.count_nonzero(aa)) + int(np.count_nonzero(bb))
    if total == 0:
        return None
    return finite(2.0 * int(np.count_nonzero(aa & bb)) / total)


def enhancement_ratio(mean_phase1: float | None, mean_phase0: float | None) -> float | None:
    """Mean tumour intensity in phase 1 over phase 0; None when undefined."""
    if mean_phase1 is None or mean_phase0 is None or mean_phase0 == 0:
        return None
    return finite(mean_phase1 / mean_phase0)


def masked_mean(array: np.ndarray[Any, Any], mask: np.ndarray[Any, Any] | None) -> float | None:
    """Mean of ``array`` over a binary mask; None when the mask is missing or empty."""
    if mask is None:
        return None
    values = array[_as_bool(mask)]
    if values.size == 0:
        return None
    return finite(values.mean(dtype=np.float64))
