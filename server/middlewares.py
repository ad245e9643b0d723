"""Errors as Druid renders them: never a stack trace page."""
from __future__ import annotations

import json
import logging

from aiohttp import web

from msqcore.errors import DruidException, Fault, NotFound

log = logging.getLogger("msqcore.server")


def druid_error(exc: DruidException) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.http_status, dumps=compact)


# Each MSQ fault's ``toDruidException()`` (Druid's MSQFaultToDruidExceptionTest): persona,
# category and, where it differs from the fault's code, the error code. Unlisted: as
# UnknownError.
_FAULT_EXCEPTIONS = {
    "BroadcastTablesTooLarge": ("USER", "CAPACITY_EXCEEDED"),
    "CannotParseExternalData": ("USER", "INVALID_INPUT"),
    "ColumnNameRestricted": ("USER", "INVALID_INPUT", "general"),  # built without withErrorCode
    "ColumnTypeNotSupported": ("USER", "INVALID_INPUT"),
    "DurableStorageConfiguration": ("OPERATOR", "INVALID_INPUT"),
    "InsertCannotAllocateSegment": ("USER", "RUNTIME_FAILURE"),
    "InsertCannotBeEmpty": ("USER", "INVALID_INPUT"),
    "InsertLockPreempted": ("USER", "CONFLICT"),
    "InsertTimeNull": ("USER", "INVALID_INPUT"),
    "InsertTimeOutOfBounds": ("USER", "INVALID_INPUT"),
    "InvalidField": ("DEVELOPER", "INVALID_INPUT"),
    "InvalidNullByte": ("USER", "INVALID_INPUT"),
    "NotEnoughMemory": ("OPERATOR", "CAPACITY_EXCEEDED"),
    "NotEnoughTemporaryStorageFault": ("OPERATOR", "CAPACITY_EXCEEDED"),
    "QueryNotSupported": ("DEVELOPER", "UNSUPPORTED"),
    "QueryRuntimeError": ("DEVELOPER", "RUNTIME_FAILURE"),
    "RowTooLarge": ("USER", "CAPACITY_EXCEEDED"),
    "TaskStartTimeout": ("OPERATOR", "CAPACITY_EXCEEDED"),
    "TooManyAttemptsForJob": ("OPERATOR", "RUNTIME_FAILURE"),
    "TooManyAttemptsForWorker": ("OPERATOR", "RUNTIME_FAILURE"),
    "TooManyBuckets": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyClusteredByColumns": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyColumns": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyInputFiles": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyPartitions": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyRowsInAWindow": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyRowsWithSameKey": ("USER", "CAPACITY_EXCEEDED"),
    "TooManySegmentsInTimeChunk": ("USER", "CAPACITY_EXCEEDED"),
    "TooManyWarnings": ("USER", "RUNTIME_FAILURE"),
    "TooManyWorkers": ("USER", "CAPACITY_EXCEEDED"),
    "UnknownError": ("DEVELOPER", "UNCATEGORIZED"),
    "WorkerFailed": ("OPERATOR", "RUNTIME_FAILURE"),
    "WorkerRpcFailed": ("OPERATOR", "RUNTIME_FAILURE"),
}
_CONFLICT = 409  # a category msqcore's DruidException table does not list


def fault_as_druid_exception(fault: Fault) -> DruidException:
    """A fault raised while answering a request (planning a statement, or a query on the
    SQL endpoint) as Druid's ``MSQFault.toDruidException()``: the fault's persona and
    category, its code as ``errorCode``, ``<code>: <message>`` as the message."""
    fields = fault.to_json()
    if fault.code == "DruidException":  # carries its own code, persona, category and context
        exc = DruidException(fault.message or "", context=fields.get("context") or {})
        exc.error_code = fields["druidErrorCode"]
        exc.persona = fields.get("persona") or "DEVELOPER"
        exc.category = fields.get("category") or "UNCATEGORIZED"
        return exc
    if fault.code == "Canceled":
        persona, category = "USER", "TIMEOUT" if fields.get("reason") == "QUERY_TIMEOUT" else "CANCELED"
        code = fault.code
    else:
        persona, category, *rest = _FAULT_EXCEPTIONS.get(fault.code, _FAULT_EXCEPTIONS["UnknownError"])
        code = rest[0] if rest else fault.code
    exc = DruidException(fault.code_with_message)
    exc.error_code, exc.persona, exc.category = code, persona, category
    return exc


def _fault_response(fault: Fault) -> web.Response:
    exc = fault_as_druid_exception(fault)
    status = _CONFLICT if exc.category == "CONFLICT" else exc.http_status
    return web.json_response(exc.to_json(), status=status, dumps=compact)


def compact(obj) -> str:
    """Jackson's default output: no spaces, UTF-8 kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure gets a Druid-shaped answer
        return error_response(request, exc)


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """Druid's answer to a request that failed with ``exc`` (call it while handling ``exc``)."""
    if isinstance(exc, NotFound):
        if request.path.startswith("/druid/indexer/v1/task/"):
            # Druid's TaskResourceFilter answers unknown ids with a plain-text 404.
            return web.Response(status=404, text=exc.message, content_type="text/plain")
        return druid_error(exc)
    if isinstance(exc, DruidException):
        return druid_error(exc)
    if isinstance(exc, Fault):
        return _fault_response(exc)
    # last resort: a Druid-shaped 500
    log.exception("unexpected error on %s %s", request.method, request.path)
    body = {"error": "druidException", "errorCode": "internalServerError", "persona": "OPERATOR",
            "category": "RUNTIME_FAILURE", "errorMessage": f"{type(exc).__name__}: {exc}", "context": {}}
    return web.json_response(body, status=500, dumps=compact)
