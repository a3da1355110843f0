"""Models of the other raw files (splits, quality scores, per-case JSON) and of the catalog."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._arrow import FORMAT_VERSION, model_arrow_schema
from ._enums import PATIENT_ID_PATTERN, QualityRating, Split, VolumeKind
from ._lenient import validate_lenient
from ._problems import Problem, Severity, show_value

__all__ = [
    "CITATIONS",
    "LICENCE",
    "BreastCoordinates",
    "CatalogManifest",
    "Citation",
    "ImagingData",
    "PatientClinicalData",
    "PatientInfo",
    "PrimaryLesion",
    "QualityScore",
    "SplitAssignment",
    "TableRef",
    "VolumeInfo",
    "catalog_version_of",
    "quality_arrow_schema",
    "splits_arrow_schema",
    "validate_patient_info",
    "validate_quality_row",
    "volumes_arrow_schema",
]

_ID_RE = re.compile(PATIENT_ID_PATTERN)


def _case_id(value: str) -> str:
    value = value.strip().upper()
    if not _ID_RE.match(value):
        raise ValueError(f"{value!r} is not a case id like DUKE_001")
    return value


def _u(unit: str) -> dict[str, Any]:
    return {"unit": unit}


# ---------------------------------------------------------------------------------------------
# train_test_splits.csv


class SplitAssignment(BaseModel):
    """One row of the `splits` table: a case and its official split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient_id: str = Field(description="Case id (uppercase).")
    split: Split = Field(description="Official MAMA-MIA split: train or test.")

    @field_validator("patient_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _case_id(value)


def splits_arrow_schema() -> pa.Schema:
    """The Arrow schema of the splits table (patient_id, split), derived from the model."""
    return model_arrow_schema(SplitAssignment, table="splits")


# ---------------------------------------------------------------------------------------------
# (preliminary_)automatic_segmentations_quality_scores.csv


class QualityScore(BaseModel):
    """Two experts' ratings of a case's preliminary automatic segmentation.

    Unknown columns (Dice, Hausdorff, ... whose names are not published) are kept in `extra`,
    as floats where they parse, else as text.
    """

    model_config = ConfigDict(extra="forbid")

    patient_id: str = Field(description="Case id (uppercase).")
    expert_1_qs: QualityRating | None = Field(
        None, description="First expert's rating of the automatic segmentation."
    )
    expert_2_qs: QualityRating | None = Field(
        None, description="Second expert's rating of the automatic segmentation."
    )
    extra: dict[str, float | str | None] = Field(default_factory=dict)

    @field_validator("patient_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _case_id(value)

    @field_validator("expert_1_qs", "expert_2_qs", mode="before")
    @classmethod
    def _rating(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().capitalize()
            return text or None
        return value

    @field_validator("extra", mode="before")
    @classmethod
    def _numbers(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k): _number_or_text(v) for k, v in value.items()}
        return value


def _number_or_text(value: object) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def quality_arrow_schema(extra_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """The `quality` table; `extra_columns` maps unknown source columns to 'float' or 'string'."""
    extra = {
        name: pa.float64() if kind == "float" else pa.string()
        for name, kind in (extra_columns or {}).items()
    }
    return model_arrow_schema(QualityScore, table="quality", extra_columns=extra)


def validate_quality_row(
    raw: Mapping[str, object], row_number: int | None = None, *, file: str | None = None
) -> tuple[QualityScore | None, list[Problem]]:
    """One row of the quality-scores CSV (keys: lowercase column names); unknown keys -> extra."""
    known = {"patient_id", "expert_1_qs", "expert_2_qs"}
    case_raw = raw.get("patient_id")
    case = str(case_raw).strip().upper() if case_raw not in (None, "") else None
    data: dict[str, Any] = {k: raw.get(k) for k in known if k in raw}
    data["extra"] = {k: v for k, v in raw.items() if k not in known}
    for key in ("expert_1_qs", "expert_2_qs"):
        value = data.get(key)
        if isinstance(value, str) and not value.strip():
            data[key] = None
    if case is None:
        return None, [
            Problem(
                severity=Severity.WARNING,
                file=file,
                column="patient_id",
                rule="missing_id",
                message=f"row {row_number}: row has no patient_id; row skipped (rule missing_id).",
                row=row_number,
            )
        ]
    return validate_lenient(
        QualityScore, data, case=case, file=file, row=row_number, required=("patient_id",)
    )


# ---------------------------------------------------------------------------------------------
# patient_info_files/<case>.json (second release)


class _Open(BaseModel):
    # Unknown keys are kept (the full key list is unpublished) and dumped back.
    model_config = ConfigDict(extra="allow")


class BreastCoordinates(_Open):
    """The breast's bounding box as the JSON gives it.

    Convention (official sample code: `array[x_min:x_max, y_min:y_max, z_min:z_max]` on
    `sitk.GetArrayFromImage`): `x_*` index numpy axis 0 of the SimpleITK array (our z),
    `y_*` axis 1 (our y), `z_*` axis 2 (our x); ranges are half-open `[min, max)` as slices.
    Stored as given; `bbox_min_zyx`/`bbox_max_zyx` give the box in the project's (z, y, x).
    """

    x_min: int | None = None
    x_max: int | None = None
    y_min: int | None = None
    y_max: int | None = None
    z_min: int | None = None
    z_max: int | None = None

    @property
    def complete(self) -> bool:
        return None not in (self.x_min, self.x_max, self.y_min, self.y_max, self.z_min, self.z_max)

    @property
    def bbox_min_zyx(self) -> tuple[int, int, int] | None:
        """Inclusive start of the box in array order (z, y, x); None if incomplete."""
        if not self.complete:
            return None
        return (int(self.x_min or 0), int(self.y_min or 0), int(self.z_min or 0))

    @property
    def bbox_max_zyx(self) -> tuple[int, int, int] | None:
        """Exclusive stop of the box in array order (z, y, x); None if incomplete."""
        if not self.complete:
            return None
        return (int(self.x_max or 0), int(self.y_max or 0), int(self.z_max or 0))


class PatientClinicalData(_Open):
    age: int | None = None
    menopausal_status: str | None = None  # `menopause` in the table
    breast_density: str | None = None


class PrimaryLesion(_Open):
    breast_coordinates: BreastCoordinates | None = None
    pcr: bool | None = None
    tumor_subtype: str | None = None


class ImagingData(_Open):
    bilateral: bool | None = None
    dataset: str | None = None
    site: str | None = None
    scanner_manufacturer: str | None = None
    scanner_model: str | None = None
    field_strength: float | None = Field(None, json_schema_extra=_u("T"))
    echo_time: float | None = Field(None, json_schema_extra=_u("ms"))
    repetition_time: float | None = Field(None, json_schema_extra=_u("ms"))


class PatientInfo(_Open):
    """patient_info_files/<case>.json; unknown keys at every level are kept."""

    patient_id: str
    clinical_data: PatientClinicalData | None = None
    primary_lesion: PrimaryLesion | None = None
    imaging_data: ImagingData | None = None

    @field_validator("patient_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _case_id(value)

    @property
    def breast_coordinates(self) -> BreastCoordinates | None:
        return None if self.primary_lesion is None else self.primary_lesion.breast_coordinates


def validate_patient_info(
    data: object, *, file: str | None = None, expected_id: str | None = None
) -> tuple[PatientInfo | None, list[Problem]]:
    """A parsed per-case JSON object: bad values become null; unknown keys are kept.

    `expected_id` (from the file name) is compared with the JSON's patient_id (a warning if
    they differ; the JSON's id wins, and it is filled from the name when missing).
    """
    case = expected_id.strip().upper() if expected_id else None
    if not isinstance(data, Mapping):
        return None, [
            Problem(
                severity=Severity.ERROR,
                case=case,
                file=file,
                rule="type",
                message=f"{file or case}: the JSON is not an object; file skipped (rule type).",
            )
        ]
    problems: list[Problem] = []
    work = dict(data)
    raw_id = work.get("patient_id")
    if (raw_id is None or (isinstance(raw_id, str) and not raw_id.strip())) and case:
        work["patient_id"] = case
        problems.append(
            Problem(
                severity=Severity.WARNING,
                case=case,
                file=file,
                column="patient_id",
                rule="missing_id",
                message=f"{case}: patient_id missing; taken from the file name (rule missing_id).",
            )
        )
    elif case and isinstance(raw_id, str) and raw_id.strip().upper() != case:
        problems.append(
            Problem(
                severity=Severity.WARNING,
                case=case,
                file=file,
                column="patient_id",
                value=show_value(raw_id),
                rule="cross_field",
                message=(
                    f"{case}: patient_id = {show_value(raw_id)} differs from the file name "
                    "(rule cross_field)."
                ),
            )
        )
    json_case = str(work.get("patient_id") or case or "").strip().upper() or None
    info, more = validate_lenient(
        PatientInfo, work, case=json_case, file=file, required=("patient_id",)
    )
    return info, problems + more


# ---------------------------------------------------------------------------------------------
# volumes


_ORIENTATION = re.compile(r"^[LRPAIS]{3}$")


class VolumeInfo(BaseModel):
    """One stored volume: a DCE phase or a mask, with its SimpleITK geometry (LPS, x-y-z)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str = Field(description="Case id (uppercase).")
    kind: VolumeKind = Field(description="image (a DCE phase), expert or automatic (masks).")
    phase: int | None = Field(
        None, ge=0, description="DCE phase index (0 = pre-contrast); null for masks."
    )
    zarr_path: str | None = Field(
        None, description="Full-resolution array, relative to the catalog root."
    )
    shape: tuple[int, int, int] = Field(description="Array shape in array order (z, y, x).")
    dtype: str = Field(description="NumPy dtype name of the stored voxels (int16, uint8, ...).")
    spacing_xyz: tuple[float, float, float] = Field(
        description="Voxel spacing along x, y, z, as SimpleITK GetSpacing().",
        json_schema_extra=_u("mm"),
    )
    origin_xyz: tuple[float, float, float] = Field(
        description="Physical position of voxel (0, 0, 0), LPS, as SimpleITK GetOrigin().",
        json_schema_extra=_u("mm"),
    )
    direction: tuple[float, ...] = Field(
        description="Direction cosines, 9 numbers row-major, as SimpleITK GetDirection()."
    )
    orientation: str = Field(
        description="3-letter orientation code (LPS, RAS, ...) of DICOMOrientImageFilter."
    )
    acquisition_time_s: float | None = Field(
        None,
        description="Acquisition time of the phase after the pre-contrast phase; null for masks.",
        json_schema_extra=_u("s"),
    )
    checksum: str | None = Field(None, description="Content checksum of the stored voxels.")
    mean: float | None = Field(None, description="Mean voxel value.")
    std: float | None = Field(None, description="Standard deviation of the voxel values.")
    p1: float | None = Field(None, description="1st percentile of the voxel values.")
    p99: float | None = Field(None, description="99th percentile of the voxel values.")

    @field_validator("patient_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _case_id(value)

    @field_validator("direction")
    @classmethod
    def _nine(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 9:
            raise ValueError(f"direction needs 9 numbers, got {len(value)}")
        return value

    @field_validator("orientation")
    @classmethod
    def _code(cls, value: str) -> str:
        value = value.strip().upper()
        if not _ORIENTATION.match(value):
            raise ValueError(f"orientation {value!r} is not a 3-letter code like LPS")
        return value

    @model_validator(mode="after")
    def _phase_only_for_images(self) -> VolumeInfo:
        if self.kind is VolumeKind.IMAGE and self.phase is None:
            raise ValueError("an image volume needs a phase")
        if self.kind is not VolumeKind.IMAGE and self.phase is not None:
            raise ValueError(f"a {self.kind.value} mask has no phase")
        return self


def volumes_arrow_schema() -> pa.Schema:
    """The Arrow schema of ``volumes.parquet`` (one row per case, kind and phase)."""
    return model_arrow_schema(VolumeInfo, table="volumes")


# ---------------------------------------------------------------------------------------------
# catalog.json

LICENCE = "CC BY-NC 4.0"


class Citation(BaseModel):
    """A work to cite when using the data."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["paper", "dataset", "collection"]
    text: str
    doi: str | None = None
    url: str | None = None
    licence: str | None = None


CITATIONS: tuple[Citation, ...] = (
    Citation(
        kind="paper",
        text=(
            "Garrucho, L. et al. A large-scale multicenter breast cancer DCE-MRI benchmark "
            "dataset with expert segmentations. Scientific Data 12, 453 (2025)."
        ),
        doi="10.1038/s41597-025-04707-4",
        url="https://doi.org/10.1038/s41597-025-04707-4",
        licence=LICENCE,
    ),
    Citation(
        kind="dataset",
        text="MAMA-MIA dataset, Synapse project syn60868042.",
        doi="10.7303/syn60868042",
        url="https://doi.org/10.7303/syn60868042",
        licence=LICENCE,
    ),
    Citation(
        kind="collection",
        text=(
            "Saha, A. et al. (2021). Dynamic contrast-enhanced magnetic resonance images of "
            "breast cancer patients with tumor locations (Duke-Breast-Cancer-MRI) [Data set]. "
            "The Cancer Imaging Archive."
        ),
        doi="10.7937/TCIA.e3sv-re93",
        url="https://www.cancerimagingarchive.net/collection/duke-breast-cancer-mri/",
        licence="CC BY-NC 4.0",
    ),
    Citation(
        kind="collection",
        text=(
            "Newitt, D., Hylton, N., on behalf of the I-SPY 1 Network and ACRIN 6657 Trial Team "
            "(2016). Multi-center breast DCE-MRI data and segmentations from patients in the "
            "I-SPY 1/ACRIN 6657 trials (ISPY1) [Data set]. The Cancer Imaging Archive."
        ),
        doi="10.7937/K9/TCIA.2016.HdHpgJLK",
        url="https://www.cancerimagingarchive.net/collection/ispy1/",
        licence="CC BY 3.0",
    ),
    Citation(
        kind="collection",
        text=(
            "Li, W. et al. (2022). I-SPY 2 Breast Dynamic Contrast Enhanced MRI Trial (ISPY2) "
            "(Version 1) [Data set]. The Cancer Imaging Archive."
        ),
        doi="10.7937/TCIA.D8Z0-9T85",
        url="https://www.cancerimagingarchive.net/collection/ispy2/",
        licence="CC BY 4.0",
    ),
    Citation(
        kind="collection",
        text=(
            "Newitt, D., Hylton, N. (2016). Single site breast DCE-MRI data and segmentations "
            "from patients undergoing neoadjuvant chemotherapy (Breast-MRI-NACT-Pilot, "
            "Version 3) [Data set]. The Cancer Imaging Archive."
        ),
        doi="10.7937/K9/TCIA.2016.QHsyhJKy",
        url="https://www.cancerimagingarchive.net/collection/breast-mri-nact-pilot/",
        licence="CC BY 3.0",
    ),
)


class TableRef(BaseModel):
    """A content-addressed table file the manifest names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # tables/<name>-<sha12>.parquet, relative to the catalog root
    sha256: str
    rows: int = Field(ge=0)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value


class CatalogManifest(BaseModel):
    """catalog.json: one consistent view of a catalog (written last, atomically)."""

    # Newer writers may add keys; older readers keep and ignore them.
    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION
    catalog_version: str
    dataset_release: int = Field(ge=1)
    created_at: dt.datetime
    source_files: dict[str, str] = Field(default_factory=dict)  # relpath -> sha256
    tables: dict[str, TableRef] = Field(default_factory=dict)
    licence: str = LICENCE
    citations: list[Citation] = Field(default_factory=lambda: list(CITATIONS))

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("created_at needs a time zone (UTC)")
        return value.astimezone(dt.UTC)


def catalog_version_of(
    *,
    dataset_release: int,
    source_files: Mapping[str, str],
    tables: Mapping[str, TableRef] | Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any] | None = None,
) -> str:
    """An id of the content: 16 hex chars of sha256 over everything but the creation time."""
    table_hashes = {
        name: (ref.sha256 if isinstance(ref, TableRef) else str(ref["sha256"]))
        for name, ref in tables.items()
    }
    payload = {
        "format_version": FORMAT_VERSION,
        "dataset_release": dataset_release,
        "source_files": dict(sorted(source_files.items())),
        "tables": dict(sorted(table_hashes.items())),
        "settings": settings or {},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
