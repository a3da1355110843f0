"""``verify --deep``: a chunk re-encoded with a valid crc32c but other voxels is found even when
the plain checks pass (a preview chunk; a full-resolution chunk whose table checksum was
rewritten to match), by comparing previews with full resolution and volumes with the voxels of
their source files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from click.testing import CliRunner

from ingest_helpers import write_case, write_table
from mamamia_ingest import ingest, verify
from mamamia_ingest._cli_ingest import verify_command
from mamamia_ingest._features import voxel_checksum

CASES = ["DUKE_001", "DUKE_002"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deep")
    raw = root / "raw"
    for i, case in enumerate(CASES):
        write_case(raw, case, n_phases=2, shape=(12, 20, 18), seed=i)
    write_table(raw, CASES)
    catalog = root / "catalog"
    assert ingest(raw, catalog, jobs=1, progress=False).exit_code == 0
    return raw, catalog


def _copy(catalog: Path, tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(catalog, target)
    return target


def _array(catalog: Path, rel: str) -> zarr.Array:  # type: ignore[type-arg]
    return zarr.open_array(store=zarr.storage.LocalStore(catalog / rel), mode="r+")


def _image_rel(catalog: Path, case: str) -> str:
    rows = pq.read_table(catalog / "tables/volumes.parquet").to_pylist()
    return next(r["zarr_path"] for r in rows if r["patient_id"] == case and r["kind"] == "image")


def test_deep_verify_passes_on_a_good_catalog(built: tuple[Path, Path]) -> None:
    raw, catalog = built
    report = verify(catalog, deep=True, raw=raw)
    assert report.ok, report.summary()
    n_volumes = pq.read_metadata(catalog / "tables/volumes.parquet").num_rows
    assert report.sources_checked == n_volumes
    assert report.previews_checked == n_volumes  # one preview phase per volume row
    result = CliRunner().invoke(verify_command, [str(catalog), "--deep", "--raw", str(raw)])
    assert result.exit_code == 0, result.output
    assert f"{n_volumes} source files compared" in result.output


def test_a_reencoded_preview_chunk_is_found(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, catalog = built
    catalog = _copy(catalog, tmp_path)
    rel = _image_rel(catalog, "DUKE_001")
    half = _array(catalog, rel[:-1] + "1")
    half[1, 0, 0, 0] = half[1, 0, 0, 0] + 7  # written through the codecs: a valid crc32c
    assert verify(catalog).ok  # the plain checks cannot see it
    report = verify(catalog, deep=True)
    assert [p.rule for p in report.problems] == ["preview_mismatch"]
    assert "DUKE_001" in report.problems[0].message


def test_a_reencoded_chunk_with_a_matching_table_is_found(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    raw, catalog = built
    catalog = _copy(catalog, tmp_path)
    rel = _image_rel(catalog, "DUKE_002")
    full = _array(catalog, rel)
    full[0, 0, 0, 0] = full[0, 0, 0, 0] + 3
    half = _array(catalog, rel[:-1] + "1")
    half[0, 0, 0, 0] = full[0, 0, 0, 0]  # the preview agrees too
    # Rewrite the volumes table (and the manifest naming it) so every checksum matches.
    manifest = json.loads((catalog / "catalog.json").read_text())
    ref = manifest["tables"]["volumes"]
    table = pq.read_table(catalog / ref["path"])
    rows = table.to_pylist()
    for row in rows:
        if row["zarr_path"] == rel and row["phase"] == 0:
            row["checksum"] = voxel_checksum(np.asarray(full[0]))
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), catalog / ref["path"])
    ref["sha256"] = hashlib.sha256((catalog / ref["path"]).read_bytes()).hexdigest()
    (catalog / "catalog.json").write_text(json.dumps(manifest))
    assert verify(catalog).ok
    assert verify(catalog, deep=True).ok  # without the raw folder nothing to compare against
    report = verify(catalog, deep=True, raw=raw)
    assert [p.rule for p in report.problems] == ["source_voxels"]
    assert "DUKE_002_0000" in report.problems[0].message
    result = CliRunner().invoke(verify_command, [str(catalog), "--deep", "--raw", str(raw)])
    assert result.exit_code == 1


def test_raw_needs_deep(built: tuple[Path, Path]) -> None:
    raw, catalog = built
    result = CliRunner().invoke(verify_command, [str(catalog), "--raw", str(raw)])
    assert result.exit_code == 2 and "--deep" in result.output
