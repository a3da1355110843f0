"""The preview storm, against a real ``uvicorn`` process on 127.0.0.1: 40 concurrent
``slice.png?size=2048&phase=sub&overlay=expert`` requests keep the server's peak RSS under
PREVIEW_STORM_RSS_MB over its idle size, ``/v1/health`` keeps answering (median under 100 ms),
and every refused preview is a problem+json 503 with ``Retry-After``."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import PHANTOM_IDS, free_port

#: The documented bound (docs/server.md) on what a preview storm may add to the server's RSS.
PREVIEW_STORM_RSS_MB = 400
STORM = 40
SLICE = "/v1/cases/{case}/slice.png?size=2048&phase=sub&overlay=expert&axis={axis}"
# Probes /v1/health every 20 ms until its stdin closes, then prints each latency (ms).
_PROBE = """
import http.client, select, sys, time
host, port = sys.argv[1].rsplit("/", 1)[-1].split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=30)
times = []
while not select.select([sys.stdin], [], [], 0.02)[0]:
    t0 = time.perf_counter()
    conn.request("GET", "/v1/health")
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    times.append((time.perf_counter() - t0) * 1000)
print(" ".join(f"{t:.3f}" for t in times))
"""


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture(scope="module")
def server_process(catalog_dir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "MAMAMIA_SERVER_CATALOG": str(catalog_dir),
        "MAMAMIA_SERVER_CATALOG_POLL_S": "0.2",
    }
    proc = subprocess.Popen(
        [
            *(
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "mamamia_server._app:create_app_from_env",
            ),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_preview_storm_memory_and_health(server_process: tuple[str, int]) -> None:
    url, pid = server_process
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = list(PHANTOM_IDS)
        # Warm: every route and the decode pools exist before the idle size is taken.
        for case in ids:
            warm = client.get(SLICE.format(case=case, axis="axial").replace("2048", "256"))
            assert warm.status_code == 200, warm.text
    idle_kb = _rss_kb(pid, "VmRSS")

    # The storm shares one client (40 connections); the health probe runs in its own process,
    # so what it measures is the server, not this process's threads.
    prober = subprocess.Popen(
        [sys.executable, "-c", _PROBE, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    results: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=STORM, max_keepalive_connections=STORM)
    with httpx.Client(base_url=url, timeout=120, limits=limits) as shared:

        def storm(i: int) -> None:
            axis = ("axial", "coronal", "sagittal")[i % 3]
            results.append(shared.get(SLICE.format(case=ids[i % len(ids)], axis=axis)))

        time.sleep(0.5)  # the probe's first answers come from an idle server
        threads = [threading.Thread(target=storm, args=(i,)) for i in range(STORM)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    out, _ = prober.communicate(b"", timeout=60)
    health_ms = [float(v) for v in out.split()]
    assert health_ms, "the health probe measured nothing"

    peak_mb = (_rss_kb(pid, "VmHWM") - idle_kb) / 1024
    after_mb = (_rss_kb(pid, "VmRSS") - idle_kb) / 1024
    p95 = statistics.quantiles(health_ms, n=20)[-1]
    ok = [r for r in results if r.status_code == 200]
    busy = [r for r in results if r.status_code != 200]
    print(
        f"\npreview storm: {len(ok)} served, {len(busy)} refused busy; peak RSS +{peak_mb:.0f} MB "
        f"over idle, +{after_mb:.0f} MB held after; health median "
        f"{statistics.median(health_ms):.1f} ms, p95 {p95:.1f} ms, max {max(health_ms):.1f} ms "
        f"over {len(health_ms)} probes"
    )
    assert len(results) == STORM
    assert ok, "no preview was served at all"
    assert all(r.headers["content-type"] == "image/png" for r in ok)
    for r in busy:
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["type"].endswith(":preview-busy")
    assert peak_mb < PREVIEW_STORM_RSS_MB
    assert statistics.median(health_ms) < 100
