"""Vectorized relational operators over Arrow tables, shared by stage processors and the
synchronous SQL endpoint: filter + project, partial and final aggregation, order + limit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from msqcore.engine import aggregate, window
from msqcore.planner.expressions import arrow_type

if TYPE_CHECKING:
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


def partial_aggregate(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """groupByPreShuffle: WHERE, then per-group partial states of one batch."""
    return aggregate.partial(apply_filter(table, query), query)


def final_aggregate(partials: pa.Table, query: LogicalQuery) -> pa.Table:
    """groupByPostShuffle: combine partial states, then HAVING and the SELECT list."""
    combined = aggregate.combine(partials, query)
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


def sort_keys(order_by) -> list[tuple[str, str, str]]:
    """(column, descending[, nulls_first]) → pyarrow sort keys. Druid's default puts nulls
    first ascending and last descending."""
    out = []
    for column, desc, *nulls in order_by:
        nulls_first = nulls[0] if nulls and nulls[0] is not None else not desc
        out.append((column, "descending" if desc else "ascending", "at_start" if nulls_first else "at_end"))
    return out


def order_limit(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """The last step of a SELECT, on all its rows: window functions, ORDER BY, OFFSET, LIMIT."""
    if query.window is not None:
        table = windows(table, query)
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
    if query.limit is None or query.window is not None:  # windows need every row
        return table
    keep = query.offset + query.limit
    if query.order_by and table.num_rows > keep:
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys(query.order_by))[:keep])
    elif not query.order_by:
        table = table.slice(0, keep)
    return table


def windows(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """Window functions over the base query's columns, then the final SELECT list."""
    plan = query.window
    for spec in plan.specs:
        table = window.apply_window(table, spec, plan.max_rows)
    return pa.table([e.materialize(table) for _, e in plan.columns], names=[n for n, _ in plan.columns])


def run_local(source: pa.Table, query: LogicalQuery) -> pa.Table:
    """The whole query in this process (the synchronous SQL endpoint)."""
    if query.is_aggregate:
        partials = partial_aggregate(source, query)
        result = final_aggregate(partials, query)
    else:
        result = scan(source, query)
    return order_limit(result, query)
