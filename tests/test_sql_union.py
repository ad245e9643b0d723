"""UNION ALL in MSQ tasks: a union datasource in INSERT, REPLACE and SELECT, and Druid's
refusals, over real HTTP. (SELECT shapes on the SQL endpoint: tests/sql_cases/union.sql.)"""
from __future__ import annotations

import json

import pytest

from client import HttpError
from conftest import Server

SIG = [{"name": "ts", "type": "string"}, {"name": "k", "type": "string"}, {"name": "n", "type": "long"}]


def extern(rows: list[tuple]) -> str:
    data = "".join(json.dumps({"ts": t, "k": k, "n": n}) + "\n" for t, k, n in rows)
    source = json.dumps({"type": "inline", "data": data})
    return f"TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{json.dumps(SIG)}'))"


A = [("2021-01-01T01:00:00Z", "x", 1), ("2021-01-02T01:00:00Z", "y", 2), ("2021-01-02T02:00:00Z", None, None)]
B = [("2021-01-01T05:00:00Z", "x", 10), ("2021-01-03T00:00:00Z", "z", 20)]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("union") / "var")
    server.start()
    try:
        for name, rows in (("ua", A), ("ub", B)):
            task = server.client.submit(f"INSERT INTO {name} SELECT TIME_PARSE(ts) AS __time, k, n "
                                        f"FROM {extern(rows)} PARTITIONED BY DAY")
            assert server.client.wait(task)["statusCode"] == "SUCCESS"
        yield server
    finally:
        server.stop()


def refusal(client, sql: str, context: dict | None = None) -> dict:
    with pytest.raises(HttpError) as info:
        client.submit(sql, context)
    assert info.value.status == 400, info.value.body
    return info.value.json()


def test_insert_union_of_tables(srv):
    c = srv.client
    task = c.submit("INSERT INTO uu SELECT __time, k, n FROM ua UNION ALL SELECT __time, k, n FROM ub "
                    "PARTITIONED BY DAY CLUSTERED BY k")
    assert c.wait(task)["statusCode"] == "SUCCESS"
    payload = c.get(f"/druid/indexer/v1/task/{task}")["payload"]
    assert payload["spec"]["query"]["dataSource"] == {
        "type": "union", "dataSources": [{"type": "table", "name": "ua"}, {"type": "table", "name": "ub"}]}
    stage0 = c.report(task)["stages"][0]["definition"]
    assert [i["dataSource"] for i in stage0["input"]] == ["ua", "ub"]
    assert stage0["processor"]["query"]["dataSource"] == {
        "type": "union", "dataSources": [{"type": "inputNumber", "inputNumber": 0},
                                         {"type": "inputNumber", "inputNumber": 1}]}
    assert c.sql("SELECT __time, k, n FROM uu ORDER BY __time") == [
        {"__time": "2021-01-01T01:00:00.000Z", "k": "x", "n": 1},
        {"__time": "2021-01-01T05:00:00.000Z", "k": "x", "n": 10},
        {"__time": "2021-01-02T01:00:00.000Z", "k": "y", "n": 2},
        {"__time": "2021-01-02T02:00:00.000Z", "k": None, "n": None},
        {"__time": "2021-01-03T00:00:00.000Z", "k": "z", "n": 20}]


def test_replace_group_by_over_union(srv):
    c = srv.client
    task = c.submit("REPLACE INTO ug OVERWRITE ALL SELECT FLOOR(__time TO DAY) AS __time, k, COUNT(*) AS cnt, "
                    "SUM(n) AS total FROM (SELECT __time, k, n FROM ua UNION ALL SELECT __time, k, n FROM ub "
                    "UNION ALL SELECT __time, k, n FROM ua) GROUP BY 1, 2 PARTITIONED BY MONTH", {"maxNumTasks": 3})
    assert c.wait(task)["statusCode"] == "SUCCESS"
    stage0 = c.report(task)["stages"][0]["definition"]
    assert [i["dataSource"] for i in stage0["input"]] == ["ua", "ub", "ua"]
    assert c.sql("SELECT __time, k, cnt, total FROM ug ORDER BY __time, k") == [
        {"__time": "2021-01-01T00:00:00.000Z", "k": "x", "cnt": 3, "total": 12},
        {"__time": "2021-01-02T00:00:00.000Z", "k": None, "cnt": 2, "total": None},
        {"__time": "2021-01-02T00:00:00.000Z", "k": "y", "cnt": 2, "total": 4},
        {"__time": "2021-01-03T00:00:00.000Z", "k": "z", "cnt": 1, "total": 20}]


def test_select_task_over_union(srv):
    c = srv.client
    task = c.submit("SELECT k, n FROM ua UNION ALL SELECT k, n FROM ub ORDER BY n DESC LIMIT 2")
    assert c.wait(task)["statusCode"] == "SUCCESS"
    assert c.report(task)["results"]["results"] == [["z", 20], ["x", 10]]


@pytest.mark.parametrize("sql, reason", [
    # top-level UNION ALL of anything but plain table scans: MSQ lacks ALLOW_TOP_LEVEL_UNION_ALL
    ("SELECT k FROM ua WHERE n > 1 UNION ALL SELECT k FROM ub",
     "SQL requires union between inputs that are not simple table scans and involve a filter or aliasing. Or "
     "column types of tables being unioned are not of same type."),
    ("INSERT INTO uu SELECT __time, k FROM ua UNION ALL SELECT __time, UPPER(k) AS k FROM ub PARTITIONED BY DAY",
     "SQL requires union between inputs that are not simple table scans and involve a filter or aliasing. Or "
     "column types of tables being unioned are not of same type."),
    ("SELECT k FROM ua UNION SELECT k FROM ub", "SQL requires 'UNION' but only 'UNION ALL' is supported."),
    (f"INSERT INTO uu SELECT TIME_PARSE(ts) AS __time, k FROM {extern(A)} UNION ALL "
     f"SELECT TIME_PARSE(ts) AS __time, k FROM {extern(B)} PARTITIONED BY DAY",
     "SQL requires union with input of a datasource type that is not supported. Union operation is only "
     "supported between regular tables. "),
])
def test_union_refusals(srv, sql, reason):
    body = refusal(srv.client, sql)
    assert (body["errorCode"], body["persona"], body["category"]) == ("general", "ADMIN", "INVALID_INPUT")
    assert body["errorMessage"] == f"Query could not be planned. A possible reason is [{reason}]"


def test_insert_union_keeps_ingest_validation(srv):
    body = refusal(srv.client, "INSERT INTO uu SELECT __time, k FROM ua UNION ALL SELECT __time, k FROM ub "
                               "ORDER BY k PARTITIONED BY DAY")
    assert body["errorMessage"] == "Cannot use an ORDER BY clause on a Query of type [INSERT], use CLUSTERED BY " \
                                   "instead"
