"""Hostile queries over HTTP against a real server on the phantom catalog.

Each is rejected (4xx) or stopped (504) within the time limit, no answer leaks a file's content
or a server path, nothing is written, and the server answers a normal query afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer

LEAKS = ("root:", "/etc/", "/tmp/", "/home/", "/root", "mamamia-query-", ".duckdb", "BEGIN PGP")
OUTSIDE = Path("/tmp/mamamia-pwned-by-query.csv")

HOSTILE_SQL = [
    "SELECT * FROM read_csv('/etc/passwd', sep=':')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM parquet_metadata('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_csv('file:///etc/passwd')",
    "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    f"COPY (SELECT 42) TO '{OUTSIDE}'",
    "COPY cases FROM '/etc/passwd'",
    "EXPORT DATABASE '/tmp/mamamia-export'",
    "ATTACH '/tmp/mamamia-new.db' AS x",
    "ATTACH ':memory:' AS m",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET memory_limit = '100GB'",
    "PRAGMA threads = 64",
    "RESET lock_configuration",
    "SELECT 1; SELECT * FROM read_csv('/etc/passwd')",
    "SELECT 1 /* ; */ ; DROP TABLE cases",
    "CREATE TABLE evil AS SELECT 1",
    "DROP TABLE cases",
    "CREATE OR REPLACE VIEW cases AS SELECT 1 AS patient_id",
    "CREATE MACRO evil(x) AS x",
    "SELECT * FROM secret_df",
    "SELECT name, value FROM duckdb_settings()",
    "SELECT * FROM duckdb_databases()",
    "SELECT current_setting('temp_directory')",
    "SELECT getvariable('x')",
    "SELECT list_transform([1, 2], x -> x + 1)",
    "SELECT length(repeat('x', 4000000000))",
    "SELECT unnest(string_split(repeat('a,', 300000000), ','))",
    "SELECT len(list(patient_id)) FROM cases, range(100000000)",
    "SELECT string_agg(patient_id, ',') FROM cases",
    "SELECT * FROM range(2000000000)",
    "SELECT * FROM generate_series(1, 2000000000)",
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r",
    "SELECT " + "+".join(["1"] * 20000),
    "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "SELECT * FROM cases WHERE age IN (" + ",".join(str(i) for i in range(200_000)) + ")",
    "SELECT 'x' || " + " || ".join(["patient_id"] * 200) + " FROM cases",
]
STOPPED_BY_DEADLINE = [
    "SELECT sum(a.mean * b.mean * c.mean * d.mean * e.mean * f.mean * g.mean * h.mean) "
    "FROM volumes a, volumes b, volumes c, volumes d, volumes e, volumes f, volumes g, volumes h",
    "SELECT count(DISTINCT a.patient_id || b.patient_id || c.patient_id || d.patient_id) "
    "FROM cases a, volumes b, volumes c, volumes d, volumes e, volumes f",
]
HOSTILE_WHERE = [
    "1) UNION SELECT * FROM read_csv('/etc/passwd') --",
    "TRUE; DROP TABLE cases",
    "patient_id IN (SELECT value FROM duckdb_settings())",
    "age > (SELECT count(*) FROM range(1000000000))",
]


def _answer_ok(response: httpx.Response, allowed: tuple[int, ...]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    for marker in LEAKS:
        assert marker not in response.text, (marker, response.text[:300])


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live_server.url, timeout=60)


def _normal_query_still_answers(client: httpx.Client) -> None:
    r = client.post("/v1/query", json={"sql": "SELECT count(*) AS n FROM cases"})
    assert r.status_code == 200
    assert r.json()["rows"] == [[6]]


@pytest.mark.parametrize("sql", HOSTILE_SQL, ids=[s[:40] for s in HOSTILE_SQL])
def test_hostile_sql_is_rejected(client: httpx.Client, sql: str) -> None:
    started = time.monotonic()
    response = client.post("/v1/query", json={"sql": sql})
    assert time.monotonic() - started < 5 + 10  # the time limit plus a generous margin
    _answer_ok(response, (400, 413, 422, 504))
    assert not OUTSIDE.exists()
    _normal_query_still_answers(client)


@pytest.mark.parametrize("sql", STOPPED_BY_DEADLINE)
def test_expensive_queries_are_stopped_at_the_deadline(client: httpx.Client, sql: str) -> None:
    started = time.monotonic()
    response = client.post("/v1/query", json={"sql": sql})
    assert time.monotonic() - started < 5 + 10
    _answer_ok(response, (400, 504))
    _normal_query_still_answers(client)


@pytest.mark.parametrize("where", HOSTILE_WHERE)
def test_hostile_where_is_rejected(client: httpx.Client, where: str) -> None:
    _answer_ok(client.post("/v1/query", json={"where": where}), (400, 413, 422, 504))
    _answer_ok(client.get("/v1/cohort", params={"where": where}), (400, 413, 422, 504))
    _normal_query_still_answers(client)


def test_parameters_cannot_smuggle_sql(client: httpx.Client) -> None:
    r = client.post(
        "/v1/query",
        json={"where": "patient_id = $id", "params": {"id": "x'; DROP TABLE cases; --"}},
    )
    assert r.status_code == 200
    assert r.json()["rows"] == []
    _answer_ok(
        client.post("/v1/query", json={"where": "TRUE", "params": {"x": {"nested": "obj"}}}),
        (400, 422),
    )
    _normal_query_still_answers(client)


def test_tables_are_unchanged_after_the_suite(client: httpx.Client, catalog_dir: Path) -> None:
    import mamamia

    with mamamia.open(catalog_dir) as local:
        expected = local.sql("SELECT count(*) AS n FROM volumes").column("n").to_pylist()
    r = client.post("/v1/query", json={"sql": "SELECT count(*) AS n FROM volumes"})
    assert [row[0] for row in r.json()["rows"]] == expected
