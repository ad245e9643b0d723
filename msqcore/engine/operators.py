"""Vectorized relational operators over Arrow tables, shared by stage processors and the
synchronous SQL endpoint: filter + project, partial and final aggregation, order + limit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.engine import aggregate, unnest, window
from msqcore.planner import arrays
from msqcore.planner.expressions import arrow_type

if TYPE_CHECKING:
    from msqcore.planner.query import LogicalQuery


def scan(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """WHERE then the SELECT list (scan queries) for one batch of source rows."""
    table = apply_filter(table, query)
    return pa.table([_output(e, table) for _, e in query.columns], names=[n for n, _ in query.columns]) \
        if query.columns else pa.table({})


def _output(e, table: pa.Table) -> pa.Array:
    """An output column. COMPLEX values (stored sketches, rollup states) leave as base64
    text: the form Druid shows them in, and one the shuffle's frames can carry."""
    column = e.materialize(table)
    return to_base64(column) if e.sql_type.startswith("COMPLEX<") and e.sql_type != "COMPLEX<json>" else column


def apply_filter(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """UNNEST (if any), then WHERE."""
    if query.unnest is not None:
        table = unnest.explode(table, query.unnest)
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
    return finish_aggregate(aggregate.combine(partials, query), query)


def finish_aggregate(combined: pa.Table, query: LogicalQuery) -> pa.Table:
    """HAVING and the SELECT list over the combined groups (``aggregate.combine``'s table)."""
    if query.having is not None:
        mask = query.having.eval(combined)
        combined = combined.filter(pc.fill_null(mask, False)) if not isinstance(mask, pa.Scalar) else \
            (combined if mask.as_py() else combined.slice(0, 0))
    return pa.table([_output(e, combined) for _, e in query.columns], names=[n for n, _ in query.columns])


def stored_columns(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """The table as a segment stores it: COMPLEX outputs (base64 text in transit) back to
    bytes, typed by their ``druid_type`` field metadata."""
    schema = table.schema  # read once: set_column changes only the column it sets
    index: dict[str, int] = {}
    for i, name in enumerate(schema.names):
        index.setdefault(name, i)
    for name, sql_type in query.output:
        i = index.get(name)
        if i is None:
            continue
        field = schema.field(i)
        if sql_type == "VARCHAR" and pa.types.is_list(field.type):
            # a multi-value string: values sorted within each row (multiValueHandling SORTED_ARRAY)
            table = table.set_column(i, name, arrays.sort_values(table.column(i).combine_chunks()))
        elif sql_type == "VARCHAR ARRAY":
            # a string ARRAY column, not a multi-value string (both are list<string>)
            table = table.set_column(i, pa.field(name, field.type, metadata={b"druid_type": b"ARRAY<STRING>"}),
                                     table.column(i))
        elif sql_type == "COMPLEX<json>":  # JSON text, stored as it is
            table = table.set_column(i, pa.field(name, pa.string(), metadata={b"druid_type": b"COMPLEX<json>"}),
                                     table.column(i))
        elif sql_type.startswith("COMPLEX<"):
            values = from_base64(table.column(i))
            table = table.set_column(i, pa.field(name, pa.binary(), metadata={b"druid_type": sql_type.encode()}),
                                     values)
    return table


# --- base64 over whole arrays (Jackson's form of byte[] values) ------------------------------

_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8)
_B64_INDEX = np.zeros(256, dtype=np.uint32)
_B64_INDEX[_B64] = np.arange(64, dtype=np.uint32)


def _gather(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Each value's bytes padded with zeros to ``widths``, concatenated."""
    owner = np.repeat(np.arange(len(widths)), widths)
    j = np.arange(int(widths.sum())) - np.repeat(np.cumsum(widths) - widths, widths)
    inside = j < lengths[owner]
    src = np.where(inside, starts[owner] + j, 0)
    return np.where(inside, data[src] if len(data) else 0, 0).astype(np.uint8)


def _string_array(chars: np.ndarray, lengths: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out = pa.Array.from_buffers(type_, len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(chars)])
    return out if valid.all() else pc.if_else(pa.array(valid), out, pa.scalar(None, type_))


def to_base64(values) -> pa.Array:
    offsets, data, valid = aggregate.binary_buffers(values)
    lengths = np.diff(offsets)
    padded = (lengths + 2) // 3 * 3
    triples = _gather(data, offsets[:-1], lengths, padded).reshape(-1, 3).astype(np.uint32)
    v = (triples[:, 0] << 16) | (triples[:, 1] << 8) | triples[:, 2]
    chars = _B64[np.stack([v >> 18, (v >> 12) & 63, (v >> 6) & 63, v & 63], axis=1).ravel()]
    out_lengths = padded // 3 * 4
    ends = np.cumsum(out_lengths)
    for k in (1, 2):  # '=' for the bytes added to fill the last triple
        chars[(ends - k)[padded - lengths >= k]] = ord("=")
    return pc.cast(_string_array(chars, out_lengths, valid, pa.large_string()), pa.string())


def from_base64(values) -> pa.Array:
    offsets, data, valid = aggregate.binary_buffers(values)
    lengths = np.diff(offsets)
    codes = _B64_INDEX[_gather(data, offsets[:-1], lengths, lengths)].reshape(-1, 4)
    v = (codes[:, 0] << 18) | (codes[:, 1] << 12) | (codes[:, 2] << 6) | codes[:, 3]
    decoded = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=1).ravel().astype(np.uint8)
    pads = np.zeros(len(lengths), dtype=np.int64)
    for k in (1, 2):
        last = offsets[1:] - k
        pads += (lengths >= k) & (data[np.maximum(last, 0)] == ord("=")) if len(data) else 0
    full = lengths // 4 * 3
    out_lengths = full - pads
    keep = _gather(np.ones(len(decoded), np.uint8), np.cumsum(full) - full, out_lengths, full).astype(bool)
    return pc.cast(_string_array(decoded[keep], out_lengths, valid, pa.large_binary()), pa.binary())


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


def sort_indices(table: pa.Table, order_by) -> pa.Array:
    """Row order for ``order_by`` (see ``sort_keys``); ARRAY and multi-value columns order
    element by element, as Druid orders them, and NaN is greater than +Infinity (Java's
    ``Double.compare``, as the frame keys order it; Arrow's sort puts NaN next to the nulls)."""
    columns, keys = [], []
    for column, direction, nulls in sort_keys(order_by):
        col = table.column(column)
        if pa.types.is_list(col.type):
            col = arrays.sort_keys(col.combine_chunks())
        elif pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py():
            columns.append(pc.is_nan(col))  # false, then true (NaN); null rows stay null
            keys.append((f"k{len(keys)}", direction, nulls))
        columns.append(col)
        keys.append((f"k{len(keys)}", direction, nulls))
    return pc.sort_indices(pa.table(columns, names=[k for k, _, _ in keys]), sort_keys=keys)


def order_limit(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """The last step of a SELECT, on all its rows: window functions, ORDER BY, OFFSET, LIMIT."""
    if query.window is not None:
        table = windows(table, query)
    if query.order_by and table.num_rows > 1:
        table = table.take(sort_indices(table, query.order_by))
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
        table = table.take(sort_indices(table, query.order_by)[:keep])
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
