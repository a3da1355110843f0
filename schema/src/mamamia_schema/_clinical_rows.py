"""Validation of one raw clinical row: column rules, coercion and cross-field warnings.

Separate from the model (`_clinical_record`) because it works on untyped spreadsheet cells and
reports `Problem`s instead of raising; the sheet's header is mapped in `_clinical_header`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from ._clinical_record import (
    CLINICAL_COLUMNS,
    DERIVED_COLUMNS,
    PATIENT_ID_RE,
    ClinicalRecord,
    bmi_value,
    norm_token,
    parse_date,
    parse_number_list,
)
from ._enums import BmiGroup, Dataset, NottinghamGrade, TumorSubtype, View
from ._problems import Problem, Severity, show_value

__all__ = [
    "BREAST_DENSITY_VALUES",
    "validate_clinical_row",
]

BREAST_DENSITY_VALUES: tuple[str, ...] = ("a", "b", "c", "d")
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

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


def is_empty(value: object) -> bool:
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
            token = str(bmi_value(token))
        else:
            token = norm_token(token)
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
            date = parse_date(value)
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
    if is_empty(raw_id):
        filled = sum(1 for k, v in raw.items() if k != "patient_id" and not is_empty(v))
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
    if not PATIENT_ID_RE.match(case):
        if not any(k != "patient_id" and not is_empty(v) for k, v in raw.items()):
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
            extra[column] = None if is_empty(value) else extra_text(value)
            continue
        if is_empty(value) or (
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


# The plane each collection was acquired in (docs/dataset.md).
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


def extra_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()
