"""Grouped aggregation in two steps, like Druid's groupByPreShuffle / groupByPostShuffle:
``partial`` turns source rows into per-group states on each worker, ``combine`` merges the
states of all workers and finishes the values.

Every row gets a group number once (hash grouping, null keys included); each aggregation
then reduces its own input per group number and is scattered back into group order, so
aggregations with different inputs (FILTER, EARLIEST's time order) never need a join.

Partial states, per aggregation ``a``: count/count_all → ``a`` (int64); sum/min/max/
any_value → ``a``; avg → ``a:sum`` and ``a:count``; earliest/latest → ``a`` and ``a:time``;
count_distinct and string_agg → ``a`` as the list of (distinct) values.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.planner.expressions import arrow_type
from msqcore.planner.query import Aggregation, LogicalQuery


def group_ids(keys: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The distinct key rows and each input row's group number (a global aggregation,
    with no keys, is one group even over no rows)."""
    n = keys.num_rows
    if keys.num_columns == 0:
        return pa.table({"__g": [0]}).select([]), np.zeros(n, dtype=np.int64)
    rows = keys.append_column("__row", pa.array(np.arange(n, dtype=np.int64)))
    grouped = rows.group_by(keys.column_names, use_threads=False).aggregate([("__row", "list")])
    lists = grouped.column("__row_list").combine_chunks()
    gid = np.empty(n, dtype=np.int64)
    gid[pc.list_flatten(lists).to_numpy()] = pc.list_parent_indices(lists).to_numpy()
    return grouped.drop_columns(["__row_list"]), gid


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


def partial(table: pa.Table, query: LogicalQuery) -> pa.Table:
    """Partial states of one batch of (already filtered) source rows."""
    keys = pa.table([e.materialize(table) for _, e in query.group_by], names=[n for n, _ in query.group_by]) \
        if query.group_by else table.select([])
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
            value, time = _first_by_time(gid, values, agg.time.materialize(table), groups, agg.kind == "latest")
            out = out.append_column(agg.name, value).append_column(agg.name + ":time", time)
        elif agg.kind in ("count_distinct", "string_agg_distinct"):
            out = out.append_column(agg.name, _reduce(gid, values, "distinct", groups))
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
    out, gid = group_ids(partials.select(key_names))
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
    elif kind in ("earliest", "latest"):
        out, _ = _first_by_time(gid, col, partials.column(agg.name + ":time"), groups, kind == "latest")
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
