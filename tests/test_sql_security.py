"""Hostile queries against the safe-SQL engine.

Each query must be rejected (QueryRejected / QueryTooLarge) or stopped (QueryTimeout) and
return by the engine's deadline plus a margin; no message may carry a file's content or a
server path; no file may appear; the tables must be unchanged; a normal query must still
answer. A second suite runs the worst of them straight on a cursor of the engine's locked
connection, *without* the guard, to show that the DuckDB settings hold on their own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from _sql_test_data import N_CASES, cases_table, volumes_table, write_tables
from mamamia import QueryError, QueryRejected, QueryTimeout, QueryTooLarge
from mamamia.sqlguard import QueryLimits, where_to_sql
from mamamia_server._query_engine import QueryEngine

# A DataFrame in this module's globals: with Python replacement scans on, DuckDB would read it
# for ``FROM secret_df``. The engine turns them off; the tests below prove it.
secret_df = pd.DataFrame({"secret": ["SECRET-7f3a9c"]})

TIME_LIMIT_MS = 1_500
#: a bound on how long a stopped query may take to come back (deadline + scheduling slack);
#: a correctness property of the deadline, not a speed measurement
RETURN_BOUND_S = TIME_LIMIT_MS / 1000 + 5

REJECT = (QueryRejected, QueryTooLarge)
STOP = (QueryTimeout, QueryTooLarge, QueryRejected)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sqlsec")
    paths = write_tables(root / "data")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return {"root": root, "cases": paths["cases"], "volumes": paths["volumes"], "outside": outside}


@pytest.fixture(scope="session")
def engine(sandbox: dict[str, Path]) -> Iterator[QueryEngine]:
    limits = QueryLimits(time_limit_ms=TIME_LIMIT_MS, memory_limit="512MB", threads=2, max_rows=500)
    eng = QueryEngine({"cases": sandbox["cases"], "volumes": sandbox["volumes"]}, limits)
    yield eng
    eng.close()


def _fmt(sql: str, sandbox: dict[str, Path], engine: QueryEngine) -> str:
    return sql.format(
        out=sandbox["outside"],
        parquet=sandbox["cases"],
        db=engine.database_path,
        dbdir=os.path.dirname(engine.database_path),
    )


def _files(folder: Path | str) -> set[str]:
    return {str(p) for p in Path(folder).rglob("*")}


BIG_IN = "SELECT * FROM cases WHERE age IN (" + ",".join(str(i) for i in range(200_000)) + ")"

HOSTILE: list[tuple[str, str, tuple[type[QueryError], ...]]] = [
    # file reads, with and without table functions
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd', sep=':')", REJECT),
    ("read_csv_upper_quoted", "SELECT * FROM \"READ_CSV\"('/etc/passwd')", REJECT),
    ("read_text", "SELECT content FROM read_text('/etc/passwd')", REJECT),
    ("read_blob_db", "SELECT content FROM read_blob('{db}')", REJECT),
    ("glob", "SELECT * FROM glob('/etc/*')", REJECT),
    ("parquet_metadata", "SELECT * FROM parquet_metadata('{parquet}')", REJECT),
    ("read_parquet_source", "SELECT * FROM read_parquet('{parquet}')", REJECT),
    ("bare_path", "FROM '/etc/passwd'", REJECT),
    ("bare_file_url", "SELECT * FROM 'file:///etc/passwd'", REJECT),
    ("csv_in_outside", "SELECT * FROM '{out}/secret.csv'", REJECT),
    ("lateral_read", "SELECT * FROM cases, LATERAL read_csv('/etc/passwd')", REJECT),
    ("read_in_cte", "WITH a AS (FROM read_text('/etc/passwd')) SELECT * FROM a", REJECT),
    (
        "read_in_subquery",
        "SELECT * FROM cases WHERE patient_id IN (SELECT content FROM read_text('/etc/passwd'))",
        REJECT,
    ),
    ("sqlite_scan", "SELECT * FROM sqlite_scan('{out}/x.sqlite', 't')", REJECT),
    ("query_fn", "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')", REJECT),
    ("query_table_fn", "SELECT * FROM query_table('cases')", REJECT),
    # writes and other databases
    ("copy_to", "COPY cases TO '{out}/pwned.csv'", REJECT),
    ("copy_query_to_dbdir", "COPY (SELECT 42) TO '{dbdir}/pwned.parquet' (FORMAT parquet)", REJECT),
    ("copy_to_wal", "COPY (SELECT 42) TO '{db}.wal'", REJECT),
    ("copy_from", "COPY cases FROM '/etc/passwd'", REJECT),
    ("export_database", "EXPORT DATABASE '{out}/export'", REJECT),
    ("attach_file", "ATTACH '{out}/new.db' AS x", REJECT),
    ("attach_memory", "ATTACH ':memory:' AS m", REJECT),
    ("attach_sqlite", "ATTACH '{out}/x.sqlite' AS s (TYPE sqlite)", REJECT),
    ("install", "INSTALL httpfs", REJECT),
    ("load", "LOAD httpfs", REJECT),
    ("load_file", "LOAD '{out}/evil.duckdb_extension'", REJECT),
    # settings
    ("set_external_access", "SET enable_external_access = true", REJECT),
    ("set_lock", "SET lock_configuration = false", REJECT),
    ("reset", "RESET memory_limit", REJECT),
    ("set_memory", "SET memory_limit = '100GB'", REJECT),
    ("set_temp_dir", "SET temp_directory = '{out}'", REJECT),
    ("pragma", "PRAGMA memory_limit = '100GB'", REJECT),
    ("pragma_database_list", "PRAGMA database_list", REJECT),
    ("set_variable", "SET VARIABLE x = 1", REJECT),
    # several statements, incl. a ; hidden in or after a comment
    ("multi_set", "SELECT 1; SET enable_external_access = true", REJECT),
    ("multi_drop", "SELECT 1; DROP TABLE cases", REJECT),
    ("comment_semicolon", "SELECT 1 /* ; */ ; DROP TABLE cases", REJECT),
    ("line_comment_semicolon", "SELECT 1 -- ;\n; CREATE TABLE evil AS SELECT 1", REJECT),
    ("begin", "BEGIN TRANSACTION", REJECT),
    ("checkpoint", "CHECKPOINT", REJECT),
    # DDL
    ("create_table", "CREATE TABLE evil AS SELECT 1", REJECT),
    ("create_temp", "CREATE TEMP TABLE t AS SELECT * FROM cases", REJECT),
    ("drop", "DROP TABLE cases", REJECT),
    ("replace_view", "CREATE OR REPLACE VIEW cases AS SELECT 1 AS x", REJECT),
    ("macro", "CREATE MACRO m(x) AS x", REJECT),
    ("insert", "INSERT INTO cases (patient_id) VALUES ('X')", REJECT),
    ("secret", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", REJECT),
    # replacement scans and leaks of settings / paths
    ("replacement_scan", "SELECT * FROM secret_df", REJECT),
    ("duckdb_settings", "SELECT value FROM duckdb_settings() WHERE name = 'allowed_paths'", REJECT),
    ("duckdb_settings_view", "SELECT * FROM duckdb_settings", REJECT),
    ("duckdb_databases", "SELECT path FROM duckdb_databases()", REJECT),
    ("current_setting", "SELECT current_setting('temp_directory')", REJECT),
    ("pg_catalog", "SELECT * FROM pg_catalog.pg_class", REJECT),
    ("information_schema", "SELECT * FROM information_schema.tables", REJECT),
    ("catalog_qualified", "SELECT * FROM mamamia_catalog.main.cases", REJECT),
    ("system_catalog", "SELECT * FROM system.main.duckdb_settings", REJECT),
    ("describe", "DESCRIBE cases", REJECT),
    ("summarize", "SUMMARIZE cases", REJECT),
    ("show", "SHOW TABLES", REJECT),
    ("explain", "EXPLAIN ANALYZE SELECT * FROM cases", REJECT),
    ("call", "CALL duckdb_settings()", REJECT),
    ("pivot", "PIVOT cases ON dataset USING count(*)", REJECT),
    (
        "cte_shadow_scope",
        "SELECT * FROM (WITH duckdb_settings AS (SELECT 1) SELECT 1) a, duckdb_settings",
        REJECT,
    ),
    # resource bombs
    (
        "recursive_cte",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
        REJECT,
    ),
    (
        "cross_join",
        "SELECT count(*) FROM cases a, cases b, cases c, cases d, cases e, cases f",
        STOP,
    ),
    (
        "distinct_bomb",
        "SELECT count(*) FROM (SELECT DISTINCT a.patient_id, b.patient_id, c.patient_id, d.patient_id FROM cases a, cases b, cases c, cases d)",
        STOP,
    ),
    (
        "sort_bomb",
        "SELECT a.patient_id FROM cases a, cases b, cases c, cases d, cases e ORDER BY a.age * b.age - c.age + d.age * e.age LIMIT 1",
        STOP,
    ),
    ("expression_20000", "SELECT " + "+".join(["1"] * 20_000), REJECT),
    ("parens_5000", "SELECT " + "(" * 5_000 + "1" + ")" * 5_000, REJECT),
    ("nested_functions_900", "SELECT " + "abs(" * 900 + "1" + ")" * 900, REJECT),
    ("nested_subqueries_200", "SELECT " + "(SELECT " * 200 + "1" + ")" * 200, REJECT),
    ("nested_case_500", "SELECT " + "CASE WHEN true THEN " * 500 + "1" + " END" * 500, REJECT),
    ("nested_from_300", "SELECT * FROM " + "(SELECT * FROM " * 300 + "cases" + ") t" * 300, REJECT),
    ("and_chain_1500", "SELECT * FROM cases WHERE " + " AND ".join(["age > 1"] * 1500), REJECT),
    ("in_list_200k", BIG_IN, REJECT),
    ("in_list_1500", "SELECT * FROM cases WHERE age IN (" + ",".join(["1"] * 1_500) + ")", REJECT),
    ("query_1mb", "SELECT 1 -- " + "x" * 1_000_000, REJECT),
    ("long_literal", "SELECT '" + "x" * 5_000 + "' AS s", REJECT),
    ("repeat", "SELECT repeat('x', 4000000000)", REJECT),
    ("lpad", "SELECT lpad('x', 2000000000, 'y')", REJECT),
    ("string_split", "SELECT string_split(patient_id, '_') FROM cases", REJECT),
    (
        "alias_doubling",
        "SELECT patient_id AS a, a || a AS b, b || b AS c, c || c AS d, d || d AS e, e || e AS f FROM cases",
        REJECT,
    ),
    ("list_agg_bomb", "SELECT list(a.patient_id) FROM cases a, cases b, cases c", REJECT),
    ("string_agg", "SELECT string_agg(patient_id, ',') FROM cases", REJECT),
    ("list_constructor", "SELECT [patient_id, patient_id, patient_id] FROM cases", REJECT),
    ("max_n", "SELECT max(age, 1000000000) FROM cases", REJECT),
    ("hex_growth", "SELECT hex(hex(hex(patient_id))) FROM cases", REJECT),
    ("lambda_arrow", "SELECT list_transform(tags, x -> x || x) FROM cases", REJECT),
    ("lambda_keyword", "SELECT list_filter(tags, lambda x: x <> '') FROM cases", REJECT),
    ("getvariable", "SELECT getvariable('x')", REJECT),
    ("range_2e9", "SELECT * FROM range(2000000000)", REJECT),
    ("range_scalar", "SELECT range(2000000000)", REJECT),
    ("generate_series", "SELECT * FROM generate_series(1, 2000000000)", REJECT),
    ("unnest_range", "SELECT unnest(range(2000000000))", REJECT),
    (
        "cube_bomb",
        'SELECT count(*) FROM cases GROUP BY CUBE(patient_id, dataset, age, pcr, scan_date, tags, "Tumor Size mm")',
        REJECT,
    ),
    # other escapes from the allowlist
    ("positional_param", "SELECT * FROM cases WHERE age > $1", REJECT),
    ("blob_cast", "SELECT CAST(patient_id AS BLOB) FROM cases", REJECT),
    ("method_call", "SELECT patient_id.repeat(1000) FROM cases", REJECT),
    ("time_travel", "SELECT * FROM cases AT (VERSION => 1)", REJECT),
    ("values", "SELECT * FROM (VALUES (1), (2)) v(x)", REJECT),
    ("sample", "SELECT * FROM cases USING SAMPLE 10%", REJECT),
    ("columns_star", "SELECT COLUMNS('.*') FROM cases", REJECT),
]


def _expected_cases() -> pa.Table:
    return cases_table()


def _assert_intact(engine: QueryEngine, sandbox: dict[str, Path], db_files: set[str]) -> None:
    assert _files(sandbox["outside"]) == {str(sandbox["outside"] / "secret.csv")}, (
        "a file appeared outside"
    )
    assert _files(os.path.dirname(engine.database_path)) == db_files, (
        "the engine's directory changed"
    )
    got = engine.execute("SELECT * FROM cases").table
    assert got.num_rows == N_CASES
    assert got.equals(_expected_cases().select(got.column_names))
    vols = engine.execute("SELECT * FROM volumes").table
    assert vols.num_rows == volumes_table().num_rows
    assert engine.tables() == ["cases", "volumes"]
    answer = engine.execute("SELECT count(*) AS n FROM cases WHERE dataset = $d", {"d": "DUKE"})
    assert answer.table.column("n").to_pylist() == [N_CASES // 4]


@pytest.fixture(scope="session")
def db_files(engine: QueryEngine) -> set[str]:
    return _files(os.path.dirname(engine.database_path))


def _check_message(exc: QueryError, engine: QueryEngine, sandbox: dict[str, Path]) -> None:
    text = str(exc)
    assert "root:" not in text
    assert "SECRET-7f3a9c" not in text
    assert engine.database_path not in text
    assert os.path.dirname(engine.database_path) not in text
    assert str(sandbox["root"]) not in text
    assert exc.status in (400, 413, 504)


def test_at_least_thirty_hostile_queries() -> None:
    assert len(HOSTILE) >= 30
    assert len({name for name, _, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("name", "sql", "allowed"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_query_is_refused_or_stopped(
    name: str,
    sql: str,
    allowed: tuple[type[QueryError], ...],
    engine: QueryEngine,
    sandbox: dict[str, Path],
    db_files: set[str],
) -> None:
    query = _fmt(sql, sandbox, engine)
    start = time.monotonic()
    with pytest.raises(QueryError) as info:
        engine.execute(query, limit=10)
    elapsed = time.monotonic() - start
    assert isinstance(info.value, allowed), f"{name}: {type(info.value).__name__}: {info.value}"
    assert elapsed < RETURN_BOUND_S, f"{name} came back after {elapsed:.1f} s"
    _check_message(info.value, engine, sandbox)
    _assert_intact(engine, sandbox, db_files)


@pytest.mark.parametrize(
    ("name", "sql"),
    [(n, s) for n, s, a in HOSTILE if a is REJECT and len(s) < 5_000],
    ids=[n for n, s, a in HOSTILE if a is REJECT and len(s) < 5_000],
)
def test_hostile_query_is_refused_by_page_and_count(
    name: str, sql: str, engine: QueryEngine, sandbox: dict[str, Path], db_files: set[str]
) -> None:
    query = _fmt(sql, sandbox, engine)
    with pytest.raises(REJECT) as info:
        engine.execute_page(query, limit=5, offset=0)
    _check_message(info.value, engine, sandbox)
    with pytest.raises(REJECT):
        engine.count(query)
    _assert_intact(engine, sandbox, db_files)


HOSTILE_WHERE = [
    ("union", "1) UNION SELECT * FROM volumes WHERE (1"),
    ("union_read", "1) UNION ALL SELECT * FROM read_csv('/etc/passwd') WHERE (1"),
    ("order_limit", "1) ORDER BY age LIMIT (1"),
    ("group", "1) GROUP BY (age"),
    ("comment_out", "1) --"),
    ("statements", "1); DROP TABLE cases; SELECT (1"),
    ("subquery_read", "patient_id IN (SELECT content FROM read_text('/etc/passwd'))"),
    ("subquery_settings", "EXISTS (SELECT * FROM duckdb_settings())"),
    ("function", "length(repeat(patient_id, 1000000000)) > 0"),
    ("empty", "   "),
    ("replacement", "EXISTS (SELECT * FROM secret_df)"),
]


@pytest.mark.parametrize(("name", "where"), HOSTILE_WHERE, ids=[h[0] for h in HOSTILE_WHERE])
def test_hostile_where_is_rejected(
    name: str, where: str, engine: QueryEngine, sandbox: dict[str, Path], db_files: set[str]
) -> None:
    def run() -> None:
        sql = where_to_sql(where, engine.tables(), limits=engine.limits)
        engine.execute_page(sql, limit=5)

    with pytest.raises(REJECT) as info:
        run()
    _check_message(info.value, engine, sandbox)
    _assert_intact(engine, sandbox, db_files)


def test_stopped_query_leaves_engine_answering(
    engine: QueryEngine, sandbox: dict[str, Path], db_files: set[str]
) -> None:
    # Two deadlines in a row, from two threads' worth of cursors, then normal answers.
    for _ in range(2):
        with pytest.raises(QueryTimeout) as info:
            engine.execute("SELECT count(*) FROM cases a, cases b, cases c, cases d, cases e")
        assert "time limit" in str(info.value)
        assert info.value.status == 504
    _assert_intact(engine, sandbox, db_files)


def test_huge_result_is_cut_at_the_limit(engine: QueryEngine) -> None:
    # 120^4 ≈ 2e8 rows: only limit + 1 are ever produced, the rest never runs.
    result = engine.execute(
        "SELECT a.patient_id, b.age FROM cases a, cases b, cases c, cases d", limit=7
    )
    assert result.table.num_rows == 7
    assert result.truncated


# --------------------------------------------------------------------------------------------
# Layer b: the DuckDB settings alone, with the guard bypassed (a raw cursor of the engine).

RAW_ATTACKS = [
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd', sep=':')"),
    ("read_text", "SELECT * FROM read_text('/etc/passwd')"),
    ("read_blob_outside", "SELECT * FROM read_blob('{out}/secret.csv')"),
    ("glob", "SELECT * FROM glob('/etc/*')"),
    ("parquet_source", "SELECT * FROM read_parquet('{parquet}')"),
    ("bare_path", "SELECT * FROM '{out}/secret.csv'"),
    ("copy_to", "COPY (SELECT 42) TO '{out}/pwned.csv'"),
    ("copy_to_dbdir", "COPY (SELECT 42) TO '{dbdir}/pwned.csv'"),
    ("export", "EXPORT DATABASE '{out}/export'"),
    ("attach_file", "ATTACH '{out}/new.db' AS x"),
    ("attach_sqlite", "ATTACH '{out}/x.sqlite' AS s (TYPE sqlite)"),
    ("install", "INSTALL httpfs"),
    ("load", "LOAD '{out}/evil.duckdb_extension'"),
    ("set_external", "SET enable_external_access = true"),
    ("set_lock", "SET lock_configuration = false"),
    ("set_memory", "SET memory_limit = '100GB'"),
    ("set_timeout", "SET max_execution_time = 100000000"),
    ("set_global_timeout", "SET GLOBAL max_execution_time = 100000000"),
    ("set_threads", "SET threads = 64"),
    ("set_temp", "SET temp_directory = '{out}'"),
    ("pragma", "PRAGMA memory_limit = '100GB'"),
    ("create", "CREATE TABLE evil AS SELECT 1"),
    ("drop", "DROP TABLE cases"),
    ("replace_view", "CREATE OR REPLACE VIEW cases AS SELECT 1 AS x"),
    ("macro", "CREATE MACRO m(x) AS x"),
    ("replacement_scan", "SELECT * FROM secret_df"),
]


@pytest.mark.parametrize(("name", "sql"), RAW_ATTACKS, ids=[a[0] for a in RAW_ATTACKS])
def test_locked_connection_refuses_without_the_guard(
    name: str, sql: str, engine: QueryEngine, sandbox: dict[str, Path], db_files: set[str]
) -> None:
    assert secret_df is not None  # the frame DuckDB would scan holds it
    cur = engine._con.cursor()  # the engine's own connection, no guard in the way
    try:
        with pytest.raises(duckdb.Error) as info:
            cur.execute(_fmt(sql, sandbox, engine)).fetchall()
        assert "root:" not in str(info.value)
        assert "SECRET-7f3a9c" not in str(info.value)
    finally:
        cur.close()
    _assert_intact(engine, sandbox, db_files)


def test_locked_settings(engine: QueryEngine) -> None:
    cur = engine._con.cursor()
    try:
        rows = dict(
            cur.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
                "'allowed_directories', 'autoload_known_extensions', 'autoinstall_known_extensions', "
                "'allow_community_extensions', 'python_enable_replacements', 'temp_directory', "
                "'lock_configuration', 'max_execution_time', 'threads', 'access_mode')"
            ).fetchall()
        )
        # a fresh cursor inherits the GLOBAL deadline
        deadline = cur.execute("SELECT current_setting('max_execution_time')").fetchone()
    finally:
        cur.close()
    assert rows["enable_external_access"] == "false"
    assert rows["allowed_directories"] == "[]"
    assert rows["autoload_known_extensions"] == "false"
    assert rows["autoinstall_known_extensions"] == "false"
    assert rows["allow_community_extensions"] == "false"
    assert rows["python_enable_replacements"] == "false"
    assert rows["temp_directory"] == ""
    assert rows["lock_configuration"] == "true"
    assert rows["max_execution_time"] == str(TIME_LIMIT_MS)
    assert rows["threads"] == "2"
    assert rows["access_mode"].lower() in ("read_only", "readonly", "read only")
    assert deadline is not None
    assert int(deadline[0]) == TIME_LIMIT_MS


# --------------------------------------------------------------------------------------------
# Random token soup: whatever the text, the engine answers or raises a QueryError, and never
# anything that reads a file.

_TOKENS = [
    "SELECT", "*", "FROM", "cases", "volumes", "WHERE", "(", ")", ")", "(", ";", "--", "\n",
    "/*", "*/", "'", "''", '"', "UNION", "ALL", "ORDER BY", "LIMIT", "1", "age", "patient_id",
    ">", "=", "AND", "OR", "NOT", ",", "read_csv(", "'/etc/passwd'", "read_text(", "glob(",
    "secret_df", "COPY", "TO", "ATTACH", "SET", "enable_external_access", "true", "$p",
    "repeat(", "range(", "x ->", "IN", "EXISTS", "WITH", "AS", "t", "duckdb_settings()",
    "lower(", "||", "CAST(", "AS VARCHAR)", "#1", "[1]", "::BLOB", "E'\\x00'", "PRAGMA",
]  # fmt: skip


def test_random_token_soup_never_escapes(
    engine: QueryEngine, sandbox: dict[str, Path], db_files: set[str]
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    soup = st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=25).map(" ".join)

    @settings(
        max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(body=soup, as_where=st.booleans())
    def run(body: str, as_where: bool) -> None:
        params = {"p": 1} if "$p" in body else None
        try:
            sql = where_to_sql(body, engine.tables(), limits=engine.limits) if as_where else body
            result = engine.execute_page(sql, params, limit=3)
        except QueryError as exc:
            _check_message(exc, engine, sandbox)
            return
        text = str(result.table.to_pylist())
        assert "root:" not in text
        assert "SECRET-7f3a9c" not in text

    run()
    _assert_intact(engine, sandbox, db_files)
