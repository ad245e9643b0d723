"""Running SQL queries on the Broker side: cancel, timeout, and the errors Druid gives for them.

Druid identifies a running SQL query by its ``sqlQueryId``; ``DELETE /druid/v2/sql/{id}``
cancels every running query with that id, and the ``timeout`` context key (milliseconds)
bounds a query's run time. ``RunningQueries`` is that registry. The query's thread calls
``QueryHandle.check()`` at its checkpoints (before each segment it reads), which raises
``QueryCanceled`` or ``QueryTimeout``; the HTTP handler also stops waiting at the deadline so
the client gets its answer on time even while a checkpoint is far away.
"""
from __future__ import annotations

import threading
import time

from msqcore.errors import DruidException

TIMEOUT_MESSAGE = ("Query did not complete within configured timeout period. You can increase query timeout or tune "
                   "the performance of query.")


class LegacyQueryException(DruidException):
    """A ``QueryException`` as Druid's ``ErrorResponse`` renders it through ``QueryExceptionCompat``:
    the legacy ``error``/``errorClass``/``host`` fields first, then the DruidException fields."""

    error_code = "legacyQueryException"
    persona = "OPERATOR"
    legacy_code = ""
    error_class = ""

    def __init__(self, message: str, host: str | None = None):
        super().__init__(message)
        self.host = host

    def to_json(self) -> dict:
        return {"error": self.legacy_code, "errorClass": self.error_class, "host": self.host,
                "errorCode": self.error_code, "persona": self.persona, "category": self.category,
                "errorMessage": self.message,
                "context": {"host": self.host, "errorClass": self.error_class, "legacyErrorCode": self.legacy_code}}


class QueryTimeout(LegacyQueryException):
    category = "TIMEOUT"  # HTTP 504
    legacy_code = "Query timeout"
    error_class = "org.apache.druid.query.QueryTimeoutException"

    def __init__(self, host: str | None = None):
        super().__init__(TIMEOUT_MESSAGE, host)


class QueryCanceled(LegacyQueryException):
    category = "CANCELED"
    legacy_code = "Query cancelled"
    error_class = "org.apache.druid.query.QueryInterruptedException"

    def __init__(self, query_id: str, host: str | None = None):
        super().__init__(f"Query [{query_id}] was cancelled.", host)


class QueryUnknownException(LegacyQueryException):
    """A failure while a query runs that Druid's Broker reports as ``Unknown exception``
    (for example an ``ISE`` of an aggregator); ``error_class`` is the Java exception class."""

    category = "RUNTIME_FAILURE"
    legacy_code = "Unknown exception"

    def __init__(self, message: str, error_class: str = "org.apache.druid.java.util.common.ISE",
                 host: str | None = None):
        super().__init__(message, host)
        self.error_class = error_class


class QueryHandle:
    """One running SQL query: its id, cancel flag and deadline."""

    def __init__(self, query_id: str, timeout_ms: int | None, host: str | None):
        self.query_id = query_id
        self.host = host
        self.canceled = threading.Event()
        self.deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms else None

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        if self.canceled.is_set():
            raise QueryCanceled(self.query_id, self.host)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise QueryTimeout(self.host)


def timeout_ms(context: dict) -> int | None:
    """The ``timeout`` context value in milliseconds; 0 or absent means none."""
    from msqcore.errors import InvalidInput
    value = context.get("timeout")
    if value in (None, ""):
        return None
    try:
        ms = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"Expected key [timeout] to be a number, but got [{value}]") from None
    if ms < 0:
        raise InvalidInput("Timeout must be a non negative value, but was " + str(ms))
    return ms or None


class RunningQueries:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_id: dict[str, list[QueryHandle]] = {}
        self.local = threading.local()  # the handle of the query this thread runs

    def begin(self, query_id: str, timeout: int | None, host: str | None = None) -> QueryHandle:
        handle = QueryHandle(query_id, timeout, host)
        with self._lock:
            self._by_id.setdefault(query_id, []).append(handle)
        return handle

    def end(self, handle: QueryHandle) -> None:
        with self._lock:
            handles = self._by_id.get(handle.query_id, [])
            if handle in handles:
                handles.remove(handle)
            if not handles:
                self._by_id.pop(handle.query_id, None)

    def find(self, query_id: str) -> QueryHandle | None:
        with self._lock:
            handles = self._by_id.get(query_id)
            return handles[-1] if handles else None

    def cancel(self, query_id: str) -> bool:
        """Cancel every running query with this id; False if there is none."""
        with self._lock:
            handles = list(self._by_id.get(query_id, []))
        for h in handles:
            h.canceled.set()
        return bool(handles)


class ServingState:
    """What the serving side of a ``Cluster`` keeps: running SQL queries and the lookup store."""

    def __init__(self, cluster):
        from msqcore.lookups import LookupStore
        self.queries = RunningQueries()
        self.lookups = LookupStore(cluster.metadata)
