"""Limits of the SQL guard and of the server's engine: one frozen value, set from settings."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["QueryLimits"]

_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Every bound the guard and the server's query engine enforce.

    The defaults suit a catalog of a few thousand cases on a small server. See
    docs/query-safety.md for why each one exists.
    """

    #: most rows one answer returns (the largest ``limit``)
    max_rows: int = 10_000
    #: wall-clock deadline of one statement, ``SET GLOBAL max_execution_time`` (ms)
    time_limit_ms: int = 5_000
    #: DuckDB ``memory_limit`` of the whole engine, e.g. ``"1GB"``
    memory_limit: str = "1GB"
    #: DuckDB ``threads`` of the whole engine
    threads: int = 2
    #: longest query text accepted (characters); bounds parse and bind time
    max_query_chars: int = 20_000
    #: most nodes in the parsed syntax tree
    max_ast_nodes: int = 4_000
    #: deepest nesting of the syntax tree (expressions inside expressions, subqueries)
    max_depth: int = 64
    #: most literals in one ``x IN (...)`` list
    max_in_list: int = 1_000
    #: longest string literal in the query (characters)
    max_string_literal: int = 1_000
    #: most table references (FROM items, joins, subqueries) in one query
    max_table_refs: int = 16
    #: most arguments over all concat / ``||`` / concat_ws calls (bounds string growth)
    max_concat_args: int = 8
    #: most grouping sets (CUBE / ROLLUP / GROUPING SETS)
    max_grouping_sets: int = 64
    #: most parameters in one request
    max_params: int = 64
    #: longest string parameter (characters)
    max_param_string: int = 1_000
    #: most items in one list parameter
    max_param_list: int = 1_000

    def __post_init__(self) -> None:
        for name in (
            "max_rows",
            "time_limit_ms",
            "threads",
            "max_query_chars",
            "max_ast_nodes",
            "max_depth",
            "max_in_list",
            "max_string_literal",
            "max_table_refs",
            "max_concat_args",
            "max_grouping_sets",
            "max_params",
            "max_param_string",
            "max_param_list",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"QueryLimits.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.memory_limit, str) or not _MEMORY.match(self.memory_limit.strip()):
            raise ValueError(
                f"QueryLimits.memory_limit must look like '1GB' or '512MiB', got {self.memory_limit!r}"
            )
