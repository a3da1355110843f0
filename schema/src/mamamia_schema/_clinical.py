"""The clinical and imaging table: `ClinicalRecord` and the pure validation of raw rows."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from ._enums import (
    AgeGroup,
    BmiGroup,
    Dataset,
    EthnicityGroup,
    NottinghamGrade,
    TumorSubtype,
    TumorSubtypeGroup,
    View,
)
from ._legend import LEGEND_ALIASES, LEGEND_TEXT
from ._problems import Problem, Severity, show_value

__all__ = [
    "BREAST_DENSITY_VALUES",
    "CLINICAL_COLUMNS",
    "DERIVED_COLUMNS",
    "ClinicalHeader",
    "ClinicalRecord",
    "age_group",
    "check_clinical_header",
    "clinical_columns",
    "ethnicity_group",
    "normalise_column_name",
    "parse_number_list",
    "tumor_subtype_group",
    "validate_clinical_row",
]

BREAST_DENSITY_VALUES: tuple[str, ...] = ("a", "b", "c", "d")
_DERIVED = ("age_group", "ethnicity_group", "tumor_subtype_group")
_ID_RE = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,63}$")
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


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


def _parse_date(value: object) -> dt.date:
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


def _norm_token(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def _bmi(value: object) -> object:
    if isinstance(value, str):
        token = _norm_token(value)
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
        if not _ID_RE.match(value):
            raise ValueError(f"patient_id {value!r} is not a case id like DUKE_001")
        return value

    @field_validator("bmi_group", mode="before")
    @classmethod
    def _bmi_spelling(cls, value: object) -> object:
        return _bmi(value)

    @field_validator("pixel_spacing", "acquisition_times", mode="before")
    @classmethod
    def _number_list(cls, value: object) -> object:
        return None if value is None else parse_number_list(value)

    @field_validator("acquisition_date", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        return None if value is None else _parse_date(value)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("view", "tumor_subtype", "nottingham_grade", "breast_density", mode="before")
    @classmethod
    def _lower_token(cls, value: object) -> object:
        return _norm_token(value) if isinstance(value, str) else value

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


# ---------------------------------------------------------------------------------------------
# Column rules for raw values.

_Kind = Literal["bool", "int", "float", "str", "enum", "numbers", "date", "density", "uid"]


class _Rule(NamedTuple):
    kind: _Kind
    enum: type[StrEnum] | None = None
    lo: float | None = None  # inclusive lower bound
    hi: float | None = None  # inclusive upper bound
    lo_open: bool = False  # lower bound exclusive
    length: int | None = None  # exact list length


_RULES: dict[str, _Rule] = {
    "dataset": _Rule("enum", Dataset),
    "nac_agent": _Rule("str"),
    "days_to_follow_up": _Rule("int", lo=0, hi=36500),
    "days_to_recurrence": _Rule("int", lo=0, hi=36500),
    "days_to_metastasis": _Rule("int", lo=0, hi=36500),
    "days_to_death": _Rule("int", lo=0, hi=36500),
    "oncotype_score": _Rule("int", lo=0, hi=100),
    "nottingham_grade": _Rule("enum", NottinghamGrade),
    "tumor_subtype": _Rule("enum", TumorSubtype),
    "age": _Rule("int", lo=0, hi=120, lo_open=True),
    "menopause": _Rule("str"),
    "ethnicity": _Rule("str"),
    "weight": _Rule("float", lo=0, hi=500, lo_open=True),
    "patient_size": _Rule("float", lo=0.3, hi=2.5),
    "bmi_group": _Rule("enum", BmiGroup),
    "breast_density": _Rule("density"),
    "view": _Rule("enum", View),
    "num_phases": _Rule("int", lo=1, hi=64),
    "field_strength": _Rule("float", lo=0, hi=12, lo_open=True),
    "image_rows": _Rule("int", lo=1, hi=8192),
    "image_columns": _Rule("int", lo=1, hi=8192),
    "num_slices": _Rule("int", lo=1, hi=8192),
    "pixel_spacing": _Rule("numbers", lo=0, hi=100, lo_open=True, length=2),
    "slice_thickness": _Rule("float", lo=0, hi=100, lo_open=True),
    "site": _Rule("str"),
    "manufacturer": _Rule("str"),
    "scanner_model": _Rule("str"),
    "high_bit": _Rule("int", lo=0, hi=63),
    "window_center": _Rule("float"),
    "window_width": _Rule("float", lo=0),
    "echo_time": _Rule("float", lo=0, hi=10000, lo_open=True),
    "repetition_time": _Rule("float", lo=0, hi=100000, lo_open=True),
    "acquisition_times": _Rule("numbers", lo=0, hi=100000),
    "acquisition_date": _Rule("date", lo=1900, hi=2100),
    "tcia_series_uid": _Rule("uid"),
}
for _name, _field in ClinicalRecord.model_fields.items():
    if _field.annotation == (bool | None):
        _RULES[_name] = _Rule("bool")
_RULES = {c: _RULES[c] for c in CLINICAL_COLUMNS if c != "patient_id"}


class _Bad(Exception):
    """A raw value breaks a rule; `rule` names it, the text says what was expected."""

    def __init__(self, rule: str, expected: str) -> None:
        super().__init__(expected)
        self.rule = rule
        self.expected = expected


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
# Spellings of "no value" that spreadsheet and pandas exports write into non-text cells.
_NULL_WORDS = frozenset({"nan", "null", "none", "na", "n/a", "#n/a"})


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad("type", "expected a number")
    if isinstance(value, str) and _DECIMAL_COMMA.match(value):
        value = value.replace(",", ".")  # a European CSV: 1,5
    try:
        number = float(value)
    except ValueError:
        raise _Bad("type", "expected a number") from None
    if not math.isfinite(number):
        raise _Bad("type", "expected a finite number")
    return number


def _check_range(number: float, rule: _Rule) -> None:
    lo_bad = rule.lo is not None and (number <= rule.lo if rule.lo_open else number < rule.lo)
    hi_bad = rule.hi is not None and number > rule.hi
    if lo_bad or hi_bad:
        lo = "-inf" if rule.lo is None else show_value(float(rule.lo))
        hi = "inf" if rule.hi is None else show_value(float(rule.hi))
        bracket = "(" if rule.lo_open else "["
        raise _Bad("range", f"expected a value in {bracket}{lo}, {hi}]")


def _coerce(value: object, rule: _Rule) -> Any:
    kind = rule.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        try:
            number = _number(value)
        except _Bad:
            raise _Bad("enum", "expected 0, 1 or empty") from None
        if number not in (0.0, 1.0):
            raise _Bad("enum", "expected 0, 1 or empty")
        return number == 1.0
    if kind == "int":
        number = _number(value)
        if not number.is_integer():
            raise _Bad("type", "expected a whole number")
        _check_range(number, rule)
        return int(number)
    if kind == "float":
        number = _number(value)
        _check_range(number, rule)
        return number
    if kind in ("str", "uid", "density"):
        if isinstance(value, bool):
            text = str(int(value))
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))  # NACT sites are numbers in the sheet
        elif isinstance(value, int | float | str):
            text = str(value).strip()
        elif isinstance(value, dt.date):
            text = value.isoformat()
        else:
            raise _Bad("type", "expected text")
        if kind == "uid" and not _UID_RE.match(text):
            raise _Bad("pattern", "expected a DICOM UID (digits and dots)")
        if kind == "density":
            text = text.lower()
        return text
    if kind == "enum":
        assert rule.enum is not None
        allowed = [m.value for m in rule.enum]
        expected = "expected one of " + ", ".join(allowed)
        if not isinstance(value, str):
            raise _Bad("enum", expected)
        token = value.strip()
        if rule.enum is Dataset:
            token = token.upper()
        elif rule.enum is BmiGroup:
            token = str(_bmi(token))
        else:
            token = _norm_token(token)
        if token not in allowed:
            raise _Bad("enum", expected)
        return rule.enum(token)
    if kind == "numbers":
        try:
            numbers = parse_number_list(value)
        except ValueError:
            raise _Bad("type", "expected a list of numbers like [0.5, 0.5]") from None
        if rule.length is not None and len(numbers) != rule.length:
            raise _Bad("length", f"expected {rule.length} numbers")
        for number in numbers:
            _check_range(number, rule)
        return numbers
    if kind == "date":
        try:
            date = _parse_date(value)
        except ValueError:
            raise _Bad("type", "expected a date yyyy/mm/dd") from None
        if rule.lo is not None and rule.hi is not None and not rule.lo <= date.year <= rule.hi:
            raise _Bad("range", f"expected a year in [{int(rule.lo)}, {int(rule.hi)}]")
        return date
    raise AssertionError(kind)  # pragma: no cover


def _label(case: str | None, row: int | None) -> str:
    where = case if case else "row without patient_id"
    return f"{where} (row {row})" if row is not None else where


def validate_clinical_row(
    raw: Mapping[str, object], row_number: int | None = None, *, file: str | None = None
) -> tuple[ClinicalRecord | None, list[Problem]]:
    """Validate one raw row (column name -> cell value), reporting every problem at once.

    Keys are column names (see `check_clinical_header` for mapping a sheet's header); a bad value
    becomes null and the row is kept; unknown keys go to `extra` as text (the table reader
    reports unknown columns once per table, not here). A row without a usable patient_id is
    reported and skipped (None). Cross-field disagreements are warnings.
    """
    problems: list[Problem] = []

    def report(
        severity: Severity,
        column: str | None,
        value: object,
        rule: str,
        text: str,
        case: str | None,
    ) -> None:
        shown = None if value is None else show_value(value)
        head = _label(case, row_number)
        body = f"{column} = {shown}: {text}" if column else text
        problems.append(
            Problem(
                severity=severity,
                case=case,
                file=file,
                column=column,
                value=shown,
                rule=rule,
                message=f"{head}: {body} (rule {rule}).",
                row=row_number,
            )
        )

    raw_id = raw.get("patient_id")
    if _is_empty(raw_id):
        filled = sum(1 for k, v in raw.items() if k != "patient_id" and not _is_empty(v))
        report(
            Severity.WARNING,
            "patient_id",
            None,
            "missing_id",
            f"row has no patient_id ({filled} other cells filled); row skipped",
            None,
        )
        return None, problems
    if isinstance(raw_id, float) and raw_id.is_integer():
        raw_id = int(raw_id)
    case = str(raw_id).strip().upper()
    if not _ID_RE.match(case):
        if not any(k != "patient_id" and not _is_empty(v) for k, v in raw.items()):
            # A note or footer typed into the first column: a stray row, not a broken case.
            report(
                Severity.WARNING,
                "patient_id",
                raw_id,
                "missing_id",
                "not a case id and the rest of the row is empty (a stray row); row skipped",
                None,
            )
            return None, problems
        report(
            Severity.ERROR,
            "patient_id",
            raw_id,
            "pattern",
            "expected a case id like DUKE_001 (letters, digits, '_' or '-'); row skipped",
            None,
        )
        return None, problems

    clean: dict[str, Any] = {"patient_id": case}
    extra: dict[str, str | None] = {}
    bad_columns: set[str] = set()
    for column, value in raw.items():
        if column == "patient_id":
            continue
        rule = _RULES.get(column)
        if rule is None:
            if column in DERIVED_COLUMNS:
                continue  # recomputed, never read
            extra[column] = None if _is_empty(value) else _extra_text(value)
            continue
        if _is_empty(value) or (
            rule.kind != "str" and isinstance(value, str) and value.strip().lower() in _NULL_WORDS
        ):
            clean[column] = None
            continue
        try:
            clean[column] = _coerce(value, rule)
        except _Bad as bad:
            clean[column] = None
            bad_columns.add(column)
            hint = bad.expected
            if column == "patient_size" and isinstance(value, int | float) and 30 <= value <= 250:
                hint += " (metres; this looks like centimetres)"
            report(Severity.ERROR, column, value, bad.rule, f"{hint}; set to null", case)
            continue
        if rule.kind == "density" and clean[column] not in BREAST_DENSITY_VALUES:
            report(
                Severity.WARNING,
                column,
                value,
                "enum",
                "expected one of a, b, c, d; kept as given",
                case,
            )
    clean["extra"] = extra

    # Cross-field checks (warnings: the first release has such rows).
    times, phases = clean.get("acquisition_times"), clean.get("num_phases")
    if (
        phases is not None
        and "acquisition_times" in raw
        and not bad_columns & {"acquisition_times", "num_phases"}
    ):
        count = 0 if times is None else len(times)
        if count != phases:
            report(
                Severity.WARNING,
                "acquisition_times",
                raw.get("acquisition_times"),
                "cross_field",
                f"holds {count} times but num_phases = {phases}",
                case,
            )
    if times is not None and any(b < a for a, b in itertools.pairwise(times)):
        report(
            Severity.WARNING,
            "acquisition_times",
            raw.get("acquisition_times"),
            "order",
            "times are not in increasing order",
            case,
        )
    dataset = clean.get("dataset")
    if dataset is not None and case.rsplit("_", 1)[0] != dataset.value:
        report(
            Severity.WARNING,
            "dataset",
            raw.get("dataset"),
            "cross_field",
            f"patient_id {case} does not start with {dataset.value}_",
            case,
        )

    for column, value, text in _consistency(clean):
        report(Severity.WARNING, column, value, "cross_field", text, case)

    return ClinicalRecord.model_validate(clean), problems


# The plane each collection was acquired in (DATASET.md).
_PLANE = {
    Dataset.DUKE: View.AXIAL,
    Dataset.ISPY2: View.AXIAL,
    Dataset.ISPY1: View.SAGITTAL,
    Dataset.NACT: View.SAGITTAL,
}
# Receptor status each subtype implies: (hr, her2), None where the subtype allows either.
_SUBTYPE_RECEPTORS: dict[TumorSubtype, tuple[bool | None, bool | None]] = {
    TumorSubtype.TRIPLE_NEGATIVE: (False, False),
    TumorSubtype.LUMINAL: (True, None),
    TumorSubtype.LUMINAL_A: (True, None),
    TumorSubtype.LUMINAL_B: (True, None),
    TumorSubtype.HER2_ENRICHED: (None, True),
    TumorSubtype.HER2_PURE: (False, True),
}
_BMI_LIMITS = (
    (18.5, BmiGroup.UNDERWEIGHT),
    (25.0, BmiGroup.NORMAL),
    (30.0, BmiGroup.OVERWEIGHT),
    (35.0, BmiGroup.OBESITY_CLASS_1),
    (40.0, BmiGroup.OBESITY_CLASS_2),
    (math.inf, BmiGroup.OBESITY_CLASS_3),
)
_DEFAULT_HEIGHT_M = 1.65  # the legend: used where patient_size is unknown


def _bmi_groups(bmi: float, slack: float = 0.1) -> set[BmiGroup]:
    """Groups a BMI may fall in, allowing `slack` for rounding at the limits."""
    out: set[BmiGroup] = set()
    lower = -math.inf
    for limit, group in _BMI_LIMITS:
        if lower - slack <= bmi < limit + slack:
            out.add(group)
        lower = limit
    return out


def _flag(value: object) -> str:
    return "empty" if value is None else str(int(bool(value)))


def _consistency(clean: Mapping[str, Any]) -> list[tuple[str, object, str]]:
    """Cross-field rules the first release satisfies; a new file breaking them gets warnings."""
    out: list[tuple[str, object, str]] = []
    hr, er, pr, her2 = (clean.get(k) for k in ("hr", "er", "pr", "her2"))
    if hr is not None and er is not None and pr is not None and hr != (er or pr):
        out.append(("hr", hr, f"hr = {_flag(hr)} but er = {_flag(er)} and pr = {_flag(pr)}"))
    subtype = clean.get("tumor_subtype")
    if isinstance(subtype, TumorSubtype):
        want_hr, want_her2 = _SUBTYPE_RECEPTORS[subtype]
        if (want_hr is not None and hr is not None and hr != want_hr) or (
            want_her2 is not None and her2 is not None and her2 != want_her2
        ):
            out.append(
                (
                    "tumor_subtype",
                    subtype.value,
                    f"{subtype.value} does not fit hr = {_flag(hr)}, her2 = {_flag(her2)}",
                )
            )
    dataset, view = clean.get("dataset"), clean.get("view")
    if isinstance(dataset, Dataset) and isinstance(view, View) and _PLANE[dataset] is not view:
        out.append(
            (
                "view",
                view.value,
                f"{dataset.value} cases are {_PLANE[dataset].value}, this row says {view.value}",
            )
        )
    weight, size, group = clean.get("weight"), clean.get("patient_size"), clean.get("bmi_group")
    if isinstance(group, BmiGroup) and weight is not None:
        height = size or _DEFAULT_HEIGHT_M
        bmi = weight / (height * height)
        if group not in _bmi_groups(bmi):
            out.append(
                (
                    "bmi_group",
                    group.value,
                    f"weight {weight:g} kg and height {height:g} m give BMI {bmi:.1f}, "
                    f"not {group.value}",
                )
            )
    return out


def _extra_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()


def normalise_column_name(name: str) -> str:
    """A header cell as a column name: stripped, lowercase, spaces and hyphens as '_'."""
    text = " ".join(name.replace("\xa0", " ").split()).lower()
    if text in LEGEND_ALIASES:
        return LEGEND_ALIASES[text]
    token = _norm_token(text)
    return LEGEND_ALIASES.get(token, token)


class ClinicalHeader(NamedTuple):
    """How a sheet's header maps to columns: `columns[i]` names cell i (None: ignored)."""

    columns: list[str | None]
    release: int
    extra_columns: list[str]
    problems: list[Problem]


def check_clinical_header(header: Iterable[object], *, file: str | None = None) -> ClinicalHeader:
    """Map a header row to column names; detect the release (breast_density -> 2).

    Renamed spellings are notes, unknown columns are notes (kept as text in `extra`), missing
    columns are warnings (their values are null), duplicates are errors (the later one ignored).
    """
    problems: list[Problem] = []
    names: list[str | None] = []
    seen: set[str] = set()
    extra: list[str] = []

    def report(severity: Severity, column: str | None, value: object, rule: str, text: str) -> None:
        problems.append(
            Problem(
                severity=severity,
                file=file,
                column=column,
                value=None if value is None else show_value(value),
                rule=rule,
                message=f"{file + ': ' if file else ''}header: {text} (rule {rule}).",
                row=None,
            )
        )

    for index, cell in enumerate(header):
        if _is_empty(cell):
            names.append(None)
            continue
        source = _extra_text(cell)
        name = normalise_column_name(source)
        if name in seen:
            report(
                Severity.ERROR,
                name,
                source,
                "duplicate_column",
                f"column {index + 1} repeats {name!r}; its values are ignored",
            )
            names.append(None)
            continue
        seen.add(name)
        if name in CLINICAL_COLUMNS:
            if name != source:
                report(
                    Severity.NOTE, name, source, "renamed", f"column {source!r} read as {name!r}"
                )
            names.append(name)
        elif name in DERIVED_COLUMNS:
            report(
                Severity.NOTE,
                name,
                source,
                "derived_column",
                f"column {source!r} is derived by mamamia; the sheet's values are ignored",
            )
            names.append(None)
        else:
            # Unknown columns keep their source spelling (stripped).
            report(
                Severity.NOTE,
                source,
                source,
                "extra_column",
                f"unknown column {source!r} kept as text",
            )
            names.append(source)
            extra.append(source)
    if "patient_id" not in seen:
        report(Severity.ERROR, "patient_id", None, "missing_column", "no patient_id column")
    release = 2 if "breast_density" in seen else 1
    for column in clinical_columns(release):
        if column not in seen and column != "patient_id":
            report(
                Severity.WARNING,
                column,
                None,
                "missing_column",
                f"column {column!r} is missing; its values are null",
            )
    return ClinicalHeader(names, release, extra, problems)
