"""The ingest report tells the whole truth: splits / quality rows naming unknown cases are
warnings naming them; a fatal table error replaces the previous report with a failed one;
NaN/inf voxels are counted and kept out of the statistics; a phase mix that no one type holds
exactly is refused; and two runs over the same input report the same messages."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import openpyxl
import pyarrow.parquet as pq
import pytest

from ingest_helpers import write_case, write_table, write_volume
from mamamia_ingest import IngestError, ingest
from mamamia_ingest._report_checks import clean_message

CASES = ["DUKE_001", "DUKE_002"]


def _raw(root: Path) -> Path:
    for i, case in enumerate(CASES):
        write_case(root, case, n_phases=2, seed=i)
    write_table(root, CASES)
    (root / "train_test_splits.csv").write_text(
        "train_split,test_split\nDUKE_001,DUKE_002\nGHOST_007,\n"
    )
    (root / "preliminary_automatic_segmentations_quality_scores.csv").write_text(
        "patient_id,expert_1_qs,expert_2_qs\nDUKE_001,Good,Good\nPHANTOM_9,Poor,Poor\n"
    )
    return root


def _report(catalog: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((catalog / "ingest-report.json").read_text())
    return data


def test_unknown_cases_in_splits_and_quality_are_warnings(tmp_path: Path) -> None:
    raw = _raw(tmp_path / "raw")
    report = ingest(raw, tmp_path / "catalog", jobs=1, progress=False)
    unknown = {(p.case, p.file): p for p in report.problems if p.rule == "unknown_case"}
    assert set(unknown) == {
        ("GHOST_007", "train_test_splits.csv"),
        ("PHANTOM_9", "preliminary_automatic_segmentations_quality_scores.csv"),
    }
    assert all(p.severity.value == "warning" for p in unknown.values())
    assert "GHOST_007" in unknown["GHOST_007", "train_test_splits.csv"].message
    assert report.exit_code == 0  # warnings alone do not fail


def test_a_fatal_table_error_replaces_the_report(tmp_path: Path) -> None:
    raw = _raw(tmp_path / "raw")
    catalog = tmp_path / "catalog"
    first = ingest(raw, catalog, jobs=1, progress=False)
    assert _report(catalog)["catalog_version"] == first.catalog_version
    manifest = (catalog / "catalog.json").read_bytes()
    # The clinical table loses its patient_id column.
    book = openpyxl.load_workbook(raw / "clinical_and_imaging_info.xlsx")
    sheet = book["dataset_info"]
    for cell in sheet[1]:
        if cell.value == "patient_id":
            cell.value = "subject"
    book.save(raw / "clinical_and_imaging_info.xlsx")
    with pytest.raises(IngestError) as caught:
        ingest(raw, catalog, jobs=1, progress=False)
    failed = _report(catalog)
    assert failed["fatal"] == clean_message(str(caught.value), {str(raw.resolve()): "RAW"})
    assert "patient_id" in str(failed["fatal"])
    assert failed["catalog_version"] is None and failed["published"] is False
    assert (catalog / "catalog.json").read_bytes() == manifest  # the catalog is unchanged


def test_clean_message_drops_pointers_and_roots() -> None:
    text = "ITK ERROR: NiftiImageIO(0x563da7c500e0): /data/raw/images/A/a.nii.gz is bad"
    assert clean_message(text, {"/data/raw": "RAW"}) == (
        "ITK ERROR: NiftiImageIO: images/A/a.nii.gz is bad"
    )


def test_non_finite_voxels_and_lossy_mixes(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_case(raw, "DUKE_001", n_phases=2, seed=1)
    write_case(raw, "DUKE_002", n_phases=2, seed=2)
    write_table(raw, CASES)
    # DUKE_001 phase 1: float32 with NaN and inf; DUKE_002 phase 1: uint64 beside int16
    # (their common type would be float64, which cannot hold every uint64).
    p1 = raw / "images/DUKE_001/DUKE_001_0001.nii.gz"
    values = np.asarray(nib.load(p1).dataobj).astype(np.float32)
    values[0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    img = nib.Nifti1Image(values, nib.load(p1).affine, dtype=np.float32)
    nib.save(img, p1)
    p2 = raw / "images/DUKE_002/DUKE_002_0001.nii.gz"
    big = np.asarray(nib.load(p2).dataobj).astype(np.uint64) + np.uint64((1 << 60) + 1)
    write_volume(p2, big.transpose(2, 1, 0), spacing=(0.75, 0.7, 2.0), origin=(-20.0, 10.0, 5.0))
    catalog = tmp_path / "catalog"
    report = ingest(raw, catalog, jobs=1, progress=False)

    (nan_note,) = [p for p in report.problems if p.rule == "non_finite"]
    assert nan_note.case == "DUKE_001" and nan_note.value == "4"
    assert "DUKE_001_0001" in str(nan_note.file)
    volumes = pq.read_table(catalog / "tables/volumes.parquet").to_pylist()
    row = next(r for r in volumes if r["patient_id"] == "DUKE_001" and r["phase"] == 1)
    finite = values[np.isfinite(values)]
    assert row["mean"] == pytest.approx(float(finite.mean(dtype=np.float64)), rel=1e-12)
    assert row["p99"] is not None

    (lossy,) = [p for p in report.problems if p.case == "DUKE_002" and p.rule == "pixel_type"]
    assert "uint64" in lossy.message and lossy.severity.value == "error"
    assert not any(r["patient_id"] == "DUKE_002" for r in volumes)


def test_two_runs_report_the_same_messages(tmp_path: Path) -> None:
    raw = _raw(tmp_path / "raw")
    bad = raw / "images/DUKE_002/DUKE_002_0001.nii.gz"
    data = bytearray(gzip.decompress(bad.read_bytes()))
    data[72:74] = (8).to_bytes(2, "little")  # bitpix 8 for int16: refused, not half-read
    bad.write_bytes(gzip.compress(bytes(data)))
    a = ingest(raw, tmp_path / "a" / "catalog", jobs=1, progress=False)
    b = ingest(raw, tmp_path / "b" / "catalog", jobs=1, progress=False)
    assert [p.model_dump() for p in a.problems] == [p.model_dump() for p in b.problems]
    (header,) = [p for p in a.problems if p.rule == "header"]
    assert "bitpix" in header.message and "DUKE_002_0001" in header.message
    assert str(tmp_path) not in json.dumps([p.model_dump(mode="json") for p in a.problems])
