"""The SQL guard: a query must be one SELECT over the catalog's tables, using allowed functions only.

The query is parsed by DuckDB itself (``SELECT json_serialize_sql(?)`` on a bare in-memory
connection with external access off), so the tree checked here is the tree the engine runs:
there is no second parser to disagree with. The walk is an allowlist that fails closed: every
node type, every key of a node, every function and every cast target must be known, or the
query is rejected. That also keeps a future DuckDB that adds syntax from slipping it through.

What DuckDB cannot bound by itself (a scalar function that builds a giant string runs past
both ``memory_limit`` and the deadline, notes/reliability.md §1.4) is bounded here: no function
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
from typing import Any, Final

import duckdb

from ._errors import QueryRejected, QueryTooLarge
from ._limits import QueryLimits

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CheckedQuery",
    "ParamValue",
    "check_params",
    "check_query",
    "where_to_sql",
]

Node = dict[str, Any]
ParamScalar = str | int | float | bool | None
ParamValue = ParamScalar | list[ParamScalar]

_DEFAULT_LIMITS: Final = QueryLimits()
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_INT64 = (-(2**63), 2**63 - 1)

# name -> (min args, max args). Names are DuckDB's names after parsing: LIKE is ``~~``,
# ``x IN $list`` is ``contains``, EXTRACT is ``date_part``, INTERVAL 1 DAY is ``to_days``.
_VARIADIC: Final = 64
_SCALARS: Final[dict[str, tuple[int, int]]] = {
    # arithmetic operators and maths
    "+": (1, 2),
    "-": (1, 2),
    "*": (2, 2),
    "/": (2, 2),
    "//": (2, 2),
    "%": (2, 2),
    "^": (2, 2),
    "**": (2, 2),
    "@": (1, 1),
    "abs": (1, 1),
    "sign": (1, 1),
    "round": (1, 2),
    "floor": (1, 1),
    "ceil": (1, 1),
    "ceiling": (1, 1),
    "trunc": (1, 2),
    "sqrt": (1, 1),
    "cbrt": (1, 1),
    "ln": (1, 1),
    "log": (1, 2),
    "log2": (1, 1),
    "log10": (1, 1),
    "exp": (1, 1),
    "pow": (2, 2),
    "power": (2, 2),
    "mod": (2, 2),
    "pi": (0, 0),
    "degrees": (1, 1),
    "radians": (1, 1),
    "isnan": (1, 1),
    "isinf": (1, 1),
    "isfinite": (1, 1),
    "greatest": (1, _VARIADIC),
    "least": (1, _VARIADIC),
    # conditionals
    "if": (3, 3),
    "nullif": (2, 2),
    "typeof": (1, 1),
    # strings whose output is never longer than their input (a few bytes aside)
    "lower": (1, 1),
    "upper": (1, 1),
    "lcase": (1, 1),
    "ucase": (1, 1),
    "length": (1, 1),
    "len": (1, 1),
    "strlen": (1, 1),
    "char_length": (1, 1),
    "character_length": (1, 1),
    "starts_with": (2, 2),
    "^@": (2, 2),
    "ends_with": (2, 2),
    "prefix": (2, 2),
    "suffix": (2, 2),
    "contains": (2, 2),
    "strpos": (2, 2),
    "instr": (2, 2),
    "position": (2, 2),
    "substring": (2, 3),
    "substr": (2, 3),
    "left": (2, 2),
    "right": (2, 2),
    "trim": (1, 2),
    "ltrim": (1, 2),
    "rtrim": (1, 2),
    "reverse": (1, 1),
    "split_part": (3, 3),
    "strip_accents": (1, 1),
    "ascii": (1, 1),
    "~~": (2, 2),
    "!~~": (2, 2),
    "~~*": (2, 2),
    "!~~*": (2, 2),
    "like_escape": (3, 3),
    "not_like_escape": (3, 3),
    "ilike_escape": (3, 3),
    "not_ilike_escape": (3, 3),
    # RE2 matches in linear time; the pattern is bounded by max_string_literal
    "regexp_matches": (2, 3),
    "regexp_full_match": (2, 3),
    # a substring of the input (or a struct of them, with a constant list of group names)
    "regexp_extract": (2, 4),
    # concatenation: allowed, but their arguments are counted (max_concat_args)
    "concat": (1, _VARIADIC),
    "concat_ws": (2, _VARIADIC),
    "||": (2, 2),
    # lists (list columns, list parameters)
    "list_contains": (2, 2),
    "list_has": (2, 2),
    "array_contains": (2, 2),
    "array_has": (2, 2),
    "list_has_any": (2, 2),
    "array_has_any": (2, 2),
    "list_has_all": (2, 2),
    "array_has_all": (2, 2),
    "list_position": (2, 2),
    "list_indexof": (2, 2),
    "array_position": (2, 2),
    "array_indexof": (2, 2),
    "list_extract": (2, 2),
    "list_element": (2, 2),
    "array_extract": (2, 2),
    "array_length": (1, 2),
    # reorder or thin a list: never longer than it
    "list_sort": (1, 3),
    "array_sort": (1, 3),
    "list_reverse_sort": (1, 2),
    "list_distinct": (1, 1),
    "array_distinct": (1, 1),
    # one row per list item; the lists are table values or constants, so bounded by the data
    # (``x = ANY(list)`` parses into it)
    "unnest": (1, 1),
    # constructors: constants only (see _CONSTANT_ONLY)
    "list_value": (0, _VARIADIC),
    "struct_pack": (1, _VARIADIC),
    # dates and times
    "date_part": (2, 2),
    "datepart": (2, 2),
    "date_trunc": (2, 2),
    "datetrunc": (2, 2),
    "date_diff": (3, 3),
    "datediff": (3, 3),
    "date_sub": (3, 3),
    "datesub": (3, 3),
    "year": (1, 1),
    "month": (1, 1),
    "day": (1, 1),
    "dayofmonth": (1, 1),
    "dayofweek": (1, 1),
    "dayofyear": (1, 1),
    "week": (1, 1),
    "weekofyear": (1, 1),
    "quarter": (1, 1),
    "epoch": (1, 1),
    "make_date": (1, 3),
    "current_date": (0, 0),
    "today": (0, 0),
    "age": (1, 2),
    "last_day": (1, 1),
    # each specifier expands to a few dozen characters at most and never to a '%'
    "strftime": (2, 2),
    "strptime": (2, 2),
    "to_years": (1, 1),
    "to_months": (1, 1),
    "to_weeks": (1, 1),
    "to_days": (1, 1),
    "to_hours": (1, 1),
    "to_minutes": (1, 1),
    "to_seconds": (1, 1),
}
_AGGREGATES: Final[dict[str, tuple[int, int]]] = {
    "count": (0, 1),
    "count_star": (0, 0),
    "sum": (1, 1),
    "avg": (1, 1),
    "mean": (1, 1),
    # min/max/arg_min/... with an extra ``n`` argument return a list of n items: not allowed
    "min": (1, 1),
    "max": (1, 1),
    "arg_min": (2, 2),
    "arg_max": (2, 2),
    "argmin": (2, 2),
    "argmax": (2, 2),
    "min_by": (2, 2),
    "max_by": (2, 2),
    "median": (1, 1),
    "quantile": (2, 2),
    # one argument in the WITHIN GROUP (ORDER BY x) form
    "quantile_cont": (1, 2),
    "quantile_disc": (1, 2),
    "approx_quantile": (2, 2),
    "mode": (0, 1),
    "stddev": (1, 1),
    "stddev_samp": (1, 1),
    "stddev_pop": (1, 1),
    "variance": (1, 1),
    "var_samp": (1, 1),
    "var_pop": (1, 1),
    "corr": (2, 2),
    "covar_pop": (2, 2),
    "covar_samp": (2, 2),
    "first": (1, 1),
    "last": (1, 1),
    "any_value": (1, 1),
    "bool_and": (1, 1),
    "bool_or": (1, 1),
    "count_if": (1, 1),
    "countif": (1, 1),
    "approx_count_distinct": (1, 1),
}
_WINDOWS: Final[dict[str, tuple[int, int]]] = {
    "row_number": (0, 0),
    "rank": (0, 0),
    "dense_rank": (0, 0),
    "percent_rank": (0, 0),
    "cume_dist": (0, 0),
    "ntile": (1, 1),
    "lag": (1, 3),
    "lead": (1, 3),
    "first_value": (1, 1),
    "last_value": (1, 1),
    "nth_value": (2, 2),
}
#: every function a query may call, by DuckDB name, with its (min, max) argument count
ALLOWED_FUNCTIONS: Final[Mapping[str, tuple[int, int]]] = {**_SCALARS, **_AGGREGATES, **_WINDOWS}
_CONCAT: Final = frozenset({"concat", "concat_ws", "||"})
_CONSTANT_ONLY: Final = frozenset({"list_value", "struct_pack"})

# Scalar cast targets only: casting to BLOB, JSON, BIT, MAP, STRUCT, UNION or a user type is
# refused (BLOB -> VARCHAR escapes bytes 4x; list and struct casts re-quote their items, and
# would let a chain of casts build new nested values).
_CAST_TYPES: Final = frozenset(
    {
        "boolean", "bool", "logical",
        "tinyint", "int1", "smallint", "int2", "short", "integer", "int", "int4", "signed",
        "bigint", "int8", "long", "hugeint", "int128",
        "utinyint", "usmallint", "uinteger", "ubigint", "uhugeint",
        "float", "float4", "real", "double", "float8", "decimal", "numeric",
        "varchar", "text", "string", "char", "bpchar", "nvarchar",
        "date", "time", "timestamp", "datetime", "timestamptz", "timestamp with time zone",
        "timestamp_s", "timestamp_ms", "timestamp_ns", "interval", "uuid",
    }
)  # fmt: skip
_COLLATIONS: Final = frozenset({"nocase", "noaccent", "nfc", "binary", "c", "posix"})
_OPERATORS: Final = frozenset(
    {
        "COMPARE_IN",
        "COMPARE_NOT_IN",
        "OPERATOR_NOT",
        "OPERATOR_IS_NULL",
        "OPERATOR_IS_NOT_NULL",
        "OPERATOR_COALESCE",
        "ARRAY_EXTRACT",
        "ARRAY_SLICE",
        "STRUCT_EXTRACT",
    }
)
_LOC: Final = frozenset({"query_location", "query_location_length", "alias"})
_EXPR_BASE: Final = frozenset({"class", "type"}) | _LOC
_FUNCTION_KEYS: Final = _EXPR_BASE | {
    "function_name", "schema", "catalog", "filter", "order_bys", "distinct", "is_operator",
    "export_state", "arguments", "qualified_name", "is_legacy_function_call",
}  # fmt: skip
_WINDOW_KEYS: Final = _EXPR_BASE | {
    "function_name", "schema", "catalog", "partitions", "orders", "start", "end", "start_expr",
    "end_expr", "offset_expr", "default_expr", "ignore_nulls", "filter_expr", "exclude_clause",
    "distinct", "arg_orders", "has_ignore_nulls", "arguments", "qualified_name",
    "is_legacy_function_call",
}  # fmt: skip
_SELECT_KEYS: Final = frozenset(
    {
        "type", "modifiers", "cte_map", "select_list", "from_table", "where_clause",
        "group_expressions", "group_sets", "aggregate_handling", "having", "sample", "qualify",
    }
)  # fmt: skip
_SETOP_KEYS: Final = frozenset(
    {"type", "modifiers", "cte_map", "setop_type", "left", "right", "setop_all", "children"}
)
_CTE_KEYS: Final = frozenset(
    {"aliases", "materialized", "key_targets", "payload_aggregates", "query_node"}
)
_BASE_TABLE_KEYS: Final = _LOC | {
    "type", "sample", "schema_name", "table_name", "column_name_alias", "catalog_name",
    "at_clause", "qualified_name",
}  # fmt: skip
_JOIN_KEYS: Final = _LOC | {
    "type", "sample", "left", "right", "condition", "join_type", "ref_type", "using_columns",
    "delim_flipped", "duplicate_eliminated_columns", "is_implicit", "nearest_approx",
    "nearest_count", "nearest_order_type", "ranking_expression",
}  # fmt: skip
_SUBQUERY_REF_KEYS: Final = _LOC | {"type", "sample", "subquery", "column_name_alias"}
_EMPTY_KEYS: Final = _LOC | {"type", "sample"}
_STAR_KEYS: Final = _EXPR_BASE | {
    "relation_name", "exclude_list", "replace_list", "columns", "expr",
    "qualified_exclude_list", "rename_list",
}  # fmt: skip


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
# the walk


def _reject(message: str, rule: str = "construct") -> QueryRejected:
    return QueryRejected(message, rule=rule)


class _Walker:
    def __init__(self, allowed_tables: frozenset[str], limits: QueryLimits) -> None:
        self.allowed = allowed_tables
        self.limits = limits
        self.nodes = 0
        self.table_refs = 0
        self.concat_args = 0
        self.params: set[str] = set()
        self.tables: set[str] = set()

    # -- helpers --------------------------------------------------------------------------
    def _enter(self, node: object, depth: int, what: str) -> Node:
        if not isinstance(node, dict):
            raise _reject(f"unexpected {what} in the parsed query")
        self.nodes += 1
        if self.nodes > self.limits.max_ast_nodes:
            raise QueryTooLarge(
                f"the query has more than {self.limits.max_ast_nodes} syntax nodes", rule="size"
            )
        if depth > self.limits.max_depth:
            raise QueryTooLarge(
                f"the query is nested deeper than {self.limits.max_depth} levels", rule="depth"
            )
        return node

    @staticmethod
    def _keys(node: Node, allowed: frozenset[str], what: str) -> None:
        extra = set(node) - allowed
        if extra:
            raise _reject(f"unsupported SQL construct in {what}: {sorted(extra)[0]}")

    @staticmethod
    def _list(value: object, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _reject(f"unexpected {what} in the parsed query")
        return value

    def _opt_expr(self, value: object, scope: frozenset[str], depth: int) -> None:
        if value is not None:
            self.expr(value, scope, depth)

    # -- query nodes ----------------------------------------------------------------------
    def query(self, node: object, scope: frozenset[str], depth: int) -> None:
        n = self._enter(node, depth, "query")
        kind = n.get("type")
        if kind == "RECURSIVE_CTE_NODE":
            raise _reject("recursive CTEs (WITH RECURSIVE) are not allowed", "recursive")
        scope = self._ctes(n.get("cte_map"), scope, depth)
        if kind == "SELECT_NODE":
            self._keys(n, _SELECT_KEYS, "SELECT")
            if n.get("sample") is not None:
                raise _reject("USING SAMPLE / TABLESAMPLE is not allowed", "sample")
            self.table(n.get("from_table"), scope, depth + 1)
            for e in self._list(n.get("select_list"), "select list"):
                self.expr(e, scope, depth + 1)
            self._opt_expr(n.get("where_clause"), scope, depth + 1)
            for e in self._list(n.get("group_expressions"), "GROUP BY"):
                self.expr(e, scope, depth + 1)
            sets = self._list(n.get("group_sets"), "GROUP BY")
            if len(sets) > self.limits.max_grouping_sets:
                raise QueryTooLarge(
                    f"the query has {len(sets)} grouping sets; the limit is "
                    f"{self.limits.max_grouping_sets}",
                    rule="size",
                )
            self._opt_expr(n.get("having"), scope, depth + 1)
            self._opt_expr(n.get("qualify"), scope, depth + 1)
        elif kind == "SET_OPERATION_NODE":
            self._keys(n, _SETOP_KEYS, "UNION/INTERSECT/EXCEPT")
            children = self._list(n.get("children"), "set operation")
            children += [c for c in (n.get("left"), n.get("right")) if c is not None]
            if not children:
                raise _reject("empty set operation")
            for child in children:
                self.query(child, scope, depth + 1)
        else:
            raise _reject(f"unsupported query form {kind!s}")
        self._modifiers(n.get("modifiers"), scope, depth + 1)

    def _ctes(self, cte_map: object, scope: frozenset[str], depth: int) -> frozenset[str]:
        if cte_map is None:
            return scope
        if not isinstance(cte_map, dict) or set(cte_map) - {"map"}:
            raise _reject("unexpected WITH clause in the parsed query")
        visible = set(scope)
        for entry in self._list(cte_map.get("map"), "WITH clause"):
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise _reject("unexpected WITH clause in the parsed query")
            value = entry.get("value")
            if not isinstance(value, dict):
                raise _reject("unexpected WITH clause in the parsed query")
            self._keys(value, _CTE_KEYS, "WITH")
            if value.get("key_targets") or value.get("payload_aggregates"):
                raise _reject("USING KEY in a WITH clause is not allowed", "recursive")
            # A CTE body sees the CTEs before it, not itself: its own name there is a table.
            self.query(value.get("query_node"), frozenset(visible), depth + 1)
            visible.add(entry["key"])
        return frozenset(visible)

    def _modifiers(self, mods: object, scope: frozenset[str], depth: int) -> None:
        for m in self._list(mods, "modifier"):
            mod = self._enter(m, depth, "modifier")
            kind = mod.get("type")
            if kind == "ORDER_MODIFIER":
                self._orders(mod, scope, depth)
            elif kind in ("LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER"):
                self._keys(mod, frozenset({"type", "limit", "offset", "limit_type"}), "LIMIT")
                self._opt_expr(mod.get("limit"), scope, depth + 1)
                self._opt_expr(mod.get("offset"), scope, depth + 1)
            elif kind == "DISTINCT_MODIFIER":
                self._keys(mod, frozenset({"type", "distinct_on_targets"}), "DISTINCT")
                for e in self._list(mod.get("distinct_on_targets"), "DISTINCT ON"):
                    self.expr(e, scope, depth + 1)
            else:
                raise _reject(f"unsupported query modifier {kind!s}")

    def _orders(self, mod: Node, scope: frozenset[str], depth: int) -> None:
        self._keys(mod, frozenset({"type", "orders"}), "ORDER BY")
        for o in self._list(mod.get("orders"), "ORDER BY"):
            self._order(o, scope, depth + 1)

    def _order(self, o: object, scope: frozenset[str], depth: int) -> None:
        order = self._enter(o, depth, "ORDER BY")
        self._keys(order, frozenset({"type", "null_order", "expression"}), "ORDER BY")
        self.expr(order.get("expression"), scope, depth + 1)

    # -- table references -----------------------------------------------------------------
    def table(self, ref: object, scope: frozenset[str], depth: int) -> None:
        r = self._enter(ref, depth, "FROM item")
        kind = r.get("type")
        if r.get("sample") is not None:
            raise _reject("USING SAMPLE / TABLESAMPLE is not allowed", "sample")
        if kind == "EMPTY":
            self._keys(r, _EMPTY_KEYS, "FROM")
            return
        self.table_refs += 1
        if self.table_refs > self.limits.max_table_refs:
            raise QueryTooLarge(
                f"the query has more than {self.limits.max_table_refs} FROM items and joins",
                rule="size",
            )
        if kind == "BASE_TABLE":
            self._base_table(r, scope)
        elif kind == "JOIN":
            self._keys(r, _JOIN_KEYS, "JOIN")
            if r.get("ranking_expression") is not None:
                raise _reject("this join form is not allowed", "join")
            self.table(r.get("left"), scope, depth + 1)
            self.table(r.get("right"), scope, depth + 1)
            self._opt_expr(r.get("condition"), scope, depth + 1)
        elif kind == "SUBQUERY":
            self._keys(r, _SUBQUERY_REF_KEYS, "subquery")
            self._subquery(r.get("subquery"), scope, depth + 1)
        elif kind == "TABLE_FUNCTION":
            name = "?"
            fn = r.get("function")
            if isinstance(fn, dict):
                name = str(fn.get("function_name", "?"))
            raise _reject(
                f"table functions such as {name}() are not allowed; query the catalog tables "
                f"({', '.join(sorted(self.allowed))}) by name",
                "table_function",
            )
        elif kind == "EXPRESSION_LIST":
            raise _reject("VALUES lists are not allowed; use a $parameter list", "values")
        elif kind == "SHOW_REF":
            raise _reject("DESCRIBE / SHOW / SUMMARIZE are not allowed", "statement")
        else:
            raise _reject(f"unsupported FROM item {kind!s}")

    def _base_table(self, r: Node, scope: frozenset[str]) -> None:
        self._keys(r, _BASE_TABLE_KEYS, "table reference")
        name = r.get("table_name")
        schema = r.get("schema_name") or ""
        catalog = r.get("catalog_name") or ""
        if not isinstance(name, str) or not isinstance(schema, str):
            raise _reject("unexpected table reference in the parsed query")
        if r.get("at_clause") is not None:
            raise _reject("AT (time travel) is not allowed", "table")
        if catalog or schema.lower() not in ("", "main"):
            raise _reject(
                "qualified table names (schema.table, catalog.schema.table) are not allowed; "
                f"use the catalog tables ({', '.join(sorted(self.allowed))}) by name",
                "table",
            )
        if not schema:
            if name in scope:
                return
            if any(name.casefold() == c.casefold() for c in scope):
                raise _reject(
                    f"table {name!r} differs from a WITH name only in case; spell it the same",
                    "table",
                )
        if name.lower() not in self.allowed:
            shown = name if _TABLE_NAME.match(name) else "(a name that is not a table)"
            raise _reject(
                f"unknown table {shown}; the tables are: {', '.join(sorted(self.allowed))}",
                "table",
            )
        self.tables.add(name.lower())

    def _subquery(self, sub: object, scope: frozenset[str], depth: int) -> None:
        if not isinstance(sub, dict) or set(sub) - {"node", "named_param_map"}:
            raise _reject("unexpected subquery in the parsed query")
        self._param_map(sub.get("named_param_map"))
        self.query(sub.get("node"), scope, depth)

    def _param_map(self, pmap: object) -> None:
        for item in self._list(pmap, "parameter"):
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                self._param(item["key"])
            else:
                raise _reject("unexpected parameter in the parsed query")

    def _param(self, name: str) -> None:
        if not _PARAM_NAME.match(name):
            raise _reject(
                "parameters must be named, as $name (letters, digits, _); positional ? and $1 "
                "are not supported",
                "parameter",
            )
        self.params.add(name)

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node: object, scope: frozenset[str], depth: int) -> None:
        e = self._enter(node, depth, "expression")
        cls = e.get("class")
        kind = e.get("type")
        d = depth + 1
        if cls == "COLUMN_REF":
            self._keys(e, _EXPR_BASE | {"column_names"}, "column")
            names = self._list(e.get("column_names"), "column")
            if not names or not all(isinstance(x, str) for x in names):
                raise _reject("unexpected column reference in the parsed query")
        elif cls == "CONSTANT":
            self._constant(e)
        elif cls == "PARAMETER":
            self._keys(e, _EXPR_BASE | {"identifier"}, "parameter")
            self._param(str(e.get("identifier")))
        elif cls == "FUNCTION":
            self._function(e, scope, d)
        elif cls == "WINDOW":
            self._window(e, scope, d)
        elif cls == "COMPARISON":
            self._keys(e, _EXPR_BASE | {"left", "right"}, "comparison")
            self.expr(e.get("left"), scope, d)
            self.expr(e.get("right"), scope, d)
        elif cls == "CONJUNCTION":
            self._keys(e, _EXPR_BASE | {"children"}, "AND/OR")
            for c in self._list(e.get("children"), "AND/OR"):
                self.expr(c, scope, d)
        elif cls == "OPERATOR":
            self._operator(e, scope, d)
        elif cls == "CASE":
            self._keys(e, _EXPR_BASE | {"case_checks", "else_expr"}, "CASE")
            for check in self._list(e.get("case_checks"), "CASE"):
                if not isinstance(check, dict) or set(check) - {"when_expr", "then_expr"}:
                    raise _reject("unexpected CASE in the parsed query")
                self.expr(check.get("when_expr"), scope, d)
                self.expr(check.get("then_expr"), scope, d)
            self._opt_expr(e.get("else_expr"), scope, d)
        elif cls == "CAST":
            self._keys(e, _EXPR_BASE | {"child", "type_expr", "try_cast"}, "CAST")
            self.expr(e.get("child"), scope, d)
            self._cast_type(e.get("type_expr"), d)
        elif cls == "BETWEEN":
            self._keys(e, _EXPR_BASE | {"input", "lower", "upper"}, "BETWEEN")
            for key in ("input", "lower", "upper"):
                self.expr(e.get(key), scope, d)
        elif cls == "STAR":
            self._star(e, scope, d)
        elif cls == "SUBQUERY":
            keys = _EXPR_BASE | {"subquery", "subquery_type", "child", "comparison_type"}
            self._keys(e, keys, "subquery")
            self._subquery(e.get("subquery"), scope, d)
            self._opt_expr(e.get("child"), scope, d)
        elif cls == "COLLATE":
            self._keys(e, _EXPR_BASE | {"child", "collation"}, "COLLATE")
            collation = str(e.get("collation", "")).lower()
            if any(part not in _COLLATIONS for part in collation.split(".")):
                raise _reject(f"collation {collation!r} is not allowed", "collation")
            self.expr(e.get("child"), scope, d)
        elif cls == "POSITIONAL_REFERENCE":
            self._keys(e, _EXPR_BASE | {"index"}, "positional reference")
        elif cls == "LAMBDA" or cls == "LAMBDA_REF":
            raise _reject("lambda functions are not allowed", "lambda")
        else:
            raise _reject(f"unsupported expression {kind or cls!s}")

    def _constant(self, e: Node) -> None:
        self._keys(e, _EXPR_BASE | {"literal"}, "constant")
        lit = e.get("literal")
        if not isinstance(lit, dict):
            # NULL and typed constants serialise differently; keep them small all the same
            if len(json.dumps(lit)) > self.limits.max_string_literal + 64:
                raise QueryTooLarge("a literal in the query is too long", rule="size")
            return
        text = lit.get("text")
        if isinstance(text, str) and len(text) > self.limits.max_string_literal:
            raise QueryTooLarge(
                f"a literal in the query is {len(text)} characters long; the limit is "
                f"{self.limits.max_string_literal} (pass long values as $parameters)",
                rule="size",
            )

    def _is_constant(self, node: object) -> bool:
        if not isinstance(node, dict):
            return False
        cls = node.get("class")
        if cls in ("CONSTANT", "PARAMETER"):
            return True
        if cls == "CAST":
            return self._is_constant(node.get("child"))
        if cls == "FUNCTION" and node.get("function_name") in ("-", "+", *_CONSTANT_ONLY):
            args = node.get("arguments")
            return isinstance(args, list) and all(
                isinstance(a, dict) and self._is_constant(a.get("expression")) for a in args
            )
        return False

    def _args(self, e: Node, what: str) -> list[Node]:
        out: list[Node] = []
        for a in self._list(e.get("arguments"), what):
            if not isinstance(a, dict) or set(a) - {"name", "expression"}:
                raise _reject(f"unexpected arguments of {what} in the parsed query")
            if a.get("name") and e.get("function_name") != "struct_pack":
                raise _reject(f"named arguments (name := value) of {what} are not allowed")
            out.append(a.get("expression"))  # type: ignore[arg-type]
        return out

    def _check_name(self, e: Node, table: Mapping[str, tuple[int, int]], kind: str) -> str:
        raw = e.get("function_name")
        if not isinstance(raw, str):
            raise _reject("unexpected function call in the parsed query")
        name = raw.lower()
        if e.get("schema") or e.get("catalog"):
            raise _reject(
                f"qualified function names are not allowed (write {name}(x), not x.{name}() "
                "or schema.function())",
                "function",
            )
        if name not in table:
            shown = raw if len(raw) <= 64 else raw[:64] + "..."
            raise _reject(f"{kind} {shown}() is not allowed in queries", "function")
        return name

    def _arity(self, name: str, n: int, bounds: tuple[int, int]) -> None:
        lo, hi = bounds
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise _reject(
                f"{name}() takes {want} argument{'' if hi == 1 else 's'} here, got {n}", "function"
            )

    def _function(self, e: Node, scope: frozenset[str], depth: int) -> None:
        self._keys(e, _FUNCTION_KEYS, "function call")
        name = self._check_name(e, ALLOWED_FUNCTIONS, "function")
        if e.get("export_state"):
            raise _reject("EXPORT_STATE is not allowed", "function")
        args = self._args(e, name + "()")
        self._arity(name, len(args), ALLOWED_FUNCTIONS[name])
        if name in _CONCAT:
            self.concat_args += len(args)
            if self.concat_args > self.limits.max_concat_args:
                raise QueryTooLarge(
                    f"the query concatenates more than {self.limits.max_concat_args} values "
                    "(concat, ||, concat_ws arguments together)",
                    rule="size",
                )
        if name in _CONSTANT_ONLY and not all(self._is_constant(a) for a in args):
            raise _reject(
                f"{name}() (a [list] or {{struct}} literal) may hold constants and $parameters "
                "only",
                "function",
            )
        for a in args:
            self.expr(a, scope, depth)
        self._opt_expr(e.get("filter"), scope, depth)
        order_bys = e.get("order_bys")
        if order_bys is not None:
            mod = self._enter(order_bys, depth, "ORDER BY")
            self._orders(mod, scope, depth)

    def _window(self, e: Node, scope: frozenset[str], depth: int) -> None:
        self._keys(e, _WINDOW_KEYS, "window function")
        name = self._check_name(e, {**_WINDOWS, **_AGGREGATES}, "window function")
        args = self._args(e, name + "()")
        self._arity(name, len(args), ALLOWED_FUNCTIONS[name])
        for a in args:
            self.expr(a, scope, depth)
        for key in ("partitions",):
            for p in self._list(e.get(key), "PARTITION BY"):
                self.expr(p, scope, depth)
        for key in ("orders", "arg_orders"):
            for o in self._list(e.get(key), "window ORDER BY"):
                self._order(o, scope, depth)
        for key in ("start_expr", "end_expr", "offset_expr", "default_expr", "filter_expr"):
            self._opt_expr(e.get(key), scope, depth)

    def _operator(self, e: Node, scope: frozenset[str], depth: int) -> None:
        self._keys(e, _EXPR_BASE | {"children"}, "operator")
        kind = e.get("type")
        if kind not in _OPERATORS:
            raise _reject(f"operator {kind!s} is not allowed", "operator")
        children = self._list(e.get("children"), "operator")
        if kind in ("COMPARE_IN", "COMPARE_NOT_IN") and len(children) - 1 > self.limits.max_in_list:
            raise QueryTooLarge(
                f"an IN list has {len(children) - 1} items; the limit is "
                f"{self.limits.max_in_list} (pass a $parameter list instead)",
                rule="size",
            )
        for c in children:
            self.expr(c, scope, depth)

    def _star(self, e: Node, scope: frozenset[str], depth: int) -> None:
        self._keys(e, _STAR_KEYS, "*")
        # ``columns`` alone is COLUMNS(*) or ORDER BY ALL; an ``expr`` is a regex or lambda.
        if e.get("expr") is not None:
            raise _reject("COLUMNS(...) with a pattern is not allowed; list the columns", "star")
        for item in self._list(e.get("replace_list"), "* REPLACE"):
            if not isinstance(item, dict):
                raise _reject("unexpected * REPLACE in the parsed query")
            self.expr(item.get("value"), scope, depth)

    def _cast_type(self, t: object, depth: int) -> None:
        node = self._enter(t, depth, "type")
        self._keys(
            node,
            _EXPR_BASE | {"catalog", "schema", "type_name", "children", "qualified_name"},
            "type",
        )
        name = str(node.get("type_name", "")).lower()
        if node.get("schema") or node.get("catalog"):
            raise _reject("qualified type names are not allowed", "cast")
        children = self._list(node.get("children"), "type")
        if name not in _CAST_TYPES:
            raise _reject(
                f"casts to {name.upper() or '?'} are not allowed; cast to a scalar type "
                "(INTEGER, DOUBLE, VARCHAR, DATE, ...)",
                "cast",
            )
        for c in children:  # DECIMAL(10, 2), VARCHAR(20): plain integer constants only
            if not (isinstance(c, dict) and c.get("class") == "CONSTANT"):
                raise _reject("type modifiers must be integer constants", "cast")


# --------------------------------------------------------------------------------------------
# public API


def _allowed(allowed_tables: Iterable[str]) -> frozenset[str]:
    out = set()
    for t in allowed_tables:
        if not isinstance(t, str) or not _TABLE_NAME.match(t):
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
    walker = _Walker(allowed, limits)
    walker._param_map(statement.get("named_param_map"))
    walker.query(statement["node"], frozenset(), 0)
    return CheckedQuery(
        sql=sql.rstrip(),
        node=statement["node"],
        param_names=frozenset(walker.params),
        tables=frozenset(walker.tables),
    )


def _without_locations(node: object) -> object:
    if isinstance(node, dict):
        return {k: _without_locations(v) for k, v in node.items() if k not in _LOC - {"alias"}}
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
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
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
        if not isinstance(raw_name, str) or not _PARAM_NAME.match(raw_name.removeprefix("$")):
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
