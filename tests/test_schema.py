"""mamamia_schema: models, pure row validation, column docs and the Arrow schemas."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mamamia_schema import (
    CITATIONS,
    CLINICAL_COLUMNS,
    COLUMN_DOCS,
    DERIVED_COLUMNS,
    FORMAT_VERSION,
    AgeGroup,
    BmiGroup,
    CatalogManifest,
    ClinicalRecord,
    Dataset,
    EthnicityGroup,
    NottinghamGrade,
    PatientInfo,
    Problem,
    QualityScore,
    Severity,
    SplitAssignment,
    TableRef,
    TumorSubtype,
    TumorSubtypeGroup,
    View,
    VolumeInfo,
    VolumeKind,
    catalog_version_of,
    check_clinical_header,
    clinical_arrow_schema,
    clinical_columns,
    quality_arrow_schema,
    records_from_arrow,
    records_to_arrow,
    schema_docs,
    splits_arrow_schema,
    validate_clinical_row,
    validate_patient_info,
    validate_quality_row,
    volumes_arrow_schema,
)

RELEASE_1_HEADER = [
    "patient_id",
    "dataset",
    "bilateral_breast_cancer",
    "multifocal_cancer",
    "nac_agent",
    "endocrine_therapy",
    "anti_her2_neu_therapy",
    "pcr",
    "mastectomy_post_nac",
    "days_to_follow_up",
    "days_to_recurrence",
    "days_to_metastasis",
    "days_to_death",
    "hr",
    "er",
    "pr",
    "her2",
    "mammaprint",
    "oncotype_score",
    "nottingham_grade",
    "tumor_subtype",
    "age",
    "menopause",
    "ethnicity",
    "has_implant",
    "weight",
    "patient_size",
    "bmi_group",
    "view",
    "bilateral_mri",
    "num_phases",
    "fat_suppressed",
    "field_strength",
    "image_rows",
    "image_columns",
    "num_slices",
    "pixel_spacing",
    "slice_thickness",
    "site",
    "manufacturer",
    "scanner_model",
    "high_bit",
    "window_center",
    "window_width",
    "echo_time",
    "repetition_time",
    "acquisition_times",
    "acquisition_date",
    "tcia_series_uid",
]


def good_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "patient_id": "DUKE_001",
        "dataset": "DUKE",
        "pcr": 1,
        "age": 45,
        "view": "axial",
        "num_phases": 3,
        "acquisition_times": "[0, 90, 180]",
        "pixel_spacing": "[0.7031, 0.7031]",
        "tumor_subtype": "luminal_a",
        "ethnicity": "african american",
        "bmi_group": "obesity_class1",
        "acquisition_date": "2001/08/04",
        "site": "AAI ",
        "tcia_series_uid": "1.3.6.1.4.1.14519",
    }
    row.update(changes)
    return row


# --- columns -----------------------------------------------------------------------------------


def test_columns_match_the_spreadsheet_order() -> None:
    assert list(clinical_columns(1)) == RELEASE_1_HEADER
    assert len(clinical_columns(1)) == 49
    release_2 = list(clinical_columns(2))
    assert len(release_2) == 50
    assert release_2[release_2.index("bmi_group") + 1] == "breast_density"
    assert DERIVED_COLUMNS == ("age_group", "ethnicity_group", "tumor_subtype_group")
    with pytest.raises(ValueError, match="release"):
        clinical_columns(3)


def test_column_docs_cover_every_column_and_carry_the_corrections() -> None:
    assert set(COLUMN_DOCS) == set(CLINICAL_COLUMNS) | set(DERIVED_COLUMNS)
    assert COLUMN_DOCS["patient_size"].unit == "m"
    assert COLUMN_DOCS["patient_size"].correction
    assert "two numbers" in COLUMN_DOCS["pixel_spacing"].description
    assert COLUMN_DOCS["pixel_spacing"].type == "list[float]"
    assert COLUMN_DOCS["multifocal_cancer"].legend_field == "multifocal cancer"
    assert COLUMN_DOCS["oncotype_score"].legend_field == "oncotype"
    assert COLUMN_DOCS["pcr"].type == "boolean"
    assert COLUMN_DOCS["dataset"].values == ["DUKE", "ISPY1", "ISPY2", "NACT"]
    assert COLUMN_DOCS["bmi_group"].values is not None
    assert "obesity_class_1" in COLUMN_DOCS["bmi_group"].values
    assert COLUMN_DOCS["breast_density"].releases == [2]
    assert COLUMN_DOCS["breast_density"].values == ["a", "b", "c", "d"]
    assert COLUMN_DOCS["age_group"].derived
    assert COLUMN_DOCS["acquisition_date"].type == "date"
    assert COLUMN_DOCS["echo_time"].unit == "ms"
    assert COLUMN_DOCS["acquisition_times"].unit == "s"


# --- ClinicalRecord ----------------------------------------------------------------------------


def test_record_normalises_its_inputs() -> None:
    record = ClinicalRecord(
        patient_id=" duke_001 ",
        dataset=Dataset.DUKE,
        bmi_group="obesity_class1",  # type: ignore[arg-type]
        pixel_spacing="[0.5859, 0.5859]",  # type: ignore[arg-type]
        acquisition_times="[0, 584, 714]",  # type: ignore[arg-type]
        acquisition_date="2002/10/11",  # type: ignore[arg-type]
        scanner_model="Achieva ",
    )
    assert record.patient_id == "DUKE_001"
    assert record.bmi_group is BmiGroup.OBESITY_CLASS_1
    assert record.pixel_spacing == [0.5859, 0.5859]
    assert record.acquisition_times == [0.0, 584.0, 714.0]
    assert record.acquisition_date == dt.date(2002, 10, 11)
    assert record.scanner_model == "Achieva"
    with pytest.raises(ValidationError):
        ClinicalRecord(patient_id="../etc")
    with pytest.raises(ValidationError):
        ClinicalRecord(patient_id="DUKE_001", unknown_column=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("age", "group"),
    [
        (21, AgeGroup.UNDER_40),
        (39, AgeGroup.UNDER_40),
        (40, AgeGroup.AGE_40_49),
        (49, AgeGroup.AGE_40_49),
        (50, AgeGroup.AGE_50_59),
        (60, AgeGroup.AGE_60_69),
        (69, AgeGroup.AGE_60_69),
        (70, AgeGroup.AGE_70_PLUS),
        (None, None),
    ],
)
def test_age_group(age: int | None, group: AgeGroup | None) -> None:
    assert ClinicalRecord(patient_id="X_1", age=age).age_group == group


@pytest.mark.parametrize(
    ("ethnicity", "group"),
    [
        ("caucasian", EthnicityGroup.CAUCASIAN),
        ("african american", EthnicityGroup.AFRICAN_AMERICAN),
        ("asian", EthnicityGroup.ASIAN),
        ("hispanic", EthnicityGroup.OTHER),
        ("hawaian", EthnicityGroup.OTHER),
        ("multiple race", EthnicityGroup.OTHER),
        ("american indian/alaskan native", EthnicityGroup.OTHER),
        (None, None),
    ],
)
def test_ethnicity_group(ethnicity: str | None, group: EthnicityGroup | None) -> None:
    assert ClinicalRecord(patient_id="X_1", ethnicity=ethnicity).ethnicity_group == group


@pytest.mark.parametrize(
    ("subtype", "group"),
    [
        ("luminal", TumorSubtypeGroup.LUMINAL),
        ("luminal_a", TumorSubtypeGroup.LUMINAL),
        ("luminal_b", TumorSubtypeGroup.LUMINAL),
        ("her2_enriched", TumorSubtypeGroup.HER2_ENRICHED),
        ("her2_pure", TumorSubtypeGroup.HER2_PURE),
        ("triple_negative", TumorSubtypeGroup.TRIPLE_NEGATIVE),
        (None, None),
    ],
)
def test_tumor_subtype_group(subtype: str | None, group: TumorSubtypeGroup | None) -> None:
    record = ClinicalRecord.model_validate({"patient_id": "X_1", "tumor_subtype": subtype})
    assert record.tumor_subtype_group == group


def test_dumped_record_validates_back_and_derived_fields_are_recomputed() -> None:
    record, _ = validate_clinical_row(good_row())
    assert record is not None
    dumped = record.model_dump()
    assert dumped["age_group"] == AgeGroup.AGE_40_49
    dumped["age_group"] = ">=70"  # derived values are never read
    assert ClinicalRecord.model_validate(dumped) == record
    assert ClinicalRecord.model_validate_json(record.model_dump_json()) == record


# --- validate_clinical_row ----------------------------------------------------------------------


def test_good_row_has_no_problems() -> None:
    record, problems = validate_clinical_row(good_row(), 2)
    assert problems == []
    assert record is not None
    assert record.pcr is True
    assert record.view is View.AXIAL
    assert record.site == "AAI"
    assert record.tumor_subtype is TumorSubtype.LUMINAL_A
    assert record.tumor_subtype_group is TumorSubtypeGroup.LUMINAL
    assert record.ethnicity_group is EthnicityGroup.AFRICAN_AMERICAN
    assert record.bmi_group is BmiGroup.OBESITY_CLASS_1


def only(problems: list[Problem], column: str) -> Problem:
    found = [p for p in problems if p.column == column]
    assert len(found) == 1, problems
    return found[0]


@pytest.mark.parametrize(
    ("column", "value", "rule", "shown"),
    [
        ("pcr", 7, "enum", "pcr = 7"),
        ("pcr", "yes please", "enum", 'pcr = "yes please"'),
        ("age", "abc", "type", 'age = "abc"'),
        ("age", 45.5, "type", "age = 45.5"),
        ("age", 0, "range", "age = 0"),
        ("view", "coronal", "enum", 'view = "coronal"'),
        ("dataset", "MAYO", "enum", 'dataset = "MAYO"'),
        ("tumor_subtype", "luminal_c", "enum", 'tumor_subtype = "luminal_c"'),
        ("nottingham_grade", "extreme", "enum", 'nottingham_grade = "extreme"'),
        ("bmi_group", "huge", "enum", 'bmi_group = "huge"'),
        ("pixel_spacing", "[0.5]", "length", 'pixel_spacing = "[0.5]"'),
        ("pixel_spacing", "[a, b]", "type", 'pixel_spacing = "[a, b]"'),
        ("pixel_spacing", "[0.5, -1]", "range", 'pixel_spacing = "[0.5, -1]"'),
        ("acquisition_times", "[0, x]", "type", 'acquisition_times = "[0, x]"'),
        ("acquisition_date", "2001/13/45", "type", 'acquisition_date = "2001/13/45"'),
        ("acquisition_date", "1850/01/01", "range", 'acquisition_date = "1850/01/01"'),
        ("days_to_death", -3, "range", "days_to_death = -3"),
        ("oncotype_score", 101, "range", "oncotype_score = 101"),
        ("num_phases", 0, "range", "num_phases = 0"),
        ("field_strength", "strong", "type", 'field_strength = "strong"'),
        ("weight", float("inf"), "type", "weight = inf"),
        ("tcia_series_uid", "not-a-uid", "pattern", 'tcia_series_uid = "not-a-uid"'),
    ],
)
def test_each_bad_value_is_reported_and_nulled(
    column: str, value: object, rule: str, shown: str
) -> None:
    changes: dict[str, object] = {column: value}
    if column in ("num_phases", "acquisition_times"):
        changes["acquisition_times" if column == "num_phases" else "num_phases"] = None
    record, problems = validate_clinical_row(good_row(**changes), 12, file="t.xlsx")
    assert record is not None  # the row is kept
    assert getattr(record, column) is None
    problem = only(problems, column)
    assert problem.severity is Severity.ERROR
    assert problem.rule == rule
    assert problem.case == "DUKE_001"
    assert problem.row == 12
    assert problem.file == "t.xlsx"
    for part in ("DUKE_001", shown, f"rule {rule}", "row 12"):
        assert part in problem.message


def test_all_problems_of_a_row_come_at_once() -> None:
    record, problems = validate_clinical_row(good_row(pcr=7, age="abc", view="coronal"))
    assert record is not None
    assert [(p.column, p.value, p.rule) for p in problems] == [
        ("pcr", "7", "enum"),
        ("age", '"abc"', "type"),
        ("view", '"coronal"', "enum"),
    ]
    assert record.dataset is Dataset.DUKE  # good values survive


def test_patient_size_in_centimetres_gets_a_hint() -> None:
    _, problems = validate_clinical_row(good_row(patient_size=165))
    assert "centimetres" in only(problems, "patient_size").message


def test_lenient_spellings_are_accepted() -> None:
    record, problems = validate_clinical_row(
        good_row(
            pcr="1.0",
            hr=0.0,
            er="0",
            dataset=" duke ",
            view="Axial",
            tumor_subtype="Triple Negative",
            bmi_group="Obesity_Class_2",
            nottingham_grade="HIGH",
            acquisition_date=dt.datetime(2001, 8, 4, 0, 0),
            site=4493,
            pixel_spacing="0.5\\0.5",
        )
    )
    assert problems == []
    assert record is not None
    assert (record.pcr, record.hr, record.er) == (True, False, False)
    assert record.tumor_subtype is TumorSubtype.TRIPLE_NEGATIVE
    assert record.bmi_group is BmiGroup.OBESITY_CLASS_2
    assert record.nottingham_grade is NottinghamGrade.HIGH
    assert record.acquisition_date == dt.date(2001, 8, 4)
    assert record.site == "4493"
    assert record.pixel_spacing == [0.5, 0.5]


def test_empty_cells_are_null_without_problems() -> None:
    record, problems = validate_clinical_row(
        good_row(pcr=None, age="", menopause="  ", weight=float("nan"), her2="NaN", view="N/A")
    )
    assert problems == []
    assert record is not None
    assert (record.pcr, record.age, record.menopause, record.weight) == (None, None, None, None)
    assert (record.her2, record.view) == (None, None)
    assert record.age_group is None
    record, _ = validate_clinical_row(good_row(ethnicity="NA", weight="61,5"))
    assert record is not None
    assert record.ethnicity == "NA"  # free text is kept as written
    assert record.weight == 61.5


def test_row_without_patient_id_is_reported_and_skipped() -> None:
    record, problems = validate_clinical_row({"patient_id": None, "age": 40, "pcr": 1}, 1508)
    assert record is None
    assert len(problems) == 1
    assert problems[0].rule == "missing_id"
    assert problems[0].severity is Severity.WARNING
    assert "row 1508" in problems[0].message
    record, problems = validate_clinical_row({"patient_id": "bad id!", "age": 40}, 3)
    assert record is None
    assert problems[0].rule == "pattern"
    assert problems[0].severity is Severity.ERROR
    # Footer text in the first column with nothing else: a stray row.
    record, problems = validate_clinical_row({"patient_id": "Source: TCIA, 2024", "age": None}, 9)
    assert record is None
    assert (problems[0].rule, problems[0].severity) == ("missing_id", Severity.WARNING)


def test_cross_field_disagreements_are_warnings() -> None:
    record, problems = validate_clinical_row(
        good_row(num_phases=6, acquisition_times="[0, 230, 324, 466, 560]")
    )
    assert record is not None
    problem = only(problems, "acquisition_times")
    assert (problem.severity, problem.rule) == (Severity.WARNING, "cross_field")
    assert "5 times" in problem.message
    assert "num_phases = 6" in problem.message
    assert record.acquisition_times == [0, 230, 324, 466, 560]  # kept

    _, problems = validate_clinical_row(good_row(acquisition_times=None))
    assert only(problems, "acquisition_times").rule == "cross_field"

    _, problems = validate_clinical_row(good_row(dataset="ISPY2"))
    assert only(problems, "dataset").rule == "cross_field"

    _, problems = validate_clinical_row(good_row(acquisition_times="[0, 180, 90]"))
    assert only(problems, "acquisition_times").rule == "order"


def test_breast_density_is_checked_against_a_to_d() -> None:
    record, problems = validate_clinical_row(good_row(breast_density="B"))
    assert problems == []
    assert record is not None
    assert record.breast_density == "b"
    record, problems = validate_clinical_row(good_row(breast_density="dense"))
    problem = only(problems, "breast_density")
    assert (problem.severity, problem.rule) == (Severity.WARNING, "enum")
    assert record is not None
    assert record.breast_density == "dense"


def test_unknown_keys_go_to_extra_as_text() -> None:
    record, problems = validate_clinical_row(good_row(notes=3.0, when=dt.date(2020, 1, 2)))
    assert problems == []
    assert record is not None
    assert record.extra == {"notes": "3", "when": "2020-01-02"}


def test_header_mapping_detects_release_aliases_and_extras() -> None:
    header = ["Patient_ID", "Multifocal Cancer", "oncotype", "breast_density", "notes", "age"]
    mapped = check_clinical_header([*header, "age"], file="f.xlsx")
    assert mapped.columns[:6] == [
        "patient_id",
        "multifocal_cancer",
        "oncotype_score",
        "breast_density",
        "notes",
        "age",
    ]
    assert mapped.columns[6] is None
    assert mapped.release == 2
    assert mapped.extra_columns == ["notes"]
    rules = {(p.rule, p.column) for p in mapped.problems}
    assert ("renamed", "multifocal_cancer") in rules
    assert ("renamed", "oncotype_score") in rules
    assert ("extra_column", "notes") in rules
    assert ("duplicate_column", "age") in rules
    assert ("missing_column", "pcr") in rules
    assert check_clinical_header(RELEASE_1_HEADER).problems == []
    assert check_clinical_header(RELEASE_1_HEADER).release == 1


# --- Arrow ---------------------------------------------------------------------------------------


def test_clinical_arrow_schema_is_derived_from_the_model() -> None:
    schema_1 = clinical_arrow_schema(1)
    schema_2 = clinical_arrow_schema(2)
    assert schema_1.names == [*RELEASE_1_HEADER, *DERIVED_COLUMNS]
    assert len(schema_2.names) == 53
    assert schema_2.field("pcr").type == pa.bool_()
    assert schema_2.field("age").type == pa.int64()
    assert schema_2.field("weight").type == pa.float64()
    assert schema_2.field("pixel_spacing").type == pa.list_(pa.float64())
    assert schema_2.field("acquisition_date").type == pa.date32()
    assert schema_2.field("view").type == pa.string()
    assert not schema_2.field("patient_id").nullable
    meta = schema_2.field("patient_size").metadata
    assert meta[b"unit"] == b"m"
    assert b"metres" in meta[b"description"]
    assert json.loads(schema_2.field("view").metadata[b"values"]) == ["axial", "sagittal"]
    assert schema_2.field("age_group").metadata[b"derived"] == b"true"
    assert schema_2.metadata[b"mamamia.release"] == b"2"
    with_extra = clinical_arrow_schema(1, ["notes", "age"])
    assert with_extra.names[-2:] == ["notes", "extra_age"]  # never shadows a known column
    assert with_extra.field("extra_age").metadata[b"mamamia.extra"] == b"age"


def test_other_table_schemas() -> None:
    assert splits_arrow_schema().names == ["patient_id", "split"]
    quality = quality_arrow_schema({"dice": "float", "note": "string"})
    assert quality.names == ["patient_id", "expert_1_qs", "expert_2_qs", "dice", "note"]
    assert quality.field("dice").type == pa.float64()
    volumes = volumes_arrow_schema()
    for name in (
        "patient_id",
        "kind",
        "phase",
        "zarr_path",
        "shape",
        "dtype",
        "spacing_xyz",
        "origin_xyz",
        "direction",
        "orientation",
        "acquisition_time_s",
        "checksum",
        "mean",
        "std",
        "p1",
        "p99",
    ):
        assert name in volumes.names
    assert volumes.field("spacing_xyz").metadata[b"unit"] == b"mm"
    assert volumes.field("shape").type == pa.list_(pa.int64())


def _optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    max_size=12,
)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _field_strategy(name: str) -> st.SearchStrategy[object]:
    doc = COLUMN_DOCS[name]
    if doc.type == "boolean":
        return _optional(st.booleans())
    if doc.type == "integer":
        return _optional(st.integers(-(2**40), 2**40))
    if doc.type == "float":
        return _optional(_floats)
    if doc.type == "enum":
        assert doc.values is not None
        return _optional(st.sampled_from(doc.values))
    if doc.type == "list[float]":
        return _optional(st.lists(_floats, max_size=6))
    if doc.type == "date":
        return _optional(st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)))
    return _optional(_text)


_records = st.builds(
    lambda ident, fields, extra: ClinicalRecord.model_validate(
        {"patient_id": ident, **fields, "extra": extra}
    ),
    st.from_regex(r"[A-Z0-9]{1,6}_[0-9]{1,6}", fullmatch=True),
    st.fixed_dictionaries({n: _field_strategy(n) for n in CLINICAL_COLUMNS if n != "patient_id"}),
    st.fixed_dictionaries({"notes": _optional(_text), "score": _optional(_text)}),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, max_size=5))
def test_records_arrow_parquet_round_trip(records: list[ClinicalRecord]) -> None:
    schema = clinical_arrow_schema(2, ["notes", "score"])
    table = records_to_arrow(records, schema)
    assert table.schema == schema
    assert records_from_arrow(table, ClinicalRecord) == records
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    back = pq.read_table(buffer)
    assert back.schema.field("patient_size").metadata[b"unit"] == b"m"
    assert records_from_arrow(back, ClinicalRecord) == records


# --- other models ----------------------------------------------------------------------------------


def test_split_and_quality_models() -> None:
    assert SplitAssignment(patient_id="duke_001", split="train").patient_id == "DUKE_001"  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        SplitAssignment(patient_id="DUKE_001", split="val")  # type: ignore[arg-type]
    score, problems = validate_quality_row(
        {
            "patient_id": "ispy1_1001",
            "expert_1_qs": "acceptable",
            "expert_2_qs": "Soso",
            "dice": "0.9",
        }
    )
    assert score is not None
    assert score.patient_id == "ISPY1_1001"
    assert score.expert_1_qs == "Acceptable"
    assert score.expert_2_qs is None
    assert score.extra == {"dice": 0.9}
    assert [(p.column, p.rule, p.value) for p in problems] == [("expert_2_qs", "enum", '"Soso"')]
    table = records_to_arrow([score], quality_arrow_schema({"dice": "float"}))
    assert records_from_arrow(table, QualityScore) == [score]


def test_patient_info_keeps_unknown_keys_and_states_its_box_convention() -> None:
    data = {
        "patient_id": "duke_001",
        "clinical_data": {"age": 41, "menopausal_status": "pre", "new_field": [1, 2]},
        "primary_lesion": {
            "breast_coordinates": {
                "x_min": 1,
                "x_max": 158,
                "y_min": 6,
                "y_max": 276,
                "z_min": 2,
                "z_max": 176,
            },
            "pcr": 0,
            "tumor_subtype": "luminal_a",
            "lesion_volume": 3.2,
        },
        "imaging_data": {"bilateral": True, "field_strength": "3", "echo_time": "fast"},
        "acquisition": {"phases": 6},
    }
    info, problems = validate_patient_info(data, file="duke_001.json", expected_id="DUKE_001")
    assert info is not None
    assert info.patient_id == "DUKE_001"
    assert info.model_extra == {"acquisition": {"phases": 6}}
    assert info.clinical_data is not None
    assert info.clinical_data.model_extra == {"new_field": [1, 2]}
    assert info.primary_lesion is not None
    assert info.primary_lesion.pcr is False
    assert info.primary_lesion.model_extra == {"lesion_volume": 3.2}
    assert info.imaging_data is not None
    assert info.imaging_data.field_strength == 3.0
    assert info.imaging_data.echo_time is None
    assert [(p.column, p.rule) for p in problems] == [("imaging_data.echo_time", "type")]
    box = info.breast_coordinates
    assert box is not None
    # JSON x indexes numpy axis 0 of the SimpleITK array: our z.
    assert box.bbox_min_zyx == (1, 6, 2)
    assert box.bbox_max_zyx == (158, 276, 176)
    dumped = info.model_dump()
    assert dumped["acquisition"] == {"phases": 6}
    assert PatientInfo.model_validate(dumped) == info


def test_patient_info_id_checks() -> None:
    info, problems = validate_patient_info({"clinical_data": {}}, expected_id="nact_01")
    assert info is not None
    assert info.patient_id == "NACT_01"
    assert problems[0].rule == "missing_id"
    info, problems = validate_patient_info({"patient_id": "NACT_02"}, expected_id="NACT_01")
    assert info is not None
    assert info.patient_id == "NACT_02"
    assert problems[0].rule == "cross_field"
    info, problems = validate_patient_info([1, 2], expected_id="NACT_01")
    assert info is None
    assert problems[0].severity is Severity.ERROR
    info, problems = validate_patient_info({"patient_id": 12.5})
    assert info is None
    assert problems[0].column == "patient_id"


def _volume(**changes: object) -> VolumeInfo:
    data: dict[str, object] = {
        "patient_id": "duke_001",
        "kind": "image",
        "phase": 1,
        "zarr_path": "volumes/DUKE_001/0123456789abcdef.zarr/0",
        "shape": (40, 64, 64),
        "dtype": "int16",
        "spacing_xyz": (0.7, 0.7, 2.0),
        "origin_xyz": (-100.0, -120.5, 30.0),
        "direction": (1, 0, 0, 0, 1, 0, 0, 0, 1),
        "orientation": "lps",
        "acquisition_time_s": 90.0,
    }
    data.update(changes)
    return VolumeInfo.model_validate(data)


def test_volume_info_rules_and_round_trip() -> None:
    image = _volume()
    assert image.patient_id == "DUKE_001"
    assert image.orientation == "LPS"
    mask = _volume(kind="expert", phase=None, acquisition_time_s=None, dtype="uint8")
    assert mask.kind is VolumeKind.EXPERT
    with pytest.raises(ValidationError, match="phase"):
        _volume(phase=None)
    with pytest.raises(ValidationError, match="no phase"):
        _volume(kind="automatic")
    with pytest.raises(ValidationError, match="9 numbers"):
        _volume(direction=(1, 0, 0))
    with pytest.raises(ValidationError, match="orientation"):
        _volume(orientation="XYZ")
    table = records_to_arrow([image, mask], volumes_arrow_schema())
    assert records_from_arrow(table, VolumeInfo) == [image, mask]


def test_catalog_manifest_and_version() -> None:
    tables = {
        "cases": TableRef(path="tables/cases-0123456789ab.parquet", sha256="a" * 64, rows=1506)
    }
    version = catalog_version_of(
        dataset_release=1, source_files={"clinical_and_imaging_info.xlsx": "b" * 64}, tables=tables
    )
    assert len(version) == 16
    assert version == catalog_version_of(
        dataset_release=1, source_files={"clinical_and_imaging_info.xlsx": "b" * 64}, tables=tables
    )
    assert version != catalog_version_of(
        dataset_release=1, source_files={"clinical_and_imaging_info.xlsx": "c" * 64}, tables=tables
    )
    manifest = CatalogManifest(
        catalog_version=version,
        dataset_release=1,
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        source_files={"clinical_and_imaging_info.xlsx": "b" * 64},
        tables=tables,
    )
    assert manifest.format_version == FORMAT_VERSION == 1
    assert manifest.licence == "CC BY-NC 4.0"
    dois = {c.doi for c in manifest.citations}
    assert {"10.1038/s41597-025-04707-4", "10.7303/syn60868042"} <= dois
    assert sum(1 for c in CITATIONS if c.kind == "collection") == 4
    assert CatalogManifest.model_validate_json(manifest.model_dump_json()) == manifest
    with pytest.raises(ValidationError):
        TableRef(path="x", sha256="nothex", rows=1)
    with pytest.raises(ValidationError, match="time zone"):
        CatalogManifest(
            catalog_version=version, dataset_release=1, created_at=dt.datetime(2026, 1, 1)
        )


def test_problem_is_frozen_and_prints_its_message() -> None:
    problem = Problem(severity=Severity.ERROR, rule="enum", message="X_1: pcr = 7 (rule enum).")
    assert str(problem) == "error: X_1: pcr = 7 (rule enum)."
    with pytest.raises(ValidationError):
        problem.rule = "other"  # type: ignore[misc]


def test_schema_docs_read_back_the_field_metadata() -> None:
    docs = schema_docs(clinical_arrow_schema(2, ["notes"]))
    assert docs["patient_size"].unit == "m"
    assert docs["view"].values == ["axial", "sagittal"]
    assert docs["age_group"].derived
    assert docs["notes"].legend_field == "notes"
    assert docs["breast_density"].releases == [2]
    volume_docs = schema_docs(volumes_arrow_schema())
    assert volume_docs["spacing_xyz"].unit == "mm"
    assert "SimpleITK" in volume_docs["direction"].description
    assert schema_docs(splits_arrow_schema())["split"].values == ["train", "test"]


def test_json_schema_carries_the_column_docs() -> None:
    schema = ClinicalRecord.model_json_schema(mode="serialization")
    assert schema["properties"]["patient_size"]["unit"] == "m"
    assert "metres" in schema["properties"]["patient_size"]["description"]
    assert schema["properties"]["age_group"]["readOnly"] is True


@pytest.mark.parametrize(
    ("changes", "column"),
    [
        ({"hr": 1, "er": 0, "pr": 0}, "hr"),
        ({"tumor_subtype": "triple_negative", "hr": 1, "her2": 0}, "tumor_subtype"),
        ({"tumor_subtype": "her2_pure", "hr": 0, "her2": 0}, "tumor_subtype"),
        ({"tumor_subtype": "luminal_a", "hr": 0}, "tumor_subtype"),
        ({"dataset": "DUKE", "view": "sagittal"}, "view"),
        ({"weight": 50.0, "patient_size": 1.60, "bmi_group": "obesity_class_3"}, "bmi_group"),
        ({"weight": 90.0, "patient_size": None, "bmi_group": "normal"}, "bmi_group"),
    ],
)
def test_clinical_consistency_warnings(changes: dict[str, object], column: str) -> None:
    record, problems = validate_clinical_row(good_row(**changes))
    assert record is not None
    problem = only(problems, column)
    assert (problem.severity, problem.rule) == (Severity.WARNING, "cross_field")
    for key, value in changes.items():
        if key == column and value is not None:
            assert getattr(record, key) is not None  # kept


def test_consistent_rows_have_no_warnings() -> None:
    _, problems = validate_clinical_row(
        good_row(
            hr=1,
            er=1,
            pr=0,
            her2=0,
            tumor_subtype="luminal_a",
            weight=50.349,  # BMI 18.49 with the default 1.65 m: a rounding case the data has
            bmi_group="normal",
        )
    )
    assert problems == []


_cells = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.dates()
    | st.datetimes()
    | st.sampled_from(
        ["[0, 1]", "[a]", "0", "1", "1.5", "nan", "obesity_class1", "Axial", "2001/02/03"]
    )
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries({}, optional={c: _cells for c in CLINICAL_COLUMNS if c != "patient_id"})
)
def test_any_cell_values_give_a_record_and_problems_never_an_exception(
    cells: dict[str, object],
) -> None:
    record, problems = validate_clinical_row({"patient_id": "DUKE_001", **cells}, 5, file="f")
    assert record is not None
    for problem in problems:
        assert problem.case == "DUKE_001"
        assert problem.column in CLINICAL_COLUMNS
        assert problem.message.startswith("DUKE_001 (row 5): ")
    errors = {p.column for p in problems if p.severity is Severity.ERROR}
    for column in errors:
        assert getattr(record, column) is None  # an error always nulls its value
    # The record survives the Arrow round trip whatever came in.
    schema = clinical_arrow_schema(2)
    assert records_from_arrow(records_to_arrow([record], schema), ClinicalRecord) == [record]
