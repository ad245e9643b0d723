"""A fault raised while planning (or answering) a request is answered as Druid's
``MSQFault.toDruidException()``: the fault's code, persona and category, never a 500
``internalServerError``."""
from __future__ import annotations

import pytest

from client import HttpError
from conftest import Server

NOT_SUPPORTED = [
    ("SELECT s FROM w INTERSECT SELECT s FROM w", "INTERSECT is not supported"),
    ("SELECT s FROM w EXCEPT SELECT s FROM w", "EXCEPT is not supported"),
    ("SELECT NTH_VALUE(s, 2) OVER (ORDER BY n) FROM w", "Window function [NTH_VALUE(s, 2)] is not supported"),
    ("SELECT DISTINCT COUNT(*) OVER () FROM w", "SELECT DISTINCT with window functions is not supported"),
]

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("sqlerrors") / "var")
    server.start()
    task = server.client.submit("REPLACE INTO w OVERWRITE ALL SELECT TIMESTAMP '2021-01-01' AS __time, 'a' AS s, "
                                "1 AS n PARTITIONED BY DAY")
    assert server.client.wait(task)["statusCode"] == "SUCCESS"
    yield server
    server.stop()


def _error(client, path: str, body: dict) -> tuple[int, dict]:
    with pytest.raises(HttpError) as e:
        client.request("POST", path, body)
    assert e.value.content_type.startswith("application/json")
    return e.value.status, e.value.json()


@pytest.mark.parametrize("sql, message", NOT_SUPPORTED)
def test_query_not_supported_on_the_sql_endpoint(srv, sql, message):
    status, body = _error(srv.client, "/druid/v2/sql", {"query": sql})
    # QueryNotSupportedFault.toDruidException(): DEVELOPER, UNSUPPORTED (HTTP 501)
    assert status == 501
    assert body == {"error": "druidException", "errorCode": "QueryNotSupported", "persona": "DEVELOPER",
                    "category": "UNSUPPORTED", "errorMessage": f"QueryNotSupported: {message}", "context": {}}


@pytest.mark.parametrize("path, context", [("/druid/v2/sql/task", {}),
                                           ("/druid/v2/sql/statements", {"executionMode": "ASYNC"})])
def test_query_not_supported_when_submitting(srv, path, context):
    sql, message = NOT_SUPPORTED[0]
    status, body = _error(srv.client, path, {"query": sql, "context": context})
    assert status == 501 and body["errorCode"] == "QueryNotSupported" and body["category"] == "UNSUPPORTED"
    assert body["errorMessage"] == f"QueryNotSupported: {message}"


def test_planner_refusals_that_are_druid_exceptions_keep_their_shape(srv):
    status, body = _error(srv.client, "/druid/v2/sql", {"query": "SELECT s FROM w UNION SELECT s FROM w"})
    assert status == 400 and body["category"] == "INVALID_INPUT"
    assert body["errorMessage"].startswith("Query could not be planned.")


def test_fault_mapping_follows_druid():
    """The table against Druid's MSQFaultToDruidExceptionTest."""
    from msqcore import errors
    from server.middlewares import fault_as_druid_exception
    cases = [
        (errors.Canceled(reason="QUERY_TIMEOUT"), "Canceled", "USER", "TIMEOUT", 504),
        (errors.Canceled(reason="USER_REQUEST"), "Canceled", "USER", "CANCELED", 500),
        (errors.CannotParseExternalData("the message"), "CannotParseExternalData", "USER", "INVALID_INPUT", 400),
        (errors.ColumnNameRestricted(columnName="__bucket"), "general", "USER", "INVALID_INPUT", 400),
        (errors.NotEnoughMemory(suggestedServerMemory=1234, serverMemory=1000, usableMemory=1000,
                                serverWorkers=900, serverThreads=1, inputWorkers=2, maxConcurrentStages=2),
         "NotEnoughMemory", "OPERATOR", "CAPACITY_EXCEEDED", 429),
        (errors.QueryRuntime("new error", baseErrorMessage="base error"), "QueryRuntimeError", "DEVELOPER",
         "RUNTIME_FAILURE", 500),
        (errors.TooManyWarnings(maxWarnings=10, rootErrorCode="x"), "TooManyWarnings", "USER", "RUNTIME_FAILURE", 500),
        (errors.UnknownError("the message"), "UnknownError", "DEVELOPER", "UNCATEGORIZED", 500),
        (errors.WorkerFailed(workerTaskId="t", errorMsg="m"), "WorkerFailed", "OPERATOR", "RUNTIME_FAILURE", 500),
    ]
    for fault, code, persona, category, status in cases:
        exc = fault_as_druid_exception(fault)
        assert (exc.error_code, exc.persona, exc.category, exc.http_status) == (code, persona, category, status)
        assert exc.message == fault.code_with_message
    exc = fault_as_druid_exception(errors.DruidExceptionFault("test message", druidErrorCode="custom",
                                                              persona="USER", category="RUNTIME_FAILURE",
                                                              context={"key": "value"}))
    assert exc.to_json() == {"error": "druidException", "errorCode": "custom", "persona": "USER",
                             "category": "RUNTIME_FAILURE", "errorMessage": "test message",
                             "context": {"key": "value"}}
