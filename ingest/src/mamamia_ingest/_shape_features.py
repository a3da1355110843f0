"""Tumour shape in physical units, from SimpleITK's ``LabelShapeStatisticsImageFilter``.

Computed on the expert mask's bounding box (with the volume's spacing; origin and direction do
not change any of these values). Definitions: docs/features.md. The Feret diameter is computed
here (``feret_diameter``), to the bit what ITK computes, without ITK's comparison of every pair
of border voxels (most of the filter's time); the components are scipy's count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from mamamia_ingest._features import finite
from mamamia_ingest._kinetic_features import mask_box

__all__ = ["SHAPE_COLUMNS", "feret_diameter", "shape_features"]

#: The shape columns of the cases table.
SHAPE_COLUMNS: tuple[str, ...] = (
    "shape_volume_cm3",
    "shape_surface_mm2",
    "shape_sphericity",
    "shape_elongation",
    "shape_flatness",
    "shape_feret_mm",
    "shape_components",
)


#: scipy's structuring element for 26-connectivity.
_FULLY_CONNECTED = np.ones((3, 3, 3), np.bool_)


def _crop(mask: npt.NDArray[Any]) -> npt.NDArray[np.uint8] | None:
    box = mask_box(mask)
    if box is None:
        return None
    # One voxel of background around the object, so its border is a real surface.
    return np.pad(mask[box].astype(np.uint8), 1)


def shape_features(mask: npt.NDArray[Any] | None, spacing_xyz: Sequence[float]) -> dict[str, Any]:
    """Volume, surface, sphericity, elongation, flatness, Feret diameter and components."""
    out: dict[str, Any] = dict.fromkeys(SHAPE_COLUMNS)
    if mask is None:
        return out
    crop = _crop(mask)
    if crop is None:
        out["shape_volume_cm3"] = 0.0
        out["shape_components"] = 0
        return out
    image = sitk.GetImageFromArray(crop)
    image.SetSpacing([float(s) for s in spacing_xyz])
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.SetNumberOfThreads(1)  # a small box: threads cost more than they save
    stats.ComputePerimeterOn()
    stats.Execute(image)
    volume = stats.GetPhysicalSize(1)
    surface = stats.GetPerimeter(1)
    out["shape_volume_cm3"] = finite(volume / 1000.0)
    out["shape_surface_mm2"] = finite(surface) if surface > 0 else None
    if surface > 0:
        out["shape_sphericity"] = finite(math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / surface)
    # Principal moments are degenerate for one voxel or a line: ITK reports 0 or inf there.
    for key, value in (
        ("shape_elongation", stats.GetElongation(1)),
        ("shape_flatness", stats.GetFlatness(1)),
    ):
        out[key] = finite(value) if value > 0 else None
    out["shape_feret_mm"] = finite(feret_diameter(crop, spacing_xyz))
    # 26-connected components: what ITK's ConnectedComponentImageFilter counts with
    # FullyConnectedOn, several times faster.
    out["shape_components"] = int(ndimage.label(crop, structure=_FULLY_CONNECTED)[1])
    return out


#: Up to this many border voxels, every pair is compared directly (no hull).
_ALL_PAIRS = 64
#: Pairs compared per step (bounds the memory of the pairwise differences).
_PAIRS_PER_STEP = 1 << 20


def feret_diameter(mask: npt.NDArray[Any], spacing_xyz: Sequence[float]) -> float:
    """ITK's Feret diameter of the ones of a ``(z, y, x)`` 0/1 mask, bit for bit.

    ITK (``ShapeLabelMapFilter::ComputeFeretDiameter``) takes the border voxels (those with a
    voxel outside the object among their 26 neighbours or beyond the image edge) and the
    largest of ``sum_i (d_i * spacing_i)^2`` (index differences d, summed x, y, z in that
    order) over every pair of them, then its square root. The farthest pair of a point set is
    two vertices of its convex hull, and scaling the axes maps the hull's vertices onto
    themselves, so only the hull vertices of the object's voxel indices (all border voxels)
    are compared, with the same arithmetic in the same order."""
    m = mask.view(np.bool_) if mask.dtype == np.uint8 else mask.astype(bool)
    # A hull vertex is the first or the last voxel of the object on each of its three axis
    # lines (any other lies between two object voxels), and such a voxel is a border voxel:
    # these candidates hold every hull vertex, at a fraction of the border's size.
    ends = m & _line_ends(m, 0) & _line_ends(m, 1) & _line_ends(m, 2)
    points = np.argwhere(ends)  # (z, y, x) indices
    if len(points) < 2:
        return 0.0
    if len(points) > _ALL_PAIRS:
        points = points[_hull_vertices(points)]
    # x, y, z as ITK sums them.
    xyz = points[:, ::-1].astype(np.float64)
    spacing = [float(s) for s in spacing_xyz]
    best = 0.0
    step = max(1, _PAIRS_PER_STEP // len(xyz))
    for start in range(0, len(xyz), step):
        part = xyz[start : start + step]
        length: npt.NDArray[np.float64] | None = None
        for axis in range(3):
            d = (part[:, None, axis] - xyz[None, :, axis]) * spacing[axis]
            d *= d  # std::pow(d, 2) of a double: the correctly rounded d * d
            length = d if length is None else np.add(length, d, out=length)
        assert length is not None
        best = max(best, float(length.max()))
    return math.sqrt(best)


def _line_ends(m: npt.NDArray[np.bool_], axis: int) -> npt.NDArray[np.bool_]:
    """True at the first and at the last True of every line of ``m`` along ``axis`` (and
    maybe where a line has none: the caller keeps only voxels of ``m``)."""
    n = m.shape[axis]
    ends = np.zeros(m.shape, np.bool_)
    first = np.expand_dims(np.argmax(m, axis=axis), axis)
    last = n - 1 - np.expand_dims(np.argmax(np.flip(m, axis=axis), axis=axis), axis)
    np.put_along_axis(ends, first, True, axis)
    np.put_along_axis(ends, last, True, axis)
    return ends


def _hull_vertices(points: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Indices of the convex hull's vertices of integer points (a superset when they are flat:
    joggled input keeps every true vertex, whose margin is a lattice step)."""
    coords = points.astype(np.float64)
    try:
        return np.asarray(ConvexHull(coords).vertices, dtype=np.intp)
    except QhullError:  # all in one plane or on one line
        return np.asarray(ConvexHull(coords, qhull_options="QJ").vertices, dtype=np.intp)
