"""Geometry in the project's convention (docs/design.md): arrays (z, y, x), physical LPS (x, y, z)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["affine_lps", "affine_ras", "crop_origin_xyz"]


def affine_lps(
    spacing_xyz: Sequence[float], origin_xyz: Sequence[float], direction: Sequence[float]
) -> npt.NDArray[np.float64]:
    """The 4x4 mapping a NIfTI-style index (i, j, k) = (x, y, z) to LPS millimetres."""
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = matrix @ np.diag(np.asarray(spacing_xyz, dtype=float))
    affine[:3, 3] = np.asarray(origin_xyz, dtype=float)
    return affine


def affine_ras(
    spacing_xyz: Sequence[float], origin_xyz: Sequence[float], direction: Sequence[float]
) -> npt.NDArray[np.float64]:
    """The same map into RAS millimetres, as nibabel reports a file's affine."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ affine_lps(spacing_xyz, origin_xyz, direction)


def crop_origin_xyz(
    spacing_xyz: Sequence[float],
    origin_xyz: Sequence[float],
    direction: Sequence[float],
    start_zyx: Sequence[int],
) -> tuple[float, float, float]:
    """The LPS position of the voxel at array index ``start_zyx`` (the first voxel of a crop)."""
    index_xyz = np.array([start_zyx[2], start_zyx[1], start_zyx[0], 1.0])
    point = affine_lps(spacing_xyz, origin_xyz, direction) @ index_xyz
    return (float(point[0]), float(point[1]), float(point[2]))
