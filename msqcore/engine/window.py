"""Window functions over an Arrow table: Druid's window operator (spec §1.8).

``apply_window`` sorts the rows by PARTITION BY then ORDER BY, finds partition and peer
boundaries with vectorized comparisons of neighbouring rows, and computes each call from
per-row index arrays (partition start/end, peer start/end, frame bounds). Ranking and offset
functions are numpy arithmetic on those arrays; frame aggregates run in
``msqcore.kernels._window``. No Python code runs per row.

Frames follow SQL: with ORDER BY the default frame is RANGE UNBOUNDED PRECEDING to CURRENT
ROW (peers included), without it the whole partition. RANGE frames take UNBOUNDED or CURRENT
ROW bounds only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.errors import TooManyRowsInAWindow
from msqcore.kernels import _window

MAX_ROWS_IN_WINDOW = 100_000  # context maxRowsMaterializedInWindow

RANKING = {"ROW_NUMBER", "RANK", "DENSE_RANK", "PERCENT_RANK", "CUME_DIST", "NTILE"}
OFFSET = {"LAG", "LEAD"}
VALUE = {"FIRST_VALUE", "LAST_VALUE"}
AGGREGATE = {"SUM", "COUNT", "MIN", "MAX", "AVG"}


@dataclass(frozen=True)
class Frame:
    """Bounds relative to the current row: None = UNBOUNDED, 0 = CURRENT ROW, -n = n PRECEDING,
    +n = n FOLLOWING. ``rows=False`` is a RANGE frame (offsets count peer groups' edges)."""

    rows: bool = False
    lower: int | None = None
    upper: int | None = 0


@dataclass(frozen=True)
class WindowCall:
    name: str  # output column
    function: str
    argument: str | None = None  # input column (None: COUNT(*) and ranking functions)
    constants: tuple = ()  # NTILE(n); LAG/LEAD(offset, default)
    frame: Frame | None = None  # None: the default frame


@dataclass
class WindowSpec:
    partition_by: list[str] = field(default_factory=list)
    order_by: list[tuple] = field(default_factory=list)  # (column, descending, nulls_first) as LogicalQuery's
    calls: list[WindowCall] = field(default_factory=list)


def apply_window(table: pa.Table, spec: WindowSpec, max_rows: int = MAX_ROWS_IN_WINDOW) -> pa.Table:
    from msqcore.engine.operators import sort_keys  # operators runs windows: import here, not at the top
    keys = [(c, False, True) for c in spec.partition_by] + list(spec.order_by)
    if keys and table.num_rows > 1:
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys(keys)))
    n = table.num_rows
    part_start, part_end = _groups(table, spec.partition_by, n)
    sizes = part_end - part_start
    if n and int(sizes.max()) > max_rows:
        raise TooManyRowsInAWindow(numRows=int(sizes.max()), maxRows=max_rows)
    peer_start, peer_end = _groups(table, spec.partition_by + [c for c, *_ in spec.order_by], n)
    rows = _Rows(np.arange(n, dtype=np.int64), part_start, part_end, peer_start, peer_end, bool(spec.order_by))
    for call in spec.calls:
        table = table.append_column(call.name, _compute(table, call, rows))
    return table


@dataclass
class _Rows:
    pos: np.ndarray
    part_start: np.ndarray
    part_end: np.ndarray  # exclusive
    peer_start: np.ndarray
    peer_end: np.ndarray  # exclusive
    ordered: bool


def _groups(table: pa.Table, columns: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the [start, end) of its run of rows equal on ``columns`` (nulls equal)."""
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
    for column in columns:
        values = table.column(column)
        if n > 1:
            a, b = values.slice(1), values.slice(0, n - 1)
            same = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
            new[1:] |= ~np.asarray(same.combine_chunks() if isinstance(same, pa.ChunkedArray) else same,
                                   dtype=bool)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    group = np.cumsum(new) - 1
    return starts[group].astype(np.int64), ends[group].astype(np.int64)


def _compute(table: pa.Table, call: WindowCall, r: _Rows) -> pa.Array:
    f = call.function
    size = r.part_end - r.part_start
    if f == "ROW_NUMBER":
        return pa.array(r.pos - r.part_start + 1)
    if f == "RANK":
        return pa.array(r.peer_start - r.part_start + 1)
    if f == "DENSE_RANK":
        first_of_peers = np.cumsum(r.peer_start == r.pos)
        return pa.array(first_of_peers - first_of_peers[r.part_start] + 1)
    if f == "PERCENT_RANK":
        rank = (r.peer_start - r.part_start).astype(np.float64)
        return pa.array(np.divide(rank, size - 1, out=np.zeros(len(rank)), where=size > 1))
    if f == "CUME_DIST":
        return pa.array((r.peer_end - r.part_start) / np.maximum(size, 1))
    if f == "NTILE":
        return pa.array(_ntile(r.pos - r.part_start, size, int(call.constants[0])))
    values = table.column(call.argument) if call.argument is not None else None
    if f in OFFSET:
        offset = int(call.constants[0]) if call.constants else 1
        default = call.constants[1] if len(call.constants) > 1 else None
        target = r.pos - offset if f == "LAG" else r.pos + offset
        inside = (target >= r.part_start) & (target < r.part_end)
        picked = values.take(pa.array(np.where(inside, target, 0))) if len(target) else values
        if default is None:
            return pc.if_else(pa.array(inside), picked, pa.scalar(None, values.type))
        return pc.if_else(pa.array(inside), picked, pa.scalar(default).cast(values.type))
    lo, hi = _frame(call.frame, r)
    empty = lo > hi
    if f in VALUE:
        at = np.where(empty, 0, lo if f == "FIRST_VALUE" else hi)
        picked = values.take(pa.array(at)) if len(at) else values
        return pc.if_else(pa.array(~empty), picked, pa.scalar(None, values.type))
    if f == "COUNT":
        if values is None:
            return pa.array(np.where(empty, 0, hi - lo + 1))
        valid = np.asarray(values.is_valid(), dtype=np.int64)
        prefix = np.concatenate([[0], np.cumsum(valid)])
        return pa.array(np.where(empty, 0, prefix[np.minimum(hi + 1, len(valid))] - prefix[np.minimum(lo, len(valid))]))
    numbers, valid = _numbers(values)
    if f in ("SUM", "AVG"):
        total, count = _window.frame_sum(numbers, valid, lo, hi)
        if f == "AVG":  # DOUBLE, as the AVG aggregation
            mean = np.divide(total.astype(np.float64), count, out=np.zeros(len(total)), where=count > 0)
            return _typed(mean, count > 0, pa.float64())
        return _typed(total, count > 0, values.type)
    if f in ("MIN", "MAX"):
        best, found = _window.frame_extreme(numbers, valid, lo, hi, f == "MAX")
        return _typed(best, found.astype(bool), values.type)
    raise ValueError(f"unknown window function {f}")


def _ntile(index: np.ndarray, size: np.ndarray, buckets: int) -> np.ndarray:
    """Druid's NTILE: the first ``size % buckets`` tiles get one row more."""
    per, extra = size // buckets, size % buckets
    big = extra * (per + 1)  # rows in the larger tiles
    small = np.where(index < big, index // (per + 1), extra + (index - big) // np.maximum(per, 1))
    return small + 1


def _frame(frame: Frame | None, r: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive [lo, hi] row bounds of every row's frame, clipped to its partition."""
    if frame is None:
        frame = Frame(False, None, 0) if r.ordered else Frame(False, None, None)
    last = r.part_end - 1
    if frame.rows:
        lo = r.part_start if frame.lower is None else np.maximum(r.pos + frame.lower, r.part_start)
        hi = last if frame.upper is None else np.minimum(r.pos + frame.upper, last)
    else:
        if frame.lower not in (None, 0) or frame.upper not in (None, 0):
            raise ValueError("RANGE frames take UNBOUNDED or CURRENT ROW bounds")
        lo = r.part_start if frame.lower is None else r.peer_start
        hi = last if frame.upper is None else r.peer_end - 1
    return np.ascontiguousarray(lo, dtype=np.int64), np.ascontiguousarray(hi, dtype=np.int64)


def _numbers(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values as int64 or float64 (nulls as 0) and a validity byte per row."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise TypeError(f"window aggregate over {values.type}")
    wide = pa.int64() if pa.types.is_integer(values.type) else pa.float64()
    numbers = np.asarray(pc.fill_null(values.cast(wide), 0).to_numpy(zero_copy_only=False))
    return np.ascontiguousarray(numbers), np.asarray(values.is_valid(), dtype=np.uint8)


def _typed(values: np.ndarray, valid: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    out = pa.array(values, mask=~valid)
    return out.cast(pa.int64() if pa.types.is_integer(arrow_type) else pa.float64())
