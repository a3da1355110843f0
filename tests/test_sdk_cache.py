"""The remote chunk cache: no second fetch, offline reads, crash safety, per-case invalidation."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import SimpleITK as sitk

import mamamia
from conftest import LiveServer, free_port, start_server
from mamamia._http import ApiClient
from mamamia._store import ChunkCache


def read_everything(catalog: mamamia.Catalog) -> dict[str, int]:
    """Read every volume of every case whole; return a checksum per case."""
    sums: dict[str, int] = {}
    for case in catalog.cohort("has_images"):
        total = int(case.image.to_numpy().astype(np.int64).sum())
        for kind in ("expert", "automatic"):
            total += int(case.mask(kind).to_numpy().sum())
        sums[case.patient_id] = total
    return sums


def test_second_pass_makes_no_chunk_requests(live_server: LiveServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = live_server.count("/v1/zarr/")
    with mamamia.connect(live_server.url, cache_dir=cache) as remote:
        first = read_everything(remote)
    fetched = live_server.count("/v1/zarr/") - before
    assert fetched > 0
    after_first = live_server.count("/v1/zarr/")
    with mamamia.connect(live_server.url, cache_dir=cache) as remote:
        second = read_everything(remote)
        assert remote.cohort("TRUE").prefetch(progress=False) == 0
    assert live_server.count("/v1/zarr/") == after_first
    assert first == second
    with mamamia.open(live_server.catalog) as local:
        assert read_everything(local) == first


def test_offline_cache_opens_and_missing_chunks_raise(
    live_server: LiveServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with mamamia.connect(live_server.url, cache_dir=cache) as remote:
        remote.cohort("patient_id = 'DUKE_001'").prefetch(progress=False)
        expected = remote.case("DUKE_001").image[1]
        version = remote.version
    with mamamia.open(cache) as offline:
        assert offline.version == version
        assert np.array_equal(offline.case("DUKE_001").image[1], expected)
        assert len(offline.cohort("TRUE")) == 6
        with pytest.raises(mamamia.ChunkMissingError, match="never fetched"):
            offline.case("NACT_01").image[0]
    chunk = next(
        p for p in (cache / "volumes" / "DUKE_001").glob("*.zarr/0/c/*/*/*/*") if p.is_file()
    )
    chunk.unlink()
    with mamamia.open(cache) as offline, pytest.raises(mamamia.ChunkMissingError, match="missing"):
        offline.case("DUKE_001").image[...]


def test_a_writer_killed_mid_write_leaves_no_corrupt_entry(tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    ChunkCache(cache_root)
    key = "volumes/X/g.zarr/0/c/0/0/0/0"
    script = (
        "import sys, time\n"
        "from mamamia._store import ChunkCache\n"
        "class Slow(bytes):\n"
        "    pass\n"
        "cache = ChunkCache(sys.argv[1])\n"
        "import mamamia._store as s\n"
        "real_open = s.Path.open\n"
        "def slow_open(self, *a, **k):\n"
        "    handle = real_open(self, *a, **k)\n"
        "    write = handle.write\n"
        "    def trickle(data):\n"
        "        for i in range(0, len(data), 4096):\n"
        "            write(data[i:i + 4096]); handle.flush(); time.sleep(0.01)\n"
        "    handle.write = trickle\n"
        "    return handle\n"
        "s.Path.open = slow_open\n"
        "cache.write(sys.argv[2], b'x' * (4096 * 1000))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(cache_root), key])
    partials: list[Path] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not partials:
        partials = list((cache_root / "volumes").rglob("*.partial-*"))
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partials, "the writer never started"
    cache = ChunkCache(cache_root)
    assert cache.read(key) is None
    assert not cache.path(key).exists()
    cache.write(key, b"good")
    assert cache.read(key) == b"good"


def test_cache_is_bounded_lru(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "cache", max_bytes=10_000)
    for index in range(30):
        cache.write(f"volumes/A/g.zarr/0/c/0/{index}", bytes(1000))
        time.sleep(0.002)
    cache.read("volumes/A/g.zarr/0/c/0/0")  # recently used again: survives eviction
    cache.evict()
    assert cache.size() <= 10_000
    assert cache.read("volumes/A/g.zarr/0/c/0/0") is not None
    assert cache.read("volumes/A/g.zarr/0/c/0/1") is None


def test_reingesting_one_case_refetches_only_that_case(
    phantom_raw_dir: Path, catalog_copy: Path, tmp_path: Path
) -> None:
    from mamamia_ingest import ingest

    raw = tmp_path / "raw"
    shutil.copytree(phantom_raw_dir, raw)
    server = start_server(catalog_copy)
    try:
        cache = tmp_path / "cache"
        with mamamia.connect(server.url, cache_dir=cache) as remote:
            old_version = remote.version
            remote.cohort("TRUE").prefetch(progress=False)
        phase0 = next((raw / "images" / "NACT_02").glob("*_0000.nii.gz"))
        image = sitk.ReadImage(str(phase0))
        changed = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) + 7)
        changed.CopyInformation(image)
        sitk.WriteImage(changed, str(phase0), useCompression=True)
        ingest(raw, catalog_copy, jobs=1, progress=False)
        before = dict(server.requests)
        deadline = time.monotonic() + 10
        while True:
            with mamamia.connect(server.url, cache_dir=cache) as remote:
                if remote.version != old_version or time.monotonic() > deadline:
                    break
            time.sleep(0.3)
        with mamamia.connect(server.url, cache_dir=cache) as remote:
            assert remote.version != old_version
            remote.cohort("TRUE").prefetch(progress=False)
            fresh = remote.case("NACT_02").image[0]
        new = [
            p
            for p, n in server.requests.items()
            if p.startswith("/v1/zarr/") and n > before.get(p, 0)
        ]
        assert new, "the changed case was not fetched again"
        assert all(p.startswith("/v1/zarr/NACT_02/") for p in new), new
        assert np.array_equal(fresh, sitk.GetArrayFromImage(changed))
    finally:
        server.stop()


def test_transient_errors_are_retried_then_reported() -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    calls = {"n": 0}

    async def flaky(request: object) -> JSONResponse:
        calls["n"] += 1
        if calls["n"] <= 2:
            return JSONResponse({"detail": "busy"}, status_code=503)
        return JSONResponse({"ok": True})

    async def down(request: object) -> JSONResponse:
        return JSONResponse({"detail": "still busy"}, status_code=503)

    app = Starlette(routes=[Route("/flaky", flaky), Route("/down", down)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/flaky", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        calls["n"] = 0
        client = ApiClient(f"http://127.0.0.1:{port}", retries=3, backoff_s=0.01)
        assert client.get_json("/flaky") == {"ok": True}
        assert calls["n"] == 3
        with pytest.raises(mamamia.TransportError, match="still busy"):
            client.get_json("/down")
        dead = ApiClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.01)
        with pytest.raises(mamamia.TransportError, match="no answer"):
            dead.get_json("/v1/health")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_cache_info_names_each_version_and_a_damaged_manifest(catalog_copy: Path) -> None:
    from click.testing import CliRunner

    from mamamia._cli import main

    version = mamamia.open(catalog_copy).version
    shown = CliRunner().invoke(main, ["cache", "info", "--cache-dir", str(catalog_copy)])
    assert shown.exit_code == 0 and f"catalog {version}" in shown.output
    (catalog_copy / "catalog.json").write_text('{"format_version": 1}')
    damaged = CliRunner().invoke(main, ["cache", "info", "--cache-dir", str(catalog_copy)])
    assert damaged.exit_code == 0, damaged.output
    assert "unreadable" in damaged.output and "catalog_version" in damaged.output
