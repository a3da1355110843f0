"""Tumour shape in physical units, from SimpleITK's ``LabelShapeStatisticsImageFilter``.

Computed on the expert mask's bounding box (with the volume's spacing; origin and direction do
not change any of these values). Definitions: docs/features.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from mamamia_ingest._features import finite
from mamamia_ingest._kinetic_features import mask_box

__all__ = ["SHAPE_COLUMNS", "shape_features"]

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
    stats.ComputeFeretDiameterOn()
    stats.Execute(image)
    volume = stats.GetPhysicalSize(1)
    surface = stats.GetPerimeter(1)
    components = sitk.ConnectedComponentImageFilter()
    components.SetNumberOfThreads(1)
    components.FullyConnectedOn()
    components.Execute(image)
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
    out["shape_feret_mm"] = finite(stats.GetFeretDiameter(1))
    out["shape_components"] = int(components.GetObjectCount())
    return out
