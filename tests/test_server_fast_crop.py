"""The lean crop path (``mamamia_server._fast_crop``) answers exactly as the FastAPI route does.

Two apps over the same catalog, one with ``fast_crops`` on and one with it off, get the same
requests; status, body and headers must match (timings aside), and the lean path must really
have answered the plain ones (counted), so a silent fall-through cannot pass as equality.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import mamamia_server._fast_crop as fast_crop
from conftest import start_server
from mamamia_server import ServerSettings, create_app

PLAIN = [
    "phase=1&z=0:8&y=2:20&x=3:8&format=raw",
    "phase=0&z=1:5&y=0:7&x=0:9",  # npy by default
    "z=2:3&y=4:5&x=5:6&format=raw",  # phase 0 by default
    "kind=expert&z=0:4&y=0:9&x=1:8&format=npy",
    "kind=automatic&format=raw&x=0:3&y=0:3&z=0:3",
    "phase=1&z=3&y=4&x=5&format=raw",  # single indices
    "phase=1&z=&y=0:5&x=0:5&format=raw",  # empty = the whole axis
    "phase=1&z=0%3A4&y=0%3a5&x=0:5&format=raw",  # escaped colons, as httpx sends them
]
ROUTED = [
    "phase=1&z=0:8&y=0:8&x=0:8&format=nifti",
    "phase=01&z=0:4&y=0:4&x=0:4&format=raw",  # a leading zero: pydantic decides
    "phase=999&z=0:4&y=0:4&x=0:4&format=raw",  # no such phase: 422
    "phase=1000&z=0:4",  # over le=999: 422
    "phase=-1&z=0:4",
    "kind=expert&phase=0&z=0:4",  # masks have no phase: 422
    "kind=label&z=0:4",
    "format=png&z=0:4",
    "z=4:2&y=0:4&x=0:4",  # empty range: 422
    "z=0:100000&y=0:4&x=0:4",  # outside the volume: 422
    "z=0:4&z=4:8",  # repeated
    "z=0:4&extra=1",  # unknown (ignored by the route)
    "z=0%2C4",  # another escape
    "z=a:b",
    "phase=1&z=0:4&y=0:4&x=0:4&version=nope",  # a pin the server does not serve: 409
]


@pytest.fixture(scope="module")
def clients(format_catalog_dir: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """The lean path and the route over one catalog, in each catalog format."""
    fast = create_app(ServerSettings(catalog=format_catalog_dir, fast_crops=True))
    routed = create_app(ServerSettings(catalog=format_catalog_dir, fast_crops=False))
    with TestClient(fast) as a, TestClient(routed) as b:
        yield a, b


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each request reaching the lean path was answered there (True) or passed on."""
    seen: list[bool] = []
    original = fast_crop.FastCrops._answer

    async def counting(self: Any, scope: Any, case_id: str) -> Any:
        result = await original(self, scope, case_id)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(fast_crop.FastCrops, "_answer", counting)
    return seen


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    headers.pop("server-timing", None)
    headers.pop("date", None)
    return response.status_code, response.content, headers


@pytest.mark.parametrize("case_id", ["DUKE_001", "nact_01"])
@pytest.mark.parametrize("query", PLAIN)
def test_plain_crops_are_answered_by_the_lean_path_identically(
    clients: tuple[TestClient, TestClient], answered: list[bool], case_id: str, query: str
) -> None:
    fast, routed = clients
    url = f"/v1/cases/{case_id}/crop?{query}"
    fast.get(url)  # the first request opens the volume through the route
    answered.clear()
    got, want = fast.get(url), routed.get(url)
    assert answered == [True]
    assert got.status_code == 200, got.text
    assert _comparable(got) == _comparable(want)


@pytest.mark.parametrize("query", ROUTED)
def test_everything_else_goes_to_the_route(
    clients: tuple[TestClient, TestClient], answered: list[bool], query: str
) -> None:
    fast, routed = clients
    url = f"/v1/cases/DUKE_001/crop?{query}"
    fast.get("/v1/cases/DUKE_001/crop?z=0:1")  # volumes open: the lean path is live
    answered.clear()
    got, want = fast.get(url), routed.get(url)
    assert not any(answered), "the lean path answered a request it must pass on"
    assert _comparable(got) == _comparable(want)


def test_an_unknown_case_goes_to_the_route(clients: tuple[TestClient, TestClient]) -> None:
    fast, routed = clients
    got = fast.get("/v1/cases/NOPE_1/crop?z=0:1")
    assert got.status_code == 404
    assert _comparable(got) == _comparable(routed.get("/v1/cases/NOPE_1/crop?z=0:1"))


def test_with_auth_on_every_crop_goes_through_the_token_check(
    catalog_dir: Path, answered: list[bool]
) -> None:
    server = start_server(catalog_dir, tokens=["secret-token-123"])
    try:
        url = f"{server.url}/v1/cases/DUKE_001/crop"
        ok = httpx.get(
            url,
            params={"z": "0:4", "format": "raw"},
            headers={"Authorization": "Bearer secret-token-123"},
        )
        assert ok.status_code == 200
        refused = httpx.get(url, params={"z": "0:4", "format": "raw"})
        assert refused.status_code == 401
        assert not any(answered), "the lean path answered a request it must pass on"
    finally:
        server.stop()


def test_lean_answers_over_http_carry_the_version_and_the_voxels(
    format_live_server: Any, format_catalog_dir: Path
) -> None:
    import mamamia

    live_server, catalog_dir = format_live_server, format_catalog_dir
    url = f"{live_server.url}/v1/cases/DUKE_001/crop"
    params = {"phase": 1, "z": "1:6", "y": "2:9", "x": "3:11", "format": "raw"}
    httpx.get(url, params=params)
    response = httpx.get(url, params=params)
    image = mamamia.open(catalog_dir).case("DUKE_001").image
    data = np.frombuffer(response.content, dtype="<i2").reshape(5, 7, 8)
    assert np.array_equal(data, image[1, 1:6, 2:9, 3:11])
    assert response.headers["x-catalog-version"] == mamamia.open(catalog_dir).version
