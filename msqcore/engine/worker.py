"""A worker: runs work orders for the stages of one query, in its own process.

The controller sends one work order per stage (``WorkOrder``) over a pipe; the worker
answers with live counter snapshots, then ``done`` with the stage result or ``fault``.
Stage outputs are frame files in the task's temp dir, one per output partition, read by
the next stage's workers (``engine/shuffle.py``). A SELECT stage whose rows are ordered
(ORDER BY, to the controller or a limit stage) writes them through the external sorter.
The final shuffle of an ingestion sorts by key range: the worker sends its key statistics
(``keyStatistics``) once its input is read, and the controller answers with the partition
boundaries (``boundaries``) merged from every worker's statistics.
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.ma  # noqa: F401 - pa.array(ndarray) imports it on first use: once in the forkserver, not per worker
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.engine import join
from msqcore.engine import operators as ops
from msqcore.engine.counters import ChannelCounter, sort_progress
from msqcore.engine.frames import FrameFileReader, decode_frame
from msqcore.engine.memory import give_back_free_memory
from msqcore.engine.shuffle import (MAX_FAN_IN, SORT_BYTES_IN_MEMORY, IngestShuffle, frame_file_stats, in_transit,
                                    max_frame_size, read_stage_file, restore_binary, rows_in_memory,
                                    write_hash_partitions, write_stage_file)
from msqcore.engine.sorter import ExternalSorter
from msqcore.errors import Fault, InsertTimeNull, InvalidNullByte, UnknownError
from msqcore.inputs import formats
from msqcore.inputs.reader import ParseWarnings, max_parse_exceptions, read_signature, read_split
from msqcore.inputs.sources import InputFile
from msqcore.kernels import _frame as _kf
from msqcore.planner import arrays
from msqcore.planner.query import LogicalQuery
from msqcore.timeutil import Granularity

MAX_VERBOSE_WARNINGS = 10
_COUNTER_INTERVAL = 0.2


@dataclass
class IngestSpec:
    """What an ingestion stage needs to shape its output for segments."""

    granularity: Granularity
    cluster_by: list[str]
    dimensions: list[str]
    sort_order: list[str]  # in-segment row order
    metrics: list[str] = field(default_factory=list)  # rollup metric columns
    rows_per_segment: int = 3_000_000  # the final shuffle's targetSize


@dataclass
class WorkOrder:
    stage: int
    kind: str  # scan | groupByPreShuffle | groupByPostShuffle | limit | window | sortMergeJoin | segmentGenerator
    query: LogicalQuery
    out_dir: str
    worker_id: str
    inputs: list = field(default_factory=list)  # InputFile | segment path | stage output file
    total_inputs: int = 0
    ingest: IngestSpec | None = None
    partitions: list = field(default_factory=list)  # segmentGenerator: SegmentPartition
    hash_columns: list[str] = field(default_factory=list)  # ``hash`` shuffle: its key columns
    hash_partitions: int = 0  # ``hash`` shuffle: how many partitions (0: no hash shuffle)
    deep_storage: dict | None = None
    context: dict = field(default_factory=dict)  # the query context (maxParseExceptions, removeNullBytes ...)
    # a broadcast join's leaf stage: per right input, its stage's files or its rows (lookup, VALUES)
    broadcast: list = field(default_factory=list)
    join_index: int | None = None  # sortMergeJoin: the JoinClause it runs
    # a join input's hash shuffle whose keys are expressions: (column prefix, key expressions over
    # the output renamed with the prefix); the keys are then those expressions, not ``hash_columns``
    hash_keys: tuple[str, list] | None = None


@dataclass
class StageFile:
    """An earlier stage's output file read as the source rows of a leaf stage (the rows of a
    sortMergeJoin stage)."""

    path: str


@dataclass
class SegmentPartition:
    number: int  # output partition of the previous stage
    files: list[str]  # every worker's shuffle file for this partition
    datasource: str
    interval: tuple[int, int]
    version: str
    partition_num: int
    shard_spec: dict


class Reporter:
    """Accumulates this worker's counters for one stage and sends throttled snapshots."""

    def __init__(self, conn, stage: int):
        self.conn = conn
        self.stage = stage
        self.counters: dict[str, Any] = {}
        self.warnings: list[dict] = []  # fault JSONs of warnings (CannotParseExternalData ...)
        self._sent_warnings = 0
        self._last = 0.0

    def channel(self, name: str) -> ChannelCounter:
        return self.counters.setdefault(name, ChannelCounter())

    def snapshot(self) -> dict:
        return {k: (v.to_json() if isinstance(v, ChannelCounter) else v) for k, v in self.counters.items()}

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= _COUNTER_INTERVAL:
            self._last = now
            # Druid sends at most 10 verbose warnings per worker; the counter keeps counting.
            new = self.warnings[self._sent_warnings:MAX_VERBOSE_WARNINGS]
            self._sent_warnings += len(new)
            self.conn.send(("counters", self.stage, self.snapshot(), new))


# --- process entry point ------------------------------------------------------------------


def worker_main(conn) -> None:
    """Loop: receive a WorkOrder, run it, answer. ``None`` ends the worker."""
    while True:
        try:
            order = conn.recv()
        except (EOFError, OSError):
            return
        if order is None:
            return
        reporter = Reporter(conn, order.stage)
        try:
            result = run_order(order, reporter)
            reporter.flush(force=True)
            conn.send(("done", order.stage, result))
        except Fault as fault:
            reporter.flush(force=True)
            conn.send(("fault", order.stage, fault.to_json(), None))
        except Exception as e:  # noqa: BLE001 - every failure must reach the controller
            # Druid's UnknownFault.forException: the exception's class and message
            name = getattr(e, "error_class", "") or type(e).__name__
            conn.send(("fault", order.stage, UnknownError(f"{name}: {e}").to_json(),
                       traceback.format_exc()))
        finally:
            give_back_free_memory()


def run_order(order: WorkOrder, reporter: Reporter) -> dict:
    os.makedirs(order.out_dir, exist_ok=True)
    if order.ingest is not None and (order.kind == "window" or order.kind in ("scan", "groupByPostShuffle")
                                     and order.query.window is None):
        return _run_ingest_shuffle(order, reporter)
    key = sort_key(order.query)
    if key and order.kind in ("scan", "groupByPostShuffle") and not order.hash_partitions:
        return _run_sorted(order, reporter, key)
    if order.kind in ("scan", "groupByPreShuffle"):
        output = _read_leaf(order, reporter)
    elif order.kind == "groupByPostShuffle":
        # This worker's hash partitions hold whole groups; the controller (or the window
        # stage) orders and limits the union of every worker's rows.
        output = ops.local_limit(ops.final_aggregate(_read_partials(order, reporter), order.query), order.query)
    elif order.kind in ("limit", "window"):
        output = ops.order_limit(_read_stage_files(order.inputs, reporter), order.query)
    elif order.kind == "segmentGenerator":
        return _generate_segments(order, reporter)
    elif order.kind == "sortMergeJoin":
        output = _sort_merge_join(order, reporter)
    else:
        raise UnknownError(f"Unknown stage processor [{order.kind}]")
    output = check_null_bytes(output, _flag(order.context, "removeNullBytes"))
    reporter.channel("output").add(0, output.num_rows, output.nbytes, max(1, len(output.to_batches())))
    if order.kind == "scan":
        output = ops.local_limit(output, order.query)
    if order.hash_partitions:
        return _write_hashed(output, order, reporter)
    return _write_single(output, order, reporter)


# --- leaf stages ---------------------------------------------------------------------------


def _read_leaf(order: WorkOrder, reporter: Reporter, sink=None) -> pa.Table | None:
    """Read the stage's input splits and run its processor on them. The processed batches
    go to ``sink`` when given (an ingestion shuffle), else they are returned as one table."""
    query = order.query
    process = ops.partial_aggregate if order.kind == "groupByPreShuffle" else ops.scan
    reader = query  # whose source the input splits are
    if order.broadcast:  # a broadcast join: base rows, joined with every right input, then the stage's work
        joined = query.source
        reader = joined.base
        rights = _broadcast_tables(order, reporter)
        stage_process = process

        base_is_stage = bool(order.inputs) and isinstance(order.inputs[0], StageFile)  # rows of the base's stages

        def process(table, q):
            base = table if base_is_stage else ops.scan(table, reader)
            return stage_process(join.join_all(base, rights, joined), q)
    counter = reporter.channel("input0")
    samples = reporter.__dict__.setdefault("warnings", [])
    batch_rows = 262144  # source rows handed to the stage processor at a time
    outputs: list[pa.Table] = []
    emit = sink or outputs.append
    pending: list[pa.Table] = []
    pending_rows = 0
    parse_warnings = None
    reported = 0  # parse warning samples already in reporter.warnings

    def drain() -> None:
        nonlocal pending, pending_rows
        if pending:
            table = arrays.concat_tables(pending)
            emit(process(table, query))
            pending, pending_rows = [], 0

    for item in order.inputs:
        if isinstance(item, InputFile):
            if parse_warnings is None:
                parse_warnings = ParseWarnings(max_parse_exceptions(getattr(order, "context", None)))
            source = reader.source
            try:
                for table, raw_bytes in read_split(item, source.input_format, read_signature(reader), parse_warnings,
                                                   order.out_dir):
                    rows = table.num_rows if table is not None else 0
                    counter.add(0, rows, raw_bytes, 0)
                    if rows:
                        pending.append(table)
                        pending_rows += rows
                        if pending_rows >= batch_rows:
                            drain()
                    if parse_warnings.count:
                        reporter.counters["warnings"] = {"type": "warnings",
                                                         "CannotParseExternalData": parse_warnings.count}
                        samples.extend(parse_warnings.samples[reported:])
                        reported = len(parse_warnings.samples)
                    reporter.flush()
            finally:
                if parse_warnings.count:
                    reporter.counters["warnings"] = {"type": "warnings", "CannotParseExternalData": parse_warnings.count}
                    samples.extend(parse_warnings.samples[reported:])
                    reported = len(parse_warnings.samples)
            counter.add_file(order.total_inputs)
        elif isinstance(item, StageFile):  # rows of an earlier stage (a join)
            table, nbytes, frames = read_stage_file(item.path)
            counter.add(0, table.num_rows, nbytes, frames)
            emit(process(table, query))
        elif isinstance(item, str):  # a segment file of a datasource
            table = read_datasource_segment(item, reader)
            counter.add(0, table.num_rows, os.path.getsize(item), 0)
            counter.add_file(order.total_inputs)
            emit(process(table, query))
        else:  # rows given in the query: VALUES, or the one row of a FROM-less SELECT
            table = item
            counter.add(0, table.num_rows, 0, 0)
            emit(process(table, query))
        reporter.flush()
    drain()
    if sink is not None:
        return None
    if not outputs:
        return ops.empty_partials(query) if order.kind == "groupByPreShuffle" else \
            ops.scan(ops.empty_source(query), query)
    return arrays.concat_tables(outputs)


def _broadcast_tables(order: WorkOrder, reporter: Reporter) -> list[pa.Table]:
    """Every right input of a broadcast join, read whole (spec §1.8), within Druid's bound."""
    source = order.query.source
    tables = []
    for i, (clause, item) in enumerate(zip(source.joins, order.broadcast), 1):
        if isinstance(item, pa.Table):  # a lookup or VALUES: the input's scan runs here
            table = ops.run_local(item, clause.right)
        else:
            # a stage's rows (a LIMIT was applied by the input's limit stage)
            table = _read_stage_files(item, reporter, f"input{i}") if item else \
                ops.scan(ops.empty_source(clause.right), clause.right)
        tables.append(table)
        join.check_broadcast(tables, order.context, source.configured or source.algorithm)
    return tables


def _sort_merge_join(order: WorkOrder, reporter: Reporter) -> pa.Table:
    """One join of a sortMerge plan over this worker's hash partitions of its two input stages."""
    source = order.query.source
    clause = source.joins[order.join_index]
    limit = join.same_key_limit(order.context)
    outputs = []
    for left_files, right_files in order.inputs:  # one pair per hash partition
        left = _read_stage_files(left_files, reporter, "input0") if left_files else \
            _empty_rows(_left_signature(source, order.join_index))
        right = _read_stage_files(right_files, reporter, "input1") if right_files else \
            _empty_rows(clause.right.output)
        outputs.append(join.join(left, right, clause, check_same_key=limit))
    if not outputs:
        return _empty_rows(_left_signature(source, order.join_index + 1))
    return arrays.concat_tables(outputs)


def _left_signature(source, index: int) -> list[tuple[str, str]]:
    sig = list(source.base.output)
    for clause in source.joins[:index]:
        sig += [(clause.prefix + n, t) for n, t in clause.right.output]
    return sig


def _empty_rows(signature: list[tuple[str, str]]) -> pa.Table:
    from msqcore.planner.expressions import arrow_type
    return pa.table([pa.array([], arrow_type(t)) for _, t in signature], names=[n for n, _ in signature])


def read_datasource_segment(path: str, query: LogicalQuery, rows=None, meta: dict | None = None) -> pa.Table:
    """The query's columns of one segment (only ``rows``, ascending, if given); columns this
    segment lacks read as null. ``meta``: the segment's ``read_segment_meta``, if the caller has it."""
    from msqcore.planner import json_functions
    from msqcore.storage import nested
    from msqcore.storage.segment import read_segment, read_segment_meta
    present = {c["name"] for c in (meta or read_segment_meta(path))["columns"]}
    # COUNT(*) reads no column, but a table without columns cannot carry a row count
    # through concatenation: keep __time.
    wanted = query.source_columns() or ["__time"]
    # nested columns read only through JSON_VALUE: their field columns instead of the raw JSON
    reads = json_functions.field_reads(query.source_exprs())
    fields = nested.read_fields(path, {c: set(paths) for c, paths in reads.items()}, rows)
    table = read_segment(path, [c for c in wanted if c in present and c not in fields] or ["__time"], rows=rows)
    out = formats.conform(table, [(n, t) for n, t in query.source.signature if n in wanted])
    for f in table.schema:  # multi-value strings stay lists (conform would write them as JSON text)
        if pa.types.is_list(f.type) and f.name in out.column_names and out.schema.field(f.name).type == pa.string():
            out = out.set_column(out.column_names.index(f.name), f.name, table.column(f.name))
    return json_functions.add_field_columns(out, reads, fields)


def _read_stage_files(files: list[str], reporter: Reporter, channel: str = "input0") -> pa.Table:
    """Frame files of an earlier stage as one table."""
    counter = reporter.channel(channel)
    tables = []
    for path in files:
        table, nbytes, frames = read_stage_file(path)
        counter.add(0, table.num_rows, nbytes, frames)
        tables.append(table)
        reporter.flush()
    return arrays.concat_tables(tables)


def _read_partials(order: WorkOrder, reporter: Reporter) -> pa.Table:
    """A groupByPostShuffle stage's input: the partial states of its hash partitions, binary
    states (HyperLogLog collectors) back from the base64 text they travel as."""
    return restore_binary(_read_stage_files(order.inputs, reporter), ops.empty_partials(order.query).schema)


# --- shuffle outputs -------------------------------------------------------------------------


def sort_key(query: LogicalQuery) -> list[tuple[str, bool]] | None:
    """The ORDER BY as a frame sort key (output columns, descending flags); None without one,
    before window functions (the window stage orders), or when a NULLS FIRST/LAST differs
    from the frame order (nulls first ascending, last descending): ``ops.order_limit`` then."""
    if not query.order_by or query.window is not None:
        return None
    if any(nulls_first != (not desc) for _, desc, nulls_first in query.order_by):
        return None
    return [(column, desc) for column, desc, _ in query.order_by]


def _write_single(output: pa.Table, order: WorkOrder, reporter: Reporter) -> dict:
    path = os.path.join(order.out_dir, "p0.frames")
    rows, nbytes, frames = write_stage_file(output, path, max_frame_size(order.context))
    reporter.channel("shuffle").add(0, rows, nbytes, frames)
    if order.query.order_by:  # ordered in memory (ops.order_limit): one level, one merger
        reporter.counters["sortProgress"] = sort_progress(1, [1], [1], 1)
    return {"files": {0: path}}


def _write_hashed(output: pa.Table, order: WorkOrder, reporter: Reporter) -> dict:
    if order.hash_keys is None:
        keys = output.select(order.hash_columns)
    else:
        prefix, exprs = order.hash_keys
        renamed = output.rename_columns([prefix + n for n in output.column_names]) if prefix else output
        keys = pa.table([join.key_array(e, renamed) for e in exprs], names=order.hash_columns)
    parts = write_hash_partitions(output, keys, order.hash_partitions, order.out_dir, max_frame_size(order.context))
    shuffle = reporter.channel("shuffle")
    for p, (_, rows, nbytes, frames) in enumerate(parts):
        shuffle.add(p, rows, nbytes, frames)
    return {"files": {p: path for p, (path, *_) in enumerate(parts)}}


def _run_sorted(order: WorkOrder, reporter: Reporter, key: list[tuple[str, bool]]) -> dict:
    """A scan or groupBy stage with ORDER BY whose rows go to the controller or a limit stage:
    its rows sorted by the ORDER BY through the external sorter under ``rowsInMemory``
    (spills and merge levels as in spec §5.8), cut to OFFSET + LIMIT, in one frame file."""
    query = order.query
    remove_nulls = _flag(order.context, "removeNullBytes")
    frame_size = max_frame_size(order.context)

    def on_progress(progress: dict) -> None:
        reporter.counters["sortProgress"] = progress
        reporter.flush()

    sorter = ExternalSorter(key, os.path.join(order.out_dir, "sort"), rows_in_memory=rows_in_memory(order.context),
                            bytes_in_memory=SORT_BYTES_IN_MEMORY, max_fan_in=MAX_FAN_IN, max_frame_size=frame_size,
                            output_dir=order.out_dir, output_prefix="p", progress_callback=on_progress)

    def add(output: pa.Table) -> None:
        output = check_null_bytes(output, remove_nulls)
        reporter.channel("output").add(0, output.num_rows, output.nbytes, 1 if output.num_rows else 0)
        sorter.add(in_transit(output))
        reporter.counters["sortProgress"] = sorter.progress()
        reporter.flush()

    try:
        if order.kind == "scan":
            _read_leaf(order, reporter, sink=add)
        else:
            add(ops.final_aggregate(_read_partials(order, reporter), query))
        if sorter.schema is None:  # no input at all: the file still carries the columns
            sorter.add(ops.scan(ops.empty_source(query), query))
        (path,) = sorter.finish()
        if query.limit is not None:
            _keep_first(path, query.offset + query.limit, frame_size)
        reporter.channel("shuffle").add(0, *frame_file_stats(path))
        reporter.counters["sortProgress"] = sorter.progress()
        return {"files": {0: path}}
    finally:
        sorter.close()


def _keep_first(path: str, keep: int, frame_size: int) -> None:
    """Cut a sorted output file to its first ``keep`` rows (this worker's OFFSET + LIMIT)."""
    batches = []
    with FrameFileReader(path) as reader:
        if reader.num_rows <= keep:
            return
        rows = 0
        for buf in reader.iter_frames():
            batch = decode_frame(buf)
            batches.append(batch.slice(0, keep - rows))
            rows += batches[-1].num_rows
            if rows >= keep:
                break
    write_stage_file(pa.Table.from_batches(batches), path, frame_size)


def _flag(context: dict, key: str) -> bool:
    value = context.get(key, False)
    return value is True or str(value).lower() == "true"


def check_null_bytes(table: pa.Table, remove: bool) -> pa.Table:
    """Druid refuses strings with NUL characters (InvalidNullByte) unless removeNullBytes."""
    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        column = table.column(i)
        if not _has_nul(column):
            continue
        found = pc.fill_null(pc.match_substring(column, "\x00"), False)
        if remove:
            table = table.set_column(i, f.name, pc.replace_substring(column, "\x00", ""))
            continue
        row = pc.index(found, True).as_py()
        value = column[row].as_py()
        raise InvalidNullByte(column=f.name, rowNumber=row + 1, value=value, position=value.index("\x00") + 1)
    return table


def _has_nul(column: pa.ChunkedArray) -> bool:
    """Whether a string column's bytes hold a 0x00: one ``memchr`` over each chunk's data
    (matching the substring row by row costs several times more)."""
    for chunk in column.chunks:
        offsets, data = chunk.buffers()[1:3]
        if data is None:
            continue
        width = np.dtype(np.int64 if pa.types.is_large_string(chunk.type) else np.int32)
        bounds = np.frombuffer(offsets, width, len(chunk) + 1, chunk.offset * width.itemsize)
        if _kf.find_byte(data, 0, int(bounds[0]), int(bounds[-1])) >= 0:
            return True
    return False


def prepare_ingest(table: pa.Table, spec: IngestSpec) -> tuple[pa.Table, np.ndarray]:
    """Check ``__time`` and compute each row's time chunk (``__bucket``)."""
    if "__time" not in table.column_names:
        # PARTITIONED BY ALL without a time column: every row gets 1970-01-01.
        table = table.append_column("__time", pa.array(np.zeros(table.num_rows, dtype=np.int64)))
    times = table.column("__time")
    if times.null_count:
        raise InsertTimeNull()
    millis = times.to_numpy() if table.num_rows else np.zeros(0, dtype=np.int64)
    return table, spec.granularity.floor(millis)


def _run_ingest_shuffle(order: WorkOrder, reporter: Reporter) -> dict:
    """An ingestion stage's output, sorted by [__bucket, CLUSTERED BY..., __boost] through
    the external sorter (spec §5.8) and cut at the boundaries the controller computes from
    every worker's key statistics (spec §5.5): one frame file per partition."""
    remove_nulls = _flag(order.context, "removeNullBytes")

    def on_progress(progress: dict) -> None:
        reporter.counters["sortProgress"] = progress
        reporter.flush()

    shuffle = IngestShuffle(order.out_dir, order.ingest.cluster_by, rows_in_memory(order.context),
                            order.ingest.rows_per_segment,
                            on_progress, frame_size=max_frame_size(order.context))

    multi_valued = False  # shuffleCheckHasMultipleValues: a CLUSTERED BY value had several values

    def add(output: pa.Table) -> None:
        nonlocal multi_valued
        output = check_null_bytes(output, remove_nulls)
        multi_valued = multi_valued or arrays.has_multiple_values(output, order.ingest.cluster_by, order.query)
        table, buckets = prepare_ingest(output, order.ingest)
        shuffle.add(table, buckets)
        reporter.channel("output").add(0, table.num_rows, table.nbytes, 1 if table.num_rows else 0)
        reporter.counters["sortProgress"] = shuffle.progress()
        reporter.flush()

    try:
        if order.kind == "scan":
            _read_leaf(order, reporter, sink=add)
        elif order.kind == "window":
            add(ops.windows(_read_stage_files(order.inputs, reporter), order.query))
        else:
            add(ops.final_aggregate(_read_partials(order, reporter), order.query))
        boundaries = _exchange_statistics(reporter, shuffle.statistics)
        paths = shuffle.finish(boundaries)
        counter = reporter.channel("shuffle")
        for p, path in enumerate(paths):
            counter.add(p, *frame_file_stats(path))
        reporter.counters["sortProgress"] = shuffle.progress()
        return {"files": dict(enumerate(paths)), "multiValuedClusterBy": multi_valued}
    finally:
        shuffle.close()


def _exchange_statistics(reporter: Reporter, statistics) -> list[bytes]:
    """Send this worker's key statistics (None: no rows) and wait for the boundaries."""
    reporter.flush(force=True)
    reporter.conn.send(("keyStatistics", reporter.stage, statistics))
    message = reporter.conn.recv()
    if not (isinstance(message, tuple) and message[0] == "boundaries" and message[1] == reporter.stage):
        raise UnknownError(f"Expected partition boundaries for stage [{reporter.stage}], got [{message!r:.100}]")
    return message[2]


# --- segment generation ----------------------------------------------------------------------


from msqcore.engine.segment_gen import generate_segments as _generate_segments  # noqa: E402
