"""Ingest end to end on a small synthetic raw folder: exact voxels and geometry, the tables,
OME-Zarr readability, partial mirrors, incremental re-runs and generations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
import zarr

from ingest_helpers import RAS, REAL_TABLE, tree_digest, write_case, write_table
from mamamia_ingest import ingest

CASES = {
    "DUKE_001": {"n_phases": 3},
    "DUKE_002": {"n_phases": 3, "lowercase": True, "seed": 1},
    "ISPY1_1001": {"n_phases": 4, "direction": RAS, "shape": (9, 30, 26), "seed": 2},
    "NACT_01": {"n_phases": 3, "direction": RAS, "automatic": False, "seed": 3},
    "ISPY2_100899": {"n_phases": 2, "origin": (3.5, -7.25, 11.0), "seed": 4},
}
ROW_ONLY = "ISPY2_102011"  # a table row whose images this mirror does not hold
IMAGES_ONLY = "EXTRA_001"  # images without a table row


def build_raw(root: Path) -> Path:
    for case, kwargs in CASES.items():
        write_case(root, case, **kwargs)  # type: ignore[arg-type]
    write_case(root, IMAGES_ONLY, n_phases=2, seed=9)
    write_table(root, [*CASES, ROW_ONLY])
    (root / "train_test_splits.csv").write_text(
        "train_split,test_split\nDUKE_001,DUKE_002\nISPY1_1001,\nNACT_01,\n"
    )
    (root / "preliminary_automatic_segmentations_quality_scores.csv").write_text(
        "patient_id,expert_1_qs,expert_2_qs,dice\nDUKE_001,Good,Acceptable,0.91\n"
        "ISPY1_1001,Poor,Missed,0.12\n"
    )
    # What a Synapse download leaves in every folder: not dataset content.
    for folder in [root, root / "images", root / "images" / "DUKE_001"]:
        (folder / "SYNAPSE_METADATA_MANIFEST.tsv").write_text("path\tid\n")
    return root


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_raw(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def built(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    catalog = tmp_path_factory.mktemp("cat") / "catalog"
    report = ingest(raw, catalog, jobs=2, progress=False)
    return catalog, report


def _manifest(catalog: Path) -> dict[str, Any]:
    return json.loads((catalog / "catalog.json").read_text())


def _table(catalog: Path, name: str) -> list[dict[str, Any]]:
    ref = _manifest(catalog)["tables"][name]
    return pq.read_table(catalog / ref["path"]).to_pylist()


def _source(raw: Path, case: str, role: str) -> Path:
    lower = bool(CASES.get(case, {}).get("lowercase"))
    stem = case.lower() if lower else case
    if role == "expert":
        return raw / "segmentations/expert" / f"{case}.nii.gz"
    if role == "automatic":
        return raw / "segmentations/automatic" / f"{stem}.nii.gz"
    return raw / "images" / case / f"{stem}_{int(role):04d}.nii.gz"


def test_report_and_layout(built: tuple[Path, Any]) -> None:
    catalog, report = built
    assert report.exit_code == 0, report.summary()
    assert report.built == len(CASES) + 1
    assert report.failed == 0
    assert report.published
    for name in (
        "catalog.json",
        "ingest-report.json",
        "tables/cases.parquet",
        "tables/volumes.parquet",
    ):
        assert (catalog / name).is_file(), name
    manifest = _manifest(catalog)
    assert manifest["format_version"] == 2  # the default
    for ref in manifest["tables"].values():
        assert (catalog / ref["path"]).is_file()
        assert ref["path"].endswith(f"-{ref['sha256'][:12]}.parquet")
    saved = json.loads((catalog / "ingest-report.json").read_text())
    assert saved["catalog_version"] == manifest["catalog_version"]


def test_round_trip_voxels_and_geometry(raw: Path, built: tuple[Path, Any]) -> None:
    catalog, _ = built
    rows = _table(catalog, "volumes")
    assert {(r["patient_id"], r["kind"]) for r in rows} >= {
        ("DUKE_002", "automatic"),
        ("NACT_01", "expert"),
        ("ISPY1_1001", "image"),
    }
    assert not any(r["patient_id"] == "NACT_01" and r["kind"] == "automatic" for r in rows)
    for row in rows:
        case = row["patient_id"]
        if case == IMAGES_ONLY:
            continue
        role = str(row["phase"]) if row["kind"] == "image" else row["kind"]
        image = sitk.ReadImage(str(_source(raw, case, role)))
        expected = sitk.GetArrayFromImage(image)
        arr = zarr.open_array(catalog / row["zarr_path"], mode="r")
        got = arr[row["phase"] if row["kind"] == "image" else 0]
        if row["kind"] == "image":
            assert got.dtype == expected.dtype
        assert np.array_equal(got, expected), (case, role)
        assert tuple(row["shape"]) == expected.shape
        assert tuple(row["spacing_xyz"]) == image.GetSpacing()
        assert tuple(row["origin_xyz"]) == image.GetOrigin()
        assert tuple(row["direction"]) == image.GetDirection()
        want = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
        assert row["orientation"] == want
        assert arr.metadata.dimension_names == ("t", "z", "y", "x")
        # The preview level is the 2x-strided copy.
        level1 = zarr.open_array(catalog / (row["zarr_path"][:-1] + "1"), mode="r")
        index = row["phase"] if row["kind"] == "image" else 0
        assert np.array_equal(level1[index], expected[::2, ::2, ::2])
    sagittal = next(r for r in rows if r["patient_id"] == "ISPY1_1001")
    assert sagittal["orientation"] == "RAS"


def test_generation_attributes(built: tuple[Path, Any]) -> None:
    catalog, _ = built
    row = next(r for r in _table(catalog, "cases") if r["patient_id"] == "ISPY2_100899")
    gen_dir = catalog / "volumes" / "ISPY2_100899" / f"{row['generation']}.zarr"
    attrs = zarr.open_group(gen_dir, mode="r").attrs.asdict()
    block = attrs["mamamia"]
    assert block["complete"] is True
    assert block["space"] == "LPS"
    assert block["orientation"] == "LPS"
    assert block["origin_xyz"] == [3.5, -7.25, 11.0]
    ms = attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "z", "y", "x"]
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1.0, 2.0, 0.7, 0.75])
    # Identity direction: the origin is mirrored as an OME translation (z, y, x order).
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == [
        0.0,
        11.0,
        -7.25,
        3.5,
    ]
    ras = next(r for r in _table(catalog, "cases") if r["patient_id"] == "ISPY1_1001")
    ras_attrs = zarr.open_group(
        catalog / "volumes" / "ISPY1_1001" / f"{ras['generation']}.zarr", mode="r"
    ).attrs.asdict()
    transforms = ras_attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert [t["type"] for t in transforms] == ["scale"]  # no translation for a flipped volume
    assert ras_attrs["mamamia"]["direction"] == list(RAS)
    # Format 2 (the default), as docs/format.md pins it: one shard spanning the array, inner
    # chunks of at most 32^3 under bytes -> blosc lz4hc 3 (8 KiB blocks) -> crc32c, the
    # index checked by crc32c.
    meta = json.loads((gen_dir / "0" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["sharding_indexed"]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == meta["shape"] == [2, 10, 32, 28]
    sharding = meta["codecs"][0]["configuration"]
    assert sharding["chunk_shape"] == [1, 10, 32, 28]
    assert [c["name"] for c in sharding["codecs"]] == ["bytes", "blosc", "crc32c"]
    blosc = sharding["codecs"][1]["configuration"]
    assert (blosc["cname"], blosc["clevel"], blosc["shuffle"]) == ("lz4hc", 3, "shuffle")
    assert [c["name"] for c in sharding["index_codecs"]] == ["bytes", "crc32c"]


def test_format_1_codec_chain_and_chunks(raw: Path, tmp_path: Path) -> None:
    # Format 1 (--format 1), as design.md pins it: a file per chunk, bytes -> blosc zstd 3
    # -> crc32c at full resolution, lz4 5 for the preview level.
    catalog = tmp_path / "catalog"
    report = ingest(raw, catalog, jobs=1, cases="ISPY2_100899", format_version=1, progress=False)
    assert report.exit_code == 0, report.summary()
    assert _manifest(catalog)["format_version"] == 1
    (gen_dir,) = (catalog / "volumes" / "ISPY2_100899").glob("*.zarr")
    for level, cname in (("0", "zstd"), ("1", "lz4")):
        meta = json.loads((gen_dir / level / "zarr.json").read_text())
        assert [c["name"] for c in meta["codecs"]] == ["bytes", "blosc", "crc32c"]
        blosc = meta["codecs"][1]["configuration"]
        assert (blosc["cname"], blosc["shuffle"]) == (cname, "shuffle")
    meta = json.loads((gen_dir / "0" / "zarr.json").read_text())
    assert meta["codecs"][1]["configuration"]["clevel"] == 3
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 10, 32, 28]
    assert sorted(p.name for p in (gen_dir / "0" / "c").iterdir()) == ["0", "1"]  # per phase


def test_cases_table(raw: Path, built: tuple[Path, Any]) -> None:
    catalog, _ = built
    rows = {r["patient_id"]: r for r in _table(catalog, "cases")}
    assert list(rows)[: len(CASES) + 1] == [*CASES, ROW_ONLY]
    assert set(rows) == {*CASES, ROW_ONLY, IMAGES_ONLY}
    duke = rows["DUKE_001"]
    assert duke["dataset"] == "DUKE"
    assert duke["has_images"]
    assert duke["has_expert"]
    assert duke["split"] == "train"
    assert rows["DUKE_002"]["split"] == "test"
    assert (duke["expert_1_qs"], duke["expert_2_qs"]) == ("Good", "Acceptable")
    assert rows["DUKE_002"]["expert_1_qs"] is None
    assert any(k.endswith("dice") and duke[k] == pytest.approx(0.91) for k in duke)
    assert rows["NACT_01"]["has_expert"]
    assert not rows["NACT_01"]["has_automatic"]
    assert rows["NACT_01"]["auto_tumor_voxels"] is None
    assert rows["NACT_01"]["auto_expert_dice"] is None
    # Features against a direct computation on the source masks.
    for case in CASES:
        mask_img = sitk.ReadImage(str(_source(raw, case, "expert")))
        mask = sitk.GetArrayFromImage(mask_img).astype(bool)
        r = rows[case]
        idx = np.argwhere(mask)
        assert r["tumor_voxels"] == int(mask.sum())
        assert r["tumor_bbox_min_zyx"] == idx.min(axis=0).tolist()
        assert r["tumor_bbox_max_zyx"] == (idx.max(axis=0) + 1).tolist()
        k, j, i = idx.mean(axis=0)
        point = mask_img.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))
        assert r["tumor_centroid_xyz_mm"] == pytest.approx(point, abs=1e-6)
        assert r["tumor_volume_cm3"] == pytest.approx(
            mask.sum() * np.prod(mask_img.GetSpacing()) / 1000
        )
        p0 = sitk.GetArrayFromImage(sitk.ReadImage(str(_source(raw, case, "0"))))
        p1 = sitk.GetArrayFromImage(sitk.ReadImage(str(_source(raw, case, "1"))))
        assert r["enhancement_ratio"] == pytest.approx(p1[mask].mean() / p0[mask].mean())
        if case != "NACT_01":
            auto = sitk.GetArrayFromImage(
                sitk.ReadImage(str(_source(raw, case, "automatic")))
            ).astype(bool)
            dice = 2 * (auto & mask).sum() / (auto.sum() + mask.sum())
            assert r["auto_expert_dice"] == pytest.approx(dice)
    # No NaN anywhere: undefined is null.
    path = catalog / _manifest(catalog)["tables"]["cases"]["path"]
    con = duckdb.connect()
    floats = [
        name
        for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
        if typ == "DOUBLE"
    ]
    for name in floats:
        (nan,) = con.execute(f"SELECT count(*) FROM '{path}' WHERE isnan(\"{name}\")").fetchone()
        assert nan == 0, name


def test_volume_statistics(raw: Path, built: tuple[Path, Any]) -> None:
    catalog, _ = built
    for row in _table(catalog, "volumes"):
        if row["kind"] != "image" or row["patient_id"] == IMAGES_ONLY:
            assert row["kind"] != "image" or row["mean"] is not None
            continue
        a = sitk.GetArrayFromImage(
            sitk.ReadImage(str(_source(raw, row["patient_id"], str(row["phase"]))))
        )
        assert row["mean"] == pytest.approx(a.mean())
        assert row["std"] == pytest.approx(a.std())
        assert row["p1"] == pytest.approx(np.percentile(a, 1))
        assert row["p99"] == pytest.approx(np.percentile(a, 99))
        assert row["dtype"] == "int16"
        import zlib

        import google_crc32c

        data = a.astype("<i2").tobytes()
        assert (
            row["checksum"] == f"crc32c+crc32:{google_crc32c.value(data):08x}{zlib.crc32(data):08x}"
        )


def test_partial_mirror(built: tuple[Path, Any]) -> None:
    catalog, report = built
    rows = {r["patient_id"]: r for r in _table(catalog, "cases")}
    row_only = rows[ROW_ONLY]
    assert row_only["dataset"] == "ISPY2"
    assert not row_only["has_images"]
    assert row_only["tumor_voxels"] is None
    assert row_only["generation"] is None
    notes = [p for p in report.problems if p.rule == "no_images"]
    assert notes
    assert notes[0].severity == "note"
    assert ROW_ONLY in notes[0].message
    extra = rows[IMAGES_ONLY]
    assert extra["has_images"]
    assert extra["dataset"] is None
    assert extra["age"] is None
    warn = [p for p in report.problems if p.case == IMAGES_ONLY and p.rule == "missing_row"]
    assert warn
    assert warn[0].severity == "warning"


def test_ome_zarr_reader_opens_every_generation(built: tuple[Path, Any]) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    catalog, _ = built
    gens = sorted(catalog.glob("volumes/*/*.zarr"))
    assert len(gens) == len(CASES) + 1
    for gen in gens:
        location = parse_url(str(gen))
        assert location is not None, gen
        nodes = list(Reader(location)())
        image = nodes[0]
        assert image.load(Multiscales) is not None
        shapes = [tuple(d.shape) for d in image.data]
        attrs = zarr.open_group(gen, mode="r").attrs["mamamia"]
        assert shapes[0][1:] == tuple(attrs["shape_zyx"])
        assert len(shapes) == 2
        assert [a["name"] for a in image.metadata["axes"]] == ["t", "z", "y", "x"]
        labels = [n for n in nodes if n.load(Label) is not None]
        case = gen.parent.name
        expected = 1 if case == "NACT_01" else 2
        assert len(labels) == expected, (case, [str(n) for n in nodes])


def test_rerun_does_no_work(raw: Path, built: tuple[Path, Any]) -> None:
    catalog, first = built
    before = tree_digest(catalog)
    report = ingest(raw, catalog, jobs=1, progress=False)
    assert report.built == 0
    assert report.reused == len(CASES) + 1
    assert not report.published
    assert report.catalog_version == first.catalog_version
    after = tree_digest(catalog)
    before.pop("ingest-report.json")
    after.pop("ingest-report.json")
    assert after == before


def test_changed_case_gets_a_new_generation(raw: Path, tmp_path: Path) -> None:
    raw2 = tmp_path / "raw"
    shutil.copytree(raw, raw2)
    catalog = tmp_path / "catalog"
    r1 = ingest(raw2, catalog, jobs=1, progress=False)
    old = {p.relative_to(catalog).as_posix() for p in catalog.glob("volumes/*/*.zarr")}
    # Change one voxel of one phase of one case.
    src = raw2 / "images" / "DUKE_001" / "DUKE_001_0001.nii.gz"
    img = sitk.ReadImage(str(src))
    a = sitk.GetArrayFromImage(img)
    a[0, 0, 0] += 1
    changed = sitk.GetImageFromArray(a)
    changed.CopyInformation(img)
    sitk.WriteImage(changed, str(src), useCompression=True)
    r2 = ingest(raw2, catalog, jobs=1, progress=False)
    assert r2.built == 1
    assert r2.reused == len(CASES)
    assert r2.catalog_version != r1.catalog_version
    now = {p.relative_to(catalog).as_posix() for p in catalog.glob("volumes/*/*.zarr")}
    assert old < now
    assert len(now - old) == 1
    (new_gen,) = now - old
    assert new_gen.startswith("volumes/DUKE_001/")
    # A third run names only the new generations; the one only run 1 named goes.
    r3 = ingest(raw2, catalog, jobs=1, progress=False)
    assert r3.catalog_version == r2.catalog_version
    assert r3.built == 0
    final = {p.relative_to(catalog).as_posix() for p in catalog.glob("volumes/*/*.zarr")}
    gone = old - final
    assert len(gone) == 1
    assert next(iter(gone)).startswith("volumes/DUKE_001/")
    # A touched but unchanged file is re-hashed, not re-ingested.
    other = raw2 / "images" / "NACT_01" / "NACT_01_0000.nii.gz"
    other.touch()
    r4 = ingest(raw2, catalog, jobs=1, progress=False)
    assert r4.built == 0
    assert r4.catalog_version == r2.catalog_version


def test_cases_pattern_and_chunks(raw: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    report = ingest(raw, catalog, jobs=1, cases="duke_*", chunks=(4, 16, 16), progress=False)
    assert report.exit_code == 0
    rows = _table(catalog, "cases")
    assert sorted(r["patient_id"] for r in rows) == ["DUKE_001", "DUKE_002"]
    vol = _table(catalog, "volumes")[0]
    assert zarr.open_array(catalog / vol["zarr_path"], mode="r").chunks == (1, 4, 16, 16)


def test_tables_only_real_table(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(REAL_TABLE, raw / "clinical_and_imaging_info.xlsx")
    catalog = tmp_path / "catalog"
    report = ingest(raw, catalog, tables_only=True, progress=False)
    assert report.exit_code == 0, report.summary()
    path = catalog / "tables" / "cases.parquet"
    assert pq.read_metadata(path).num_rows == 1506
    got = duckdb.sql(
        f"""SELECT dataset, count(*) FILTER (WHERE pcr), count(*) FILTER (WHERE NOT pcr),
                   count(*) FILTER (WHERE pcr IS NULL)
            FROM '{path}' GROUP BY dataset ORDER BY dataset"""
    ).fetchall()
    by = {d: (y, n, u) for d, y, n, u in got}
    assert by["DUKE"] == (64, 216, 11)
    assert by["ISPY2"] == (316, 664, 0)
    assert not any(r["has_images"] for r in _table(catalog, "cases"))
    assert _manifest(catalog)["tables"]["volumes"]["rows"] == 0
