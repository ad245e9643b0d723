"""The segmentGenerator stage: one segment per partition of the final shuffle (spec §8).

A partition's rows come from every worker's shuffle file, each sorted by the shuffle key
([__bucket, CLUSTERED BY..., __boost]), not by the segment's sort order (``__time`` first
unless ``forceSegmentSortByTime`` is false, then the dimensions). Usually (``__time`` first,
then single-value strings and numbers) they stream into a ``SegmentWriter`` as they arrive,
and the writer puts them in order when it finishes, by rank: ``__time`` and the dimensions'
sorted dictionary ids (``SegmentWriter(sort_order=...)``). Otherwise they are re-sorted
under the ``rowsInMemory`` budget (Druid's maxRowsInMemory: runs are persisted every
``rowsInMemory`` rows, then merged) and stream sorted into the writer: by
``time_sort.TimeOrderedSort`` when the order starts with ``__time``, else by the external
sorter. Memory is bounded by a chunk of rows, the string columns' distinct values, one
column, and per row of the partition 8 bytes of ``__time`` and an int64 of order (plus 1 to 4
bytes of ids per dimension while the writer ranks), not by the partition's size (a
partition holds up to ``rowsPerSegment`` rows, 3,000,000 by default); a partition of at most
``SPOOL_IN_MEMORY_BYTES`` of frames keeps the writer's spools in memory instead.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from msqcore.engine import operators as ops
from msqcore.engine.counters import segment_progress
from msqcore.engine.frames import read_frames_file
from msqcore.engine.shuffle import MAX_FAN_IN, SORT_BYTES_IN_MEMORY, max_frame_size
from msqcore.engine.sorter import ExternalSorter
from msqcore.engine.time_sort import TimeOrderedSort
from msqcore.errors import UnknownError
from msqcore.planner import arrays
from msqcore.storage.deep import deep_storage_from_spec
from msqcore.storage.segment import ROWS_PER_BLOCK, SegmentWriter, can_sort_rows
from msqcore.timeutil import interval_text

DEFAULT_ROWS_IN_MEMORY = 100_000
# Columns a segment writer hashes and encodes at once (its kernels and zstd release the GIL):
# when the other workers are done, the last segment generator gets the idle cores.
WRITER_THREADS = 2
# A partition of at most this many times ``rowsInMemory`` rows finishes while the next one is
# read. A writer holds its string dictionaries until it is done (about 0.4 KiB a row on the
# benchmark's columns), so two big partitions at once would double the stage's memory:
# 930k-row partitions took a worker from 833 to 916 MiB (bench/test_big_input.py). Tied to
# rowsInMemory, the user's memory knob for this stage: 300k rows by default.
PIPELINE_ROWS_IN_MEMORY = 3
# Consecutive frames (under Druid's 1 MB maxFrameSize, about 3,000 rows of the benchmark's
# rows each) are joined into tables of at least this many rows (the writer's chunk) before
# the per-table work (column selection, ``stored_columns``, the writer's ``append``), which
# costs about the same for a frame as for a chunk.
JOIN_ROWS = ROWS_PER_BLOCK
# A partition whose frame files hold at most this many bytes (a 190k-row day of the benchmark's
# rows) is written with the writer's spools in memory, not in temporary files: each column is
# then not written to a file and read back. The writer holds less than the frames (ids for
# most strings), and two such partitions at most are in memory at once (the pipeline).
SPOOL_IN_MEMORY_BYTES = 64 << 20


def generate_segments(order, reporter) -> dict:
    """Write, push and describe one segment per partition of ``order`` (a WorkOrder).

    Partitions of at most ``PIPELINE_ROWS_IN_MEMORY * rowsInMemory`` rows are pipelined two
    deep: while one partition's writer encodes its columns and the segment is pushed (in a
    background thread: the kernels, zstd and file copies release the GIL), the next
    partition is read and sorted. A lone worker thus uses a second core, and a worker with
    more partitions than the others (7 day partitions split 4 to 3) takes the core they leave idle."""
    deep = deep_storage_from_spec(order.deep_storage)
    spec = order.ingest
    rows_in_memory = int(order.context.get("rowsInMemory", DEFAULT_ROWS_IN_MEMORY))
    frame_size = max_frame_size(order.context)
    stored = ["__time"] + spec.dimensions + spec.metrics
    progress = {"processed": 0, "persisted": 0, "merged": 0, "pushed": 0}

    def report() -> None:
        reporter.counters["segmentGenerationProgress"] = segment_progress(
            progress["processed"], progress["persisted"], progress["merged"], progress["pushed"])
        reporter.flush()

    def finish_and_push(part, writer, local: str) -> dict:
        try:
            writer.finish()
        finally:
            writer.close()
        size = os.path.getsize(local)
        interval = interval_text(*part.interval)
        load_spec = deep.push(local, part.datasource, interval, part.version, part.partition_num)
        os.remove(local)
        identifier = f"{part.datasource}_{interval.replace('/', '_')}_{part.version}" + \
            (f"_{part.partition_num}" if part.partition_num else "")
        return {"dataSource": part.datasource, "interval": interval, "version": part.version,
                "loadSpec": load_spec, "dimensions": ",".join(spec.dimensions),
                "metrics": ",".join(spec.metrics),
                "shardSpec": part.shard_spec, "binaryVersion": 9, "size": size, "identifier": identifier,
                "_partition": part.number}

    segments = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment-finish") as pool:
        pending = None  # (future, rows) of the partition being finished

        def collect() -> None:
            future, rows = pending
            segments.append(future.result())
            progress["merged"] += rows
            progress["pushed"] += rows
            report()

        try:
            for part in order.partitions:
                local = os.path.join(order.out_dir, f"segment_{part.number}.seg")
                writer, rows = _sort_partition(part, local, order, spec, stored, rows_in_memory, frame_size,
                                               reporter, progress, report)
                if pending is not None:
                    collect()
                pending = pool.submit(finish_and_push, part, writer, local), rows
                if rows > PIPELINE_ROWS_IN_MEMORY * rows_in_memory:  # big dictionaries: nothing beside them
                    collect()
                    pending = None
            if pending is not None:
                collect()
        finally:
            if pending is not None:
                pending[0].cancel()  # on an error, no new work; a running finish ends with the pool
    return {"segments": segments}


def _sort_partition(part, local: str, order, spec, stored: list[str], rows_in_memory: int, frame_size: int,
                    reporter, progress: dict, report) -> tuple[SegmentWriter, int]:
    """Stream one partition's rows into a ``SegmentWriter`` on ``local``, in segment order;
    returns the writer (not finished yet) and the rows read.

    When the order starts with ``__time`` and names only single-value strings and numbers
    (``can_sort_rows``, the usual case), the rows go to the writer as they arrive and its
    ``finish`` puts them in order by rank (``SegmentWriter(sort_order=...)``): no string is
    copied to sort them. Otherwise (``forceSegmentSortByTime: false``; multi-value strings or
    arrays in the order, which Druid orders by their frame key bytes) they are sorted first
    (``_segment_sorter``). A string column that turns out to be multi-value in a later frame
    (a ``listDelimiter`` value in another worker's rows) sends the partition down that path,
    read again from its first frame."""
    counter = reporter.channel("input0")
    mvd = arrays.mvd_columns(order.query.output, order.context)  # string arrays stored as multi-value strings
    keep = list(dict.fromkeys(stored + spec.sort_order))
    file_rows: list[int] = []  # rows of each file read to its end (each counted once)

    def joined(batches: list[pa.RecordBatch]) -> pa.Table:
        names = set(batches[0].schema.names)
        return pa.Table.from_batches(batches).select([c for c in keep if c in names])

    def tables() -> Iterator[pa.Table]:
        for i, path in enumerate(part.files):
            rows = frames = 0
            group: list[pa.RecordBatch] = []  # consecutive frames of one schema
            group_rows = 0
            for batch in read_frames_file(path):
                frames += 1
                if not batch.num_rows:
                    continue
                if group and not batch.schema.equals(group[0].schema):
                    yield joined(group)
                    group, group_rows = [], 0
                group.append(batch)
                group_rows += batch.num_rows
                rows += batch.num_rows
                if group_rows >= JOIN_ROWS:
                    yield joined(group)
                    group, group_rows = [], 0
            if group:
                yield joined(group)
            if i == len(file_rows):
                file_rows.append(rows)
                counter.add(part.number, rows, os.path.getsize(path), frames)
                progress["processed"] += rows
                report()

    def as_stored(table: pa.Table) -> pa.Table:
        return arrays.as_multi_value(ops.stored_columns(table.select(stored), order.query), mvd)

    def threads() -> int:  # a big partition's columns one at a time: two at once held two sets of strings
        return WRITER_THREADS if sum(file_rows) <= PIPELINE_ROWS_IN_MEMORY * rows_in_memory else 1

    writer = None
    try:
        if spec.sort_order[0] == "__time":
            small = sum(os.path.getsize(path) for path in part.files) <= SPOOL_IN_MEMORY_BYTES
            writer = _rank_ordered(tables(), as_stored, local, None if small else order.out_dir, spec)
        if writer is not None:
            writer.threads = threads()
            progress["persisted"] += sum(file_rows)  # all in the writer's spools
            report()
            return writer, sum(file_rows)
        sorter = _segment_sorter(spec.sort_order, os.path.join(order.out_dir, "segment-sort"), rows_in_memory,
                                 frame_size)
        try:
            for table in tables():
                sorter.add(table)
                del table  # not held while the next chunk of frames is read
            if not sum(file_rows):
                raise UnknownError(f"Partition [{part.number}] has no rows")
            for table in _sorted_tables(sorter):
                if not table.num_rows:
                    continue
                table = as_stored(table)
                if writer is None:
                    writer = SegmentWriter(local, table.schema, dimensions=spec.dimensions, metrics=spec.metrics,
                                           temp_dir=order.out_dir, threads=threads())
                writer.append(table)
                progress["persisted"] += table.num_rows
                report()
        finally:
            sorter.close()
        return writer, sum(file_rows)
    except BaseException:
        if writer is not None:
            writer.close()
        raise


def _rank_ordered(tables: Iterator[pa.Table], as_stored, local: str, temp_dir: str | None,
                  spec) -> SegmentWriter | None:
    """A writer that orders the rows itself, given every row of ``tables``, spooling to
    ``temp_dir`` (None: in memory); None if a frame's columns cannot be ranked or differ from
    the first frame's (a multi-value string), or if there are no rows."""
    writer = None
    schema = None
    try:
        for table in tables:
            table = as_stored(table)
            if writer is None:
                if not can_sort_rows(table.schema, spec.sort_order):
                    return None
                schema = table.schema
                writer = SegmentWriter(local, schema, dimensions=spec.dimensions, metrics=spec.metrics,
                                       temp_dir=temp_dir, threads=WRITER_THREADS, sort_order=spec.sort_order)
            elif not table.schema.equals(schema):
                writer.close()
                return None
            writer.append(table)
            del table  # a chunk of frames: not held while the next one is read
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    finally:
        tables.close()
    return writer  # None: no rows (the other path says so)


def _segment_sorter(sort_order: list[str], temp_dir: str, rows_in_memory: int, frame_size: int):
    """Segments sorted by ``__time`` first (the default) take the persist-and-merge sort of
    ``time_sort``; others (``forceSegmentSortByTime: false``) the external sorter's byte keys."""
    if sort_order[0] == "__time":
        return TimeOrderedSort(sort_order, temp_dir, rows_in_memory, SORT_BYTES_IN_MEMORY)
    return ExternalSorter([(c, False) for c in sort_order], temp_dir, rows_in_memory=rows_in_memory,
                          bytes_in_memory=SORT_BYTES_IN_MEMORY, max_fan_in=MAX_FAN_IN, max_frame_size=frame_size)


def _sorted_tables(sorter) -> Iterator[pa.Table]:
    if isinstance(sorter, TimeOrderedSort):
        yield from sorter.sorted_tables()
        return
    (path,) = sorter.finish()
    for batch in read_frames_file(path):
        yield pa.Table.from_batches([batch])
