"""Vectorized relational operators over Arrow tables, shared by stage processors and the
synchronous SQL endpoint: filter + project, partial and final aggregation, order + limit.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from msqcore.planner.expressions import arrow_type
from msqcore.planner.query import LogicalQuery


def scan(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """WHERE then the SELECT list (scan queries) for one batch of source rows."""
    table = apply_filter(table, query)
    return pa.table([e.materialize(table) for _, e in query.columns], names=[n for n, _ in query.columns]) \
        if query.columns else pa.table({})


def apply_filter(table: pa.Table, query: LogicalQuery) -> pa.Table:
    if query.filter is None:
        return table
    mask = query.filter.eval(table)
    if isinstance(mask, pa.Scalar):
        return table if mask.as_py() else table.slice(0, 0)
    return table.filter(pc.fill_null(mask, False))


# --- aggregation -------------------------------------------------------------------------------
# Partial states: count → int64 count; sum/min/max → the value; avg → (sum, count);
# count_distinct → the distinct (keys, value) rows themselves.

def partial_aggregate(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """Group one batch of source rows into partial aggregation states."""
    table = apply_filter(table, query)
    cols, names = [], []
    for name, e in query.group_by:
        cols.append(e.materialize(table))
        names.append(name)
    inputs = {}
    for agg in query.aggregations:
        if agg.arg is not None:
            inputs[agg.name] = agg.arg.materialize(table)
    work = pa.table(cols + list(inputs.values()) + [pa.nulls(table.num_rows, pa.int8())],
                    names=names + list(inputs) + ["__rows"])
    keys = names
    if any(a.kind == "count_distinct" for a in query.aggregations):
        # Exact distinct counting: partials are the distinct (keys, value) pairs; other
        # aggregations are refused with it for now (one distinct aggregation per query).
        agg = query.aggregations[0]
        return work.select(keys + [agg.name]).group_by(keys + [agg.name]).aggregate([])
    specs, out_names = [], []
    for agg in query.aggregations:
        if agg.kind == "count_all":
            specs.append(([], "count_all"))
            out_names.append(agg.name)
        elif agg.kind == "count":
            specs.append((agg.name, "count"))
            out_names.append(agg.name)
        elif agg.kind == "avg":
            specs += [(agg.name, "sum"), (agg.name, "count")]
            out_names += [agg.name + ":sum", agg.name + ":count"]
        else:
            specs.append((agg.name, agg.kind))
            out_names.append(agg.name)
    grouped = work.group_by(keys, use_threads=False).aggregate(specs)
    # pyarrow names outputs "<col>_<fn>"; put them back in our order and names.
    return pa.table([grouped.column(c) for c in keys] + _agg_columns(grouped, keys),
                    names=keys + out_names) if specs else grouped.select(keys)


def _agg_columns(grouped: pa.Table, keys: list[str]) -> list:
    # pyarrow names aggregate outputs "<col>_<fn>"; they are the non-key columns, in spec order.
    return [grouped.column(i) for i, n in enumerate(grouped.column_names) if n not in keys]


def final_aggregate(partials: pa.Table, query: LogicalQuery) -> pa.Table:
    """Combine partial states and finish the query: post-aggregation outputs, HAVING."""
    keys = [n for n, _ in query.group_by]
    if any(a.kind == "count_distinct" for a in query.aggregations):
        agg = query.aggregations[0]
        distinct = partials.group_by(keys + [agg.name]).aggregate([])
        combined = distinct.group_by(keys).aggregate([(agg.name, "count")])
        combined = combined.rename_columns(keys + [agg.name])
        if not keys and combined.num_rows == 0:
            combined = pa.table({agg.name: pa.array([0], pa.int64())})
    else:
        specs, out = [], []
        for agg in query.aggregations:
            if agg.kind == "avg":
                specs += [(agg.name + ":sum", "sum"), (agg.name + ":count", "sum")]
                out += [agg.name + ":sum", agg.name + ":count"]
            else:
                specs.append((agg.name, "sum" if agg.kind in ("count", "count_all") else agg.kind))
                out.append(agg.name)
        grouped = partials.group_by(keys, use_threads=False).aggregate(specs)
        cols = [grouped.column(k) for k in keys] + _agg_columns(grouped, keys)
        combined = pa.table(cols, names=keys + out)
        for agg in query.aggregations:
            if agg.kind == "avg":
                total = combined.column(agg.name + ":sum")
                count = combined.column(agg.name + ":count")
                avg = pc.divide(pc.cast(total, pa.float64()),
                                pc.cast(pc.if_else(pc.equal(count, 0), pa.scalar(None, pa.int64()), count), pa.float64()))
                combined = combined.append_column(agg.name, avg)
            elif agg.kind in ("count", "count_all"):
                combined = combined.set_column(combined.column_names.index(agg.name), agg.name,
                                               pc.fill_null(pc.cast(combined.column(agg.name), pa.int64()), 0))
    for agg in query.aggregations:
        want = arrow_type(agg.sql_type)
        col = combined.column(agg.name)
        if col.type != want:
            combined = combined.set_column(combined.column_names.index(agg.name), agg.name, pc.cast(col, want))
    if query.having is not None:
        mask = query.having.eval(combined)
        combined = combined.filter(pc.fill_null(mask, False)) if not isinstance(mask, pa.Scalar) else \
            (combined if mask.as_py() else combined.slice(0, 0))
    return pa.table([e.materialize(combined) for _, e in query.columns], names=[n for n, _ in query.columns])


def empty_partials(query: LogicalQuery) -> pa.Table:
    """Partials for no input rows (so a global aggregate over nothing still yields one row)."""
    return partial_aggregate(empty_source(query), query)


def empty_source(query: LogicalQuery) -> pa.Table:
    """A table of the query's source columns with no rows."""
    return pa.table([pa.array([], arrow_type(t)) for _, t in query.source.signature],
                    names=[n for n, _ in query.source.signature]) if query.source.signature else pa.table({})


# --- ordering -------------------------------------------------------------------------------------


def sort_keys(order_by: list[tuple[str, bool]]) -> list[tuple[str, str, str]]:
    """Druid's ordering: nulls first ascending, last descending."""
    return [(c, "descending" if desc else "ascending", "at_end" if desc else "at_start") for c, desc in order_by]


def order_limit(table: pa.Table, query: LogicalQuery) -> pa.Table:
    if query.order_by and table.num_rows > 1:
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys(query.order_by)))
    if query.offset or query.limit is not None:
        end = None if query.limit is None else query.offset + query.limit
        table = table.slice(query.offset, None if end is None else max(0, end - query.offset))
    if query.hidden:
        table = table.select([n for n, _ in query.output])
    return table


def local_limit(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """What one worker may keep of its rows before the final ORDER BY/LIMIT."""
    if query.limit is None:
        return table
    keep = query.offset + query.limit
    if query.order_by and table.num_rows > keep:
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys(query.order_by))[:keep])
    elif not query.order_by:
        table = table.slice(0, keep)
    return table


def run_local(source: pa.Table, query: LogicalQuery) -> pa.Table:
    """The whole query in this process (the synchronous SQL endpoint)."""
    if query.is_aggregate:
        partials = partial_aggregate(source, query)
        result = final_aggregate(partials, query)
    else:
        result = scan(source, query)
    return order_limit(result, query)
