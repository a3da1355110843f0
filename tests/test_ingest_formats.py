"""NIfTI variants the fast path must get exactly right (or hand to SimpleITK): intensity
scaling, big-endian files, uncompressed .nii, float masks; plus the catalog lock."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import struct
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
import zarr

from ingest_helpers import case_arrays, write_case, write_table, write_volume
from mamamia_ingest import IngestError, ingest

CASE = "DUKE_001"


def _stored(catalog: Path, kind: str = "image") -> dict[int, np.ndarray[Any, Any]]:
    ref = json.loads((catalog / "catalog.json").read_text())["tables"]["volumes"]
    out = {}
    for row in pq.read_table(catalog / ref["path"]).to_pylist():
        if row["kind"] == kind:
            arr = zarr.open_array(catalog / row["zarr_path"], mode="r")
            index = row["phase"] if kind == "image" else 0
            out[index if kind == "image" else 0] = arr[index]
    return out


def _expected(path: Path) -> np.ndarray[Any, Any]:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_scaled_header_goes_through_simpleitk(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    files = write_case(raw, CASE)
    path = files["image:0001"]
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[112:120] = struct.pack("<2f", 2.5, -3.0)  # scl_slope, scl_inter
    path.write_bytes(gzip.compress(bytes(data)))
    write_table(raw, [CASE])
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()
    expected = _expected(path)
    assert expected.dtype == np.float32  # ITK applies the scaling
    stored = _stored(tmp_path / "cat")
    assert stored[1].dtype == np.float32  # phases promoted to one type, values unchanged
    assert np.array_equal(stored[1], expected)
    assert np.array_equal(stored[0], _expected(files["image:0000"]).astype(np.float32))
    assert any(p.rule == "dtype" for p in report.warnings)


def test_big_endian_voxels_exact(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    phases, _, _ = case_arrays((10, 32, 28), 2, 0)
    for p, a in enumerate(phases):
        img = nib.Nifti1Image(a.T.astype(">i2"), np.diag([-0.75, -0.7, 2.0, 1.0]))
        img.header.set_data_dtype(">i2")
        path = raw / "images" / CASE / f"{CASE}_{p:04d}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, str(path))
    write_table(raw, [CASE])
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()
    stored = _stored(tmp_path / "cat")
    for p in range(2):
        expected = _expected(raw / "images" / CASE / f"{CASE}_{p:04d}.nii.gz")
        assert stored[p].dtype == expected.dtype
        assert np.array_equal(stored[p], expected)
        assert np.array_equal(stored[p], phases[p])


def test_uncompressed_nii_sources(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    phases, expert, _ = case_arrays((10, 32, 28), 2, 4)
    for p, a in enumerate(phases):
        write_volume(raw / "images" / CASE / f"{CASE}_{p:04d}.nii", a)
    write_volume(raw / "segmentations/expert" / f"{CASE}.nii", expert)
    write_table(raw, [CASE])
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 0, report.summary()
    stored = _stored(tmp_path / "cat")
    assert all(np.array_equal(stored[p], phases[p]) for p in range(2))
    assert np.array_equal(_stored(tmp_path / "cat", "expert")[0], expert)


def test_truncated_uncompressed_nii(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    phases, _, _ = case_arrays((10, 32, 28), 2, 4)
    for p, a in enumerate(phases):
        write_volume(raw / "images" / CASE / f"{CASE}_{p:04d}.nii", a)
    path = raw / "images" / CASE / f"{CASE}_0001.nii"
    path.write_bytes(path.read_bytes()[:-100])
    write_table(raw, [CASE])
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert [p.rule for p in report.errors] == ["truncated"]


def test_float_masks(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_case(raw, CASE)
    _, expert, automatic = case_arrays((10, 32, 28), 3, 0)
    write_volume(raw / "segmentations/expert" / f"{CASE}.nii.gz", expert.astype(np.float32))
    bad = automatic.astype(np.float32) * 0.5
    write_volume(raw / "segmentations/automatic" / f"{CASE}.nii.gz", bad)
    write_table(raw, [CASE])
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert [p.rule for p in report.errors] == ["mask_values"]
    assert "0.5" in report.errors[0].message
    stored = _stored(tmp_path / "cat", "expert")[0]
    assert stored.dtype == np.uint8
    assert np.array_equal(stored, expert)


def test_masks_without_images(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_case(raw, CASE)
    _, expert, _ = case_arrays((10, 32, 28), 1, 0)
    write_volume(raw / "segmentations/expert" / "DUKE_002.nii.gz", expert)
    write_table(raw, [CASE, "DUKE_002"])
    report = ingest(raw, tmp_path / "cat", jobs=1, progress=False)
    assert report.exit_code == 0
    warned = [p for p in report.warnings if p.case == "DUKE_002"]
    assert [p.rule for p in warned] == ["no_images"]


def test_a_second_ingest_on_the_same_catalog_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_case(raw, CASE)
    write_table(raw, [CASE])
    catalog = tmp_path / "cat"
    catalog.mkdir()
    fd = os.open(catalog, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(IngestError, match="another mamamia ingest"):
            ingest(raw, catalog, jobs=1, progress=False)
    finally:
        os.close(fd)
    assert ingest(raw, catalog, jobs=1, progress=False).exit_code == 0


def test_jobs_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    """Worker processes must not re-run the caller's unguarded main script."""
    import subprocess
    import sys

    raw = tmp_path / "raw"
    write_case(raw, CASE)
    write_case(raw, "DUKE_002", seed=2)
    write_table(raw, [CASE, "DUKE_002"])
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from mamamia_ingest import ingest\n"
        f"r = ingest({str(raw)!r}, {str(tmp_path / 'cat')!r}, jobs=2, progress=False)\n"
        "print('built', r.built)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("built 2") == 1  # printed once: the script ran once
