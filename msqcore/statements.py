"""The asynchronous SQL statements API (``/druid/v2/sql/statements``, Druid 27+).

A statement is an MSQ task (``Cluster.submit_task``); its id is the task id. Its state,
schema, result summary and rows come from the task's status, payload and report, which
live in the metadata store, so statements and their results survive a restart. Shapes and
messages follow Druid's ``SqlStatementResource`` and ``SqlStatementResourceHelper`` (spec §9):

* ``executionMode: ASYNC`` is required in the context; ``__resultFormat`` may not be set by
  the caller (the API stores the body's ``resultFormat`` under it as the default format of
  ``/results``).
* ``selectDestination: durableStorage`` pages the results, ``rowsPerPage`` rows a page
  (default 100,000); otherwise the results are one page. ``sampleRecords`` holds at most
  3,000 rows for durable storage, as Druid's report does.
"""
from __future__ import annotations

import json
from typing import Any

from msqcore.errors import DruidException, InvalidInput, NotFound

RESULT_FORMAT_KEY = "__resultFormat"
RESULT_FORMATS = ("object", "array", "objectLines", "arrayLines", "csv")
DEFAULT_ROWS_PER_PAGE = 100_000
MAX_SAMPLE_ROWS = 3000
_FILENAME_BAD = set('/\\:*?"<>|\0\n\r')


class StatementError(DruidException):
    """A DruidException built with an explicit persona/category (``DruidException.forPersona``)."""

    def __init__(self, message: str, *, code: str = "general", persona: str = "USER",
                 category: str = "INVALID_INPUT", context: dict | None = None):
        super().__init__(message, context=context)
        self.error_code = code
        self.persona = persona
        self.category = category


def not_found(query_id: str) -> NotFound:
    return NotFound(f"Query [{query_id}] was not found. The query details are no longer present or might not be "
                    f"of the type [query_controller]. Verify that the id is correct.")


def check_context(context: Any) -> dict:
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise InvalidInput("Query context must be a JSON object")
    if RESULT_FORMAT_KEY in context:
        raise InvalidInput(f"Query context parameter [{RESULT_FORMAT_KEY}] is not allowed")
    mode = context.get("executionMode")
    if mode is None:
        raise InvalidInput("Execution mode is not provided to the sql statement api. Please set [executionMode] to "
                           "[ASYNC] in the query context")
    if str(mode).upper() != "ASYNC":
        raise InvalidInput(f"The sql statement api currently does not support the provided execution mode "
                           f"[{str(mode).upper()}]. Please set [executionMode] to [ASYNC] in the query context")
    destination = context.get("selectDestination")
    if destination is not None and str(destination).lower() not in ("taskreport", "durablestorage"):
        raise InvalidInput(f"Unsupported value [{destination}] for [selectDestination]; expected one of "
                           "[taskReport, durableStorage]")
    return context


def submit(cluster, query: str, context: dict, parameters, result_format: str) -> dict:
    """Start the statement; return its status object (state ``RUNNING`` or already done)."""
    ctx = dict(check_context(context))
    ctx[RESULT_FORMAT_KEY] = result_format
    task_id = cluster.submit_task(query, ctx, parameters)
    return status(cluster, task_id, detail=False)


# --- reading a statement back -------------------------------------------------------------------------

def _controller(cluster, query_id: str):
    record = cluster.metadata.get_task(query_id)
    if record is None or record.type != "query_controller":
        raise not_found(query_id)
    return record


def _state(task_status: dict) -> str:
    code = task_status["statusCode"]
    if code == "RUNNING":
        return "RUNNING" if task_status.get("location", {}).get("host") else "ACCEPTED"
    return code  # SUCCESS | FAILED


def _is_ingest(payload: dict) -> bool:
    return payload["spec"]["destination"]["type"] == "dataSource"


def _schema(payload: dict) -> list[dict] | None:
    if _is_ingest(payload):
        return None
    names = [m["outputColumn"] for m in payload["spec"]["columnMappings"]]
    return [{"name": n, "type": t, "nativeType": nt}
            for n, t, nt in zip(names, payload["sqlTypeNames"], payload["nativeTypeNames"])]


def _context(payload: dict) -> dict:
    return payload.get("sqlQueryContext") or {}


def _durable(payload: dict) -> bool:
    return str(_context(payload).get("selectDestination", "")).lower() == "durablestorage"


def _rows_per_page(payload: dict) -> int:
    try:
        n = int(_context(payload).get("rowsPerPage", DEFAULT_ROWS_PER_PAGE))
    except (TypeError, ValueError):
        n = DEFAULT_ROWS_PER_PAGE
    return max(1, n)


def _payload_of(report: dict | None) -> dict | None:
    if not report:
        return None
    return report.get("multiStageQuery", {}).get("payload")


def _final_stage_counters(msq: dict) -> dict:
    stages = msq.get("stages") or []
    if not stages:
        return {}
    return (msq.get("counters") or {}).get(str(stages[-1]["stageNumber"]), {})


def _row_bytes(rows: list) -> int:
    return len(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()) if rows else 0


def pages(payload: dict, msq: dict) -> list[dict]:
    """Druid's page list (with the row range each page covers, under ``_rows``)."""
    results = (msq.get("results") or {}).get("results") or []
    if _durable(payload):
        size = _rows_per_page(payload)
        out = []
        for i, start in enumerate(range(0, len(results), size)):
            chunk = results[start:start + size]
            out.append({"id": i, "numRows": len(chunk), "sizeInBytes": _row_bytes(chunk),
                        "_rows": (start, start + len(chunk))})
        return out
    rows, size = 0, 0
    counted = False
    for worker in _final_stage_counters(msq).values():
        output = worker.get("output")
        if output:
            counted = True
            rows += sum(output.get("rows", []))
            size += sum(output.get("bytes", []))
    if not counted or rows != len(results):
        rows, size = len(results), _row_bytes(results)
    return [{"id": 0, "numRows": rows, "sizeInBytes": size, "_rows": (0, len(results))}]


def _public(page: dict) -> dict:
    return {k: v for k, v in page.items() if not k.startswith("_")}


def _result_info(record, msq: dict | None) -> dict | None:
    payload = record.payload
    if msq is None:
        return None
    if _is_ingest(payload):
        rows = 0
        for worker in _final_stage_counters(msq).values():
            rows += (worker.get("segmentGenerationProgress") or {}).get("rowsPushed", 0)
        return {"numTotalRows": rows, "totalSizeInBytes": 0, "dataSource": payload["dataSource"]}
    page_list = pages(payload, msq)
    results = (msq.get("results") or {}).get("results") or []
    sample = results[:MAX_SAMPLE_ROWS] if _durable(payload) else results
    return {"numTotalRows": sum(p["numRows"] for p in page_list),
            "totalSizeInBytes": sum(p["sizeInBytes"] for p in page_list),
            "dataSource": payload["dataSource"], "sampleRecords": sample,
            "pages": [_public(p) for p in page_list]}


def _string_value(value) -> str:
    from msqcore.lookups import _java_map
    return _java_map(value)


def _error_details(task_status: dict, msq: dict | None) -> dict:
    error = ((msq or {}).get("status") or {}).get("errorReport", {}).get("error")
    if not error:
        return StatementError(str(task_status.get("errorMsg")), persona="DEVELOPER",
                              category="UNCATEGORIZED").to_json()
    message = error.get("errorMessage")
    if message is None:
        message = task_status.get("errorMsg")
    context = {k: _string_value(v) for k, v in error.items() if k not in ("errorCode", "errorMessage")}
    return StatementError(message, code=error.get("errorCode") or "unknown", persona="USER",
                          category="UNCATEGORIZED", context=context).to_json()


def status(cluster, query_id: str, detail: bool = False) -> dict:
    record = _controller(cluster, query_id)
    task_status = cluster.task_status(query_id)["status"]
    state = _state(task_status)
    msq = None
    if detail or state in ("FAILED", "SUCCESS"):
        try:
            msq = _payload_of(cluster.task_report(query_id))
        except NotFound:
            msq = None
    out: dict = {"queryId": query_id, "state": state, "createdAt": task_status["createdTime"]}
    if state == "FAILED":
        out["durationMs"] = task_status["duration"]
        out["errorDetails"] = _error_details(task_status, msq)
    else:
        schema = _schema(record.payload)
        if schema is not None:
            out["schema"] = schema
        out["durationMs"] = task_status["duration"]
        if state == "SUCCESS":
            info = _result_info(record, msq)
            if info is not None:
                out["result"] = info
    if detail and msq is not None:
        out["stages"] = msq.get("stages")
        out["counters"] = msq.get("counters")
        out["warnings"] = list((msq.get("status") or {}).get("warnings", []))
    return out


def results(cluster, query_id: str, page: int | None, result_format: str | None
            ) -> tuple[list[dict], list[list], str] | None:
    """(schema, rows, format) of a finished SELECT statement, or None for an ingestion."""
    if page is not None and page < 0:
        raise StatementError("Page cannot be negative. Please pass a positive number.")
    record = _controller(cluster, query_id)
    task_status = cluster.task_status(query_id)["status"]
    state = _state(task_status)
    if state in ("RUNNING", "ACCEPTED"):
        raise StatementError(f"Query[{query_id}] is currently in [{state}] state. Please wait for it to complete.")
    if state == "FAILED":
        raise StatementError(f"Query[{query_id}] failed. Check the status api for more details.")
    payload = record.payload
    schema = _schema(payload)
    if schema is None:
        return None
    fmt = result_format if result_format is not None else _context(payload).get(RESULT_FORMAT_KEY) or "object"
    if fmt not in RESULT_FORMATS:
        raise InvalidInput(f"Invalid value [{fmt}] for [resultFormat]; expected one of "
                           f"[{', '.join(RESULT_FORMATS)}]")
    msq = _payload_of(cluster.task_report(query_id)) or {}
    rows = (msq.get("results") or {}).get("results") or []
    if _durable(payload):
        page_list = pages(payload, msq)
        if page is not None:
            chosen = next((p for p in page_list if p["id"] == page), None)
            if chosen is None:
                raise InvalidInput(f"Invalid page id [{page}] passed.")
            start, end = chosen["_rows"]
            rows = rows[start:end]
    elif page is not None and page > 0:
        raise InvalidInput(f"Page number [{page}] is out of the range of results")
    return schema, rows, fmt


def cancel(cluster, query_id: str) -> bool:
    """True (202) if a running statement was asked to stop, False (200) if it had already ended."""
    _controller(cluster, query_id)
    state = _state(cluster.task_status(query_id)["status"])
    if state in ("RUNNING", "ACCEPTED"):
        cluster.shutdown_task(query_id)
        return True
    return False


def validate_filename(filename: str) -> str:
    if not filename:
        raise InvalidInput("Filename cannot be empty.")
    if len(filename) > 255:
        raise InvalidInput("Filename cannot be longer than 255 characters.")
    if any(c in _FILENAME_BAD for c in filename):
        raise InvalidInput("Filename contains invalid characters. (/, \\, :, *, ?, \", <, >, |, \0, \n, or \r)")
    return filename
