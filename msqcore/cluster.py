"""The embedded cluster: what Druid splits across Overlord, Broker and Coordinator.

``Cluster`` plans and runs MSQ tasks (each in a controller thread with worker processes),
answers for tasks from memory while they run and from the metadata store after, serves
SQL SELECTs over published segments, and lists segments. The server is a thin HTTP layer
over it.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass

import pyarrow as pa

from msqcore.engine import operators as ops
from msqcore.engine.controller import Controller, Services
from msqcore.engine.launcher import LocalProcessLauncher, WorkerLauncher
from msqcore.errors import Canceled, InvalidInput, NotFound
from msqcore.planner.expressions import arrow_type
from msqcore.planner.query import ExternalSource, InlineSource, LogicalQuery, TableSource, compile_query
from msqcore.planner.statement import split_statement
from msqcore.planner.tasks import plan_task
from msqcore.storage.deep import DeepStorage, LocalDeepStorage
from msqcore.storage.metadata import MetadataStore, SqliteMetadataStore, TaskRecord
from msqcore.engine.worker import read_datasource_segment
from msqcore.storage.segment import read_segment_meta
from msqcore.timeutil import iso, now_millis

log = logging.getLogger("msqcore.engine")

_TYPE_TO_SQL = {"LONG": "BIGINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "STRING": "VARCHAR"}


@dataclass
class ClusterConfig:
    data_dir: str = "./var"
    host: str = "localhost"
    port: int = 8888


class Cluster:
    def __init__(self, config: ClusterConfig, metadata: MetadataStore | None = None,
                 deep_storage: DeepStorage | None = None, launcher: WorkerLauncher | None = None):
        self.config = config
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
        self.services = Services(self.metadata, self.deep_storage, launcher or LocalProcessLauncher(), temp_root,
                                 host=config.host, port=config.port)
        self._running: dict[str, tuple[Controller, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._segment_meta: dict[str, dict] = {}

    # --- catalog --------------------------------------------------------------------------------

    def table_signature(self, datasource: str) -> list[tuple[str, str]] | None:
        segments = [s for s in self.metadata.used_segments(datasource) if not s.is_tombstone]
        if not segments:
            return None
        columns: dict[str, str] = {"__time": "TIMESTAMP"}
        for seg in sorted(segments, key=lambda s: s.version, reverse=True):
            for col in self._meta(seg.payload)["columns"]:
                if col["name"] != "__time":
                    columns.setdefault(col["name"], _TYPE_TO_SQL[col["type"]])
        return list(columns.items())

    def _meta(self, segment: dict) -> dict:
        key = segment["identifier"]
        if key not in self._segment_meta:
            self._segment_meta[key] = read_segment_meta(self.deep_storage.local_path(segment["loadSpec"]))
        return self._segment_meta[key]

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
        runner = "NONE"
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
        if running is not None:
            if record.type == "query_worker":
                running[0].kill_worker(task_id)
            else:
                running[0].cancel("TASK_SHUTDOWN")
        return {"task": task_id}

    def list_tasks(self) -> list[dict]:
        return [self._status_plus(r) for r in self.metadata.list_tasks()]

    def wait(self, task_id: str, timeout: float | None = None) -> bool:
        running = self._running.get(task_id)
        return running[0].done.wait(timeout) if running else True

    def close(self, timeout: float = 30.0) -> None:
        """Cancel running tasks (they end FAILED, publishing nothing) and close the store."""
        for controller, _ in list(self._running.values()):
            controller.cancel("TASK_SHUTDOWN")
        for controller, thread in list(self._running.values()):
            thread.join(timeout)
        self.metadata.close()

    # --- SQL (the Broker) ---------------------------------------------------------------------------

    def run_sql(self, sql: str, context: dict | None, parameters: list | None) -> tuple[LogicalQuery, pa.Table]:
        statement = split_statement(sql)
        if statement.kind != "SELECT":
            raise InvalidInput(f"{statement.kind} operations are not supported by requested SQL engine [native], "
                               "consider using MSQ.")
        ctx = dict(context or {})
        ctx.update(statement.settings)
        query = compile_query(statement.select, self, parameters, dict(ctx, __startTimeMillis=now_millis()))
        if isinstance(query.source, ExternalSource):
            raise InvalidInput("Cannot query table(s) [EXTERNAL] with SQL engine [native]; use the MSQ task engine "
                               "(POST /druid/v2/sql/task)")
        return query, ops.run_local(self._source_table(query), query)

    def _source_table(self, query: LogicalQuery) -> pa.Table:
        if isinstance(query.source, InlineSource):
            return query.source.table()
        tables = [read_datasource_segment(self.deep_storage.local_path(s.payload["loadSpec"]), query)
                  for s in self.metadata.used_segments(query.source.datasource) if not s.is_tombstone]
        if not tables:
            columns = query.source_columns()
            return pa.table({n: pa.array([], arrow_type(t)) for n, t in query.source.signature if n in columns})
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
