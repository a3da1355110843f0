"""The query engine on ordinary cohort queries: answers, parameters, limits, stable pages."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _sql_test_data import DATASETS, N_CASES, cases_table, volumes_table, write_tables
from mamamia import QueryFailed, QueryRejected, QueryTooLarge, UnknownTable
from mamamia.sqlguard import ALLOWED_FUNCTIONS, QueryLimits, check_params, check_query, where_to_sql
from mamamia_server._query_engine import Column, QueryEngine, strip_statement

MAX_ROWS = 50


@pytest.fixture(scope="session")
def table_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tables(tmp_path_factory.mktemp("engine") / "tables")


@pytest.fixture(scope="session")
def engine(table_paths: dict[str, Path]) -> Iterator[QueryEngine]:
    eng = QueryEngine(
        table_paths, QueryLimits(max_rows=MAX_ROWS, time_limit_ms=3_000, memory_limit="512MB")
    )
    yield eng
    eng.close()


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = cases_table().to_pylist()
    return rows


def _ids(result_table: pa.Table) -> list[str]:
    return [str(x) for x in result_table.column("patient_id").to_pylist()]


# -- tables and schemas ------------------------------------------------------------------------


def test_tables_and_schema(engine: QueryEngine) -> None:
    assert engine.tables() == ["cases", "volumes"]
    schema = engine.table_schema("cases")
    assert schema.names == cases_table().schema.names
    assert schema.field("age").type == pa.int32()
    assert schema.field("scan_date").type == pa.date32()
    assert pa.types.is_list(schema.field("tags").type)
    assert engine.table_schema("VOLUMES").names == volumes_table().schema.names
    with pytest.raises(UnknownTable, match="unknown table 'nope'") as info:
        engine.table_schema("nope")
    assert info.value.status == 404


def test_database_is_a_private_copy(engine: QueryEngine, table_paths: dict[str, Path]) -> None:
    assert Path(engine.database_path).is_file()
    assert not Path(engine.database_path).is_relative_to(table_paths["cases"].parent)


# -- ordinary cohort queries -------------------------------------------------------------------


def test_where_and_or_in_between_is_null(engine: QueryEngine) -> None:
    sql = (
        "SELECT patient_id FROM cases WHERE (dataset IN ('ISPY1', 'ISPY2') AND age BETWEEN 30 AND 50) "
        "OR pcr IS NULL ORDER BY patient_id"
    )
    want = sorted(
        r["patient_id"]
        for r in _rows()
        if (r["dataset"] in ("ISPY1", "ISPY2") and r["age"] is not None and 30 <= r["age"] <= 50)
        or r["pcr"] is None
    )
    got = engine.execute(sql, limit=MAX_ROWS)
    assert _ids(got.table) == want[:MAX_ROWS]
    assert got.truncated == (len(want) > MAX_ROWS)


def test_group_by_counts(engine: QueryEngine) -> None:
    result = engine.execute(
        "SELECT dataset, count(*) AS n FROM cases GROUP BY dataset ORDER BY dataset"
    )
    assert result.table.to_pylist() == [
        {"dataset": d, "n": c} for d, c in sorted(Counter(r["dataset"] for r in _rows()).items())
    ]
    assert result.columns == (Column("dataset", "VARCHAR"), Column("n", "BIGINT"))
    assert not result.truncated


def test_from_first_and_quoted_identifiers(engine: QueryEngine) -> None:
    got = engine.execute(
        'FROM cases SELECT patient_id, "Tumor Size mm" WHERE "Tumor Size mm" > 40 ORDER BY 1'
    )
    want = sorted(r["patient_id"] for r in _rows() if r["Tumor Size mm"] > 40)
    assert _ids(got.table) == want
    assert engine.execute("FROM cases").table.num_rows == MAX_ROWS


def test_cte_and_join(engine: QueryEngine) -> None:
    sql = (
        "WITH young AS (SELECT * FROM cases WHERE age < 40), "
        "imaged AS (SELECT DISTINCT patient_id FROM volumes WHERE kind = 'image') "
        "SELECT y.patient_id FROM young y JOIN imaged USING (patient_id) ORDER BY 1"
    )
    imaged = set(volumes_table().column("patient_id").to_pylist())
    want = sorted(
        r["patient_id"]
        for r in _rows()
        if r["age"] is not None and r["age"] < 40 and r["patient_id"] in imaged
    )
    assert _ids(engine.execute(sql).table) == want
    # a CTE may shadow a table it reads
    shadow = engine.execute(
        "WITH cases AS (SELECT * FROM cases WHERE dataset = 'NACT') SELECT count(*) AS n FROM cases"
    )
    assert shadow.table.column("n").to_pylist() == [N_CASES // 4]


def test_list_and_date_functions(engine: QueryEngine) -> None:
    sql = (
        "SELECT patient_id, len(tags) AS n_tags, tags[1] AS first_tag, year(scan_date) AS y "
        "FROM cases WHERE list_contains(tags, 'implant') ORDER BY patient_id"
    )
    got = engine.execute(sql).table.to_pylist()
    want = sorted((r for r in _rows() if "implant" in r["tags"]), key=lambda r: r["patient_id"])
    assert [g["patient_id"] for g in got] == [w["patient_id"] for w in want]
    assert [g["n_tags"] for g in got] == [len(w["tags"]) for w in want]
    assert [g["first_tag"] for g in got] == [w["tags"][0] for w in want]
    assert [g["y"] for g in got] == [w["scan_date"].year for w in want]


def test_aggregates_and_windows(engine: QueryEngine) -> None:
    sql = (
        "SELECT dataset, median(age) AS med, quantile_cont(age, [0.25, 0.75]) AS q, "
        "count_if(pcr) AS n_pcr, round(avg(age), 2) AS mean_age FROM cases GROUP BY ALL ORDER BY ALL"
    )
    result = engine.execute(sql).table.to_pylist()
    assert [r["dataset"] for r in result] == sorted(DATASETS)
    for r in result:
        ages = sorted(
            x["age"] for x in _rows() if x["dataset"] == r["dataset"] and x["age"] is not None
        )
        assert r["n_pcr"] == sum(1 for x in _rows() if x["dataset"] == r["dataset"] and x["pcr"])
        assert len(r["q"]) == 2
        assert min(ages) <= r["med"] <= max(ages)
    ranked = engine.execute(
        "SELECT patient_id, row_number() OVER (PARTITION BY dataset ORDER BY patient_id) AS k FROM cases "
        "QUALIFY k = 1 ORDER BY patient_id"
    )
    assert ranked.table.num_rows == len(DATASETS)


def test_within_group_any_unnest_and_friends(engine: QueryEngine) -> None:
    rows = _rows()
    med = engine.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY age) AS m FROM cases")
    assert (
        med.table.column("m").to_pylist()
        == engine.execute("SELECT median(age) AS m FROM cases").table.column("m").to_pylist()
    )
    tagged = engine.execute("SELECT patient_id FROM cases WHERE 'implant' = ANY(tags) ORDER BY 1")
    assert _ids(tagged.table) == sorted(r["patient_id"] for r in rows if "implant" in r["tags"])
    tags = engine.execute(
        "SELECT tag, count(*) AS n FROM (SELECT unnest(tags) AS tag FROM cases) GROUP BY tag ORDER BY tag"
    )
    want = Counter(t for r in rows for t in r["tags"])
    assert tags.table.to_pylist() == [{"tag": t, "n": n} for t, n in sorted(want.items())]
    one = engine.execute(
        "SELECT list_sort(tags, 'DESC') AS s, regexp_extract(patient_id, '[0-9]+') AS num, "
        "strftime(scan_date, '%Y-%m') AS ym FROM cases WHERE len(tags) = 2 ORDER BY patient_id LIMIT 1"
    ).table.to_pylist()[0]
    first = min((r for r in rows if len(r["tags"]) == 2), key=lambda r: r["patient_id"])
    assert one["s"] == sorted(first["tags"], reverse=True)
    assert one["num"] == first["patient_id"].split("_")[1]
    assert one["ym"] == first["scan_date"].strftime("%Y-%m")


def test_string_functions(engine: QueryEngine) -> None:
    sql = (
        "SELECT lower(patient_id) AS lo, starts_with(patient_id, 'DUKE') AS duke, "
        "patient_id LIKE '%_00_' AS lk, patient_id ILIKE 'duke%' AS ilk, split_part(patient_id, '_', 2) AS num, "
        "concat(dataset, '/', patient_id) AS c, dataset || '-' AS d2 FROM cases ORDER BY patient_id LIMIT 1"
    )
    row = engine.execute(sql).table.to_pylist()[0]
    first = min(_rows(), key=lambda r: r["patient_id"])
    assert row["lo"] == first["patient_id"].lower()
    assert row["duke"] == first["patient_id"].startswith("DUKE")
    assert row["ilk"] == first["patient_id"].lower().startswith("duke")
    assert row["num"] == first["patient_id"].split("_")[1]
    assert row["c"] == f"{first['dataset']}/{first['patient_id']}"


# -- parameters --------------------------------------------------------------------------------


def test_named_parameters(engine: QueryEngine) -> None:
    sql = (
        "SELECT patient_id FROM cases WHERE dataset = $ds AND age >= $min_age AND pcr = $pcr "
        'AND "Tumor Size mm" < $size ORDER BY patient_id'
    )
    params = {"ds": "ISPY2", "min_age": 30, "pcr": True, "size": 30.5}
    want = sorted(
        r["patient_id"]
        for r in _rows()
        if r["dataset"] == "ISPY2"
        and r["age"] is not None
        and r["age"] >= 30
        and r["pcr"] is True
        and r["Tumor Size mm"] < 30.5
    )
    assert _ids(engine.execute(sql, params).table) == want


def test_list_parameter(engine: QueryEngine) -> None:
    ids = ["DUKE_000", "ISPY1_001", "NOPE_999"]
    a = engine.execute(
        "SELECT patient_id FROM cases WHERE patient_id IN $ids ORDER BY 1", {"ids": ids}
    )
    b = engine.execute(
        "SELECT patient_id FROM cases WHERE list_contains($ids, patient_id) ORDER BY 1",
        {"$ids": ids},
    )
    assert _ids(a.table) == _ids(b.table) == ["DUKE_000", "ISPY1_001"]


def test_null_parameter(engine: QueryEngine) -> None:
    got = engine.execute(
        "SELECT count(*) AS n FROM cases WHERE age IS NOT DISTINCT FROM $a", {"a": None}
    )
    assert got.table.column("n").to_pylist() == [sum(1 for r in _rows() if r["age"] is None)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, r"missing value for parameter \$ds"),
        ({"ds": "DUKE", "extra": 1}, r"does not use parameter \$extra"),
        ({"ds": {"a": 1}}, r"parameter \$ds has type dict"),
        ({"ds": b"DUKE"}, r"parameter \$ds has type bytes"),
        ({"ds": float("nan")}, r"finite"),
        ({"ds": 2**70}, r"64-bit"),
        ({"ds": [1, "a"]}, r"mixes value types"),
        ({"d s": 1}, r"not valid"),
        ({"ds": "x\x00"}, r"NUL"),
        ({"ds": "x\ud800"}, r"invalid Unicode"),
    ],
)
def test_bad_parameters(engine: QueryEngine, params: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryRejected, match=message):
        engine.execute("SELECT * FROM cases WHERE dataset = $ds", params)


def test_oversized_parameters(engine: QueryEngine) -> None:
    with pytest.raises(QueryTooLarge, match="characters long"):
        engine.execute("SELECT * FROM cases WHERE dataset = $ds", {"ds": "x" * 5_000})
    with pytest.raises(QueryTooLarge, match="items"):
        engine.execute("SELECT * FROM cases WHERE patient_id IN $ids", {"ids": ["a"] * 5_000})


# -- limits and truncation ---------------------------------------------------------------------


def test_truncation_at_limit(engine: QueryEngine) -> None:
    r = engine.execute("SELECT * FROM cases ORDER BY patient_id", limit=5)
    assert r.table.num_rows == 5
    assert r.truncated
    assert r.limit == 5
    exact = engine.execute("SELECT * FROM cases WHERE dataset = 'DUKE' AND age < 40")
    n = exact.table.num_rows
    again = engine.execute("SELECT * FROM cases WHERE dataset = 'DUKE' AND age < 40", limit=n)
    assert again.table.num_rows == n
    assert not again.truncated
    zero = engine.execute("SELECT * FROM cases", limit=0)
    assert zero.table.num_rows == 0
    assert zero.truncated
    assert zero.table.schema.names == cases_table().schema.names
    empty = engine.execute("SELECT * FROM cases WHERE false")
    assert empty.table.num_rows == 0
    assert not empty.truncated


@pytest.mark.parametrize("limit", [-1, MAX_ROWS + 1, True, 2.5])
def test_limit_out_of_range(engine: QueryEngine, limit: Any) -> None:
    with pytest.raises(QueryRejected, match="limit must be"):
        engine.execute("SELECT 1", limit=limit)


def test_count(engine: QueryEngine) -> None:
    assert engine.count("SELECT * FROM cases") == N_CASES
    assert engine.count("SELECT * FROM cases WHERE dataset = $d;", {"d": "NACT"}) == N_CASES // 4
    assert engine.count("SELECT * FROM volumes -- trailing comment") == volumes_table().num_rows


# -- stable pagination ---------------------------------------------------------------------------


def _all_pages(
    engine: QueryEngine, sql: str, params: dict[str, Any] | None, size: int
) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    offset = 0
    total = -1
    while True:
        page = engine.execute_page(sql, params, limit=size, offset=offset)
        total = page.total if page.total is not None else -1
        assert page.offset == offset
        assert page.limit == size
        rows.extend(page.table.to_pylist())
        if not page.truncated:
            break
        offset += size
    return rows, total


def test_pages_cover_the_result_once_in_patient_order(engine: QueryEngine) -> None:
    sql = "SELECT age, dataset, patient_id FROM cases WHERE age > $a"
    rows, total = _all_pages(engine, sql, {"a": 35}, 7)
    want = sorted(
        (r for r in _rows() if r["age"] is not None and r["age"] > 35),
        key=lambda r: r["patient_id"],
    )
    assert total == len(want)
    assert [r["patient_id"] for r in rows] == [w["patient_id"] for w in want]
    page = engine.execute_page(sql, {"a": 35}, limit=3, offset=0)
    assert page.order_by == (3, 1, 2)  # patient_id first, then every column left to right


def test_pages_are_stable_without_a_unique_key(engine: QueryEngine) -> None:
    # volumes has several rows per patient_id: the order still covers every column
    sql = "SELECT kind, phase, patient_id FROM volumes"
    first, total = _all_pages(engine, sql, None, 9)
    second, _ = _all_pages(engine, sql, None, 9)
    assert first == second
    assert total == volumes_table().num_rows == len(first)
    keys = [
        (r["patient_id"], r["kind"], r["phase"] if r["phase"] is not None else 1 << 30)
        for r in first
    ]
    assert keys == sorted(keys)
    assert Counter(map(str, first)) == Counter(
        map(str, volumes_table().select(["kind", "phase", "patient_id"]).to_pylist())
    )


def test_pages_without_patient_id_and_with_trailing_text(engine: QueryEngine) -> None:
    sql = "SELECT dataset, count(*) AS n FROM cases GROUP BY dataset; -- per dataset"
    page = engine.execute_page(sql, limit=2, offset=2)
    assert page.order_by == (1, 2)
    assert page.total == len(DATASETS)
    assert page.table.column("dataset").to_pylist() == sorted(DATASETS)[2:4]
    assert not page.truncated


def test_page_of_a_limited_query_keeps_its_limit(engine: QueryEngine) -> None:
    page = engine.execute_page(
        "SELECT patient_id, age FROM cases WHERE age IS NOT NULL ORDER BY age DESC LIMIT 5",
        limit=10,
    )
    oldest = sorted((r for r in _rows() if r["age"] is not None), key=lambda r: -r["age"])[:5]
    assert page.total == 5
    assert sorted(_ids(page.table)) == _ids(page.table)
    assert {r["age"] for r in page.table.to_pylist()} <= {r["age"] for r in oldest}


def test_page_offset_checks(engine: QueryEngine) -> None:
    with pytest.raises(QueryRejected, match="offset"):
        engine.execute_page("SELECT 1", limit=1, offset=-1)
    past = engine.execute_page("SELECT * FROM cases", limit=5, offset=10_000)
    assert past.table.num_rows == 0
    assert not past.truncated
    assert past.total == N_CASES


# -- where_to_sql ---------------------------------------------------------------------------------


def test_where_to_sql(engine: QueryEngine) -> None:
    sql = where_to_sql("pcr AND age < 50 AND dataset = 'ISPY2'", engine.tables())
    assert sql.startswith('SELECT * FROM "cases" WHERE (')
    want = sorted(
        r["patient_id"]
        for r in _rows()
        if r["pcr"] and r["age"] is not None and r["age"] < 50 and r["dataset"] == "ISPY2"
    )
    assert _ids(engine.execute_page(sql, limit=MAX_ROWS).table) == want


def test_where_with_params_subquery_and_comment(engine: QueryEngine) -> None:
    sql = where_to_sql(
        "patient_id IN (SELECT patient_id FROM volumes WHERE kind = $k) AND age > $a -- imaged",
        engine.tables(),
    )
    imaged = set(volumes_table().column("patient_id").to_pylist())
    want = sorted(
        r["patient_id"]
        for r in _rows()
        if r["patient_id"] in imaged and r["age"] is not None and r["age"] > 40
    )
    assert _ids(engine.execute_page(sql, {"k": "expert", "a": 40}, limit=MAX_ROWS).table) == want


def test_where_only_sees_its_table_by_default() -> None:
    with pytest.raises(QueryRejected, match="unknown table volumes"):
        where_to_sql("patient_id IN (SELECT patient_id FROM volumes)")
    assert where_to_sql("true", table="volumes").endswith("WHERE (\ntrue\n)")


# -- errors ----------------------------------------------------------------------------------------


def test_failed_query_message_is_useful_and_path_free(engine: QueryEngine) -> None:
    with pytest.raises(QueryFailed, match='column "nope"') as info:
        engine.execute("SELECT nope FROM cases")
    assert info.value.status == 400
    assert os.path.dirname(engine.database_path) not in str(info.value)
    with pytest.raises(QueryFailed, match="Conversion"):
        engine.execute("SELECT CAST(patient_id AS INTEGER) FROM cases")


def test_invalid_unicode_is_rejected(engine: QueryEngine) -> None:
    with pytest.raises(QueryRejected, match="not valid Unicode"):
        engine.execute("SELECT '\ud800' AS s")


def test_syntax_error_is_rejected(engine: QueryEngine) -> None:
    with pytest.raises(QueryRejected, match="could not be parsed") as info:
        engine.execute("SELEC * FROM cases")
    assert info.value.rule == "parse"


# -- concurrency, lifecycle, set-up errors -------------------------------------------------------


def test_concurrent_cursors(engine: QueryEngine) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(15):
                d = DATASETS[(k + i) % 4]
                n = engine.count("SELECT * FROM cases WHERE dataset = $d", {"d": d})
                assert n == N_CASES // 4
                page = engine.execute_page(
                    "SELECT patient_id FROM cases WHERE dataset = $d", {"d": d}, limit=3, offset=i
                )
                assert page.table.num_rows == 3
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_close_removes_the_database(table_paths: dict[str, Path]) -> None:
    eng = QueryEngine(table_paths)
    folder = Path(eng.database_path).parent
    assert folder.is_dir()
    with eng:
        assert eng.count("SELECT * FROM cases") == N_CASES
    assert not folder.exists()
    eng.close()  # idempotent
    with pytest.raises(QueryFailed, match="closed"):
        eng.execute("SELECT 1")


def test_engine_reads_the_parquet_once(tmp_path: Path) -> None:
    paths = write_tables(tmp_path / "t")
    with QueryEngine(paths) as eng:
        pq.write_table(
            pa.table({"patient_id": ["ONLY"]}), paths["cases"]
        )  # later writes are not seen
        assert eng.count("SELECT * FROM cases") == N_CASES


def test_setup_errors(tmp_path: Path, table_paths: dict[str, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="table 'cases'"):
        QueryEngine({"cases": tmp_path / "missing.parquet"})
    with pytest.raises(ValueError, match="plain identifier"):
        QueryEngine({"bad name": table_paths["cases"]})
    with pytest.raises(ValueError, match="twice"):
        QueryEngine({"cases": table_paths["cases"], "CASES": table_paths["cases"]})
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="cannot read Parquet"):
        QueryEngine({"cases": tmp_path / "junk.parquet"}, workdir=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("mamamia-query-")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rows": 0}, "max_rows"),
        ({"threads": -1}, "threads"),
        ({"memory_limit": "lots"}, "memory_limit"),
        ({"time_limit_ms": True}, "time_limit_ms"),
    ],
)
def test_limits_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueryLimits(**kwargs)


# -- the allowlist itself ------------------------------------------------------------------------


def test_every_allowed_function_exists_in_duckdb() -> None:
    con = duckdb.connect()
    names = {
        r[0]
        for r in con.execute("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()
    }
    assert set(ALLOWED_FUNCTIONS) - names == set()


@pytest.mark.parametrize(
    "name",
    [
        "repeat",
        "lpad",
        "rpad",
        "string_split",
        "range",
        "generate_series",
        "list",
        "string_agg",
        "array_agg",
        "getvariable",
        "current_setting",
        "read_csv",
        "glob",
        "query",
        "format",
        "printf",
        "hex",
        "to_base64",
        "list_transform",
        "regexp_replace",
        "replace",
        "histogram",
        "bar",
        "list_resize",
        "to_json",
    ],
)
def test_growing_functions_are_not_allowed(name: str) -> None:
    assert name not in ALLOWED_FUNCTIONS


def test_check_query_reports_tables_and_params() -> None:
    checked = check_query(
        "SELECT c.patient_id FROM cases c WHERE c.age > $a AND EXISTS (SELECT 1 FROM volumes v WHERE v.patient_id = c.patient_id AND v.kind = $k)",
        ["cases", "volumes"],
    )
    assert checked.tables == {"cases", "volumes"}
    assert checked.param_names == {"a", "k"}
    assert check_params(checked, {"a": 1, "k": "image"}) == {"a": 1, "k": "image"}


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ; ; -- done\n", "SELECT 1"),
        ("SELECT ';' AS s /* ; */;", "SELECT ';' AS s"),
        ("SELECT 1 -- a ; b", "SELECT 1"),
    ],
)
def test_strip_statement(sql: str, want: str) -> None:
    assert strip_statement(sql) == want


def test_pages_of_a_wide_table(tmp_path: Path) -> None:
    # 300 columns: the wrapper's ORDER BY has 300 keys, over the user-query node budget alone
    wide = pa.table({f"c{i:03d}": pa.array([i, i + 1, i + 2], pa.int32()) for i in range(300)})
    pq.write_table(wide, tmp_path / "wide.parquet")
    with QueryEngine({"wide": tmp_path / "wide.parquet"}, QueryLimits(max_ast_nodes=200)) as eng:
        page = eng.execute_page("SELECT * FROM wide", limit=2, offset=1)
        assert page.total == 3
        assert page.order_by == tuple(range(1, 301))
        assert page.table.column("c000").to_pylist() == [1, 2]
        assert eng.count("SELECT * FROM wide") == 3
