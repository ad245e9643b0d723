"""The error model.

Two families, as in Druid:

* ``DruidException``: refused requests (bad SQL, bad context, unknown task). They carry
  Druid's ``errorCode``/``persona``/``category`` and map to an HTTP status; the server
  renders them with ``to_json``.
* ``Fault``: why a running MSQ task failed (``Canceled``, ``InsertTimeNull`` ...). They
  render as the report's ``errorReport.error`` object and the status ``errorMsg``.
"""
from __future__ import annotations

from typing import Any


class MsqError(Exception):
    """Root of every error msqcore raises on purpose."""


class SegmentCorruptError(MsqError, ValueError):
    """A segment file failed validation (bad magic, lengths or checksum)."""


# --- DruidException ---------------------------------------------------------------------

_HTTP_BY_CATEGORY = {
    "INVALID_INPUT": 400,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "UNAUTHORIZED": 401,
    "CAPACITY_EXCEEDED": 429,
    "CANCELED": 500,
    "RUNTIME_FAILURE": 500,
    "TIMEOUT": 504,
    "UNSUPPORTED": 501,
    "UNCATEGORIZED": 500,
    "DEFENSIVE": 500,
}


class DruidException(MsqError):
    """A request Druid would refuse, with Druid's error object."""

    error_code = "general"
    persona = "USER"
    category = "UNCATEGORIZED"

    def __init__(self, message: str, *, context: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.context = context or {}

    @property
    def http_status(self) -> int:
        return _HTTP_BY_CATEGORY.get(self.category, 500)

    def to_json(self) -> dict[str, Any]:
        return {
            "error": "druidException",
            "errorCode": self.error_code,
            "persona": self.persona,
            "category": self.category,
            "errorMessage": self.message,
            "context": {k: str(v) for k, v in self.context.items()},
        }


class InvalidInput(DruidException):
    error_code = "invalidInput"
    category = "INVALID_INPUT"


class InvalidSqlInput(InvalidInput):
    """SQL that does not parse: Druid reports the position in ``context``."""

    error_code = "invalidInput"

    def __init__(self, message: str, *, line: int | None = None, col: int | None = None):
        context = {}
        if line is not None:
            context = {"sourceType": "sql", "line": line, "column": col,
                       "endLine": line, "endColumn": col}
        super().__init__(message, context=context)


class Unsupported(DruidException):
    error_code = "general"
    category = "UNSUPPORTED"


class NotFound(DruidException):
    error_code = "notFound"
    category = "NOT_FOUND"


# --- Faults -------------------------------------------------------------------------------


class Fault(MsqError):
    """An MSQ fault: ``errorCode`` plus fault-specific fields."""

    code = "UnknownError"

    def __init__(self, error_message: str | None = None, **fields: Any):
        super().__init__(error_message or self.code)
        self.message = error_message
        self.fields = fields

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"errorCode": self.code}
        out.update(self.fields)
        if self.message is not None:
            out["errorMessage"] = self.message
        return out

    @property
    def error_msg(self) -> str:
        """The task status ``errorMsg``: ``<code>: <message>``, middle-truncated."""
        text = f"{self.code}: {self.message}" if self.message else self.code
        if len(text) > 1024:
            omitted = len(text) - 1024
            text = f"{text[:512]}...{omitted} characters omitted...{text[-512:]}"
        return text

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Fault":
        """Rebuild a fault sent across a process boundary."""
        obj = dict(obj)
        code = obj.pop("errorCode", "UnknownError")
        message = obj.pop("errorMessage", None)
        fault = _FAULTS.get(code, Fault)(message, **obj)
        if fault.code != code:
            fault.code = code
        return fault


class Canceled(Fault):
    code = "Canceled"

    def __init__(self, error_message: str | None = None, *, reason: str = "TASK_SHUTDOWN", **fields):
        label = {"TASK_SHUTDOWN": "Task shutdown", "USER_REQUEST": "User request",
                 "QUERY_TIMEOUT": "Query timeout"}.get(reason, "Unknown")
        super().__init__(error_message or f"Query canceled due to [{label}].", reason=reason, **fields)


class UnknownError(Fault):
    code = "UnknownError"

    def __init__(self, error_message: str | None = None, **fields):
        fields.setdefault("message", error_message)
        super().__init__(error_message, **fields)


class CannotParseExternalData(Fault):
    code = "CannotParseExternalData"


class TooManyWarnings(Fault):
    code = "TooManyWarnings"

    def __init__(self, error_message: str | None = None, *, maxWarnings: int, rootErrorCode: str, **fields):
        super().__init__(
            error_message or f"Too many warnings of type {rootErrorCode} generated (max = {maxWarnings})",
            maxWarnings=maxWarnings, rootErrorCode=rootErrorCode, **fields)


class InsertTimeNull(Fault):
    code = "InsertTimeNull"

    def __init__(self, error_message: str | None = None, **fields):
        super().__init__(error_message or "Null timestamp (__time) encountered during INSERT or REPLACE.", **fields)


class ColumnNameRestricted(Fault):
    code = "ColumnNameRestricted"

    def __init__(self, error_message: str | None = None, *, columnName: str, **fields):
        super().__init__(
            error_message or f"[{columnName}] column name is reserved for MSQ's internal purpose. "
            "Please retry the query after renaming the column.", columnName=columnName, **fields)


class TooManyBuckets(Fault):
    code = "TooManyBuckets"

    def __init__(self, error_message: str | None = None, *, maxBuckets: int = 5000, **fields):
        super().__init__(
            error_message or f"Too many partition buckets (max = {maxBuckets}); try breaking your query "
            "up into smaller queries, or using a larger target size", maxBuckets=maxBuckets, **fields)


class QueryNotSupported(Fault):
    code = "QueryNotSupported"


class WorkerFailed(Fault):
    code = "WorkerFailed"

    def __init__(self, error_message: str | None = None, *, workerTaskId: str, errorMsg: str | None = None, **fields):
        super().__init__(error_message or f"Worker task failed: [{workerTaskId}]" + (f" ({errorMsg})" if errorMsg else ""),
                         workerTaskId=workerTaskId, errorMsg=errorMsg, **fields)


class InsertCannotAllocateSegment(Fault):
    code = "InsertCannotAllocateSegment"

    def __init__(self, error_message: str | None = None, *, dataSource: str, interval: str,
                 allocatedInterval: str | None = None, **fields):
        super().__init__(
            error_message or f"Cannot allocate segment for dataSource [{dataSource}], interval [{interval}]. This can "
            "happen if the prior ingestion uses non-extendable shard specs or if the partitioned by granularity "
            "is different than the granularity of the existing segments in the interval.",
            dataSource=dataSource, interval=interval, allocatedInterval=allocatedInterval, **fields)


_FAULTS = {cls.code: cls for cls in (Canceled, UnknownError, CannotParseExternalData, TooManyWarnings,
                                      InsertTimeNull, ColumnNameRestricted, TooManyBuckets,
                                      QueryNotSupported, WorkerFailed, InsertCannotAllocateSegment)}
