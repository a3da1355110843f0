"""``mamamia upgrade``: a format-1 catalog rewritten as format 2 without the raw folder.

The upgraded catalog must hold every voxel of the original, pass ``mamamia verify --deep``
against the raw folder, equal what ``mamamia ingest`` writes in format 2 (the same generation
ids and bytes, so a later ingest reuses them), keep readers of the old manifest working while it
runs, and resume after a stopped run.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from click.testing import CliRunner

import mamamia
from ingest_helpers import tree_digest
from mamamia_ingest import IngestError, ingest, upgrade, verify
from mamamia_ingest._cli_ingest import upgrade_command


def _table(catalog: Path, name: str) -> list[dict[str, Any]]:
    ref = json.loads((catalog / "catalog.json").read_bytes())["tables"][name]
    rows: list[dict[str, Any]] = pq.read_table(catalog / ref["path"]).to_pylist()
    return rows


def _generations(catalog: Path) -> dict[str, str]:
    """patient_id -> the generation folder the current volumes table names."""
    return {
        r["patient_id"]: "/".join(r["zarr_path"].split("/")[:3]) for r in _table(catalog, "volumes")
    }


def _arrays(generation: Path) -> list[str]:
    """Every array of a generation folder, relative to it."""
    return sorted(
        meta.parent.relative_to(generation).as_posix()
        for meta in generation.rglob("zarr.json")
        if json.loads(meta.read_bytes())["node_type"] == "array"
    )


@pytest.fixture(scope="module")
def upgraded(catalog_v1_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the format-1 catalog, upgraded as docs/format.md shows; and the output."""
    copy = tmp_path_factory.mktemp("upgraded") / "catalog"
    shutil.copytree(catalog_v1_dir, copy)
    # mamamia upgrade CATALOG --jobs 2
    result = CliRunner().invoke(upgrade_command, [str(copy), "--jobs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    return copy, result.output


def test_the_manifest_and_the_tables_name_format_2_generations(
    upgraded: tuple[Path, str], catalog_v1_dir: Path
) -> None:
    catalog, output = upgraded
    old = json.loads((catalog_v1_dir / "catalog.json").read_bytes())
    new = json.loads((catalog / "catalog.json").read_bytes())
    assert (old["format_version"], new["format_version"]) == (1, 2)
    assert new["catalog_version"] != old["catalog_version"]
    assert "6 generations rewritten as format 2" in output and new["catalog_version"] in output
    assert (
        new["source_files"] == old["source_files"] and new["tables"].keys() == old["tables"].keys()
    )
    before, after = _generations(catalog_v1_dir), _generations(catalog)
    assert before.keys() == after.keys() and len(after) == 6
    for case, gen in after.items():
        assert gen != before[case] and gen.startswith(f"volumes/{case}/")
        for array in _arrays(catalog / gen):
            codecs = json.loads((catalog / gen / array / "zarr.json").read_bytes())["codecs"]
            assert [c["name"] for c in codecs] == ["sharding_indexed"], (gen, array)
    # Only the generation columns changed; every other value of every table is the same.
    for name in old["tables"]:
        was, now = _table(catalog_v1_dir, name), _table(catalog, name)
        assert len(was) == len(now) > 0, name
        for a, b in zip(was, now, strict=True):
            if "zarr_path" in a:
                case = a["patient_id"]
                assert b["zarr_path"] == a["zarr_path"].replace(before[case], after[case])
            if name == "cases" and a["generation"] is not None:
                assert b["generation"] == after[a["patient_id"]].split("/")[2][:-5]
            same = {k for k in a if k not in ("zarr_path", "generation")}
            assert {k: a[k] for k in same} == {k: b[k] for k in same}, name
    # The old generations stay for readers of the old manifest.
    assert all((catalog / gen).is_dir() for gen in before.values())


def test_every_voxel_of_every_array_equals_the_original(
    upgraded: tuple[Path, str], catalog_v1_dir: Path
) -> None:
    catalog, _ = upgraded
    before, after = _generations(catalog_v1_dir), _generations(catalog)
    checked = 0
    for case, gen in after.items():
        arrays = _arrays(catalog_v1_dir / before[case])
        assert arrays == _arrays(catalog / gen) and "1" in arrays and "labels/expert/1" in arrays
        for array in arrays:
            old = zarr.open_array(str(catalog_v1_dir / before[case] / array), mode="r")
            new = zarr.open_array(str(catalog / gen / array), mode="r")
            assert new.shape == old.shape and new.dtype == old.dtype, (case, array)
            assert np.array_equal(new[...], old[...]), (case, array)
            checked += 1
    assert checked >= 6 * 4
    with mamamia.open(catalog) as cat, mamamia.open(catalog_v1_dir) as ref:
        assert cat.manifest["format_version"] == 2
        for case in ref.cohort("has_images").case_ids:
            assert np.array_equal(cat.case(case).image[...], ref.case(case).image[...]), case


def test_verify_passes_and_it_equals_a_format_2_ingest(
    upgraded: tuple[Path, str], catalog_dir: Path, phantom_raw_dir: Path, tmp_path: Path
) -> None:
    catalog, _ = upgraded
    report = verify(catalog, deep=True, raw=phantom_raw_dir)
    assert report.ok, report.summary()
    # The same generation ids and bytes as ingest's format 2 from the raw folder ...
    ours = _generations(catalog)
    assert ours == _generations(catalog_dir)
    for gen in ours.values():
        assert tree_digest(catalog / gen) == tree_digest(catalog_dir / gen), gen
    # ... so re-ingesting from the raw folder reuses every one of them.
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    again = ingest(phantom_raw_dir, copy, jobs=1, progress=False)
    assert (again.built, again.reused) == (0, 6), again.summary()


def test_a_reader_of_the_old_manifest_reads_while_the_upgrade_runs(
    catalog_v1_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(catalog_v1_dir, copy)
    reader = mamamia.open(copy)
    ids = reader.cohort("has_images").case_ids
    expected = {case: reader.case(case).image[...] for case in ids}
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(upgrade(copy, jobs=1, progress=False)))
    worker.start()
    reads = 0
    while worker.is_alive() or reads < len(ids):
        case = ids[reads % len(ids)]
        assert np.array_equal(reader.case(case).image[...], expected[case]), case
        assert reader.case(case).mask("expert")[...].any()
        reads += 1
    worker.join()
    assert result[0].published, result[0].summary()
    assert reader.manifest["format_version"] == 1  # still the old manifest, still reading
    for case in ids:
        assert np.array_equal(reader.case(case).image[...], expected[case]), case
    with mamamia.open(copy) as fresh:
        assert fresh.manifest["format_version"] == 2 and fresh.version != reader.version
        for case in ids:
            assert np.array_equal(fresh.case(case).image[...], expected[case]), case


def test_a_stopped_upgrade_resumes(catalog_v1_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(catalog_v1_dir, copy)
    manifest = (copy / "catalog.json").read_bytes()
    # What a killed run leaves: a half-written generation under its temporary name.
    (copy / "volumes/DUKE_001/pending.zarr.tmp-0123abcd/0").mkdir(parents=True)
    # A case that cannot be read now (a chunk file moved away) stops this run before it
    # publishes; the other cases are finished and kept.
    (gen,) = (copy / "volumes" / "NACT_01").glob("*.zarr")
    chunk = next(p for p in sorted((gen / "0" / "c").rglob("*")) if p.is_file())
    aside = tmp_path / "chunk"
    chunk.rename(aside)
    first = upgrade(copy, jobs=2, progress=False)
    assert first.exit_code == 1 and not first.published
    assert len(first.errors) == 1 and "case NACT_01" in first.errors[0], first.errors
    assert (first.written, first.reused) == (5, 0)
    assert "run mamamia upgrade again to resume" in first.summary()
    assert (copy / "catalog.json").read_bytes() == manifest  # still format 1, untouched
    aside.rename(chunk)
    second = upgrade(copy, jobs=2, progress=False)
    assert second.exit_code == 0 and second.published, second.summary()
    assert (second.written, second.reused) == (1, 5)
    assert not list(copy.glob("volumes/*/*.tmp-*"))
    assert verify(copy).ok


def test_a_format_2_catalog_is_left_alone(catalog_copy: Path) -> None:
    before = tree_digest(catalog_copy)
    result = CliRunner().invoke(upgrade_command, [str(catalog_copy)])
    assert result.exit_code == 0, result.output
    assert "already format 2: nothing to do" in result.output
    assert tree_digest(catalog_copy) == before


def test_dry_run_says_what_it_would_do_and_changes_nothing(
    catalog_v1_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(catalog_v1_dir, copy)
    before = tree_digest(copy)
    result = CliRunner().invoke(upgrade_command, [str(copy), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would rewrite 6 of 6 case generations as format 2" in result.output
    assert "nothing was changed" in result.output
    assert tree_digest(copy) == before


def test_what_cannot_be_upgraded_is_named(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"no catalog\.json"):
        upgrade(tmp_path)
    with pytest.raises(IngestError, match="mamamia ingest RAW s3://bucket/cat"):
        upgrade("s3://bucket/cat")
    with pytest.raises(IngestError, match="--jobs must be at least 1"):
        upgrade(tmp_path, jobs=0)
    result = CliRunner().invoke(upgrade_command, [str(tmp_path)])
    assert result.exit_code == 2 and "mamamia upgrade:" in result.output
