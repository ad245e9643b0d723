"""GROUP BY over a datasource's string dimensions, aggregated on dictionary ids with numpy.

The common Broker query groups by a few string columns and counts or sums long columns:
``SELECT channel, COUNT(*), SUM(added) FROM wiki WHERE countryName = 'United States' GROUP BY 1``.
For those, the general path (``ops.partial_aggregate`` then ``ops.final_aggregate``) decodes
every key string, hashes it, and pays Acero's fixed cost per call. Here each segment's key
columns are read as dictionary ids (its sorted dictionary is not expanded), the WHERE clause
is skipped when the bitmap indexes answered it exactly, and each segment is reduced to its
groups on the scan's thread (``SegmentRows``): the keys' ids combine into one number per row,
the groups are numbered in the order of their first row, and one pass of the ``_groups``
kernel per aggregation counts and sums.
``combine`` then merges the segments' few groups by their key values. The result is the
table ``aggregate.combine`` would give: the groups in the order their first row comes, nulls
as a group, COUNT as int64, SUM/MIN/MAX as the column's type (a SUM wraps as Java's long
does), null for a group without a value.

``eligible`` says which queries take this path; every other goes the general way.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.kernels import _groups
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
    """One segment's groups, reduced on the scan's thread: per group its first row, its key
    values, and per aggregation its count of non-null inputs and its value."""

    def __init__(self, table: pa.Table, query: LogicalQuery):
        keys = [_dictionary(table.column(e.name)) for _, e in query.group_by]
        ids = [_ids(k) for k in keys]
        gid, first_rows = _number_groups([(len(k.dictionary), i) for k, i in zip(keys, ids)], table.num_rows)
        groups = len(first_rows) if keys else 1  # a global aggregation: one group, even over no rows
        self.groups = groups
        # each group's key values: the dictionary entry of its first row (null past the end)
        self.keys = [k.dictionary.take(pa.array(i[first_rows], mask=i[first_rows] == len(k.dictionary)))
                     for k, i in zip(keys, ids)]
        self.states: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for agg in query.aggregations:
            self.states[agg.name] = _reduce(agg, table, gid, groups)


def _dictionary(col) -> pa.DictionaryArray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    return col


def _ids(k: pa.DictionaryArray) -> np.ndarray:
    """Each row's dictionary id as int64; null rows get the dictionary's length."""
    ids = (pc.fill_null(k.indices, 0) if k.null_count else k.indices).to_numpy(zero_copy_only=False)
    ids = ids.astype(np.int64)
    if k.null_count:
        ids[~pc.is_valid(k).to_numpy(zero_copy_only=False)] = len(k.dictionary)
    return ids


def _number_groups(keys: list[tuple[int, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Group numbers of ``n`` rows by their keys' ids (each ``(size, ids)`` with ids in
    ``[0, size]``), in the order of each group's first row; and those first rows, ascending."""
    if not keys:
        return np.zeros(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    space = np.prod([float(size + 1) for size, _ in keys])
    if space < 2.0 ** 62:
        code = keys[0][1]
        for size, ids in keys[1:]:  # the keys' ids as the digits of one number
            code = code * (size + 1) + ids
    else:
        code = np.unique(np.stack([ids for _, ids in keys], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
        space = float(n)
    if space <= 4 * n + 1024:  # few possible codes: numbered in one pass, no sort
        return _groups.number_groups(np.ascontiguousarray(code, dtype=np.int64), int(space))
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], first[order]


_FOLD = {"count_all": _groups.COUNT, "count": _groups.COUNT, "sum": _groups.SUM, "min": _groups.MIN,
         "max": _groups.MAX}


def _reduce(agg, table: pa.Table, gid: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(per group the count of non-null inputs, per group the SUM/MIN/MAX or None for a COUNT)."""
    if agg.kind == "count_all":
        return _groups.fold(_groups.COUNT, gid, groups)
    col = table.column(agg.arg.name).combine_chunks()
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False).view(np.uint8) if col.null_count else None
    if agg.kind == "count":
        return _groups.fold(_groups.COUNT, gid, groups, None, valid)
    data = (pc.fill_null(col, 0) if valid is not None else col).to_numpy(zero_copy_only=False)
    return _groups.fold(_FOLD[agg.kind], gid, groups, data.astype(np.int64, copy=False), valid)


def combine(parts: list[SegmentRows], query: LogicalQuery) -> pa.Table:
    """The groups over every segment and their aggregated values (``aggregate.combine``'s table).

    The segments' groups, taken in segment order and each segment's in the order of its
    first rows, are in the order of their first rows over all segments: numbering them by
    first appearance gives the groups in the order one pass over all rows would."""
    n = sum(p.groups for p in parts)
    keys, values = [], []
    for k in range(len(query.group_by)):
        encoded = pc.dictionary_encode(pa.concat_arrays([p.keys[k] for p in parts]) if parts
                                       else pa.array([], pa.string()))
        keys.append((len(encoded.dictionary), _ids(encoded)))
        values.append(encoded.dictionary)
    if query.group_by:
        gid, first = _number_groups(keys, n)
        groups = len(first)
    else:
        gid, first, groups = np.zeros(n, dtype=np.int64), np.zeros(0, dtype=np.int64), 1
    columns = [v.take(pa.array(ids[first], mask=ids[first] == size)) for v, (size, ids) in zip(values, keys)]
    names = [name for name, _ in query.group_by]
    for agg in query.aggregations:
        counts = _concat([p.states[agg.name][0] for p in parts])
        total = _groups.fold(_groups.SUM, gid, groups, counts)[1]
        if agg.kind in ("count_all", "count"):
            columns.append(pa.array(total))
        else:
            has = counts > 0  # a segment's group without a value has no state to fold
            states = _concat([p.states[agg.name][1] for p in parts])[has]
            out = _groups.fold(_FOLD[agg.kind], gid[has], groups, states)[1]
            columns.append(pa.array(out, type=arrow_type(agg.sql_type), mask=total == 0))
        names.append(agg.name)
    return pa.table(columns, names=names)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.int64, copy=False) if arrays else np.zeros(0, dtype=np.int64)


def input_columns(query: LogicalQuery) -> set[str]:
    """The columns the group keys and aggregations read."""
    out = {e.name for _, e in query.group_by}
    for agg in query.aggregations:
        if agg.arg is not None:
            out |= agg.arg.columns()
    return out
