"""The OME-Zarr 0.5 metadata of one case's image and labels, a volume's geometry row, and the
rule for phases sharing one grid."""

from __future__ import annotations

from typing import Any

from mamamia_ingest._nifti import HeaderInfo

__all__ = [
    "DIRECTION_TOL",
    "SPACING_TOL_MM",
    "geometry_mismatch",
    "geometry_row",
    "half_shape",
    "multiscale_block",
]

#: Direction cosines within this of each other are the same direction (phases, the identity).
DIRECTION_TOL = 1e-6
#: Spacings and origins (mm) within this of each other are the same.
SPACING_TOL_MM = 1e-4


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


def geometry_mismatch(ref: HeaderInfo, other: HeaderInfo) -> str | None:
    """Why ``other`` (a later phase) does not share phase 0's grid, or None."""
    if ref.size_xyz != other.size_xyz:
        return f"size {other.size_xyz} differs from phase 0's {ref.size_xyz}"
    checks = (
        ("spacing", ref.spacing_xyz, other.spacing_xyz, SPACING_TOL_MM),
        ("origin", ref.origin_xyz, other.origin_xyz, SPACING_TOL_MM),
        ("direction", ref.direction, other.direction, DIRECTION_TOL),
    )
    for name, a, b, tol in checks:
        if any(abs(x - y) > tol for x, y in zip(a, b, strict=True)):
            return f"{name} {tuple(b)} differs from phase 0's {tuple(a)} (tolerance {tol})"
    return None
