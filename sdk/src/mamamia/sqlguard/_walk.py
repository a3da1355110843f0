"""The walk of the SQL guard: every node of DuckDB's parse tree checked against the allowlist.

Fails closed: a node type, a key of a node, a function or a cast target that is not in
``_allowlist`` rejects the query. ``_guard.check_query`` runs it over one statement.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mamamia._errors import QueryRejected, QueryTooLarge

from ._allowlist import (
    AGGREGATES,
    ALLOWED_FUNCTIONS,
    BASE_TABLE_KEYS,
    CAST_TYPES,
    COLLATIONS,
    CONCAT,
    CONSTANT_ONLY,
    CTE_KEYS,
    EMPTY_KEYS,
    EXPR_BASE,
    FUNCTION_KEYS,
    JOIN_KEYS,
    OPERATORS,
    PARAM_NAME,
    SELECT_KEYS,
    SETOP_KEYS,
    STAR_KEYS,
    SUBQUERY_REF_KEYS,
    TABLE_NAME,
    WINDOW_KEYS,
    WINDOWS,
)
from ._query_limits import QueryLimits

__all__ = ["Node", "QueryWalker", "reject"]

Node = dict[str, Any]


def reject(message: str, rule: str = "construct") -> QueryRejected:
    return QueryRejected(message, rule=rule)


class QueryWalker:
    """One statement's walk: counts nodes, table references and concat arguments against the
    limits, and collects the parameters and tables the query uses."""

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
            raise reject(f"unexpected {what} in the parsed query")
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
            raise reject(f"unsupported SQL construct in {what}: {sorted(extra)[0]}")

    @staticmethod
    def _list(value: object, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise reject(f"unexpected {what} in the parsed query")
        return value

    def _opt_expr(self, value: object, scope: frozenset[str], depth: int) -> None:
        if value is not None:
            self.expr(value, scope, depth)

    # -- query nodes ----------------------------------------------------------------------
    def query(self, node: object, scope: frozenset[str], depth: int) -> None:
        n = self._enter(node, depth, "query")
        kind = n.get("type")
        if kind == "RECURSIVE_CTE_NODE":
            raise reject("recursive CTEs (WITH RECURSIVE) are not allowed", "recursive")
        scope = self._ctes(n.get("cte_map"), scope, depth)
        if kind == "SELECT_NODE":
            self._keys(n, SELECT_KEYS, "SELECT")
            if n.get("sample") is not None:
                raise reject("USING SAMPLE / TABLESAMPLE is not allowed", "sample")
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
            self._keys(n, SETOP_KEYS, "UNION/INTERSECT/EXCEPT")
            children = self._list(n.get("children"), "set operation")
            children += [c for c in (n.get("left"), n.get("right")) if c is not None]
            if not children:
                raise reject("empty set operation")
            for child in children:
                self.query(child, scope, depth + 1)
        else:
            raise reject(f"unsupported query form {kind!s}")
        self._modifiers(n.get("modifiers"), scope, depth + 1)

    def _ctes(self, cte_map: object, scope: frozenset[str], depth: int) -> frozenset[str]:
        if cte_map is None:
            return scope
        if not isinstance(cte_map, dict) or set(cte_map) - {"map"}:
            raise reject("unexpected WITH clause in the parsed query")
        visible = set(scope)
        for entry in self._list(cte_map.get("map"), "WITH clause"):
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise reject("unexpected WITH clause in the parsed query")
            value = entry.get("value")
            if not isinstance(value, dict):
                raise reject("unexpected WITH clause in the parsed query")
            self._keys(value, CTE_KEYS, "WITH")
            if value.get("key_targets") or value.get("payload_aggregates"):
                raise reject("USING KEY in a WITH clause is not allowed", "recursive")
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
                raise reject(f"unsupported query modifier {kind!s}")

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
            raise reject("USING SAMPLE / TABLESAMPLE is not allowed", "sample")
        if kind == "EMPTY":
            self._keys(r, EMPTY_KEYS, "FROM")
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
            self._keys(r, JOIN_KEYS, "JOIN")
            if r.get("ranking_expression") is not None:
                raise reject("this join form is not allowed", "join")
            self.table(r.get("left"), scope, depth + 1)
            self.table(r.get("right"), scope, depth + 1)
            self._opt_expr(r.get("condition"), scope, depth + 1)
        elif kind == "SUBQUERY":
            self._keys(r, SUBQUERY_REF_KEYS, "subquery")
            self._subquery(r.get("subquery"), scope, depth + 1)
        elif kind == "TABLE_FUNCTION":
            name = "?"
            fn = r.get("function")
            if isinstance(fn, dict):
                name = str(fn.get("function_name", "?"))
            raise reject(
                f"table functions such as {name}() are not allowed; query the catalog tables "
                f"({', '.join(sorted(self.allowed))}) by name",
                "table_function",
            )
        elif kind == "EXPRESSION_LIST":
            raise reject("VALUES lists are not allowed; use a $parameter list", "values")
        elif kind == "SHOW_REF":
            raise reject("DESCRIBE / SHOW / SUMMARIZE are not allowed", "statement")
        else:
            raise reject(f"unsupported FROM item {kind!s}")

    def _base_table(self, r: Node, scope: frozenset[str]) -> None:
        self._keys(r, BASE_TABLE_KEYS, "table reference")
        name = r.get("table_name")
        schema = r.get("schema_name") or ""
        catalog = r.get("catalog_name") or ""
        if not isinstance(name, str) or not isinstance(schema, str):
            raise reject("unexpected table reference in the parsed query")
        if r.get("at_clause") is not None:
            raise reject("AT (time travel) is not allowed", "table")
        if catalog or schema.lower() not in ("", "main"):
            raise reject(
                "qualified table names (schema.table, catalog.schema.table) are not allowed; "
                f"use the catalog tables ({', '.join(sorted(self.allowed))}) by name",
                "table",
            )
        if not schema:
            if name in scope:
                return
            if any(name.casefold() == c.casefold() for c in scope):
                raise reject(
                    f"table {name!r} differs from a WITH name only in case; spell it the same",
                    "table",
                )
        if name.lower() not in self.allowed:
            shown = name if TABLE_NAME.match(name) else "(a name that is not a table)"
            raise reject(
                f"unknown table {shown}; the tables are: {', '.join(sorted(self.allowed))}",
                "table",
            )
        self.tables.add(name.lower())

    def _subquery(self, sub: object, scope: frozenset[str], depth: int) -> None:
        if not isinstance(sub, dict) or set(sub) - {"node", "named_param_map"}:
            raise reject("unexpected subquery in the parsed query")
        self.param_map(sub.get("named_param_map"))
        self.query(sub.get("node"), scope, depth)

    def param_map(self, pmap: object) -> None:
        """Check a statement's ``named_param_map`` (``$name`` parameters only) and note them."""
        for item in self._list(pmap, "parameter"):
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                self._param(item["key"])
            else:
                raise reject("unexpected parameter in the parsed query")

    def _param(self, name: str) -> None:
        if not PARAM_NAME.match(name):
            raise reject(
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
            self._keys(e, EXPR_BASE | {"column_names"}, "column")
            names = self._list(e.get("column_names"), "column")
            if not names or not all(isinstance(x, str) for x in names):
                raise reject("unexpected column reference in the parsed query")
        elif cls == "CONSTANT":
            self._constant(e)
        elif cls == "PARAMETER":
            self._keys(e, EXPR_BASE | {"identifier"}, "parameter")
            self._param(str(e.get("identifier")))
        elif cls == "FUNCTION":
            self._function(e, scope, d)
        elif cls == "WINDOW":
            self._window(e, scope, d)
        elif cls == "COMPARISON":
            self._keys(e, EXPR_BASE | {"left", "right"}, "comparison")
            self.expr(e.get("left"), scope, d)
            self.expr(e.get("right"), scope, d)
        elif cls == "CONJUNCTION":
            self._keys(e, EXPR_BASE | {"children"}, "AND/OR")
            for c in self._list(e.get("children"), "AND/OR"):
                self.expr(c, scope, d)
        elif cls == "OPERATOR":
            self._operator(e, scope, d)
        elif cls == "CASE":
            self._keys(e, EXPR_BASE | {"case_checks", "else_expr"}, "CASE")
            for check in self._list(e.get("case_checks"), "CASE"):
                if not isinstance(check, dict) or set(check) - {"when_expr", "then_expr"}:
                    raise reject("unexpected CASE in the parsed query")
                self.expr(check.get("when_expr"), scope, d)
                self.expr(check.get("then_expr"), scope, d)
            self._opt_expr(e.get("else_expr"), scope, d)
        elif cls == "CAST":
            self._keys(e, EXPR_BASE | {"child", "type_expr", "try_cast"}, "CAST")
            self.expr(e.get("child"), scope, d)
            self._cast_type(e.get("type_expr"), d)
        elif cls == "BETWEEN":
            self._keys(e, EXPR_BASE | {"input", "lower", "upper"}, "BETWEEN")
            for key in ("input", "lower", "upper"):
                self.expr(e.get(key), scope, d)
        elif cls == "STAR":
            self._star(e, scope, d)
        elif cls == "SUBQUERY":
            keys = EXPR_BASE | {"subquery", "subquery_type", "child", "comparison_type"}
            self._keys(e, keys, "subquery")
            self._subquery(e.get("subquery"), scope, d)
            self._opt_expr(e.get("child"), scope, d)
        elif cls == "COLLATE":
            self._keys(e, EXPR_BASE | {"child", "collation"}, "COLLATE")
            collation = str(e.get("collation", "")).lower()
            if any(part not in COLLATIONS for part in collation.split(".")):
                raise reject(f"collation {collation!r} is not allowed", "collation")
            self.expr(e.get("child"), scope, d)
        elif cls == "POSITIONAL_REFERENCE":
            self._keys(e, EXPR_BASE | {"index"}, "positional reference")
        elif cls == "LAMBDA" or cls == "LAMBDA_REF":
            raise reject("lambda functions are not allowed", "lambda")
        else:
            raise reject(f"unsupported expression {kind or cls!s}")

    def _constant(self, e: Node) -> None:
        self._keys(e, EXPR_BASE | {"literal"}, "constant")
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
        if cls == "FUNCTION" and node.get("function_name") in ("-", "+", *CONSTANT_ONLY):
            args = node.get("arguments")
            return isinstance(args, list) and all(
                isinstance(a, dict) and self._is_constant(a.get("expression")) for a in args
            )
        return False

    def _args(self, e: Node, what: str) -> list[Node]:
        out: list[Node] = []
        for a in self._list(e.get("arguments"), what):
            if not isinstance(a, dict) or set(a) - {"name", "expression"}:
                raise reject(f"unexpected arguments of {what} in the parsed query")
            if a.get("name") and e.get("function_name") != "struct_pack":
                raise reject(f"named arguments (name := value) of {what} are not allowed")
            out.append(a.get("expression"))  # type: ignore[arg-type]
        return out

    def _check_name(self, e: Node, table: Mapping[str, tuple[int, int]], kind: str) -> str:
        raw = e.get("function_name")
        if not isinstance(raw, str):
            raise reject("unexpected function call in the parsed query")
        name = raw.lower()
        if e.get("schema") or e.get("catalog"):
            raise reject(
                f"qualified function names are not allowed (write {name}(x), not x.{name}() "
                "or schema.function())",
                "function",
            )
        if name not in table:
            shown = raw if len(raw) <= 64 else raw[:64] + "..."
            raise reject(f"{kind} {shown}() is not allowed in queries", "function")
        return name

    def _arity(self, name: str, n: int, bounds: tuple[int, int]) -> None:
        lo, hi = bounds
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise reject(
                f"{name}() takes {want} argument{'' if hi == 1 else 's'} here, got {n}", "function"
            )

    def _function(self, e: Node, scope: frozenset[str], depth: int) -> None:
        self._keys(e, FUNCTION_KEYS, "function call")
        name = self._check_name(e, ALLOWED_FUNCTIONS, "function")
        if e.get("export_state"):
            raise reject("EXPORT_STATE is not allowed", "function")
        args = self._args(e, name + "()")
        self._arity(name, len(args), ALLOWED_FUNCTIONS[name])
        if name in CONCAT:
            self.concat_args += len(args)
            if self.concat_args > self.limits.max_concat_args:
                raise QueryTooLarge(
                    f"the query concatenates more than {self.limits.max_concat_args} values "
                    "(concat, ||, concat_ws arguments together)",
                    rule="size",
                )
        if name in CONSTANT_ONLY and not all(self._is_constant(a) for a in args):
            raise reject(
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
        self._keys(e, WINDOW_KEYS, "window function")
        name = self._check_name(e, {**WINDOWS, **AGGREGATES}, "window function")
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
        self._keys(e, EXPR_BASE | {"children"}, "operator")
        kind = e.get("type")
        if kind not in OPERATORS:
            raise reject(f"operator {kind!s} is not allowed", "operator")
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
        self._keys(e, STAR_KEYS, "*")
        # ``columns`` alone is COLUMNS(*) or ORDER BY ALL; an ``expr`` is a regex or lambda.
        if e.get("expr") is not None:
            raise reject("COLUMNS(...) with a pattern is not allowed; list the columns", "star")
        for item in self._list(e.get("replace_list"), "* REPLACE"):
            if not isinstance(item, dict):
                raise reject("unexpected * REPLACE in the parsed query")
            self.expr(item.get("value"), scope, depth)

    def _cast_type(self, t: object, depth: int) -> None:
        node = self._enter(t, depth, "type")
        self._keys(
            node,
            EXPR_BASE | {"catalog", "schema", "type_name", "children", "qualified_name"},
            "type",
        )
        name = str(node.get("type_name", "")).lower()
        if node.get("schema") or node.get("catalog"):
            raise reject("qualified type names are not allowed", "cast")
        children = self._list(node.get("children"), "type")
        if name not in CAST_TYPES:
            raise reject(
                f"casts to {name.upper() or '?'} are not allowed; cast to a scalar type "
                "(INTEGER, DOUBLE, VARCHAR, DATE, ...)",
                "cast",
            )
        for c in children:  # DECIMAL(10, 2), VARCHAR(20): plain integer constants only
            if not (isinstance(c, dict) and c.get("class") == "CONSTANT"):
                raise reject("type modifiers must be integer constants", "cast")
