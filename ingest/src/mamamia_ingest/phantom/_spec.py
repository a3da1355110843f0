"""From a clinical-table record to the geometry of one phantom case.

Geometry rules (docs/phantom.md):
- axial rows are LPS with the identity direction: size (x, y, z) = (image_columns, image_rows,
  num_slices), spacing (pixel_spacing[0], pixel_spacing[1], slice_thickness);
- sagittal rows are RAS, direction diag(-1, -1, 1), slices run left-right along x:
  size (x, y, z) = (num_slices, image_columns, image_rows),
  spacing (slice_thickness, pixel_spacing[0], pixel_spacing[1]);
- ``scale`` makes each axis ``max(1, round(n * scale))`` voxels with spacing ``s * n / new_n``, so
  the physical extent ``n * s`` of every axis is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mamamia import MamamiaError
from mamamia_schema import ClinicalRecord

__all__ = [
    "DIRECTION_AXIAL",
    "DIRECTION_SAGITTAL",
    "CaseSpec",
    "MissingValueError",
    "PhantomError",
    "phase_times",
    "scale_axis",
    "spec_from_record",
]

DIRECTION_AXIAL: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
DIRECTION_SAGITTAL: tuple[float, ...] = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)

# Evenly spaced phases use this step when the row gives fewer than two times to take it from.
DEFAULT_PHASE_STEP_S = 90.0


class PhantomError(MamamiaError, ValueError):
    """Bad input to the phantom writer; the message names the case, column or parameter."""

    def __init__(self, message: str, *, case: str | None = None, column: str | None = None):
        super().__init__(message)
        self.case = case
        self.column = column


class MissingValueError(PhantomError):
    """A column the phantom needs is empty in the record (or the reader nulled a bad value)."""


def _missing(case: str, column: str, what: str = "") -> MissingValueError:
    return MissingValueError(
        f"case {case}: column {column} is empty; the phantom needs it{what}",
        case=case,
        column=column,
    )


@dataclass(frozen=True)
class CaseSpec:
    """What one table row fixes about its phantom case, after ``scale``."""

    patient_id: str
    dataset: str
    view: str
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    source_size_xyz: tuple[int, int, int]
    source_spacing_xyz: tuple[float, float, float]
    direction: tuple[float, ...]
    num_phases: int
    times_s: tuple[float, ...]
    fat_suppressed: bool
    bilateral: bool = True  # both breasts imaged (False: the row says bilateral_mri = 0)

    @property
    def extent_xyz(self) -> tuple[float, float, float]:
        """Physical length of each axis in mm (``n * spacing``), the same at every scale."""
        n, s = self.source_size_xyz, self.source_spacing_xyz
        return (n[0] * s[0], n[1] * s[1], n[2] * s[2])

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return (self.size_xyz[2], self.size_xyz[1], self.size_xyz[0])

    @property
    def orientation(self) -> str:
        return "LPS" if self.direction == DIRECTION_AXIAL else "RAS"


def scale_axis(n: int, spacing: float, scale: float) -> tuple[int, float]:
    """One axis under ``scale``: ``max(1, round(n * scale))`` voxels, same physical extent."""
    new_n = max(1, round(n * scale))
    return new_n, spacing * n / new_n


def phase_times(times: list[float] | None, num_phases: int) -> tuple[float, ...]:
    """Seconds after the pre-contrast phase for each of ``num_phases`` phases.

    The row's own times when it has at least ``num_phases`` of them; otherwise evenly spaced
    times whose step is the row's mean step (or 90 s when it gives fewer than two times).
    """
    if times is not None and len(times) >= num_phases:
        return tuple(float(t) for t in times[:num_phases])
    step = DEFAULT_PHASE_STEP_S
    if times is not None and len(times) >= 2 and times[-1] > times[0]:
        step = (float(times[-1]) - float(times[0])) / (len(times) - 1)
    return tuple(i * step for i in range(num_phases))


def _text(value: object) -> str | None:
    """The plain string of an enum member or a string; None when empty."""
    if value is None:
        return None
    inner = getattr(value, "value", value)
    text = str(inner).strip()
    return text or None


def _number(case: str, column: str, value: object) -> float:
    if isinstance(value, bool) or value is None:
        raise _missing(case, column)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PhantomError(f"case {case}: column {column} = {value!r} is not a number") from None


def _positive_int(case: str, column: str, value: object) -> int:
    number = _number(case, column, value)
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise PhantomError(f"case {case}: column {column} = {value!r} is not a positive integer")
    return int(number)


def _positive_float(case: str, column: str, value: object) -> float:
    number = _number(case, column, value)
    if not math.isfinite(number) or number <= 0:
        raise PhantomError(f"case {case}: column {column} = {value!r} is not a positive number")
    return number


def _float_list(case: str, column: str, value: object) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise PhantomError(f"case {case}: column {column} = {value!r} is not a list of numbers")
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise PhantomError(f"case {case}: column {column} = {value!r} holds a non-number") from None


def spec_from_record(record: ClinicalRecord, scale: float) -> CaseSpec:
    """The phantom geometry of one table record."""
    case = record.patient_id.strip().upper()
    view = _text(record.view)
    if view is None:
        raise _missing(case, "view", " (axial or sagittal)")
    view = view.lower()
    if view not in ("axial", "sagittal"):
        raise PhantomError(f"case {case}: column view = {view!r} is not axial or sagittal")
    dataset = _text(record.dataset) or case.split("_", 1)[0]
    rows = _positive_int(case, "image_rows", record.image_rows)
    columns = _positive_int(case, "image_columns", record.image_columns)
    slices = _positive_int(case, "num_slices", record.num_slices)
    thickness = _positive_float(case, "slice_thickness", record.slice_thickness)
    pixel = _float_list(case, "pixel_spacing", record.pixel_spacing)
    if pixel is None:
        raise _missing(case, "pixel_spacing")
    if len(pixel) < 2 or not all(math.isfinite(p) and p > 0 for p in pixel[:2]):
        raise PhantomError(
            f"case {case}: column pixel_spacing = {pixel!r} needs two positive numbers"
        )
    times = _float_list(case, "acquisition_times", record.acquisition_times)
    phases_value = record.num_phases
    if phases_value is None and times:
        num_phases = len(times)
    else:
        num_phases = _positive_int(case, "num_phases", phases_value)
    if view == "axial":
        size = (columns, rows, slices)
        spacing = (pixel[0], pixel[1], thickness)
        direction = DIRECTION_AXIAL
    else:
        size = (slices, columns, rows)
        spacing = (thickness, pixel[0], pixel[1])
        direction = DIRECTION_SAGITTAL
    scaled = [scale_axis(n, s, scale) for n, s in zip(size, spacing, strict=True)]
    fat = record.fat_suppressed
    return CaseSpec(
        patient_id=case,
        dataset=dataset.upper(),
        view=view,
        size_xyz=(scaled[0][0], scaled[1][0], scaled[2][0]),
        spacing_xyz=(scaled[0][1], scaled[1][1], scaled[2][1]),
        source_size_xyz=size,
        source_spacing_xyz=spacing,
        direction=direction,
        num_phases=num_phases,
        times_s=phase_times(times, num_phases),
        fat_suppressed=bool(fat) if fat is not None else True,
        bilateral=record.bilateral_mri is not False,
    )
