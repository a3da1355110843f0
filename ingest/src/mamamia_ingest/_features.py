"""Per-volume statistics and per-case derived features (tumour size, box, centroid, dice...).

Every value is a plain Python number or None: NaN and infinities never leave this module.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Sequence
from typing import Any

import crc32c
import numpy as np

_crc32: Any = zlib.crc32
try:  # the same CRC-32, ~4x faster (ISA-L)
    from isal import isal_zlib

    _crc32 = isal_zlib.crc32
except ImportError:  # pragma: no cover - isal is a declared dependency
    pass

__all__ = [
    "CHECKSUM_ALGORITHM",
    "CHECKSUM_ALGORITHMS",
    "EXACT_PERCENTILE_VOXELS",
    "check_mask_values",
    "checksum_algorithm",
    "dice",
    "enhancement_ratio",
    "intensity_stats",
    "mask_features",
    "percentiles",
    "percentiles_1_99",
    "voxel_checksum",
]

#: Volumes up to this many voxels get exact percentiles; bigger ones use a fixed strided
#: subsample of about this size (the same voxels on every run, so results are reproducible).
#: A full partition of a real phase costs about as much as decompressing it.
EXACT_PERCENTILE_VOXELS = 1 << 18


def _as_bool(mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A boolean view of a 0/1 uint8 mask (no copy), else a converted copy."""
    if mask.dtype == np.uint8:
        return mask.view(np.bool_)
    return mask.astype(bool, copy=False)


def finite(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite."""
    v = float(value)
    return v if math.isfinite(v) else None


#: The voxel checksum written now; ``sha256`` (layout 1) is still verified.
CHECKSUM_ALGORITHM = "crc32c+crc32"
CHECKSUM_ALGORITHMS = ("crc32c+crc32", "sha256")


def voxel_checksum(array: np.ndarray[Any, Any], algorithm: str = CHECKSUM_ALGORITHM) -> str:
    """``<algorithm>:<hex>`` of the voxel bytes in C order, little-endian.

    ``crc32c+crc32`` (the default): CRC-32C then CRC-32 (zlib's) of those bytes, 8 hex digits
    each: 64 bits that any changed byte changes, at ~5 GB/s (both are hardware CRCs) where
    sha256 runs at ~1.5: hashing was a tenth of the work of ingest beyond compression.
    ``sha256``: the checksum of layout 1 catalogs."""
    a = np.ascontiguousarray(array)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not _little()):
        a = a.astype(a.dtype.newbyteorder("<"))
    data = a.data.cast("B")
    if algorithm == "crc32c+crc32":
        # crc32c reads the buffer in place and releases the GIL (google-crc32c takes only
        # bytes: a copy of the volume); the same Castagnoli CRC (tests/test_crc32c.py).
        return f"crc32c+crc32:{crc32c.crc32c(data):08x}{_crc32(data):08x}"
    if algorithm == "sha256":
        return "sha256:" + hashlib.sha256(data).hexdigest()
    raise ValueError(f"unknown voxel checksum algorithm {algorithm!r}")


def checksum_algorithm(checksum: str) -> str | None:
    """The algorithm of a stored checksum (``"sha256:..."`` -> ``"sha256"``), or None."""
    name, sep, _ = checksum.partition(":")
    return name if sep and name in CHECKSUM_ALGORITHMS else None


def _little() -> bool:
    return bool(np.little_endian)


def intensity_stats(array: np.ndarray[Any, Any]) -> dict[str, float | None]:
    """mean, std (population), p1 and p99 (numpy's linear interpolation) of one volume."""
    flat = array.reshape(-1)
    if flat.size == 0:
        return {"mean": None, "std": None, "p1": None, "p99": None}
    if flat.dtype.kind in "iu" and flat.dtype.itemsize <= 2:
        total, squares, sample = _integer_sums(flat)
        # Exact integer sums: var = E[x^2] - E[x]^2.
        n = flat.size
        mean = total / n
        std = math.sqrt(max(squares - total * total / n, 0.0) / n)
    else:
        mean = float(flat.mean(dtype=np.float64))
        std = float(flat.std(dtype=np.float64))
        sample = flat if flat.size <= EXACT_PERCENTILE_VOXELS else flat[:: _step(flat.size)]
    p1, p99 = percentiles_1_99(sample)
    return {"mean": finite(mean), "std": finite(std), "p1": finite(p1), "p99": finite(p99)}


def _step(n: int) -> int:
    """The stride of the percentile subsample of ``n`` voxels (about EXACT_PERCENTILE_VOXELS)."""
    return -(-n // EXACT_PERCENTILE_VOXELS)


#: Voxels per block of the sums: a float64 copy of one block stays in the L2 cache.
_SUM_BLOCK = 1 << 18
#: Length of the dot products of the sums of squares: below OpenBLAS's threshold for threads
#: (10000), so each is one core's SIMD loop.
_DOT_ROW = 1 << 13


def _integer_sums(
    flat: np.ndarray[Any, Any],
) -> tuple[int, int, np.ndarray[Any, Any]]:
    """The sum and the sum of squares of 8/16-bit integers, exactly, and the strided percentile
    subsample, in one pass over the volume in cache-sized blocks.

    Each block is converted to float64 and summed there (SIMD, no int64 copy of the volume);
    its squares are summed as dot products of rows (BLAS: several times faster than einsum).
    Exact: a block's values are below 2**16 in magnitude and its squares below 2**32, so with
    2**18 voxels every partial sum, in any order, is an integer below 2**50 < 2**53."""
    n = flat.size
    step = 1 if n <= EXACT_PERCENTILE_VOXELS else _step(n)
    sample = flat if step == 1 else np.empty(-(-n // step), flat.dtype)
    buf = np.empty(min(n, _SUM_BLOCK), np.float64)
    total = squares = 0
    for start in range(0, n, _SUM_BLOCK):
        part = flat[start : start + _SUM_BLOCK]
        block = buf[: part.size]
        np.copyto(block, part)
        total += int(np.add.reduce(block))
        whole = part.size - part.size % _DOT_ROW
        if whole:
            rows = block[:whole].reshape(-1, 1, _DOT_ROW)
            squares += int(np.add.reduce(np.matmul(rows, rows.transpose(0, 2, 1)), axis=None))
        rest = block[whole:]
        squares += int(np.dot(rest, rest))
        if step > 1:  # flat[::step], gathered while the block is in cache
            first = -start % step
            picked = part[first::step]
            at = (start + first) // step
            sample[at : at + picked.size] = picked
    return total, squares, sample


_histogram_ok: bool | None = None


def percentiles_1_99(sample: np.ndarray[Any, Any]) -> tuple[float, float]:
    """``np.percentile(sample, [1, 99])``, bit for bit (``percentiles``)."""
    p1, p99 = percentiles(sample, (1.0, 99.0))
    return p1, p99


def percentiles(sample: np.ndarray[Any, Any], q: Sequence[float]) -> tuple[float, ...]:
    """``np.percentile(sample, q)``, bit for bit. For 8- and 16-bit integers the order
    statistics come from a histogram (a counting pass instead of numpy's partition, several
    times faster) and numpy's linear interpolation is replayed on them; checked once per
    process against numpy itself, and numpy is used if they ever differ."""
    global _histogram_ok
    if sample.dtype.kind not in "iu" or sample.dtype.itemsize > 2 or sample.size == 0:
        return _np_percentiles(sample, q)
    if _histogram_ok is None:
        _histogram_ok = _self_check()
    if not _histogram_ok:
        return _np_percentiles(sample, q)
    return _histogram_percentiles(sample, q)


def _np_percentiles(sample: np.ndarray[Any, Any], q: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in np.percentile(sample, list(q)))


def _histogram_percentiles(sample: np.ndarray[Any, Any], q: Sequence[float]) -> tuple[float, ...]:
    dt = sample.dtype
    bits = dt.itemsize * 8
    unsigned = np.dtype(f"u{dt.itemsize}")
    key = sample.view(unsigned)
    if dt.kind == "i":  # flip the sign bit: signed order becomes unsigned order
        key = key ^ unsigned.type(1 << (bits - 1))
    cum = np.cumsum(np.bincount(key, minlength=1 << bits))
    n = sample.size
    # numpy's "linear" method: virtual index (n - 1) * q, neighbours floor and floor + 1,
    # clamped to [0, n - 1], then _lerp (numpy/lib/_function_base_impl.py).
    virtual = (n - 1) * np.true_divide(list(q), 100)  # what np.percentile divides q into
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above] = -1
    nxt[above] = -1
    below = virtual < 0
    prev[below] = 0
    nxt[below] = 0
    prev_i = prev.astype(np.intp)
    next_i = nxt.astype(np.intp)
    gamma = np.asanyarray(virtual - prev_i, dtype=virtual.dtype)
    ranks = np.concatenate([prev_i, next_i]) % n
    bins = np.searchsorted(cum, ranks, side="right")
    values = bins.astype(unsigned)
    if dt.kind == "i":
        values = values ^ unsigned.type(1 << (bits - 1))
    values = values.view(dt)
    a, b = values[: len(q)], values[len(q) :]
    diff = b - a
    lerp = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=lerp, where=gamma >= 0.5, casting="unsafe")
    return tuple(float(v) for v in lerp)


def _self_check() -> bool:
    rng = np.random.default_rng(12345)
    samples: list[np.ndarray[Any, Any]] = [
        np.array([7], np.int16),
        np.array([-32768, 32767], np.int16),
        np.array([255, 0, 3], np.uint8),
        np.full(1000, -5, np.int8),
        rng.integers(-32768, 32768, 4099).astype(np.int16),
        rng.integers(0, 65536, 1001).astype(np.uint16),
        rng.normal(300, 80, 20011).astype(np.int16),
    ]
    qs = ((1.0, 99.0), (95.0,), (90.0, 50.0, 0.0, 100.0))
    try:
        return all(
            _histogram_percentiles(s, q) == _np_percentiles(s, q) for s in samples for q in qs
        )
    except Exception:  # any surprise from numpy internals: use numpy itself
        return False


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
    voxel_mm3 = float(np.prod(np.asarray(spacing_xyz, dtype=np.float64)))
    # The box first, from cheap "any" projections; counts and mean indices then only over
    # the box (a tumour is a small part of the volume), in exact integers.
    hit_z = np.flatnonzero(m.any(axis=(1, 2)))
    if hit_z.size == 0:
        out[f"{prefix}tumor_voxels"] = 0
        out[f"{prefix}tumor_volume_cm3"] = finite(0 * voxel_mm3 / 1000.0)
        return out
    z0, z1 = int(hit_z[0]), int(hit_z[-1]) + 1
    slab = m[z0:z1]
    hit_y = np.flatnonzero(slab.any(axis=(0, 2)))
    hit_x = np.flatnonzero(slab.any(axis=(0, 1)))
    y0, y1 = int(hit_y[0]), int(hit_y[-1]) + 1
    x0, x1 = int(hit_x[0]), int(hit_x[-1]) + 1
    box = m[z0:z1, y0:y1, x0:x1]
    per_zy = np.count_nonzero(box, axis=2)
    profiles = (
        per_zy.sum(axis=1),
        per_zy.sum(axis=0),
        np.count_nonzero(box, axis=(0, 1)),
    )
    n = int(profiles[0].sum())
    out[f"{prefix}tumor_voxels"] = n
    out[f"{prefix}tumor_volume_cm3"] = finite(n * voxel_mm3 / 1000.0)
    bbox_min = [z0, y0, x0]
    bbox_max = [z1, y1, x1]
    mean_index_zyx = [
        float(np.dot(np.arange(lo, lo + profile.size), profile) / n)
        for lo, profile in zip(bbox_min, profiles, strict=True)
    ]
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
