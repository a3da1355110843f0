"""Bad input gets a clear error naming the case and file, the valid cases are still ingested,
the exit status says so, and --strict leaves an existing catalog exactly as it was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
import zarr

from ingest_helpers import (
    patch_header,
    tree_digest,
    truncate,
    write_case,
    write_table,
    write_volume,
)
from mamamia_ingest import IngestError, ingest

GOOD = "DUKE_001"
BAD = "DUKE_002"


def _raw(tmp_path: Path, **bad_kwargs: Any) -> Path:
    raw = tmp_path / "raw"
    write_case(raw, GOOD)
    write_case(raw, BAD, seed=5, **bad_kwargs)
    write_table(raw, [GOOD, BAD])
    return raw


def _cases(catalog: Path) -> dict[str, dict[str, Any]]:
    ref = json.loads((catalog / "catalog.json").read_text())["tables"]["cases"]
    return {r["patient_id"]: r for r in pq.read_table(catalog / ref["path"]).to_pylist()}


def _errors(report: Any, rule: str) -> list[Any]:
    return [p for p in report.errors if p.rule == rule]


def _check_isolated(catalog: Path, report: Any, rule: str, file_part: str) -> Any:
    """The bad case is reported (case + file named), the good case is still ingested."""
    assert report.exit_code == 1
    found = _errors(report, rule)
    assert found, report.summary()
    problem = found[0]
    assert problem.case == BAD
    assert problem.file is not None
    assert file_part in problem.file
    assert BAD in problem.message
    cases = _cases(catalog)
    assert cases[GOOD]["has_images"]
    saved = json.loads((catalog / "ingest-report.json").read_text())
    assert any(p["rule"] == rule and p["case"] == BAD for p in saved["problems"])
    return cases


def test_truncated_gz_phase(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    path = raw / "images" / BAD / f"{BAD}_0001.nii.gz"
    truncate(path, 0.6)
    # The trap this guards against: SimpleITK itself reads the cut file without complaint.
    sitk.ReadImage(str(path))
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "truncated", f"{BAD}_0001.nii.gz")
    assert not cases[BAD]["has_images"]
    assert not list((tmp_path / "cat" / "volumes").glob(f"{BAD}/*"))


def test_corrupt_gz_phase(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    path = raw / "images" / BAD / f"{BAD}_0002.nii.gz"
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "corrupt", f"{BAD}_0002.nii.gz")
    assert not cases[BAD]["has_images"]


def test_header_over_voxel_budget_is_refused_before_loading(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    path = raw / "images" / BAD / f"{BAD}_0000.nii.gz"
    patch_header(path, (30000, 30000, 30000))  # 54 TB of int16 promised by a tiny file
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "voxel_budget", f"{BAD}_0000.nii.gz")
    assert not cases[BAD]["has_images"]


def test_small_budget_parameter(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False, max_volume_bytes=1000)
    assert report.exit_code == 1
    assert {p.case for p in _errors(report, "voxel_budget")} == {GOOD, BAD}


@pytest.mark.parametrize("dims", [(0, 32, 28), (10, -32, 28)])
def test_dimension_not_positive(tmp_path: Path, dims: tuple[int, ...]) -> None:
    raw = _raw(tmp_path)
    patch_header(raw / "images" / BAD / f"{BAD}_0001.nii.gz", dims)
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    rules = {p.rule for p in report.errors if p.case == BAD}
    assert rules & {"dims", "header"}, report.summary()
    assert _cases(tmp_path / "cat")[GOOD]["has_images"]
    assert not _cases(tmp_path / "cat")[BAD]["has_images"]


def test_mask_geometry_mismatch_drops_the_mask(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    mask = np.zeros((10, 32, 28), np.uint8)
    mask[3:5, 10:12, 10:12] = 1
    write_volume(raw / "segmentations/expert" / f"{BAD}.nii.gz", mask, spacing=(0.9, 0.7, 2.0))
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "geometry", f"expert/{BAD}.nii.gz")
    assert cases[BAD]["has_images"]
    assert cases[BAD]["has_automatic"]
    assert not cases[BAD]["has_expert"]
    assert cases[BAD]["tumor_voxels"] is None


def test_mask_size_mismatch(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    write_volume(
        raw / "segmentations/automatic" / f"{BAD}.nii.gz", np.zeros((10, 32, 27), np.uint8)
    )
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "geometry", f"automatic/{BAD}.nii.gz")
    assert not cases[BAD]["has_automatic"]


def test_rerun_with_a_bad_mask_reuses_and_reports_again(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    truncate(raw / "segmentations/automatic" / f"{BAD}.nii.gz", 0.5)
    mask = np.zeros((10, 32, 28), np.uint8)
    write_volume(raw / "segmentations/expert" / f"{BAD}.nii.gz", mask, spacing=(0.9, 0.7, 2.0))
    first = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    again = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert again.built == 0
    assert again.reused == 2
    assert sorted(p.rule for p in again.errors) == sorted(p.rule for p in first.errors)
    assert {p.rule for p in again.errors} == {"truncated", "geometry"}
    assert again.exit_code == 1


def test_mask_values_other_than_0_1(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    mask = np.zeros((10, 32, 28), np.uint8)
    mask[2:4, 5:9, 5:9] = 2
    write_volume(raw / "segmentations/expert" / f"{BAD}.nii.gz", mask)
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "mask_values", f"expert/{BAD}.nii.gz")
    assert "2" in _errors(report, "mask_values")[0].message
    assert not cases[BAD]["has_expert"]


def test_phase_geometry_mismatch_skips_the_case(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    rng = np.random.default_rng(0)
    write_volume(
        raw / "images" / BAD / f"{BAD}_0002.nii.gz",
        rng.normal(100, 10, (10, 32, 28)).astype(np.int16),
        origin=(-20.0, 10.001, 5.0),  # 1 µm off is over the 1e-4 mm tolerance
    )
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    cases = _check_isolated(tmp_path / "cat", report, "geometry", f"{BAD}_0002.nii.gz")
    assert not cases[BAD]["has_images"]


def test_geometry_within_tolerance_is_accepted(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    rng = np.random.default_rng(0)
    write_volume(
        raw / "images" / BAD / f"{BAD}_0002.nii.gz",
        rng.normal(100, 10, (10, 32, 28)).astype(np.int16),
        origin=(-20.0, 10.00001, 5.0),
    )
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()


def test_missing_phase(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    (raw / "images" / BAD / f"{BAD}_0001.nii.gz").unlink()
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert [p.case for p in _errors(report, "missing_phase")] == [BAD]
    assert not _cases(tmp_path / "cat")[BAD]["has_images"]


def test_uncompressed_sibling_is_not_read_instead(tmp_path: Path) -> None:
    """SimpleITK opens x.nii when asked for x.nii.gz if both exist; ingest must not."""
    raw = _raw(tmp_path)
    gz = raw / "images" / BAD / f"{BAD}_0000.nii.gz"
    write_volume(gz.with_suffix(""), np.full((10, 32, 28), 7, np.int16))
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()
    warn = [p for p in report.warnings if p.rule == "duplicate_file"]
    assert warn
    assert warn[0].case == BAD
    # Read the .gz bytes ourselves (through a name with no sibling) as the reference.
    solo = tmp_path / "solo" / "x.nii.gz"
    solo.parent.mkdir()
    shutil.copy(gz, solo)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(solo)))
    assert not np.array_equal(expected, np.full_like(expected, 7))
    gen = _cases(tmp_path / "cat")[BAD]["generation"]
    stored = zarr.open_array(tmp_path / "cat" / "volumes" / BAD / f"{gen}.zarr" / "0", mode="r")
    assert np.array_equal(stored[0], expected)


def test_unparseable_table_values(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_case(raw, GOOD)
    write_table(raw, [GOOD, BAD], overrides={(BAD, "age"): "abc", (BAD, "view"): "coronal"})
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 1
    columns = {p.column for p in report.errors if p.case == BAD}
    assert {"age", "view"} <= columns
    row = _cases(tmp_path / "cat")[BAD]
    assert row["age"] is None
    assert row["view"] is None
    assert row["dataset"] == "DUKE"  # the row is kept


def test_missing_clinical_table_is_fatal(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_case(raw, GOOD)
    with pytest.raises(IngestError, match="clinical_and_imaging_info"):
        ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert not (tmp_path / "cat").exists()


def test_strict_stops_and_leaves_the_catalog_as_it_was(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    catalog = tmp_path / "cat"
    first = ingest(raw, catalog, jobs=1, progress=False)
    assert first.exit_code == 0
    before = tree_digest(catalog)
    # A new good case (built, then removed again) and a new broken one.
    write_case(raw, "DUKE_005", seed=7)
    write_case(raw, "DUKE_009", seed=8)
    write_table(raw, [GOOD, BAD, "DUKE_005", "DUKE_009"])
    truncate(raw / "images" / "DUKE_009" / "DUKE_009_0000.nii.gz", 0.5)
    folders = sorted(p for p in catalog.rglob("*") if p.is_dir())
    report = ingest(raw, catalog, jobs=1, strict=True, progress=False)
    assert report.stopped_early
    assert report.exit_code == 1
    assert tree_digest(catalog) == before
    assert sorted(p for p in catalog.rglob("*") if p.is_dir()) == folders
    # Without --strict the same input is ingested around the bad case.
    report = ingest(raw, catalog, jobs=1, progress=False)
    assert not report.stopped_early
    assert _cases(catalog)["DUKE_005"]["has_images"]


def test_strict_on_a_new_catalog_creates_nothing(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    truncate(raw / "images" / BAD / f"{BAD}_0000.nii.gz", 0.5)
    report = ingest(raw, tmp_path / "cat", jobs=2, strict=True, progress=False)
    assert report.stopped_early
    assert not (tmp_path / "cat").exists()


def test_cli_exit_status_and_summary(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    truncate(raw / "images" / BAD / f"{BAD}_0001.nii.gz", 0.5)
    cmd = [sys.executable, "-m", "mamamia._cli"]
    probe = subprocess.run([*cmd, "--help"], capture_output=True, text=True)
    if probe.returncode != 0 or "Usage" not in probe.stdout:
        cmd = [str(Path(sys.executable).with_name("mamamia"))]
    done = subprocess.run(
        [*cmd, "ingest", str(raw), str(tmp_path / "cat"), "--jobs", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "truncated" in done.stdout
    assert BAD in done.stdout
    missing = subprocess.run(
        [*cmd, "ingest", str(tmp_path / "cat"), str(tmp_path / "cat2"), "-q"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert missing.returncode == 2
    assert "clinical_and_imaging_info" in missing.stderr
