"""Server behaviour around the data: auth, CORS, live re-ingest, the CLI entry, settings."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from mamamia_server import ServerSettings, create_app
from mamamia_server._cli_serve import RedactTokens
from mamamia_server._settings import is_loopback
from mamamia_server._volume_reads import orient, plane_layout
from server_catalog import LPS, RAS, LiveServer, rewrite_cases, session_catalog

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_catalog(tmp_path_factory)[0]


@pytest.fixture
def catalog(pristine: Path, tmp_path: Path) -> Path:
    """A private copy the test may rewrite."""
    target = tmp_path / "catalog"
    shutil.copytree(pristine, target)
    return target


# ------------------------------------------------------------------------------ auth


@pytest.fixture(scope="module")
def auth_server(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    token_file = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    token_file.write_text("# one per line\nfile-token-123\n")
    settings = ServerSettings(catalog=pristine, token_file=token_file, tokens=["env-token-456"])
    with LiveServer(create_app(settings)) as live:
        yield live.url


@pytest.mark.parametrize(
    "path",
    [
        "/v1/catalog",
        "/v1/tables",
        "/v1/tables/cases/schema",
        "/v1/cohort",
        "/v1/facets?columns=dataset",
        "/v1/cases/DUKE_001",
        "/v1/cases/DUKE_001/volumes",
        "/v1/cases/DUKE_001/crop?z=0:1&y=0:2&x=0:2",
        "/v1/cases/DUKE_001/slice.png?size=32",
        "/v1/zarr/DUKE_001",
    ],
)
def test_every_data_route_needs_a_token(auth_server: str, path: str) -> None:
    r = httpx.get(auth_server + path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 401
    wrong = httpx.get(auth_server + path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "invalid_token" in wrong.headers["www-authenticate"]
    for token in ("file-token-123", "env-token-456"):
        ok = httpx.get(auth_server + path, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code in (200, 404), ok.text  # /v1/zarr/DUKE_001 is a folder: 404
        assert ok.status_code == 200 or path.startswith("/v1/zarr")


def test_query_needs_a_token_and_health_does_not(auth_server: str) -> None:
    body = {"sql": "SELECT patient_id FROM cases"}
    assert httpx.post(auth_server + "/v1/query", json=body).status_code == 401
    ok = httpx.post(
        auth_server + "/v1/query", json=body, headers={"Authorization": "Bearer env-token-456"}
    )
    assert ok.status_code == 200
    assert httpx.get(auth_server + "/v1/health").status_code == 200
    # a token in the URL is refused, even a valid one
    r = httpx.get(auth_server + "/v1/cases/DUKE_001?access_token=env-token-456")
    assert r.status_code == 400
    assert "env-token-456" not in r.text


def test_open_server_needs_no_token(pristine: Path) -> None:
    with LiveServer(create_app(ServerSettings(catalog=pristine))) as live:
        assert httpx.get(live.url + "/v1/cases/DUKE_001").status_code == 200
        r = httpx.get(live.url + "/v1/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers  # CORS off by default


def test_cors_when_configured(pristine: Path) -> None:
    settings = ServerSettings(catalog=pristine, cors_origins=["https://viewer.example"])
    with LiveServer(create_app(settings)) as live:
        pre = httpx.options(
            live.url + "/v1/query",
            headers={
                "Origin": "https://viewer.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://viewer.example"
        r = httpx.get(live.url + "/v1/cases/DUKE_001", headers={"Origin": "https://viewer.example"})
        assert "x-catalog-version" in r.headers["access-control-expose-headers"].lower()
        other = httpx.get(live.url + "/v1/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_access_log_redacts_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/v1/cases/X?token=s3cret&x=1", "1.1", 400), None,
    )  # fmt: skip
    RedactTokens().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "x=1" in record.getMessage()


# ------------------------------------------------------------------------------ versions


def _wait_for_version(url: str, version: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(url + "/v1/health").headers["x-catalog-version"] == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server never served {version}")


def test_reingest_is_picked_up_live(catalog: Path) -> None:
    settings = ServerSettings(catalog=catalog, catalog_poll_s=0.05)
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url) as client:
        first = client.get("/v1/cases/DUKE_001")
        v1 = first.headers["x-catalog-version"]
        assert first.json()["fields"]["age"] == 45
        page = client.post(
            "/v1/query", json={"sql": "SELECT patient_id, age FROM cases", "limit": 1}
        )
        cursor = page.json()["next_cursor"]
        link = client.get("/v1/cohort", params={"where": "age > 40"}).json()["link"]

        v2 = rewrite_cases(catalog, {"DUKE_001": {"age": 46}})
        assert v2 != v1
        _wait_for_version(live.url, v2)
        second = client.get("/v1/cases/DUKE_001")
        assert second.headers["x-catalog-version"] == v2
        assert second.json()["fields"]["age"] == 46
        # answers pinned to the old version are refused, not silently different
        stale = client.post("/v1/query", json={"cursor": cursor})
        assert stale.status_code == 409
        assert stale.json()["catalog_version"] == v2
        assert client.get(link).status_code == 409
        assert client.get("/v1/cases/DUKE_001", params={"version": v1}).status_code == 409
        assert client.get("/v1/cases/DUKE_001", params={"version": v2}).status_code == 200


def test_answers_never_mix_versions_during_swaps(catalog: Path) -> None:
    settings = ServerSettings(catalog=catalog, catalog_poll_s=0.0)
    ages = {json.loads((catalog / "catalog.json").read_text())["catalog_version"]: 45}
    seen: list[tuple[str, str, int]] = []
    stop = threading.Event()
    errors: list[str] = []

    with LiveServer(create_app(settings)) as live:

        def hammer() -> None:
            with httpx.Client(base_url=live.url) as client:
                while not stop.is_set():
                    r = client.get("/v1/cases/DUKE_001")
                    if r.status_code != 200:
                        errors.append(r.text)
                        continue
                    body = r.json()
                    seen.append(
                        (
                            r.headers["x-catalog-version"],
                            body["catalog_version"],
                            body["fields"]["age"],
                        )
                    )

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for age in (50, 51, 52, 53):
                ages[rewrite_cases(catalog, {"DUKE_001": {"age": age}})] = age
                time.sleep(0.15)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert not errors
    assert len({v for v, _, _ in seen}) >= 2
    for header, body_version, age in seen:
        assert header == body_version
        assert ages[header] == age


def test_broken_new_catalog_keeps_the_old_one(catalog: Path) -> None:
    settings = ServerSettings(catalog=catalog, catalog_poll_s=0.0)
    with LiveServer(create_app(settings)) as live:
        v1 = httpx.get(live.url + "/v1/health").json()["catalog_version"]
        manifest = json.loads((catalog / "catalog.json").read_text())
        manifest["catalog_version"] = "broken0000000000"
        manifest["tables"]["cases"]["path"] = "tables/missing.parquet"
        (catalog / "catalog.json").write_text(json.dumps(manifest))
        health = httpx.get(live.url + "/v1/health").json()
        assert health["catalog_version"] == v1
        assert health["reload_error"]
        assert httpx.get(live.url + "/v1/cases/DUKE_001").status_code == 200


# ------------------------------------------------------------------------------ CLI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _docker_command() -> list[str]:
    """ENTRYPOINT + CMD of the Dockerfile, exactly as the image runs them."""
    entry: list[str] = []
    cmd: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            entry = json.loads(line.removeprefix("ENTRYPOINT "))
        elif line.startswith("CMD "):
            cmd = json.loads(line.removeprefix("CMD "))
    assert entry and entry[:2] == ["mamamia", "serve"]
    return entry + cmd


def test_docker_entry_command_serves_health(pristine: Path) -> None:
    command = _docker_command()
    script = Path(sys.executable).with_name("mamamia")
    port = _free_port()
    args = [str(script), *command[1:]]
    args = [str(pristine) if a == "/data" else a for a in args]
    args = [str(port) if a == "8000" else a for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMAMIA_SERVER_")}
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, process.stderr.read() if process.stderr else ""
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    # 0.0.0.0 without tokens: the licence warning is printed
    assert "without authentication" in err and "CC BY-NC" in err


def test_serve_without_catalog_is_a_clear_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mamamia_server._cli_serve import serve_command

    r = CliRunner().invoke(serve_command, [str(tmp_path), "--port", str(_free_port())])
    assert r.exit_code != 0
    assert "no catalog.json" in r.output and "mamamia ingest" in r.output


# ------------------------------------------------------------------------------ settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAMAMIA_SERVER_CATALOG", str(tmp_path))
    monkeypatch.setenv("MAMAMIA_SERVER_TOKENS", "a1, b2")
    monkeypatch.setenv("MAMAMIA_SERVER_CORS_ORIGINS", "https://x.example")
    monkeypatch.setenv("MAMAMIA_SERVER_MAX_ROW_LIMIT", "5000")
    monkeypatch.setenv("MAMAMIA_SERVER_CROP_VOXEL_CAP", "1000")
    settings = ServerSettings()
    assert settings.catalog == tmp_path
    assert settings.load_tokens() == {"a1", "b2"}
    assert settings.cors_origins == ["https://x.example"]
    assert settings.max_row_limit == 5000 and settings.crop_voxel_cap == 1000
    with pytest.raises(ValidationError, match="default_row_limit"):
        ServerSettings(default_row_limit=10, max_row_limit=5)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no token"):
        ServerSettings(token_file=empty, tokens=[]).load_tokens()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_create_app_needs_a_catalog(tmp_path: Path) -> None:
    import mamamia

    with pytest.raises(mamamia.CatalogNotFound, match=r"no catalog\.json"):
        create_app(ServerSettings(catalog=tmp_path))


# ------------------------------------------------------------------------------ planes


def test_axial_is_axial_for_lps_and_ras() -> None:
    lps = plane_layout(LPS, "axial")
    assert (lps.normal_axis, lps.row_axis, lps.col_axis) == (0, 1, 2)
    assert not lps.flip_rows and not lps.flip_cols
    ras = plane_layout(RAS, "axial")
    assert (ras.normal_axis, ras.row_axis, ras.col_axis) == (0, 1, 2)
    assert ras.flip_rows and ras.flip_cols
    # the same anatomy stored LPS and RAS displays identically
    anatomy = np.arange(12).reshape(3, 4)  # rows: anterior->posterior, cols: right->left
    assert np.array_equal(orient(anatomy, lps), orient(anatomy[::-1, ::-1], ras))
    # a volume acquired sagittally (array z along left-right): axial cuts array axis 1
    sagittal_acq = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0)
    axial = plane_layout(sagittal_acq, "axial")
    assert axial.normal_axis == 2  # index i (array x) points along S/I
    coronal = plane_layout(LPS, "coronal")
    assert coronal.normal_axis == 1 and coronal.row_axis == 0 and coronal.flip_rows
    sagittal = plane_layout(LPS, "sagittal")
    assert sagittal.normal_axis == 2 and sagittal.col_axis == 1
