"""The join operator: one ``JoinClause`` over Arrow tables with pyarrow's hash join, which,
like SQL, never matches NULL keys. CROSS joins (and joins without equalities) repeat row
indexes instead.

Memory bounds, as Druid's workers have them:

* broadcast: the right inputs of a leaf stage are read whole into every worker, at most
  ``broadcast_limit(context)`` bytes together, else ``BroadcastTablesTooLarge``;
* sortMerge: the rows of one key on one side are buffered, at most
  ``same_key_limit(context)`` bytes, else ``TooManyRowsWithSameKey``.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.errors import BroadcastTablesTooLarge, TooManyRowsWithSameKey
from msqcore.planner.expressions import arrow_type
from msqcore.planner.query import JoinClause, JoinSource

# Druid's WorkerMemoryParameters: broadcast inputs may use 20 % of a work order's memory bundle
# (the task's memory / maxConcurrentStages). msqcore's bundle is 1 GiB (one stage at a time on
# a worker with Druid's default 1 GiB task heap). The context key overrides it.
BUNDLE_MEMORY = 1 << 30
BROADCAST_FRACTION = 0.2
# SortMergeJoinFrameProcessor buffers at most WorkerMemoryParameters.getSortMergeJoinMemory()
# per side: 90 % of the 25 MB extra memory of a processor.
SAME_KEY_LIMIT = 22_500_000

_PYARROW_KINDS = {"INNER": "inner", "LEFT": "left outer", "RIGHT": "right outer", "FULL": "full outer"}


def broadcast_limit(context: dict) -> int:
    return int(context.get("maxBroadcastTablesSize", int(BUNDLE_MEMORY * BROADCAST_FRACTION)))


def same_key_limit(context: dict) -> int:
    return int(context.get("maxSortMergeJoinBufferedBytes", SAME_KEY_LIMIT))


def check_broadcast(tables: list[pa.Table], context: dict, algorithm: str) -> None:
    """``algorithm``: the configured one (sqlJoinAlgorithm), which the fault names."""
    limit = broadcast_limit(context)
    if sum(t.nbytes for t in tables) > limit:
        raise BroadcastTablesTooLarge(maxBroadcastTablesSize=limit, configuredJoinAlgorithm=algorithm)


def join_all(base: pa.Table, rights: list[pa.Table], source: JoinSource) -> pa.Table:
    """The base rows joined with each right input in turn (``rights`` are the right inputs'
    rows under their own column names)."""
    table = base
    for clause, right in zip(source.joins, rights):
        table = join(table, right, clause)
    return table


def join(left: pa.Table, right: pa.Table, clause: JoinClause, check_same_key: int | None = None) -> pa.Table:
    right = right.rename_columns([clause.prefix + n for n in right.column_names])
    if clause.right_filter is not None:
        mask = clause.right_filter.eval(right)
        right = (right if mask.as_py() else right.slice(0, 0)) if isinstance(mask, pa.Scalar) else \
            right.filter(pc.fill_null(mask, False))
    if not clause.left_keys:
        return _cross(left, right, clause.kind)
    lk = [key_array(e, left) for e in clause.left_keys]
    rk = [key_array(e, right) for e in clause.right_keys]
    if check_same_key is not None:
        _check_same_key(rk, right, check_same_key)
    lnames = [f"__lk{i}" for i in range(len(lk))]
    rnames = [f"__rk{i}" for i in range(len(rk))]
    l2, r2 = left, right
    for n, a in zip(lnames, lk):
        l2 = l2.append_column(n, a)
    for n, a in zip(rnames, rk):
        r2 = r2.append_column(n, a)
    # an empty side of no columns loses its row count in pyarrow; a key column always remains
    joined = l2.join(r2, lnames, rnames, join_type=_PYARROW_KINDS[clause.kind], coalesce_keys=False)
    return joined.select(left.column_names + right.column_names)


def key_array(e, table: pa.Table) -> pa.ChunkedArray:
    out = e.materialize(table)
    want = arrow_type(e.sql_type) if e.sql_type != "BOOLEAN" else pa.int64()
    return out if out.type == want else pc.cast(out, want)


def _cross(left: pa.Table, right: pa.Table, kind: str) -> pa.Table:
    """Every pair of rows; an outer side's rows are kept with nulls when the other is empty."""
    nl, nr = left.num_rows, right.num_rows
    if nr == 0 and kind in ("LEFT", "FULL"):
        return _with_nulls(left, right.schema, after=True)
    if nl == 0 and kind in ("RIGHT", "FULL"):
        return _with_nulls(right, left.schema, after=False)
    li = pa.array(np.repeat(np.arange(nl, dtype=np.int64), nr))
    ri = pa.array(np.tile(np.arange(nr, dtype=np.int64), nl))
    lt, rt = left.take(li), right.take(ri)
    return pa.table(lt.columns + rt.columns, names=left.column_names + right.column_names)


def _with_nulls(table: pa.Table, other: pa.Schema, after: bool) -> pa.Table:
    nulls = [pa.nulls(table.num_rows, f.type) for f in other]
    if after:
        return pa.table(table.columns + nulls, names=table.column_names + other.names)
    return pa.table(nulls + table.columns, names=other.names + table.column_names)


def _check_same_key(keys: list[pa.ChunkedArray], table: pa.Table, limit: int) -> None:
    """TooManyRowsWithSameKey: the rows of the most frequent non-null key, at the table's
    average row width, over ``limit`` bytes."""
    if not table.num_rows:
        return
    counts = pa.table({f"k{i}": k for i, k in enumerate(keys)}).group_by(
        [f"k{i}" for i in range(len(keys))]).aggregate([([], "count_all")])
    for i in range(len(keys)):
        counts = counts.filter(pc.is_valid(counts.column(f"k{i}")))
    if not counts.num_rows:
        return
    top = pc.index(counts.column("count_all"), pc.max(counts.column("count_all")).as_py()).as_py()
    row_bytes = table.nbytes / table.num_rows
    nbytes = int(counts.column("count_all")[top].as_py() * row_bytes)
    if nbytes > limit:
        key = [counts.column(f"k{i}")[top].as_py() for i in range(len(keys))]
        raise TooManyRowsWithSameKey(key=key, numBytes=nbytes, maxBytes=limit)
