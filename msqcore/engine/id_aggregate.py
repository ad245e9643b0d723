"""GROUP BY over a datasource's string dimensions, aggregated on dictionary ids with numpy.

The common Broker query groups by a few string columns and counts or sums long columns:
``SELECT channel, COUNT(*), SUM(added) FROM wiki WHERE countryName = 'United States' GROUP BY 1``.
For those, the general path (``ops.partial_aggregate`` then ``ops.final_aggregate``) decodes
every key string, hashes it, and pays Acero's fixed cost per call. Here each segment's key
columns are read as dictionary ids (its sorted dictionary is not expanded), the WHERE clause
is skipped when the bitmap indexes answered it exactly, and the groups are formed once over
all segments: each segment's dictionary is mapped to one dictionary of the keys, the keys'
ids combine into one number per row, the groups are numbered in the order of their first
row, and ``bincount`` counts and sums. The result is
the table ``aggregate.combine`` would give: the groups in the order their first row comes,
nulls as a group, COUNT as int64, SUM/MIN/MAX as the column's type (a SUM wraps as Java's
long does), null for a group without a value.

``eligible`` says which queries take this path; every other goes the general way.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.planner.expressions import ColumnRef, arrow_type
from msqcore.planner.query import LogicalQuery

_KINDS = ("count_all", "count", "sum", "min", "max")


def eligible(query: LogicalQuery, metas: list[dict]) -> bool:
    """Group keys are VARCHAR columns, single-value strings wherever a segment (``metas``) has
    them; aggregations are COUNT(*), COUNT(column), and SUM/MIN/MAX of a BIGINT column
    stored as LONG, without FILTER."""
    if not query.is_aggregate or query.unnest is not None or query.window is not None:
        return False
    keys = [e for _, e in query.group_by]
    if not all(isinstance(e, ColumnRef) and e.sql_type == "VARCHAR" for e in keys):
        return False
    longs = set()
    for agg in query.aggregations:
        if agg.kind not in _KINDS or agg.filter is not None:
            return False
        if agg.kind == "count_all":
            continue
        if not isinstance(agg.arg, ColumnRef):
            return False
        if agg.kind != "count":
            if agg.arg.sql_type != "BIGINT":
                return False
            longs.add(agg.arg.name)
    strings = {e.name for e in keys}
    for meta in metas:
        for c in meta["columns"]:
            if c["name"] in strings and (c["type"] != "STRING" or c.get("multiValue")):
                return False
            if c["name"] in longs and c["type"] != "LONG":
                return False
    return True


def dictionary_columns(query: LogicalQuery) -> set[str]:
    """Key columns no other expression reads: they are read as dictionary ids."""
    others: set[str] = set()
    for agg in query.aggregations:
        if agg.arg is not None:
            others |= agg.arg.columns()
    if query.filter is not None:
        others |= query.filter.columns()
    return {e.name for _, e in query.group_by} - others


class SegmentRows:
    """What one segment contributes: per key its dictionary ids and dictionary, per
    aggregation input its values and validity."""

    def __init__(self, table: pa.Table, query: LogicalQuery):
        self.num_rows = table.num_rows
        self.keys = [_dictionary(table.column(e.name)) for _, e in query.group_by]
        self.values = {}
        numbers = {a.arg.name for a in query.aggregations if a.kind in ("sum", "min", "max")}
        for agg in query.aggregations:
            name = agg.arg.name if agg.arg is not None else None
            if name is not None and name not in self.values:
                col = table.column(name).combine_chunks()
                valid = None if col.null_count == 0 else pc.is_valid(col).to_numpy(zero_copy_only=False)
                data = None
                if name in numbers:  # COUNT needs the validity alone
                    data = (pc.fill_null(col, 0) if valid is not None else col).to_numpy(zero_copy_only=False)
                self.values[name] = (data, valid)


def _dictionary(col) -> pa.DictionaryArray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    return col


def combine(parts: list[SegmentRows], query: LogicalQuery) -> pa.Table:
    """The groups over every segment's rows and their aggregated values (``aggregate.combine``'s table)."""
    n = sum(p.num_rows for p in parts)
    keys = [_global_ids([p.keys[k] for p in parts]) for k in range(len(query.group_by))]
    if keys:
        space = np.prod([float(len(values) + 1) for values, _ in keys])
        if space < 2.0 ** 62:
            code = np.zeros(n, dtype=np.int64)
            for values, ids in keys:  # the keys' ids as the digits of one number
                code = code * (len(values) + 1) + ids
        else:
            code = np.unique(np.stack([ids for _, ids in keys], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
            space = float(n)
        if space <= 4 * n + 1024:  # few possible codes: count them out, no sort
            first = np.full(int(space), n, dtype=np.int64)
            np.minimum.at(first, code, np.arange(n, dtype=np.int64))
            used = np.flatnonzero(first < n)
            first_rows = np.sort(first[used])  # groups in the order of their first row
            rank = np.zeros(int(space), dtype=np.int64)
            rank[code[first_rows]] = np.arange(len(first_rows))
            gid = rank[code]
        else:
            _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")  # groups in the order of their first row
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            gid = rank[inverse.reshape(-1)]
            first_rows = first[order]
        groups = len(first_rows)
    else:  # a global aggregation is one group, even over no rows
        gid = np.zeros(n, dtype=np.int64)
        groups = 1
    columns = []
    for values, ids in keys:
        at = ids[first_rows]
        columns.append(values.take(pa.array(at, mask=at == len(values))))
    names = [name for name, _ in query.group_by]
    for agg in query.aggregations:
        columns.append(_aggregate(agg, parts, gid, groups))
        names.append(agg.name)
    return pa.table(columns, names=names)


def _global_ids(keys: list[pa.DictionaryArray]) -> tuple[pa.Array, np.ndarray]:
    """One dictionary for every segment's values of a key, and each row's id in it (null: its length)."""
    dictionaries = [k.dictionary for k in keys]
    values = pc.unique(pa.chunked_array(dictionaries, pa.string()).combine_chunks()) if dictionaries \
        else pa.array([], pa.string())
    values = values.filter(pc.is_valid(values))
    null_id = len(values)
    out = []
    for k, dictionary in zip(keys, dictionaries):
        to_global = pc.fill_null(pc.index_in(dictionary, value_set=values), null_id).to_numpy().astype(np.int64)
        ids = k.indices.to_numpy(zero_copy_only=False) if k.null_count == 0 else \
            pc.fill_null(k.indices, 0).to_numpy(zero_copy_only=False)
        row_ids = to_global[ids] if len(to_global) else np.full(len(ids), null_id, dtype=np.int64)
        if k.null_count:
            row_ids[~pc.is_valid(k).to_numpy(zero_copy_only=False)] = null_id
        out.append(row_ids)
    return values, (np.concatenate(out) if out else np.zeros(0, dtype=np.int64))


def _aggregate(agg, parts: list[SegmentRows], gid: np.ndarray, groups: int) -> pa.Array:
    if agg.kind == "count_all":
        return pa.array(np.bincount(gid, minlength=groups).astype(np.int64))
    masks = [p.values[agg.arg.name][1] for p in parts]
    if any(m is not None for m in masks):
        valid = _concat([np.ones(p.num_rows, dtype=bool) if m is None else m for p, m in zip(parts, masks)], bool)
        g = gid[valid]
    else:  # no nulls: no row to drop
        valid, g = None, gid
    counts = np.bincount(g, minlength=groups).astype(np.int64)
    if agg.kind == "count":
        return pa.array(counts)
    data = _concat([p.values[agg.arg.name][0] for p in parts], np.int64)
    data = data if valid is None else data[valid]
    if agg.kind == "sum":
        out = _sum(g, data, groups)
    elif agg.kind == "min":
        out = np.full(groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out, g, data)
    else:
        out = np.full(groups, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(out, g, data)
    return pa.array(out, type=arrow_type(agg.sql_type), mask=counts == 0)


_EXACT_ROWS = 1 << 20  # 2^20 terms below 2^32 add up exactly in a double (below 2^52)


def _sum(g: np.ndarray, data: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the int64 sum of ``data`` wrapping as Java's long does. ``bincount`` adds in
    doubles, so each 2^20-row chunk is summed as its low and high 32-bit halves, which are exact."""
    out = np.zeros(groups, dtype=np.int64)
    for lo in range(0, len(data), _EXACT_ROWS):
        gs, d = g[lo:lo + _EXACT_ROWS], data[lo:lo + _EXACT_ROWS]
        low = np.bincount(gs, weights=(d & 0xFFFFFFFF).astype(np.float64), minlength=groups).astype(np.uint64)
        high = np.bincount(gs, weights=(d >> 32).astype(np.float64), minlength=groups).astype(np.int64)
        out += (high.astype(np.uint64) << np.uint64(32)).view(np.int64) + low.view(np.int64)
    return out


def _concat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)


def input_columns(query: LogicalQuery) -> set[str]:
    """The columns the group keys and aggregations read."""
    out = {e.name for _, e in query.group_by}
    for agg in query.aggregations:
        if agg.arg is not None:
            out |= agg.arg.columns()
    return out
