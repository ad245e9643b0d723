"""Render a ``LogicalQuery`` as the Druid native query JSON (scan or groupBy) that Druid's
Broker would have produced: what payloads and stage definitions show.
"""
from __future__ import annotations

import dataclasses
import json
import re

from msqcore.planner.expressions import PAIR_VALUE_TYPES, Call, ColumnRef, Expr, Literal, native_type
from msqcore.planner.json_functions import NestedField, parse_path
from msqcore.planner.query import (ExternalSource, InlineSource, JoinSource, LogicalQuery, LookupSource, QuerySource,
                                   TableSource, UnionSource)
from msqcore.timeutil import ETERNITY

_RANGE = {"greater": ("lower", True), "greater_equal": ("lower", False),
          "less": ("upper", True), "less_equal": ("upper", False)}
_FLIP = {"greater": "less", "greater_equal": "less_equal", "less": "greater", "less_equal": "greater_equal",
         "equal": "equal", "not_equal": "not_equal"}


def datasource_json(source) -> dict:
    if isinstance(source, JoinSource):
        return join_json(source)
    if isinstance(source, LookupSource):
        return {"type": "lookup", "lookup": source.name}
    if isinstance(source, ExternalSource):
        return {"type": "external", "inputSource": source.input_source, "inputFormat": source.input_format,
                "signature": source.druid_signature()}
    if isinstance(source, TableSource):
        return {"type": "table", "name": source.datasource}
    if isinstance(source, UnionSource):
        return {"type": "union", "dataSources": [datasource_json(t) for t in source.tables]}
    if isinstance(source, QuerySource):
        return {"type": "query", "query": native_query(source.query, {})[0]}
    return {"type": "inline", "columnNames": [], "columnTypes": [], "rows": [[]]}


def join_json(source: JoinSource, input_numbers: bool = False) -> dict:
    """Druid's join datasource: ``left`` nests the joins before, ``right`` is one input
    (``inputNumber`` k in a leaf stage of a broadcast join)."""
    left = {"type": "inputNumber", "inputNumber": 0} if input_numbers else input_datasource(source.base)
    for k, clause in enumerate(source.joins, 1):
        right = {"type": "inputNumber", "inputNumber": k} if input_numbers else input_datasource(clause.right)
        left = {"type": "join", "left": left, "right": right, "rightPrefix": clause.prefix,
                "condition": clause.condition_native(), "joinType": clause.kind,
                "joinAlgorithm": source.configured or source.algorithm}
    return left


def input_datasource(query: LogicalQuery) -> dict:
    """A join input: its source itself when the input reads it unchanged, else a query datasource."""
    plain = query.filter is None and not query.is_aggregate and query.limit is None and not query.order_by and \
        all(isinstance(e, ColumnRef) and e.name == n for n, e in query.columns)
    if plain and isinstance(query.source, InlineSource):
        return inline_json(query.source)
    if plain and not isinstance(query.source, JoinSource):
        return datasource_json(query.source)
    inner, _ = native_query(query, {})
    return {"type": "query", "query": inner}


def inline_json(source: InlineSource) -> dict:
    return {"type": "inline", "columnNames": [n for n, _ in source.signature],
            "columnTypes": [native_type(t) for _, t in source.signature], "rows": [list(r) for r in source.rows]}


def with_unnest(query: LogicalQuery, base: dict) -> dict:
    """``base`` as the query reads it: wrapped in Druid's ``unnest`` datasource under UNNEST."""
    u = query.unnest
    if u is None:
        return base
    return {"type": "unnest", "base": base,
            "virtualColumn": {"type": "expression", "name": u.name, "expression": u.expr.native(),
                              "outputType": native_type(u.expr.sql_type)},
            "unnestFilter": filter_json(u.filter) if u.filter is not None else None}


def _query_filter(query: LogicalQuery, virtual: list[dict]) -> dict | None:
    """The query's filter, less the conjuncts the unnest datasource applies (unnestFilter).
    Druid plans the filter before the projections, so its virtual columns come first."""
    if query.filter is None:
        return None
    if query.unnest is None or query.unnest.filter is None:
        return filter_json(query.filter, virtual)
    moved = {id(c) for c in _conjuncts(query.unnest.filter)}
    rest = [c for c in _conjuncts(query.filter) if id(c) not in moved]
    if not rest:
        return None
    if len(rest) == 1:
        return filter_json(rest[0], virtual)
    return {"type": "and", "fields": [filter_json(c, virtual) for c in rest]}


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Call) and e.op == "and":
        return [c for a in e.args for c in _conjuncts(a)]
    return [e]


def filter_json(e: Expr, virtual: list[dict] | None = None) -> dict:
    """Druid's DimFilter for a boolean expression (an ``expression`` filter when no
    dedicated filter type fits). ``virtual``: the query's virtual columns, which a filter on
    JSON_VALUE of a column adds its ``nested-field`` column to."""
    def column(x: Expr) -> str | None:
        if isinstance(x, ColumnRef):
            return x.name
        if isinstance(x, NestedField) and virtual is not None:
            return virtual_column_name(x, virtual)
        return None

    if isinstance(e, Call):
        if e.op in ("and", "or"):
            return {"type": e.op, "fields": [filter_json(a, virtual) for a in e.args]}
        if e.op == "not":
            return {"type": "not", "field": filter_json(e.args[0], virtual)}
        if e.op in ("isnull", "notnull") and column(e.args[0]) is not None:
            null = {"type": "null", "column": column(e.args[0])}
            return null if e.op == "isnull" else {"type": "not", "field": null}
        if e.op in _FLIP and len(e.args) == 2:
            col, lit, op = e.args[0], e.args[1], e.op
            if _match_value(col) is not None and not _match_value(lit):
                col, lit, op = lit, col, _FLIP[op]
            name, value = column(col), _match_value(lit)
            if name is not None and value:
                vt = native_type(lit.sql_type)
                equals = {"type": "equals", "column": name, "matchValueType": vt, "matchValue": value[0]}
                if op == "equal":
                    return equals
                if op == "not_equal":
                    return {"type": "not", "field": equals}
                if not isinstance(value[0], list):
                    side, open_ = _RANGE[op]
                    return {"type": "range", "column": name, "matchValueType": vt, side: value[0],
                            f"{side}Open": open_}
        like = re.fullmatch(r"like\(\{0\},'((?:[^'\\]|\\.)*)'\)", e.native_fmt) if e.op == "like" else None
        if like and isinstance(e.args[0], ColumnRef) and "\\" not in like.group(1):
            # a plain pattern (no ESCAPE, nothing escaped): Druid's like filter
            return {"type": "like", "dimension": e.args[0].name, "pattern": like.group(1)}
    return {"type": "expression", "expression": e.native()}


def _match_value(e: Expr) -> tuple | None:
    """(value,) of a literal a filter can match: a non-NULL literal or an ARRAY[...] of literals."""
    if isinstance(e, Literal):
        return (e.value,) if e.value is not None else None
    if isinstance(e, Call) and e.op == "array" and all(isinstance(a, Literal) for a in e.args):
        return ([a.value for a in e.args],)
    return None


def virtual_column(name: str, e: Expr) -> dict:
    """The virtual column named ``name`` computing ``e``: JSON_VALUE of a column at a path is
    Druid's ``nested-field`` column (``NestedFieldVirtualColumn`` as Jackson writes it),
    anything else an ``expression`` column."""
    if isinstance(e, NestedField):
        parts = [{"type": "arrayElement", "index": p} if isinstance(p, int) else {"type": "field", "field": p}
                 for p in parse_path(e.path, "json_value")]
        return {"type": "nested-field", "columnName": e.column, "outputName": name,
                "expectedType": native_type(e.sql_type), "pathParts": parts, "processFromRaw": False}
    return {"type": "expression", "name": name, "expression": e.native(), "outputType": native_type(e.sql_type)}


def virtual_column_name(e: Expr, virtual: list[dict]) -> str:
    """The name of the virtual column computing ``e``, added to ``virtual`` unless it is there
    (Druid's VirtualColumnRegistry gives one expression one column)."""
    for v in virtual:
        name = v.get("outputName", v.get("name"))
        if v == virtual_column(name, e):
            return name
    name = f"v{len(virtual)}"
    virtual.append(virtual_column(name, e))
    return name


def _intervals() -> dict:
    return {"type": "intervals", "intervals": [ETERNITY]}


def post_aggregations(columns: list[tuple[str, Expr]]) -> tuple[list[dict], list[tuple[str, str]]]:
    """A groupBy's SELECT list as Druid's expression post-aggregators (p0, p1 ...) and the
    (queryColumn, outputColumn) mappings; plain column references map to themselves."""
    named, mappings = [], []
    for name, e in columns:
        if isinstance(e, ColumnRef):
            mappings.append((e.name, name))
        else:
            q = f"p{len(named)}"
            named.append({"type": "expression", "name": q, "expression": e.native(),
                          "outputType": native_type(e.sql_type)})
            mappings.append((q, name))
    return named, mappings


def scan_query(query: LogicalQuery, context: dict, datasource: dict | None = None,
               order_by: list[tuple] | None = None) -> tuple[dict, list[tuple[str, str]]]:
    virtual: list[dict] = []
    filt = _query_filter(query, virtual)
    mappings = [(_dimension_of(e, virtual), name) for name, e in query.columns[: len(query.columns) - query.hidden]]
    types = {q: native_type(e.sql_type) for (q, _), (_, e) in zip(mappings, query.columns)}
    columns = sorted(types)
    native = {"queryType": "scan", "dataSource": with_unnest(query, datasource or datasource_json(query.source)),
              "intervals": _intervals()}
    if virtual:
        native["virtualColumns"] = virtual
    native["resultFormat"] = "compactedList"
    if query.limit is not None:
        native["limit"] = query.limit + query.offset
    if filt is not None:
        native["filter"] = filt
    native["columns"] = columns
    native["columnTypes"] = [types[c] for c in columns]
    native["legacy"] = False
    if order_by:
        native["orderBy"] = [{"columnName": c, "order": "descending" if d else "ascending"} for c, d, *_ in order_by]
    native["context"] = dict(context, scanSignature=json.dumps(
        [{"name": c, "type": types[c]} for c in columns], separators=(",", ":")))
    native["granularity"] = {"type": "all"}
    return native, mappings


_AGG_TYPES = {("sum", "LONG"): "longSum", ("sum", "DOUBLE"): "doubleSum", ("sum", "FLOAT"): "floatSum",
              ("min", "LONG"): "longMin", ("min", "DOUBLE"): "doubleMin", ("min", "FLOAT"): "floatMin",
              ("max", "LONG"): "longMax", ("max", "DOUBLE"): "doubleMax", ("max", "FLOAT"): "floatMax",
              ("min", "STRING"): "stringFirst", ("max", "STRING"): "stringLast"}


_TYPED = {"first": "First", "last": "Last", "any": "Any"}


def _dimension_of(e: Expr, virtual: list[dict]) -> str:
    """The column a projection, dimension or aggregator reads: a source column, or a
    virtual column."""
    return e.name if isinstance(e, ColumnRef) else virtual_column_name(e, virtual)


def _aggregators_json(a, virtual: list[dict]) -> list[dict]:
    """The Druid aggregators a SQL aggregation plans to (AVG: a sum and a count, divided by
    a post-aggregator; filtered when it has FILTER)."""
    field = {}
    if a.arg is not None:
        field = {"fieldName": a.arg.name} if isinstance(a.arg, ColumnRef) else {"expression": a.arg.native()}
    t = native_type(PAIR_VALUE_TYPES.get(a.arg.sql_type, a.arg.sql_type)) if a.arg is not None else "LONG"
    prefix = {"LONG": "long", "DOUBLE": "double", "FLOAT": "float", "STRING": "string"}.get(t, "")
    if a.kind == "count_all":
        agg = {"type": "count", "name": a.name}
    elif a.kind == "count":
        agg = {"type": "filtered", "aggregator": {"type": "count", "name": a.name},
               "filter": filter_json(Call("notnull", [a.arg], "BOOLEAN", None, "notnull({0})")), "name": a.name}
    elif a.kind == "approx_count_distinct" and a.arg.sql_type.startswith("COMPLEX<hyperUnique>"):
        agg = {"type": "hyperUnique", "name": a.name, "fieldName": a.arg.name, "isInputHyperUnique": False,
               "round": True}
    elif a.kind in ("approx_count_distinct", "count_distinct"):
        # APPROX_COUNT_DISTINCT_BUILTIN; an exact COUNT(DISTINCT) is a nested groupBy (query.py
        # _nest_count_distinct) unless mixed with other aggregations
        dim = _dimension_of(a.arg, virtual)
        agg = {"type": "cardinality", "name": a.name, "fields": [
            {"type": "default", "dimension": dim, "outputName": dim, "outputType": t}], "byRow": False,
            "round": True}
    elif a.kind == "avg":
        parts = [{"type": "doubleSum" if t != "LONG" else "longSum", "name": a.name + ":sum", **field},
                 {"type": "filtered", "aggregator": {"type": "count", "name": a.name + ":count"},
                  "filter": filter_json(Call("notnull", [a.arg], "BOOLEAN", None, "notnull({0})")),
                  "name": a.name + ":count"}]
        return [_filtered(p, a.filter) for p in parts]
    elif a.kind in ("earliest", "latest", "any_value"):
        kind = {"earliest": "first", "latest": "last", "any_value": "any"}[a.kind]
        agg = {"type": prefix + _TYPED[kind], "name": a.name, **field}
        if a.kind != "any_value" and a.time is not None and not (isinstance(a.time, ColumnRef)
                                                                 and a.time.name == "__time"):
            agg["timeColumn"] = a.time.native().strip('"')
    elif a.kind.startswith("array_agg"):
        dim = _dimension_of(a.arg, virtual)
        element = {"STRING": "STRING", "LONG": "LONG", "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE"}[t]
        fold, combine = ("array_set_add", "array_set_add_all") if a.kind.endswith("distinct") else \
            ("array_append", "array_concat")
        agg = {"type": "expression", "name": a.name, "fields": [dim], "accumulatorIdentifier": "__acc",
               "initialValue": f"ARRAY<{element}>[]", "initialCombineValue": f"ARRAY<{element}>[]",
               "isNullUnlessAggregated": True, "shouldAggregateNullInputs": True,
               "shouldCombineAggregateNullInputs": False, "fold": f'{fold}("__acc", "{dim}")',
               "combine": f'{combine}("__acc", "{a.name}")', "maxSizeBytes": a.max_bytes}
    elif a.kind.startswith("string_agg"):
        agg = {"type": "expression", "name": a.name, "fields": [a.arg.native().strip('"')],
               "accumulatorIdentifier": "__acc", "initialValue": "[]",
               "fold": f"array_set_add(\"__acc\", {a.arg.native()})" if "distinct" in a.kind else
               f"array_append(\"__acc\", {a.arg.native()})",
               "finalize": f"if(array_length(o) == 0, null, array_to_string(o, '{a.separator}'))"}
    else:
        agg = {"type": _AGG_TYPES[(a.kind, t)], "name": a.name, **field}
    return [_filtered(agg, a.filter)]


def _filtered(agg: dict, condition) -> dict:
    if condition is None:
        return agg
    return {"type": "filtered", "aggregator": agg, "filter": filter_json(condition), "name": agg["name"]}


def group_by_query(query: LogicalQuery, context: dict, datasource: dict | None = None
                   ) -> tuple[dict, list[tuple[str, str]]]:
    virtual: list[dict] = []
    filt = _query_filter(query, virtual)
    dims = [{"type": "default", "dimension": _dimension_of(e, virtual), "outputName": name,
             "outputType": native_type(e.sql_type)} for name, e in query.group_by]
    aggs = [j for a in query.aggregations for j in _aggregators_json(a, virtual)]
    native = {"queryType": "groupBy", "dataSource": with_unnest(query, datasource or datasource_json(query.source)),
              "intervals": _intervals()}
    if virtual:
        native["virtualColumns"] = virtual
    if filt is not None:
        native["filter"] = filt
    native["granularity"] = {"type": "all"}
    native["dimensions"] = dims
    native["aggregations"] = aggs
    post, mappings = post_aggregations(query.columns)
    if post:
        native["postAggregations"] = post
    if query.having is not None:
        native["having"] = {"type": "filter", "filter": filter_json(query.having), "finalize": True}
    if query.order_by or query.limit is not None:
        by_output = {out: q for q, out in mappings}
        spec = {"type": "default", "columns": [
            {"dimension": by_output.get(c, c), "direction": "descending" if d else "ascending",
             "dimensionOrder": {"type": "lexicographic"}} for c, d, *_ in query.order_by]}
        if query.limit is not None:
            spec["limit"] = query.limit
        if query.offset:
            spec["offset"] = query.offset
        native["limitSpec"] = spec
    native["context"] = dict(context)
    return native, mappings


def native_query(query: LogicalQuery, context: dict, datasource: dict | None = None,
                 order_by: list[tuple] | None = None) -> tuple[dict, list[tuple[str, str]]]:
    if query.window is not None:
        return window_query(query, context, datasource)
    if query.is_aggregate:
        return group_by_query(query, context, datasource)
    return scan_query(query, context, datasource, order_by)


def base_query(query: LogicalQuery) -> LogicalQuery:
    """The scan or groupBy under a windowed query: its window inputs, unordered and unlimited."""
    return dataclasses.replace(query, window=None, order_by=[], limit=None, offset=0, hidden=0)


# Druid's window processors (org.apache.druid.query.operator.window), by SQL function
_PROCESSORS = {"ROW_NUMBER": "rowNumber", "RANK": "rank", "DENSE_RANK": "rank", "PERCENT_RANK": "rank",
               "CUME_DIST": "cumeDist", "NTILE": "percentile", "LAG": "offset", "LEAD": "offset",
               "FIRST_VALUE": "first", "LAST_VALUE": "last"}


def window_query(query: LogicalQuery, context: dict, datasource: dict | None = None) -> tuple[dict, list]:
    """Druid's ``windowOperator`` query: sort, partition and window operators over the base
    query (a ``query`` datasource), one operator chain per distinct window."""
    inner, _ = native_query(base_query(query), context, datasource)
    operators = []
    for spec in query.window.specs:
        keys = [(c, False) for c in spec.partition_by] + [(c, d) for c, d, *_ in spec.order_by]
        if keys:
            operators.append({"type": "naiveSort", "columns": [
                {"column": c, "direction": "DESC" if d else "ASC"} for c, d in keys]})
        operators.append({"type": "naivePartition", "partitionColumns": list(spec.partition_by)})
        processors = []
        for call in spec.calls:
            kind = _PROCESSORS.get(call.function, "framedAgg")
            processor = {"type": kind, "outputColumn": call.name}
            if call.argument is not None:
                processor["inputColumn"] = call.argument
            if call.constants:
                processor["constants"] = list(call.constants)
            if kind == "framedAgg":
                processor = {"type": "framedAgg", "frame": _frame_json(call.frame, bool(spec.order_by)),
                             "aggregations": [{"type": call.function.lower(), "name": call.name,
                                               "fieldName": call.argument}]}
            processors.append(processor)
        operators.append({"type": "window", "processor": processors[0] if len(processors) == 1 else
                          {"type": "composing", "processors": processors}})
    native = {"queryType": "windowOperator", "dataSource": {"type": "query", "query": inner},
              "intervals": _intervals(), "context": context,
              "outputSignature": [{"name": n, "type": native_type(t)} for n, t in query.output],
              "operatorDefinition": operators, "leafOperators": [], "granularity": {"type": "all"}}
    return native, [(n, n) for n, _ in query.output]


def _frame_json(frame, ordered: bool) -> dict:
    if frame is None:
        return {"type": "rows" if not ordered else "range", "lowerOffset": None, "upperOffset": None if not ordered
                else 0}
    return {"type": "rows" if frame.rows else "range", "lowerOffset": frame.lower, "upperOffset": frame.upper}
