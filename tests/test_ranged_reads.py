"""Remote reads of format 2 fetch only the inner chunks a box needs, and cache them as pieces.

Over a real uvicorn (``mamamia.connect``) a cold crop costs the shard's index (a suffix range)
and one multi-range request; over moto's S3 one GET for the index and one per coalesced range.
A warm cache asks nothing, opens offline with what was fetched, refetches a damaged piece once,
stays under its bound, and format 1 is read exactly as before.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import zarr

import mamamia
from conftest import BUCKET, LiveServer, start_server
from mamamia._atomic import ATOMIC_TEMP_PREFIX
from mamamia._http import ApiClient
from mamamia._objstore import ObjectStoreBackend
from mamamia._pieces import PARTS_SUFFIX, PieceIndex, coalesce
from mamamia._remote import RemoteBackend
from mamamia._store import ChunkCache, HttpCachedStore, StrictLocalStore

CASE = "DUKE_001"
BOX = (1, slice(0, 8), slice(0, 16), slice(0, 16))  # inside one inner chunk of phase 1
OTHER = (2, slice(0, 8), slice(0, 16), slice(0, 16))  # the same place in phase 2


@pytest.fixture(scope="module")
def format2(catalog_dir: Path) -> Path:
    """The shared phantom catalog: format 2, the default (only read here; damage is done to
    copies and to caches)."""
    assert json.loads((catalog_dir / "catalog.json").read_text())["format_version"] == 2
    return catalog_dir


@pytest.fixture(scope="module")
def server(live_server_v2: LiveServer) -> LiveServer:
    return live_server_v2


@pytest.fixture(scope="module")
def local(format2: Path) -> Iterator[mamamia.Catalog]:
    with mamamia.open(format2) as catalog:
        yield catalog


def _image_path(catalog: mamamia.Catalog) -> str:
    rows = [row for row in catalog.case(CASE).volumes if row["kind"] == "image"]
    return str(rows[0]["zarr_path"])


def _pieces(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "volumes").rglob(f"*{PARTS_SUFFIX}/*") if p.is_file())


def _connect(server: LiveServer, cache: Path, **options: Any) -> tuple[RemoteBackend, Any]:
    backend = RemoteBackend(server.url, cache_dir=cache, **options)
    catalog = mamamia.Catalog(backend)
    image = catalog.case(CASE).image
    assert image.shape[0] > 2  # opening it fetched zarr.json: the counts below are reads only
    return backend, image


def test_a_cold_crop_costs_the_index_and_one_request_then_nothing(
    server: LiveServer, local: mamamia.Catalog, format2: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    backend, image = _connect(server, cache)
    expected = local.case(CASE).image
    sent, served = backend.api.requests_sent, server.count("/v1/zarr/")
    assert np.array_equal(image[BOX], expected[BOX])
    assert backend.api.requests_sent - sent == 2  # the index (bytes=-N), then the chunk
    assert server.count("/v1/zarr/") - served == 2
    shard = format2 / _image_path(local) / "c/0/0/0/0"
    pieces = _pieces(cache)
    assert [p.name.split("-")[0] for p in pieces].count("end") == 1
    fetched = sum(p.stat().st_size for p in pieces)
    assert fetched < shard.stat().st_size / 4, (fetched, shard.stat().st_size)
    assert not (cache / _image_path(local) / "c/0/0/0/0").exists()  # never fetched whole
    # Warm: the same box asks nothing; another box of the same shard skips the index.
    sent = backend.api.requests_sent
    assert np.array_equal(image[BOX], expected[BOX])
    assert backend.api.requests_sent == sent
    assert np.array_equal(image[OTHER], expected[OTHER])
    assert backend.api.requests_sent - sent == 1
    # A new process (a fresh index in memory) on the same cache asks nothing either.
    again, image2 = _connect(server, cache)
    sent = again.api.requests_sent
    assert np.array_equal(image2[BOX], expected[BOX])
    assert np.array_equal(image2[OTHER], expected[OTHER])
    assert again.api.requests_sent == sent
    # A whole phase: every inner chunk of it in one multi-range request (the index is known).
    sent = again.api.requests_sent
    assert np.array_equal(image2[3], expected[3])
    assert again.api.requests_sent - sent == 1


def test_warm_pieces_are_read_in_place_and_checked_once(
    server: LiveServer,
    local: mamamia.Catalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    import mamamia._boxread as boxread
    import mamamia._chunks as chunks
    from mamamia._mapped import mapped_files

    # The Python path, whose checks are counted here (the compiled loop keeps the same flags:
    # tests/test_boxread.py).
    monkeypatch.setattr(boxread, "_boxdecode", None)
    _backend, image = _connect(server, tmp_path / "cache")
    expected = local.case(CASE).image[BOX]
    assert np.array_equal(image[BOX], expected)  # fetched and checked
    piece = next(p for p in _pieces(tmp_path / "cache") if not p.name.startswith("end"))
    checks: list[int] = []
    real_crc = chunks.crc32c.crc32c

    def counted(data: Any) -> int:
        checks.append(len(data))
        return int(real_crc(data))

    monkeypatch.setattr(chunks.crc32c, "crc32c", counted)
    os.utime(piece, (1, 1))  # changed by someone else (long unused): mapped and checked afresh
    assert np.array_equal(image[BOX], expected)
    assert len(checks) == 1
    assert piece.stat().st_mtime > 1  # the read marked it recently used (the eviction order)
    view = mapped_files.view(str(piece))  # ... and our own mark kept its map
    assert np.array_equal(image[BOX], expected)
    assert len(checks) == 1  # the same mapped bytes are not checked twice
    assert mapped_files.view(str(piece)) is view


def test_the_cache_opens_offline_and_an_unfetched_box_is_missing(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _backend, image = _connect(server, cache)
    expected = local.case(CASE).image
    box = (1, slice(0, 8), slice(30, 67), slice(30, 67))  # several inner chunks
    assert np.array_equal(image[box], expected[box])
    with mamamia.open(cache) as offline:
        cached = offline.case(CASE).image
        assert np.array_equal(cached[box], expected[box])
        assert np.array_equal(cached[BOX], expected[BOX])  # a range inside a fetched piece
        with pytest.raises(mamamia.ChunkMissingError, match="never fetched"):
            cached[OTHER]
    # zarr-python reads the pieces too, by byte range (``get`` with a ByteRequest).
    strict = zarr.open_array(store=StrictLocalStore(cache / _image_path(local)), mode="r")
    assert strict.shards is not None
    assert np.array_equal(strict[box], expected[box])
    with pytest.raises(mamamia.ChunkMissingError):
        strict[OTHER]


def test_a_damaged_cached_piece_is_fetched_again_once(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    backend, image = _connect(server, cache)
    expected = local.case(CASE).image[BOX]
    assert np.array_equal(image[BOX], expected)
    (piece,) = [p for p in _pieces(cache) if not p.name.startswith("end-")]
    good = piece.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    piece.write_bytes(bytes(damaged))
    sent = backend.api.requests_sent
    assert np.array_equal(image[BOX], expected)
    assert backend.api.requests_sent - sent == 2  # the dropped shard's index, then the chunk
    assert piece.read_bytes() == good
    sent = backend.api.requests_sent
    assert np.array_equal(image[BOX], expected)
    assert backend.api.requests_sent == sent


def test_a_damaged_chunk_on_the_server_raises_chunk_corrupt(
    format2: Path, local: mamamia.Catalog, tmp_path: Path
) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(format2, copy)
    shard = copy / _image_path(local) / "c/0/0/0/0"
    meta = json.loads((shard.parents[4] / "zarr.json").read_bytes())
    inner = meta["codecs"][0]["configuration"]["chunk_shape"]
    grid = [-(-n // c) for n, c in zip(meta["shape"], inner, strict=True)]
    data = bytearray(shard.read_bytes())
    count = int(np.prod(grid))
    index = np.frombuffer(bytes(data[-(16 * count + 4) : -4]), "<u8").reshape(count, 2)
    offset, nbytes = (int(n) for n in index[int(np.prod(grid[1:]))])  # phase 1, chunk (0,0,0)
    data[offset + nbytes // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    live = start_server(copy)
    try:
        _backend, image = _connect(live, tmp_path / "cache")
        with pytest.raises(mamamia.ChunkCorruptError, match="crc32c"):
            image[BOX]
        assert np.array_equal(image[OTHER], local.case(CASE).image[OTHER])
    finally:
        live.stop()


def test_the_cache_bound_holds_and_evicts_chunks_before_indexes_and_metadata(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    backend, image = _connect(server, cache, cache_max_bytes=64 * 1024)
    expected = local.case(CASE).image
    for phase in range(image.shape[0]):
        box = (phase, slice(0, 8), slice(20, 60), slice(20, 60))
        assert np.array_equal(image[box], expected[box])
    entries = backend.cache.entries()
    keep = sum(
        size for path, size, _ in entries if path.name in ("zarr.json",) or "end-" in path.name
    )
    assert backend.cache.size() > keep
    backend.cache.evict(max_bytes=keep)
    left = backend.cache.entries()
    assert sum(size for _p, size, _u in left) <= keep
    assert {p.name for p, _s, _u in left if p.name == "zarr.json"}
    assert not [p for p, _s, _u in left if p.name != "zarr.json" and "end-" not in p.name]
    backend.cache.evict()
    assert backend.cache.size() <= backend.cache.max_bytes
    # An evicted piece is simply fetched again.
    assert np.array_equal(image[BOX], expected[BOX])


def test_threads_reading_overlapping_boxes_fetch_each_piece_once(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    backend, image = _connect(server, tmp_path / "cache")
    expected = local.case(CASE).image
    boxes = [(1, slice(0, 8), slice(y, y + 16), slice(y, y + 16)) for y in (0, 4, 8, 12)] * 3
    got: dict[int, np.ndarray[Any, Any]] = {}
    sent = backend.api.requests_sent

    def read(at: int) -> None:
        got[at] = image[boxes[at]]

    threads = [threading.Thread(target=read, args=(at,)) for at in range(len(boxes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every box lies in one inner chunk: the index once, the chunk once.
    assert backend.api.requests_sent - sent == 2
    assert all(np.array_equal(got[at], expected[box]) for at, box in enumerate(boxes))


_READER = """
import sys
import numpy as np
import mamamia
with mamamia.connect(sys.argv[1], cache_dir=sys.argv[2]) as cat:
    image = cat.case("DUKE_001").image
    for y in (0, 20, 40, 0, 20, 40):
        print(int(image[1, 0:8, y : y + 27, y : y + 27].astype(np.int64).sum()))
"""


def test_processes_sharing_one_cache_read_the_same_voxels(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, server.url, str(cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [reader.communicate(timeout=120)[0].split() for reader in readers]
    assert all(reader.returncode == 0 for reader in readers)
    image = local.case(CASE).image
    expected = [
        str(int(image[1, 0:8, y : y + 27, y : y + 27].astype(np.int64).sum()))
        for y in (0, 20, 40, 0, 20, 40)
    ]
    assert outputs == [expected] * 3
    assert not [p for p in (cache / "volumes").rglob("*") if ATOMIC_TEMP_PREFIX in p.name]
    with mamamia.open(cache) as offline:  # what the readers fetched, read offline
        for y in (0, 20, 40):
            box = (1, slice(0, 8), slice(y, y + 27), slice(y, y + 27))
            assert np.array_equal(offline.case(CASE).image[box], image[box])


def test_format_1_is_fetched_chunk_by_chunk_as_before(
    live_server_v1: LiveServer, catalog_v1_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    backend, image = _connect(live_server_v1, cache)
    with mamamia.open(catalog_v1_dir) as reference:
        expected = reference.case(CASE).image
        sent = backend.api.requests_sent
        assert np.array_equal(image[BOX], expected[BOX])
        assert backend.api.requests_sent - sent == 1  # one whole chunk file
    assert not _pieces(cache)
    assert [p for p in (cache / "volumes").rglob("c/*/*/*/*") if p.is_file()]


def test_prefetch_fetches_whole_shards_and_then_reads_locally(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    backend, image = _connect(server, cache)
    assert np.array_equal(image[BOX], local.case(CASE).image[BOX])  # pieces first
    catalog = mamamia.Catalog(backend)
    shards = sum(n for path, n in server.requests.items() if "/c/" in path)
    fetched = catalog.cohort("patient_id = $id", id=CASE).prefetch(progress=False)
    # One GET per shard (the others read the arrays' zarr.json).
    assert fetched > 0
    assert sum(n for path, n in server.requests.items() if "/c/" in path) - shards == fetched
    assert not _pieces(cache)  # the whole shard replaced its pieces
    sent = backend.api.requests_sent
    assert np.array_equal(image[OTHER], local.case(CASE).image[OTHER])
    assert backend.api.requests_sent == sent


def test_zarr_python_through_the_store_reads_byte_ranges(
    server: LiveServer, local: mamamia.Catalog, tmp_path: Path
) -> None:
    backend, _image = _connect(server, tmp_path / "cache")
    path = _image_path(local)
    store = HttpCachedStore(backend.cache, path, backend.fetch, backend.fetch_ranges)
    array = zarr.open_array(store=store, mode="r", zarr_format=3)
    box = (1, slice(0, 8), slice(30, 67), slice(30, 67))
    assert np.array_equal(array[box], local.case(CASE).image[box])
    assert _pieces(tmp_path / "cache") and not (tmp_path / "cache" / path / "c/0/0/0/0").exists()


def test_multi_range_suffix_and_single_answers_are_parsed(
    server: LiveServer, local: mamamia.Catalog, format2: Path
) -> None:
    relative = _image_path(local)[len("volumes/") :] + "/c/0/0/0/0"
    data = (format2 / "volumes" / relative).read_bytes()
    raw = httpx.get(f"{server.url}/v1/zarr/{relative}", headers={"Range": "bytes=0-9,5000-5299"})
    assert raw.status_code == 206
    assert raw.headers["content-type"].startswith("multipart/byteranges; boundary=")
    api = ApiClient(server.url)
    try:
        ranges = [(0, 10), (5000, 300), (-20, 20), (len(data) - 3, 3)]
        got = api.get_ranges("/v1/zarr/" + relative, ranges)
        assert got is not None and got.parts is not None and got.whole is None
        assert got.parts == (data[0:10], data[5000:5300], data[-20:], data[-3:])
        one = api.get_ranges("/v1/zarr/" + relative, [(-16, 16)])
        assert one is not None and one.parts == (data[-16:],)
        assert api.get_ranges("/v1/zarr/" + relative + "x", [(0, 4)]) is None
        # A range past the end reads as no bytes (the reader reports the chunk truncated).
        past = api.get_ranges("/v1/zarr/" + relative, [(len(data) + 5, 4)])
        assert past is not None and past.parts == (b"",)
    finally:
        api.close()


class _NoRanges(http.server.SimpleHTTPRequestHandler):
    """A plain file server that ignores Range (as some proxies do): always 200, whole file."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_server_without_ranges_answers_whole_and_the_cache_keeps_it(
    local: mamamia.Catalog, format2: Path, tmp_path: Path
) -> None:
    handler = functools.partial(_NoRanges, directory=str(format2))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    api = ApiClient(f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        cache = ChunkCache(tmp_path / "cache")

        def fetch(relative: str) -> bytes | None:
            response = api.request("GET", "/" + relative, allow_404=True)
            return None if response is None else response.content

        store = HttpCachedStore(
            cache, _image_path(local), fetch, lambda r, spans: api.get_ranges("/" + r, spans)
        )
        from mamamia._chunks import open_chunk_array

        array = open_chunk_array(store, where="A", fallback=lambda: None)
        expected = local.case(CASE).image
        sent = api.requests_sent
        assert np.array_equal(array[BOX], expected[BOX])
        assert api.requests_sent - sent == 1  # the index's ranged GET got the shard whole
        assert cache.path(_image_path(local) + "/c/0/0/0/0").is_file()
        assert np.array_equal(array[OTHER], expected[OTHER])
        assert api.requests_sent - sent == 1
    finally:
        api.close()
        httpd.shutdown()
        httpd.server_close()


class _SingleRangeOnly(http.server.SimpleHTTPRequestHandler):
    """A file server that serves one range per request and refuses several with a 400."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        spec = self.headers.get("Range", "")
        if not spec:
            super().do_GET()
            return
        if "," in spec:
            self.send_error(400, "one range per request")
            return
        data = Path(self.translate_path(self.path)).read_bytes()
        first, _, last = spec.removeprefix("bytes=").partition("-")
        start = max(0, len(data) - int(last)) if not first else int(first)
        end = len(data) if not first or not last else min(len(data), int(last) + 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        self.wfile.write(data[start:end])


def test_a_refused_multi_range_request_is_sent_again_one_range_each(
    local: mamamia.Catalog, format2: Path
) -> None:
    handler = functools.partial(_SingleRangeOnly, directory=str(format2 / "volumes"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    api = ApiClient(f"http://127.0.0.1:{httpd.server_address[1]}", retries=0)
    relative = _image_path(local)[len("volumes/") :] + "/c/0/0/0/0"
    data = (format2 / "volumes" / relative).read_bytes()
    try:
        got = api.get_ranges("/" + relative, [(0, 10), (5000, 300), (-20, 20)])
        assert got is not None and got.parts == (data[0:10], data[5000:5300], data[-20:])
        assert api.requests_sent == 4  # the refused request, then one per range
    finally:
        api.close()
        httpd.shutdown()
        httpd.server_close()


def test_coalescing_and_piece_lookup() -> None:
    assert coalesce([(100, 10), (0, 10), (15, 5)], gap=5) == [(0, 20), (100, 10)]
    assert coalesce([(0, 10), (5, 2), (30, 1)], gap=20) == [(0, 31)]
    assert coalesce([(0, 10), (40, 1)], gap=29) == [(0, 10), (40, 1)]
    pieces = PieceIndex("f", ["0-100", "50-10", "end-20", "end-5", ".tmp-x", "200-50"])
    assert pieces.find(60, 40) == ("f/0-100", 60)
    assert pieces.find(52, 5) == ("f/50-10", 2) or pieces.find(52, 5) == ("f/0-100", 52)
    assert pieces.find(90, 20) is None
    assert pieces.find(210, 40) == ("f/200-50", 10)
    assert pieces.find(-4, 4) == ("f/end-5", 1)
    assert pieces.find(-16, 16) == ("f/end-20", 4)
    assert pieces.find(-21, 21) is None
    assert len(pieces) == 5


@pytest.fixture(scope="module")
def s3_format2(s3: str, phantom_raw_dir: Path) -> str:
    from mamamia_ingest import ingest

    url = f"s3://{BUCKET}/ranged"
    report = ingest(phantom_raw_dir, url, jobs=2, progress=False, format_version=2)
    assert report.published, report.summary()
    return url


def test_s3_reads_ranges_and_a_warm_cache_asks_nothing(
    s3_format2: str, local: mamamia.Catalog, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    backend = ObjectStoreBackend(s3_format2, cache_dir=cache)
    image = mamamia.Catalog(backend).case(CASE).image
    expected = local.case(CASE).image
    assert image.shape == expected.shape
    before = backend.fetches
    assert np.array_equal(image[BOX], expected[BOX])
    assert backend.fetches - before == 2  # a suffix GET for the index, a ranged GET
    before = backend.fetches
    box = (1, slice(0, 8), slice(30, 67), slice(30, 67))
    assert np.array_equal(image[box], expected[box])
    assert 1 <= backend.fetches - before <= 4  # one GET per coalesced range, in parallel
    assert _pieces(cache)
    again = ObjectStoreBackend(s3_format2, cache_dir=cache)
    image = mamamia.Catalog(again).case(CASE).image
    assert np.array_equal(image[box], expected[box]) and np.array_equal(image[BOX], expected[BOX])
    assert again.fetches == 0
    with mamamia.open(cache) as offline:
        assert np.array_equal(offline.case(CASE).image[box], expected[box])
