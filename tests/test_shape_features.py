"""The Feret diameter (mamamia_ingest._shape_features.feret_diameter) equals ITK's
``LabelShapeStatisticsImageFilter`` Feret diameter bit for bit: on edge cases (one voxel, lines,
planes, objects at the image edge, several components) and on random masks of several kinds,
with isotropic, anisotropic and odd spacings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

import mamamia_ingest._shape_features as shape
from mamamia_ingest._shape_features import feret_diameter, shape_features

SPACINGS: list[tuple[float, float, float]] = [
    (1.0, 1.0, 1.0),
    (0.7, 0.75, 2.0),
    (0.6640625, 0.6640625, 1.5),
    (3.3, 0.5, 0.8984375),
    (0.31, 2.7, 1.1),
]


def itk_feret(mask: np.ndarray[Any, Any], spacing: tuple[float, float, float]) -> float:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(spacing)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.SetNumberOfThreads(1)
    stats.ComputeFeretDiameterOn()
    stats.Execute(image)
    return float(stats.GetFeretDiameter(1))


def _edge_cases() -> dict[str, np.ndarray[Any, Any]]:
    cases: dict[str, np.ndarray[Any, Any]] = {}
    one = np.zeros((3, 4, 5), bool)
    one[1, 2, 3] = True
    cases["one voxel"] = one
    cases["one voxel filling the image"] = np.ones((1, 1, 1), bool)
    two = np.zeros((5, 6, 7), bool)
    two[0, 0, 0] = two[4, 5, 6] = True
    cases["two voxels in opposite corners"] = two
    for axis in range(3):
        line = np.zeros((9, 10, 11), bool)
        index: list[Any] = [4, 5, 5]
        index[axis] = slice(1, 8)
        line[tuple(index)] = True
        cases[f"a line along axis {axis}"] = line
    diagonal = np.zeros((12, 12, 12), bool)
    for i in range(12):
        diagonal[i, i, 11 - i] = True
    cases["a diagonal line"] = diagonal
    plane = np.zeros((3, 40, 50), bool)
    plane[1, 5:35, 3:47] = True
    cases["a plane (Qhull's flat case)"] = plane
    disk = np.zeros((30, 1, 30), bool)
    zz, xx = np.ogrid[:30, :30]
    disk[:, 0, :] = (zz - 14.5) ** 2 + (xx - 14.5) ** 2 < 14**2
    cases["a one-voxel-thick disk filling its image"] = disk
    box = np.zeros((20, 25, 30), bool)
    box[2:18, 3:22, 4:26] = True
    cases["a solid box (coplanar faces)"] = box
    cases["a full image (its border is the image edge)"] = np.ones((6, 7, 8), bool)
    parts = np.zeros((30, 30, 30), bool)
    parts[2:5, 2:5, 2:5] = True
    parts[20:28, 22:25, 1:3] = True
    parts[10, 29, 29] = True
    cases["three components"] = parts
    shell = np.zeros((25, 25, 25), bool)
    zz, yy, xx = np.indices(shell.shape)
    r2 = (zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 12) ** 2
    shell[(r2 <= 144) & (r2 >= 100)] = True
    cases["a hollow sphere"] = shell
    return cases


@pytest.mark.parametrize("name", sorted(_edge_cases()))
def test_edge_cases_equal_itk(name: str) -> None:
    mask = _edge_cases()[name]
    for spacing in SPACINGS:
        assert feret_diameter(mask.astype(np.uint8), spacing) == itk_feret(mask, spacing), spacing


def _random_mask(rng: np.random.Generator, kind: int) -> np.ndarray[Any, Any]:
    shape = tuple(int(s) for s in rng.integers(1, 26, 3))
    if kind == 0:  # speckle: many components, many border voxels
        return np.asarray(rng.random(shape) < rng.uniform(0.02, 0.5))
    if kind == 1:  # smooth blobs
        return np.asarray(ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.7, 3)) > 0.5)
    if kind == 2:  # an ellipsoid, often cut by the image edge
        zz, yy, xx = np.indices(shape)
        c = [rng.uniform(0, s) for s in shape]
        r = [rng.uniform(1, s) for s in shape]
        q = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2
        return np.asarray(q < 1)
    if kind == 3:  # one slice of speckle: flat
        m = np.zeros(shape, bool)
        m[int(rng.integers(0, shape[0]))] = rng.random(shape[1:]) < 0.6
        return m
    m = np.zeros(shape, bool)  # a few boxes
    for _ in range(int(rng.integers(1, 5))):
        a = [int(rng.integers(0, s)) for s in shape]
        b = [int(rng.integers(1, 7)) for _ in shape]
        m[a[0] : a[0] + b[0], a[1] : a[1] + b[1], a[2] : a[2] + b[2]] = True
    return m


@pytest.mark.parametrize("kind", range(5))
def test_random_masks_equal_itk(kind: int) -> None:
    rng = np.random.default_rng(100 + kind)
    checked = 0
    while checked < 60:
        mask = _random_mask(rng, kind)
        if not mask.any():
            continue
        spacing = SPACINGS[checked % len(SPACINGS)]
        if checked % 3 == 0:
            spacing = (
                float(rng.uniform(0.3, 4)),
                float(rng.uniform(0.3, 4)),
                float(rng.uniform(0.3, 4)),
            )
        got = feret_diameter(mask.astype(np.uint8), spacing)
        assert got == itk_feret(mask, spacing), (kind, mask.shape, spacing)
        checked += 1


def test_the_hull_path_is_taken_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tumour-like blob of thousands of border voxels: the hull leaves a few hundred.
    zz, yy, xx = np.indices((40, 60, 60))
    blob = ((zz - 20) / 15) ** 2 + ((yy - 28) / 25) ** 2 + ((xx - 31) / 22) ** 2 < 1
    blob |= ((zz - 10) / 6) ** 2 + ((yy - 45) / 9) ** 2 + ((xx - 50) / 8) ** 2 < 1
    kept: list[int] = []
    real = shape._hull_vertices

    def spy(points: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out = real(points)
        kept.append(len(out))
        return out

    monkeypatch.setattr(shape, "_hull_vertices", spy)
    for spacing in SPACINGS[:3]:
        assert feret_diameter(blob.astype(np.uint8), spacing) == itk_feret(blob, spacing)
    assert kept and all(0 < n < 2000 for n in kept)


def test_empty_mask() -> None:
    assert feret_diameter(np.zeros((3, 3, 3), np.uint8), (1.0, 1.0, 1.0)) == 0.0
    empty = shape_features(np.zeros((4, 4, 4), np.uint8), (1.0, 1.0, 1.0))
    assert empty["shape_feret_mm"] is None and empty["shape_components"] == 0


def test_shape_features_feret_is_itk_s_on_the_padded_crop() -> None:
    rng = np.random.default_rng(7)
    mask = (ndimage.gaussian_filter(rng.random((30, 40, 40)), 2.5) > 0.52).astype(np.uint8)
    spacing = (0.7, 0.75, 2.0)
    assert mask.any()
    assert shape_features(mask, spacing)["shape_feret_mm"] == itk_feret(mask, spacing)


@pytest.mark.parametrize("seed", range(3))
def test_components_are_itk_s_26_connected_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        shape = tuple(int(s) for s in rng.integers(1, 18, 3))
        mask = (rng.random(shape) < rng.uniform(0.05, 0.5)).astype(np.uint8)
        if not mask.any():
            continue
        image = sitk.GetImageFromArray(mask)
        itk = sitk.ConnectedComponentImageFilter()
        itk.FullyConnectedOn()
        itk.Execute(image)
        got = shape_features(mask, (0.7, 0.75, 2.0))["shape_components"]
        assert got == itk.GetObjectCount(), shape
