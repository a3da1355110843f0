"""The challenge's per-case segmentation metrics: DSC and the 95th-percentile Hausdorff distance.

Both follow the organisers' definitions exactly: label 1 against background, distances in voxel
units (spacing ignored), boundaries from SimpleITK's ``LabelContour`` with its defaults. HD95 is
computed inside the bounding box of the two masks' union (plus one voxel, so the contour is the
same as on the whole volume) and with KD-trees over the boundary voxels only: the same distances
as the organisers' whole-volume method, without the whole-volume passes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy.spatial import cKDTree

__all__ = ["HD_MAX", "dice", "hd95", "norm_hd"]

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


def dice(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """Dice similarity 2|A∩B| / (|A|+|B|) of label 1; 0.0 when both masks are empty (as scored)."""
    a = _as_bool(reference, "reference")
    b = _as_bool(prediction, "prediction")
    _check_shapes(a, b)
    both = int(np.count_nonzero(a & b))
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * both / total if total else 0.0


def _union_box(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> tuple[slice, ...] | None:
    """The union's bounding box grown by one voxel (clipped to the array), or None if empty."""
    box: list[slice] = []
    for axis in range(a.ndim):
        others = tuple(i for i in range(a.ndim) if i != axis)
        hit = np.flatnonzero(np.any(a, axis=others) | np.any(b, axis=others))
        if hit.size == 0:
            return None
        box.append(slice(max(int(hit[0]) - 1, 0), min(int(hit[-1]) + 2, a.shape[axis])))
    return tuple(box)


def _contour_points(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    # A copy, not GetArrayViewFromImage: a view would outlive the temporary contour image.
    contour = sitk.GetArrayFromImage(sitk.LabelContour(sitk.GetImageFromArray(mask.view(np.uint8))))
    return np.argwhere(contour > 0)


def hd95(reference: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """The challenge's HD95 in voxels: the larger of the two directed 95th percentiles.

    Distances run between the boundary voxels of the two masks (``sitk.LabelContour``). Both
    boundaries empty: 0.0; exactly one empty: ``math.inf``.
    """
    a = _as_bool(reference, "reference")
    b = _as_bool(prediction, "prediction")
    _check_shapes(a, b)
    box = _union_box(a, b)
    if box is None:
        return 0.0
    points_a = _contour_points(a[box])
    points_b = _contour_points(b[box])
    if len(points_a) == 0:
        return 0.0 if len(points_b) == 0 else math.inf
    if len(points_b) == 0:
        return math.inf
    to_a = cKDTree(points_a).query(points_b, k=1)[0]
    to_b = cKDTree(points_b).query(points_a, k=1)[0]
    return float(max(np.percentile(to_a, 95), np.percentile(to_b, 95)))


def norm_hd(hd: float) -> float:
    """NormHD = HD95 / 150, not clipped; 1.0 for an infinite HD95 (exactly one mask empty)."""
    return 1.0 if math.isinf(hd) else hd / HD_MAX
