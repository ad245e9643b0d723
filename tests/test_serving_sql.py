"""POST /druid/v2/sql at Druid's contract: formats byte for byte, headers, context keys, errors,
EXPLAIN and the query-id routes, against one real server."""
from __future__ import annotations

import json
import urllib.parse

import pytest

from client import HttpError
from conftest import Server

ROWS = [
    {"ts": "2021-01-01T00:00:00Z", "k": "a", "n": 1, "x": 1.5},
    {"ts": "2021-01-02T12:00:00Z", "k": "b,c", "n": None, "x": None},
    {"ts": "2021-01-03T05:00:00Z", "k": "a", "n": 3, "x": 2.5},
    {"ts": "2021-01-03T06:00:00Z", "k": "é\"q", "n": 4, "x": 0.25},
]
SIG = ('[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"},'
       '{"name":"x","type":"double"}]')


def extern(rows) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    return f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': data})}', '{{\"type\":\"json\"}}', '{SIG}'))"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serving_sql") / "var")
    server.start()
    c = server.client
    task = c.submit(f"INSERT INTO d SELECT TIME_PARSE(ts) AS __time, k, n, x FROM {extern(ROWS)} PARTITIONED BY DAY")
    assert c.wait(task)["statusCode"] == "SUCCESS"
    yield server
    server.stop()


def post(srv, body, content_type="application/json"):
    return srv.client.request("POST", "/druid/v2/sql", body, content_type=content_type)


def error(srv, body, content_type="application/json") -> HttpError:
    with pytest.raises(HttpError) as e:
        post(srv, body, content_type)
    return e.value


Q = "SELECT __time, k, n FROM d WHERE __time < TIMESTAMP '2021-01-03' ORDER BY __time"


@pytest.mark.parametrize("fmt, expected, content_type", [
    ("object", '[{"__time":"2021-01-01T00:00:00.000Z","k":"a","n":1},'
               '{"__time":"2021-01-02T12:00:00.000Z","k":"b,c","n":null}]\n', "application/json"),
    ("array", '[["2021-01-01T00:00:00.000Z","a",1],["2021-01-02T12:00:00.000Z","b,c",null]]\n', "application/json"),
    ("objectLines", '{"__time":"2021-01-01T00:00:00.000Z","k":"a","n":1}\n'
                    '{"__time":"2021-01-02T12:00:00.000Z","k":"b,c","n":null}\n\n', "text/plain"),
    ("arrayLines", '["2021-01-01T00:00:00.000Z","a",1]\n["2021-01-02T12:00:00.000Z","b,c",null]\n\n', "text/plain"),
    ("csv", '2021-01-01T00:00:00.000Z,a,1\n2021-01-02T12:00:00.000Z,"b,c",\n\n', "text/csv"),
])
def test_result_formats_byte_for_byte(srv, fmt, expected, content_type):
    status, headers, text = post(srv, {"query": Q, "resultFormat": fmt})
    assert status == 200 and text == expected
    assert headers["Content-Type"].startswith(content_type)
    assert "X-Druid-SQL-Header-Included" not in headers


@pytest.mark.parametrize("fmt", ["object", "array", "objectLines", "arrayLines", "csv"])
def test_headers_on_empty_results(srv, fmt):
    body = {"query": "SELECT k, n FROM d WHERE k = 'none'", "resultFormat": fmt, "header": True,
            "typesHeader": True, "sqlTypesHeader": True}
    status, headers, text = post(srv, body)
    assert headers["X-Druid-SQL-Header-Included"] == "yes"
    assert text == {
        "object": '[{"k":{"type":"STRING","sqlType":"VARCHAR"},"n":{"type":"LONG","sqlType":"BIGINT"}}]\n',
        "array": '[["k","n"],["STRING","LONG"],["VARCHAR","BIGINT"]]\n',
        "objectLines": '{"k":{"type":"STRING","sqlType":"VARCHAR"},"n":{"type":"LONG","sqlType":"BIGINT"}}\n\n',
        "arrayLines": '["k","n"]\n["STRING","LONG"]\n["VARCHAR","BIGINT"]\n\n',
        "csv": "k,n\nSTRING,LONG\nVARCHAR,BIGINT\n\n",
    }[fmt]


def test_object_header_variants(srv):
    def head(**flags):
        return json.loads(post(srv, {"query": "SELECT k FROM d LIMIT 1", "header": True, **flags})[2])[0]
    assert head() == {"k": None}
    assert head(typesHeader=True) == {"k": {"type": "STRING"}}
    assert head(sqlTypesHeader=True) == {"k": {"sqlType": "VARCHAR"}}


def test_unicode_and_quotes_are_written_as_jackson_does(srv):
    _, _, text = post(srv, {"query": "SELECT k FROM d WHERE n = 4"})
    assert text == '[{"k":"é\\"q"}]\n'
    _, _, text = post(srv, {"query": "SELECT k FROM d WHERE n = 4", "resultFormat": "csv"})
    assert text == 'é"q\n\n'.replace('é"q', '"é""q"')


def test_plain_text_and_form_bodies(srv):
    status, headers, text = post(srv, "SELECT COUNT(*) AS c FROM d", content_type="text/plain")
    assert json.loads(text) == [{"c": 4}] and headers["Content-Type"].startswith("application/json")
    encoded = urllib.parse.quote_plus("SELECT SUM(n) AS s FROM d WHERE k = 'a'")
    _, _, text = post(srv, encoded, content_type="application/x-www-form-urlencoded")
    assert json.loads(text) == [{"s": 4}]


def test_parameters(srv):
    rows = srv.client.sql("SELECT k, n FROM d WHERE n > ? AND k <> ? ORDER BY n",
                          parameters=[{"type": "BIGINT", "value": 1}, {"type": "VARCHAR", "value": "zz"}])
    assert rows == [{"k": "a", "n": 3}, {"k": 'é"q', "n": 4}]


def test_query_id_header_and_context(srv):
    _, headers, _ = post(srv, {"query": "SELECT 1 AS one", "context": {"sqlQueryId": "my-query-1"}})
    assert headers["X-Druid-SQL-Query-Id"] == "my-query-1"
    _, headers, _ = post(srv, {"query": "SELECT 1 AS one"})
    assert len(headers["X-Druid-SQL-Query-Id"]) == 36  # a generated UUID
    # keys Druid's clients send are accepted
    rows = srv.client.sql("SELECT COUNT(DISTINCT k) AS c FROM d",
                          context={"useApproximateCountDistinct": False, "sqlStringifyArrays": False, "timeout": 60000})
    assert rows == [{"c": 3}]


def test_sql_time_zone_renders_timestamps(srv):
    rows = srv.client.sql("SELECT __time FROM d ORDER BY __time LIMIT 2",
                          context={"sqlTimeZone": "America/Los_Angeles"})
    assert rows == [{"__time": "2020-12-31T16:00:00.000-08:00"}, {"__time": "2021-01-02T04:00:00.000-08:00"}]
    rows = srv.client.sql("SELECT __time FROM d ORDER BY __time LIMIT 1", context={"sqlTimeZone": "+05:30"})
    assert rows == [{"__time": "2021-01-01T05:30:00.000+05:30"}]
    rows = srv.client.sql("SELECT __time FROM d ORDER BY __time LIMIT 1", context={"sqlTimeZone": "Europe/London"})
    assert rows == [{"__time": "2021-01-01T00:00:00.000Z"}]
    # SET statements before the query win over the request context, for rendering too
    rows = srv.client.sql("SET sqlTimeZone = 'Asia/Tokyo'; SELECT __time FROM d ORDER BY __time LIMIT 1",
                          context={"sqlTimeZone": "America/Los_Angeles"})
    assert rows == [{"__time": "2021-01-01T09:00:00.000+09:00"}]
    e = error(srv, {"query": "SELECT 1", "context": {"sqlTimeZone": "Mars/Olympus"}})
    assert e.status == 400 and "Mars/Olympus" in e.json()["errorMessage"]


def test_timeout_answers_504(srv):
    e = error(srv, {"query": "SELECT k, COUNT(*) FROM d GROUP BY k", "context": {"timeout": 1, "sqlQueryId": "slow-1"}})
    assert e.status == 504
    body = e.json()
    assert body["error"] == "Query timeout" and body["errorCode"] == "legacyQueryException"
    assert body["category"] == "TIMEOUT" and body["errorClass"] == "org.apache.druid.query.QueryTimeoutException"
    assert body["errorMessage"].startswith("Query did not complete within configured timeout period.")
    assert error(srv, {"query": "SELECT 1", "context": {"timeout": "soon"}}).status == 400


def test_insert_and_replace_are_refused(srv):
    e = error(srv, {"query": "INSERT INTO d SELECT * FROM d PARTITIONED BY DAY"})
    assert e.status == 400 and e.json()["errorMessage"] == (
        "INSERT operations are not supported by requested SQL engine [native], consider using MSQ.")
    e = error(srv, {"query": "REPLACE INTO d OVERWRITE ALL SELECT * FROM d PARTITIONED BY DAY"})
    assert e.json()["errorMessage"] == (
        "REPLACE operations are not supported by the requested SQL engine [native].  Consider using MSQ.")
    assert e.json()["errorCode"] == "invalidInput"


@pytest.mark.parametrize("sql, status, message", [
    ("SELECT nope FROM d", 400, "Column 'nope' not found in any table"),
    # a fault (answered by the error middleware, as MSQFault.toDruidException())
    ("SELECT k FROM d INTERSECT SELECT k FROM d", 501, "QueryNotSupported: INTERSECT is not supported"),
])
def test_errors_carry_the_query_id(srv, sql, status, message):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(srv.client.base + "/druid/v2/sql", method="POST",
                                 data=json.dumps({"query": sql, "context": {"sqlQueryId": "bad-1"}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == status and e.value.headers["X-Druid-SQL-Query-Id"] == "bad-1"
    assert json.loads(e.value.read())["errorMessage"] == message


def test_cancel_unknown_query_is_404(srv):
    with pytest.raises(HttpError) as e:
        srv.client.request("DELETE", "/druid/v2/sql/no-such-query")
    assert e.value.status == 404


def test_explain_select(srv):
    rows = srv.client.sql("EXPLAIN PLAN FOR SELECT k, COUNT(*) AS c FROM d WHERE n > 1 GROUP BY k",
                          context={"sqlQueryId": "explain-1"})
    assert list(rows[0]) == ["PLAN", "RESOURCES", "ATTRIBUTES"]
    plan = json.loads(rows[0]["PLAN"])
    assert plan[0]["query"]["queryType"] == "groupBy"
    assert plan[0]["query"]["dataSource"] == {"type": "table", "name": "d"}
    assert plan[0]["query"]["context"]["sqlQueryId"] == "explain-1"
    assert plan[0]["signature"] == [{"name": "d0", "type": "STRING"}, {"name": "a0", "type": "LONG"}]
    assert plan[0]["columnMappings"] == [{"queryColumn": "d0", "outputColumn": "k"},
                                         {"queryColumn": "a0", "outputColumn": "c"}]
    assert json.loads(rows[0]["RESOURCES"]) == [{"name": "d", "type": "DATASOURCE"}]
    assert json.loads(rows[0]["ATTRIBUTES"]) == {"statementType": "SELECT"}
    rows = srv.client.sql("SET useApproximateCountDistinct = false;\nEXPLAIN PLAN FOR SELECT k FROM d")
    plan = json.loads(rows[0]["PLAN"])[0]["query"]
    assert plan["queryType"] == "scan" and plan["context"]["useApproximateCountDistinct"] is False


def test_explain_on_the_task_endpoint(srv):
    status, _, text = srv.client.request("POST", "/druid/v2/sql/task", {
        "query": "EXPLAIN PLAN FOR REPLACE INTO e OVERWRITE ALL SELECT __time, k, n FROM d "
                 "PARTITIONED BY DAY CLUSTERED BY k"})
    assert status == 200
    row = json.loads(text)[0]
    plan = json.loads(row["PLAN"])
    assert plan[0]["query"]["queryType"] == "scan"
    assert [m["outputColumn"] for m in plan[0]["columnMappings"]] == ["__time", "k", "n"]
    assert json.loads(row["RESOURCES"]) == [{"name": "d", "type": "DATASOURCE"}, {"name": "e", "type": "DATASOURCE"}]
    assert json.loads(row["ATTRIBUTES"]) == {"statementType": "REPLACE", "targetDataSource": "e",
                                            "partitionedBy": "DAY", "clusteredBy": ["k"], "replaceTimeChunks": "all"}
    # nothing ran
    assert srv.client.get("/druid/indexer/v1/tasks?datasource=e") == []


@pytest.mark.parametrize("where, expected", [
    ("__time >= TIMESTAMP '2021-01-03'", 2),
    ("__time < TIMESTAMP '2021-01-02' OR __time >= TIMESTAMP '2021-01-03 06:00:00'", 2),
    ("TIME_IN_INTERVAL(__time, '2021-01-02/P1D')", 1),
    ("__time BETWEEN TIMESTAMP '2021-01-01' AND TIMESTAMP '2021-01-02 12:00:00'", 2),
    ("__time = TIMESTAMP '2021-01-03 05:00:00'", 1),
    ("__time IN (TIMESTAMP '2021-01-01 00:00:00', TIMESTAMP '2021-01-03 06:00:00')", 2),
    ("__time >= TIMESTAMP '2021-01-03' AND k = 'a'", 1),
    ("k IN ('a', 'zz')", 2),
    ("k = 'a' OR k = 'b,c'", 3),
    ("k = 'zz'", 0),
    ("NOT (k = 'a')", 2),
])
def test_pruned_queries_return_what_a_full_scan_returns(srv, where, expected):
    assert srv.client.sql(f"SELECT COUNT(*) AS c FROM d WHERE {where}") == [{"c": expected}]
