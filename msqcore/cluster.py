"""The embedded cluster: what Druid splits across Overlord, Broker and Coordinator.

``Cluster`` plans and runs MSQ tasks (each in a controller thread with worker processes),
answers for tasks from memory while they run and from the metadata store after, serves
SQL SELECTs over published segments, and lists segments. The server is a thin HTTP layer
over it.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from msqcore.engine import operators as ops
from msqcore.engine.controller import Controller, Services
from msqcore.engine.launcher import LocalProcessLauncher, WorkerLauncher
from msqcore.engine.open_segments import OPEN_SEGMENTS
from msqcore.errors import Canceled, InvalidInput, NotFound
from msqcore.kill import KillTask
from msqcore.planner.query import (ExternalSource, InlineSource, JoinSource, LogicalQuery, LookupSource, QuerySource,
                                   TableSource, compile_query, leaf_sources)
from msqcore.planner.statement import split_statement
from msqcore.planner.tasks import plan_task
from msqcore.storage.deep import DeepStorage, LocalDeepStorage
from msqcore.storage.metadata import MetadataStore, SqliteMetadataStore, TaskRecord
from msqcore.storage.segment import read_segment_meta
from msqcore.timeutil import iso, now_millis, parse_interval

log = logging.getLogger("msqcore.engine")

_TYPE_TO_SQL = {"LONG": "BIGINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "STRING": "VARCHAR",
                "ARRAY<STRING>": "VARCHAR ARRAY", "ARRAY<LONG>": "BIGINT ARRAY", "ARRAY<DOUBLE>": "DOUBLE ARRAY"}


_CACHED_TEXT_CHARS = 64 * 1024  # a longer text (inline data, huge IN lists) is parsed each time


def parsed_statement(sql: str):
    """``run_sql``'s parse of a statement text: (explain, kind, SET settings, the SELECT with its
    virtual tables renamed). Parsing costs more than the rest of planning, and a dashboard sends
    the same texts again and again; the result depends on the text alone (parameters, context
    and the catalog come in at planning). Kept per text (LRU of 256 texts of at most 64 KiB);
    errors are not kept. The tree is shared: callers must not change it."""
    return _parse(sql) if len(sql) > _CACHED_TEXT_CHARS else _cached_parse(sql)


def _parse(sql: str):
    from msqcore.catalog import rewrite_virtual_tables, split_explain
    explain, text = split_explain(sql)
    statement = split_statement(text)
    select = rewrite_virtual_tables(statement.select) if statement.kind == "SELECT" else None
    return explain, statement.kind, dict(statement.settings), select


_cached_parse = functools.lru_cache(maxsize=256)(_parse)


@dataclass
class ClusterConfig:
    data_dir: str = "./var"
    host: str = "localhost"
    port: int = 8888


class Cluster:
    def __init__(self, config: ClusterConfig, metadata: MetadataStore | None = None,
                 deep_storage: DeepStorage | None = None, launcher: WorkerLauncher | None = None):
        self.config = config
        self.started_millis = now_millis()
        data_dir = os.path.abspath(config.data_dir)
        os.makedirs(data_dir, exist_ok=True)
        self.metadata = metadata or SqliteMetadataStore(os.path.join(data_dir, "metadata.db"))
        self.deep_storage = deep_storage or LocalDeepStorage(os.path.join(data_dir, "segments"))
        temp_root = os.path.join(data_dir, "tmp")
        # Anything a previous process left running is over: its temp files go, its tasks fail.
        shutil.rmtree(temp_root, ignore_errors=True)
        os.makedirs(temp_root, exist_ok=True)
        stale = Canceled("Query canceled due to [Unknown]: the server stopped while the task was running.",
                         reason="UNKNOWN")
        for task_id in self.metadata.fail_running_tasks(stale.error_msg, stale.to_json()):
            log.warning("task %s was running when the server stopped; marked FAILED", task_id)
        # Segment files such a task pushed before its publish committed belong to nobody.
        for load_spec in self.deep_storage.orphans(self.metadata.load_specs()):
            self.deep_storage.delete(load_spec)
        self.services = Services(self.metadata, self.deep_storage, launcher or LocalProcessLauncher(), temp_root,
                                 host=config.host, port=config.port, on_publish=self._load_published)
        self._running: dict[str, tuple[Controller, threading.Thread]] = {}
        self._native: dict[str, tuple[threading.Event, threading.Thread]] = {}  # kill tasks
        self._lock = threading.Lock()
        self._segment_meta: dict[str, dict] = {}
        # one thread loads published segments (and keeps one metadata reader connection)
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment-load")
        self._signatures: dict[str, tuple[tuple, list]] = {}  # datasource -> (segment ids, signature)

    # --- catalog --------------------------------------------------------------------------------

    def table_signature(self, datasource: str) -> list[tuple[str, str]] | None:
        segments = self.metadata.data_segments(datasource)
        if not segments:
            return None
        # the same used segments give the same signature: kept for the last segment list seen
        key = tuple(s.payload["identifier"] for s in segments)
        cached = self._signatures.get(datasource)
        if cached is not None and cached[0] == key:
            return list(cached[1])
        columns: dict[str, str] = {"__time": "TIMESTAMP"}
        for seg in sorted(segments, key=lambda s: s.version, reverse=True):
            for col in self._meta(seg.payload)["columns"]:
                if col["name"] != "__time":
                    columns.setdefault(col["name"], _TYPE_TO_SQL.get(col["type"], col["type"]))  # COMPLEX<..> as is
        signature = list(columns.items())
        self._signatures[datasource] = (key, signature)
        return list(signature)

    def _meta(self, segment: dict) -> dict:
        key = segment["identifier"]
        if key not in self._segment_meta:
            self._segment_meta[key] = read_segment_meta(self.deep_storage.local_path(segment["loadSpec"]))
        return self._segment_meta[key]

    def _load_published(self, datasource: str, segments: list) -> None:
        """Load a task's published segments for queries, in the background: the task has
        succeeded already (Druid's historicals load new segments after the publish too)."""
        def load() -> None:
            for seg in segments:
                try:
                    self._meta(seg.payload)
                    OPEN_SEGMENTS.load(self.deep_storage.local_path(seg.payload["loadSpec"]), datasource)
                except Exception:  # noqa: BLE001 - a query opens the segment itself if this could not
                    log.warning("could not load segment %s", seg.payload.get("identifier"), exc_info=True)
            # a REPLACE or a drop may have come meanwhile: keep only what is still used
            OPEN_SEGMENTS.retain(datasource, {self.deep_storage.local_path(s.payload["loadSpec"])
                                              for s in self.metadata.data_segments(datasource)})

        self._loader.submit(load)

    def datasources(self) -> list[str]:
        return sorted({s.payload["dataSource"] for s in self.metadata.used_segments()})

    def segments(self, datasource: str) -> list[dict]:
        return [s.payload for s in self.metadata.used_segments(datasource)]

    # --- tasks ----------------------------------------------------------------------------------

    def submit_task(self, sql: str, context: dict | None, parameters: list | None) -> str:
        plan = plan_task(sql, context, parameters, self)
        with self._lock:
            if plan.task_id in self._running or self.metadata.get_task(plan.task_id) is not None:
                raise InvalidInput(f"Task [{plan.task_id}] already exists (sqlQueryId must be unique)")
            controller = Controller(plan, self.services)
            self.metadata.insert_task(TaskRecord(
                id=plan.task_id, type="query_controller", datasource=plan.datasource,
                created_time=iso(controller.created_millis), status="RUNNING", duration=-1, error_msg=None,
                payload=plan.payload, report=None))
            thread = threading.Thread(target=self._run, args=(controller,), name=plan.task_id, daemon=True)
            self._running[plan.task_id] = (controller, thread)
            thread.start()
        return plan.task_id

    def submit_native_task(self, payload: dict, id_prefix: str | None = None) -> str:
        """``POST /druid/indexer/v1/task``: the native task types msqcore runs (``kill``)."""
        if not isinstance(payload, dict) or payload.get("type") != "kill":
            kind = payload.get("type") if isinstance(payload, dict) else None
            raise InvalidInput(f"Task type [{kind}] is not supported: msqcore runs SQL-based ingestion "
                               "(POST /druid/v2/sql/task) and kill tasks")
        interval = payload.get("interval")
        if not isinstance(interval, str):
            raise InvalidInput("Missing 'interval' in the kill task")
        task = KillTask.from_payload(payload, parse_interval(interval), id_prefix)
        with self._lock:
            if self.metadata.get_task(task.id) is not None:
                raise InvalidInput(f"Task [{task.id}] already exists")
            self.metadata.insert_task(TaskRecord(
                id=task.id, type="kill", datasource=task.datasource, created_time=iso(now_millis()),
                status="RUNNING", duration=-1, error_msg=None, payload=task.payload, report=None))
            stop = threading.Event()
            thread = threading.Thread(target=self._run_kill, args=(task, stop), name=task.id, daemon=True)
            self._native[task.id] = (stop, thread)
            thread.start()
        return task.id

    def _run_kill(self, task: KillTask, stop: threading.Event) -> None:
        started = now_millis()
        try:
            report = task.run(self.metadata, self.deep_storage, self.services.locks, stop.is_set)
            self.metadata.finish_task(task.id, "SUCCESS", now_millis() - started, None, report)
        except Exception as e:  # noqa: BLE001 - a task must always end with a status
            log.exception("kill task %s failed", task.id)
            self.metadata.finish_task(task.id, "FAILED", now_millis() - started, str(e), None)
        finally:
            with self._lock:
                self._native.pop(task.id, None)

    def _run(self, controller: Controller) -> None:
        try:
            controller.run()
        finally:
            with self._lock:
                self._running.pop(controller.task_id, None)

    def _record(self, task_id: str) -> TaskRecord:
        record = self.metadata.get_task(task_id)
        if record is None:
            raise NotFound(f"Cannot find any task with id: [{task_id}]")
        return record

    def task_payload(self, task_id: str) -> dict:
        return {"task": task_id, "payload": self._record(task_id).payload}

    def task_status(self, task_id: str) -> dict:
        return {"task": task_id, "status": self._status_plus(self._record(task_id))}

    def _status_plus(self, record: TaskRecord) -> dict:
        running = self._running.get(record.group_id or record.id)  # a worker's controller
        status = record.status
        duration = record.duration
        error_msg = record.error_msg
        runner = "RUNNING" if record.id in self._native else "NONE"
        if running is not None and running[0].status == "RUNNING":
            status, duration, error_msg, runner = "RUNNING", -1, None, running[0].runner_status
        return {
            "id": record.id, "groupId": record.group_id or record.id, "type": record.type,
            "createdTime": record.created_time, "queueInsertionTime": "1970-01-01T00:00:00.000Z",
            "statusCode": status, "status": status,
            "runnerStatusCode": runner,
            "duration": duration,
            "location": {"host": self.config.host, "port": self.config.port, "tlsPort": -1},
            "dataSource": record.datasource, "errorMsg": error_msg,
        }

    def task_report(self, task_id: str) -> dict:
        running = self._running.get(task_id)
        if running is not None:
            controller = running[0]
            return controller.final_report or controller.report.snapshot()
        record = self._record(task_id)
        if record.report is None:
            raise NotFound("No task reports were found for this task. The task may not exist, or it may not have "
                           "completed yet.")
        return record.report

    def shutdown_task(self, task_id: str) -> dict:
        record = self._record(task_id)
        running = self._running.get(record.group_id or task_id)
        if task_id in self._native:
            self._native[task_id][0].set()
        elif running is not None:
            if record.type == "query_worker":
                running[0].kill_worker(task_id)
            else:
                running[0].cancel("TASK_SHUTDOWN")
        return {"task": task_id}

    def list_tasks(self) -> list[dict]:
        return [self._status_plus(r) for r in self.metadata.list_tasks()]

    def wait(self, task_id: str, timeout: float | None = None) -> bool:
        running = self._running.get(task_id)
        native = self._native.get(task_id)
        if native is not None:
            native[1].join(timeout)
            return not native[1].is_alive()
        return running[0].done.wait(timeout) if running else True

    def close(self, timeout: float = 30.0) -> None:
        """Cancel running tasks (they end FAILED, publishing nothing) and close the store."""
        for controller, _ in list(self._running.values()):
            controller.cancel("TASK_SHUTDOWN")
        for stop, _ in list(self._native.values()):
            stop.set()
        for _, thread in list(self._running.values()) + list(self._native.values()):
            thread.join(timeout)
        self._loader.shutdown(wait=True, cancel_futures=True)
        self.metadata.close()

    # --- SQL (the Broker) ---------------------------------------------------------------------------

    def run_sql(self, sql: str, context: dict | None, parameters: list | None) -> tuple[LogicalQuery, pa.Table]:
        from msqcore.catalog import EXPLAIN_SIGNATURE, SqlCatalog, arrow_table, explain_select
        from msqcore.planner.expressions import ColumnRef
        explain, kind, settings, select = parsed_statement(sql)
        if kind == "REPLACE":
            raise InvalidInput("REPLACE operations are not supported by the requested SQL engine [native].  "
                               "Consider using MSQ.")
        if kind != "SELECT":
            raise InvalidInput(f"{kind} operations are not supported by requested SQL engine [native], "
                               "consider using MSQ.")
        ctx = dict(context or {})
        ctx.update(settings)
        select = select.copy()  # the cached tree is shared by every run of this text
        query = compile_query(select, SqlCatalog(self), parameters, dict(ctx, __startTimeMillis=now_millis()),
                              top_level_union=not explain)  # the native engine runs UNION ALL of any queries
        if any(isinstance(s, ExternalSource) for s in leaf_sources(query.source)):
            raise InvalidInput("Cannot query table(s) [EXTERNAL] with SQL engine [native]; use the MSQ task engine "
                               "(POST /druid/v2/sql/task)")
        if explain:
            rows = explain_select(query, ctx)
            plan = LogicalQuery(InlineSource(EXPLAIN_SIGNATURE, rows), None,
                                [(n, ColumnRef(n, t)) for n, t in EXPLAIN_SIGNATURE])
            return plan, arrow_table(EXPLAIN_SIGNATURE, rows)
        queries = self._serving().queries
        handle = queries.find(str(ctx["sqlQueryId"])) if ctx.get("sqlQueryId") is not None else None
        queries.local.handle = handle
        try:
            if hasattr(query, "arms"):  # a top-level UNION ALL: each query in turn
                return query, query.run(lambda arm: ops.run_local(self._source_table(arm), arm))
            combined = self._aggregate_datasource(query, handle)
            if combined is not None:  # grouped on the segments' dictionary ids
                return query, ops.order_limit(ops.finish_aggregate(combined, query), query)
            source = self._source_table(query)
            if handle is not None:
                handle.check()
            return query, ops.run_local(source, query)
        finally:
            queries.local.handle = None

    def _aggregate_datasource(self, query: LogicalQuery, handle) -> pa.Table | None:
        """``scan_pruning.aggregate_datasource`` for a GROUP BY over a datasource; None when it does not apply."""
        from msqcore.catalog import SystemTables
        from msqcore.engine.scan_pruning import aggregate_datasource
        if not (isinstance(query.source, TableSource) and query.is_aggregate) \
                or SystemTables(self).signature(query.source.datasource) is not None:
            return None
        result = aggregate_datasource(self, query, check=handle.check if handle is not None else None)
        return None if result is None else result[0]

    def _source_table(self, query: LogicalQuery) -> pa.Table:
        if isinstance(query.source, InlineSource):
            return query.source.table()
        if isinstance(query.source, LookupSource):
            return query.source.table(self.lookup(query.source.name))
        if isinstance(query.source, QuerySource):  # the inner query in this process
            return ops.run_local(self._source_table(query.source.query), query.source.query)
        if isinstance(query.source, JoinSource):  # every input in this process, then the joins
            from msqcore.engine import join
            source = query.source
            base = ops.run_local(self._source_table(source.base), source.base)
            rights = [ops.run_local(self._source_table(j.right), j.right) for j in source.joins]
            return join.join_all(base, rights, source)
        tables = getattr(query.source, "tables", None)
        if tables is not None:  # a union datasource: its tables' rows, one after another
            import dataclasses
            return pa.concat_tables([self._source_table(dataclasses.replace(query, source=t)) for t in tables],
                                    promote_options="permissive")
        from msqcore.catalog import SystemTables
        from msqcore.engine.scan_pruning import scan_datasource
        system = SystemTables(self)
        if system.signature(query.source.datasource) is not None:
            return system.table(query.source.datasource)
        handle = getattr(self._serving().queries.local, "handle", None)
        table, _ = scan_datasource(self, query, check=handle.check if handle is not None else None)
        return table

    # --- serving (issue 7) ------------------------------------------------------------------------

    _serving_init_lock = threading.Lock()

    def _serving(self):
        """Serving-side state (running SQL queries, lookups), created on first use."""
        state = self.__dict__.get("_serving_state")
        if state is None:
            with Cluster._serving_init_lock:
                state = self.__dict__.get("_serving_state")
                if state is None:
                    from msqcore.broker import ServingState
                    state = self.__dict__["_serving_state"] = ServingState(self)
        return state

    @property
    def lookups(self):
        """The lookup configuration store (``msqcore.lookups.LookupStore``)."""
        return self._serving().lookups

    def lookup(self, name: str) -> dict:
        """The key/value map of lookup ``name`` in the Broker's tier, for LOOKUP(); raises NotFound."""
        return self._serving().lookups.map(name)

    def begin_sql(self, query_id: str, context: dict | None):
        """Register a SQL query run on behalf of ``/druid/v2/sql`` (for cancel and ``timeout``)."""
        from msqcore.broker import timeout_ms
        return self._serving().queries.begin(query_id, timeout_ms(context or {}), self.config.host)

    def end_sql(self, handle) -> None:
        self._serving().queries.end(handle)

    def cancel_sql(self, query_id: str) -> bool:
        """Cancel the running SQL queries with this ``sqlQueryId``; False if none is running."""
        return self._serving().queries.cancel(query_id)

    def explain_task(self, sql: str, context: dict | None, parameters: list | None):
        """``EXPLAIN PLAN FOR`` sent to the task endpoint: (LogicalQuery, rows) of the MSQ plan,
        or None when ``sql`` is not an EXPLAIN."""
        from msqcore.catalog import EXPLAIN_SIGNATURE, arrow_table, explain_task, split_explain
        from msqcore.planner.expressions import ColumnRef
        explain, sql = split_explain(sql)
        if not explain:
            return None
        rows = explain_task(plan_task(sql, context, parameters, self))
        plan = LogicalQuery(InlineSource(EXPLAIN_SIGNATURE, rows), None,
                            [(n, ColumnRef(n, t)) for n, t in EXPLAIN_SIGNATURE])
        return plan, arrow_table(EXPLAIN_SIGNATURE, rows)

    def mark_segments_unused(self, datasource: str, *, interval: tuple[int, int] | None = None,
                             versions: list[str] | None = None, segment_ids: list[str] | None = None) -> int:
        return self.metadata.mark_segments_unused(datasource, interval=interval, versions=versions,
                                                  segment_ids=segment_ids)

    def drop_datasource(self, datasource: str) -> int:
        """Mark every segment of ``datasource`` unused; returns how many changed."""
        return self.metadata.mark_datasource_unused(datasource)

    def submit_statement(self, sql: str, context: dict | None, parameters: list | None,
                         result_format: str = "object") -> dict:
        from msqcore import statements
        return statements.submit(self, sql, context, parameters, result_format)

    def statement_status(self, query_id: str, detail: bool = False) -> dict:
        from msqcore import statements
        return statements.status(self, query_id, detail)

    def statement_results(self, query_id: str, page: int | None, result_format: str | None):
        from msqcore import statements
        return statements.results(self, query_id, page, result_format)

    def cancel_statement(self, query_id: str) -> bool:
        from msqcore import statements
        return statements.cancel(self, query_id)
