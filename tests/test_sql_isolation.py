"""The engine's optional process isolation: queries in workers under RLIMIT_AS, killed past the deadline.

The guard keeps giant-string functions out of every accepted query; these tests call the
worker pool *directly* (bypassing the guard) to show that the second wall holds as well.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _sql_test_data import N_CASES, write_tables
from mamamia import QueryRejected, QueryTimeout, QueryTooLarge
from mamamia.sqlguard import QueryLimits
from mamamia_server._query_engine import QueryEngine, memory_bytes

TIME_LIMIT_MS = 1_500
GRACE_S = 1.0


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tables(tmp_path_factory.mktemp("isolation"))


@pytest.fixture(scope="module")
def engines(paths: dict[str, Path]) -> Iterator[tuple[QueryEngine, QueryEngine]]:
    limits = QueryLimits(time_limit_ms=TIME_LIMIT_MS, memory_limit="512MB", max_rows=100)
    isolated = QueryEngine(paths, limits, isolation="process", workers=2, grace_s=GRACE_S)
    local = QueryEngine(paths, limits)
    yield isolated, local
    isolated.close()
    local.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_same_answers_as_in_process(engines: tuple[QueryEngine, QueryEngine]) -> None:
    isolated, local = engines
    sql = "SELECT patient_id, age, tags, scan_date FROM cases WHERE age > $a"
    a = isolated.execute_page(sql, {"a": 40}, limit=9, offset=3)
    b = local.execute_page(sql, {"a": 40}, limit=9, offset=3)
    assert a.table.equals(b.table)
    assert (a.total, a.truncated, a.columns, a.order_by) == (
        b.total,
        b.truncated,
        b.columns,
        b.order_by,
    )
    assert isolated.count("SELECT * FROM cases") == N_CASES
    assert isolated.execute("SELECT * FROM cases", limit=5).truncated


def test_guard_still_applies(engines: tuple[QueryEngine, QueryEngine]) -> None:
    isolated, _ = engines
    with pytest.raises(QueryRejected):
        isolated.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(QueryRejected):
        isolated.execute("SELECT repeat('x', 4000000000)")


def test_worker_connection_is_locked(engines: tuple[QueryEngine, QueryEngine]) -> None:
    isolated, _ = engines
    assert isolated._pool is not None
    with pytest.raises(QueryRejected, match="not allowed"):
        isolated._pool.fetch("SELECT * FROM read_text('/etc/passwd')", {}, 5)
    with pytest.raises(QueryRejected, match="not allowed"):
        isolated._pool.fetch("COPY (SELECT 1) TO '/tmp/mamamia-pwned.csv'", {}, 5)
    assert not Path("/tmp/mamamia-pwned.csv").exists()


def test_deadline_inside_worker(engines: tuple[QueryEngine, QueryEngine]) -> None:
    isolated, _ = engines
    assert isolated._pool is not None
    before = set(isolated._pool.pids())
    with pytest.raises(QueryTimeout, match="time limit"):
        isolated.execute(
            "SELECT count(*) FROM cases a, cases b, cases c, cases d, cases e, cases f"
        )
    assert set(isolated._pool.pids()) == before  # DuckDB stopped it; the worker lives on


def test_giant_string_hits_the_address_space_limit(
    engines: tuple[QueryEngine, QueryEngine],
) -> None:
    isolated, _ = engines
    assert isolated._pool is not None
    before = set(isolated._pool.pids())
    # 4 GB in one scalar call: DuckDB's memory_limit does not cover it, RLIMIT_AS does
    with pytest.raises(QueryTooLarge, match="memory"):
        isolated._pool.fetch("SELECT length(repeat('x', 4000000000)) AS n", {}, 5)
    assert set(isolated._pool.pids()) == before
    assert isolated.count("SELECT * FROM cases") == N_CASES


def test_runaway_scalar_is_killed_and_replaced(paths: dict[str, Path]) -> None:
    # A roomy address space, so that only the parent's kill can stop the call in time; the
    # call grows slowly (well under 1 GB resident before the kill).
    limits = QueryLimits(time_limit_ms=TIME_LIMIT_MS, memory_limit="512MB")
    with QueryEngine(
        paths, limits, isolation="process", workers=1, grace_s=GRACE_S, address_space=8 * 2**30
    ) as isolated:
        assert isolated._pool is not None
        before = set(isolated._pool.pids())
        start = time.monotonic()
        # one string_split call over a 600 MB string ignores max_execution_time (it runs for
        # tens of seconds): the parent kills the worker at the deadline plus the grace period
        with pytest.raises(QueryTimeout, match="worker was stopped"):
            isolated._pool.fetch(
                "SELECT len(string_split(repeat('x,', 300000000), ',')) AS n", {}, 5
            )
        assert time.monotonic() - start < TIME_LIMIT_MS / 1000 + GRACE_S + 5
        after = set(isolated._pool.pids())
        assert len(after) == 1
        assert after != before
        assert all(not _alive(pid) for pid in before)
        # the replacement answers (it may still be starting: the call waits for it)
        for _ in range(3):
            assert isolated.count("SELECT * FROM cases WHERE dataset = 'DUKE'") == N_CASES // 4


def test_close_stops_workers(paths: dict[str, Path]) -> None:
    eng = QueryEngine(
        paths, QueryLimits(time_limit_ms=TIME_LIMIT_MS), isolation="process", workers=1
    )
    assert eng._pool is not None
    pids = eng._pool.pids()
    assert eng.count("SELECT * FROM volumes") > 0
    eng.close()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
    assert not Path(eng.database_path).exists()


def test_bad_isolation_and_memory_sizes(paths: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="isolation"):
        QueryEngine(paths, isolation="fork")  # type: ignore[arg-type]
    assert memory_bytes("1GB") == 10**9
    assert memory_bytes("512MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="memory size"):
        memory_bytes("lots")


def test_hostile_suite_in_workers(
    engines: tuple[QueryEngine, QueryEngine], paths: dict[str, Path]
) -> None:
    from test_sql_security import HOSTILE

    isolated, _ = engines
    assert isolated._pool is not None
    workers = set(isolated._pool.pids())
    for name, sql, allowed in HOSTILE:
        query = sql.format(
            out=paths["cases"].parent,
            parquet=paths["cases"],
            db=isolated.database_path,
            dbdir=os.path.dirname(isolated.database_path),
        )
        with pytest.raises(allowed) as info:
            isolated.execute(query, limit=10)
        assert "root:" not in str(info.value), name
        assert os.path.dirname(isolated.database_path) not in str(info.value), name
    assert set(isolated._pool.pids()) == workers  # DuckDB's own deadline stopped every bomb
    assert isolated.count("SELECT * FROM cases") == N_CASES
