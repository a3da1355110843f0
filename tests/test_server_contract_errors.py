"""Every error body is problem+json, over a real uvicorn: bad Range headers (400, 416), request
bodies over the limit with or without a Content-Length (413), missing and corrupt chunks (the
same 503 type: a data condition, never a 500), previews over the pixel cap (413) and previews
past the concurrency gate (503 with Retry-After)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from conftest import LiveServer, start_server
from mamamia_server._preview_limits import PreviewGate, PreviewLimits

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:mamamia:problem:{slug}"
    return body


def _chunk_files(catalog: Path, case: str) -> list[Path]:
    """The image's stored files: its shard (format 2) or its chunks (format 1), first chunk first."""
    (gen,) = (catalog / "volumes" / case).glob("*.zarr")
    return sorted(p for p in (gen / "0" / "c").rglob("*") if p.is_file())


def _first_chunk_middle(path: Path, catalog_format: int) -> int:
    """The offset of a byte inside the chunk of voxel (0, 0, 0, 0): format 2 asks the index."""
    data = path.read_bytes()
    if catalog_format == 1:
        return len(data) // 2
    meta = json.loads((path.parents[4] / "zarr.json").read_bytes())
    inner = meta["codecs"][0]["configuration"]["chunk_shape"]
    n = 1
    for size, chunk in zip(meta["shape"], inner, strict=True):
        n *= -(-size // chunk)
    index = data[-(16 * n + 4) : -4]
    offset, nbytes = (int.from_bytes(index[i : i + 8], "little") for i in (0, 8))
    return offset + nbytes // 2


@pytest.fixture(scope="module")
def damaged(
    tmp_path_factory: pytest.TempPathFactory, format_catalog_dir: Path, catalog_format: int
) -> Iterator[LiveServer]:
    """A server over a copy of the catalog with one chunk file missing (format 2: a whole
    shard) and one chunk corrupt (format 2: the first inner chunk of a shard)."""
    import shutil

    root = tmp_path_factory.mktemp("damaged") / "catalog"
    shutil.copytree(format_catalog_dir, root)
    _chunk_files(root, "DUKE_001")[0].unlink()
    corrupt = _chunk_files(root, "DUKE_002")[0]
    data = bytearray(corrupt.read_bytes())
    data[_first_chunk_middle(corrupt, catalog_format)] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    server = start_server(root, preview_max_pixels=300 * 300)
    yield server
    server.stop()


def _chunk_url(server: LiveServer) -> str:
    path = _chunk_files(server.catalog, "NACT_01")[0]
    return "/v1/zarr/" + path.relative_to(server.catalog / "volumes").as_posix()


@pytest.mark.parametrize("header", ["bytes=abc", "pages=0-10", "bytes=9-2", "bytes="])
def test_malformed_range_is_a_problem(damaged: LiveServer, header: str) -> None:
    response = httpx.get(damaged.url + _chunk_url(damaged), headers={"Range": header})
    body = _problem(response, 400, "bad-range")
    assert "Range header" in str(body["detail"])


def test_unsatisfiable_range_is_a_problem(damaged: LiveServer) -> None:
    url = damaged.url + _chunk_url(damaged)
    size = len(httpx.get(url).content)
    response = httpx.get(url, headers={"Range": f"bytes={size + 10}-"})
    _problem(response, 416, "range-not-satisfiable")
    assert response.headers["content-range"] == f"bytes */{size}"
    # A good range still gets its 206.
    assert httpx.get(url, headers={"Range": "bytes=0-3"}).status_code == 206


def test_oversized_bodies_get_413(damaged: LiveServer) -> None:
    def chunked() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * (1 << 20)

    response = httpx.post(
        damaged.url + "/v1/query", content=chunked(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    _problem(response, 413, "body-too-large")
    big = json.dumps({"where": "age > 1", "pad": "x" * (3 << 20)})
    _problem(httpx.post(damaged.url + "/v1/query", content=big), 413, "body-too-large")
    # A small chunked body still reaches the route.
    small = httpx.post(
        damaged.url + "/v1/query",
        content=iter([b'{"where": ', b'"age > 1"}']),
        headers={"content-type": "application/json"},
    )
    assert small.status_code == 200, small.text


@pytest.mark.parametrize(
    "route", ["crop?z=0:2&y=0:2&x=0:2", "slice.png?axis=axial&index=0&size=256"]
)
def test_missing_and_corrupt_chunks_answer_alike(damaged: LiveServer, route: str) -> None:
    missing = httpx.get(f"{damaged.url}/v1/cases/DUKE_001/{route}")
    corrupt = httpx.get(f"{damaged.url}/v1/cases/DUKE_002/{route}")
    _problem(missing, 503, "catalog-damaged")
    _problem(corrupt, 503, "catalog-damaged")


def test_preview_pixel_cap(damaged: LiveServer) -> None:
    response = httpx.get(damaged.url + "/v1/cases/NACT_01/slice.png?size=1024")
    body = _problem(response, 413, "preview-too-large")
    assert "90000 pixels" in str(body["detail"])
    assert httpx.get(damaged.url + "/v1/cases/NACT_01/slice.png?size=256").status_code == 200


def test_preview_gate_refuses_past_the_queue() -> None:
    """The gate itself, in process, around routes where a preview holds its slot until told."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow_preview(request: Request) -> PlainTextResponse:
        started.set()
        await release.wait()
        return PlainTextResponse("png")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    limits = PreviewLimits(concurrency=1, queue=0, wait_s=5)
    gate = Starlette(
        routes=[Route("/v1/cases/{case}/slice.png", slow_preview), Route("/v1/health", health)],
        middleware=[Middleware(PreviewGate, limits=limits)],
    )

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=gate)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate") as client:
            url = "/v1/cases/DUKE_001/slice.png"
            first = asyncio.create_task(client.get(url))
            await started.wait()  # the one slot is taken
            refused = await client.get(url)  # queue 0: answered at once
            other = await client.get("/v1/health")  # other routes pass the gate untouched
            release.set()
            return await first, refused, other

    first, refused, other = asyncio.run(run())
    assert first.status_code == 200
    _problem(refused, 503, "preview-busy")
    assert refused.headers["retry-after"].isdigit()
    assert other.status_code == 200


def test_a_preview_storm_gets_only_previews_and_busy_answers(catalog_dir: Path) -> None:
    server = start_server(catalog_dir, preview_concurrency=1, preview_queue=0)
    try:

        async def storm() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                url = "/v1/cases/DUKE_001/slice.png?size=1024&phase=sub&overlay=expert"
                return list(await asyncio.gather(*(client.get(url) for _ in range(6))))

        answers = asyncio.run(storm())
    finally:
        server.stop()
    # How many are refused depends on timing; that each answer is a PNG or a busy problem does not.
    assert {r.status_code for r in answers} <= {200, 503}
    assert any(r.status_code == 200 for r in answers)
    for r in answers:
        if r.status_code == 503:
            _problem(r, 503, "preview-busy")
            assert r.headers["retry-after"].isdigit()
        else:
            assert r.headers["content-type"] == "image/png"
