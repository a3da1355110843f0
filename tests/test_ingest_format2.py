"""Catalog format 2 (the default of ``mamamia ingest``): sharded volumes, read by the SDK,
zarr-python and the OME-Zarr models exactly as format 1's (``--format 1``), a handful of files
per case, and the upgrade of a format-1 catalog by re-ingesting it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import mamamia
from mamamia._chunks import ChunkArray, open_chunk_array
from mamamia._store import StrictLocalStore
from mamamia_ingest import IngestError, verify
from mamamia_ingest._ingest_options import IngestOptions


@pytest.fixture(scope="module")
def format2_dir(catalog_dir: Path) -> Path:
    """The shared catalog: format 2 is what ``ingest`` writes by default."""
    return catalog_dir


def _arrays(catalog: Path) -> list[Path]:
    """Every Zarr array folder under volumes/."""
    found = []
    for meta in sorted((catalog / "volumes").rglob("zarr.json")):
        if json.loads(meta.read_bytes())["node_type"] == "array":
            found.append(meta.parent)
    return found


def _case_files(catalog: Path) -> dict[str, int]:
    return {
        case.name: sum(1 for p in case.rglob("*") if p.is_file())
        for case in (catalog / "volumes").iterdir()
    }


def test_the_manifest_says_format_2_and_every_array_is_sharded(
    format2_dir: Path, catalog_v1_dir: Path
) -> None:
    assert json.loads((format2_dir / "catalog.json").read_bytes())["format_version"] == 2
    assert json.loads((catalog_v1_dir / "catalog.json").read_bytes())["format_version"] == 1
    arrays = _arrays(format2_dir)
    assert len(arrays) == len(_arrays(catalog_v1_dir)) > 0
    for folder in arrays:
        codecs = json.loads((folder / "zarr.json").read_bytes())["codecs"]
        assert [c["name"] for c in codecs] == ["sharding_indexed"], folder
        # One shard per array, nothing else under c/.
        assert [
            p.relative_to(folder).as_posix() for p in (folder / "c").rglob("*") if p.is_file()
        ] == ["c/0/0/0/0"]
    for folder in _arrays(catalog_v1_dir):
        codecs = json.loads((folder / "zarr.json").read_bytes())["codecs"]
        assert [c["name"] for c in codecs] == ["bytes", "blosc", "crc32c"], folder
    ours, before = _case_files(format2_dir), _case_files(catalog_v1_dir)
    assert ours.keys() == before.keys()
    assert max(ours.values()) <= 20 and all(ours[c] < before[c] for c in ours), (ours, before)


def test_format_2_reads_the_voxels_of_format_1(format2_dir: Path, catalog_v1_dir: Path) -> None:
    new, old = mamamia.open(format2_dir), mamamia.open(catalog_v1_dir)
    assert new.cohort("true").case_ids == old.cohort("true").case_ids
    for case_id in old.cohort("has_images").case_ids:
        a, b = new.case(case_id), old.case(case_id)
        assert isinstance(a.image._array, ChunkArray)
        assert np.array_equal(a.image[...], b.image[...]), case_id
        z, y, x = b.image.shape[1:]
        box = (1, slice(z // 8, z - 1), slice(y // 8, y - 3), slice(x // 8, x - 5))
        assert np.array_equal(a.image[box], b.image[box])  # a box inside, not on chunk edges
        if b.fields.get("has_expert"):
            assert np.array_equal(a.mask("expert")[...], b.mask("expert")[...]), case_id


def test_zarr_python_reads_every_array_as_the_sdk_does(format2_dir: Path) -> None:
    for folder in _arrays(format2_dir):
        theirs = zarr.open_array(str(folder), mode="r")
        ours = open_chunk_array(StrictLocalStore(folder), where=str(folder), fallback=lambda: None)
        assert isinstance(ours, ChunkArray), folder
        assert np.array_equal(ours[...], theirs[...]), folder


def test_ome_zarr_models_validate_every_format_2_image(format2_dir: Path) -> None:
    from ome_zarr_models.v05.image import Image

    images = [p for p in (format2_dir / "volumes").glob("*/*.zarr") if p.is_dir()]
    assert images
    for path in images:
        Image.from_zarr(zarr.open_group(str(path), mode="r"))


def test_verify_deep_passes_on_either_format(
    format_catalog_dir: Path, phantom_raw_dir: Path
) -> None:
    report = verify(format_catalog_dir, deep=True, raw=phantom_raw_dir)
    assert report.ok, report.summary()
    assert report.arrays_checked > 0


def test_a_damaged_shard_fails_verify(format2_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(format2_dir, copy)
    shard = sorted((copy / "volumes").glob("*/*.zarr/0/c/0/0/0/0"))[0]  # a case's images
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    report = verify(copy)
    assert not report.ok


def test_reingesting_a_format_1_catalog_with_format_2_upgrades_it(
    catalog_v1_dir: Path, phantom_raw_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(catalog_v1_dir, copy)
    from mamamia_ingest._cli_ingest import ingest_command

    # As docs/format.md shows it: mamamia ingest RAW CATALOG --format 2
    args = [str(phantom_raw_dir), str(copy), "--format", "2", "--jobs", "2", "--quiet"]
    result = CliRunner().invoke(ingest_command, args)
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "catalog.json").read_bytes())["format_version"] == 2
    new, old = mamamia.open(copy), mamamia.open(catalog_v1_dir)
    assert new.version != old.version
    for case_id in old.cohort("has_images").case_ids:
        assert (
            new.case(case_id).volumes[0]["zarr_path"] != old.case(case_id).volumes[0]["zarr_path"]
        )
        assert np.array_equal(new.case(case_id).image[...], old.case(case_id).image[...])
    named = {str(r["zarr_path"]) for r in new.sql("SELECT zarr_path FROM volumes").to_pylist()}
    for path in named:
        meta = json.loads((copy / path / "zarr.json").read_bytes())
        if meta["node_type"] == "group":  # an image: its full-resolution level
            meta = json.loads((copy / path / "0" / "zarr.json").read_bytes())
        assert meta["codecs"][0]["name"] == "sharding_indexed", path


def test_a_bad_format_is_refused() -> None:
    with pytest.raises(IngestError, match="--format must be 1 or 2"):
        IngestOptions(format_version=3)
    assert IngestOptions().format_version == 2
    assert IngestOptions().chunks == IngestOptions(format_version=2).chunks == (32, 32, 32)
    assert IngestOptions(format_version=1).chunks == (32, 128, 128)
    from mamamia_ingest._cli_ingest import ingest_command

    result = CliRunner().invoke(ingest_command, ["raw", "cat", "--format", "3"])
    assert result.exit_code == 2 and "--format" in result.output


def test_a_server_over_format_2_serves_crops_and_the_store(
    format2_dir: Path, tmp_path: Path
) -> None:
    import io

    import httpx

    from conftest import start_server

    local = mamamia.open(format2_dir)
    case_id = local.cohort("has_images").case_ids[0]
    server = start_server(format2_dir)
    try:
        r = httpx.get(
            f"{server.url}/v1/cases/{case_id}/crop",
            params={"phase": 1, "z": "2:7", "y": "3:20", "x": "5:"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        crop = np.load(io.BytesIO(r.content), allow_pickle=False)
        assert np.array_equal(crop, local.case(case_id).image[1, 2:7, 3:20, 5:])
        remote = mamamia.connect(server.url, cache_dir=tmp_path / "cache")
        z, y, x = local.case(case_id).image.shape[1:]
        box = (1, slice(z // 8, z - 1), slice(2, y - 3), slice(0, x // 2))
        assert np.array_equal(remote.case(case_id).image[box], local.case(case_id).image[box])
    finally:
        server.stop()


def test_prefetch_of_format_2_fetches_each_shard_once(format2_dir: Path, tmp_path: Path) -> None:
    from conftest import start_server

    server = start_server(format2_dir)
    try:
        remote = mamamia.connect(server.url, cache_dir=tmp_path / "cache")
        case_id = remote.cohort("has_images").case_ids[0]
        paths = sorted({str(row["zarr_path"]) for row in remote.case(case_id).volumes})
        arrays = [f"{p}/0" if p.endswith(".zarr") else p for p in paths]
        fetched = remote.prefetch(arrays)
        assert fetched == len(arrays)  # one shard per array, nothing else asked for
        data_requests = sum(n for path, n in server.requests.items() if "/c/" in path)
        assert data_requests == len(arrays)
        image = remote.case(case_id).image
        assert np.array_equal(
            image[0, 1:9, 2:30, 3:40],
            mamamia.open(format2_dir).case(case_id).image[0, 1:9, 2:30, 3:40],
        )
        assert sum(n for path, n in server.requests.items() if "/c/" in path) == len(arrays)
    finally:
        server.stop()
