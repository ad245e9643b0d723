"""The async statements API (/druid/v2/sql/statements) against spec §9 and Druid's
SqlStatementResource: submit, status (with detail), paged results, cancel, restart."""
from __future__ import annotations

import json
import time

import pytest

from client import HttpError
from conftest import Server

S = "/druid/v2/sql/statements"
DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T00:00:00Z", "k": "a", "n": 1},
    {"ts": "2021-01-02T00:00:00Z", "k": "b", "n": 2},
    {"ts": "2021-01-02T06:00:00Z", "k": "c", "n": None},
    {"ts": "2021-01-03T00:00:00Z", "k": "d", "n": 4},
    {"ts": "2021-01-03T01:00:00Z", "k": "e", "n": 5},
])
SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'
SRC = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"
ASYNC = {"executionMode": "ASYNC"}
SELECT = "SELECT __time, k, n FROM t ORDER BY __time"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serving_statements") / "var")
    server.start()
    task = server.client.submit(f"INSERT INTO t SELECT TIME_PARSE(ts) AS __time, k, n FROM {SRC} PARTITIONED BY DAY")
    assert server.client.wait(task)["statusCode"] == "SUCCESS"
    yield server
    server.stop()


def submit(srv, query, context=None, **body) -> dict:
    status, _, text = srv.client.request("POST", S, {"query": query, "context": {**ASYNC, **(context or {})}, **body})
    assert status == 200, text
    return json.loads(text)


def wait(srv, query_id, timeout=120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = srv.client.get(f"{S}/{query_id}")
        if status["state"] not in ("ACCEPTED", "RUNNING"):
            return status
        time.sleep(0.1)
    raise TimeoutError(query_id)


def failure(srv, method, path, body=None) -> HttpError:
    with pytest.raises(HttpError) as e:
        srv.client.request(method, path, body)
    return e.value


@pytest.mark.parametrize("context, message", [
    ({}, "Execution mode is not provided to the sql statement api. Please set [executionMode] to [ASYNC] in the "
         "query context"),
    ({"executionMode": "SYNC"}, "The sql statement api currently does not support the provided execution mode "
                                "[SYNC]. Please set [executionMode] to [ASYNC] in the query context"),
    ({"executionMode": "ASYNC", "__resultFormat": "array"}, "Query context parameter [__resultFormat] is not allowed"),
])
def test_context_checks(srv, context, message):
    e = failure(srv, "POST", S, {"query": "SELECT 1", "context": context})
    assert e.status == 400
    assert e.json() == {"error": "druidException", "errorCode": "invalidInput", "persona": "USER",
                        "category": "INVALID_INPUT", "errorMessage": message, "context": {}}


def test_select_statement_lifecycle(srv):
    accepted = submit(srv, SELECT, resultFormat="array")
    query_id = accepted["queryId"]
    assert query_id.startswith("query-") and accepted["state"] in ("ACCEPTED", "RUNNING", "SUCCESS")
    assert list(accepted)[:3] == ["queryId", "state", "createdAt"]
    assert accepted["schema"] == [{"name": "__time", "type": "TIMESTAMP", "nativeType": "LONG"},
                                  {"name": "k", "type": "VARCHAR", "nativeType": "STRING"},
                                  {"name": "n", "type": "BIGINT", "nativeType": "LONG"}]
    done = wait(srv, query_id)
    assert done["state"] == "SUCCESS" and done["durationMs"] > 0
    assert list(done) == ["queryId", "state", "createdAt", "schema", "durationMs", "result"]
    rows = [[1609459200000, "a", 1], [1609545600000, "b", 2], [1609567200000, "c", None],
            [1609632000000, "d", 4], [1609635600000, "e", 5]]
    result = done["result"]
    assert result["numTotalRows"] == 5 and result["dataSource"] == "__query_select"
    assert result["sampleRecords"] == rows
    assert result["pages"] == [{"id": 0, "numRows": 5, "sizeInBytes": result["totalSizeInBytes"]}]
    # results: the body's resultFormat is the default; TIMESTAMP stays native (epoch millis)
    status, headers, text = srv.client.request("GET", f"{S}/{query_id}/results")
    assert text == json.dumps(rows, separators=(",", ":")) + "\n"
    assert headers["Content-Type"].startswith("application/json")
    _, _, text = srv.client.request("GET", f"{S}/{query_id}/results?resultFormat=object&page=0")
    assert json.loads(text)[0] == {"__time": 1609459200000, "k": "a", "n": 1}
    _, headers, text = srv.client.request("GET", f"{S}/{query_id}/results?resultFormat=csv&filename=out.csv")
    assert text.splitlines()[0] == "1609459200000,a,1" and text.endswith("\n\n")
    assert headers["Content-Disposition"] == 'attachment; filename="out.csv"'
    e = failure(srv, "GET", f"{S}/{query_id}/results?page=1")
    assert e.status == 400 and e.json()["errorMessage"] == "Page number [1] is out of the range of results"
    e = failure(srv, "GET", f"{S}/{query_id}/results?page=-1")
    assert e.json()["errorMessage"] == "Page cannot be negative. Please pass a positive number."
    e = failure(srv, "GET", f"{S}/{query_id}/results?filename=a/b")
    assert e.status == 400 and e.json()["errorMessage"].startswith("Filename contains invalid characters.")
    # detail adds the report's stages, counters and warnings
    detail = srv.client.get(f"{S}/{query_id}?detail=true")
    assert [s["phase"] for s in detail["stages"]][-1] == "FINISHED"
    assert "0" in detail["counters"] and detail["warnings"] == []
    # a finished statement: DELETE is a no-op 200
    assert srv.client.request("DELETE", f"{S}/{query_id}")[0] == 200


def test_durable_storage_pages(srv):
    query_id = submit(srv, SELECT, {"selectDestination": "durableStorage", "rowsPerPage": 2})["queryId"]
    done = wait(srv, query_id)
    pages = done["result"]["pages"]
    assert [(p["id"], p["numRows"]) for p in pages] == [(0, 2), (1, 2), (2, 1)]
    assert done["result"]["numTotalRows"] == 5
    assert done["result"]["totalSizeInBytes"] == sum(p["sizeInBytes"] for p in pages)
    got = []
    for p in pages:
        _, _, text = srv.client.request("GET", f"{S}/{query_id}/results?page={p['id']}&resultFormat=arrayLines")
        lines = text.split("\n")
        assert lines[-2:] == ["", ""]
        got += [json.loads(line)[1] for line in lines[:-2]]
    assert got == ["a", "b", "c", "d", "e"]
    _, _, text = srv.client.request("GET", f"{S}/{query_id}/results?resultFormat=array")
    assert [r[1] for r in json.loads(text)] == got
    e = failure(srv, "GET", f"{S}/{query_id}/results?page=3")
    assert e.json()["errorMessage"] == "Invalid page id [3] passed."


def test_ingest_statement(srv):
    accepted = submit(srv, "REPLACE INTO t2 OVERWRITE ALL SELECT __time, k FROM t PARTITIONED BY DAY")
    assert "schema" not in accepted
    done = wait(srv, accepted["queryId"])
    assert done["state"] == "SUCCESS"
    assert done["result"] == {"numTotalRows": 5, "totalSizeInBytes": 0, "dataSource": "t2"}
    status, _, text = srv.client.request("GET", f"{S}/{accepted['queryId']}/results")
    assert (status, text) == (200, "")
    assert srv.client.sql("SELECT COUNT(*) AS c FROM t2") == [{"c": 5}]


def test_failed_statement(srv):
    query_id = submit(srv, "INSERT INTO t3 SELECT TIME_PARSE(k) AS __time, k FROM t PARTITIONED BY DAY")["queryId"]
    done = wait(srv, query_id)
    assert done["state"] == "FAILED"
    assert list(done) == ["queryId", "state", "createdAt", "durationMs", "errorDetails"]
    assert done["errorDetails"] == {"error": "druidException", "errorCode": "InsertTimeNull", "persona": "USER",
                                    "category": "UNCATEGORIZED",
                                    "errorMessage": "Null timestamp (__time) encountered during INSERT or REPLACE.",
                                    "context": {}}
    e = failure(srv, "GET", f"{S}/{query_id}/results")
    assert e.status == 400 and e.json()["errorMessage"] == \
        f"Query[{query_id}] failed. Check the status api for more details."
    assert "stages" in srv.client.get(f"{S}/{query_id}?detail=true")


def test_unknown_statement_is_404(srv):
    message = ("Query [nope] was not found. The query details are no longer present or might not be of the type "
               "[query_controller]. Verify that the id is correct.")
    for method, path in (("GET", f"{S}/nope"), ("GET", f"{S}/nope/results"), ("DELETE", f"{S}/nope")):
        e = failure(srv, method, path)
        assert e.status == 404 and e.json()["errorMessage"] == message and e.json()["errorCode"] == "notFound"
    worker = srv.client.get("/druid/indexer/v1/tasks?type=query_worker")[0]["id"]
    assert failure(srv, "GET", f"{S}/{worker}").status == 404


def test_explain_through_statements(srv):
    status, _, text = srv.client.request("POST", S, {"query": "EXPLAIN PLAN FOR " + SELECT, "context": ASYNC})
    assert status == 200 and json.loads(json.loads(text)[0]["ATTRIBUTES"]) == {"statementType": "SELECT"}


def test_cancel_running_statement_and_restart(tmp_path, files_server):
    base, root = files_server
    rows = "".join(json.dumps({"ts": f"2021-01-01T00:00:{i % 60:02d}Z", "k": f"k{i}"}) + "\n" for i in range(4000))
    (root / "slow.json").write_text(rows)
    server = Server(tmp_path / "var")
    server.start()
    try:
        c = server.client
        sig = '[{"name":"ts","type":"string"},{"name":"k","type":"string"}]'
        slow = (f"TABLE(EXTERN('{{\"type\":\"http\",\"uris\":[\"{base}/slow/slow.json\"]}}', "
                f"'{{\"type\":\"json\"}}', '{sig}'))")
        srv = type("S", (), {"client": c})
        running = submit(srv, f"INSERT INTO s SELECT TIME_PARSE(ts) AS __time, k FROM {slow} PARTITIONED BY DAY")
        query_id = running["queryId"]
        assert c.get(f"{S}/{query_id}")["state"] == "RUNNING"
        e = failure(srv, "GET", f"{S}/{query_id}/results")
        assert e.json()["errorMessage"] == (f"Query[{query_id}] is currently in [RUNNING] state. Please wait for it "
                                            "to complete.")
        assert c.request("DELETE", f"{S}/{query_id}")[0] == 202
        done = wait(srv, query_id)
        assert done["state"] == "FAILED" and done["errorDetails"]["errorCode"] == "Canceled"
        assert done["errorDetails"]["context"] == {"reason": "TASK_SHUTDOWN"}
        ok = submit(srv, "SELECT 1 + 1 AS two")["queryId"]
        assert wait(srv, ok)["state"] == "SUCCESS"
        server.stop()
        server.start()
        # statements and their results live in the metadata store
        assert c.get(f"{S}/{ok}")["result"]["sampleRecords"] == [[2]]
        assert c.request("GET", f"{S}/{ok}/results")[2] == '[{"two":2}]\n'
        assert c.get(f"{S}/{query_id}")["state"] == "FAILED"
    finally:
        server.stop()
