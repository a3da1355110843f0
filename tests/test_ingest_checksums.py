"""Voxel checksums: the current ``crc32c+crc32`` and layout 1's ``sha256`` both verify; a
tampered or unknown checksum is reported."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from ingest_helpers import write_case, write_table
from mamamia_ingest import ingest, verify
from mamamia_ingest._features import checksum_algorithm, voxel_checksum


def test_voxel_checksum_algorithms() -> None:
    a = np.arange(-500, 500, dtype=np.int16).reshape(10, 10, 10)
    raw = a.astype("<i2").tobytes()
    assert voxel_checksum(a) == f"crc32c+crc32:{google_crc32c.value(raw):08x}{zlib.crc32(raw):08x}"
    assert voxel_checksum(a, "sha256") == "sha256:" + hashlib.sha256(raw).hexdigest()
    # Byte order and memory layout do not matter: the checksum is of the values.
    assert voxel_checksum(a.astype(">i2")) == voxel_checksum(a)
    assert voxel_checksum(np.asfortranarray(a)) == voxel_checksum(a)
    b = a.copy()
    b[3, 4, 5] += 1
    assert voxel_checksum(b) != voxel_checksum(a)
    assert checksum_algorithm(voxel_checksum(a)) == "crc32c+crc32"
    assert checksum_algorithm("sha256:00") == "sha256"
    assert checksum_algorithm("md5:00") is None
    assert checksum_algorithm("") is None
    with pytest.raises(ValueError, match="unknown"):
        voxel_checksum(a, "md5")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checksums")
    raw = root / "raw"
    write_case(raw, "DUKE_001", shape=(12, 20, 18))
    write_table(raw, ["DUKE_001"])
    catalog = root / "catalog"
    assert ingest(raw, catalog, jobs=1, chunks=(8, 16, 16), progress=False).exit_code == 0
    return catalog


def _rewrite_checksums(catalog: Path, new: Any) -> None:
    """Replace the volumes table's checksums (``new(row, voxels)``) and re-point the manifest."""
    manifest = json.loads((catalog / "catalog.json").read_text())
    ref = manifest["tables"]["volumes"]
    path = catalog / ref["path"]
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        arr = zarr.open_array(catalog / row["zarr_path"], mode="r")
        row["checksum"] = new(row, np.asarray(arr[row["phase"] or 0]))
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    ref["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (catalog / "catalog.json").write_text(json.dumps(manifest))


def test_layout_1_sha256_checksums_verify(pristine: Path, tmp_path: Path) -> None:
    import shutil

    catalog = tmp_path / "c"
    shutil.copytree(pristine, catalog)
    assert verify(catalog).ok
    _rewrite_checksums(catalog, lambda row, v: voxel_checksum(v, "sha256"))
    report = verify(catalog)
    assert report.ok, report.summary()
    # ... and a wrong sha256 is still caught.
    _rewrite_checksums(
        catalog,
        lambda row, v: "sha256:" + "0" * 64 if row["phase"] == 1 else voxel_checksum(v, "sha256"),
    )
    report = verify(catalog)
    assert [p.rule for p in report.problems] == ["checksum"], report.summary()
    assert "phase 1" in report.problems[0].message


def test_unknown_checksum_is_reported(pristine: Path, tmp_path: Path) -> None:
    import shutil

    catalog = tmp_path / "c"
    shutil.copytree(pristine, catalog)
    _rewrite_checksums(
        catalog, lambda row, v: "md5:abc" if row["kind"] == "expert" else row["checksum"]
    )
    report = verify(catalog)
    assert [p.rule for p in report.problems] == ["checksum"], report.summary()
    assert "unknown checksum 'md5:abc'" in report.problems[0].message
