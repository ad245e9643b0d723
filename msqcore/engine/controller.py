"""The controller of one MSQ task: launches workers, runs the stages in order, computes
partitions and segment ids, publishes, and keeps the live report (spec §5).

It runs in a thread of the server process; all heavy work happens in worker processes.
Publishing is one metadata transaction and happens only if the task was not canceled,
so a failed or canceled task never leaves a segment visible.
"""
from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait

import pyarrow as pa

from msqcore.engine import memory
from msqcore.engine import operators as ops
from msqcore.engine import publish
from msqcore.engine.launcher import WorkerHandle, WorkerLauncher
from msqcore.engine.locks import LockManager
from msqcore.engine.report import ReportState
from msqcore.engine.shuffle import max_frame_size, read_stage_file
from msqcore.engine.sorter import KeyStatistics, decode_long_prefix
from msqcore.engine.worker import IngestSpec, SegmentPartition, StageFile, WorkOrder
from msqcore.errors import (Canceled, Fault, InsertCannotAllocateSegment, InsertCannotBeEmpty, InsertTimeOutOfBounds,
                            NotEnoughMemory, TooManyInputFiles, TooManyPartitions, TooManySegmentsInTimeChunk,
                            TooManyWarnings, TooManyWorkers, UnknownError, WorkerFailed, WorkerRpcFailed)
from msqcore.inputs.sources import list_files
from msqcore.planner import arrays, json_functions
from msqcore.planner.expressions import native_type, sql_type_name
from msqcore.lookups import LookupStore
from msqcore.planner.query import ExternalSource, JoinSource, LookupSource, TableSource, UnionSource
from msqcore.planner.tasks import StagePlan, TaskPlan, bool_context
from msqcore.storage.deep import DeepStorage
from msqcore.storage.metadata import MetadataStore, SegmentRecord, TaskRecord
from msqcore.timeutil import interval_text, iso, now_millis

log = logging.getLogger("msqcore.engine")

# Druid's limits (spec §6.3)
MAX_PARTITIONS = 25_000
MAX_WORKERS = 1000
MAX_INPUT_FILES_PER_WORKER = 10_000


@dataclass
class Services:
    """What a controller needs from the process it runs in."""

    metadata: MetadataStore
    deep_storage: DeepStorage
    launcher: WorkerLauncher
    temp_root: str
    locks: LockManager = field(default_factory=LockManager)
    host: str = "localhost"
    port: int = 8888
    # called with (datasource, segments) once a task has published them (the server loads
    # them for its queries); its failure never fails the task
    on_publish: Callable[[str, list[SegmentRecord]], None] | None = None


def _weighted_size(split) -> int | None:
    """Bytes a split weighs for ``taskAssignment=auto`` (None when unknown, as for http)."""
    if isinstance(split, str):  # a segment file
        return os.path.getsize(split)
    size = getattr(split, "size", None)
    if size is not None and str(getattr(split, "uri", "")).endswith(".gz"):
        return size * 4  # Druid's COMPRESSED_TEXT_WEIGHT_FACTOR
    return size


class _StageFailed(Exception):
    def __init__(self, fault: Fault, worker_id: str, stage: int, trace: str | None):
        self.fault, self.worker_id, self.stage, self.trace = fault, worker_id, stage, trace


class Controller:
    def __init__(self, plan: TaskPlan, services: Services):
        self.plan = plan
        self.services = services
        self.task_id = plan.task_id
        self.report = ReportState(plan.task_id, plan)
        self.report.task_context = {"forceTimeChunkLock": True, "useLineageBasedSegmentAllocation": True}
        self.temp_dir = os.path.join(services.temp_root, plan.task_id)
        self.workers: list[WorkerHandle] = []
        self.created_millis = now_millis()
        self.status = "RUNNING"
        self.error_msg: str | None = None
        self._cancel: Canceled | None = None
        self._publish_lock = threading.Lock()
        self._allocated: list[publish.SegmentId] = []  # ids whose files to remove on failure
        # The final shuffle of an ingestion: its partition boundaries (encoded keys) and, per
        # partition, (time chunk, index j within the chunk, partitions k of the chunk).
        self._boundaries: list[bytes] = []
        self._stage_workers: dict[int, int] = {}
        self._partitions: list[tuple[int, int, int]] = []
        self.final_report: dict | None = None
        self.runner_status = "RUNNING"  # WAITING while it waits for time-chunk locks
        timeout = plan.context.get("timeout")
        self._deadline = self.created_millis + int(timeout) if timeout not in (None, "", 0, "0") else None
        self.done = threading.Event()

    # --- public ------------------------------------------------------------------------------

    def cancel(self, reason: str = "TASK_SHUTDOWN") -> None:
        with self._publish_lock:
            if self.status == "RUNNING" and self._cancel is None:
                self._cancel = Canceled(reason=reason)

    def run(self) -> None:
        try:
            self._execute()
        except _StageFailed as e:
            self._fail(e.fault, e.worker_id, e.stage, e.trace)
        except Fault as fault:
            self._fail(fault, self.task_id, None, None)
        except Exception as e:  # noqa: BLE001 - a task must always end with a status
            log.exception("task %s failed", self.task_id)
            self._fail(UnknownError(f"{type(e).__name__}: {e}"), self.task_id, None, traceback.format_exc())
        finally:
            for w in self.workers:
                w.kill() if self.status != "SUCCESS" else w.stop()
            self.services.locks.release(self.task_id)
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.done.set()

    # --- the run -------------------------------------------------------------------------------

    def _check_cancel(self) -> None:
        if self._cancel is None and self._deadline is not None and now_millis() > self._deadline:
            self.cancel("QUERY_TIMEOUT")
        if self._cancel is not None:
            raise self._cancel

    def _execute(self) -> None:
        plan = self.plan
        if plan.fault is not None:
            raise plan.fault
        if plan.replace_intervals is not None:
            # REPLACE holds an exclusive lock on what it overwrites for its whole run.
            self.runner_status = "WAITING"
            if not self.services.locks.acquire(self.task_id, plan.datasource, plan.replace_intervals, True,
                                               lambda: self._stop_requested()):
                self._check_cancel()
            self.runner_status = "RUNNING"
        # Each stage that reads a source gets its splits dealt to the workers (spec §5.7).
        leaf_splits = {s.number: self._splits(self._stage_query(s).source) for s in plan.stages
                       if s.input_stage is None and s.kind not in ("segmentGenerator", "sortMergeJoin")}
        self._check_cancel()
        assignments = {n: self._assign(splits) for n, splits in leaf_splits.items()}
        n_workers = max(len(a) for a in assignments.values())
        if n_workers > MAX_WORKERS:
            raise TooManyWorkers(workers=n_workers, maxWorkers=MAX_WORKERS)
        for n, assignment in assignments.items():
            per_worker = max(len(a) for a in assignment)
            if per_worker > MAX_INPUT_FILES_PER_WORKER:
                raise TooManyInputFiles(numInputFiles=per_worker, maxInputFiles=MAX_INPUT_FILES_PER_WORKER,
                                        minNumWorkers=-(-len(leaf_splits[n]) // MAX_INPUT_FILES_PER_WORKER))
        os.makedirs(self.temp_dir, exist_ok=True)
        worker_ids = [f"{self.task_id}-worker{n}_0" for n in range(n_workers)]
        for n, wid in enumerate(worker_ids):
            self.services.metadata.insert_task(TaskRecord(
                id=wid, type="query_worker", datasource=plan.datasource, created_time=iso(now_millis()),
                status="RUNNING", duration=-1, error_msg=None, payload=self._worker_payload(wid, n), report=None,
                group_id=self.task_id))
            self.workers.append(self.services.launcher.launch(wid))
        self.report.workers_launched(worker_ids)

        outputs: list[dict] = []  # per worker results of the stage just run
        stage_outputs: dict[int, list[dict]] = {}
        segments: list[SegmentRecord] = []
        for stage in plan.stages:
            self._check_cancel()
            if stage.kind == "segmentGenerator":
                segments = self._run_segment_stage(stage, outputs)
            elif stage.input_stage is None and not stage.join_inputs:
                assignment, total = assignments[stage.number], len(leaf_splits[stage.number])
                broadcast = [self._broadcast_input(ref, stage_outputs) for ref in stage.broadcast]
                orders = {}
                for w in range(len(assignment)):
                    orders[w] = self._order(stage, assignment[w], total)
                    orders[w].broadcast = broadcast
                outputs = self._run_stage(stage, orders)
            else:
                outputs = self._run_stage(stage, self._partition_orders(stage, stage_outputs))
            stage_outputs[stage.number] = outputs
            if stage.number > 0:
                self.report.stage_phase(stage.number - 1, "FINISHED")
        self._check_cancel()
        if plan.is_ingest:
            self._publish(segments)
        else:
            self._finish_select(outputs)

    def _worker_payload(self, worker_id: str, number: int) -> dict:
        """The query_worker task as Druid's controller submits it (spec §4.6)."""
        ctx = self.plan.context
        return {"type": "query_worker", "id": worker_id, "groupId": self.task_id, "controllerTaskId": self.task_id,
                "workerNumber": number, "retry": 0, "dataSource": self.plan.datasource,
                "resource": {"availabilityGroup": worker_id, "requiredCapacity": 1},
                "context": {"durableShuffleStorage": False, "maxParseExceptions": ctx.get("maxParseExceptions", 0),
                            "isReindex": False, "maxConcurrentStages": 1,
                            "removeNullBytes": bool_context(ctx, "removeNullBytes", False),
                            "includeAllCounters": False, "maxFrameSize": max_frame_size(ctx),
                            "queryId": self.plan.query_id, "sqlQueryId": self.plan.query_id}}

    def kill_worker(self, worker_id: str) -> bool:
        """Shutdown of a worker task: the controller then fails with WorkerFailed, as in Druid."""
        for w in self.workers:
            if w.id == worker_id:
                w.kill()
                return True
        return False

    def _end_workers(self, state: str) -> None:
        self.report.workers_ended(state)
        duration = now_millis() - self.created_millis
        for w in self.workers:
            self.services.metadata.finish_task(w.id, state, duration, None if state == "SUCCESS" else self.error_msg,
                                               None)

    def _check_warnings(self, stage: int) -> None:
        """maxParseExceptions counts across all workers (each worker also stops on its own)."""
        limit = int(self.plan.context.get("maxParseExceptions", 0))
        if limit < 0:
            return
        total = sum(self.report.counters(stage, w).get("warnings", {}).get("CannotParseExternalData", 0)
                    for w in range(len(self.workers)))
        if total > limit and limit > 0:
            raise _StageFailed(TooManyWarnings(maxWarnings=limit, rootErrorCode="CannotParseExternalData"),
                               self.task_id, stage, None)

    def _stop_requested(self) -> bool:
        try:
            self._check_cancel()
        except Canceled:
            return True
        return False

    def _assign(self, splits: list) -> list[list]:
        """Splits per worker (spec §5.7): ``max`` uses as many workers as there are splits,
        up to maxNumTasks - 1; ``auto`` the fewest that keep each under 10,000 files and
        maxInputBytesPerWorker (512 MiB; gzipped text counts 4x), when sizes are known.
        Files are dealt largest first to the least-loaded worker."""
        plan = self.plan
        mode = str(plan.context.get("taskAssignment", "max")).lower()
        sizes = [_weighted_size(s) for s in splits]
        count = min(plan.max_workers, max(1, len(splits)))
        if mode == "auto" and splits and all(size is not None for size in sizes):
            limit = int(plan.context.get("maxInputBytesPerWorker", 512 * 1024 * 1024))
            count = min(count, max(1, -(-sum(sizes) // limit), -(-len(splits) // MAX_INPUT_FILES_PER_WORKER)))
        workers: list[list] = [[] for _ in range(count)]
        load = [0] * count
        for i in sorted(range(len(splits)), key=lambda i: -(sizes[i] or 0)):
            w = min(range(count), key=lambda k: (load[k], len(workers[k])))
            workers[w].append(splits[i])
            load[w] += sizes[i] or 0
        return workers

    def _partition_orders(self, stage: StagePlan, stage_outputs: dict) -> dict[int, WorkOrder]:
        """Orders of a stage that reads earlier stages. It runs on the workers of its input, up to
        one per input partition: worker w reads partitions w, w + n, ... of every input worker.
        A sortMergeJoin reads partition p of both its inputs together (both hash equal keys to
        the same p). A scan or groupBy over a join's rows reads them as its source rows instead,
        dealt file by file, with its broadcast inputs."""
        inputs = [stage_outputs[i] for i in (stage.join_inputs or [stage.input_stage])]
        if stage.kind in ("scan", "groupByPreShuffle"):
            files = [StageFile(f) for r in inputs[0] for _, f in sorted(r["files"].items())]
            n = max(1, min(len(self.workers), len(files)))
            broadcast = [self._broadcast_input(ref, stage_outputs) for ref in stage.broadcast]
            orders = {w: self._order(stage, files[w::n], len(files)) for w in range(n)}
            for order in orders.values():
                order.broadcast = broadcast
            return orders
        parts = max(len(r["files"]) for results in inputs for r in results)
        n = max(1, min(len(self.workers), parts))
        orders = {}
        for w in range(n):
            if stage.kind == "sortMergeJoin":
                pairs = [tuple([r["files"][p] for r in results if p in r["files"]] for results in inputs)
                         for p in range(w, parts, n)]
                orders[w] = self._order(stage, pairs, parts)
            else:
                files = [r["files"][p] for p in range(w, parts, n) for r in inputs[0] if p in r["files"]]
                orders[w] = self._order(stage, files, len(files))
        return orders

    def _stage_query(self, stage: StagePlan):
        return stage.query if stage.query is not None else self.plan.query

    def _broadcast_input(self, ref: tuple, stage_outputs: dict):
        """What a broadcast join's leaf stage reads for one right input: a stage's files, or
        the rows of a lookup or of VALUES."""
        kind, value = ref
        if kind == "stage":
            return [r["files"][0] for r in stage_outputs[value] if 0 in r["files"]]
        if kind == "lookup":
            return LookupSource(value).table(LookupStore(self.services.metadata).map(value))
        return value.table()

    def _splits(self, source) -> list:
        if isinstance(source, JoinSource):  # the base input; the others are broadcast
            source = source.base.source
        if isinstance(source, LookupSource):
            return [source.table(LookupStore(self.services.metadata).map(source.name))]
        if isinstance(source, ExternalSource):
            return list_files(source.input_source)
        if isinstance(source, (TableSource, UnionSource)):
            deep = self.services.deep_storage
            return [deep.local_path(s.payload["loadSpec"])
                    for table in getattr(source, "tables", [source])  # a union reads each of its tables
                    for s in self.services.metadata.data_segments(table.datasource)]
        return [source.table()]  # VALUES, or one row for a FROM-less SELECT

    def _order(self, stage: StagePlan, inputs: list, total: int) -> WorkOrder:
        plan = self.plan
        ingest = None
        if plan.is_ingest and stage.query is None and stage.kind != "sortMergeJoin":  # not a join input's stages
            ingest = IngestSpec(plan.granularity, plan.cluster_by, plan.dimensions, plan.sort_order, plan.metrics,
                                plan.rows_per_segment)
        order = WorkOrder(stage=stage.number, kind=stage.kind, query=self._stage_query(stage),
                          join_index=stage.join_index, out_dir=os.path.join(self.temp_dir, f"stage{stage.number}"),
                          worker_id="", inputs=list(inputs), total_inputs=total, ingest=ingest,
                          deep_storage=self.services.deep_storage.spec, context=dict(plan.context))
        if stage.shuffle == "hash":
            spec = stage.definition["shuffleSpec"]
            order.hash_columns = [c["columnName"] for c in spec["clusterBy"]["columns"]]
            order.hash_partitions = spec["partitions"]
            order.hash_keys = stage.hash_keys
        return order

    def _run_stage(self, stage: StagePlan, orders: dict[int, WorkOrder]) -> list[dict]:
        """Send the orders, follow counters, and collect each worker's result."""
        self._stage_workers[stage.number] = len(orders)
        self.report.stage_started(stage.number, len(orders))
        if stage.shuffle == "targetSize":
            self._check_memory(stage, len(orders))
        for w, order in orders.items():
            order.out_dir = os.path.join(order.out_dir, f"worker{w}")
            order.worker_id = self.workers[w].id
            try:
                self.workers[w].send(order)
            except (OSError, ValueError) as e:
                raise _StageFailed(WorkerRpcFailed(workerTaskId=order.worker_id, errorMsg=str(e)),
                                   order.worker_id, stage.number, None) from None
        results: dict[int, dict] = {}
        statistics: dict[int, KeyStatistics | None] = {}
        pending = {self.workers[w].connection: w for w in orders}
        while pending:
            self._check_cancel()
            try:
                ready = wait(list(pending), timeout=0.2)
            except OSError:  # a pipe closed by kill_worker (a worker task's shutdown): see below
                ready = []
            for conn in ready:
                w = pending[conn]
                try:
                    kind, _, *rest = conn.recv()
                except (EOFError, OSError):
                    raise _StageFailed(WorkerFailed(workerTaskId=self.workers[w].id, errorMsg="worker process exited"),
                                       self.workers[w].id, stage.number, None) from None
                if kind == "counters":
                    self.report.set_counters(stage.number, w, rest[0])
                    self._check_warnings(stage.number)
                    for warning in rest[1]:
                        self.report.add_warning({"taskId": self.workers[w].id, "host": self.services.host,
                                                 "stageNumber": stage.number, "error": warning})
                elif kind == "keyStatistics":
                    statistics[w] = rest[0]
                    if len(statistics) == len(orders):
                        self._send_boundaries(stage, statistics)
                elif kind == "done":
                    results[w] = rest[0]
                    del pending[conn]
                else:
                    raise _StageFailed(Fault.from_json(rest[0]), self.workers[w].id, stage.number, rest[1])
            for conn, w in list(pending.items()):
                if conn.closed or (not self.workers[w].alive() and not conn.poll()):
                    raise _StageFailed(WorkerFailed(workerTaskId=self.workers[w].id,
                                                    errorMsg="worker process exited"),
                                       self.workers[w].id, stage.number, None)
        if stage.sort:
            self.report.stage_phase(stage.number, "POST_READING")
        self.report.stage_phase(stage.number, "RESULTS_READY")
        if stage.shuffle:
            self.report.stage_partitions(stage.number, max(1, max(len(r["files"]) for r in results.values())))
        return [results[w] for w in sorted(results)]

    def _check_memory(self, stage: StagePlan, workers: int) -> None:
        """NotEnoughMemory, as Druid's WorkerMemoryParameters (``engine/memory.py``, which
        says how this machine stands in for a worker's heap). The stage sorts globally by
        target size; it reads its input stage's partitions, each written by all of that
        stage's workers (on one thread, the partition count does not matter)."""
        input_workers = self._stage_workers.get(stage.input_stage, 0) if stage.input_stage is not None else 0
        try:
            memory.worker_memory_parameters(
                memory.MemoryIntrospector(memory.machine_memory(), num_tasks=workers, num_threads=1),
                max_frame_size(self.plan.context), [memory.striped(input_workers, 1)] if input_workers else [],
                needs_statistics=True)
        except NotEnoughMemory as fault:
            raise _StageFailed(fault, self.workers[0].id, stage.number, None) from None

    # --- key statistics and partition boundaries (spec §5.5) ----------------------------------

    def _send_boundaries(self, stage: StagePlan, statistics: dict[int, KeyStatistics | None]) -> None:
        """MERGING_STATISTICS: merge every worker's key statistics, cut each time chunk into
        partitions of about rowsPerSegment rows, and send the boundaries to the workers."""
        self.report.stage_phase(stage.number, "MERGING_STATISTICS")
        merged = None
        for w in sorted(statistics):
            if statistics[w] is not None:
                merged = statistics[w] if merged is None else merged.merge(statistics[w])
        target = self.plan.rows_per_segment
        bounds: list[bytes] = []
        partitions: list[tuple[int, int, int]] = []
        if merged is not None and merged.row_count:
            # Druid refuses before computing when the estimate is already over the limit.
            if merged.row_count // target > MAX_PARTITIONS:
                raise TooManyPartitions(maxPartitions=MAX_PARTITIONS)
            bounds = merged.boundaries_target_size(target)
            partitions = _partitions_by_chunk(merged, bounds)
        self._boundaries, self._partitions = bounds, partitions
        for w in statistics:
            try:
                self.workers[w].send(("boundaries", stage.number, bounds))
            except (OSError, ValueError) as e:
                raise _StageFailed(WorkerRpcFailed(workerTaskId=self.workers[w].id, errorMsg=str(e)),
                                   self.workers[w].id, stage.number, None) from None
        self.report.stage_phase(stage.number, "POST_READING")

    # --- ingestion ------------------------------------------------------------------------------

    def _run_segment_stage(self, stage: StagePlan, outputs: list[dict]) -> list[SegmentRecord]:
        plan = self.plan
        partitions = self._partitions
        if not partitions:
            self.report.stage_started(stage.number, 0)
            self.report.stage_phase(stage.number, "FINISHED")
            return []
        # a worker saw a CLUSTERED BY value with several values: no range shard specs
        multi_valued = any(r.get("multiValuedClusterBy") for r in outputs)
        self.report.set_segment_report(publish.segment_report(plan, multi_valued))
        self._check_segments_per_chunk(partitions)
        if plan.replace_intervals is not None:
            for bucket, _, _ in partitions:
                start, end = plan.granularity.chunk(bucket)
                if not any(lo <= start and end <= hi for lo, hi in plan.replace_intervals):
                    raise InsertTimeOutOfBounds(
                        interval=interval_text(start, end),
                        intervalBounds=[interval_text(lo, hi) for lo, hi in plan.replace_intervals])
        existing = [] if plan.kind == "REPLACE" else self.services.metadata.used_segments(plan.datasource)
        ids = publish.allocate(plan, partitions, existing, iso(plan.start_millis), multi_valued)
        if plan.kind == "INSERT":
            # INSERT locks the chunks it writes when it allocates; an exclusive lock held by a
            # REPLACE on any of them makes the allocation fail, as in Druid.
            chunks = sorted({(i.start, i.end) for i in ids})
            blocked = self.services.locks.try_acquire(self.task_id, plan.datasource, chunks, False)
            if blocked is not None:
                raise InsertCannotAllocateSegment(dataSource=plan.datasource, interval=interval_text(*blocked))
        publish.with_range_bounds(ids, partitions, self._boundaries)
        # One segment per partition, dealt round robin to the workers of the input stage.
        n = min(len(outputs), len(partitions))
        orders = {w: self._order(stage, [], 0) for w in range(n)}
        for p, sid in enumerate(ids):
            self._allocated.append(sid)
            orders[p % n].partitions.append(SegmentPartition(
                number=p, files=[r["files"][p] for r in outputs], datasource=plan.datasource,
                interval=(sid.start, sid.end), version=sid.version, partition_num=sid.partition_num,
                shard_spec=sid.shard_spec))
        results = self._run_stage(stage, orders)
        self.report.stage_partitions(stage.number, len(partitions))
        self.report.stage_phase(stage.number, "FINISHED")
        by_number = {seg["_partition"]: seg for result in results for seg in result["segments"]}
        records = []
        for p, sid in enumerate(ids):
            seg = by_number[p]
            payload = {k: v for k, v in seg.items() if not k.startswith("_")}
            payload["shardSpec"] = sid.shard_spec
            records.append(SegmentRecord(sid.start, sid.end, sid.version, sid.partition_num, payload))
        return records

    def _check_segments_per_chunk(self, partitions) -> None:
        limit = self.plan.payload["spec"]["tuningConfig"].get("maxNumSegments")
        if len(partitions) > MAX_PARTITIONS:
            raise TooManyPartitions(maxPartitions=MAX_PARTITIONS)
        if limit is None:
            return
        for bucket, _, k in partitions:
            if k > limit:
                # Druid names the chunk by its start; ALL's chunk by the epoch
                raise TooManySegmentsInTimeChunk(timeChunk=iso(0 if self.plan.granularity.is_all else bucket),
                                                 numSegments=k,
                                                 maxNumSegments=limit,
                                                 segmentGranularity=self.plan.granularity.to_json())

    def _publish(self, segments: list[SegmentRecord]) -> None:
        plan = self.plan
        if not segments and bool_context(plan.context, "failOnEmptyInsert", False):
            raise InsertCannotBeEmpty(dataSource=plan.datasource)
        replace = plan.replace_intervals
        if replace is not None:
            existing = self.services.metadata.used_segments(plan.datasource)
            segments = segments + publish.tombstones(plan, existing, self._allocated, iso(plan.start_millis))
        with self._publish_lock:
            self._check_cancel()
            self._end_workers("SUCCESS")
            self.report.finish("SUCCESS")
            report = self.report.snapshot()
            duration = now_millis() - self.created_millis
            self.services.metadata.publish(self.task_id, duration, report, plan.datasource, segments, replace)
            self.final_report = report
            self.status = "SUCCESS"
        if self.services.on_publish is not None:
            try:
                self.services.on_publish(plan.datasource, [s for s in segments if not s.is_tombstone])
            except Exception:  # noqa: BLE001 - loading for queries is best effort: the query opens them anyway
                log.warning("loading the published segments of %s failed", self.task_id, exc_info=True)

    # --- SELECT ---------------------------------------------------------------------------------

    def _finish_select(self, outputs: list[dict]) -> None:
        plan = self.plan
        # each worker's frame file (already ordered and cut to OFFSET + LIMIT when the stage sorts)
        table = arrays.concat_tables([read_stage_file(result["files"][0])[0] for result in outputs])
        if plan.stages[-1].kind in ("scan", "groupByPostShuffle"):
            table = ops.order_limit(table, plan.query)  # the limit stage has done it already
        self.report.stage_phase(plan.stages[-1].number, "FINISHED")
        columns = [_result_values(table.column(n), t) for n, t in plan.output]
        rows = [list(r) for r in zip(*columns)] if columns else []
        self.report.set_results({
            "signature": [{"name": n, "type": native_type(t)} for n, t in plan.output],
            "sqlTypeNames": [sql_type_name(t) for _, t in plan.output],
            "results": rows,
            "resultsTruncated": False,
        })
        with self._publish_lock:
            self._check_cancel()
            self._end_workers("SUCCESS")
            self.report.finish("SUCCESS")
            report = self.report.snapshot()
            self.services.metadata.finish_task(self.task_id, "SUCCESS", now_millis() - self.created_millis, None,
                                               report)
            self.final_report = report
            self.status = "SUCCESS"

    # --- failure --------------------------------------------------------------------------------

    def _fail(self, fault: Fault, worker_id: str, stage: int | None, trace: str | None) -> None:
        for w in self.workers:
            w.kill()
        deep = self.services.deep_storage
        for sid in self._allocated:
            deep.delete(deep.load_spec(self.plan.datasource, interval_text(sid.start, sid.end), sid.version,
                                       sid.partition_num))
        error_report = {"taskId": worker_id, "host": self.services.host}
        if stage is not None:
            error_report["stageNumber"] = stage
        error_report["error"] = fault.to_json()
        if trace:
            error_report["exceptionStackTrace"] = trace
        self.error_msg = fault.error_msg
        self._end_workers("FAILED")
        self.report.finish("FAILED", error_report)
        report = self.report.snapshot()
        with self._publish_lock:
            self.status = "FAILED"
            self.error_msg = fault.error_msg
            self.final_report = report
        self.services.metadata.finish_task(self.task_id, "FAILED", now_millis() - self.created_millis,
                                           fault.error_msg, report)


def _partitions_by_chunk(statistics: KeyStatistics, bounds: list[bytes]) -> list[tuple[int, int, int]]:
    """(time chunk, index j within the chunk, partitions k of the chunk) of each partition.
    A new chunk starts where a boundary is a chunk's key prefix (``__bucket`` alone)."""
    prefixes = {prefix for prefix, _ in statistics.buckets()}
    chunk = statistics.buckets()[0][0]
    chunks = [chunk]
    for bound in bounds:
        if bound in prefixes:
            chunk = bound
        chunks.append(chunk)
    out = []
    for prefix, group in itertools.groupby(chunks):
        k = len(list(group))
        out += [(decode_long_prefix(prefix), j, k) for j in range(k)]
    return out


def _result_values(col, sql_type: str) -> list:
    """A result column's values as Druid's report writes them."""
    if sql_type == "COMPLEX<json>":
        return json_functions.render_values(col)
    if sql_type == "VARCHAR" and pa.types.is_list(col.type):
        return arrays.row_objects(col)  # a multi-value string
    return col.to_pylist()
