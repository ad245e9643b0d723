"""Compile a sqlglot SELECT into a ``LogicalQuery``: one source, a filter, then either a
projection or a grouped aggregation, then ordering and limit.

That is the shape of one Druid native query (scan or groupBy). WITH and subqueries in
FROM that are plain projections/filters are folded into it; a subquery that groups, orders
or limits is a ``QuerySource`` (Druid's ``query`` datasource), and joins a ``JoinSource``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from msqcore.errors import DruidException, InvalidInput, InvalidSqlInput, NotFound, QueryNotSupported
from msqcore.planner import arrays, window
from msqcore.planner.expressions import (AGGREGATES, PAIR_VALUE_TYPES, Binder, Call, ColumnRef, Expr, Literal,
                                         arrow_type)
from msqcore.planner.statement import ARRAY_AGG_CALL

# EXTERN signature types → SQL types.
_EXTERN_TYPES = {"string": "VARCHAR", "long": "BIGINT", "double": "DOUBLE", "float": "FLOAT",
                 "array<string>": "VARCHAR ARRAY", "array<long>": "BIGINT ARRAY", "array<double>": "DOUBLE ARRAY",
                 "complex<json>": "COMPLEX<json>"}


class UnplannableQuery(DruidException):
    """Calcite found no plan; Druid reports its planner's hint (``QueryHandler``'s
    ``buildSQLPlanningError``)."""

    persona = "ADMIN"
    category = "INVALID_INPUT"

    def __init__(self, reason: str):
        super().__init__(f"Query could not be planned. A possible reason is [{reason}]")


class NotYetSupported(DruidException):
    """Druid runs this, msqcore does not yet (HTTP 501, category UNSUPPORTED)."""

    category = "UNSUPPORTED"


# The hints of Druid's DruidUnionDataSourceRule: MSQ plans UNION ALL only as a union
# datasource (top-level UNION ALL is an engine feature it lacks).
_UNION_DISTINCT = "SQL requires 'UNION' but only 'UNION ALL' is supported."
_UNION_NOT_SIMPLE = ("SQL requires union between inputs that are not simple table scans and involve a filter or "
                     "aliasing. Or column types of tables being unioned are not of same type.")
_UNION_NOT_TABLE = ("SQL requires union with input of a datasource type that is not supported. Union operation is "
                    "only supported between regular tables. ")


class Catalog(Protocol):
    def table_signature(self, datasource: str) -> list[tuple[str, str]] | None:
        """(column, SQL type) pairs of a datasource, ``__time`` first, or None if unknown."""


@dataclass
class ExternalSource:
    input_source: dict
    input_format: dict
    signature: list[tuple[str, str]]  # (name, SQL type)

    def druid_signature(self) -> list[dict]:
        return [{"name": n, "type": _native(t)} for n, t in self.signature]


@dataclass
class TableSource:
    datasource: str
    signature: list[tuple[str, str]]


@dataclass
class UnionSource:
    """UNION ALL of plain scans of regular tables: Druid's ``union`` datasource. Every
    table reads the same columns (``signature``), so its rows stack as they are."""

    tables: list[TableSource]

    @property
    def signature(self) -> list[tuple[str, str]]:
        return self.tables[0].signature


@dataclass
class LookupSource:
    """``lookup.<name>``: a map lookup as a two-column table (Druid's ``lookup`` datasource)."""

    name: str
    signature: list[tuple[str, str]] = field(default_factory=lambda: [("k", "VARCHAR"), ("v", "VARCHAR")])

    def table(self, mapping: dict) -> pa.Table:
        items = sorted(mapping.items())
        return pa.table({"k": pa.array([k for k, _ in items], pa.string()),
                         "v": pa.array([v for _, v in items], pa.string())})


@dataclass
class InlineSource:
    """Rows given in the query: VALUES, or one row without columns for a FROM-less SELECT."""

    signature: list[tuple[str, str]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=lambda: [()])

    def table(self) -> pa.Table:
        if not self.signature:
            # a column no query can name: a table without columns loses its row count in transit
            return pa.table({"__dummy": pa.nulls(len(self.rows))})
        columns = list(zip(*self.rows))
        return pa.table([pa.array(list(c), arrow_type(t)) for c, (_, t) in zip(columns, self.signature)],
                        names=[n for n, _ in self.signature])


@dataclass
class Aggregation:
    name: str  # a0, a1 ...
    kind: str  # count_all | count | count_distinct (exact) | approx_count_distinct | sum | min | max | avg |
    # any_value | earliest | latest | string_agg(_distinct) | array_agg(_distinct)
    arg: Expr | None
    sql_type: str
    filter: Expr | None = None  # AGG(...) FILTER (WHERE ...)
    time: Expr | None = None  # earliest/latest: the time that orders values
    separator: str = ","  # string_agg
    finalize: bool = True  # False: the result is the intermediate state (a rollup metric's stored value)
    max_bytes: int = 0  # array_agg: maxSizeBytes


_ANON_AGGREGATES = {"EARLIEST", "LATEST", "EARLIEST_BY", "LATEST_BY", "LISTAGG", "STRING_AGG", "ANY_VALUE",
                    "APPROX_COUNT_DISTINCT", "APPROX_COUNT_DISTINCT_BUILTIN", ARRAY_AGG_CALL}
_ARRAY_TYPES = {"VARCHAR": "VARCHAR ARRAY", "BIGINT": "BIGINT ARRAY", "TIMESTAMP": "BIGINT ARRAY",
                "BOOLEAN": "BIGINT ARRAY", "DOUBLE": "DOUBLE ARRAY", "FLOAT": "DOUBLE ARRAY"}
DEFAULT_ARRAY_AGG_BYTES = 1024
_AGGREGATE_NODES = AGGREGATES + (exp.Filter, exp.AnyValue, exp.ApproxDistinct, exp.GroupConcat, exp.ArrayAgg)


def is_aggregate(node: exp.Expression) -> bool:
    return isinstance(node, _AGGREGATE_NODES) or (
        isinstance(node, exp.Anonymous) and node.name.upper() in _ANON_AGGREGATES)


def has_aggregate(node: exp.Expression) -> bool:
    return any(is_aggregate(n) for n in node.walk())


@dataclass
class Unnest:
    """``CROSS JOIN UNNEST(expr) AS t(col)``: each source row once per element of ``expr``,
    the element in column ``name`` (Druid's ``unnest`` datasource and its virtual column)."""

    name: str  # "j0.unnest"
    expr: Expr
    filter: Expr | None = None  # the WHERE conjuncts on the unnested column only (unnestFilter)


UNNEST_COLUMN = "j0.unnest"


@dataclass
class JoinClause:
    """One ``JOIN`` onto everything to its left (Druid's join datasource). The right input's
    columns are renamed ``prefix + name``; ``left_keys``/``right_keys`` are the equalities of
    the condition, evaluated over the left rows and the renamed right rows."""

    kind: str  # INNER | LEFT | RIGHT | FULL | CROSS
    right: "LogicalQuery"  # the right input's rows
    prefix: str  # j0., _j0., __j0. ...
    left_keys: list[Expr] = field(default_factory=list)
    right_keys: list[Expr] = field(default_factory=list)
    right_filter: Expr | None = None  # conjuncts of the condition over the right input only

    def condition_native(self) -> str:
        """The condition in Druid's expression language, as the join datasource shows it."""
        if not self.left_keys:
            return "1"
        parts = [f"({lk.native()} == {rk.native()})" for lk, rk in zip(self.left_keys, self.right_keys)]
        return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"


@dataclass
class JoinSource:
    """Rows of ``base JOIN right1 ... JOIN rightN``; ``algorithm`` is ``sqlJoinAlgorithm``."""

    base: "LogicalQuery"  # a scan of the leftmost input
    joins: list[JoinClause]
    algorithm: str = "broadcast"  # how it runs
    configured: str | None = None  # sqlJoinAlgorithm when it differs (sortMerge without keys runs broadcast)

    @property
    def signature(self) -> list[tuple[str, str]]:
        sig = list(self.base.output)
        for j in self.joins:
            sig += [(j.prefix + n, t) for n, t in j.right.output]
        return sig


@dataclass
class QuerySource:
    """A subquery in FROM that does more than project and filter (GROUP BY, LIMIT, window
    functions ...): Druid's ``query`` datasource. Its rows are the inner query's output."""

    query: "LogicalQuery"

    @property
    def signature(self) -> list[tuple[str, str]]:
        return self.query.output


def leaf_sources(source) -> list:
    """Every source whose rows a query reads, through joins and query datasources."""
    if isinstance(source, JoinSource):
        return [s for q in [source.base] + [j.right for j in source.joins] for s in leaf_sources(q.source)]
    if isinstance(source, QuerySource):
        return leaf_sources(source.query.source)
    return [source]


@dataclass
class LogicalQuery:
    source: ExternalSource | TableSource | InlineSource | LookupSource | JoinSource | UnionSource | QuerySource
    filter: Expr | None
    columns: list[tuple[str, Expr]]  # scan outputs; for aggregate queries, the post-aggregation outputs
    group_by: list[tuple[str, Expr]] | None = None  # d0.. → expression over the source
    aggregations: list[Aggregation] = field(default_factory=list)
    having: Expr | None = None
    order_by: list[tuple[str, bool, bool]] = field(default_factory=list)  # (column, descending, nulls first)
    limit: int | None = None
    offset: int = 0
    hidden: int = 0  # trailing columns kept only for ordering
    window: "window.WindowPlan | None" = None  # window functions: run on ``columns``, then the final SELECT list
    unnest: Unnest | None = None  # rows of the source unnested before the filter
    multi_value_unnesting: bool = True  # groupByEnableMultiValueUnnesting

    @property
    def is_aggregate(self) -> bool:
        return self.group_by is not None

    @property
    def output(self) -> list[tuple[str, str]]:
        cols = self.window.columns if self.window is not None else self.columns
        cols = cols[: len(cols) - self.hidden] if self.hidden else cols
        return [(n, e.sql_type) for n, e in cols]

    def source_exprs(self) -> list[Expr]:
        """The expressions evaluated over source rows."""
        exprs = [e for _, e in self.group_by or []]
        exprs += [x for a in self.aggregations for x in (a.arg, a.filter, a.time) if x is not None]
        if not self.is_aggregate:
            exprs += [e for _, e in self.columns]
        if self.filter is not None:
            exprs.append(self.filter)
        if self.unnest is not None:
            exprs.append(self.unnest.expr)
        return exprs

    def source_columns(self) -> list[str]:
        """Source columns the query reads (for column pruning)."""
        used: set[str] = set()
        for e in self.source_exprs():
            used |= e.columns()
        return [n for n, _ in self.source.signature if n in used]


def _native(sql_type: str) -> str:
    return {"VARCHAR": "STRING", "BIGINT": "LONG", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "TIMESTAMP": "LONG",
            "BOOLEAN": "LONG", "VARCHAR ARRAY": "ARRAY<STRING>", "BIGINT ARRAY": "ARRAY<LONG>",
            "DOUBLE ARRAY": "ARRAY<DOUBLE>", "COMPLEX<json>": "COMPLEX<json>"}[sql_type]


@dataclass
class UnionAllQuery:
    """A top-level UNION ALL of independent queries, which Druid's native engine (the SQL
    endpoint) runs one after the other (DruidUnionRel); MSQ does not (spec §1.8)."""

    arms: list[LogicalQuery]
    limit: int | None = None

    @property
    def source(self):
        # the SQL endpoint refuses EXTERN: show it any arm's
        return next((a.source for a in self.arms if isinstance(a.source, ExternalSource)), self.arms[0].source)

    @property
    def output(self) -> list[tuple[str, str]]:
        names = [n for n, _ in self.arms[0].output]
        return [(n, _union_type(i + 1, [a.output[i][1] for a in self.arms])) for i, n in enumerate(names)]

    def run(self, run_arm) -> pa.Table:
        """Each arm's rows (``run_arm(arm)``), in order, under the first arm's names."""
        output = self.output
        tables = []
        for arm in self.arms:
            table = run_arm(arm)
            tables.append(pa.table([pc.cast(table.column(n), arrow_type(t)) for (n, _), (_, t) in
                                    zip(arm.output, output)], names=[n for n, _ in output]))
            if self.limit is not None and sum(t.num_rows for t in tables) >= self.limit:
                break
        table = pa.concat_tables(tables)
        return table.slice(0, self.limit) if self.limit is not None else table


def _union_type(column: int, types: list[str]) -> str:
    """Calcite's least restrictive type of a UNION column."""
    kinds = set(types)
    if len(kinds) == 1:
        return types[0]
    if kinds <= {"BIGINT", "DOUBLE", "FLOAT", "BOOLEAN"}:
        return "DOUBLE" if kinds & {"DOUBLE", "FLOAT"} else "BIGINT"
    raise InvalidSqlInput(f"Type mismatch in column {column} of UNION")


def compile_query(select: exp.Query, catalog: Catalog, parameters: list | None = None,
                  context: dict | None = None, *, top_level_union: bool = False) -> LogicalQuery | UnionAllQuery:
    """``top_level_union``: the engine runs a top-level UNION ALL of arbitrary queries (the
    native engine's ALLOW_TOP_LEVEL_UNION_ALL) when it is not a union datasource."""
    compiler = _Compiler(catalog, parameters or [], context or {})
    try:
        return compiler.compile(select, {})
    except UnplannableQuery:
        if not (top_level_union and isinstance(select, exp.Union) and not select.args.get("distinct")
                and select.args.get("order") is None and select.args.get("offset") is None):
            raise
    limit = select.args.get("limit")
    union = select.copy()
    union.set("limit", None)
    with_ = union.args.get("with_")
    ctes = {cte.alias_or_name: cte.this for cte in with_.expressions} if with_ is not None else {}
    arms = [compiler.compile(arm, ctes) for arm in _union_arms(union)]
    if len({len(a.output) for a in arms}) != 1:
        raise InvalidSqlInput("Column count mismatch in UNION ALL")
    return UnionAllQuery(arms, _int_clause(limit.expression, "LIMIT") if limit is not None else None)


class _Compiler:
    def __init__(self, catalog: Catalog, parameters: list, context: dict):
        self.catalog = catalog
        self.parameters = parameters
        self.context = context
        # one Binder so that ? parameters are numbered across the whole statement
        self.binder = Binder({}, parameters, context)
        self.binder.lookups = getattr(catalog, "lookup", None)  # maps for LOOKUP()

    def bind(self, node, scope):
        self.binder.scope = scope
        return self.binder.bind(node)

    def compile(self, select: exp.Query, ctes: dict) -> LogicalQuery:
        if isinstance(select, exp.SetOperation):
            select = _select_from_union(select)
        if not isinstance(select, exp.Select):
            raise InvalidInput(f"Unsupported query [{select.sql('druid')}]")
        with_ = select.args.get("with_") or select.args.get("with")
        if with_ is not None:
            ctes = dict(ctes)
            for cte in with_.expressions:
                ctes[cte.alias_or_name] = cte.this
        from_ = select.args.get("from_") or select.args.get("from")
        joins = list(select.args.get("joins") or [])
        unnest_node = None
        if from_ is not None and isinstance(from_.this, exp.Unnest):
            unnest_node, from_ = from_.this, None  # FROM UNNEST(...): one row to unnest
        elif len(joins) == 1 and isinstance(joins[0].this, exp.Unnest) and joins[0].args.get("on") is None \
                and (joins[0].kind or "CROSS").upper() == "CROSS" and not joins[0].side:
            unnest_node = joins.pop().this
        where = select.args.get("where")
        where = where.this if where is not None else None
        if joins and unnest_node is not None:
            raise QueryNotSupported("UNNEST together with JOIN is not supported yet")
        if joins:
            from msqcore.planner import joins as join_planner
            source, scope, base_filter, where = join_planner.compile_joins(self, from_.this, joins, ctes, where)
        else:
            source, scope, base_filter = self._from(from_, ctes)
        unnest = self._unnest(unnest_node, scope) if unnest_node is not None else None

        filt = base_filter
        if where is not None:
            f = self.bind(where, scope)
            f = f if f.sql_type == "BOOLEAN" else self.binder._boolean(where)
            filt = f if filt is None else _and(filt, f)
        if unnest is not None and filt is not None:
            unnest.filter = _only_on(filt, {UNNEST_COLUMN})

        items = self._expand_star(select.expressions, scope)
        windowed = window.split(select, items) if window.has_window(items) else None
        base_items = windowed.inner if windowed is not None else items
        group = select.args.get("group")
        has_agg = any(has_aggregate(item) for item in base_items)
        if group is not None or has_agg:
            query = self._aggregate(select, base_items, group, scope, source, filt, group_items=items)
        else:
            if select.args.get("having") is not None:
                raise InvalidInput("HAVING clause requires a GROUP BY or an aggregate")
            columns = [(self._name(item, i), self.bind(item, scope)) for i, item in enumerate(base_items)]
            query = LogicalQuery(source, filt, columns)
        query.unnest = unnest
        query.multi_value_unnesting = _context_flag(self.context, "groupByEnableMultiValueUnnesting")
        if query.is_aggregate and _context_flag(self.context, "finalizeAggregations"):  # not a rollup's states
            query = _nest_count_distinct(query)
        if windowed is not None:
            if select.args.get("distinct") is not None:
                raise QueryNotSupported("SELECT DISTINCT with window functions is not supported")
            query.window = self._window(windowed, query, items)
        elif select.args.get("distinct") is not None:
            query = self._distinct(query)
        self._order_limit(select, query, scope, items)
        _check_duplicates(query)
        if isinstance(query.source, JoinSource):
            from msqcore.planner import joins as join_planner
            join_planner.prune(query)
        return query

    # --- FROM -------------------------------------------------------------------------------

    def _unnest(self, node: exp.Unnest, scope: dict) -> Unnest:
        """UNNEST(expr) AS t(col): binds ``col`` (and ``t.col``) in ``scope``."""
        if len(node.expressions) != 1 or node.args.get("offset"):  # several expressions, WITH ORDINALITY
            raise arrays.UnhandledPlanningFailure()
        expr = self.bind(node.expressions[0], scope)
        element = arrays.ELEMENT_TYPES.get(expr.sql_type)
        if element is None and expr.sql_type != "VARCHAR":  # a VARCHAR may be a multi-value string
            raise InvalidInput(f"Cannot apply 'UNNEST' to arguments of type 'UNNEST(<{expr.sql_type}>)'")
        alias = node.args.get("alias")
        columns = [c.name for c in alias.columns] if alias is not None and alias.columns else []
        name = columns[0] if columns else "EXPR$0"
        ref = ColumnRef(UNNEST_COLUMN, element or "VARCHAR")
        scope[name] = ref
        if alias is not None and alias.name:
            scope[f"{alias.name}.{name}"] = ref
        return Unnest(UNNEST_COLUMN, expr)

    def _from(self, from_, ctes):
        if from_ is None:
            return InlineSource(), {}, None
        return self._relation(from_.this, ctes)

    def _relation(self, node, ctes):
        """(source, scope, filter) of one FROM item: EXTERN, a table, a lookup, a CTE, a subquery
        or VALUES."""
        lookup = self._lookup(node)
        if lookup is not None:
            return lookup, {n: ColumnRef(n, t) for n, t in lookup.signature}, None
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and node.this.name.upper() == "TABLE":
            alias = node.args.get("alias")
            extend = [c for c in alias.columns if isinstance(c, exp.ColumnDef)] if alias is not None else []
            src = self._extern(node.this, extend)
            return src, {n: ColumnRef(n, t) for n, t in src.signature}, None
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            name = node.name
            if node.args.get("db"):
                schema = node.args["db"].name
                if schema.lower() != "druid":
                    raise InvalidInput(f"Object '{schema}.{name}' not found")
            elif name in ctes:
                return self._inline(ctes[name], ctes, node.alias_or_name)
            signature = self.catalog.table_signature(name)
            if signature is None:
                raise InvalidInput(f"Object '{name}' not found")
            return TableSource(name, signature), {n: ColumnRef(n, t) for n, t in signature}, None
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.SetOperation):
            return self._union(node.this, ctes, node.alias_or_name)
        if isinstance(node, exp.Subquery):
            return self._inline(node.this, ctes, node.alias_or_name)
        if isinstance(node, exp.Values):
            src = self._values(node)
            return src, {n: ColumnRef(n, t) for n, t in src.signature}, None
        raise QueryNotSupported(f"Unsupported FROM clause [{node.sql('druid')}]")

    def _union(self, node: exp.SetOperation, ctes, alias):
        """UNION ALL arms that each select columns of a regular table, the same column
        names in the same order, become one union datasource (DruidUnionDataSourceRule)."""
        tables: list[TableSource] = []
        first: tuple[list[str], list[tuple[str, str]]] | None = None
        for arm in _union_arms(node):
            arm_query = self.compile(arm, ctes)
            source = arm_query.source
            if not isinstance(source, TableSource) or "." in source.datasource:
                raise UnplannableQuery(_UNION_NOT_TABLE)
            if (arm_query.filter is not None or arm_query.is_aggregate or arm_query.order_by
                    or arm_query.limit is not None or arm_query.offset or arm_query.hidden
                    or not all(isinstance(e, ColumnRef) for _, e in arm_query.columns)):
                raise UnplannableQuery(_UNION_NOT_SIMPLE)
            columns = [(e.name, e.sql_type) for _, e in arm_query.columns]
            if first is None:
                first = [n for n, _ in arm_query.columns], columns
            elif [c for c, _ in columns] != [c for c, _ in first[1]]:
                raise UnplannableQuery(
                    "SQL requires union between two tables and column names queried for each table are different "
                    f"Left: {_java_list([c for c, _ in first[1]])}, Right: {_java_list([c for c, _ in columns])}.")
            elif columns != first[1]:
                raise UnplannableQuery(_UNION_NOT_SIMPLE)
            tables.append(TableSource(source.datasource, columns))
        names, columns = first
        scope = {n: ColumnRef(c, t) for n, (c, t) in zip(names, columns)}
        if alias:
            scope.update({f"{alias}.{n}": e for n, e in list(scope.items())})
        return UnionSource(tables), scope, None

    def _lookup(self, node) -> LookupSource | None:
        """``lookup.<name>`` (the SQL endpoint renames it to one identifier ``"lookup.<name>"``)."""
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            return None
        db = node.args.get("db")
        if db is not None and db.name == "lookup":
            name = node.name
        elif db is None and node.name.startswith("lookup."):
            name = node.name[len("lookup."):]
        else:
            return None
        try:
            self.catalog.lookup(name)  # a lookup of another type than map: its own error
        except (NotFound, AttributeError):  # AttributeError: a catalog without lookups
            raise InvalidInput(f"Object '{name}' not found within 'lookup'") from None
        return LookupSource(name)

    def _values(self, node: exp.Values) -> InlineSource:
        rows = []
        for row in node.expressions:
            items = row.expressions if isinstance(row, exp.Tuple) else [row]
            values = [self.bind(item, {}) for item in items]
            if not all(isinstance(v, Literal) for v in values):
                raise InvalidInput("VALUES may only contain literals")
            rows.append(values)
        width = len(rows[0])
        if any(len(r) != width for r in rows):
            raise InvalidInput("All rows of VALUES must have the same number of columns")
        alias = node.args.get("alias")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else \
            [f"EXPR${i}" for i in range(width)]
        signature = []
        for i, name in enumerate(names):
            types = {r[i].sql_type for r in rows if r[i].value is not None}
            t = types.pop() if len(types) == 1 else ("DOUBLE" if types <= {"BIGINT", "DOUBLE"} and types else
                                                     "VARCHAR")
            signature.append((name, t))
        cast = [tuple(self.binder._cast_expr(v, t).value if v.value is not None else None
                      for v, (_, t) in zip(r, signature)) for r in rows]
        return InlineSource(signature, cast)

    def _inline(self, select, ctes, alias):
        """A subquery or CTE in FROM: folded into the outer query when it only projects and
        filters, else a query datasource whose output the outer query reads."""
        inner = self.compile(select, ctes)
        if inner.is_aggregate or inner.limit is not None or inner.order_by or inner.offset or inner.unnest \
                or inner.window is not None:
            scope = {n: ColumnRef(n, t) for n, t in inner.output}
            if alias:
                scope.update({f"{alias}.{n}": e for n, e in list(scope.items())})
            return QuerySource(inner), scope, None
        scope = {n: e for n, e in inner.columns}
        if alias:
            scope.update({f"{alias}.{n}": e for n, e in inner.columns})
        return inner.source, scope, inner.filter

    def _extern(self, table_fn: exp.Anonymous, extend: list) -> ExternalSource:
        if len(table_fn.expressions) != 1 or not isinstance(table_fn.expressions[0], exp.Anonymous) \
                or table_fn.expressions[0].name.upper() != "EXTERN":
            raise QueryNotSupported(f"Unsupported table function [{table_fn.sql('druid')}]")
        args = table_fn.expressions[0].expressions
        named = {}
        positional = []
        for a in args:
            if isinstance(a, (exp.Kwarg, exp.PropertyEQ)) or type(a).__name__ == "Kwarg":
                named[a.this.name] = a.expression
            else:
                positional.append(a)
        for key, pos in (("inputSource", 0), ("inputFormat", 1), ("signature", 2)):
            if key not in named and pos < len(positional):
                named[key] = positional[pos]
        values = {}
        for key, node in named.items():
            v = self.bind(node, {})
            if not isinstance(v, Literal) or v.sql_type != "VARCHAR":
                raise InvalidInput(f"EXTERN argument [{key}] must be a string literal")
            values[key] = v.value
        if ("signature" in values) == bool(extend):
            raise InvalidInput("EXTERN requires either a [signature] value or an EXTEND clause, but not both")
        try:
            input_source = json.loads(values["inputSource"])
            input_format = json.loads(values["inputFormat"])
            signature = json.loads(values["signature"]) if extend == [] else [_extend_column(c) for c in extend]
        except (KeyError, json.JSONDecodeError) as e:
            raise InvalidInput(f"Invalid EXTERN arguments: {e}") from None
        if not isinstance(input_source, dict) or "type" not in input_source:
            raise InvalidInput("Invalid EXTERN inputSource: expected a JSON object with a 'type'")
        if not isinstance(input_format, dict) or "type" not in input_format:
            raise InvalidInput("Invalid EXTERN inputFormat: expected a JSON object with a 'type'")
        if not isinstance(signature, list):
            raise InvalidInput("Invalid EXTERN signature: expected a JSON array of {name, type}")
        cols = []
        for col in signature:
            if not isinstance(col, dict) or "name" not in col:
                raise InvalidInput(f"Invalid EXTERN signature entry [{col}]")
            t = str(col.get("type", "string")).lower()
            if t not in _EXTERN_TYPES:
                raise InvalidInput(f"Column [{col['name']}] has an unsupported type: [{col.get('type')}]")
            if col["name"] == "__time" and t != "long":
                raise InvalidInput("EXTERN function with __time column can be used when __time column is of type "
                                   "long. Please change the column name to something other than __time")
            cols.append((col["name"], _EXTERN_TYPES[t]))
        return ExternalSource(input_source, input_format, cols)

    # --- SELECT list ------------------------------------------------------------------------

    def _expand_star(self, expressions, scope):
        items = []
        star = getattr(scope, "star", None)  # a join's columns: (table alias, name, output name)
        for item in expressions:
            if star is not None and isinstance(item, exp.Column) and isinstance(item.this, exp.Star) and item.table:
                items.extend(exp.alias_(exp.column(n, table=t, quoted=True), n, quoted=True)
                             for t, n, _ in star if t == item.table)
            elif star is not None and isinstance(item, exp.Star):
                items.extend(exp.alias_(exp.column(n, table=t, quoted=True), out, quoted=True) if t else
                             exp.alias_(exp.column(n, quoted=True), out, quoted=True) for t, n, out in star)
            elif isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
                items.extend(exp.column(n, quoted=True) for n in scope if "." not in n)
            else:
                items.append(item)
        return items

    @staticmethod
    def _name(item, index: int) -> str:
        if isinstance(item, exp.Alias):
            return item.alias
        if isinstance(item, exp.Column):
            return item.name
        return f"EXPR${index}"

    def _aggregate(self, select, items, group, scope, source, filt, group_items=None) -> LogicalQuery:
        """``group_items``: the SELECT list that GROUP BY ordinals and aliases name (the user's,
        when ``items`` are the window-free pieces of a windowed query)."""
        group_by: list[tuple[str, Expr]] = []
        key_sql: dict[str, str] = {}
        group_items = items if group_items is None else group_items
        aliases = {item.alias: item.this for item in group_items if isinstance(item, exp.Alias)}
        for node in (group.expressions if group is not None else []):
            if isinstance(node, exp.Literal) and not node.is_string:
                idx = int(node.this) - 1
                if not 0 <= idx < len(group_items):
                    raise InvalidInput(f"Ordinal out of range: {node.this}")
                node = group_items[idx].this if isinstance(group_items[idx], exp.Alias) else group_items[idx]
                if node.find(exp.Window) is not None:
                    raise InvalidInput("Window functions cannot be used in GROUP BY")
            elif isinstance(node, exp.Column) and node.name not in scope and node.name in aliases:
                node = aliases[node.name]
            if has_aggregate(node):
                raise InvalidInput(f"Aggregate expressions cannot be used in GROUP BY: [{node.sql('druid')}]")
            name = f"d{len(group_by)}"
            group_by.append((name, self.bind(node, scope)))
            key_sql[node.sql("druid")] = name

        aggs: list[Aggregation] = []
        agg_sql: dict[str, str] = {}

        def rewrite(node):
            sql = node.sql("druid")
            if sql in key_sql:
                return exp.column(key_sql[sql])
            if is_aggregate(node):
                if sql not in agg_sql:
                    agg_sql[sql] = self._aggregation(node, scope, f"a{len(aggs)}", aggs)
                return exp.column(agg_sql[sql])
            return node

        post_scope = {n: ColumnRef(n, e.sql_type) for n, e in group_by}
        columns = []
        for i, item in enumerate(items):
            body = item.this if isinstance(item, exp.Alias) else item
            rewritten = body.transform(rewrite)
            for n, e in ((a.name, a) for a in aggs):
                post_scope[n] = ColumnRef(n, e.sql_type)
            columns.append((self._name(item, i), self._bind_post(rewritten, post_scope, body)))
        having = None
        if select.args.get("having") is not None:
            rewritten = select.args["having"].this.transform(rewrite)
            for a in aggs:
                post_scope[a.name] = ColumnRef(a.name, a.sql_type)
            having = self._bind_post(rewritten, post_scope, select.args["having"].this)
        return LogicalQuery(source, filt, columns, group_by=group_by, aggregations=aggs, having=having)

    def _window(self, windowed: window.Split, query: LogicalQuery, items) -> window.WindowPlan:
        """The window step over the base query's columns, and the final SELECT list."""
        types = {n: e.sql_type for n, e in query.columns}
        for d in windowed.drafts:
            if d.function in ("MIN", "MAX", "SUM", "AVG") and types.get(d.argument) == "VARCHAR":
                if d.function in ("MIN", "MAX"):
                    raise QueryNotSupported(f"{d.function} over a VARCHAR is not supported as a window function")
                query.columns = [(n, self.binder._cast_expr(e, "DOUBLE") if n == d.argument else e)
                                 for n, e in query.columns]
                types[d.argument] = "DOUBLE"
        scope = {n: ColumnRef(n, t) for n, t in types.items()}
        for i, d in enumerate(windowed.drafts):
            name = f"{window.OUTPUT}{i}"
            scope[name] = ColumnRef(name, window.window_type(d, types.get(d.argument)))
        columns = [(self._name(item, i), self.bind(outer, scope))
                   for i, (item, outer) in enumerate(zip(items, windowed.outer))]
        max_rows = int(self.context.get("maxRowsMaterializedInWindow", window.MAX_ROWS_IN_WINDOW))
        return window.WindowPlan(window.specs(windowed.drafts), columns, max_rows)

    @staticmethod
    def _distinct(query: LogicalQuery) -> LogicalQuery:
        """SELECT DISTINCT is a GROUP BY on every selected column (as Druid plans it)."""
        if query.is_aggregate:
            raise QueryNotSupported("SELECT DISTINCT over aggregations is not supported yet")
        group_by = [(f"d{i}", e) for i, (_, e) in enumerate(query.columns)]
        columns = [(n, ColumnRef(f"d{i}", e.sql_type)) for i, (n, e) in enumerate(query.columns)]
        return LogicalQuery(query.source, query.filter, columns, group_by=group_by, unnest=query.unnest,
                            multi_value_unnesting=query.multi_value_unnesting)

    def _bind_post(self, node, scope, original):
        try:
            return self.bind(node, scope)
        except InvalidInput as e:
            if "not found" in str(e):
                raise InvalidInput(f"Expression '{original.sql('druid')}' is not being grouped") from None
            raise

    def _aggregation(self, node, scope, name, aggs) -> str:
        """One aggregate call → an Aggregation named ``name`` (spec §1.7)."""
        filt = None
        if isinstance(node, exp.Filter):
            self.binder.scope = scope
            filt = self.binder._boolean(node.expression.this)
            node = node.this
        agg = self._aggregate_call(node, scope, name)
        agg.filter = filt
        aggs.append(agg)
        return name

    def _aggregate_call(self, node, scope, name) -> Aggregation:
        arg_node = node.this if not isinstance(node, exp.Anonymous) else (node.expressions or [None])[0]
        distinct = isinstance(arg_node, exp.Distinct)
        if distinct:
            arg_node = arg_node.expressions[0]
        fname = node.name.upper() if isinstance(node, exp.Anonymous) else type(node).__name__.lower()
        if isinstance(node, exp.Count):
            if arg_node is None or isinstance(arg_node, exp.Star):
                return Aggregation(name, "count_all", None, "BIGINT")
            kind = "count"
            if distinct:
                # Druid plans COUNT(DISTINCT) as APPROX_COUNT_DISTINCT unless told otherwise
                approx = str(self.context.get("useApproximateCountDistinct", True)).lower() != "false"
                kind = "approx_count_distinct" if approx else "count_distinct"
            return Aggregation(name, kind, self.bind(arg_node, scope), "BIGINT")
        if isinstance(node, exp.ApproxDistinct) or fname in ("APPROX_COUNT_DISTINCT", "APPROX_COUNT_DISTINCT_BUILTIN"):
            if isinstance(node, exp.Anonymous) and len(node.expressions) != 1:
                raise InvalidInput(f"Invalid number of arguments to function '{fname}'. Was expecting 1 arguments")
            return Aggregation(name, "approx_count_distinct", self.bind(arg_node, scope), "BIGINT")
        if fname == ARRAY_AGG_CALL:
            return self._array_agg(node, scope, name)
        if distinct and not isinstance(node, (exp.GroupConcat,)) and fname not in ("LISTAGG", "STRING_AGG"):
            raise QueryNotSupported(f"DISTINCT is not supported in [{node.sql('druid')}]")
        arg = self.bind(arg_node, scope)
        if isinstance(node, exp.AnyValue) or fname == "ANY_VALUE":
            return Aggregation(name, "any_value", arg, arg.sql_type)
        if fname in ("EARLIEST", "LATEST", "EARLIEST_BY", "LATEST_BY"):
            args = node.expressions
            if fname.endswith("_BY"):
                if len(args) < 2:
                    raise InvalidInput(f"Invalid number of arguments to function '{fname}'. Was expecting 2 arguments")
                time = self.bind(args[1], scope)
            else:
                if "__time" not in scope:
                    raise UnplannableQuery(
                        "LATEST and EARLIEST aggregators implicitly depend on the __time column, but the table "
                        "queried doesn't contain a __time column.  Please use LATEST_BY or EARLIEST_BY and specify "
                        "the column explicitly.")
                time = scope["__time"]
            # a stored (time, value) pair (a rollup metric) carries its own time
            value_type = PAIR_VALUE_TYPES.get(arg.sql_type, arg.sql_type)
            return Aggregation(name, fname.split("_")[0].lower(), arg, value_type, time=time)
        if isinstance(node, exp.GroupConcat) or fname in ("LISTAGG", "STRING_AGG"):
            sep_node = node.args.get("separator") if isinstance(node, exp.GroupConcat) else \
                (node.expressions[1] if len(node.expressions) > 1 else None)
            sep = self.bind(sep_node, {}) if sep_node is not None else Literal(",", "VARCHAR")
            if not isinstance(sep, Literal):
                raise InvalidInput("The separator of STRING_AGG must be a literal")
            arg = arg if arg.sql_type == "VARCHAR" else self.binder._cast_expr(arg, "VARCHAR")
            return Aggregation(name, "string_agg_distinct" if distinct else "string_agg", arg, "VARCHAR",
                               separator=str(sep.value))
        if arg.sql_type == "VARCHAR" and not isinstance(node, (exp.Min, exp.Max)):
            arg = self.binder._cast_expr(arg, "DOUBLE")
        kind = type(node).__name__.lower()
        if kind not in ("sum", "min", "max", "avg"):
            raise QueryNotSupported(f"Aggregation [{node.sql('druid')}] is not supported yet")
        if kind == "avg":
            sql_type = "DOUBLE"
        elif kind == "sum":
            sql_type = "BIGINT" if arg.sql_type in ("BIGINT", "BOOLEAN") else "DOUBLE"
        else:
            sql_type = arg.sql_type
        return Aggregation(name, kind, arg, sql_type)

    def _array_agg(self, node, scope, name) -> Aggregation:
        """ARRAY_AGG([DISTINCT] expr[, maxSizeBytes]): every value, NULLs included (DISTINCT:
        sorted, NULL first, as array_set_add's TreeSet)."""
        args = node.expressions
        distinct = bool(args) and isinstance(args[0], exp.Distinct)
        if distinct:
            args = args[0].expressions
        if not 1 <= len(args) <= 2:
            raise InvalidInput("Invalid number of arguments to function 'ARRAY_AGG'. Was expecting 2 arguments")
        arg = self.bind(args[0], scope)
        size = DEFAULT_ARRAY_AGG_BYTES
        if len(args) > 1:
            lit = self.bind(args[1], {})
            if not isinstance(lit, Literal) or lit.sql_type != "BIGINT" or lit.value is None:
                raise InvalidInput("Function[ARRAY_AGG] needs a literal maxSizeBytes argument")
            size = int(lit.value)
        if arg.sql_type not in _ARRAY_TYPES:
            raise InvalidInput(f"Cannot use ARRAY_AGG on a value of type [{arg.sql_type}]")
        array_type = _ARRAY_TYPES[arg.sql_type]
        element = array_type.split()[0]  # "BIGINT ARRAY" holds BIGINT
        if arg.sql_type != element:
            arg = self.binder._cast_expr(arg, element)
        return Aggregation(name, "array_agg_distinct" if distinct else "array_agg", arg, array_type, max_bytes=size)

    # --- ORDER BY / LIMIT -------------------------------------------------------------------

    def _order_limit(self, select, query: LogicalQuery, scope, items):
        order = select.args.get("order")
        if order is not None:
            names = [n for n, _ in (query.window.columns if query.window is not None else query.columns)]
            item_sql = {(it.this if isinstance(it, exp.Alias) else it).sql("druid"): names[i]
                        for i, it in enumerate(items)}
            for o in order.expressions:
                node = o.this
                if isinstance(node, exp.Literal) and not node.is_string:
                    idx = int(node.this) - 1
                    if not 0 <= idx < len(names):
                        raise InvalidInput(f"Ordinal out of range: {node.this}")
                    col = names[idx]
                elif isinstance(node, exp.Column) and node.name in names and not node.table:
                    col = node.name
                elif node.sql("druid") in item_sql:
                    col = item_sql[node.sql("druid")]
                elif not query.is_aggregate and query.window is None:
                    col = f"_o{query.hidden}"
                    query.columns.append((col, self.bind(node, scope)))
                    query.hidden += 1
                else:
                    raise InvalidInput(f"ORDER BY expression [{node.sql('druid')}] must be in the SELECT list")
                desc = bool(o.args.get("desc"))
                nulls_first = o.args.get("nulls_first")
                query.order_by.append((col, desc, (not desc) if nulls_first is None else bool(nulls_first)))
        limit = select.args.get("limit")
        if limit is not None:
            query.limit = _int_clause(limit.expression, "LIMIT")
        offset = select.args.get("offset")
        if offset is not None:
            query.offset = _int_clause(offset.expression, "OFFSET")


_EXTEND_TYPES = {"VARCHAR": "string", "CHAR": "string", "TEXT": "string", "BIGINT": "long", "INT": "long",
                 "INTEGER": "long", "SMALLINT": "long", "TINYINT": "long", "DOUBLE": "double", "FLOAT": "float",
                 "REAL": "float"}


def _select_from_union(node: exp.SetOperation) -> exp.Select:
    """``a UNION ALL b [ORDER BY ..] [LIMIT ..]`` as ``SELECT * FROM (a UNION ALL b) ...``:
    the union becomes the datasource of the query on top of it, as in Druid."""
    node = node.copy()  # the statement keeps its own tree (ingest validation reads it)
    outer = exp.Select(expressions=[exp.Star()])
    for key in ("with_", "order", "limit", "offset"):
        if node.args.get(key) is not None:
            outer.set(key, node.args[key])
            node.set(key, None)
    return outer.from_(exp.Subquery(this=node), copy=False)


def _union_arms(node: exp.Expression) -> list[exp.Query]:
    """The SELECTs of a chain of UNION ALLs, parentheses and nesting flattened."""
    while isinstance(node, exp.Subquery):
        node = node.this
    if not isinstance(node, exp.SetOperation):
        return [node]
    if not isinstance(node, exp.Union):
        raise QueryNotSupported(f"{type(node).__name__.upper()} is not supported")  # INTERSECT, EXCEPT
    if node.args.get("distinct"):
        raise UnplannableQuery(_UNION_DISTINCT)
    if any(node.args.get(k) is not None for k in ("order", "limit", "offset")):
        return [node]  # an arm with its own ORDER BY/LIMIT is not a plain scan
    return _union_arms(node.this) + _union_arms(node.expression)


def _java_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _extend_column(col: exp.ColumnDef) -> dict:
    """An EXTEND column as an EXTERN signature entry (spec §1.2)."""
    kind = col.args.get("kind")
    type_name = kind.this.name if kind is not None and hasattr(kind.this, "name") else str(kind)
    if type_name.upper() == "ARRAY" and len(kind.expressions) == 1:
        # `<type> ARRAY` → ARRAY<type> (spec §1.2)
        element = _EXTEND_TYPES.get(kind.expressions[0].this.name.upper())
        if element in ("string", "long", "double"):
            return {"name": col.name, "type": f"ARRAY<{element.upper()}>"}
    if type_name.upper() == "USERDEFINED" and kind.expressions and \
            kind.expressions[0].name.lower() == "complex<json>":  # TYPE('COMPLEX<json>')
        return {"name": col.name, "type": "COMPLEX<json>"}
    if type_name.upper() not in _EXTEND_TYPES:
        raise InvalidInput(f"Column [{col.name}] has an unsupported type: [{kind.sql('druid') if kind else kind}]")
    return {"name": col.name, "type": _EXTEND_TYPES[type_name.upper()]}


def _int_clause(node, what: str) -> int:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    raise InvalidInput(f"{what} must be a non-negative integer literal")


def _and(a: Expr, b: Expr) -> Expr:
    return Call("and", [a, b], "BOOLEAN", pc.and_kleene, "({0} && {1})")


def _nest_count_distinct(query: LogicalQuery) -> LogicalQuery:
    """Exact COUNT(DISTINCT x) (useApproximateCountDistinct=false) as Druid plans it: an inner
    groupBy on the grouping keys and x (a ``query`` datasource), then an outer groupBy on the
    keys that counts the non-null x. Only when every aggregation counts the distinct values
    of one x without FILTER; other shapes keep one groupBy with a ``cardinality`` aggregator
    (Druid would need grouping sets for them)."""
    aggs = query.aggregations
    if not aggs or any(a.kind != "count_distinct" or a.filter is not None for a in aggs) \
            or len({a.arg.native() for a in aggs}) > 1:
        return query
    keys = list(query.group_by) + [(f"d{len(query.group_by)}", aggs[0].arg)]
    inner = LogicalQuery(query.source, query.filter, [(n, ColumnRef(n, e.sql_type)) for n, e in keys],
                         group_by=keys, unnest=query.unnest, multi_value_unnesting=query.multi_value_unnesting)
    distinct = ColumnRef(keys[-1][0], keys[-1][1].sql_type)
    return replace(query, source=QuerySource(inner), filter=None, unnest=None,
                   group_by=[(n, ColumnRef(n, e.sql_type)) for n, e in query.group_by],
                   aggregations=[replace(a, kind="count", arg=distinct) for a in aggs])


def _context_flag(context: dict, key: str, default: bool = True) -> bool:
    value = context.get(key, default)
    return value if isinstance(value, bool) else str(value).lower() != "false"


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Call) and e.op == "and":
        return [c for a in e.args for c in _conjuncts(a)]
    return [e]


def _only_on(filt: Expr, columns: set[str]) -> Expr | None:
    """The AND of the conjuncts of ``filt`` that read only ``columns``."""
    parts = [c for c in _conjuncts(filt) if c.columns() and c.columns() <= columns]
    out = None
    for p in parts:
        out = p if out is None else _and(out, p)
    return out


def _check_duplicates(query: LogicalQuery):
    seen = set()
    for name, _ in query.output:
        if name in seen:
            raise InvalidInput(f"Duplicate field in SELECT: [{name}]")
        seen.add(name)

