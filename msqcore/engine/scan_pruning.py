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
  read (the reader decompresses only the blocks that hold them), and a single-value column
  that such a condition names is not decoded at all: the index says each row's value.

Segment files stay open between queries (``engine.open_segments``), and the segments of one
scan are read on a small thread pool.

``scan_datasource`` returns the rows and a ``ScanStats`` that tells what was skipped.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from msqcore.engine.open_segments import OPEN_SEGMENTS
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


# --- the scan ------------------------------------------------------------------------------------------

# Segments are read on a few threads: decompression and Arrow's kernels release the GIL.
_WIDTH = max(1, min(4, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(max_workers=_WIDTH, thread_name_prefix="msqcore-scan")


def scan_datasource(cluster, query: LogicalQuery, check: Callable[[], None] | None = None
                    ) -> tuple[pa.Table, ScanStats]:
    """The query's source columns of every used segment the filter can match, in segment order.

    ``check`` runs before each segment (the SQL endpoint's cancel and timeout checkpoint).
    """
    live, stats, conditions = _live_segments(cluster, query, check)
    need = _rows_needed(query)
    if need is None:
        tables = _read_all(_SegmentReader(cluster, query, conditions, check), live, stats)
    else:  # a LIMIT without ORDER BY: the first rows that pass the filter, in segment order
        from msqcore.engine.operators import apply_filter
        exact = _answered_by_indexes(query)

        def then(table: pa.Table, answered: bool) -> tuple[pa.Table, int]:
            return table, table.num_rows if exact and answered else apply_filter(table, query).num_rows

        reader = _SegmentReader(cluster, query, conditions, check, then, concat=True)
        parts = _read_all(reader, live, stats, enough=lambda parts: sum(n for _, n in parts) >= need)
        tables = [table for table, _ in parts]
    if not tables:
        columns = query.source_columns()
        empty = pa.table({n: pa.array([], arrow_type(t)) for n, t in query.source.signature if n in columns})
        return empty, stats
    return arrays.concat_tables(tables), stats


def aggregate_datasource(cluster, query: LogicalQuery, check: Callable[[], None] | None = None
                         ) -> tuple[pa.Table, ScanStats] | None:
    """The groups and aggregated values (``aggregate.combine``'s table, for
    ``ops.finish_aggregate``) of a query ``engine.id_aggregate`` can run on dictionary ids;
    None for any other query. Each segment is read and reduced to ids and values on the
    scan's threads."""
    from msqcore.engine import id_aggregate
    live, stats, conditions = _live_segments(cluster, query, check)
    if not id_aggregate.eligible(query, [cluster._meta(s.payload) for s in live]):
        return None
    exact = _answered_by_indexes(query)

    def then(table: pa.Table, answered: bool) -> id_aggregate.SegmentRows:
        if not (exact and answered):  # the indexes did not answer the whole WHERE clause
            from msqcore.engine.operators import apply_filter
            table = apply_filter(table, query)
        return id_aggregate.SegmentRows(table, query)

    reader = _SegmentReader(cluster, query, conditions, check, then, id_aggregate.dictionary_columns(query))
    if exact:  # a segment whose indexes answered the WHERE clause needs none of its columns
        reader.filter_only = query.filter.columns() - id_aggregate.input_columns(query) if query.filter else set()
    parts = _read_all(reader, live, stats)
    return id_aggregate.combine(parts, query), stats


def _rows_needed(query: LogicalQuery) -> int | None:
    """How many rows passing the filter a scan query keeps, when it keeps the first ones:
    OFFSET + LIMIT without ORDER BY (then the scan can stop reading segments)."""
    if query.limit is None or query.is_aggregate or query.order_by or query.window is not None \
            or query.unnest is not None:
        return None
    return query.offset + query.limit


def _answered_by_indexes(query: LogicalQuery) -> bool:
    """True when every conjunct of the WHERE clause is a string equality (which a segment's
    bitmap indexes answer exactly, when it has them)."""
    return query.filter is None or all(_string_eq(c) is not None for c in _conjuncts(query.filter))


def _live_segments(cluster, query: LogicalQuery, check) -> tuple[list, ScanStats, dict[str, set[str]]]:
    """The used segments that the time ranges and shard specs keep, and the string conditions."""
    stats = ScanStats()
    ranges = time_ranges(query.filter)
    conditions = string_conditions(query.filter)
    if query.unnest is not None:  # the unnested column is no stored column
        conditions.pop(query.unnest.name, None)
    datasource = query.source.datasource
    segments = cluster.metadata.data_segments(datasource)
    OPEN_SEGMENTS.retain(datasource, {cluster.deep_storage.local_path(s.payload["loadSpec"]) for s in segments})
    live = []
    for seg in segments:
        stats.segments += 1
        if check is not None:
            check()
        if not overlaps(ranges, seg.start, seg.end):
            stats.pruned_by_time += 1
        elif range_excludes(seg.payload.get("shardSpec", {}), conditions):
            stats.pruned_by_shard_spec += 1
        else:
            live.append(seg)
    return live, stats, conditions


def _read_all(reader: _SegmentReader, live: list, stats: ScanStats, enough=None) -> list:
    """``reader.read`` of each segment, in order, on the pool; what was read counted in ``stats``.
    With ``enough``, segments are read a pool's width at a time until ``enough(parts so far)``."""
    if enough is None:
        results = list(_POOL.map(reader.read, live)) if len(live) > 1 else [reader.read(s) for s in live]
    else:
        results = []
        for i in range(0, len(live), _WIDTH):
            results += _POOL.map(reader.read, live[i:i + _WIDTH])
            if enough([part for part, _, _ in results if part is not None]):
                break
    out = []
    for part, num_rows, rows_read in results:
        if part is None:
            stats.pruned_by_index += 1
            continue
        stats.read += 1
        stats.rows_total += num_rows
        stats.rows_read += rows_read
        out.append(part)
    log.debug("scan of %s: %s", reader.query.source.datasource, stats.to_json())
    return out


class _SegmentReader:
    """Reads one segment for a scan: the rows the bitmap indexes select, and the query's columns.

    A single-value string column whose equality condition the index answered is not decoded
    for the selected rows: each of them holds one of the condition's values, and the index
    says which (the WHERE clause is still evaluated on it afterwards)."""

    def __init__(self, cluster, query: LogicalQuery, conditions: dict[str, set[str]], check, then=None,
                 dictionary: set[str] = frozenset(), concat: bool | None = None):
        from msqcore.planner import json_functions
        self.cluster = cluster
        self.then = then  # (rows, whether the indexes answered every condition) → what read returns
        self.dictionary = dictionary  # columns read as dictionary<int32, string>
        self.query = query
        self.conditions = conditions
        self.check = check
        # COUNT(*) reads no column, but a table without columns cannot carry a row count
        # through concatenation: keep __time, unless the tables are not concatenated (by
        # default, those that go to ``then``).
        concat = then is None if concat is None else concat
        self.wanted = query.source_columns() or (["__time"] if concat else [])
        # nested columns read only through JSON_VALUE: engine.worker reads their field columns
        self.nested = bool(json_functions.field_reads(query.source_exprs()))
        self.signature = [(n, t) for n, t in query.source.signature if n in self.wanted]
        self.filter_only: set[str] = set()  # columns not read when the indexes answer every condition

    def read(self, seg) -> tuple[pa.Table | None, int, int]:
        """(the segment's rows, or ``then`` of them; its row count; the rows read). No table
        when the indexes rule every row out."""
        table, num_rows, answered = self._rows(seg)
        if table is None:
            return None, num_rows, 0
        return (table if self.then is None else self.then(table, answered)), num_rows, table.num_rows

    def _rows(self, seg) -> tuple[pa.Table | None, int, bool]:
        from msqcore.storage.segment import read_segment_meta
        if self.check is not None:
            self.check()
        path = self.cluster.deep_storage.local_path(seg.payload["loadSpec"])
        meta = self.cluster._meta(seg.payload) if hasattr(self.cluster, "_meta") else read_segment_meta(path)
        num_rows = meta["numRows"]
        columns = {c["name"]: c for c in meta["columns"]}
        opened = None
        selected: np.ndarray | None = None
        known: dict[str, list[tuple[str, np.ndarray]]] = {}  # column → (value, its rows) from the index
        answered = True  # every condition answered by an index
        for column, values in self.conditions.items():
            col = columns.get(column)
            if col is None:
                selected = np.zeros(0, dtype=np.int32)  # the column is all null here
            elif col["type"] == "STRING" and col.get("bitmapIndex", True):
                opened = opened or OPEN_SEGMENTS.get(path, self.query.source.datasource)
                index = opened.index(column)
                ids = opened.lookup(column, tuple(sorted(values))) if values else []
                matches = [(index.dictionary[int(i)].as_py(), index.rows([i])) for i in ids]
                rows = matches[0][1] if len(matches) == 1 else index.rows(ids)
                selected = rows if selected is None else np.intersect1d(selected, rows, assume_unique=True)
                if not col.get("multiValue"):
                    known[column] = matches
            else:
                answered = False
                continue
            if len(selected) == 0:
                return None, num_rows, answered
        subset = selected is not None and len(selected) < num_rows
        rows = selected.astype(np.int64) if subset else None
        if self.nested:
            from msqcore.engine.worker import read_datasource_segment
            return read_datasource_segment(path, self.query, rows=rows, meta=meta), num_rows, answered
        opened = opened or OPEN_SEGMENTS.get(path, self.query.source.datasource)
        wanted = [c for c in self.wanted if c not in self.filter_only] if answered else self.wanted
        from_index = [c for c in wanted if c in known and selected is not None]
        reads = [c for c in wanted if c in columns and c not in from_index]
        if reads:
            table = opened.read(reads, rows=rows, dictionary=self.dictionary)
        else:  # no column to decode: the row count alone
            table = pa.table({"rows": pa.nulls(num_rows if selected is None else len(selected))}).select([])
        for column in from_index:
            values = _from_index(selected, known[column])
            table = table.append_column(opened.seg.field(opened.seg.column(column), values), values)
        return _conform(table, self.signature), num_rows, answered


def _from_index(selected: np.ndarray, matches: list[tuple[str, np.ndarray]]) -> pa.Array:
    """The values of a single-value string column at ``selected`` rows, each of which is in
    the rows of one of ``matches``."""
    codes = np.zeros(len(selected), dtype=np.int32)
    for k, (_, rows) in enumerate(matches[1:], start=1):
        pos = np.searchsorted(selected, rows)
        inside = pos < len(selected)
        inside[inside] = selected[pos[inside]] == rows[inside]
        codes[pos[inside]] = k
    return pa.array([v for v, _ in matches], pa.string()).take(pa.array(codes))


def _conform(table: pa.Table, signature: list[tuple[str, str]]) -> pa.Table:
    """The columns as the datasource's signature types them; columns a segment lacks are null.
    (``engine.worker.read_datasource_segment`` does the same for the MSQ workers.) Dictionary
    ids stay ids."""
    from msqcore.inputs import formats
    ids = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    out = formats.conform(table.drop_columns(ids) if ids else table, signature)
    for f in table.schema:
        # multi-value strings stay lists (conform would write them as JSON text)
        if (f.name in ids or pa.types.is_list(f.type)) and f.name in out.column_names \
                and out.schema.field(f.name).type == pa.string():
            out = out.set_column(out.column_names.index(f.name), f.name, table.column(f.name))
    return out
