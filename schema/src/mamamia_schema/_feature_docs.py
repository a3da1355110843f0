"""The derived per-case feature columns of ``cases``: types, units, descriptions, value ranges.

Ingest computes them (docs/ingest.md, docs/features.md); the server serves these docs with the
table's schema. Null, never NaN, where a value is undefined.
"""

from __future__ import annotations

import json

import pyarrow as pa

from ._arrow import field_metadata
from ._columns import ColumnDoc

__all__ = ["FEATURE_COLUMNS", "FEATURE_DOCS", "feature_arrow_schema"]

_ARROW = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "list[float]": pa.list_(pa.float64()),
    "list[integer]": pa.list_(pa.int64()),
}

# name, logical type, unit, description, minimum, maximum
_Spec = tuple[str, str, str | None, str, float | None, float | None]


def _mask_columns(prefix: str, which: str) -> list[_Spec]:
    return [
        (f"{prefix}tumor_voxels", "integer", "voxels", f"Voxels = 1 in the {which} mask.", 0, None),
        (
            f"{prefix}tumor_volume_cm3",
            "float",
            "cm3",
            f"{which.capitalize()} mask voxels x voxel volume.",
            0,
            None,
        ),
        (
            f"{prefix}tumor_bbox_min_zyx",
            "list[integer]",
            "voxel",
            f"Bounding box of the {which} mask, first index, array order (z, y, x).",
            0,
            None,
        ),
        (
            f"{prefix}tumor_bbox_max_zyx",
            "list[integer]",
            "voxel",
            f"Bounding box of the {which} mask, index past the end, array order (z, y, x).",
            0,
            None,
        ),
        (
            f"{prefix}tumor_centroid_xyz_mm",
            "list[float]",
            "mm",
            f"Centroid of the {which} mask in LPS millimetres (x, y, z).",
            None,
            None,
        ),
    ]


_STAT = {"mean": "mean", "median": "median", "p90": "90th percentile"}

_SPECS: list[_Spec] = [
    *_mask_columns("", "expert"),
    *_mask_columns("auto_", "automatic"),
    (
        "auto_expert_dice",
        "float",
        None,
        "Dice overlap of the automatic and expert masks.",
        0,
        1,
    ),
    (
        "enhancement_ratio",
        "float",
        None,
        "Mean expert-tumour intensity of phase 1 over that of phase 0.",
        0,
        None,
    ),
    (
        "kinetic_early_phase",
        "integer",
        None,
        "Phase used as early post-contrast (nearest 150 s after phase 0).",
        1,
        None,
    ),
    (
        "kinetic_late_phase",
        "integer",
        None,
        "Phase used as late post-contrast (after the early one, nearest 450 s).",
        2,
        None,
    ),
    (
        "kinetic_phase_fallback",
        "boolean",
        None,
        "True when acquisition times were missing: phase 1 and the last phase were used.",
        None,
        None,
    ),
    *(
        (
            f"pe_{key}",
            "float",
            "%",
            f"Percent enhancement 100 (S_early - S0) / S0, {text} over the expert tumour.",
            -100,
            None,
        )
        for key, text in _STAT.items()
    ),
    (
        "pe_peak",
        "float",
        "%",
        "Peak percent enhancement: 95th percentile of PE over the expert tumour.",
        -100,
        None,
    ),
    *(
        (
            f"ser_{key}",
            "float",
            None,
            f"Signal enhancement ratio (S_early - S0) / (S_late - S0), {text} over the FTV voxels.",
            0,
            None,
        )
        for key, text in _STAT.items()
    ),
    (
        "ftv_cm3",
        "float",
        "cm3",
        "Functional tumour volume: expert-tumour voxels with PE >= 70 %, pre-contrast signal "
        "above the background threshold and SER >= 0, isolated voxels removed.",
        0,
        None,
    ),
    (
        "persistent_fraction",
        "float",
        None,
        "Fraction of FTV voxels with SER < 0.9 (persistent curve).",
        0,
        1,
    ),
    (
        "plateau_fraction",
        "float",
        None,
        "Fraction of FTV voxels with 0.9 <= SER <= 1.1 (plateau curve).",
        0,
        1,
    ),
    (
        "washout_fraction",
        "float",
        None,
        "Fraction of FTV voxels with SER > 1.1 (washout curve).",
        0,
        1,
    ),
    (
        "kinetic_curve",
        "list[float]",
        "signal",
        "Mean expert-tumour intensity of each phase, in phase order (times: acquisition_times).",
        None,
        None,
    ),
    ("auto_pe_mean", "float", "%", "pe_mean over the automatic mask.", -100, None),
    ("auto_ser_mean", "float", None, "ser_mean over the automatic mask's FTV voxels.", 0, None),
    ("auto_ftv_cm3", "float", "cm3", "ftv_cm3 within the automatic mask.", 0, None),
    (
        "auto_washout_fraction",
        "float",
        None,
        "washout_fraction within the automatic mask.",
        0,
        1,
    ),
    (
        "shape_volume_cm3",
        "float",
        "cm3",
        "Expert-tumour volume (SimpleITK physical size).",
        0,
        None,
    ),
    (
        "shape_surface_mm2",
        "float",
        "mm2",
        "Expert-tumour surface area (SimpleITK perimeter of the 3D label).",
        0,
        None,
    ),
    (
        "shape_sphericity",
        "float",
        None,
        "pi^(1/3) (6 V)^(2/3) / A: about 1 for a sphere, less for other shapes (a coarse "
        "voxel surface can give a little more than 1).",
        0,
        None,
    ),
    (
        "shape_elongation",
        "float",
        None,
        "SimpleITK elongation: sqrt of the largest over the middle principal moment (>= 1).",
        1,
        None,
    ),
    (
        "shape_flatness",
        "float",
        None,
        "SimpleITK flatness: sqrt of the middle over the smallest principal moment (>= 1).",
        1,
        None,
    ),
    (
        "shape_feret_mm",
        "float",
        "mm",
        "Maximum 3D diameter (Feret) between expert-tumour voxel centres.",
        0,
        None,
    ),
    (
        "shape_components",
        "integer",
        None,
        "Connected components of the expert mask (26-connectivity).",
        0,
        None,
    ),
]

#: The feature columns, in table order.
FEATURE_COLUMNS: tuple[str, ...] = tuple(s[0] for s in _SPECS)

#: Docs of every feature column (``minimum``/``maximum``: the possible range, None if open).
FEATURE_DOCS: dict[str, ColumnDoc] = {
    name: ColumnDoc(
        name=name,
        type=kind,
        unit=unit,
        description=text,
        derived=True,
        minimum=None if lo is None else float(lo),
        maximum=None if hi is None else float(hi),
    )
    for name, kind, unit, text, lo, hi in _SPECS
}


def feature_arrow_schema() -> pa.Schema:
    """The feature columns as Arrow fields, with unit, description and range metadata."""
    fields = []
    for name, doc in FEATURE_DOCS.items():
        meta = field_metadata(
            unit=doc.unit, description=doc.description, kind=doc.type, values=None, derived=True
        )
        if doc.minimum is not None:
            meta[b"minimum"] = json.dumps(doc.minimum).encode()
        if doc.maximum is not None:
            meta[b"maximum"] = json.dumps(doc.maximum).encode()
        fields.append(pa.field(name, _ARROW[doc.type], metadata=meta))
    return pa.schema(fields)
