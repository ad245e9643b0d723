"""Segment order for the segment generator when it starts with ``__time`` (the default) and
the writer cannot rank the rows itself (a multi-value string or an array in the order:
``SegmentWriter(sort_order=...)`` covers single-value strings and numbers). ``segment_order``
is also the writer's ranking sort, over ids instead of strings.

Druid's segment generator persists its in-memory index every ``rowsInMemory`` rows (sorted
by ``__time``, then by the dimensions) and merges the persisted indexes at the end. This does
the same with Arrow: every ``rowsInMemory`` rows are sorted by Arrow's multi-column sort,
which looks at the next column only when the ones before tie (and ``__time``, in
milliseconds, rarely ties), and persisted as an uncompressed Arrow IPC run. The runs are
merged by ``__time`` alone, a stable numpy argsort over their ``__time`` columns (8 bytes a
row), and then each group of rows with the same ``__time`` that comes from more than one run
is put in order by the other columns. The order is the one the external sorter's byte keys
give (nulls first, strings by their UTF-8 bytes): a column Arrow cannot sort (a multi-value
string, an array) is sorted by its frame key bytes. Unlike the external sorter, no row is
encoded as a frame or given a byte key.

The runs are memory-mapped (``mapped_runs``), and the merge reads each from front to back,
one output table at a time (ties are ordered table by table, near the rows being merged):
the pages behind the rows taken are given back, so the runs do not pile up in the worker's
RSS (220 MiB of a 715k-row partition's 249 did, in the 5M-row ingest).
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.engine.frames import encode_keys
from msqcore.engine.mapped_runs import MappedRun
from msqcore.errors import NotEnoughTemporaryStorage
from msqcore.kernels._gather import gather
from msqcore.planner import arrays


class TimeOrderedSort:
    """Rows added in any order come out of ``sorted_tables`` in ``sort_order`` (whose first
    column is ``__time``), holding at most ``rows_in_memory`` unsorted rows (or
    ``bytes_in_memory`` bytes) at a time."""

    def __init__(self, sort_order: list[str], temp_dir: str, rows_in_memory: int, bytes_in_memory: int):
        if not sort_order or sort_order[0] != "__time":
            raise ValueError("a TimeOrderedSort sorts by __time first")
        self.sort_order = sort_order
        self.rows_in_memory = rows_in_memory
        self.bytes_in_memory = bytes_in_memory
        os.makedirs(temp_dir, exist_ok=True)
        self._dir = tempfile.mkdtemp(prefix="time-sort-", dir=temp_dir)
        self._buffer: list[pa.Table] = []
        self._buffer_rows = 0
        self._buffer_bytes = 0
        self._runs: list[str] = []
        self._times: list[np.ndarray] = []  # each run's __time, in its order

    def add(self, table: pa.Table) -> None:
        self._buffer.append(table)
        self._buffer_rows += table.num_rows
        self._buffer_bytes += table.nbytes
        if self._buffer_rows >= self.rows_in_memory or self._buffer_bytes >= self.bytes_in_memory:
            self._persist()

    def sorted_tables(self, rows_per_table: int = 65536) -> Iterator[pa.Table]:
        """The rows in order, ``rows_per_table`` at a time."""
        if not self._runs:  # everything fits in memory: one sort, no run on disk
            run = self._sorted_buffer()
            for start in range(0, run.num_rows, rows_per_table):
                yield run.slice(start, rows_per_table)
            return
        self._persist()
        mapped = [MappedRun(path) for path in self._runs]
        runs = arrays.same_lists([m.table for m in mapped])
        lengths = np.array([t.num_rows for t in runs], dtype=np.int64)
        run_of = np.repeat(np.arange(len(runs), dtype=np.int32), lengths)
        row_of = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        times = np.concatenate(self._times)
        order = np.argsort(times, kind="stable")
        times = times[order]
        start = 0
        while start < len(order):
            end = min(start + rows_per_table, len(order))
            if end < len(order):  # a group of equal __time stays in one table, to be ordered there
                end = int(np.searchsorted(times, times[end - 1], side="right"))
            # ordering ties table by table reads only rows near the ones being merged, so
            # the pages given back behind them are not touched again
            self._order_ties(runs, run_of, row_of, times[start:end], order[start:end])
            for at in range(start, end, rows_per_table):
                chosen = order[at:min(at + rows_per_table, end)]
                yield _gather(runs, run_of[chosen], row_of[chosen])
                # each run is read in row order: give back its pages before the rows taken so far
                last = len(chosen) - 1 - np.unique(run_of[chosen][::-1], return_index=True)[1]
                for i in last:
                    mapped[run_of[chosen[i]]].release(int(row_of[chosen[i]]) + 1)
            start = end

    def close(self) -> None:
        self._buffer = []
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- runs ---------------------------------------------------------------------------------

    def _sorted_buffer(self) -> pa.Table:
        table = arrays.concat_tables(self._buffer) if self._buffer else None
        self._buffer, self._buffer_rows, self._buffer_bytes = [], 0, 0
        if table is None:
            return pa.table({})
        return table.take(segment_order(table, self.sort_order))

    def _persist(self) -> None:
        if not self._buffer_rows:
            return
        run = self._sorted_buffer()
        path = os.path.join(self._dir, f"run-{len(self._runs)}.arrow")
        try:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, run.schema) as writer:
                writer.write_table(run)  # one batch: a take from it never concatenates chunks
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NotEnoughTemporaryStorage(
                    suggestedMinimumStorage=int(2 * sum(os.path.getsize(p) for p in self._runs) + 2 * run.nbytes),
                    configuredTemporaryStorage=int(shutil.disk_usage(self._dir).total)) from e
            raise
        self._runs.append(path)
        self._times.append(pc.cast(run.column("__time"), pa.int64()).to_numpy())

    def _order_ties(self, runs: list[pa.Table], run_of: np.ndarray, row_of: np.ndarray, times: np.ndarray,
                    order: np.ndarray) -> None:
        """Put each group of equal ``__time`` that spans runs in order by the other columns
        (within one run the group is in order already, and the stable argsort keeps it).
        ``times``: the rows' ``__time`` in ``order``."""
        if len(order) < 2:
            return
        starts = np.flatnonzero(np.concatenate([[True], times[1:] != times[:-1]]))
        ends = np.append(starts[1:], len(order))
        runs_sorted = run_of[order]
        spans = (ends - starts > 1) & (np.minimum.reduceat(runs_sorted, starts) != np.maximum.reduceat(runs_sorted,
                                                                                                    starts))
        # Many groups at once (a 930k-row day has thousands, of 2 or 3 rows each, and one gather
        # and sort per group cost 20x the whole merge), up to ``rows_in_memory`` rows at a time
        # (a bigger group alone, as before): their rows, concatenated in ``__time`` order, are
        # sorted by the whole sort order (``__time`` first keeps each group in its place; the
        # sort is stable, as the argsort was).
        group_starts, sizes = starts[spans], (ends - starts)[spans]
        rows_before_end = np.cumsum(sizes)
        first = 0
        while first < len(sizes):
            limit = rows_before_end[first] - sizes[first] + self.rows_in_memory
            last = max(first + 1, int(np.searchsorted(rows_before_end, limit, side="right")))
            s, n = group_starts[first:last], sizes[first:last]
            at = np.repeat(s - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
            chosen = order[at]
            rows = _gather(runs, run_of[chosen], row_of[chosen])
            order[at] = chosen[segment_order(rows, self.sort_order)]
            first = last


def segment_order(table: pa.Table, columns: list[str]) -> np.ndarray:
    """The rows of ``table`` in order by ``columns`` (ascending, nulls first, ties in row
    order), as the external sorter's byte keys order them; uint64 row numbers.

    A first column of int64 without nulls (``__time``) whose span leaves room for the row
    numbers in 63 bits is sorted alone, as its values and row numbers packed into one int64
    each: unique keys, so an unstable sort gives the stable order, 3x faster than Arrow's
    stable sort of ``__time`` (most of the 24-column sort's time). Only the rows that tie on
    it (milliseconds: a few hundred of a 143k-row day) are then sorted by every column."""
    first = table.column(columns[0])
    n = table.num_rows
    if first.type == pa.int64() and not first.null_count and n > 1:
        values = first.to_numpy()
        lo, bits = int(values.min()), (n - 1).bit_length()
        if int(values.max()) - lo < 1 << (63 - bits):
            packed = ((values - np.int64(lo)) << np.int64(bits)) | np.arange(n, dtype=np.int64)
            packed.sort()
            order = packed & np.int64((1 << bits) - 1)
            packed >>= np.int64(bits)
            same = packed[1:] == packed[:-1]
            del packed
            if len(columns) > 1 and same.any():
                tied = np.zeros(n, dtype=bool)
                tied[1:] = same
                tied[:-1] |= same
                at = np.flatnonzero(tied)
                rows = order[at]  # ascending within each run of equal values
                order[at] = rows[_sort_indices(table.take(pa.array(rows)), columns)]
            return order.view(np.uint64)
    return _sort_indices(table, columns)


def _sort_indices(table: pa.Table, columns: list[str]) -> np.ndarray:
    """``segment_order`` by Arrow's stable multi-column sort."""
    keys = []
    for i, name in enumerate(columns):
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if not _sortable(col.type) or (pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py()):
            # a multi-value string, an array, or NaN (Arrow places NaN with the nulls, the keys
            # after +inf): by the column's key bytes
            offsets, data = encode_keys(table.select([name]), [(name, False)])
            col = pa.chunked_array([pa.Array.from_buffers(pa.large_binary(), table.num_rows,
                                                          [None, pa.py_buffer(offsets), pa.py_buffer(data)])])
        keys.append(col)
    names = [f"k{i}" for i in range(len(keys))]
    return pc.sort_indices(pa.table(keys, names=names),
                           sort_keys=[(n, "ascending", "at_start") for n in names]).to_numpy()


def _sortable(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
            or pa.types.is_timestamp(t))


def _gather(runs: list[pa.Table], run_of: np.ndarray, row_of: np.ndarray) -> pa.Table:
    """Rows ``row_of[i]`` of runs ``run_of[i]``, in that order: each column copied once by
    the ``gather`` kernel, or (a type it does not handle) taken from each run and
    interleaved."""
    present = np.unique(run_of)
    if len(present) == 1:
        return runs[present[0]].take(pa.array(row_of))
    run_of = np.ascontiguousarray(run_of, dtype=np.int32)
    row_of = np.ascontiguousarray(row_of, dtype=np.int64)
    places = interleave = None
    columns = []
    for i, field in enumerate(runs[0].schema):
        sources = [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in (run.column(i) for run in runs)]
        col = gather(sources, run_of, row_of)
        if col is None:
            if interleave is None:
                places = [np.flatnonzero(run_of == r) for r in present]
                interleave = pa.array(np.argsort(np.concatenate(places), kind="stable"))
            col = pa.concat_arrays([sources[r].take(pa.array(row_of[at])) for r, at in zip(present, places)])
            col = col.take(interleave)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=runs[0].schema)
