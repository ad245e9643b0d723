"""Grouped aggregation in two steps, like Druid's groupByPreShuffle / groupByPostShuffle:
``partial`` turns source rows into per-group states on each worker, ``combine`` merges the
states of all workers and finishes the values.

Every row gets a group number once (hash grouping, null keys included); each aggregation
then reduces its own input per group number and is scattered back into group order, so
aggregations with different inputs (FILTER, EARLIEST's time order) never need a join.
When every aggregation is an unfiltered COUNT, SUM, MIN or MAX (a rollup's usual metrics),
one hash aggregation computes them all at once instead (``_grouped_once``).

Partial states, per aggregation ``a``: count/count_all → ``a`` (int64); sum/min/max/
any_value → ``a``; avg → ``a:sum`` and ``a:count``; earliest/latest → ``a`` and ``a:time``;
count_distinct (exact) and string_agg → ``a`` as the list of (distinct) values;
approx_count_distinct → ``a`` as a serialized HyperLogLogCollector (engine/hll.py).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.broker import QueryUnknownException
from msqcore.engine import hll
from msqcore.planner import arrays
from msqcore.errors import InvalidInput
from msqcore.planner.expressions import HYPER_UNIQUE, PAIR_VALUE_TYPES, arrow_type, native_type
from msqcore.planner.query import Aggregation, LogicalQuery


def group_ids(keys: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The distinct key rows and each input row's group number (a global aggregation,
    with no keys, is one group even over no rows)."""
    n = keys.num_rows
    if keys.num_columns == 0:
        return pa.table({"__g": [0]}).select([]), np.zeros(n, dtype=np.int64)
    # ARRAY keys group by an exact binary surrogate; each group shows its first row's array
    arrays_at = {i: c.combine_chunks() for i, c in enumerate(keys.columns) if pa.types.is_list(c.type)}
    for i, col in arrays_at.items():
        keys = keys.set_column(i, keys.column_names[i], arrays.group_keys(col))
    rows = keys.append_column("__row", pa.array(np.arange(n, dtype=np.int64)))
    grouped = rows.group_by(keys.column_names, use_threads=False).aggregate([("__row", "list")])
    lists = grouped.column("__row_list").combine_chunks()
    gid = np.empty(n, dtype=np.int64)
    gid[pc.list_flatten(lists).to_numpy()] = pc.list_parent_indices(lists).to_numpy()
    out = grouped.drop_columns(["__row_list"])
    if arrays_at:
        first = pc.list_element(lists, 0)
        for i, col in arrays_at.items():
            out = out.set_column(i, out.column_names[i], col.take(first))
    return out, gid


_ONE_PASS = ("count_all", "count", "sum", "min", "max")


def _one_pass(keys: pa.Table, aggregations: list[Aggregation]) -> bool:
    """Whether one hash aggregation computes every state: grouping keys without arrays,
    and only unfiltered counts, sums, mins and maxes (the rollup's usual metrics)."""
    return keys.num_columns > 0 and not any(pa.types.is_list(t) for t in keys.schema.types) and \
        all(a.kind in _ONE_PASS and a.filter is None for a in aggregations)


def _grouped_once(keys: pa.Table, aggs: list, combining: bool = False) -> pa.Table:
    """``partial`` (or ``combine``) in one Acero group-by: ``aggs`` holds (aggregation, Acero
    function, input values); the same functions ``_reduce`` applies one at a time, so the
    states are the same, without the per-row group numbers and one pass per aggregation."""
    first = keys.column(0)
    inputs = keys
    specs = []
    for i, (agg, how, values) in enumerate(aggs):
        name = f"__in{i}"
        if how == "count_all":  # every row counts: any column, nulls included
            inputs = inputs.append_column(name, first)
            specs.append((name, "count", pc.CountOptions(mode="all")))
        else:
            inputs = inputs.append_column(name, values)
            specs.append((name, how))
    grouped = inputs.group_by(keys.column_names, use_threads=False).aggregate(specs)
    out = grouped.select(keys.column_names)
    for i, (agg, how, _) in enumerate(aggs):
        col = grouped.column(f"__in{i}_{'count' if how == 'count_all' else how}")
        if combining and agg.kind in ("count_all", "count"):
            col = pc.fill_null(col, 0)
        elif combining:
            want = arrow_type(agg.sql_type)
            col = col if col.type == want else pc.cast(col, want)
        out = out.append_column(agg.name, col)
    return out


def _scatter(gids: pa.ChunkedArray, values: pa.ChunkedArray, groups: int) -> pa.Array:
    """Values reduced per group number → an array in group order (null for absent groups)."""
    pos = np.full(groups, -1, dtype=np.int64)
    pos[gids.to_numpy()] = np.arange(len(gids))
    return values.take(pa.array(pos, mask=pos < 0))


def _reduce(gid: np.ndarray, values, how: str, groups: int, options=None) -> pa.Array:
    table = pa.table({"gid": gid, "v": values})
    out = table.group_by("gid", use_threads=False).aggregate([("v", how, options) if options else ("v", how)])
    return _scatter(out.column("gid"), out.column(1), groups)


def _first_by_time(gid: np.ndarray, values, times, groups: int, latest: bool) -> tuple[pa.Array, pa.Array]:
    """Per group, the non-null value with the smallest (largest) time, and that time."""
    table = pa.table({"gid": gid, "v": values, "t": times})
    table = table.filter(pc.and_(pc.is_valid(table.column("v")), pc.is_valid(table.column("t"))))
    table = table.take(pc.sort_indices(table, sort_keys=[("gid", "ascending"),
                                                        ("t", "descending" if latest else "ascending")]))
    out = table.group_by("gid", use_threads=False).aggregate([("v", "first"), ("t", "first")])
    return _scatter(out.column("gid"), out.column(1), groups), _scatter(out.column("gid"), out.column(2), groups)


def _masked(values, mask):
    return values if mask is None else pc.if_else(mask, values, pa.scalar(None, values.type))


def _unnest_multi_values(keys: pa.Table, table: pa.Table, query: LogicalQuery) -> tuple[pa.Table, pa.Table]:
    """Grouping on a multi-value string groups each row under each of its values (an empty
    row under NULL), as Druid's groupBy does unless groupByEnableMultiValueUnnesting=false."""
    for i, (name, e) in enumerate(query.group_by or []):
        col = keys.column(i)
        if not (e.sql_type == "VARCHAR" and pa.types.is_list(col.type)):
            continue
        col = col.combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        if not query.multi_value_unnesting and (lengths > 1).any():
            raise InvalidInput(
                f"Encountered multi-value dimension [{getattr(e, 'name', name)}] that cannot be processed with "
                "'groupByEnableMultiValueUnnesting' set to false. Consider setting "
                "'groupByEnableMultiValueUnnesting' to true in your query context.")
        rows, values = arrays.value_rows(col)
        take = pa.array(rows)
        keys = keys.take(take).set_column(i, name, values)
        table = table.take(take)
    return keys, table


def partial(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """Partial states of one batch of (already filtered) source rows."""
    keys = pa.table([e.materialize(table) for _, e in query.group_by], names=[n for n, _ in query.group_by]) \
        if query.group_by else table.select([])
    keys, table = _unnest_multi_values(keys, table, query)
    if _one_pass(keys, query.aggregations):
        return _grouped_once(keys, [(a, a.kind, None if a.kind == "count_all" else a.arg.materialize(table))
                                    for a in query.aggregations])
    out, gid = group_ids(keys)
    groups = out.num_rows
    for agg in query.aggregations:
        mask = None
        if agg.filter is not None:
            mask = pc.fill_null(agg.filter.materialize(table), 0)
            mask = pc.cast(mask, pa.bool_())
        if agg.kind == "count_all":
            ones = pa.array(np.ones(table.num_rows, dtype=np.int64))
            out = out.append_column(agg.name, pc.fill_null(_reduce(gid, _masked(ones, mask), "count", groups), 0))
            continue
        values = _masked(agg.arg.materialize(table), mask)
        if agg.kind == "count":
            out = out.append_column(agg.name, pc.fill_null(_reduce(gid, values, "count", groups), 0))
        elif agg.kind in ("sum", "min", "max"):
            out = out.append_column(agg.name, _reduce(gid, values, agg.kind, groups))
        elif agg.kind == "avg":
            out = out.append_column(agg.name + ":sum", _reduce(gid, values, "sum", groups))
            out = out.append_column(agg.name + ":count", pc.fill_null(_reduce(gid, values, "count", groups), 0))
        elif agg.kind == "any_value":
            out = out.append_column(agg.name, _reduce(gid, values, "first", groups))
        elif agg.kind in ("earliest", "latest"):
            if agg.arg.sql_type in PAIR_VALUE_TYPES:  # stored pairs (rollup metric) carry their own time
                times, values = pairs_from_binary(values, PAIR_VALUE_TYPES[agg.arg.sql_type])
                values = _masked(values, mask)
            else:
                times = agg.time.materialize(table)
            value, time = _first_by_time(gid, values, times, groups, agg.kind == "latest")
            out = out.append_column(agg.name, value).append_column(agg.name + ":time", time)
        elif agg.kind == "approx_count_distinct":
            regs = hll.new(groups)
            if agg.arg.sql_type == HYPER_UNIQUE:  # a stored collector (rollup metric): fold it
                hll.fold_binary(regs, gid, values)
            else:
                hll.add_values(regs, gid, values)
            out = out.append_column(agg.name, hll.to_binary(regs))
        elif agg.kind in ("count_distinct", "string_agg_distinct"):
            out = out.append_column(agg.name, _reduce(gid, values, "distinct", groups))
        elif agg.kind in ("array_agg", "array_agg_distinct"):
            # NULL values are collected; rows a FILTER drops are not
            keep = np.ones(table.num_rows, dtype=bool) if mask is None else mask.to_numpy(zero_copy_only=False)
            values = agg.arg.materialize(table)
            lists = _reduce(gid[keep], values.filter(pa.array(keep)), "list", groups)
            out = out.append_column(agg.name, lists)
        elif agg.kind == "string_agg":
            valid = pc.is_valid(values)
            lists = _reduce(gid[valid.to_numpy(zero_copy_only=False)], values.filter(valid), "list", groups)
            out = out.append_column(agg.name, lists)
        else:
            raise ValueError(f"unknown aggregation {agg.kind}")
    return out


def combine(partials: pa.Table, query: LogicalQuery) -> pa.Table:
    """Merge partial states (from every worker) and finish: one row per group, columns
    named by the group keys and aggregation names."""
    key_names = [n for n, _ in query.group_by]
    keys = partials.select(key_names)
    if _one_pass(keys, query.aggregations):  # counts add up; sums, mins and maxes fold again
        return _grouped_once(keys, [(a, "sum" if a.kind in ("count_all", "count") else a.kind, partials.column(a.name))
                                    for a in query.aggregations], combining=True)
    out, gid = group_ids(keys)
    groups = out.num_rows
    for agg in query.aggregations:
        out = out.append_column(agg.name, _combine_one(agg, partials, gid, groups))
    return out


def _combine_one(agg: Aggregation, partials: pa.Table, gid: np.ndarray, groups: int) -> pa.Array:
    col = partials.column(agg.name) if agg.name in partials.column_names else None
    kind = agg.kind
    if kind in ("count_all", "count"):
        return pc.fill_null(_reduce(gid, col, "sum", groups), 0)
    if kind in ("sum", "min", "max"):
        out = _reduce(gid, col, kind, groups)
    elif kind == "avg":
        total = _reduce(gid, partials.column(agg.name + ":sum"), "sum", groups)
        count = _reduce(gid, partials.column(agg.name + ":count"), "sum", groups)
        out = pc.divide(pc.cast(total, pa.float64()),
                        pc.cast(pc.if_else(pc.equal(count, 0), pa.scalar(None, count.type), count), pa.float64()))
    elif kind == "any_value":
        out = _reduce(gid, col, "first", groups)
    elif kind == "approx_count_distinct":
        regs = hll.new(groups)
        hll.fold_binary(regs, gid, col)
        return hll.estimate(regs) if agg.finalize else hll.to_binary(regs)
    elif kind in ("earliest", "latest"):
        out, time = _first_by_time(gid, col, partials.column(agg.name + ":time"), groups, kind == "latest")
        if not agg.finalize:
            return pairs_to_binary(time, out if out.type == arrow_type(agg.sql_type) else
                                   pc.cast(out, arrow_type(agg.sql_type)))
    elif kind in ("array_agg", "array_agg_distinct"):
        out = _combine_arrays(col, gid, groups, kind == "array_agg_distinct", arrow_type(agg.sql_type))
        check_array_bytes(out, agg.max_bytes, agg.sql_type)
        return out
    else:  # list states: count_distinct, string_agg(_distinct)
        lists = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        values = pc.list_flatten(lists)
        owner = gid[pc.list_parent_indices(lists).to_numpy()] if len(values) else np.zeros(0, dtype=np.int64)
        if kind == "count_distinct":
            pairs = pa.table({"gid": owner, "v": values}).group_by(["gid", "v"], use_threads=False).aggregate([])
            return pc.fill_null(_reduce(pairs.column("gid").to_numpy(), pairs.column("v"), "count", groups), 0)
        how = "distinct" if kind == "string_agg_distinct" else "list"
        # groups without a non-null value are absent, so their result is null
        out = pc.binary_join(_reduce(owner, values, how, groups), agg.separator)
    want = arrow_type(agg.sql_type)
    return out if out.type == want else pc.cast(out, want)


def _combine_arrays(col, gid: np.ndarray, groups: int, distinct: bool, type_: pa.DataType) -> pa.Array:
    """Concatenate each group's lists (array_concat), or their sorted distinct values with
    NULL first (array_set_add_all's TreeSet); a group that aggregated nothing is NULL."""
    lists = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    valid = pc.is_valid(lists).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists)
    owner = gid[pc.list_parent_indices(lists).to_numpy()] if len(values) else np.zeros(0, dtype=np.int64)
    if distinct and len(values):
        pairs = pa.table({"g": owner, "v": values}).group_by(["g", "v"], use_threads=False).aggregate([])
        pairs = pairs.take(pc.sort_indices(pairs, sort_keys=[("g", "ascending"), ("v", "ascending", "at_start")]))
        owner, values = pairs.column("g").to_numpy(), pairs.column("v").combine_chunks()
    out = _reduce(owner, values, "list", groups) if len(values) else pa.nulls(groups, type_)
    # groups whose only states were empty lists still aggregated rows: an empty array
    aggregated = np.zeros(groups, dtype=bool)
    aggregated[gid[valid]] = True
    empty = pa.array([[]] * groups, type_) if groups else pa.array([], type_)
    out = pc.if_else(pc.and_(pa.array(aggregated), pc.is_null(out)), empty, out)
    return out.cast(type_)


def check_array_bytes(lists: pa.Array, max_bytes: int, sql_type: str) -> None:
    """ARRAY_AGG's ``maxSizeBytes``: Druid's ExpressionLambdaAggregator checks the serialized
    size of the array after each value it adds (TypeStrategies.checkMaxBytes): a null flag
    and an int length, then per element a null flag and, unless NULL, 8 bytes of a number or
    an int length and the UTF-8 bytes of a string. The first size past the bound fails."""
    if not max_bytes or not len(lists):
        return
    values = pc.list_flatten(lists)
    if not len(values):
        return
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        body = pc.fill_null(pc.binary_length(values), 0).to_numpy(zero_copy_only=False).astype(np.int64) + 4
    else:
        body = np.full(len(values), 8, dtype=np.int64)
    sizes = np.where(pc.is_valid(values).to_numpy(zero_copy_only=False), 1 + body, 1)
    owner = pc.list_parent_indices(lists).to_numpy()
    running = np.cumsum(sizes)
    starts = np.concatenate([[0], running])[np.searchsorted(owner, owner, side="left")]
    prefix = 1 + 4 + running - starts  # each array's size after each of its values
    over = np.flatnonzero(prefix > max_bytes)
    if len(over):
        raise QueryUnknownException(f"Unable to serialize [{native_type(sql_type)}], size [{int(prefix[over[0]])}] "
                                    f"is larger than max [{max_bytes}]")


# --- stored EARLIEST/LATEST pairs ---------------------------------------------------------------
# A pair is Druid's SerializablePairLong* value: the big-endian long time, then for strings
# (SerializablePairLongStringSimpleStagedSerde) an int size (0 null, -1 empty) and the UTF-8
# bytes, for numbers a null flag byte and the big-endian value. No value at all is null.

_NUMERIC_WIDTH = {"BIGINT": (8, ">i8", pa.int64()), "DOUBLE": (8, ">f8", pa.float64()),
                  "FLOAT": (4, ">f4", pa.float32())}


def binary_buffers(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets int64[n + 1], data uint8, valid bool[n]) of a string or binary array."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    values = values.cast(pa.large_binary() if not pa.types.is_string(values.type) else pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset: values.offset + len(values) + 1]
    data = values.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets, data, pc.is_valid(values).to_numpy(zero_copy_only=False)


def _scatter_bytes(out: np.ndarray, starts: np.ndarray, lengths: np.ndarray, data: np.ndarray,
                   src_starts: np.ndarray) -> None:
    """out[starts[i] : starts[i] + lengths[i]] = data[src_starts[i] : ...] for every i."""
    total = int(lengths.sum())
    if not total:
        return
    j = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[np.repeat(starts, lengths) + j] = data[np.repeat(src_starts, lengths) + j]


def pairs_to_binary(times, values) -> pa.Array:
    """(time, value) per row → serialized pairs; rows without a time are null."""
    times = times.combine_chunks() if isinstance(times, pa.ChunkedArray) else times
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    present = pc.is_valid(times).to_numpy(zero_copy_only=False)
    t = pc.fill_null(times, 0).to_numpy(zero_copy_only=False).astype(">i8").view(np.uint8).reshape(-1, 8)
    n = len(t)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        offsets, data, valid = binary_buffers(values)
        lengths = np.diff(offsets)
        size = np.where(valid, np.where(lengths == 0, -1, lengths), 0).astype(">i4").view(np.uint8).reshape(-1, 4)
        header = np.concatenate([t, size], axis=1)
        body = np.where(valid, lengths, 0)
        widths = np.where(present, 12 + body, 0)
        out_offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        out = np.zeros(int(out_offsets[-1]), dtype=np.uint8)
        starts = out_offsets[:-1]
        _scatter_bytes(out, starts[present], np.full(int(present.sum()), 12), header[present].ravel(),
                       np.arange(int(present.sum())) * 12)
        _scatter_bytes(out, (starts + 12)[present], body[present], data, offsets[:-1][present])
    else:
        width, dtype, arrow = _NUMERIC_WIDTH["FLOAT" if pa.types.is_float32(values.type) else
                                             "DOUBLE" if pa.types.is_floating(values.type) else "BIGINT"]
        valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
        v = pc.fill_null(values.cast(arrow), 0).to_numpy(zero_copy_only=False).astype(dtype).view(np.uint8)
        flag = (~valid).astype(np.uint8).reshape(-1, 1)
        rows = np.concatenate([t, flag, v.reshape(-1, width)], axis=1)
        widths = np.where(present, rows.shape[1], 0)
        out_offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        out = rows[present].ravel()
    pairs = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(out_offsets), pa.py_buffer(out)])
    if not present.all():
        pairs = pc.if_else(pa.array(present), pairs, pa.scalar(None, pa.large_binary()))
    return pairs.cast(pa.binary())


def pairs_from_binary(pairs, value_type: str) -> tuple[pa.Array, pa.Array]:
    """Serialized pairs → (times, values); a null pair gives a null time and value."""
    offsets, data, present = binary_buffers(pairs)
    n = len(offsets) - 1
    starts = offsets[:-1]
    head = np.zeros((n, 12), dtype=np.uint8)
    take = np.where(present, 12 if value_type == "VARCHAR" else 9, 0)
    _scatter_bytes(head.ravel(), np.arange(n) * 12, take, data, starts)
    times = pa.array(head[:, :8].copy().view(">i8").ravel().astype(np.int64), mask=~present)
    if value_type == "VARCHAR":
        size = head[:, 8:12].copy().view(">i4").ravel().astype(np.int64)
        valid = present & (size != 0)
        lengths = np.where(size > 0, size, 0)
        out_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        out = np.zeros(int(out_offsets[-1]), dtype=np.uint8)
        _scatter_bytes(out, out_offsets[:-1], lengths, data, starts + 12)
        values = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(out_offsets), pa.py_buffer(out)])
        values = pc.if_else(pa.array(valid), values, pa.scalar(None, pa.large_string())).cast(pa.string())
        return times, values
    width, dtype, arrow = _NUMERIC_WIDTH[value_type]
    body = np.zeros((n, width), dtype=np.uint8)
    _scatter_bytes(body.ravel(), np.arange(n) * width, np.where(present, width, 0), data, starts + 9)
    valid = present & (head[:, 8] == 0)
    return times, pa.array(body.view(dtype).ravel().astype(arrow.to_pandas_dtype()), arrow, mask=~valid)
