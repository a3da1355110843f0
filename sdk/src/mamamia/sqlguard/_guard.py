"""The SQL guard: a query must be one SELECT over the catalog's tables, using allowed functions only.

The query is parsed by DuckDB itself (``SELECT json_serialize_sql(?)`` on a bare in-memory
connection with external access off), so the tree checked here is the tree the engine runs:
there is no second parser to disagree with. The walk is an allowlist that fails closed: every
node type, every key of a node, every function and every cast target must be known, or the
query is rejected. That also keeps a future DuckDB that adds syntax from slipping it through.
The allowlist's tables live in ``_allowlist``, the walk in ``_walk``; this module
parses, runs the walk, and checks parameters.

What DuckDB cannot bound by itself (a scalar function that builds a giant string runs past
both ``memory_limit`` and the deadline, docs/query-safety.md) is bounded here: no function
that grows its output beyond its inputs is allowed (repeat, lpad, string_split, range, list(),
string_agg, hex, ...), list and struct constructors take constants only, casts go to scalar
types only, and the arguments of all concat / ``||`` calls together are capped, so a string
can grow at most a small constant factor over the longest input (a column value, or a literal
and parameter of at most ``max_string_literal`` / ``max_param_string`` characters).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import duckdb

from mamamia._errors import QueryRejected, QueryTooLarge

from ._allowlist import ALLOWED_FUNCTIONS, LOC, PARAM_NAME, TABLE_NAME
from ._query_limits import QueryLimits
from ._walk import Node, QueryWalker

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CheckedQuery",
    "ParamValue",
    "check_params",
    "check_query",
    "check_select",
    "same_tree",
    "strip_statement",
    "where_to_sql",
]

ParamScalar = str | int | float | bool | None
ParamValue = ParamScalar | list[ParamScalar]

_DEFAULT_LIMITS: Final = QueryLimits()
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class CheckedQuery:
    """A query that passed the guard: its text, DuckDB's tree of it, and what it refers to."""

    #: the query text as given (trailing whitespace removed); this is what the engine runs
    sql: str
    #: DuckDB's parsed tree of the single statement (``json_serialize_sql``'s ``node``)
    node: Node
    #: names of the ``$name`` parameters the query uses
    param_names: frozenset[str]
    #: catalog tables the query reads (lower case)
    tables: frozenset[str]


# --------------------------------------------------------------------------------------------
# parsing


class _Parser:
    """A bare in-memory DuckDB used only to parse; one lock, since a connection is not thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = duckdb.connect(
                ":memory:",
                config={
                    "enable_external_access": False,
                    "autoload_known_extensions": False,
                    "autoinstall_known_extensions": False,
                    "allow_community_extensions": False,
                    "python_enable_replacements": False,
                    "temp_directory": "",
                    "threads": 1,
                    "memory_limit": "256MB",
                },
            )
            con.execute("SET lock_configuration = true")
            self._con = con
        return self._con

    def serialize(self, sql: str) -> str:
        with self._lock:
            row = self._connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        if row is None or not isinstance(row[0], str):
            raise QueryRejected("the query could not be parsed", rule="parse")
        return row[0]


_PARSER: Final = _Parser()


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scrub(message: str) -> str:
    """First line of a DuckDB parser message, without anything that looks like a path."""
    first = message.strip().splitlines()[0] if message.strip() else "syntax error"
    first = re.sub(r"(?:[A-Za-z]:)?[/\\][^\s'\"]*", "<path>", first)
    return first[:300]


def _parse(sql: str, limits: QueryLimits) -> Node:
    """Parse ``sql`` with DuckDB; return the single statement's tree or raise."""
    if not isinstance(sql, str):
        raise QueryRejected("the query must be a string", rule="type")
    if len(sql) > limits.max_query_chars:
        raise QueryTooLarge(
            f"the query is {len(sql)} characters long; the limit is {limits.max_query_chars}",
            rule="size",
        )
    if "\x00" in sql:
        raise QueryRejected("the query contains a NUL character", rule="parse")
    if not _utf8(sql):
        raise QueryRejected("the query is not valid Unicode (lone surrogate)", rule="parse")
    if not sql.strip():
        raise QueryRejected("the query is empty", rule="parse")
    try:
        text = _PARSER.serialize(sql)
    except duckdb.Error as exc:
        raise QueryRejected(
            f"the query could not be parsed: {_scrub(str(exc))}", rule="parse"
        ) from None
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise QueryTooLarge("the query is nested too deeply", rule="depth") from None
    if not isinstance(parsed, dict):
        raise QueryRejected("the query could not be parsed", rule="parse")
    if parsed.get("error"):
        kind = str(parsed.get("error_type", ""))
        msg = str(parsed.get("error_message", ""))
        if "Only SELECT" in msg:
            raise QueryRejected(
                "only SELECT queries are allowed (no COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, "
                "EXPORT, CREATE, INSERT, EXPLAIN, PIVOT, ...)",
                rule="statement",
            )
        if "depth" in msg.lower():
            raise QueryTooLarge(
                "the query is nested too deeply (DuckDB's expression depth limit)", rule="depth"
            )
        raise QueryRejected(
            f"the query could not be parsed ({kind}): {_scrub(msg)}".replace(" ()", ""),
            rule="parse",
        )
    statements = parsed.get("statements")
    if not isinstance(statements, list) or not statements:
        raise QueryRejected("the query holds no statement", rule="statement")
    if len(statements) != 1:
        raise QueryRejected(
            f"exactly one SELECT statement is allowed; the query holds {len(statements)}",
            rule="statement",
        )
    statement = statements[0]
    if not isinstance(statement, dict) or not isinstance(statement.get("node"), dict):
        raise QueryRejected("the query could not be parsed", rule="parse")
    return statement


# --------------------------------------------------------------------------------------------
# public API


def _allowed(allowed_tables: Iterable[str]) -> frozenset[str]:
    out = set()
    for t in allowed_tables:
        if not isinstance(t, str) or not TABLE_NAME.match(t):
            raise ValueError(f"allowed table name {t!r} is not a plain identifier")
        out.add(t.lower())
    if not out:
        raise ValueError("allowed_tables is empty")
    return frozenset(out)


def check_query(
    sql: str, allowed_tables: Iterable[str], limits: QueryLimits = _DEFAULT_LIMITS
) -> CheckedQuery:
    """Check ``sql`` against the guard; return it with its tree, or raise.

    Raises :class:`QueryRejected` (not one SELECT, a table or function outside the allowlist,
    a recursive CTE, a lambda, a positional parameter, ...) or :class:`QueryTooLarge` (query
    text, tree size or depth, IN list, literal, concatenation over a limit).
    """
    allowed = _allowed(allowed_tables)
    statement = _parse(sql, limits)
    walker = QueryWalker(allowed, limits)
    walker.param_map(statement.get("named_param_map"))
    walker.query(statement["node"], frozenset(), 0)
    return CheckedQuery(
        sql=sql.rstrip(),
        node=statement["node"],
        param_names=frozenset(walker.params),
        tables=frozenset(walker.tables),
    )


def check_select(sql: str, limits: QueryLimits = _DEFAULT_LIMITS) -> CheckedQuery:
    """The trusted check: ``sql`` must be one SELECT (so it cannot change the database), with
    ``$name`` parameters; tables and functions are not checked (a local ``guard=False``)."""
    statement = _parse(sql, limits)
    walker = QueryWalker(frozenset({"cases"}), limits)
    walker.param_map(statement.get("named_param_map"))
    return CheckedQuery(
        sql=sql.rstrip(),
        node=statement["node"],
        param_names=frozenset(walker.params),
        tables=frozenset(),
    )


def _without_locations(node: object) -> object:
    if isinstance(node, dict):
        return {k: _without_locations(v) for k, v in node.items() if k not in LOC - {"alias"}}
    if isinstance(node, list):
        return [_without_locations(v) for v in node]
    return node


def same_tree(a: object, b: object) -> bool:
    """Whether two parsed trees are equal, ignoring where in the text each node came from."""
    return _without_locations(a) == _without_locations(b)


def where_to_sql(
    where: str,
    allowed_tables: Iterable[str] | None = None,
    *,
    table: str = "cases",
    limits: QueryLimits = _DEFAULT_LIMITS,
) -> str:
    """Build ``SELECT * FROM <table> WHERE (<where>)`` from a WHERE expression, checked.

    ``where`` must be one boolean expression over ``table`` (subqueries over the other
    ``allowed_tables`` are fine). The composed query is parsed again and must still be exactly
    ``SELECT * FROM <table> WHERE <expr>``, so a body such as ``1) UNION SELECT ... (`` or
    ``1) ORDER BY ... --`` is rejected. Returns the SQL to pass to the engine.
    """
    if not isinstance(table, str) or not TABLE_NAME.match(table):
        raise ValueError(f"table {table!r} is not a plain identifier")
    allowed = _allowed(allowed_tables) if allowed_tables is not None else frozenset()
    allowed |= {table.lower()}
    if not isinstance(where, str) or not where.strip():
        raise QueryRejected("the where expression is empty", rule="where")
    # The body goes on its own lines so that a trailing -- comment cannot swallow the ")".
    sql = f'SELECT * FROM "{table}" WHERE (\n{where}\n)'
    checked = check_query(sql, allowed, limits)
    n = checked.node
    star = n.get("select_list")
    ref = n.get("from_table")
    plain = (
        n.get("type") == "SELECT_NODE"
        and not n.get("modifiers")
        and not (n.get("cte_map") or {}).get("map")
        and isinstance(star, list)
        and len(star) == 1
        and same_tree(star[0], _plain_star())
        and isinstance(ref, dict)
        and ref.get("type") == "BASE_TABLE"
        and str(ref.get("table_name", "")).lower() == table.lower()
        and not ref.get("schema_name")
        and not ref.get("alias")
        and n.get("where_clause") is not None
        and not n.get("group_expressions")
        and not n.get("group_sets")
        and n.get("having") is None
        and n.get("qualify") is None
    )
    if not plain:
        raise QueryRejected(
            "the where parameter must be a single boolean expression (no closing parenthesis "
            "followed by UNION, ORDER BY, GROUP BY, LIMIT, ...)",
            rule="where",
        )
    return sql


def _plain_star() -> Node:
    return {
        "class": "STAR",
        "type": "STAR",
        "alias": "",
        "relation_name": "",
        "exclude_list": [],
        "replace_list": [],
        "columns": False,
        "expr": None,
        "qualified_exclude_list": [],
        "rename_list": [],
    }


def _check_scalar(name: str, value: object, limits: QueryLimits) -> ParamScalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise QueryRejected(
                f"parameter ${name} is outside the 64-bit integer range", rule="parameter"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryRejected(f"parameter ${name} must be a finite number", rule="parameter")
        return value
    if isinstance(value, str):
        if len(value) > limits.max_param_string:
            raise QueryTooLarge(
                f"parameter ${name} is {len(value)} characters long; the limit is "
                f"{limits.max_param_string}",
                rule="parameter",
            )
        if "\x00" in value or not _utf8(value):
            raise QueryRejected(
                f"parameter ${name} contains a NUL character or invalid Unicode", rule="parameter"
            )
        return value
    raise QueryRejected(
        f"parameter ${name} has type {type(value).__name__}; use a string, number, boolean, "
        "null or a list of those",
        rule="parameter",
    )


def check_params(
    checked: CheckedQuery,
    params: Mapping[str, object] | None,
    limits: QueryLimits = _DEFAULT_LIMITS,
) -> dict[str, ParamValue]:
    """Validate ``params`` for ``checked``: the same names the query uses, and plain values."""
    given: Mapping[str, object] = params or {}
    if not isinstance(given, Mapping):
        raise QueryRejected("params must be an object of name: value", rule="parameter")
    if len(given) > limits.max_params:
        raise QueryTooLarge(
            f"{len(given)} parameters given; the limit is {limits.max_params}", rule="parameter"
        )
    out: dict[str, ParamValue] = {}
    for raw_name, value in given.items():
        if not isinstance(raw_name, str) or not PARAM_NAME.match(raw_name.removeprefix("$")):
            raise QueryRejected(
                f"parameter name {str(raw_name)[:64]!r} is not valid (letters, digits, _)",
                rule="parameter",
            )
        name = raw_name.removeprefix("$")
        if name in out:
            raise QueryRejected(f"parameter ${name} is given twice", rule="parameter")
        if isinstance(value, (list, tuple)):
            if len(value) > limits.max_param_list:
                raise QueryTooLarge(
                    f"parameter ${name} has {len(value)} items; the limit is "
                    f"{limits.max_param_list}",
                    rule="parameter",
                )
            items = [_check_scalar(name, v, limits) for v in value]
            kinds = {type(v) for v in items if v is not None}
            if len(kinds - {int, float}) > 1 or (kinds & {int, float} and kinds - {int, float}):
                raise QueryRejected(
                    f"parameter ${name} mixes value types; a list must hold one type",
                    rule="parameter",
                )
            out[name] = items
        else:
            out[name] = _check_scalar(name, value, limits)
    missing = sorted(checked.param_names - set(out))
    unknown = sorted(set(out) - checked.param_names)
    if missing:
        raise QueryRejected(
            "missing value for parameter " + ", ".join(f"${m}" for m in missing), rule="parameter"
        )
    if unknown:
        raise QueryRejected(
            "the query does not use parameter " + ", ".join(f"${u}" for u in unknown),
            rule="parameter",
        )
    return out


def strip_statement(sql: str) -> str:
    """``sql`` without trailing comments and semicolons (found by DuckDB's own tokenizer)."""
    cut = len(sql)
    try:
        tokens = list(duckdb.tokenize(sql))
    except duckdb.Error:
        return sql.rstrip()
    for pos, kind in reversed(tokens):
        if kind == duckdb.token_type.comment or (
            kind == duckdb.token_type.operator and sql[pos : pos + 1] == ";"
        ):
            cut = pos
            continue
        break
    return sql[:cut].rstrip()
