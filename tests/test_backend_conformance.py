"""One set of assertions over every backend and both catalog formats: a catalog folder, a live
server, an S3 store, each holding the phantom as format 2 (sharded) and as format 1.

The folder of the same format is the reference; the server (uvicorn on 127.0.0.1) and the store
(moto's S3 server on 127.0.0.1) serve the same phantom and must answer alike: cohorts, SQL, case
fields, volume geometry, crop voxels, the error classes, and reopening in another process. The
voxels (crops, slices, masks, the preview level) must also equal the format-2 folder's, so both
formats and every backend read the same data.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mamamia
from conftest import LiveServer

BACKENDS = ("local", "http", "s3")
CASE = "DUKE_001"


@pytest.fixture(scope="module")
def reference(format_catalog_dir: Path) -> Iterator[mamamia.Catalog]:
    """The folder of the format under test."""
    with mamamia.open(format_catalog_dir) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def sharded(catalog_dir: Path) -> Iterator[mamamia.Catalog]:
    """The format-2 folder: every format and backend must read its voxels."""
    with mamamia.open(catalog_dir) as catalog:
        yield catalog


@pytest.fixture(scope="module", params=BACKENDS)
def catalog(
    request: pytest.FixtureRequest, catalog_format: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[mamamia.Catalog]:
    cache = tmp_path_factory.mktemp(f"cache-{request.param}-{catalog_format}")
    if request.param == "local":
        opened = mamamia.open(request.getfixturevalue("format_catalog_dir"))
    elif request.param == "http":
        server: LiveServer = request.getfixturevalue("format_live_server")
        opened = mamamia.connect(server.url, cache_dir=cache)
    else:
        opened = mamamia.open(request.getfixturevalue("format_s3_catalog"), cache_dir=cache)
    with opened:
        yield opened


def _rows(table: Any) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: (str(row.get("patient_id")), str(row)))


class TestBackendConformance:
    def test_version_tables_and_capabilities(
        self, catalog: mamamia.Catalog, reference: mamamia.Catalog, request: pytest.FixtureRequest
    ) -> None:
        assert catalog.version == reference.version
        assert catalog.tables() == reference.tables()
        assert catalog.schema("cases").names == reference.schema("cases").names
        assert dict(catalog.manifest)["tables"].keys() == dict(reference.manifest)["tables"].keys()
        # Volumes over the network: a cohort's prefetch fills the cache, a folder has them.
        remote = request.node.callspec.params["catalog"] != "local"
        assert catalog.remote is remote and reference.remote is False
        fetched = catalog.cohort("patient_id = $id", id=CASE).prefetch(progress=False)
        assert (fetched > 0) if remote else (fetched == 0)

    def test_cohort(self, catalog: mamamia.Catalog, reference: mamamia.Catalog) -> None:
        query = "has_images AND age > $age"
        got = catalog.cohort(query, age=30)
        expected = reference.cohort(query, age=30)
        assert got.case_ids == expected.case_ids and len(got) > 0
        assert got.where("dataset = 'DUKE'").case_ids == [
            i for i in expected.case_ids if i.startswith("DUKE")
        ]
        assert _rows(got.to_arrow()) == _rows(expected.to_arrow())

    def test_sql(self, catalog: mamamia.Catalog, reference: mamamia.Catalog) -> None:
        for query in (
            "SELECT dataset, count(*) AS n FROM cases GROUP BY dataset ORDER BY dataset",
            "SELECT patient_id, kind, phase, shape FROM volumes ORDER BY patient_id, kind, phase",
        ):
            assert catalog.sql(query).to_pylist() == reference.sql(query).to_pylist(), query

    def test_case_fields_and_volume_geometry(
        self, catalog: mamamia.Catalog, reference: mamamia.Catalog
    ) -> None:
        got, expected = catalog.case(CASE), reference.case(CASE)
        assert got.fields == expected.fields
        assert got.volumes == expected.volumes
        for kind in ("image", "expert"):
            a = got.image if kind == "image" else got.mask(kind)
            b = expected.image if kind == "image" else expected.mask(kind)
            assert a.shape == b.shape and a.dtype == b.dtype, kind
            assert a.spacing == b.spacing, kind
            assert np.array_equal(a.affine(), b.affine()), kind
            assert np.array_equal(a.affine(ras=True), b.affine(ras=True)), kind

    def test_crop_voxels(self, catalog: mamamia.Catalog, reference: mamamia.Catalog) -> None:
        got, expected = catalog.case(CASE), reference.case(CASE)
        z, y, x = expected.image.shape[1:]
        box = (1, slice(z // 4, z // 4 + 8), slice(y // 3, y // 3 + 20), slice(x // 5, x - 3))
        assert np.array_equal(got.image[box], expected.image[box])
        assert np.array_equal(got.mask("expert")[box[1:]], expected.mask("expert")[box[1:]])

        def crops(cat: mamamia.Catalog) -> list[dict[str, Any]]:
            cohort = cat.cohort("patient_id IN ('DUKE_001', 'NACT_01')")
            return list(cat.crops(cohort, size=16, per_case=2, seed=3))

        pairs = list(zip(crops(catalog), crops(reference), strict=True))
        assert len(pairs) == 4
        for a, b in pairs:
            assert a["patient_id"] == b["patient_id"]
            assert np.array_equal(a["image"], b["image"]), a["patient_id"]
            assert np.array_equal(a["label"], b["label"]), a["patient_id"]

    def test_voxels_equal_the_sharded_folder(
        self, catalog: mamamia.Catalog, sharded: mamamia.Catalog, catalog_format: int
    ) -> None:
        got, expected = catalog.case(CASE), sharded.case(CASE)
        assert catalog.manifest["format_version"] == catalog_format
        image = expected.image
        t, z, y, x = image.shape
        # The phantom's DUKE_001 is wider than one 64^3 inner chunk: boxes below cross the inner
        # chunk boundary at y = x = 64, and every phase (one chunk file per phase in format 1,
        # inner chunks of one shard in format 2).
        assert min(y, x) > 64 and t >= 3
        boxes = [
            (slice(0, t), slice(1, z - 1), slice(60, y), slice(50, x - 1)),
            (1, slice(z // 2, z // 2 + 4), slice(0, y), slice(63, 65)),
            (slice(None), z // 2),  # axial slices of every phase
            (2, slice(None), y // 2),  # coronal
            (0, slice(None), slice(None), 65),  # sagittal
        ]
        for box in boxes:
            assert np.array_equal(got.image[box], image[box]), box
        for kind in ("expert", "automatic"):
            mask = expected.mask(kind)
            assert np.array_equal(got.mask(kind)[...], mask[...]), kind
            assert np.array_equal(got.mask(kind)[:, 62:67, 3:66], mask[:, 62:67, 3:66]), kind
        assert np.array_equal(got.image[...], image[...])
        # The preview level (1) of the image and of a mask: half the grid, the same voxels.
        for row in (r for r in got.volumes if r["kind"] in ("image", "expert")):
            preview = row["zarr_path"].removesuffix("/0") + "/1"
            theirs = next(r for r in expected.volumes if r["kind"] == row["kind"])
            want = sharded.open_array(theirs["zarr_path"].removesuffix("/0") + "/1")
            have = catalog.open_array(preview)
            assert have.shape == want.shape and have.shape[-1] == (x + 1) // 2, row["kind"]
            assert np.array_equal(have[...], want[...]), row["kind"]

    def test_errors_map_to_the_same_classes(self, catalog: mamamia.Catalog) -> None:
        with pytest.raises(mamamia.NotFoundError, match="NOPE_1"):
            catalog.case("NOPE_1")
        with pytest.raises(mamamia.InvalidRequest, match="patient id"):
            catalog.case("../etc")
        with pytest.raises(mamamia.NotFoundError, match="nope"):
            catalog.schema("nope")
        with pytest.raises(mamamia.QueryRejected, match="no_such_column"):
            catalog.sql("SELECT no_such_column FROM cases")
        with pytest.raises(mamamia.InvalidRequest, match="mask kind"):
            catalog.case(CASE).mask("nobody")

    def test_reopens_in_another_process(
        self, catalog: mamamia.Catalog, reference: mamamia.Catalog
    ) -> None:
        opener = catalog.reopener()
        assert opener is not None
        with pickle.loads(pickle.dumps(opener))() as again:
            assert type(again) is mamamia.Catalog
            assert again.version == catalog.version
            assert again.remote == catalog.remote
            assert again.cohort("has_images").case_ids == reference.cohort("has_images").case_ids
