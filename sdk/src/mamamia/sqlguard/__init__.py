"""The SQL guard: what a query may do, checked on DuckDB's own parse tree.

One guard for the whole project: the server runs it on every query it receives, and a local
catalog (``mamamia.open``) runs it on every ``sql``/``cohort`` call unless opened with
``guard=False`` by a user who trusts the SQL they run. A query must be one SELECT over the
catalog's tables (and tables registered with ``Catalog.register``), using allowed functions,
within the size caps of :class:`QueryLimits`. See docs/query-safety.md.
"""

from __future__ import annotations

from ._allowlist import ALLOWED_FUNCTIONS
from ._guard import (
    CheckedQuery,
    ParamValue,
    check_params,
    check_query,
    check_select,
    same_tree,
    strip_statement,
    where_to_sql,
)
from ._messages import explain, translate
from ._query_limits import QueryLimits
from ._valuesets import ValueSetWarning, value_sets, value_warnings

__all__ = [
    "ALLOWED_FUNCTIONS",
    "CheckedQuery",
    "ParamValue",
    "QueryLimits",
    "ValueSetWarning",
    "check_params",
    "check_query",
    "check_select",
    "explain",
    "same_tree",
    "strip_statement",
    "translate",
    "value_sets",
    "value_warnings",
    "where_to_sql",
]
