"""The sdk's raw-table readers, on the real clinical table and on small bad files."""

from __future__ import annotations

import collections
import datetime as dt
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest

from mamamia import (
    TableReadError,
    find_raw_file,
    locate_raw_files,
    read_clinical_table,
    read_patient_info,
    read_quality_scores,
    read_splits,
)
from mamamia import _table_rows as table_rows_module
from mamamia._tables import ClinicalTable
from mamamia_schema import (
    COLUMN_DOCS,
    ClinicalRecord,
    Severity,
    Split,
    clinical_arrow_schema,
    clinical_columns,
    records_from_arrow,
)

REAL_TABLE = Path(__file__).parent / "data" / "clinical_and_imaging_info.xlsx"


@pytest.fixture(scope="session")
def real() -> ClinicalTable:
    return read_clinical_table(REAL_TABLE)


def raw_rows() -> list[dict[str, object]]:
    workbook = openpyxl.load_workbook(REAL_TABLE, read_only=True, data_only=True)
    rows = list(workbook["dataset_info"].iter_rows(values_only=True))
    workbook.close()
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, r, strict=False)) for r in rows[1:]]


# --- the real table -------------------------------------------------------------------------------


def test_real_table_reads_without_errors(real: ClinicalTable) -> None:
    assert real.release == 1
    assert len(real.records) == 1506
    counts = collections.Counter(r.dataset.value for r in real.records if r.dataset)
    assert counts == {"DUKE": 291, "ISPY1": 171, "ISPY2": 980, "NACT": 64}
    assert real.errors == []
    assert real.extra_columns == []
    assert {r.patient_id for r in real.records} == {str(r["patient_id"]) for r in raw_rows()}


def test_real_table_warnings_are_exactly_the_phase_count_disagreements(real: ClinicalTable) -> None:
    expected = set()
    for row in raw_rows():
        times = row["acquisition_times"]
        count = len(json.loads(str(times))) if times else 0
        if count != row["num_phases"]:
            expected.add(str(row["patient_id"]))
    assert len(expected) == 36  # what the first release has
    assert {(p.rule, p.column) for p in real.problems} == {("cross_field", "acquisition_times")}
    assert all(p.severity is Severity.WARNING for p in real.problems)
    assert {p.case for p in real.problems} == expected
    duke_406 = next(p for p in real.problems if p.case == "DUKE_406")
    assert "5 times" in duke_406.message
    assert "num_phases = 6" in duke_406.message


def test_real_table_pcr_by_dataset(real: ClinicalTable) -> None:
    pcr = collections.Counter((r.dataset.value if r.dataset else None, r.pcr) for r in real.records)
    assert (pcr["DUKE", True], pcr["DUKE", False], pcr["DUKE", None]) == (64, 216, 11)
    assert (pcr["ISPY2", True], pcr["ISPY2", False], pcr["ISPY2", None]) == (316, 664, 0)


def test_real_table_values_are_typed(real: ClinicalTable) -> None:
    by_id = real.by_id()
    assert all(r.pixel_spacing is not None and len(r.pixel_spacing) == 2 for r in real.records)
    assert {r.view.value for r in real.records if r.view} == {"axial", "sagittal"}
    nact = [r for r in real.records if r.patient_id.startswith("NACT_")]
    assert {r.site for r in nact} == {"4493"}
    assert all(r.site is None or r.site == r.site.strip() for r in real.records)
    assert all(r.scanner_model == (r.scanner_model or "").strip() for r in real.records)
    # DUKE rows have no dates; every other row has a yyyy/mm/dd date.
    undated = {r.patient_id for r in real.records if r.acquisition_date is None}
    assert undated == {r.patient_id for r in real.records if r.patient_id.startswith("DUKE_")}
    assert all(
        isinstance(r.acquisition_date, dt.date) for r in real.records if r.patient_id not in undated
    )
    assert by_id["DUKE_001"].acquisition_date is None
    patient_sizes = [r.patient_size for r in real.records if r.patient_size is not None]
    assert min(patient_sizes) > 1.4
    assert max(patient_sizes) < 1.9
    subtype = collections.Counter(
        r.tumor_subtype_group.value if r.tumor_subtype_group else None for r in real.records
    )
    assert subtype["luminal"] == 211 + 381 + 155
    assert subtype[None] == 26
    ethnicity = collections.Counter(
        r.ethnicity_group.value if r.ethnicity_group else None for r in real.records
    )
    assert ethnicity["caucasian"] == 1128
    assert ethnicity["african_american"] == 241
    assert ethnicity["asian"] == 86
    assert ethnicity[None] == 16
    assert ethnicity["other"] == 1506 - 1128 - 241 - 86 - 16
    assert sum(1 for r in real.records if r.age_group is None) == 3
    assert {r.bmi_group.value for r in real.records if r.bmi_group} >= {"obesity_class_1"}


def test_real_table_arrow_and_legend(real: ClinicalTable) -> None:
    assert real.table.schema == clinical_arrow_schema(1)
    assert real.table.num_rows == 1506
    assert records_from_arrow(real.table.slice(0, 50), ClinicalRecord) == real.records[:50]
    assert set(real.legend) == {
        *clinical_columns(1),
        "age_group",
        "ethnicity_group",
        "tumor_subtype_group",
    }
    assert real.legend["patient_size"].unit == "m"
    assert real.legend["patient_size"] == COLUMN_DOCS["patient_size"]


# --- small files ------------------------------------------------------------------------------------

HEADER_1 = list(clinical_columns(1))


def row(**values: object) -> list[object]:
    base: dict[str, object] = {
        "patient_id": "DUKE_001",
        "dataset": "DUKE",
        "pcr": 0,
        "age": 50,
        "view": "axial",
        "num_phases": 3,
        "acquisition_times": "[0, 90, 180]",
        "pixel_spacing": "[0.7, 0.7]",
    }
    base.update(values)
    return [base.get(c) for c in HEADER_1] + [base.get(k) for k in values if k not in HEADER_1]


def write_xlsx(
    path: Path, header: list[object], rows: list[list[object]], *, sheet: str = "dataset_info"
) -> Path:
    workbook = openpyxl.Workbook()
    data = workbook.active
    assert data is not None
    data.title = sheet
    data.append(header)
    for values in rows:
        data.append(values)
    legend = workbook.create_sheet("legend")
    legend.append(["Field", "Description", "Options", None])
    legend.append(["patient_id", "id", "kept", None])
    legend.append(["notes", "Free notes added by a site", "any text", None])
    legend.append([None, None, "more options", None])
    workbook.save(path)
    return path


def write_csv(path: Path, header: list[object], rows: list[list[object]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for values in rows:
            writer.writerow(["" if v is None else v for v in values])
    return path


BAD_ROWS = [
    row(patient_id="DUKE_001", pcr=7),
    row(patient_id="DUKE_002", age="abc"),
    row(patient_id="DUKE_003", view="coronal"),
    row(patient_id="DUKE_004", dataset="MAYO"),
    row(patient_id="DUKE_005", pixel_spacing="[0.7]"),
    row(patient_id="DUKE_006", acquisition_date="2001/02/30"),
    row(patient_id="DUKE_007", num_phases=4),  # 3 times for 4 phases: a warning
    [None] * len(HEADER_1),  # blank: formatting, ignored
    row(patient_id=None, age=40),  # stray row
    row(patient_id="DUKE_001", pcr=1),  # duplicate id
    row(patient_id="duke_008", tumor_subtype="Luminal_A", bmi_group="obesity_class1"),
    ["Generated by the MAMA-MIA team", *[None] * (len(HEADER_1) - 1)],  # footer: stray row
]

EXPECTED = {
    ("DUKE_001", "pcr", "7", "enum", Severity.ERROR),
    ("DUKE_002", "age", '"abc"', "type", Severity.ERROR),
    ("DUKE_003", "view", '"coronal"', "enum", Severity.ERROR),
    ("DUKE_004", "dataset", '"MAYO"', "enum", Severity.ERROR),
    ("DUKE_005", "pixel_spacing", '"[0.7]"', "length", Severity.ERROR),
    ("DUKE_006", "acquisition_date", '"2001/02/30"', "type", Severity.ERROR),
    ("DUKE_007", "acquisition_times", '"[0, 90, 180]"', "cross_field", Severity.WARNING),
    (None, "patient_id", None, "missing_id", Severity.WARNING),
    (None, "patient_id", '"Generated by the MAMA-MIA team"', "missing_id", Severity.WARNING),
    ("DUKE_001", "patient_id", '"DUKE_001"', "duplicate_id", Severity.ERROR),
}


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_bad_values_stray_rows_and_duplicates(tmp_path: Path, kind: str) -> None:
    if kind == "xlsx":
        path = write_xlsx(tmp_path / "clinical_and_imaging_info.xlsx", list(HEADER_1), BAD_ROWS)
    else:
        path = write_csv(tmp_path / "clinical_and_imaging_info.csv", list(HEADER_1), BAD_ROWS)
    table = read_clinical_table(path, relpath=path.name)
    found = {(p.case, p.column, p.value, p.rule, p.severity) for p in table.problems}
    if kind == "csv":  # every CSV cell is text, so the number shows as text
        found = {(c, col, "7" if v == '"7"' else v, r, s) for c, col, v, r, s in found}
    assert found == EXPECTED
    assert all(p.file == path.name for p in table.problems)
    ids = [r.patient_id for r in table.records]
    assert ids == [f"DUKE_00{i}" for i in range(1, 9)]  # bad values keep their row
    by_id = table.by_id()
    assert by_id["DUKE_001"].pcr is None  # the first DUKE_001 wins, its bad value nulled
    assert by_id["DUKE_002"].age is None
    assert by_id["DUKE_003"].view is None
    assert by_id["DUKE_004"].dataset is None
    assert by_id["DUKE_008"].bmi_group == "obesity_class_1"
    assert by_id["DUKE_008"].tumor_subtype_group == "luminal"
    stray = next(p for p in table.problems if p.rule == "missing_id" and p.value is None)
    assert stray.row == 10  # header is row 1, the blank row 9
    assert table.table.num_rows == 8


def test_release_2_layout_and_extra_columns(tmp_path: Path) -> None:
    header = [*list(clinical_columns(2)), "notes", None, "Site Code"]
    assert header[header.index("bmi_group") + 1] == "breast_density"

    def row2(case: str, density: object, notes: object, code: object) -> list[object]:
        values = dict(zip(HEADER_1, row(patient_id=case), strict=True))
        values["breast_density"] = density
        return [values.get(str(c)) for c in header[:50]] + [notes, None, code]

    path = write_xlsx(
        tmp_path / "CLINICAL_AND_IMAGING_INFO.XLSX",
        header,
        [
            row2("DUKE_001", "a", "first", 12),
            row2("DUKE_002", "E", None, "x"),
            row2("DUKE_003", None, 3.5, None),
        ],
    )
    table = read_clinical_table(path)
    assert table.release == 2
    assert table.extra_columns == ["notes", "Site Code"]
    assert [r.breast_density for r in table.records] == ["a", "e", None]
    density = [p for p in table.problems if p.column == "breast_density"]
    assert [(p.case, p.severity, p.rule) for p in density] == [
        ("DUKE_002", Severity.WARNING, "enum")
    ]
    notes = [p for p in table.problems if p.rule == "extra_column"]
    assert {p.column for p in notes} == {"notes", "Site Code"}
    assert all(p.severity is Severity.NOTE for p in notes)
    assert table.records[0].extra == {"notes": "first", "Site Code": "12"}
    assert table.records[2].extra == {"notes": "3.5", "Site Code": None}
    assert table.table.schema == clinical_arrow_schema(2, ["notes", "Site Code"])
    assert table.table.column("Site Code").to_pylist() == ["12", "x", None]
    assert table.table.column("breast_density").to_pylist() == ["a", "e", None]
    # The sheet's legend describes the unknown column.
    assert table.legend["notes"].description == "Free notes added by a site"
    assert "breast_density" in table.legend
    assert records_from_arrow(table.table, ClinicalRecord) == table.records


def test_data_under_an_empty_header_cell_is_kept(tmp_path: Path) -> None:
    header: list[object] = [*HEADER_1, None]
    path = write_xlsx(tmp_path / "t.xlsx", header, [[*row(), "surprise"]])
    table = read_clinical_table(path)
    assert table.extra_columns == [f"column_{len(HEADER_1) + 1}"]
    assert table.records[0].extra == {f"column_{len(HEADER_1) + 1}": "surprise"}


def test_other_sheet_names_and_rows_above_the_header(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    notes = workbook.active
    assert notes is not None
    notes.title = "readme"
    notes.append(["This workbook holds the MAMA-MIA table"])
    data = workbook.create_sheet("Data")
    data.append(["MAMA-MIA clinical table, second copy"])
    data.append([])
    data.append(list(HEADER_1))
    data.append(row())
    path = tmp_path / "t.xlsx"
    workbook.save(path)
    table = read_clinical_table(path)
    assert [r.patient_id for r in table.records] == ["DUKE_001"]
    rules = {p.rule for p in table.problems}
    assert {"sheet", "skipped_rows", "extra_sheet"} <= rules
    assert table.records[0].patient_id == "DUKE_001"
    assert next(p for p in table.problems if p.rule == "skipped_rows").severity is Severity.NOTE


def test_files_that_cannot_be_read_raise_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(TableReadError, match="no such file"):
        read_clinical_table(tmp_path / "missing.xlsx")
    garbage = tmp_path / "garbage.xlsx"
    garbage.write_bytes(b"this is not a zip")
    with pytest.raises(TableReadError, match=r"garbage\.xlsx.*not an xlsx"):
        read_clinical_table(garbage)
    no_id = write_csv(tmp_path / "no_id.csv", ["case", "age"], [["DUKE_001", 40]])
    with pytest.raises(TableReadError, match=r"no_id\.csv.*patient_id"):
        read_clinical_table(no_id)
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(TableReadError, match="xls"):
        read_clinical_table(old)


def test_zip_bombs_are_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(TableReadError, match=r"bomb\.xlsx.*ratio"):
        read_clinical_table(bomb)
    monkeypatch.setattr(table_rows_module, "MAX_XLSX_UNCOMPRESSED", 1024)
    with pytest.raises(TableReadError, match=r"clinical_and_imaging_info\.xlsx.*inflates"):
        read_clinical_table(REAL_TABLE)


def test_oversized_csv_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "t.csv", list(HEADER_1), [row()])
    monkeypatch.setattr(table_rows_module, "MAX_CSV_BYTES", 10)
    with pytest.raises(TableReadError, match=r"t\.csv"):
        read_clinical_table(path)


def test_semicolon_csv_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    lines = [";".join(HEADER_1), ";".join("" if v is None else str(v) for v in row())]
    path.write_bytes("\ufeff".encode() + "\n".join(lines).encode())
    table = read_clinical_table(path)
    assert table.errors == []
    assert table.records[0].pixel_spacing == [0.7, 0.7]


# --- splits, quality scores, patient JSON -----------------------------------------------------------


def test_read_splits_padded_columns(tmp_path: Path) -> None:
    path = tmp_path / "train_test_splits.csv"
    path.write_text(
        "train_split,test_split\n"
        "DUKE_001,DUKE_002\n"
        "duke_003,ISPY1_1001\n"
        "NACT_01,\n"
        "DUKE_003,\n"
        "ISPY1_1001,\n"
        "bad id!,\n"
        ",\n"
    )
    splits = read_splits(path)
    assert splits.splits == {
        "DUKE_001": Split.TRAIN,
        "DUKE_002": Split.TEST,
        "DUKE_003": Split.TRAIN,
        "NACT_01": Split.TRAIN,
    }
    rules = collections.Counter((p.rule, p.severity) for p in splits.problems)
    assert rules == {
        ("duplicate_id", Severity.NOTE): 1,
        ("conflict", Severity.ERROR): 1,
        ("pattern", Severity.ERROR): 1,
    }
    conflict = next(p for p in splits.problems if p.rule == "conflict")
    assert conflict.case == "ISPY1_1001"
    assert splits.ids("test") == ["DUKE_002"]
    assert splits.table.num_rows == 4


def test_read_splits_long_layout_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "splits.csv"
    path.write_text("patient_id,split\nDUKE_001,train\nDUKE_002,Test\nDUKE_003,val\n")
    splits = read_splits(path)
    assert splits.splits == {"DUKE_001": Split.TRAIN, "DUKE_002": Split.TEST}
    assert [(p.case, p.rule) for p in splits.problems] == [("DUKE_003", "enum")]
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(TableReadError, match=r"other\.csv"):
        read_splits(other)


@pytest.mark.parametrize(
    "name",
    [
        "preliminary_automatic_segmentations_quality_scores.csv",
        "Automatic_Segmentations_Quality_Scores.csv",
    ],
)
def test_read_quality_scores(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(
        "patient_id,expert_1_qs,expert_2_qs,dice,hd95,comment\n"
        "duke_001,Good,acceptable,0.91,4.2,fine\n"
        "DUKE_002,Poor,Excellent,0.35,,\n"
        "DUKE_002,Good,Good,0.9,1,\n"
        ",Good,Good,,,\n"
    )
    found = locate_raw_files(tmp_path).quality_scores
    assert found is not None
    assert found.name == name
    quality = read_quality_scores(found)
    assert list(quality.rows) == ["DUKE_001", "DUKE_002"]
    first = quality.rows["DUKE_001"]
    assert (first.expert_1_qs, first.expert_2_qs) == ("Good", "Acceptable")
    assert first.extra == {"dice": 0.91, "hd95": 4.2, "comment": "fine"}
    assert quality.rows["DUKE_002"].expert_2_qs is None
    assert quality.extra_columns == {"dice": "float", "hd95": "float", "comment": "string"}
    rules = {(p.case, p.rule) for p in quality.problems}
    assert rules == {
        ("DUKE_002", "enum"),
        ("DUKE_002", "duplicate_id"),
        (None, "missing_id"),
        (None, "extra_column"),
    }
    assert quality.table.column("dice").to_pylist() == [0.91, 0.35]
    assert quality.table.column("comment").to_pylist() == ["fine", None]


def test_read_patient_info(tmp_path: Path) -> None:
    path = tmp_path / "duke_001.json"
    path.write_text(
        json.dumps(
            {
                "patient_id": "DUKE_001",
                "clinical_data": {"age": 41, "menopausal_status": "pre", "breast_density": "b"},
                "primary_lesion": {
                    "breast_coordinates": {
                        "x_min": 0,
                        "x_max": 100,
                        "y_min": 10,
                        "y_max": 200,
                        "z_min": 5,
                        "z_max": 300,
                    },
                    "pcr": 1,
                    "tumor_subtype": "luminal_b",
                },
                "imaging_data": {"field_strength": 1.5, "scanner_model": "Avanto", "coil": "8ch"},
                "segmentation": {"reader": 2},
            }
        )
    )
    info, problems = read_patient_info(path)
    assert problems == []
    assert info is not None
    assert info.patient_id == "DUKE_001"
    assert info.model_extra == {"segmentation": {"reader": 2}}
    assert info.imaging_data is not None
    assert info.imaging_data.model_extra == {"coil": "8ch"}
    assert info.breast_coordinates is not None
    assert info.breast_coordinates.bbox_max_zyx == (100, 200, 300)

    nan = tmp_path / "duke_002.json"
    nan.write_text('{"patient_id": "DUKE_002", "clinical_data": {"age": NaN}}')
    info, problems = read_patient_info(nan)
    assert info is not None
    assert info.clinical_data is not None
    assert info.clinical_data.age is None
    assert [p.rule for p in problems] == ["json_constant"]

    broken = tmp_path / "duke_003.json"
    broken.write_text('{"patient_id": ')
    info, problems = read_patient_info(broken)
    assert info is None
    assert problems[0].severity is Severity.ERROR
    assert problems[0].case == "DUKE_003"
    assert "duke_003.json" in problems[0].message
    with pytest.raises(TableReadError):
        read_patient_info(tmp_path / "nope.json")


def test_locate_raw_files(tmp_path: Path) -> None:
    write_xlsx(tmp_path / "Clinical_and_Imaging_Info.xlsx", list(HEADER_1), [row()])
    (tmp_path / "train_test_splits.csv").write_text("train_split,test_split\n")
    (tmp_path / "SYNAPSE_METADATA_MANIFEST.tsv").write_text("x")
    info_dir = tmp_path / "patient_info_files"
    info_dir.mkdir()
    (info_dir / "duke_001.json").write_text("{}")
    (info_dir / "NACT_01.JSON").write_text("{}")
    (info_dir / "manifest.csv").write_text("x")
    raw = locate_raw_files(tmp_path)
    assert raw.clinical_table == tmp_path / "Clinical_and_Imaging_Info.xlsx"
    assert raw.splits == tmp_path / "train_test_splits.csv"
    assert raw.quality_scores is None
    assert raw.patient_info == {
        "DUKE_001": info_dir / "duke_001.json",
        "NACT_01": info_dir / "NACT_01.JSON",
    }
    assert [(p.rule, p.severity) for p in raw.problems] == [("missing_file", Severity.WARNING)]
    assert find_raw_file(tmp_path, ["synapse_metadata_manifest.tsv"]) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert locate_raw_files(empty).problems[0].severity is Severity.ERROR
    with pytest.raises(TableReadError):
        locate_raw_files(tmp_path / "nowhere")


def test_xml_entities_are_refused(tmp_path: Path) -> None:
    # openpyxl parses with defusedxml when it is installed (a dependency of the sdk).
    assert openpyxl.xml.DEFUSEDXML
    bomb = tmp_path / "laughs.xlsx"
    with zipfile.ZipFile(REAL_TABLE) as source, zipfile.ZipFile(bomb, "w") as target:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":
                head = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                dtd = b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
                data = data.replace(head, head + dtd, 1)
            target.writestr(member, data)
    with pytest.raises(TableReadError, match=r"laughs\.xlsx"):
        read_clinical_table(bomb)


def test_a_wrong_sheet_dimension_loses_nothing(tmp_path: Path) -> None:
    # openpyxl's read-only mode trusts <dimension>; a writer that gets it wrong must not cost rows.
    import re

    damaged = tmp_path / "dimension.xlsx"
    with zipfile.ZipFile(REAL_TABLE) as source, zipfile.ZipFile(damaged, "w") as target:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:C10"/>', data)
            target.writestr(member, data)
    table = read_clinical_table(damaged)
    assert len(table.records) == 1506
    assert table.errors == []
    assert table.records[-1].tcia_series_uid is not None
