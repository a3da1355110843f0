"""Per-volume statistics and mask features against straightforward numpy references."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mamamia_ingest import _features
from mamamia_ingest._features import (
    EXACT_PERCENTILE_VOXELS,
    _integer_sums,
    intensity_stats,
    mask_features,
    percentiles,
    percentiles_1_99,
)


def _samples() -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(11)
    out: list[np.ndarray[Any, Any]] = [
        np.array([3], np.int16),
        np.array([-32768, 32767], np.int16),
        np.array([0, 255], np.uint8),
        np.array([-128, 127, 0], np.int8),
        np.full(999, 65535, np.uint16),
    ]
    for dtype in ("int16", "uint16", "int8", "uint8"):
        info = np.iinfo(dtype)
        for n in (1, 2, 3, 99, 100, 101, 1001, 40_000):
            out.append(rng.integers(info.min, int(info.max) + 1, n).astype(dtype))
            mid = rng.uniform(info.min, info.max)
            normal = np.clip(rng.normal(mid, 30, n), info.min, info.max).astype(dtype)
            out.append(normal[:: 1 + n % 3])  # strided, as the ingest sample is
    return out


def test_percentiles_equal_numpy_bit_for_bit() -> None:
    for sample in _samples():
        want = np.percentile(sample, [1.0, 99.0])
        got = percentiles_1_99(sample)
        assert got == (float(want[0]), float(want[1])), (sample.dtype, sample.size)


# numpy's scalar form warns where b - a of two extreme 8/16-bit values wraps (as ours does).
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("q", [95.0, 90.0, 50.0, 0.0, 100.0, 99.9, 0.1])
def test_any_percentile_equals_numpy_s_scalar_form_bit_for_bit(q: float) -> None:
    # The kinetic features' background threshold asks for np.percentile(sample, 95.0).
    for sample in _samples():
        assert percentiles(sample, (q,)) == (float(np.percentile(sample, q)),), sample.dtype
    assert _features._histogram_ok is True  # the histogram path, not numpy's fallback


def test_percentiles_of_other_types_are_numpy_s() -> None:
    x = np.random.default_rng(2).normal(0, 1, 1000).astype(np.float32)
    want = np.percentile(x, [1.0, 99.0])
    assert percentiles_1_99(x) == (float(want[0]), float(want[1]))


def test_intensity_stats() -> None:
    a = np.random.default_rng(5).normal(200, 90, (9, 40, 33)).astype(np.int16)
    stats = intensity_stats(a)
    assert stats["mean"] == pytest.approx(a.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(a.std(), rel=1e-9)
    assert stats["p1"] == np.percentile(a, 1)
    assert stats["p99"] == np.percentile(a, 99)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int8", "uint8"])
@pytest.mark.parametrize("n", [1, 40_000, 3 * (1 << 18) - 1001, 5 * (1 << 18) + 12_345])
def test_intensity_stats_sums_are_exact(dtype: str, n: int) -> None:
    # Several blocks of the float64 sums, a ragged last one, sample strides (3, 6) that do not
    # divide the block, the extreme values (the largest squares): exact integer sums, and
    # the same strided percentile sample as before.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(n)
    a = rng.integers(info.min, int(info.max) + 1, n).astype(dtype)
    a[: n // 3] = info.max
    a[-(n // 5) :] = info.min
    ints = a.astype(np.int64)
    total, squares = int(ints.sum()), int((ints * ints).sum())
    got_total, got_squares, sample = _integer_sums(a)
    assert (got_total, got_squares) == (total, squares)
    step = -(-n // EXACT_PERCENTILE_VOXELS)
    np.testing.assert_array_equal(sample, a[::step])
    stats = intensity_stats(a.reshape(1, 1, n))
    assert stats["mean"] == total / n
    assert stats["std"] == math.sqrt(max(squares - total * total / n, 0.0) / n)
    want = np.percentile(a[::step], [1.0, 99.0])
    assert (stats["p1"], stats["p99"]) == (float(want[0]), float(want[1]))


def _reference(mask: np.ndarray[Any, Any], spacing: Any, origin: Any, direction: Any) -> Any:
    idx = np.argwhere(mask != 0)
    if idx.size == 0:
        return 0, None, None, None
    lo = [int(v) for v in idx.min(axis=0)]
    hi = [int(v) + 1 for v in idx.max(axis=0)]
    ijk = idx.mean(axis=0)[::-1]
    point = np.asarray(origin) + np.asarray(direction).reshape(3, 3) @ (np.asarray(spacing) * ijk)
    return len(idx), lo, hi, point


@pytest.mark.parametrize("seed", range(12))
def test_mask_features_against_argwhere(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 25, 3))
    mask = np.zeros(shape, np.uint8)
    if seed % 4 == 1:
        mask[tuple(int(rng.integers(0, s)) for s in shape)] = 1
    elif seed % 4 == 2:
        mask[...] = rng.random(shape) < 0.3
    elif seed % 4 == 3:
        corner = [int(rng.integers(0, s)) for s in shape]
        mask[tuple(slice(c, c + int(rng.integers(1, 7))) for c in corner)] = 1
    geo = ((0.7, 0.9, 2.5), (10.0, -20.0, 5.0), (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    got = mask_features(mask, *geo, prefix="auto_")
    n, lo, hi, point = _reference(mask, *geo)
    assert got["auto_tumor_voxels"] == n
    assert got["auto_tumor_volume_cm3"] == pytest.approx(n * 0.7 * 0.9 * 2.5 / 1000)
    assert got["auto_tumor_bbox_min_zyx"] == lo
    assert got["auto_tumor_bbox_max_zyx"] == hi
    if point is None:
        assert got["auto_tumor_centroid_xyz_mm"] is None
    else:
        assert got["auto_tumor_centroid_xyz_mm"] == pytest.approx(list(point), abs=1e-9)
