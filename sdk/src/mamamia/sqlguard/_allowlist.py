"""What the SQL guard lets through: functions, cast targets, operators and each node's keys.

The tables of ``_guard``'s allowlist, apart from the walk that applies them
(``_walk``), so that widening what a query may do is an edit here, reviewed on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "AGGREGATES",
    "ALLOWED_FUNCTIONS",
    "BASE_TABLE_KEYS",
    "CAST_TYPES",
    "COLLATIONS",
    "CONCAT",
    "CONSTANT_ONLY",
    "CTE_KEYS",
    "EMPTY_KEYS",
    "EXPR_BASE",
    "FUNCTION_KEYS",
    "JOIN_KEYS",
    "LOC",
    "OPERATORS",
    "PARAM_NAME",
    "SCALARS",
    "SELECT_KEYS",
    "SETOP_KEYS",
    "STAR_KEYS",
    "SUBQUERY_REF_KEYS",
    "TABLE_NAME",
    "VARIADIC",
    "WINDOWS",
    "WINDOW_KEYS",
]

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# name -> (min args, max args). Names are DuckDB's names after parsing: LIKE is ``~~``,
# ``x IN $list`` is ``contains``, EXTRACT is ``date_part``, INTERVAL 1 DAY is ``to_days``.
VARIADIC: Final = 64
SCALARS: Final[dict[str, tuple[int, int]]] = {
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
    "greatest": (1, VARIADIC),
    "least": (1, VARIADIC),
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
    "concat": (1, VARIADIC),
    "concat_ws": (2, VARIADIC),
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
    # constructors: constants only (see CONSTANT_ONLY)
    "list_value": (0, VARIADIC),
    "struct_pack": (1, VARIADIC),
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
AGGREGATES: Final[dict[str, tuple[int, int]]] = {
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
WINDOWS: Final[dict[str, tuple[int, int]]] = {
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
ALLOWED_FUNCTIONS: Final[Mapping[str, tuple[int, int]]] = {**SCALARS, **AGGREGATES, **WINDOWS}
CONCAT: Final = frozenset({"concat", "concat_ws", "||"})
CONSTANT_ONLY: Final = frozenset({"list_value", "struct_pack"})

# Scalar cast targets only: casting to BLOB, JSON, BIT, MAP, STRUCT, UNION or a user type is
# refused (BLOB -> VARCHAR escapes bytes 4x; list and struct casts re-quote their items, and
# would let a chain of casts build new nested values).
CAST_TYPES: Final = frozenset(
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
COLLATIONS: Final = frozenset({"nocase", "noaccent", "nfc", "binary", "c", "posix"})
OPERATORS: Final = frozenset(
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
LOC: Final = frozenset({"query_location", "query_location_length", "alias"})
EXPR_BASE: Final = frozenset({"class", "type"}) | LOC
FUNCTION_KEYS: Final = EXPR_BASE | {
    "function_name", "schema", "catalog", "filter", "order_bys", "distinct", "is_operator",
    "export_state", "arguments", "qualified_name", "is_legacy_function_call",
}  # fmt: skip
WINDOW_KEYS: Final = EXPR_BASE | {
    "function_name", "schema", "catalog", "partitions", "orders", "start", "end", "start_expr",
    "end_expr", "offset_expr", "default_expr", "ignore_nulls", "filter_expr", "exclude_clause",
    "distinct", "arg_orders", "has_ignore_nulls", "arguments", "qualified_name",
    "is_legacy_function_call",
}  # fmt: skip
SELECT_KEYS: Final = frozenset(
    {
        "type", "modifiers", "cte_map", "select_list", "from_table", "where_clause",
        "group_expressions", "group_sets", "aggregate_handling", "having", "sample", "qualify",
    }
)  # fmt: skip
SETOP_KEYS: Final = frozenset(
    {"type", "modifiers", "cte_map", "setop_type", "left", "right", "setop_all", "children"}
)
CTE_KEYS: Final = frozenset(
    {"aliases", "materialized", "key_targets", "payload_aggregates", "query_node"}
)
BASE_TABLE_KEYS: Final = LOC | {
    "type", "sample", "schema_name", "table_name", "column_name_alias", "catalog_name",
    "at_clause", "qualified_name",
}  # fmt: skip
JOIN_KEYS: Final = LOC | {
    "type", "sample", "left", "right", "condition", "join_type", "ref_type", "using_columns",
    "delim_flipped", "duplicate_eliminated_columns", "is_implicit", "nearest_approx",
    "nearest_count", "nearest_order_type", "ranking_expression",
}  # fmt: skip
SUBQUERY_REF_KEYS: Final = LOC | {"type", "sample", "subquery", "column_name_alias"}
EMPTY_KEYS: Final = LOC | {"type", "sample"}
STAR_KEYS: Final = EXPR_BASE | {
    "relation_name", "exclude_list", "replace_list", "columns", "expr",
    "qualified_exclude_list", "rename_list",
}  # fmt: skip
