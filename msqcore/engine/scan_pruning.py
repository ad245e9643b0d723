"""Reading a datasource for the SQL endpoint without reading what the filter rules out.

Two prunings, both safe (the full filter still runs on what is read):

* **Time.** From the ``__time`` conjuncts of the WHERE clause (comparisons, BETWEEN, IN,
  TIME_IN_INTERVAL, OR of those) we derive the half-open millisecond ranges a row can lie
  in, and skip every segment whose interval misses them all. This is what Druid's Broker
  does when it turns a ``__time`` filter into the native query's ``intervals``.
* **Bitmap indexes.** For string dimensions compared for equality (``=``, ``IN``, an OR
  of equalities on one column), the segment file's Roaring bitmaps
  (``storage.segment.string_value_index``) give the matching rows without decoding the
  column. A segment where no row matches is skipped; otherwise only the matching rows are
  read (the reader decompresses only the blocks that hold them).

``scan_datasource`` returns the rows and a ``ScanStats`` that tells what was skipped.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from msqcore.planner import arrays
from msqcore.planner.expressions import Call, ColumnRef, Expr, Literal, arrow_type
from msqcore.planner.query import LogicalQuery
from msqcore.timeutil import Intervals, intersect_intervals, union_intervals

log = logging.getLogger("msqcore.engine")

MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1

Ranges = Intervals  # sorted, disjoint, half-open [lo, hi)


@dataclass
class ScanStats:
    """What one datasource scan read and skipped."""

    segments: int = 0
    pruned_by_time: int = 0
    pruned_by_shard_spec: int = 0
    pruned_by_index: int = 0
    read: int = 0
    rows_read: int = 0  # rows kept after index filtering
    rows_total: int = 0  # rows of the segments read

    def to_json(self) -> dict:
        return {"segments": self.segments, "prunedByTime": self.pruned_by_time,
                "prunedByShardSpec": self.pruned_by_shard_spec,
                "prunedByIndex": self.pruned_by_index, "read": self.read,
                "rowsRead": self.rows_read, "rowsTotal": self.rows_total}


# --- time ranges ---------------------------------------------------------------------------------

_FLIP = {"greater": "less", "greater_equal": "less_equal", "less": "greater", "less_equal": "greater_equal",
         "equal": "equal"}


def _is_time(e: Expr) -> bool:
    return isinstance(e, ColumnRef) and e.name == "__time" and e.sql_type == "TIMESTAMP"


def _comparison(op: str, value) -> Ranges:
    if value is None:  # comparing with NULL is never true
        return []
    v = int(value)
    if op == "equal":
        return [(v, v + 1)]
    if op == "greater":
        return [(v + 1, MAX_TIME)]
    if op == "greater_equal":
        return [(v, MAX_TIME)]
    if op == "less":
        return [(MIN_TIME, v)]
    return [(MIN_TIME, v + 1)]  # less_equal


def time_ranges(e: Expr | None) -> Ranges | None:
    """The ``__time`` ranges outside which ``e`` cannot be true, or None if it does not say."""
    if not isinstance(e, Call):
        return None
    if e.op == "and":
        known = [r for r in (time_ranges(a) for a in e.args) if r is not None]
        if not known:
            return None
        out = known[0]
        for r in known[1:]:
            out = intersect_intervals(out, r)
        return out
    if e.op == "or":
        parts = [time_ranges(a) for a in e.args]
        if any(p is None for p in parts):
            return None
        return union_intervals(*parts)
    if e.op == "istrue" and e.extra == (True, False) and len(e.args) == 1:
        return time_ranges(e.args[0])  # IS TRUE of a comparison
    if e.op in _FLIP and len(e.args) == 2:
        a, b, op = e.args[0], e.args[1], e.op
        if isinstance(a, Literal) and _is_time(b):
            a, b, op = b, a, _FLIP[op]
        if _is_time(a) and isinstance(b, Literal) and b.sql_type in ("TIMESTAMP", "BIGINT"):
            return union_intervals(_comparison(op, b.value))
        return None
    if e.op == "in" and len(e.args) == 1 and _is_time(e.args[0]) and e.extra:
        values = e.extra[0]
        return union_intervals([(int(v), int(v) + 1) for v in values.to_pylist() if v is not None])
    return None


def overlaps(ranges: Ranges | None, start: int, end: int) -> bool:
    if ranges is None:
        return True
    return any(lo < end and hi > start for lo, hi in ranges)


# --- string equality conditions -------------------------------------------------------------------

def _conjuncts(e: Expr | None) -> list[Expr]:
    if e is None:
        return []
    if isinstance(e, Call) and e.op == "and":
        return [c for a in e.args for c in _conjuncts(a)]
    return [e]


def _string_eq(e: Expr) -> tuple[str, set[str]] | None:
    """(column, values) when ``e`` is true only where a string column equals one of values."""
    if not isinstance(e, Call):
        return None
    if e.op == "equal" and len(e.args) == 2:
        a, b = e.args
        if isinstance(a, Literal):
            a, b = b, a
        if isinstance(a, ColumnRef) and a.sql_type == "VARCHAR" and a.name != "__time" \
                and isinstance(b, Literal) and b.sql_type == "VARCHAR":
            return a.name, set() if b.value is None else {b.value}
        return None
    if e.op == "in" and len(e.args) == 1 and e.extra:
        a = e.args[0]
        if isinstance(a, ColumnRef) and a.sql_type == "VARCHAR" and a.name != "__time":
            return a.name, {v for v in e.extra[0].to_pylist() if v is not None}
        return None
    if e.op == "or":
        parts = [_string_eq(a) for a in e.args]
        if parts and all(p is not None for p in parts) and len({p[0] for p in parts}) == 1:
            return parts[0][0], set().union(*(p[1] for p in parts))
    return None


def string_conditions(e: Expr | None) -> dict[str, set[str]]:
    """Per string column, the values it must take for ``e`` to be true (AND of conditions)."""
    out: dict[str, set[str]] = {}
    for c in _conjuncts(e):
        cond = _string_eq(c)
        if cond is None:
            continue
        column, values = cond
        out[column] = out[column] & values if column in out else set(values)
    return out


def range_excludes(shard_spec: dict, conditions: dict[str, set[str]]) -> bool:
    """A ``range`` shard spec holds rows whose first dimension lies in [start, end] (end
    inclusive: later dimensions break ties); True when no wanted value can be in it."""
    if shard_spec.get("type") not in ("range", "single") or not shard_spec.get("dimensions"):
        return False
    column = shard_spec["dimensions"][0]
    if column not in conditions:
        return False
    start, end = shard_spec.get("start"), shard_spec.get("end")
    low = start[0] if start else None
    high = end[0] if end else None
    return not any((low is None or v >= low) and (high is None or v <= high) for v in conditions[column])


# --- inverted index access ---------------------------------------------------------------------------

class _IndexCache:
    """A small LRU of bitmap indexes (``storage.segment.BitmapIndex``) per (segment file, column):
    published segment files never change, and their paths carry the version. An index keeps
    its file mapped and reads bitmaps on demand."""

    def __init__(self, capacity: int = 128):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, column: str):
        key = (path, column)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        from msqcore.storage.segment import string_value_index
        value = string_value_index(path, column)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value


_INDEXES = _IndexCache()


def matching_rows(path: str, column: str, values: set[str]) -> np.ndarray:
    """Sorted row numbers of one segment whose ``column`` is one of ``values``."""
    if not values:
        return np.zeros(0, dtype=np.int32)
    index = _INDEXES.get(path, column)
    return index.rows(index.lookup(sorted(values)))


# --- the scan ------------------------------------------------------------------------------------------

def scan_datasource(cluster, query: LogicalQuery, check: Callable[[], None] | None = None
                    ) -> tuple[pa.Table, ScanStats]:
    """The query's source columns of every used segment the filter can match.

    ``check`` runs before each segment (the SQL endpoint's cancel and timeout checkpoint).
    """
    from msqcore.engine.worker import read_datasource_segment
    from msqcore.storage.segment import read_segment_meta

    stats = ScanStats()
    ranges = time_ranges(query.filter)
    conditions = string_conditions(query.filter)
    if query.unnest is not None:  # the unnested column is no stored column
        conditions.pop(query.unnest.name, None)
    tables = []
    for seg in cluster.metadata.data_segments(query.source.datasource):
        stats.segments += 1
        if check is not None:
            check()
        if not overlaps(ranges, seg.start, seg.end):
            stats.pruned_by_time += 1
            continue
        if range_excludes(seg.payload.get("shardSpec", {}), conditions):
            stats.pruned_by_shard_spec += 1
            continue
        path = cluster.deep_storage.local_path(seg.payload["loadSpec"])
        selected: np.ndarray | None = None
        meta = cluster._meta(seg.payload) if hasattr(cluster, "_meta") else read_segment_meta(path)
        if conditions:
            columns = {c["name"]: c for c in meta["columns"]}
            for column, values in conditions.items():
                if column not in columns:
                    selected = np.zeros(0, dtype=np.int32)  # the column is all null here
                elif columns[column]["type"] == "STRING" and columns[column].get("bitmapIndex", True):
                    rows = matching_rows(path, column, values)
                    selected = rows if selected is None else np.intersect1d(selected, rows, assume_unique=True)
                else:
                    continue
                if len(selected) == 0:
                    break
            if selected is not None and len(selected) == 0:
                stats.pruned_by_index += 1
                continue
        num_rows = meta["numRows"]
        subset = selected is not None and len(selected) < num_rows
        table = read_datasource_segment(path, query, rows=selected if subset else None, meta=meta)
        stats.read += 1
        stats.rows_total += num_rows
        stats.rows_read += table.num_rows
        tables.append(table)
    log.debug("scan of %s: %s", query.source.datasource, stats.to_json())
    if not tables:
        columns = query.source_columns()
        empty = pa.table({n: pa.array([], arrow_type(t)) for n, t in query.source.signature if n in columns})
        return empty, stats
    return arrays.concat_tables(tables), stats
