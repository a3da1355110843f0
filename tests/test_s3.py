"""Catalogs on S3: a real S3-compatible server (moto's server mode) on 127.0.0.1.

Ingest to it, open and query from it, crops from it equal to the local catalog's, the chunk
cache in front (a second pass fetches nothing), and a re-ingest switching readers atomically.
Reads run on both catalog formats (``format_s3_catalog``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

import mamamia
from conftest import BUCKET


def _sorted(table: Any, key: str = "patient_id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r[key], str(r)))


def test_open_and_query_equal_the_local_catalog(
    format_s3_catalog: str, format_catalog_dir: Path, catalog_format: int
) -> None:
    with mamamia.open(format_catalog_dir) as local, mamamia.open(format_s3_catalog) as remote:
        assert remote.manifest["format_version"] == catalog_format
        assert remote.version == local.version
        assert remote.tables() == local.tables()
        for table in local.tables():
            query = f'SELECT * FROM "{table}"'
            assert _sorted(remote.sql(query)) == _sorted(local.sql(query)), table
        assert remote.cohort("has_images").case_ids == local.cohort("has_images").case_ids
        assert np.array_equal(remote.case("DUKE_001").image[1], local.case("DUKE_001").image[1])


def test_crops_equal_local_and_second_pass_fetches_nothing(
    format_s3_catalog: str, format_catalog_dir: Path, tmp_path: Path
) -> None:
    from mamamia._objstore import ObjectStoreBackend

    def crops(cat: mamamia.Catalog) -> list[dict[str, Any]]:
        return list(cat.crops(cat.cohort("has_images"), size=16, per_case=2, seed=5))

    with mamamia.open(format_catalog_dir) as local:
        expected = crops(local)
    cache = tmp_path / "cache"
    backend = ObjectStoreBackend(format_s3_catalog, cache_dir=cache)
    with mamamia.Catalog(backend) as remote:
        got = crops(remote)
    assert backend.fetches > 0
    assert [c["patient_id"] for c in got] == [c["patient_id"] for c in expected]
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a["image"], b["image"]), a["patient_id"]
        assert np.array_equal(a["label"], b["label"]), a["patient_id"]
    again = ObjectStoreBackend(format_s3_catalog, cache_dir=cache)
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


def _serve(url: str, env: dict[str, str]) -> tuple[Any, str]:
    import subprocess
    import sys
    import time

    import httpx

    from conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mamamia._cli import main; main()", "serve", url,
         "--port", str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mamamia serve {url} exited with {proc.returncode}")
        try:
            if httpx.get(base + "/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"mamamia serve {url} did not start")


def test_two_servers_on_one_s3_catalog_answer_alike_and_switch_together(
    s3: str, phantom_raw_dir: Path, tmp_path: Path
) -> None:
    import os
    import time

    import httpx

    from mamamia_ingest import ingest

    url = f"s3://{BUCKET}/served"
    raw = tmp_path / "raw"
    shutil.copytree(phantom_raw_dir, raw)
    ingest(raw, url, jobs=1, cases="DUKE_*", progress=False)
    env = {**os.environ, "MAMAMIA_SERVER_CATALOG_POLL_S": "0.2"}
    servers = []
    try:
        for name in ("a", "b"):
            # Separate caches: nothing is shared between the two but the store.
            servers.append(_serve(url, {**env, "MAMAMIA_CACHE_DIR": str(tmp_path / name)}))
        sql = {"sql": "SELECT patient_id, age, pcr FROM cases ORDER BY patient_id"}

        def answers() -> list[tuple[str, Any, bytes]]:
            out = []
            for _proc, base in servers:
                version = httpx.get(base + "/v1/catalog").json()["manifest"]["catalog_version"]
                rows = httpx.post(base + "/v1/query", json=sql).json()["rows"]
                path = httpx.post(
                    base + "/v1/query",
                    json={"sql": "SELECT zarr_path FROM volumes WHERE patient_id = 'DUKE_002' "
                          "AND kind = 'image' AND phase = 0"},
                ).json()["rows"][0][0]  # fmt: skip
                response = httpx.get(
                    base + "/v1/zarr/" + path.removeprefix("volumes/") + "/c/0/0/0/0"
                )
                assert response.status_code == 200, response.text
                out.append((version, rows, response.content))
            return out

        first = answers()
        assert first[0] == first[1]
        assert len(first[0][1]) == 2
        phase0 = next((raw / "images" / "DUKE_002").glob("*_0000.nii.gz"))
        image = sitk.ReadImage(str(phase0))
        changed = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) + 11)
        changed.CopyInformation(image)
        sitk.WriteImage(changed, str(phase0), useCompression=True)
        report = ingest(raw, url, jobs=1, cases="DUKE_*", progress=False)
        assert report.published
        deadline = time.monotonic() + 30
        while True:
            now = answers()
            if all(v == report.catalog_version for v, _rows, _chunk in now):
                break
            assert time.monotonic() < deadline, "the servers did not switch to the new version"
            time.sleep(0.2)
        assert now[0] == now[1]
        assert now[0][2] != first[0][2], "the changed case's chunk was served from the old version"
    finally:
        for proc, _base in servers:
            proc.terminate()
            proc.wait(timeout=20)
