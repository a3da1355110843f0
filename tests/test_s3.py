"""Catalogs on S3: a real S3-compatible server (moto's server mode) on 127.0.0.1.

Ingest to it, open and query from it, crops from it equal to the local catalog's, the chunk
cache in front (a second pass fetches nothing), and a re-ingest switching readers atomically.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

import mamamia

BUCKET = "mamamia-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a random port, the AWS variables pointing at it; yields the endpoint."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("MAMAMIA_CACHE_DIR", str(tmp_path_factory.mktemp("s3cache")))
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"))
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="module")
def s3_catalog(s3: str, phantom_raw_dir: Path) -> str:
    """The shared phantom ingested to s3://BUCKET/catalog (read-only by convention)."""
    from mamamia_ingest import ingest

    url = f"s3://{BUCKET}/catalog"
    report = ingest(phantom_raw_dir, url, jobs=2, progress=False)
    assert report.published, report.summary()
    assert report.catalog == url
    return url


def _sorted(table: Any, key: str = "patient_id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r[key], str(r)))


def test_open_and_query_equal_the_local_catalog(
    s3_catalog: str, catalog_dir: Path, tmp_path: Path
) -> None:
    with mamamia.open(catalog_dir) as local, mamamia.open(s3_catalog) as remote:
        assert remote.version == local.version
        assert remote.tables() == local.tables()
        for table in local.tables():
            query = f'SELECT * FROM "{table}"'
            assert _sorted(remote.sql(query)) == _sorted(local.sql(query)), table
        assert remote.cohort("has_images").case_ids == local.cohort("has_images").case_ids
        assert np.array_equal(remote.case("DUKE_001").image[1], local.case("DUKE_001").image[1])


def test_crops_equal_local_and_second_pass_fetches_nothing(
    s3_catalog: str, catalog_dir: Path, tmp_path: Path
) -> None:
    from mamamia._objstore import ObjectStoreBackend

    def crops(cat: mamamia.Catalog) -> list[dict[str, Any]]:
        return list(cat.crops(cat.cohort("has_images"), size=16, per_case=2, seed=5))

    with mamamia.open(catalog_dir) as local:
        expected = crops(local)
    cache = tmp_path / "cache"
    backend = ObjectStoreBackend(s3_catalog, cache_dir=cache)
    with mamamia.Catalog(backend) as remote:
        got = crops(remote)
    assert backend.fetches > 0
    assert [c["patient_id"] for c in got] == [c["patient_id"] for c in expected]
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a["image"], b["image"]), a["patient_id"]
        assert np.array_equal(a["label"], b["label"]), a["patient_id"]
    again = ObjectStoreBackend(s3_catalog, cache_dir=cache)
    with mamamia.Catalog(again) as remote:
        second = crops(remote)
    assert again.fetches == 0, "the second pass went to the store instead of the cache"
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(second, got, strict=True))
    # The cache is a catalog folder: it opens offline with what was fetched.
    with mamamia.open(cache) as offline:
        assert offline.version == again.version


def test_missing_catalog_and_bad_url_say_so(s3: str) -> None:
    from mamamia import CatalogNotFound
    from mamamia._objstore import ObjectStore

    with pytest.raises(CatalogNotFound, match=r"no catalog\.json"):
        mamamia.open(f"s3://{BUCKET}/nothing-here")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        ObjectStore("s3:///no-bucket")


def test_reingest_switches_readers_atomically(
    s3: str, phantom_raw_dir: Path, tmp_path: Path
) -> None:
    from mamamia._objstore import ObjectStore
    from mamamia_ingest import ingest

    url = f"s3://{BUCKET}/changing"
    raw = tmp_path / "raw"
    shutil.copytree(phantom_raw_dir, raw)
    ingest(raw, url, jobs=1, cases="NACT_*", progress=False)
    old = mamamia.open(url, cache_dir=tmp_path / "old")
    old_voxels = old.case("NACT_02").image[0]

    phase0 = next((raw / "images" / "NACT_02").glob("*_0000.nii.gz"))
    image = sitk.ReadImage(str(phase0))
    changed = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) + 7)
    changed.CopyInformation(image)
    sitk.WriteImage(changed, str(phase0), useCompression=True)
    store = ObjectStore(url)
    before = {path for path, _size in store.list()}
    report = ingest(raw, url, jobs=1, cases="NACT_*", progress=False)
    assert report.published and report.built == 1 and report.reused == 1, report.summary()

    with mamamia.open(url, cache_dir=tmp_path / "new") as new:
        assert new.version != old.version
        assert new.version == json.loads(store.get("catalog.json") or b"{}")["catalog_version"]
        assert np.array_equal(new.case("NACT_02").image[0], sitk.GetArrayFromImage(changed))
        # Every object the new manifest names was there before catalog.json named it.
        new_gens = {
            "/".join(str(p).split("/")[:3])
            for p in new.sql("SELECT zarr_path FROM volumes").column("zarr_path").to_pylist()
        }
    after = {path for path, _size in store.list()}
    added = after - before
    assert any(p.startswith("volumes/NACT_02/") for p in added)
    assert all(p.startswith(("volumes/NACT_02/", "tables/")) or p in {"catalog.json",
               "ingest-report.json"} for p in added), sorted(added)  # fmt: skip
    assert all(any(p.startswith(g + "/") for p in after) for g in new_gens)
    # A reader pinned to the old version keeps reading it: its generation was kept.
    old_cache = tmp_path / "old"
    shutil.rmtree(old_cache / "volumes")  # force the old reader back to the store
    old._backend._arrays.clear()  # type: ignore[attr-defined]
    assert np.array_equal(old.case("NACT_02").image[0], old_voxels)
    old.close()
