"""Window functions through the task engine: plan shape, INSERT, and TooManyRowsInAWindow.
(Results of SELECTs with windows are the table-driven cases in sql_cases/window.sql.)"""
from __future__ import annotations

import json

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": f"2021-01-0{1 + i % 3}T0{i}:00:00Z", "k": "ab"[i % 2], "n": i} for i in range(8)])
SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'
SRC = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"


def test_select_with_window_plans_a_window_stage(server):
    c = server.client
    task = c.submit(f"SELECT k, n, ROW_NUMBER() OVER (PARTITION BY k ORDER BY n DESC) AS rn FROM {SRC} ORDER BY k, n")
    assert c.wait(task)["statusCode"] == "SUCCESS"
    report = c.report(task)
    assert report["results"]["results"] == [["a", 0, 4], ["a", 2, 3], ["a", 4, 2], ["a", 6, 1],
                                            ["b", 1, 4], ["b", 3, 3], ["b", 5, 2], ["b", 7, 1]]
    stages = report["stages"]
    assert [s["definition"]["processor"]["type"] for s in stages] == ["scan", "window"]
    window = stages[1]["definition"]
    assert window["input"] == [{"type": "stage", "stage": 0}] and window["maxWorkerCount"] == 1
    native = window["processor"]["query"]
    assert native["queryType"] == "windowOperator" and native["dataSource"]["query"]["queryType"] == "scan"
    assert [o["type"] for o in native["operatorDefinition"]] == ["naiveSort", "naivePartition", "window"]
    assert c.get(f"/druid/indexer/v1/task/{task}")["payload"]["spec"]["query"]["queryType"] == "windowOperator"


def test_insert_with_window_functions(server):
    c = server.client
    task = c.submit(f"INSERT INTO win SELECT TIME_PARSE(ts) AS __time, k, n, "
                    f"SUM(n) OVER (PARTITION BY k ORDER BY n) AS running FROM {SRC} PARTITIONED BY DAY")
    assert c.wait(task)["statusCode"] == "SUCCESS", c.status(task)
    rows = c.sql("SELECT k, n, running FROM win ORDER BY k, n")
    assert [r["running"] for r in rows] == [0, 2, 6, 12, 1, 4, 9, 16]
    assert len(c.get("/druid/coordinator/v1/datasources/win/segments")) == 3


def test_too_many_rows_in_a_window(server):
    c = server.client
    task = c.submit(f"SELECT n, SUM(n) OVER () AS total FROM {SRC}", context={"maxRowsMaterializedInWindow": 5})
    status = c.wait(task)
    assert status["statusCode"] == "FAILED"
    error = c.report(task)["status"]["errorReport"]["error"]
    assert error["errorCode"] == "TooManyRowsInAWindow" and error["numRows"] == 8 and error["maxRows"] == 5
    assert error["errorMessage"].startswith("Too many rows in a window (requested = 8, max = 5).")
