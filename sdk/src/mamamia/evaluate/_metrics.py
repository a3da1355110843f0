"""The challenge's per-case segmentation metrics: DSC and the 95th-percentile Hausdorff distance.

Both follow the organisers' definitions exactly: label 1 against background, distances in voxel
units (spacing ignored), boundaries as SimpleITK's ``LabelContour`` with its defaults marks them.
Each mask's boundary is found inside its own bounding box (plus one voxel, so the answer is the
whole volume's) and the distances come from KD-trees over the boundary voxels only: the same
numbers as the organisers' whole-volume method, without its whole-volume passes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

__all__ = ["HD_MAX", "dice", "dice_hd95", "hd95", "norm_hd"]

#: The challenge's normalisation of HD95 (voxels): NormHD = HD95 / HD_MAX.
HD_MAX = 150.0


def _as_bool(mask: npt.ArrayLike, name: str) -> npt.NDArray[np.bool_]:
    array = np.asarray(mask)
    if array.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D (z, y, x) mask, got shape {array.shape}")
    return array if array.dtype == np.bool_ else array == 1


def _check_shapes(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: reference {a.shape}, prediction {b.shape}")


def _box(mask: npt.NDArray[np.bool_]) -> tuple[slice, ...] | None:
    """The bounding box of ``mask``'s voxels, or None; the full passes work on z first."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    z = slice(int(zs[0]), int(zs[-1]) + 1)
    ys = np.flatnonzero(mask[z].any(axis=(0, 2)))
    xs = np.flatnonzero(mask[z].any(axis=(0, 1)))
    return z, slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)


def _overlap(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...] | None:
    box = tuple(
        slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a, b, strict=True)
    )
    return None if any(s.start >= s.stop for s in box) else box


def _contour_points(mask: npt.NDArray[np.bool_], box: tuple[slice, ...]) -> npt.NDArray[np.intp]:
    """The voxels ``sitk.LabelContour`` (defaults: face neighbours) marks, as (z, y, x) indices.

    A voxel is on the contour when one of its six face neighbours inside the image is
    background; beyond the image edge counts as foreground, as in ITK. The box is grown by one
    voxel (those voxels are background), so the crop's answer is the whole volume's.
    """
    grown = tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, mask.shape, strict=True)
    )
    crop = mask[grown]
    inner = crop.copy()
    for axis in range(3):
        size = crop.shape[axis]
        low = tuple(slice(0, size - 1) if i == axis else slice(None) for i in range(3))
        high = tuple(slice(1, size) if i == axis else slice(None) for i in range(3))
        inner[low] &= crop[high]
        inner[high] &= crop[low]
    points = np.argwhere(crop & ~inner)
    return points + np.array([s.start for s in grown], dtype=points.dtype)


def dice_hd95(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> tuple[float, float]:
    """DSC and HD95 of label 1 in one go (what the evaluation computes per case).

    DSC = 2|A∩B| / (|A|+|B|), 0.0 when both masks are empty. HD95 in voxels: the larger of the
    two directed 95th percentiles of the distances between the boundary voxels of the masks
    (``sitk.LabelContour``); 0.0 when both boundaries are empty, ``math.inf`` when exactly one is.
    Both count only inside the masks' bounding boxes, and the distances come from KD-trees over
    the boundary voxels: the organisers' numbers without their whole-volume passes.
    """
    a = _as_bool(reference, "reference")
    b = _as_bool(prediction, "prediction")
    _check_shapes(a, b)
    box_a, box_b = _box(a), _box(b)
    size_a = int(np.count_nonzero(a[box_a])) if box_a else 0
    size_b = int(np.count_nonzero(b[box_b])) if box_b else 0
    both = _overlap(box_a, box_b) if box_a and box_b else None
    common = int(np.count_nonzero(a[both] & b[both])) if both else 0
    dsc = 2.0 * common / (size_a + size_b) if size_a + size_b else 0.0
    points_a = _contour_points(a, box_a) if box_a else np.empty((0, 3), np.intp)
    points_b = _contour_points(b, box_b) if box_b else np.empty((0, 3), np.intp)
    if len(points_a) == 0 or len(points_b) == 0:
        return dsc, 0.0 if len(points_a) == len(points_b) else math.inf
    to_a = cKDTree(points_a).query(points_b, k=1)[0]
    to_b = cKDTree(points_b).query(points_a, k=1)[0]
    return dsc, float(max(np.percentile(to_a, 95), np.percentile(to_b, 95)))


def dice(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """Dice similarity 2|A∩B| / (|A|+|B|) of label 1; 0.0 when both masks are empty (as scored)."""
    a = _as_bool(reference, "reference")
    b = _as_bool(prediction, "prediction")
    _check_shapes(a, b)
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / total if total else 0.0


def hd95(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """The challenge's HD95 in voxels (see ``dice_hd95``): 0.0 for two empty boundaries,
    ``math.inf`` for exactly one."""
    return dice_hd95(reference, prediction)[1]


def norm_hd(hd: float) -> float:
    """NormHD = HD95 / 150, not clipped; 1.0 for an infinite HD95 (exactly one mask empty)."""
    return 1.0 if math.isinf(hd) else hd / HD_MAX
