"""The metadata store: tasks (status, payload, report) and published segments.

``MetadataStore`` is the interface; ``SqliteMetadataStore`` is the embedded default. A
PostgreSQL store implements the same methods. Publishing a task's segments and marking
the task SUCCESS happen in one transaction, so a crash leaves either both or neither.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class TaskRecord:
    id: str
    type: str
    datasource: str
    created_time: str
    status: str  # RUNNING | SUCCESS | FAILED
    duration: int
    error_msg: str | None
    payload: dict
    report: dict | None
    group_id: str | None = None


@dataclass
class SegmentRecord:
    """A published segment: its DataSegment JSON plus the fields queries index on."""

    start: int
    end: int
    version: str
    partition_num: int
    payload: dict

    @property
    def is_tombstone(self) -> bool:
        """A REPLACE marker for an emptied time chunk: used, but holds no data file."""
        return self.payload.get("shardSpec", {}).get("type") == "tombstone"


class MetadataStore(ABC):
    @abstractmethod
    def insert_task(self, task: TaskRecord) -> None: ...

    @abstractmethod
    def finish_task(self, task_id: str, status: str, duration: int, error_msg: str | None, report: dict) -> None:
        """Record a task's end without publishing anything."""

    @abstractmethod
    def publish(self, task_id: str, duration: int, report: dict, datasource: str, segments: list[SegmentRecord],
                replace_intervals: list[tuple[int, int]] | None) -> None:
        """In one transaction: insert ``segments``, mark used segments of ``datasource`` inside
        ``replace_intervals`` unused (REPLACE), and mark the task SUCCESS with its report."""

    @abstractmethod
    def get_task(self, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
    def list_tasks(self) -> list[TaskRecord]: ...

    @abstractmethod
    def fail_running_tasks(self, error_msg: str, report_error: dict) -> list[str]:
        """Mark tasks left RUNNING by a previous process FAILED; returns their ids."""

    @abstractmethod
    def used_segments(self, datasource: str | None = None) -> list[SegmentRecord]: ...

    def data_segments(self, datasource: str) -> list[SegmentRecord]:
        """The used segments that hold rows (tombstones left out): what queries read."""
        return [s for s in self.used_segments(datasource) if not s.is_tombstone]

    @abstractmethod
    def close(self) -> None: ...

    # --- serving (issue 7): config entries and segment state changes -------------------------------

    def get_config(self, name: str) -> Any:
        """A JSON config entry (Druid's ``druid_config`` table), or None if never set."""
        raise NotImplementedError

    def set_config(self, name: str, value: Any) -> None:
        raise NotImplementedError

    def mark_segments_unused(self, datasource: str, *, interval: tuple[int, int] | None = None,
                             versions: list[str] | None = None, segment_ids: list[str] | None = None) -> int:
        """Mark used segments of ``datasource`` unused: those lying within ``interval`` (optionally
        only of ``versions``), or those named by ``segment_ids``. Returns how many changed."""
        raise NotImplementedError

    def mark_datasource_unused(self, datasource: str) -> int:
        """Mark every used segment of ``datasource`` unused (dropping the datasource)."""
        raise NotImplementedError

    def load_specs(self) -> list[dict]:
        """The loadSpec of every segment row, used or not: the deep-storage files that are owned."""
        raise NotImplementedError

    def unused_segments(self, datasource: str, interval: tuple[int, int], versions: list[str] | None = None,
                        limit: int | None = None) -> list[SegmentRecord]:
        """Unused segments of ``datasource`` lying within ``interval`` (what a kill task deletes),
        optionally only of ``versions``, oldest first, at most ``limit``."""
        raise NotImplementedError

    def delete_segments(self, segment_ids: list[str]) -> None:
        """Remove segment rows for good (a kill task's nuke step)."""
        raise NotImplementedError


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    group_id TEXT,
    datasource TEXT NOT NULL,
    created_time TEXT NOT NULL,
    status TEXT NOT NULL,
    duration INTEGER NOT NULL DEFAULT -1,
    error_msg TEXT,
    payload TEXT NOT NULL,
    report TEXT
);
CREATE TABLE IF NOT EXISTS segments (
    id TEXT PRIMARY KEY,
    datasource TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    version TEXT NOT NULL,
    partition_num INTEGER NOT NULL,
    used INTEGER NOT NULL,
    created_date TEXT NOT NULL,
    task_id TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_ds_used ON segments (datasource, used, start);
CREATE TABLE IF NOT EXISTS config (name TEXT PRIMARY KEY, payload TEXT NOT NULL);
"""


class SqliteMetadataStore(MetadataStore):
    """Writes go through one connection under a lock; each read takes a reader connection
    from a pool and gives it back after (a connection per thread would keep one open for
    every thread that ever read: each task's controller thread, say).

    In WAL mode a reader sees the last committed state and never waits for a writer, so
    status and segment-list calls answer while a publish transaction is open.
    """

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._readers: list[sqlite3.Connection] = []  # every reader connection, for close
        self._idle: list[sqlite3.Connection] = []  # those no read is using
        # not the writer's lock, which an open transaction holds: a read would wait for it
        self._readers_lock = threading.Lock()

    def _tx(self):
        return _Transaction(self._db, self._lock)

    def _read(self):
        with self._readers_lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            with self._readers_lock:
                self._readers.append(db)
        return _Snapshot(db, self._give_back)

    def _give_back(self, db: sqlite3.Connection) -> None:
        with self._readers_lock:
            self._idle.append(db)

    def insert_task(self, task: TaskRecord) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO tasks (id, type, group_id, datasource, created_time, status, duration, error_msg,"
                       " payload, report) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (task.id, task.type, task.group_id or task.id, task.datasource, task.created_time, task.status,
                        task.duration, task.error_msg, json.dumps(task.payload),
                        None if task.report is None else json.dumps(task.report)))

    def finish_task(self, task_id, status, duration, error_msg, report):
        with self._tx() as db:
            db.execute("UPDATE tasks SET status=?, duration=?, error_msg=?, report=? WHERE id=?",
                       (status, duration, error_msg, json.dumps(report), task_id))

    def publish(self, task_id, duration, report, datasource, segments, replace_intervals):
        from msqcore.timeutil import now_iso
        created = now_iso()
        with self._tx() as db:
            if replace_intervals is not None:
                for start, end in replace_intervals:
                    db.execute('UPDATE segments SET used=0 WHERE datasource=? AND used=1 AND start>=? AND "end"<=?',
                               (datasource, start, end))
            db.executemany(
                'INSERT INTO segments (id, datasource, start, "end", version, partition_num, used, created_date,'
                " task_id, payload) VALUES (?,?,?,?,?,?,1,?,?,?)",
                [(s.payload["identifier"], datasource, s.start, s.end, s.version, s.partition_num, created, task_id,
                  json.dumps(s.payload)) for s in segments])
            db.execute("UPDATE tasks SET status='SUCCESS', duration=?, error_msg=NULL, report=? WHERE id=?",
                       (duration, json.dumps(report), task_id))
            _pause_for_tests(datasource)

    def get_task(self, task_id):
        with self._read() as db:
            row = db.execute("SELECT * FROM tasks WHERE id=?", (task_id,)).fetchone()
        return _task(row) if row else None

    def list_tasks(self):
        with self._read() as db:
            rows = db.execute("SELECT * FROM tasks ORDER BY created_time DESC").fetchall()
        return [_task(r) for r in rows]

    def fail_running_tasks(self, error_msg, report_error):
        with self._tx() as db:
            rows = db.execute("SELECT id, report FROM tasks WHERE status='RUNNING'").fetchall()
            for row in rows:
                report = json.loads(row["report"]) if row["report"] else None
                if report:
                    status = report["multiStageQuery"]["payload"]["status"]
                    status["status"] = "FAILED"
                    status["errorReport"] = {"taskId": row["id"], "host": "localhost", "error": report_error}
                db.execute("UPDATE tasks SET status='FAILED', error_msg=?, report=? WHERE id=?",
                           (error_msg, json.dumps(report) if report else None, row["id"]))
                # its workers may have been marked SUCCESS just before the publish that never committed
                db.execute("UPDATE tasks SET status='FAILED', error_msg=? WHERE group_id=? AND id<>group_id",
                           (error_msg, row["id"]))
        return [r["id"] for r in rows]

    def used_segments(self, datasource=None):
        with self._read() as db:
            where, args = ("used=1", ()) if datasource is None else ("used=1 AND datasource=?", (datasource,))
            rows = db.execute(f'SELECT start, "end", version, partition_num, payload FROM segments WHERE {where}'
                              " ORDER BY datasource, start, version, partition_num", args).fetchall()
        return [SegmentRecord(r["start"], r["end"], r["version"], r["partition_num"], json.loads(r["payload"]))
                for r in rows]

    def close(self):
        with self._lock, self._readers_lock:
            for db in self._readers:
                db.close()
            self._db.close()

    # --- serving (issue 7) ------------------------------------------------------------------------

    def get_config(self, name):
        with self._read() as db:
            row = db.execute("SELECT payload FROM config WHERE name=?", (name,)).fetchone()
        return json.loads(row["payload"]) if row else None

    def set_config(self, name, value):
        with self._tx() as db:
            db.execute("INSERT INTO config (name, payload) VALUES (?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET payload=excluded.payload", (name, json.dumps(value)))

    def mark_segments_unused(self, datasource, *, interval=None, versions=None, segment_ids=None):
        with self._tx() as db:
            if segment_ids is not None:
                changed = 0
                for sid in segment_ids:
                    changed += db.execute("UPDATE segments SET used=0 WHERE datasource=? AND used=1 AND id=?",
                                          (datasource, sid)).rowcount
                return changed
            start, end = interval
            sql = 'UPDATE segments SET used=0 WHERE datasource=? AND used=1 AND start>=? AND "end"<=?'
            args: list = [datasource, start, end]
            if versions:
                sql += f" AND version IN ({','.join('?' * len(versions))})"
                args += list(versions)
            return db.execute(sql, args).rowcount

    def mark_datasource_unused(self, datasource):
        with self._tx() as db:
            return db.execute("UPDATE segments SET used=0 WHERE datasource=? AND used=1", (datasource,)).rowcount

    def load_specs(self):
        with self._read() as db:
            rows = db.execute("SELECT payload FROM segments").fetchall()
        return [json.loads(r["payload"]).get("loadSpec", {}) for r in rows]

    def unused_segments(self, datasource, interval, versions=None, limit=None):
        sql = 'SELECT start, "end", version, partition_num, payload FROM segments WHERE datasource=? AND used=0' \
              ' AND start>=? AND "end"<=?'
        args: list = [datasource, *interval]
        if versions is not None:
            sql += f" AND version IN ({','.join('?' * len(versions))})"
            args += versions
        sql += " ORDER BY start, version, partition_num"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [SegmentRecord(r["start"], r["end"], r["version"], r["partition_num"], json.loads(r["payload"]))
                for r in rows]

    def delete_segments(self, segment_ids):
        with self._tx() as db:
            db.executemany("DELETE FROM segments WHERE id=? AND used=0", [(sid,) for sid in segment_ids])


def _pause_for_tests(datasource: str) -> None:
    """Tests only: with MSQCORE_TEST_PAUSE_PUBLISH=<datasource>:<file>, a publish to that
    datasource creates <file> inside its open transaction and waits there to be killed."""
    wanted, _, marker = os.environ.get("MSQCORE_TEST_PAUSE_PUBLISH", "").partition(":")
    if wanted and wanted == datasource:
        open(marker, "w").close()
        time.sleep(120)


class _Transaction:
    """Serializes access to the one connection; commits or rolls back as a unit."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.row_factory = sqlite3.Row
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


class _Snapshot:
    """A read transaction: one consistent committed state for the statements inside it."""

    def __init__(self, db: sqlite3.Connection, done: Callable[[sqlite3.Connection], None]):
        self.db = db
        self.done = done  # takes the connection back once the transaction has ended

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("COMMIT")
        self.done(self.db)


def _task(row: Any) -> TaskRecord:
    return TaskRecord(id=row["id"], type=row["type"], datasource=row["datasource"], created_time=row["created_time"],
                      status=row["status"], duration=row["duration"], error_msg=row["error_msg"],
                      payload=json.loads(row["payload"]), report=json.loads(row["report"]) if row["report"] else None,
                      group_id=row["group_id"])
