"""What the query routes ask of the engine: stable pages of a SELECT or a WHERE, and facets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mamamia_server._engine import QueryResult
from mamamia_server._problems import ApiError
from mamamia_server._sql_guard import where_to_sql
from mamamia_server._state import CatalogState

__all__ = ["QuerySpec", "cohort_sql", "facet_counts", "run_page"]


@dataclass(frozen=True)
class QuerySpec:
    """A query as a client sent it: a SELECT or a WHERE over cases, and its parameters."""

    sql: str | None
    where: str | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.sql if self.sql is not None else str(self.where)

    @classmethod
    def from_request(
        cls,
        sql: str | None,
        where: str | None,
        params: Mapping[str, Any] | None,
        *,
        required: bool,
    ) -> QuerySpec | None:
        if sql is None and where is None:
            if required:
                raise ApiError(
                    422,
                    'give one of "sql" (a SELECT) or "where" (an expression over cases)',
                    slug="invalid-parameter",
                )
            return None
        if sql is not None and where is not None:
            raise ApiError(422, 'give "sql" or "where", not both', slug="invalid-parameter")
        return cls(sql=sql, where=where, params=dict(params or {}))

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"p": self.params}
        if self.sql is not None:
            payload["s"] = self.sql
        else:
            payload["w"] = self.where
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> QuerySpec:
        sql, where, params = payload.get("s"), payload.get("w"), payload.get("p", {})
        if (sql is None) == (where is None) or not isinstance(params, dict):
            raise ValueError("cursor holds no query")
        if not isinstance(sql or where, str):
            raise ValueError("cursor query is not text")
        return cls(sql=sql, where=where, params=params)


def cohort_sql(state: CatalogState, spec: QuerySpec) -> str:
    """The SELECT the engine runs for ``spec`` (a WHERE becomes ``SELECT * FROM cases ...``)."""
    if spec.sql is not None:
        return spec.sql
    assert spec.where is not None
    return where_to_sql(spec.where, state.engine.tables(), limits=state.engine.limits)


def run_page(state: CatalogState, spec: QuerySpec, offset: int, limit: int) -> QueryResult:
    """Rows ``offset .. offset + limit`` of ``spec`` in the engine's deterministic order."""
    return state.engine.execute_page(
        cohort_sql(state, spec), spec.params or None, limit=limit, offset=offset
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def facet_counts(
    state: CatalogState, spec: QuerySpec, columns: list[str]
) -> tuple[int, dict[str, list[tuple[Any, int]]]]:
    """The cohort's size and, per column, (value, count) pairs: most frequent first, null last."""
    base = cohort_sql(state, spec)
    engine = state.engine
    total = engine.count(base, spec.params or None)
    out: dict[str, list[tuple[Any, int]]] = {}
    for name in columns:
        sql = (
            f"SELECT {_quote(name)} AS value, count(*) AS n FROM (\n{base}\n) AS cohort "
            "GROUP BY 1 ORDER BY (value IS NULL), n DESC, value"
        )
        result = engine.execute(sql, spec.params or None, limit=engine.limits.max_rows)
        values = result.table.column("value").to_pylist()
        counts = result.table.column("n").to_pylist()
        out[name] = [(v, int(n)) for v, n in zip(values, counts, strict=True)]
    return total, out
