"""External merge sort of row batches by their frame sort keys (Druid's SuperSorter), and the
key statistics that choose range-partition boundaries (spec §5.5, §5.8).

    sorter = ExternalSorter([("__bucket", False), ("page", False)], temp_dir)
    sorter.add(table) ...                   # buffers; sorts and spills runs when over budget
    paths = sorter.finish(boundaries)       # one frame file per output partition
    for batch in read_frames_file(paths[0]): ...
    sorter.progress()                       # Druid's ``sortProgress`` counter
    sorter.close()                          # removes every temporary file

    stats = KeyStatistics(schema, key, bucket_by_count=1)
    stats.add(table) / stats.merge(other)   # picklable, mergeable across workers
    stats.boundaries_target_size(3_000_000) / stats.boundaries_max_count(n)

Merge levels follow Druid's SuperSorter: without spills one **direct** level writes every
partition from memory; otherwise level 0 is the sorted runs, each further level merges up to
``max_fan_in`` runs of the level below, the penultimate level writes partitioned run files
and the ultimate level writes one file per output partition (at least 3 levels with several
partitions, 2 with one). When the penultimate level is one merger, it writes the output files
itself and the ultimate level's mergers are counted done (the same counters as Druid's, one
copy of the data less). The sorting and merging loops are in ``msqcore.kernels._sort``.
"""
from __future__ import annotations

import bisect
import contextlib
import errno
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from msqcore.engine.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameFileReader,
    FrameFileWriter,
    FrameSchema,
    KeySpec,
    check_max_frame_size,
    concat_keys,
    decode_frame,
    empty_frame,
    encode_keys,
    keyed_source,
    read_frames_file,
    write_frames,
)
from msqcore.errors import NotEnoughTemporaryStorage, TooManyBuckets, TooManyPartitions
from msqcore.kernels import _frame as _kf
from msqcore.kernels import _sort as _ks

__all__ = [
    "MAX_BUCKETS",
    "MAX_PARTITIONS",
    "ExternalSorter",
    "KeyStatistics",
    "NotEnoughTemporaryStorageFault",
    "SortProgress",
    "TooManyPartitions",
    "decode_long_prefix",
    "decode_string_columns",
    "merge_plan",
    "partition_of",
    "read_frames_file",
]

MAX_PARTITIONS = 25_000
MAX_BUCKETS = 5_000
UNKNOWN_LEVEL = -1
UNKNOWN_TOTAL = -1
_SORT_SCRATCH_PER_ROW = 72      # radix sort items + scratch (49), permutation, source ids, rows: in the budget
_KEYS_PER_PARTITION = 8         # sample keys a bucket keeps per partition it needs (with target_rows)
# Consecutive smaller batches are joined up to this size before they are buffered: each batch
# costs about a millisecond of fixed work (key encoding, statistics, its kernel source), and
# the readers hand over one batch per 1 MiB parse chunk (a few thousand rows).
_JOIN_ROWS = 65_536
_JOIN_BYTES = 32 << 20


# Druid's fault is named NotEnoughTemporaryStorageFault on the wire (spec §6.2).
NotEnoughTemporaryStorageFault = NotEnoughTemporaryStorage


# --- sortProgress -----------------------------------------------------------------------------


class SortProgress:
    """Druid's SuperSorterProgressTracker: mergers per level, how many finished, the digest.

    Thread-safe; ``snapshot()`` is the ``sortProgress`` counter JSON (spec §4.5, §5.8).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total_levels = UNKNOWN_LEVEL
        self.ultimate = UNKNOWN_TOTAL
        self.totals: dict[int, int] = {}
        self.merged: dict[int, int] = {}
        self.trivially_complete = False

    def set_total_levels(self, levels: int) -> None:
        with self._lock:
            if self.total_levels != UNKNOWN_LEVEL:
                raise RuntimeError("total merging levels already set")
            self.total_levels = levels

    def set_total(self, level: int, mergers: int) -> None:
        with self._lock:
            self.totals[level] = mergers

    def set_ultimate(self, mergers: int) -> None:
        with self._lock:
            if self.ultimate != UNKNOWN_TOTAL:
                raise RuntimeError("mergers of the ultimate level already set")
            self.ultimate = mergers

    def add_merged(self, level: int, n: int = 1) -> None:
        with self._lock:
            self.merged[level] = self.merged.get(level, 0) + n

    def mark_trivially_complete(self) -> None:
        with self._lock:
            self.trivially_complete = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            if self.trivially_complete:
                return {"type": "sortProgress", "totalMergingLevels": UNKNOWN_LEVEL, "levelToTotalBatches": {},
                        "levelToMergedBatches": {}, "totalMergersForUltimateLevel": UNKNOWN_TOTAL,
                        "progressDigest": 1.0, "triviallyComplete": True}
            totals = dict(self.totals)
            if self.total_levels != UNKNOWN_LEVEL:
                totals[self.total_levels - 1] = self.ultimate
            out: dict[str, Any] = {
                "type": "sortProgress",
                "totalMergingLevels": self.total_levels,
                "levelToTotalBatches": {str(k): v for k, v in sorted(totals.items())},
                "levelToMergedBatches": {str(k): v for k, v in sorted(self.merged.items())},
                "totalMergersForUltimateLevel": self.ultimate,
            }
            if self.total_levels != UNKNOWN_LEVEL:
                progress = 0.0
                for level in range(self.total_levels):
                    total = totals.get(level, UNKNOWN_TOTAL)
                    if total > 0:
                        progress += self.merged.get(level, 0) / total / self.total_levels
                out["progressDigest"] = 1.0 if progress + 1e-6 > 1.0 else progress
            return out


# --- the sorter -------------------------------------------------------------------------------


def _joined(batches: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches`` with consecutive small ones joined (copied) into batches of about
    ``_JOIN_ROWS`` rows or ``_JOIN_BYTES`` bytes; empty ones, and ones of half that many rows
    or more (not worth a copy), pass as they are."""
    group: list[pa.RecordBatch] = []
    rows = nbytes = 0
    for batch in batches:
        if not batch.num_rows or batch.num_rows >= _JOIN_ROWS // 2:
            if group:
                yield _join(group)
                group, rows, nbytes = [], 0, 0
            yield batch
            continue
        group.append(batch)
        rows += batch.num_rows
        nbytes += batch.nbytes
        if rows >= _JOIN_ROWS or nbytes >= _JOIN_BYTES:
            yield _join(group)
            group, rows, nbytes = [], 0, 0
    if group:
        yield _join(group)


def _join(group: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(group) == 1:
        return group[0]
    return pa.Table.from_batches(group).combine_chunks().to_batches()[0]


def merge_plan(runs: int, partitions: int, max_fan_in: int) -> list[int]:
    """Mergers per level for ``runs`` level-0 runs (Druid's external mode); the last entry is
    the ultimate level (``partitions``)."""
    counts = [runs]
    while counts[-1] > max_fan_in:
        counts.append(-(-counts[-1] // max_fan_in))
    if len(counts) <= 1:
        levels = 3 if partitions > 1 else 2
    else:
        levels = len(counts) + 1
    plan = counts + [1] * (levels - len(counts))
    plan[-1] = partitions
    return plan


class ExternalSorter:
    """Sorts rows by ``key`` (``[(column, descending)]``) with bounded memory.

    ``add`` buffers batches (encoding their keys as they come); once the buffer holds
    ``rows_in_memory`` rows or about ``bytes_in_memory`` bytes (Arrow data + keys + sort
    scratch), it is sorted and spilled to ``temp_dir`` as a run file of sorted frames.
    ``finish(boundaries)`` merges the runs level by level (at most ``max_fan_in`` inputs per
    merger) and writes one frame file per output partition: partition ``p`` holds the keys
    in ``[boundaries[p - 1], boundaries[p])``. Equal keys keep their input order.

    ``schema`` fixes the columns up front (else the first ``add`` does). ``statistics`` gets
    every added key (``KeyStatistics.add_keys``). ``max_temp_bytes`` caps the bytes this
    sorter keeps on disk. Output files go to ``output_dir`` (kept by ``close``) or to the
    sorter's private temporary directory (removed by ``close``). ``progress_callback`` is
    called with ``progress()`` after every merger. A full disk or the cap raises
    ``NotEnoughTemporaryStorageFault``.
    """

    def __init__(self, key: KeySpec, temp_dir: str, *, rows_in_memory: int = 100_000,
                 bytes_in_memory: int = 64 << 20, max_fan_in: int = 16,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, schema: pa.Schema | None = None,
                 statistics: KeyStatistics | None = None, max_temp_bytes: int | None = None,
                 output_dir: str | None = None, output_prefix: str = "partition",
                 progress_callback: Callable[[dict], None] | None = None):
        self.key = [(str(c), bool(d)) for c, d in key]
        if not self.key:
            raise ValueError("an ExternalSorter needs at least one key column")
        if rows_in_memory < 1 or bytes_in_memory < 1:
            raise ValueError("the memory budget must be positive")
        if max_fan_in < 2:
            raise ValueError("max_fan_in must be at least 2")
        self.rows_in_memory = int(rows_in_memory)
        self.bytes_in_memory = int(bytes_in_memory)
        self.max_fan_in = int(max_fan_in)
        self.max_frame_size = check_max_frame_size(max_frame_size)
        self.statistics = statistics
        self.max_temp_bytes = max_temp_bytes
        self.output_prefix = output_prefix
        self.progress_callback = progress_callback
        os.makedirs(temp_dir, exist_ok=True)
        self._dir = tempfile.mkdtemp(prefix="sort-", dir=temp_dir)
        self.output_dir = output_dir if output_dir is not None else self._dir
        self._fs: FrameSchema | None = FrameSchema.for_schema(schema, self.key) if schema is not None else None
        self._buffer: list[tuple[Any, np.ndarray, np.ndarray]] = []   # (source, key offsets, key data)
        self._buf_rows = 0
        self._buf_bytes = 0
        self._runs: list[str] = []
        self._files: dict[str, int] = {}          # live files this sorter wrote -> bytes
        self._temp_bytes = 0
        self._run_bytes = 0
        self._tracker = SortProgress()
        self._state = "adding"
        self.rows_added = 0
        self._spills = 0
        self.outputs: list[str] = []

    # -- public API --

    @property
    def schema(self) -> pa.Schema | None:
        return None if self._fs is None else self._fs.arrow_schema

    @property
    def runs_spilled(self) -> int:
        """Sorted runs written to disk so far (level-0 mergers in external mode)."""
        return self._spills

    @property
    def temp_bytes(self) -> int:
        """Bytes of temporary files this sorter currently keeps on disk."""
        return self._temp_bytes

    def add(self, data: pa.RecordBatch | pa.Table) -> None:
        """Buffer rows; spills a sorted run whenever the buffer is over budget."""
        if self._state != "adding":
            raise RuntimeError("add() after finish() or close()")
        if isinstance(data, pa.Table):
            batches = data.to_batches()
            if self._fs is None:
                self._fs = FrameSchema.for_schema(data.schema, self.key)
        elif isinstance(data, pa.RecordBatch):
            batches = [data]
        else:
            raise TypeError(f"expected a pyarrow RecordBatch or Table, got {type(data).__name__}")
        with self._storage_guard():
            for batch in _joined(batches):
                if self._fs is None:
                    self._fs = FrameSchema.for_schema(batch.schema, self.key)
                wider = self._fs.widened(batch.schema)
                if wider is not self._fs:
                    self._widen(wider)
                if batch.num_rows == 0:
                    self._fs.normalize(batch)       # still check the columns
                    continue
                self._add_batch(self._fs.normalize(batch))

    def finish(self, boundaries: Sequence[bytes] | None = None) -> list[str]:
        """Merge everything and write one frame file per partition; returns their paths.

        ``boundaries`` are strictly increasing encoded keys (``KeyStatistics`` makes them);
        None or [] gives one partition. An empty partition's file holds one frame with no rows.
        """
        if self._state != "adding":
            raise RuntimeError("finish() called twice or after close()")
        bounds = [bytes(b) for b in (boundaries or [])]
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError("partition boundaries must be strictly increasing")
        if len(bounds) + 1 > MAX_PARTITIONS:
            raise TooManyPartitions(maxPartitions=MAX_PARTITIONS)
        self._state = "finishing"
        nparts = len(bounds) + 1
        self._tracker.set_ultimate(nparts)
        with self._storage_guard():
            if self.rows_added == 0:
                self._tracker.mark_trivially_complete()
                self.outputs = [self._write_empty(p) for p in range(nparts)]
            elif not self._runs:
                self.outputs = self._finish_direct(bounds)
            else:
                self.outputs = self._finish_external(bounds)
        self._state = "finished"
        self._notify()
        return list(self.outputs)

    def progress(self) -> dict[str, Any]:
        """The ``sortProgress`` counter (Druid's JSON; -1 = unknown, digest omitted if unknown)."""
        return self._tracker.snapshot()

    def close(self) -> None:
        """Remove every temporary file (outputs too, unless they went to ``output_dir``)."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._buffer.clear()
        shutil.rmtree(self._dir, ignore_errors=True)
        self._files.clear()
        self._temp_bytes = 0

    def __enter__(self) -> ExternalSorter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- buffering and level 0 --

    def _add_batch(self, batch: pa.RecordBatch) -> None:
        fs = self._fs
        n = batch.num_rows
        per_row = batch.nbytes / n + _SORT_SCRATCH_PER_ROW + 16
        start = 0
        while start < n:
            room_rows = self.rows_in_memory - self._buf_rows
            room_bytes = (self.bytes_in_memory - self._buf_bytes) / per_row
            take = max(1, min(n - start, room_rows, int(room_bytes)))
            piece = batch.slice(start, take) if (start or take < n) else batch
            start += take
            src, (offsets, data) = keyed_source(piece, fs)
            if self.statistics is not None:
                self.statistics.add_keys(offsets, data)
            self._buffer.append((src, offsets, data))
            self._buf_rows += take
            self._buf_bytes += piece.nbytes + offsets.nbytes + data.nbytes + _SORT_SCRATCH_PER_ROW * take
            self.rows_added += take
            if self._buf_rows >= self.rows_in_memory or self._buf_bytes >= self.bytes_in_memory:
                self._spill()

    def _sorted_buffer(self) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sources = [s for s, _, _ in self._buffer]
        offsets, data = concat_keys([(o, d) for _, o, d in self._buffer])
        order = _ks.argsort_keys(offsets, data)
        starts = np.cumsum([0] + [s.num_rows for s in sources[:-1]]).astype(np.int64)
        source_ids = (np.searchsorted(starts, order, side="right") - 1).astype(np.int32)
        rows = order - starts[source_ids]
        return sources, source_ids, rows, offsets, data, order

    def _spill(self) -> None:
        if not self._buf_rows:
            return
        sources, source_ids, rows, _o, _d, _order = self._sorted_buffer()
        path = self._temp_path(f"run-0-{len(self._runs)}")
        with self._writer(path) as w:
            for frame, n in write_frames(self._fs, sources, source_ids, rows, self.max_frame_size, sorted=True):
                w.write(frame, n)
        self._run_bytes += os.path.getsize(path)
        self._runs.append(path)
        self._spills += 1
        self._buffer.clear()
        self._buf_rows = 0
        self._buf_bytes = 0
        self._tracker.add_merged(0, 1)
        self._notify()

    def _widen(self, wider: FrameSchema) -> None:
        """A STRING column turned out multi-valued in a later batch: the rows so far become
        one-value lists. Buffered rows are spilled, then every run is rewritten in the wider
        schema; each stays sorted, as a one-value list orders as its string does."""
        self._spill()
        for i, path in enumerate(self._runs):
            out = self._temp_path(f"run-0-{i}-wide")
            with self._writer(out) as w, FrameFileReader(path) as r:
                for buf in r.iter_frames():
                    batch = wider.normalize(decode_frame(buf))
                    src, _keys = keyed_source(batch, wider)
                    for frame, n in write_frames(wider, [src], None, None, self.max_frame_size, sorted=True):
                        w.write(frame, n)
            self._remove(path)
            self._runs[i] = out
        self._fs = wider

    # -- finishing --

    def _finish_direct(self, bounds: list[bytes]) -> list[str]:
        """Everything is in memory: one level, one merger per output partition."""
        nparts = len(bounds) + 1
        self._tracker.set_total(0, nparts)
        self._tracker.set_total_levels(1)
        sources, source_ids, rows, offsets, data, order = self._sorted_buffer()
        cuts = [0] + _ks.search_keys(offsets, data, order, bounds).tolist() + [len(order)]
        outputs = []
        for p in range(nparts):
            path = self._output_path(p)
            with self._writer(path) as w:
                for frame, n in write_frames(self._fs, sources, source_ids, rows, self.max_frame_size,
                                             sorted=True, start=cuts[p], end=cuts[p + 1]):
                    w.write(frame, n)
            outputs.append(path)
            self._tracker.add_merged(0, 1)
            self._notify()
        self._buffer.clear()
        self._buf_rows = 0
        self._buf_bytes = 0
        return outputs

    def _finish_external(self, bounds: list[bytes]) -> list[str]:
        self._spill()
        nparts = len(bounds) + 1
        plan = merge_plan(len(self._runs), nparts, self.max_fan_in)
        levels = len(plan)
        for level, mergers in enumerate(plan[:-1]):
            self._tracker.set_total(level, mergers)
        self._tracker.set_total_levels(levels)
        current = list(self._runs)
        self._runs = []
        outputs = [self._output_path(p) for p in range(nparts)]
        written = False
        for level in range(1, levels - 1):
            penultimate = level == levels - 2
            per = -(-len(current) // plan[level]) if penultimate else self.max_fan_in
            # one penultimate merger writes the output files itself: the ultimate level's
            # mergers then have nothing left to do (no copy of every partition)
            written = penultimate and len(current) <= per
            nxt = []
            for g, lo in enumerate(range(0, len(current), per)):
                group = current[lo:lo + per]
                out = outputs if written else self._temp_path(f"run-{level}-{g}")
                self._merge([(p, None) for p in group], out, bounds if penultimate else None)
                for p in group:
                    self._remove(p)
                nxt.append(out)
                self._tracker.add_merged(level, 1)
                self._notify()
            current = nxt
        ultimate = levels - 1
        for p in range(nparts):
            if not written:
                if levels == 2:
                    inputs = [(c, None) for c in current]           # one partition, unpartitioned runs
                else:
                    inputs = [(c, p) for c in current]
                if len(inputs) == 1:
                    self._copy_partition(inputs[0][0], inputs[0][1], outputs[p])
                else:
                    self._merge(inputs, outputs[p], None)
            self._tracker.add_merged(ultimate, 1)
            self._notify()
        if not written:
            for c in current:
                self._remove(c)
        return outputs

    def _merge(self, inputs: list[tuple[str, int | None]], out: str | list[str], bounds: list[bytes] | None) -> None:
        """k-way merge of sorted frame files (or one partition of each) into ``out``: one file
        (partitioned at ``bounds``), or a list of one file per partition of ``bounds``."""
        fs = self._fs
        k = len(inputs)
        budget = (self.max_frame_size - fs.overhead) * 8
        merger = _ks.Merger(k, max(1, budget // 32 + 1))
        readers = [FrameFileReader(path) for path, _ in inputs]
        try:
            frames = [r.iter_frames(part) for r, (_, part) in zip(readers, inputs)]
            current: list[Any] = [None] * k
            slots: list[Any] = []

            def next_source(i: int):
                for buf in frames[i]:
                    src = _kf.FrameSource.from_frame(buf)
                    if src.num_rows:
                        return src
                return None

            for i in range(k):
                src = next_source(i)
                current[i] = src
                if src is None:
                    merger.set_done(i)
                else:
                    slots.append(src)
                    merger.set_cursor(i, src, len(slots) - 1, False)
            merger.build()
            paths = out if isinstance(out, list) else [out]
            with contextlib.ExitStack() as stack:
                writer = stack.enter_context(self._writer(paths[0]))
                part = 0
                merger.set_boundary(bounds[0] if bounds else None)

                def next_partition() -> None:
                    nonlocal writer, part
                    part += 1
                    if len(paths) == 1:
                        writer.next_partition()
                        return
                    self._end_output(writer)
                    writer = stack.enter_context(self._writer(paths[part]))

                def emit() -> None:
                    nonlocal slots
                    if merger.count:
                        for frame, n in write_frames(fs, slots, merger.out_sources, merger.out_rows,
                                                     self.max_frame_size, sorted=True, end=merger.count):
                            writer.write(frame, n)
                    merger.reset_output()
                    slots = []
                    for j, src in enumerate(current):
                        if src is not None:
                            merger.set_slot(j, len(slots))
                            slots.append(src)

                while True:
                    reason = merger.run(budget)
                    if reason == _ks.FULL:
                        emit()
                    elif reason == _ks.REFILL:
                        i = merger.refill
                        src = next_source(i)
                        current[i] = src
                        if src is None:
                            merger.set_done(i)
                        else:
                            slots.append(src)
                            merger.set_cursor(i, src, len(slots) - 1, False)
                    elif reason == _ks.BOUNDARY:
                        emit()
                        next_partition()
                        merger.set_boundary(bounds[part] if part < len(bounds) else None)
                    else:
                        emit()
                        break
                while bounds and part < len(bounds):
                    next_partition()
                if len(paths) > 1:
                    self._end_output(writer)
        finally:
            for r in readers:
                r.close()

    def _end_output(self, writer: FrameFileWriter) -> None:
        """Close an output file; an empty partition's file still holds one frame with no rows."""
        if not writer.frames_written:
            writer.write(empty_frame(self._fs), 0)
        writer.close()

    def _copy_partition(self, src: str, partition: int | None, out: str) -> None:
        """A merger with one input: its frames are already in order, so move or copy them."""
        with FrameFileReader(src) as reader:
            whole = partition is None or reader.num_partitions == 1
            rows = reader.num_rows if partition is None else reader.partition_rows[partition]
            frames = reader.num_frames if partition is None else reader.partition_frames[partition]
        if whole and rows:
            try:
                os.replace(src, out)
                self._files[out] = self._files.pop(src, 0)
                return
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
        if rows == 0:
            self._write_empty_at(out)
            return
        with FrameFileReader(src) as reader, self._writer(out) as w:
            for chunk in reader.read_raw(partition):
                w.write_raw(chunk, 0, 0)
            w.write_raw(b"", frames, rows)

    def _write_empty(self, p: int) -> str:
        path = self._output_path(p)
        self._write_empty_at(path)
        return path

    def _write_empty_at(self, path: str) -> None:
        with self._writer(path) as w:
            if self._fs is not None:
                w.write(empty_frame(self._fs), 0)

    # -- files and storage accounting --

    def _temp_path(self, name: str) -> str:
        return os.path.join(self._dir, f"{name}.frames")

    def _output_path(self, p: int) -> str:
        return os.path.join(self.output_dir, f"{self.output_prefix}-{p}.frames")

    @contextlib.contextmanager
    def _writer(self, path: str) -> Iterator[FrameFileWriter]:
        self._files[path] = 0
        w = FrameFileWriter(path, before_write=lambda n, p=path: self._account(p, n))
        try:
            yield w
            w.close()
        except BaseException:
            w.abort()
            self._forget(path)
            raise

    def _account(self, path: str, nbytes: int) -> None:
        if self.max_temp_bytes is not None and self._temp_bytes + nbytes > self.max_temp_bytes:
            raise self._storage_fault()
        self._files[path] = self._files.get(path, 0) + nbytes
        self._temp_bytes += nbytes

    def _forget(self, path: str) -> None:
        self._temp_bytes -= self._files.pop(path, 0)

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._forget(path)

    def _storage_fault(self) -> NotEnoughTemporaryStorageFault:
        need = 2 * (self._run_bytes + self._buf_bytes)
        suggested = max(need, self._temp_bytes + 1)
        if self.max_temp_bytes is not None:
            configured = int(self.max_temp_bytes)
        else:
            try:
                configured = shutil.disk_usage(self._dir).total
            except OSError:
                configured = 0
        return NotEnoughTemporaryStorageFault(suggestedMinimumStorage=int(suggested),
                                              configuredTemporaryStorage=int(configured))

    @contextlib.contextmanager
    def _storage_guard(self) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._storage_fault() from e
            raise

    def _notify(self) -> None:
        if self.progress_callback is not None:
            self.progress_callback(self.progress())


# --- key statistics ---------------------------------------------------------------------------


class _Bucket:
    """Rows seen under one bucket prefix and a uniform sample of their keys (weight 2**level)."""

    __slots__ = ("count", "level", "keys", "nbytes")

    def __init__(self) -> None:
        self.count = 0
        self.level = 0
        self.keys: list[bytes] = []
        self.nbytes = 0

    def __getstate__(self):
        return (self.count, self.level, self.keys, self.nbytes)

    def __setstate__(self, state) -> None:
        self.count, self.level, self.keys, self.nbytes = state


class KeyStatistics:
    """A bounded sample of encoded sort keys per bucket, for range-partition boundaries.

    A bucket is the first ``bucket_by_count`` key columns (the time chunk, ``__bucket``);
    partitions never span buckets. Each bucket keeps its exact row count and a uniform
    random sample of at most ``max_keys_per_bucket`` keys (Bernoulli sampling whose rate
    halves whenever the sample fills up), and all buckets together keep at most about
    ``max_retained_bytes`` of keys (the least dense buckets are downsampled first, as in
    Druid). With ``target_rows`` (the partition size the boundaries will aim at), a bucket
    keeps at least 8 keys per partition it needs, so even a bucket of thousands of
    partitions gets boundaries near its quantiles. Instances are picklable and ``merge``
    combines the statistics of several workers. More than ``max_buckets`` buckets raises
    ``TooManyBuckets``.
    """

    def __init__(self, schema: pa.Schema | FrameSchema, key: KeySpec, bucket_by_count: int = 0, *,
                 max_keys_per_bucket: int = 4096, max_retained_bytes: int = 32 << 20,
                 max_buckets: int = MAX_BUCKETS, seed: int | None = None, target_rows: int | None = None):
        fs = schema if isinstance(schema, FrameSchema) else FrameSchema.for_schema(schema, key)
        if isinstance(schema, FrameSchema) and fs.key_spec != [(c, bool(d)) for c, d in key]:
            raise ValueError("the key differs from the frame schema's key")
        if not fs.key:
            raise ValueError("key statistics need at least one key column")
        if not 0 <= bucket_by_count <= len(fs.key):
            raise ValueError(f"bucket_by_count must be within [0, {len(fs.key)}]")
        if max_keys_per_bucket < 2:
            raise ValueError("max_keys_per_bucket must be at least 2")
        self.key = fs.key_spec
        self.bucket_by_count = int(bucket_by_count)
        self.max_keys_per_bucket = int(max_keys_per_bucket)
        self.target_rows = None if target_rows is None else max(1, int(target_rows))
        self.max_retained_bytes = int(max_retained_bytes)
        self.max_buckets = int(max_buckets)
        self._schema = fs
        self._types = np.array([int(fs.types[i]) for i, _ in fs.key[:bucket_by_count]], dtype=np.int32)
        self._desc = np.array([1 if d else 0 for _, d in fs.key[:bucket_by_count]], dtype=np.uint8)
        self._buckets: dict[bytes, _Bucket] = {}
        self._rng = np.random.default_rng(seed)
        self.row_count = 0
        self._retained_bytes = 0

    # -- collecting --

    def add(self, table: pa.RecordBatch | pa.Table) -> None:
        """Encode the key of every row of ``table`` and add it."""
        offsets, data = encode_keys(table, self.key)
        self.add_keys(offsets, data)

    def add_keys(self, offsets: np.ndarray, data: np.ndarray) -> None:
        """Add already-encoded keys (``encode_keys`` output)."""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        data = np.ascontiguousarray(data, dtype=np.uint8)
        n = len(offsets) - 1
        if n <= 0:
            return
        if self.bucket_by_count:
            lengths = _kf.key_prefix_lengths(offsets, data, self._types, self._desc)
            found = _kf.bucket_ids(offsets, data, lengths, self.max_buckets)
            if found is None:
                raise TooManyBuckets(maxBuckets=self.max_buckets)
            ids, first = found
            prefixes = [data[offsets[r]:offsets[r] + lengths[r]].tobytes() for r in first.tolist()]
            counts = np.bincount(ids, minlength=len(first))
        else:
            ids = None
            prefixes = [b""]
            counts = np.array([n])
        rates = np.empty(len(prefixes))
        buckets = []
        for j, prefix in enumerate(prefixes):
            b = self._bucket(prefix)
            c = int(counts[j])
            while len(b.keys) + c / (1 << b.level) > self._cap(b.count + c):
                self._downsample(b)
            b.count += c
            rates[j] = 1.0 / (1 << b.level)
            buckets.append(b)
        self.row_count += n
        if rates.min() >= 1.0:
            chosen = np.arange(n)
        else:
            r = rates[ids] if ids is not None else rates[0]
            chosen = np.flatnonzero(self._rng.random(n) < r)
        if len(chosen):
            raw = data.tobytes() if len(chosen) > 256 else None   # slicing bytes beats numpy per key
            cuts = [0, len(chosen)]
            if len(buckets) > 1:  # the chosen rows bucket by bucket, each in row order
                which = ids[chosen]
                by_bucket = np.argsort(which, kind="stable")
                chosen = chosen[by_bucket]
                cuts = np.searchsorted(which[by_bucket], np.arange(len(buckets) + 1))
            starts, ends = offsets[chosen], offsets[chosen + 1]
            for j, b in enumerate(buckets):
                lo, hi = int(cuts[j]), int(cuts[j + 1])
                if lo == hi:
                    continue
                s, e = starts[lo:hi].tolist(), ends[lo:hi].tolist()
                b.keys += [raw[a:z] for a, z in zip(s, e)] if raw is not None else \
                    [data[a:z].tobytes() for a, z in zip(s, e)]
                added = int(ends[lo:hi].sum() - starts[lo:hi].sum())
                b.nbytes += added
                self._retained_bytes += added
        for b in buckets:
            while len(b.keys) > self._cap(b.count):
                self._downsample(b)
        self._enforce_budget()

    def merge(self, other: KeyStatistics) -> KeyStatistics:
        """Add ``other``'s statistics (same key and bucketing) to these; returns self."""
        if other.key != self.key or other.bucket_by_count != self.bucket_by_count:
            raise ValueError("cannot merge key statistics of different keys")
        for prefix, ob in other._buckets.items():
            b = self._bucket(prefix)
            level = max(b.level, ob.level)
            mine = self._thin(b.keys, level - b.level)
            theirs = self._thin(ob.keys, level - ob.level)
            self._retained_bytes -= b.nbytes
            b.keys = mine + theirs
            b.nbytes = sum(map(len, b.keys))
            self._retained_bytes += b.nbytes
            b.level = level
            b.count += ob.count
            while len(b.keys) > self._cap(b.count):
                self._downsample(b)
        self.row_count += other.row_count
        self._enforce_budget()
        return self

    def _cap(self, rows: int) -> int:
        """Keys a bucket of ``rows`` rows may keep."""
        if self.target_rows is None:
            return self.max_keys_per_bucket
        return max(self.max_keys_per_bucket, _KEYS_PER_PARTITION * -(-rows // self.target_rows))

    def _bucket(self, prefix: bytes) -> _Bucket:
        b = self._buckets.get(prefix)
        if b is None:
            if len(self._buckets) >= self.max_buckets:
                raise TooManyBuckets(maxBuckets=self.max_buckets)
            b = self._buckets[prefix] = _Bucket()
        return b

    def _thin(self, keys: list[bytes], levels: int) -> list[bytes]:
        if levels <= 0 or not keys:
            return list(keys)
        keep = self._rng.random(len(keys)) < 1.0 / (1 << levels)
        return [k for k, m in zip(keys, keep.tolist()) if m]

    def _downsample(self, b: _Bucket) -> None:
        b.keys = self._thin(b.keys, 1)
        self._retained_bytes -= b.nbytes
        b.nbytes = sum(map(len, b.keys))
        self._retained_bytes += b.nbytes
        b.level += 1

    def _enforce_budget(self) -> None:
        if self._retained_bytes <= self.max_retained_bytes:
            return
        target = self.max_retained_bytes // 2
        # least dense first: fewest rows per retained key (they need the least resolution)
        order = sorted((b for b in self._buckets.values() if len(b.keys) > 1),
                       key=lambda b: b.count / len(b.keys))
        while self._retained_bytes > target and order:
            for b in order:
                self._downsample(b)
                if self._retained_bytes <= target:
                    break
            order = [b for b in order if len(b.keys) > 1]

    # -- reading --

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    @property
    def retained_keys(self) -> int:
        return sum(len(b.keys) for b in self._buckets.values())

    @property
    def retained_bytes(self) -> int:
        return self._retained_bytes

    def buckets(self) -> list[tuple[bytes, int]]:
        """``(bucket prefix, exact row count)`` in key order."""
        return [(p, self._buckets[p].count) for p in sorted(self._buckets)]

    def _partition(self, target: int) -> list[bytes]:
        bounds: list[bytes] = []
        for i, prefix in enumerate(sorted(self._buckets)):
            b = self._buckets[prefix]
            if i > 0:
                bounds.append(prefix)
            parts = -(-b.count // target)
            if parts <= 1 or not b.keys:
                continue
            keys = sorted(b.keys)
            for j in range(1, parts):
                k = keys[min(len(keys) - 1, j * len(keys) // parts)]
                if k > prefix and (not bounds or k > bounds[-1]):
                    bounds.append(k)
        return bounds

    def boundaries_target_size(self, target_rows: int) -> list[bytes]:
        """Boundaries cutting each bucket into partitions of about ``target_rows`` rows.

        Partition ``p`` is ``[bounds[p - 1], bounds[p])``; a bucket with n rows gets
        ``ceil(n / target_rows)`` partitions (fewer if its keys repeat). No rows: ``[]``.
        Raises ``TooManyPartitions`` beyond 25,000 partitions.
        """
        if target_rows < 1:
            raise ValueError("target_rows must be positive")
        bounds = self._partition(int(target_rows))
        if len(bounds) + 1 > MAX_PARTITIONS:
            raise TooManyPartitions(maxPartitions=MAX_PARTITIONS)
        return bounds

    def boundaries_max_count(self, max_partitions: int) -> list[bytes]:
        """Boundaries for at most ``max_partitions`` partitions of about equal size.

        As Druid: the target size starts at ``rows / max_partitions`` and grows by 5 % until
        the partitions fit. Raises ``TooManyPartitions`` when even one partition per bucket
        is too many.
        """
        if max_partitions < 1:
            raise ValueError("max_partitions must be positive")
        if not self._buckets:
            return []
        if max_partitions == 1 and self.bucket_by_count == 0:
            return []
        limit = min(int(max_partitions), MAX_PARTITIONS)
        if len(self._buckets) > limit:
            raise TooManyPartitions(maxPartitions=limit)
        target = max(1, -(-self.row_count // limit))
        while True:
            bounds = self._partition(target)
            if len(bounds) + 1 <= limit:
                return bounds
            target = max(target + 1, math.ceil(target * 1.05))


def partition_of(key: bytes, boundaries: Sequence[bytes]) -> int:
    """The partition a key falls in (``bisect_right`` over the boundaries)."""
    return bisect.bisect_right(boundaries, key)


def decode_long_prefix(prefix: bytes, descending: bool = False) -> int | None:
    """The LONG value of a key prefix made of one LONG column (e.g. a ``__bucket`` bucket)."""
    raw = bytes(b ^ 0xFF for b in prefix) if descending else bytes(prefix)
    if raw == b"\x00":
        return None
    if len(raw) != 9 or raw[0] != 1:
        raise ValueError("not a LONG key prefix")
    return int.from_bytes(raw[1:], "big") - (1 << 63)



def decode_string_columns(key: bytes, skip: int, count: int) -> list[str | None]:
    """The values of ``count`` ascending STRING key columns that follow ``skip`` ascending
    LONG columns in an encoded key: the CLUSTERED BY prefix of a partition boundary, for
    range shard specs. Reads one key, not rows."""
    pos = 0
    for _ in range(skip):
        pos += 1 if key[pos] == 0 else 9
    out: list[str | None] = []
    for _ in range(count):
        if key[pos] == 0:
            out.append(None)
            pos += 1
            continue
        if key[pos] != 1:
            raise ValueError("not a STRING key column")
        pos += 1
        parts = []
        while True:
            zero = key.index(0, pos)          # a 00 is either the terminator 00 00 or an escaped 00 FF
            parts.append(key[pos:zero])
            pos = zero + 2
            if key[zero + 1] == 0:
                break
            parts.append(b"\x00")
        out.append(b"".join(parts).decode("utf-8"))
    return out
