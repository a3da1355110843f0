"""Session-wide fixtures: one phantom raw dataset, its catalog, and a live server over it.

The phantom comes from the real table's rows (tests/data, CC BY-NC 4.0) for axial and sagittal
cases of every collection, at a small scale so the whole suite stays fast. Tests that change a
catalog copy it first (``catalog_copy``); the shared ones are read-only by convention.

``catalog_dir`` is in the default format (2, sharded). The core read paths also run on format 1:
a test that asks for ``catalog_format`` (or ``format_catalog_dir``, ``format_live_server``,
``format_s3_catalog``) runs once per format, on the same phantom.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

DATA = Path(__file__).parent / "data"
REAL_TABLE = DATA / "clinical_and_imaging_info.xlsx"
#: Axial (DUKE, ISPY2) and sagittal (ISPY1, NACT) cases of the real table.
PHANTOM_IDS = ("DUKE_001", "DUKE_002", "ISPY1_1001", "ISPY2_100899", "NACT_01", "NACT_02")
PHANTOM_SCALE = 0.15


@pytest.fixture(scope="session")
def phantom_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw MAMA-MIA folder (release 1) of PHANTOM_IDS, written by the phantom."""
    from mamamia_ingest import write_phantom

    out = tmp_path_factory.mktemp("phantom") / "raw"
    write_phantom(
        out, ids=list(PHANTOM_IDS), scale=PHANTOM_SCALE, seed=7, table=REAL_TABLE, progress=False
    )
    return out


@pytest.fixture(scope="session")
def catalog_dir(phantom_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog ``mamamia ingest`` builds from ``phantom_raw_dir``. Do not modify it."""
    from mamamia_ingest import ingest

    out = tmp_path_factory.mktemp("catalog") / "catalog"
    ingest(phantom_raw_dir, out, jobs=2, progress=False)
    assert (out / "catalog.json").is_file()
    return out


#: The catalog formats the core read tests run on; the first one is the default.
CATALOG_FORMATS = (2, 1)


@pytest.fixture(scope="session")
def catalog_v1_dir(phantom_raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``phantom_raw_dir`` ingested as format 1 (``--format 1``). Do not modify it."""
    from mamamia_ingest import ingest

    out = tmp_path_factory.mktemp("catalog-v1") / "catalog"
    ingest(phantom_raw_dir, out, jobs=2, progress=False, format_version=1)
    assert json.loads((out / "catalog.json").read_bytes())["format_version"] == 1
    return out


# Module-scoped on purpose: a session-scoped parameter would make pytest regroup the whole
# suite by format, splitting modules and setting their module fixtures (S3, servers) up twice.
@pytest.fixture(scope="module", params=CATALOG_FORMATS, ids=lambda v: f"format{v}")
def catalog_format(request: pytest.FixtureRequest) -> int:
    """Each catalog format in turn: the tests that use it run once per format."""
    value: int = request.param
    return value


@pytest.fixture(scope="module")
def format_catalog_dir(catalog_format: int, request: pytest.FixtureRequest) -> Path:
    """The shared phantom catalog in ``catalog_format``. Do not modify it."""
    name = "catalog_dir" if catalog_format == 2 else "catalog_v1_dir"
    path: Path = request.getfixturevalue(name)
    assert json.loads((path / "catalog.json").read_bytes())["format_version"] == catalog_format
    return path


@pytest.fixture
def catalog_copy(catalog_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shared catalog, for tests that change it."""
    target = tmp_path / "catalog"
    shutil.copytree(catalog_dir, target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@dataclass
class LiveServer:
    """A real uvicorn on 127.0.0.1 serving one catalog folder; counts requests by path prefix."""

    url: str
    catalog: Path
    server: Any
    thread: threading.Thread
    requests: Counter[str] = field(default_factory=Counter)

    def count(self, prefix: str) -> int:
        return sum(n for path, n in self.requests.items() if path.startswith(prefix))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(catalog: Path, **settings: Any) -> LiveServer:
    """Start ``create_app`` under uvicorn in a thread and wait until /v1/health answers."""
    import uvicorn

    from mamamia_server import ServerSettings, create_app

    counts: Counter[str] = Counter()
    app = create_app(ServerSettings(catalog=catalog, catalog_poll_s=0.2, **settings))

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            counts[scope["path"]] += 1
        await app(scope, receive, send)

    port = free_port()
    config = uvicorn.Config(counting, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"the server on {url} did not start")
    return LiveServer(url=url, catalog=catalog, server=server, thread=thread, requests=counts)


@pytest.fixture(scope="session")
def live_server_v2(catalog_dir: Path) -> Iterator[LiveServer]:
    """A real uvicorn over the shared (format-2) catalog, for the whole session."""
    server = start_server(catalog_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server(live_server_v2: LiveServer) -> LiveServer:
    """The live server over the shared catalog (``live_server_v2``)."""
    return live_server_v2


@pytest.fixture(scope="session")
def live_server_v1(catalog_v1_dir: Path) -> Iterator[LiveServer]:
    """A real uvicorn over the format-1 catalog, for the whole session."""
    server = start_server(catalog_v1_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def format_live_server(catalog_format: int, request: pytest.FixtureRequest) -> LiveServer:
    """A live server over ``format_catalog_dir``."""
    server: LiveServer = request.getfixturevalue(
        "live_server_v2" if catalog_format == 2 else "live_server_v1"
    )
    return server


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


@pytest.fixture(scope="module")
def format_s3_catalog(s3: str, catalog_format: int, request: pytest.FixtureRequest) -> str:
    """The shared phantom on S3 in ``catalog_format`` (read-only by convention)."""
    if catalog_format == 2:
        default: str = request.getfixturevalue("s3_catalog")
        return default
    from mamamia_ingest import ingest

    phantom_raw_dir: Path = request.getfixturevalue("phantom_raw_dir")
    url = f"s3://{BUCKET}/catalog-v1"
    report = ingest(phantom_raw_dir, url, jobs=2, progress=False, format_version=1)
    assert report.published, report.summary()
    return url
