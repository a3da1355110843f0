"""The OME-Zarr 0.5 metadata of one case's image and labels, and a volume's geometry row."""

from __future__ import annotations

from typing import Any

from mamamia_ingest._nifti import HeaderInfo

__all__ = ["DIRECTION_TOL", "geometry_row", "half_shape", "multiscale_block"]

#: Direction cosines within this of each other are the same direction (phases, the identity).
DIRECTION_TOL = 1e-6


def half_shape(shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    t, z, y, x = shape
    return (t, -(-z // 2), -(-y // 2), -(-x // 2))


def multiscale_block(name: str, info: HeaderInfo) -> dict[str, Any]:
    sx, sy, sz = info.spacing_xyz
    identity = all(
        abs(d - e) <= DIRECTION_TOL
        for d, e in zip(info.direction, (1, 0, 0, 0, 1, 0, 0, 0, 1), strict=True)
    )
    datasets = []
    for level, factor in (("0", 1.0), ("1", 2.0)):
        transforms: list[dict[str, Any]] = [
            {"type": "scale", "scale": [1.0, sz * factor, sy * factor, sx * factor]}
        ]
        if identity:
            ox, oy, oz = info.origin_xyz
            transforms.append({"type": "translation", "translation": [0.0, oz, oy, ox]})
        datasets.append({"path": level, "coordinateTransformations": transforms})
    return {
        "name": name,
        "axes": [
            {"name": "t", "type": "time", "unit": "second"},
            {"name": "z", "type": "space", "unit": "millimeter"},
            {"name": "y", "type": "space", "unit": "millimeter"},
            {"name": "x", "type": "space", "unit": "millimeter"},
        ],
        "datasets": datasets,
    }


def geometry_row(info: HeaderInfo) -> dict[str, Any]:
    return {
        "shape": list(info.shape_zyx),
        "spacing_xyz": list(info.spacing_xyz),
        "origin_xyz": list(info.origin_xyz),
        "direction": list(info.direction),
        "orientation": info.orientation,
    }
