"""The local catalog runs the server's SQL guard: same refusals, same error text, no broken Catalog."""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mamamia
from conftest import LiveServer
from mamamia import Catalog, InvalidRequest, QueryError, QueryFailed, QueryRejected

# Statements that read or write outside the catalog, or change it.
REFUSED = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "COPY (SELECT * FROM cases) TO 'leak.csv'",
    "DROP VIEW cases",
    "CREATE TABLE x AS SELECT 1",
    "ATTACH 'other.db'",
    "SELECT * FROM cases; DROP VIEW cases",
    "SELECT getenv('HOME')",
]


@pytest.fixture(scope="module")
def local(catalog_dir: Path) -> Catalog:
    return mamamia.open(catalog_dir)


@pytest.fixture(scope="module")
def remote(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return mamamia.connect(live_server.url, cache_dir=tmp_path_factory.mktemp("cache"))


def _message(catalog: Catalog, sql: str, **params: object) -> tuple[type[Exception], str]:
    with pytest.raises(QueryError) as info:
        catalog.sql(sql, **params)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("sql", REFUSED)
def test_local_refuses_what_the_server_refuses(
    local: Catalog, remote: Catalog, sql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kind, text = _message(local, sql)
    assert issubclass(kind, QueryRejected)
    assert _message(remote, sql) == (kind, text)
    assert not (tmp_path / "leak.csv").exists()
    # the Catalog still answers
    assert local.sql("SELECT count(*) AS n FROM cases")["n"][0].as_py() == 6


def test_the_same_mistake_reads_the_same_local_and_remote(local: Catalog, remote: Catalog) -> None:
    for sql, params, expected in [
        ("SELECT * FROM cases WHERE pcr AND agee < 50", {}, 'column "agee" not found'),
        ("SELECT * FROM cases WHERE age < $a", {"a": 50, "b": 1}, "parameter $b"),
        ('SELECT * FROM cases WHERE dataset = "DUKE"', {}, "single quotes: 'DUKE'"),
    ]:
        kind, text = _message(local, sql, **params)
        assert expected in text
        assert _message(remote, sql, **params) == (kind, text)
    _, text = _message(local, "SELECT * FROM cases WHERE agee < 50")
    assert 'did you mean "age"' in text
    with pytest.raises(QueryFailed) as info:
        local.cohort("pcr AND agee < 50")
    assert "ORDER BY" not in str(info.value) and "(in:" not in str(info.value)
    assert 'did you mean "age"' in str(info.value)


def test_unguarded_is_explicit_and_still_one_select(catalog_dir: Path, tmp_path: Path) -> None:
    csv = tmp_path / "extra.csv"
    csv.write_text("a\n1\n2\n")
    trusted = mamamia.open(catalog_dir, guard=False)
    assert trusted.sql(f"SELECT sum(a) AS s FROM read_csv('{csv}')")["s"][0].as_py() == 3
    with pytest.raises(QueryRejected, match="only SELECT"):
        trusted.sql("DROP VIEW cases")
    assert trusted.sql("SELECT count(*) AS n FROM cases")["n"][0].as_py() == 6
    with pytest.raises(QueryRejected):
        mamamia.open(catalog_dir).sql(f"SELECT * FROM read_csv('{csv}')")


def test_register_joins_own_data_under_the_guard(catalog_dir: Path, tmp_path: Path) -> None:
    cat = mamamia.open(catalog_dir)
    ids = cat.cohort("has_expert").case_ids
    predictions = pd.DataFrame({"patient_id": ids, "score": [i / 10 for i in range(len(ids))]})
    cat.register("predictions", predictions)
    joined = cat.sql(
        "SELECT c.patient_id, c.dataset, p.score FROM cases c "
        "JOIN predictions p USING (patient_id) ORDER BY p.score"
    )
    assert joined.column("patient_id").to_pylist() == ids
    high = cat.cohort(sql="SELECT patient_id FROM predictions WHERE score >= 0.1")
    assert high.case_ids == sorted(ids[1:])
    # Arrow table and a Parquet path replace it; a CSV path works too
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"patient_id": ids[:1], "score": [0.9]}), path)
    cat.register("predictions", path)
    assert cat.sql("SELECT count(*) AS n FROM predictions")["n"][0].as_py() == 1
    (tmp_path / "q.csv").write_text("patient_id,score\n" + ids[0] + ",1\n")
    cat.register("q", tmp_path / "q.csv")
    assert "q" in cat.tables()
    with pytest.raises(InvalidRequest, match="catalog table"):
        cat.register("cases", predictions)
    with pytest.raises(InvalidRequest, match="not a plain identifier"):
        cat.register("x; DROP", predictions)
    with pytest.raises(InvalidRequest, match="no file"):
        cat.register("r", tmp_path)
    (tmp_path / "r.txt").write_text("x")
    with pytest.raises(InvalidRequest, match=r"\.csv or \.parquet"):
        cat.register("r", tmp_path / "r.txt")
    with pytest.raises(InvalidRequest, match="DataFrame"):
        cat.register("r", [1, 2])


def test_register_is_refused_on_a_server(remote: Catalog) -> None:
    with pytest.raises(InvalidRequest, match="server"):
        remote.register("p", pa.table({"a": [1]}))


def test_values_outside_a_set_warn_local_and_remote(
    local: Catalog, remote: Catalog, live_server: LiveServer
) -> None:
    for catalog in (local, remote):
        with pytest.warns(mamamia.ValueSetWarning, match="did you mean 'DUKE'") as caught:
            assert len(catalog.cohort("dataset = 'Duke'")) == 0
        assert caught[0].filename == __file__  # points at the caller, not the SDK
        with pytest.warns(mamamia.ValueSetWarning, match="tumor_subtype_group = 'TNBC'"):
            catalog.sql("SELECT * FROM cases WHERE tumor_subtype_group IN ('TNBC', 'luminal')")
        with pytest.warns(mamamia.ValueSetWarning, match="did you mean 'ISPY1'"):
            catalog.cohort("dataset = $d", d="ispy1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(local.cohort("dataset = 'DUKE' AND tumor_subtype_group <> 'luminal'")) >= 0
    answer = httpx.post(live_server.url + "/v1/query", json={"where": "dataset = 'Duke'"}).json()
    assert answer["total"] == 0
    assert answer["warnings"] == [
        "dataset = 'Duke' matches no row: dataset is one of 'DUKE', 'ISPY1', 'ISPY2', 'NACT'; "
        "did you mean 'DUKE'?"
    ]
    clean = httpx.post(live_server.url + "/v1/query", json={"where": "dataset = 'DUKE'"}).json()
    assert clean["warnings"] == [] and clean["total"] >= 1
