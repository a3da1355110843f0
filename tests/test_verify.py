"""``mamamia verify`` finds flipped bytes, missing chunks, unfinished generations and tampered
tables, and passes a healthy catalog, in both catalog formats: format 2 keeps one shard file per
array (``c/0/0/0/0``), format 1 one file per chunk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingest_helpers import write_case, write_table
from mamamia_ingest import ingest, verify


@pytest.fixture(scope="module", params=(2, 1), ids=lambda v: f"format{v}")
def pristine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    raw = root / "raw"
    write_case(raw, "DUKE_001", shape=(20, 40, 36))
    write_case(raw, "NACT_01", seed=3, automatic=False)
    write_table(raw, ["DUKE_001", "NACT_01"])
    catalog = root / "catalog"
    report = ingest(
        raw, catalog, jobs=1, chunks=(8, 16, 16), progress=False, format_version=request.param
    )
    assert report.exit_code == 0
    assert json.loads((catalog / "catalog.json").read_text())["format_version"] == request.param
    return catalog


def _stored_files(array: Path) -> list[Path]:
    """The files holding an array's voxels: its shard (format 2) or its chunks (format 1)."""
    files = sorted(p for p in (array / "c").rglob("*") if p.is_file())
    codecs = json.loads((array / "zarr.json").read_text())["codecs"]
    if codecs[0]["name"] == "sharding_indexed":
        assert [p.relative_to(array).as_posix() for p in files] == ["c/0/0/0/0"]
    else:  # chunks (1, 8, 16, 16) of a (3, 20, 40, 36) image: 3 * 3 * 3 * 3 files
        assert len(files) > 3
    return files


@pytest.fixture
def catalog(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "catalog"
    shutil.copytree(pristine, copy)
    return copy


def test_healthy_catalog_passes(catalog: Path) -> None:
    report = verify(catalog)
    assert report.ok, report.summary()
    assert report.exit_code == 0
    assert report.tables_checked == 3
    assert report.volumes_checked == 3 + 2 + 3 + 1  # phases + masks of both cases
    assert report.chunks_checked > 0


def test_flipped_byte_in_a_chunk(catalog: Path) -> None:
    gen = next(catalog.glob("volumes/DUKE_001/*.zarr"))
    files = _stored_files(gen / "0")
    target = files[min(3, len(files) - 1)]
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x01  # format 2: inside an inner chunk (the index comes last)
    target.write_bytes(bytes(data))
    report = verify(catalog)
    assert report.exit_code == 1
    problems = [p for p in report.problems if p.rule == "corrupt_chunk"]
    assert problems, report.summary()
    assert problems[0].case == "DUKE_001"
    assert "DUKE_001" in report.summary()


def test_flipped_byte_in_a_mask_chunk(catalog: Path) -> None:
    gen = next(catalog.glob("volumes/NACT_01/*.zarr"))
    target = _stored_files(gen / "labels/expert/0")[0]
    data = bytearray(target.read_bytes())
    data[0] ^= 0x80
    target.write_bytes(bytes(data))
    report = verify(catalog)
    assert [p.case for p in report.problems if p.rule == "corrupt_chunk"] == ["NACT_01"]


def test_missing_chunk(catalog: Path) -> None:
    gen = next(catalog.glob("volumes/DUKE_001/*.zarr"))
    _stored_files(gen / "0")[0].unlink()
    report = verify(catalog)
    assert report.exit_code == 1
    assert any(p.rule == "missing_chunk" for p in report.problems), report.summary()
    # A missing chunk reads back as zeros, so the voxel checksum fails too.
    assert any(p.rule == "checksum" for p in report.problems)


def test_missing_generation(catalog: Path) -> None:
    gen = next(catalog.glob("volumes/NACT_01/*.zarr"))
    shutil.rmtree(gen)
    report = verify(catalog)
    assert report.exit_code == 1
    assert {p.rule for p in report.problems} & {"missing_array"}


def test_unfinished_generation(catalog: Path) -> None:
    gen = next(catalog.glob("volumes/DUKE_001/*.zarr"))
    meta = json.loads((gen / "zarr.json").read_text())
    meta["attributes"]["mamamia"].pop("complete")
    (gen / "zarr.json").write_text(json.dumps(meta))
    report = verify(catalog)
    assert [p.rule for p in report.problems] == ["incomplete"]


def test_tampered_table(catalog: Path) -> None:
    ref = json.loads((catalog / "catalog.json").read_text())["tables"]["volumes"]
    path = catalog / ref["path"]
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify(catalog)
    assert [p.rule for p in report.problems] == ["table_checksum"]


def test_not_a_catalog(tmp_path: Path) -> None:
    report = verify(tmp_path)
    assert report.exit_code == 1
    assert report.problems[0].rule == "manifest"


def test_a_manifest_failing_its_model_is_reported_and_the_rest_still_checked(
    catalog: Path,
) -> None:
    manifest = json.loads((catalog / "catalog.json").read_text())
    del manifest["dataset_release"]
    (catalog / "catalog.json").write_text(json.dumps(manifest))
    report = verify(catalog)
    assert [p.rule for p in report.problems] == ["manifest"]
    assert "dataset_release" in report.problems[0].message
    assert report.tables_checked == 3 and report.volumes_checked > 0
