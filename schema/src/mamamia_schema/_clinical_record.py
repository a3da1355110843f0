"""The clinical and imaging table's typed row: `ClinicalRecord`, its columns and derived groups.

Separate from the raw-row checks (`_clinical_rows`) and the header mapping (`_clinical_header`):
this module holds the model, the column tuples and derived groups built from it, and the small
value parsers (`norm_token`, `bmi_value`, `parse_date`) its validators share with the row checks.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from ._enums import (
    PATIENT_ID_PATTERN,
    AgeGroup,
    BmiGroup,
    Dataset,
    EthnicityGroup,
    NottinghamGrade,
    TumorSubtype,
    TumorSubtypeGroup,
    View,
)
from ._legend import LEGEND_TEXT

__all__ = [
    "CLINICAL_COLUMNS",
    "DERIVED_COLUMNS",
    "ClinicalRecord",
    "age_group",
    "clinical_columns",
    "ethnicity_group",
    "parse_number_list",
    "tumor_subtype_group",
]

_DERIVED = ("age_group", "ethnicity_group", "tumor_subtype_group")
PATIENT_ID_RE = re.compile(PATIENT_ID_PATTERN)


def parse_number_list(value: object) -> list[float]:
    """Parse '[0.5859, 0.5859]' (or '0.5, 0.5', a DICOM '0.5\\0.5', a number, a list) to floats."""
    if isinstance(value, bool):
        raise ValueError("expected a list of numbers")
    if isinstance(value, int | float):
        items: list[object] = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if text[:1] + text[-1:] in ("[]", "()"):
            text = text[1:-1]
        parts = [p for p in re.split(r"[,\\;\s]+", text) if p]
        if not parts:
            return []
        items = list(parts)
    else:
        raise ValueError("expected a list of numbers")
    out: list[float] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError("expected a list of numbers")
        number = float(item) if isinstance(item, int | float | str) else math.nan
        if not math.isfinite(number):
            raise ValueError(f"{item!r} is not a finite number")
        out.append(number)
    return out


def parse_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        for fmt in ("%Y/%m/%d", "%Y-%m-%d", "%Y%m%d"):
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    raise ValueError("expected a date yyyy/mm/dd")


def norm_token(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def bmi_value(value: object) -> object:
    if isinstance(value, str):
        token = norm_token(value)
        # The legend spells the obesity classes obesity_class1..3.
        match = re.fullmatch(r"obes(?:e|ity)_?(?:class)?_?([123])", token)
        if match:
            return f"obesity_class_{match.group(1)}"
        return token
    return value


def age_group(age: int | None) -> AgeGroup | None:
    """The paper's age group of an age in years."""
    if age is None:
        return None
    if age < 40:
        return AgeGroup.UNDER_40
    if age < 50:
        return AgeGroup.AGE_40_49
    if age < 60:
        return AgeGroup.AGE_50_59
    if age < 70:
        return AgeGroup.AGE_60_69
    return AgeGroup.AGE_70_PLUS


_ETHNICITY = {
    "caucasian": EthnicityGroup.CAUCASIAN,
    "white": EthnicityGroup.CAUCASIAN,
    "african american": EthnicityGroup.AFRICAN_AMERICAN,
    "african_american": EthnicityGroup.AFRICAN_AMERICAN,
    "black": EthnicityGroup.AFRICAN_AMERICAN,
    "black or african american": EthnicityGroup.AFRICAN_AMERICAN,
    "asian": EthnicityGroup.ASIAN,
}


def ethnicity_group(ethnicity: str | None) -> EthnicityGroup | None:
    """The paper's ethnicity group: caucasian, african_american, asian, else other."""
    if ethnicity is None or not ethnicity.strip():
        return None
    key = " ".join(ethnicity.strip().lower().split())
    return _ETHNICITY.get(key, EthnicityGroup.OTHER)


_SUBTYPE_GROUP = {
    TumorSubtype.LUMINAL: TumorSubtypeGroup.LUMINAL,
    TumorSubtype.LUMINAL_A: TumorSubtypeGroup.LUMINAL,
    TumorSubtype.LUMINAL_B: TumorSubtypeGroup.LUMINAL,
    TumorSubtype.HER2_ENRICHED: TumorSubtypeGroup.HER2_ENRICHED,
    TumorSubtype.HER2_PURE: TumorSubtypeGroup.HER2_PURE,
    TumorSubtype.TRIPLE_NEGATIVE: TumorSubtypeGroup.TRIPLE_NEGATIVE,
}


def tumor_subtype_group(subtype: TumorSubtype | None) -> TumorSubtypeGroup | None:
    """The paper's subtype group (luminal = luminal + luminal_a + luminal_b)."""
    return None if subtype is None else _SUBTYPE_GROUP[subtype]


def _json_schema_docs(schema: dict[str, Any]) -> None:
    # OpenAPI/JSON Schema consumers get the corrected legend text and units per property.
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    for name, prop in properties.items():
        text = LEGEND_TEXT.get(name)
        if text is not None and isinstance(prop, dict):
            prop.setdefault("description", text.description)
            if text.unit:
                prop.setdefault("unit", text.unit)
    schema.setdefault(
        "description", "One row of clinical_and_imaging_info.xlsx (either release), typed."
    )


class ClinicalRecord(BaseModel):
    """One row of clinical_and_imaging_info.xlsx (either release), typed and cleaned.

    Units and descriptions: `COLUMN_DOCS`. Derived fields (`age_group`, `ethnicity_group`,
    `tumor_subtype_group`) are computed from the source fields and cannot be set.
    """

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_json_schema_docs
    )

    patient_id: str
    dataset: Dataset | None = None
    bilateral_breast_cancer: bool | None = None
    multifocal_cancer: bool | None = None
    nac_agent: str | None = None
    endocrine_therapy: bool | None = None
    anti_her2_neu_therapy: bool | None = None
    pcr: bool | None = None
    mastectomy_post_nac: bool | None = None
    days_to_follow_up: int | None = None
    days_to_recurrence: int | None = None
    days_to_metastasis: int | None = None
    days_to_death: int | None = None
    hr: bool | None = None
    er: bool | None = None
    pr: bool | None = None
    her2: bool | None = None
    mammaprint: bool | None = None
    oncotype_score: int | None = None
    nottingham_grade: NottinghamGrade | None = None
    tumor_subtype: TumorSubtype | None = None
    age: int | None = None
    menopause: str | None = None
    ethnicity: str | None = None
    has_implant: bool | None = None
    weight: float | None = None
    patient_size: float | None = None
    bmi_group: BmiGroup | None = None
    breast_density: str | None = None
    view: View | None = None
    bilateral_mri: bool | None = None
    num_phases: int | None = None
    fat_suppressed: bool | None = None
    field_strength: float | None = None
    image_rows: int | None = None
    image_columns: int | None = None
    num_slices: int | None = None
    pixel_spacing: list[float] | None = None
    slice_thickness: float | None = None
    site: str | None = None
    manufacturer: str | None = None
    scanner_model: str | None = None
    high_bit: int | None = None
    window_center: float | None = None
    window_width: float | None = None
    echo_time: float | None = None
    repetition_time: float | None = None
    acquisition_times: list[float] | None = None
    acquisition_date: dt.date | None = None
    tcia_series_uid: str | None = None
    extra: dict[str, str | None] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # A dumped record carries its derived fields; they are recomputed, never read.
        if isinstance(data, Mapping) and any(k in data for k in _DERIVED):
            return {k: v for k, v in data.items() if k not in _DERIVED}
        return data

    @field_validator("patient_id")
    @classmethod
    def _upper_id(cls, value: str) -> str:
        value = value.strip().upper()
        if not PATIENT_ID_RE.match(value):
            raise ValueError(f"patient_id {value!r} is not a case id like DUKE_001")
        return value

    @field_validator("bmi_group", mode="before")
    @classmethod
    def _bmi_spelling(cls, value: object) -> object:
        return bmi_value(value)

    @field_validator("pixel_spacing", "acquisition_times", mode="before")
    @classmethod
    def _number_list(cls, value: object) -> object:
        return None if value is None else parse_number_list(value)

    @field_validator("acquisition_date", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        return None if value is None else parse_date(value)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("view", "tumor_subtype", "nottingham_grade", "breast_density", mode="before")
    @classmethod
    def _lower_token(cls, value: object) -> object:
        return norm_token(value) if isinstance(value, str) else value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def age_group(self) -> AgeGroup | None:
        return age_group(self.age)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ethnicity_group(self) -> EthnicityGroup | None:
        return ethnicity_group(self.ethnicity)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tumor_subtype_group(self) -> TumorSubtypeGroup | None:
        return tumor_subtype_group(self.tumor_subtype)


# Source columns, in the spreadsheet's order (release 2: with breast_density).
CLINICAL_COLUMNS: tuple[str, ...] = tuple(n for n in ClinicalRecord.model_fields if n != "extra")
DERIVED_COLUMNS: tuple[str, ...] = tuple(ClinicalRecord.model_computed_fields)
assert DERIVED_COLUMNS == _DERIVED


def clinical_columns(release: int) -> tuple[str, ...]:
    """The spreadsheet's columns of a release: 49 (release 1) or 50 (release 2)."""
    if release == 1:
        return tuple(c for c in CLINICAL_COLUMNS if c != "breast_density")
    if release == 2:
        return CLINICAL_COLUMNS
    raise ValueError(f"release must be 1 or 2, not {release!r}")
