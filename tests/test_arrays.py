"""ARRAY values over real HTTP: result formats, EXTERN/EXTEND array signatures in SELECT
tasks, and the array functions against DuckDB's list functions on generated rows."""
from __future__ import annotations

import json
import random

import pytest

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T00:00:00Z", "tags": ["a", "b"], "nums": [1, 2, 3], "ds": [1.5, None]},
    {"ts": "2021-01-02T00:00:00Z", "tags": [], "nums": None, "ds": [0.25]},
    {"ts": "2021-01-03T00:00:00Z", "tags": ["c", None], "nums": [7], "ds": None},
])
SOURCE = json.dumps({"type": "inline", "data": DATA})
SIG = json.dumps([{"name": "ts", "type": "string"}, {"name": "tags", "type": "ARRAY<STRING>"},
                  {"name": "nums", "type": "ARRAY<LONG>"}, {"name": "ds", "type": "ARRAY<DOUBLE>"}])
EXTERN = f"TABLE(EXTERN('{SOURCE}', '{{\"type\":\"json\"}}', '{SIG}'))"


def _results(client, sql: str) -> list:
    task = client.submit(sql)
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", status
    return client.report(task)["results"]["results"]


def test_result_formats_render_arrays(server):
    client = server.client
    q = "SELECT ARRAY['a', NULL] AS s, ARRAY[1, 2] AS l, ARRAY[0.5] AS d"
    _, _, text = client.request("POST", "/druid/v2/sql", {"query": q, "resultFormat": "array", "header": True,
                                                           "typesHeader": True, "sqlTypesHeader": True})
    assert json.loads(text) == [["s", "l", "d"], ["ARRAY<STRING>", "ARRAY<LONG>", "ARRAY<DOUBLE>"],
                                ["VARCHAR ARRAY", "BIGINT ARRAY", "DOUBLE ARRAY"],
                                ['["a",null]', "[1,2]", "[0.5]"]]
    _, _, text = client.request("POST", "/druid/v2/sql", {"query": q, "resultFormat": "csv"})
    assert text == '"[""a"",null]","[1,2]",[0.5]\n\n'


def test_extern_array_signature_in_select_task(server):
    rows = _results(server.client, f"SELECT tags, nums, ds, ARRAY_LENGTH(tags) AS n, ARRAY_TO_STRING(nums, '+') AS j "
                                   f"FROM {EXTERN}")
    assert rows == [[["a", "b"], [1, 2, 3], [1.5, None], 2, "1+2+3"],
                    [[], None, [0.25], 0, None],
                    [["c", None], [7], None, 2, "7"]]


def test_extend_array_types(server):
    src = (f"TABLE(EXTERN('{SOURCE}', '{{\"type\":\"json\"}}')) "
           "EXTEND (ts VARCHAR, tags VARCHAR ARRAY, nums BIGINT ARRAY)")
    rows = _results(server.client, f"SELECT ARRAY_CONTAINS(tags, 'a') AS c, ARRAY_SLICE(nums, 1) AS s FROM {src}")
    assert rows == [[1, [2, 3]], [0, None], [0, []]]


def test_array_functions_match_duckdb(server):
    duckdb = pytest.importorskip("duckdb")
    rnd = random.Random(4)
    words = ["a", "b", "c", "dd", "e"]
    # no empty pieces: Java's split and DuckDB's string_split agree on those
    texts = [None if rnd.random() < 0.1 else ",".join(rnd.choice(words) for _ in range(rnd.randint(1, 5)))
             for _ in range(200)]
    values = ", ".join("(%d, %s)" % (i, "NULL" if t is None else f"'{t}'") for i, t in enumerate(texts))
    checks = {
        "ARRAY_LENGTH(STRING_TO_ARRAY(t, ','))": "len(string_split(t, ','))",
        "ARRAY_CONTAINS(STRING_TO_ARRAY(t, ','), 'dd')": "list_contains(string_split(t, ','), 'dd')",
        "ARRAY_CONTAINS(STRING_TO_ARRAY(t, ','), ARRAY['a', 'b'])": "list_has_all(string_split(t, ','), ['a', 'b'])",
        "ARRAY_OVERLAP(STRING_TO_ARRAY(t, ','), ARRAY['c', 'e'])": "list_has_any(string_split(t, ','), ['c', 'e'])",
        "ARRAY_ORDINAL(STRING_TO_ARRAY(t, ','), 2)": "string_split(t, ',')[2]",
        "ARRAY_TO_STRING(ARRAY_CONCAT(STRING_TO_ARRAY(t, ','), ARRAY['z']), '|')":
            "array_to_string(list_concat(string_split(t, ','), ['z']), '|')",
        "ARRAY_TO_STRING(ARRAY_SLICE(STRING_TO_ARRAY(t, ','), 1, 3), '|')":
            "array_to_string(string_split(t, ',')[2:3], '|')",
    }
    select = ", ".join(f"{ours} AS c{i}" for i, ours in enumerate(checks))
    sql = f"SELECT id, {select} FROM (VALUES {values}) AS v(id, t) ORDER BY id"
    ours = server.client.sql(sql, resultFormat="array")
    theirs = duckdb.sql(f"SELECT id, {', '.join(checks.values())} FROM (VALUES {values}) AS v(id, t) ORDER BY id"
                        ).fetchall()
    for ours_row, their_row, text in zip(ours, theirs, texts):
        expect = list(their_row)
        if text is None:
            expect[6] = None  # Druid's array_concat of a NULL array is NULL; DuckDB's list_concat skips it
        assert ours_row == expect, text


def test_unnest_native_query(server):
    """Druid's unnest datasource: the unnested expression as its virtual column, conditions
    on the unnested column as its unnestFilter, the others in the query's filter."""
    client = server.client
    q = ("SELECT n, x FROM (VALUES (1, 'a,b')) AS v(n, s) CROSS JOIN UNNEST(STRING_TO_ARRAY(s, ',')) AS t(x) "
         "WHERE x <> 'a' AND n > 0")
    plan = json.loads(client.sql("EXPLAIN PLAN FOR " + q)[0]["PLAN"])[0]
    native = plan["query"]
    assert native["dataSource"]["type"] == "unnest"
    assert native["dataSource"]["virtualColumn"] == {"type": "expression", "name": "j0.unnest",
                                                     "expression": "string_to_array(\"s\",',')",
                                                     "outputType": "ARRAY<STRING>"}
    assert native["dataSource"]["unnestFilter"] == {"type": "not", "field": {
        "type": "equals", "column": "j0.unnest", "matchValueType": "STRING", "matchValue": "a"}}
    assert native["filter"] == {"type": "range", "column": "n", "matchValueType": "LONG", "lower": 0,
                                "lowerOpen": True}
    assert plan["columnMappings"] == [{"queryColumn": "n", "outputColumn": "n"},
                                      {"queryColumn": "j0.unnest", "outputColumn": "x"}]
    assert client.sql(q) == [{"n": 1, "x": "b"}]


def test_unnest_in_select_task_stage_definition(server):
    rows = _results(server.client, f"SELECT x FROM {EXTERN} CROSS JOIN UNNEST(nums) AS t(x) WHERE x > 1")
    assert sorted(rows) == [[2], [3], [7]]


def test_group_by_array_in_task(server):
    rows = _results(server.client, f"SELECT nums, COUNT(*) AS c FROM {EXTERN} GROUP BY 1")
    assert sorted(rows, key=json.dumps) == sorted([[[1, 2, 3], 1], [None, 1], [[7], 1]], key=json.dumps)


def test_multi_value_in_task(server):
    """A multi-value string in a SELECT task: filters match any value, GROUP BY unnests."""
    client = server.client
    mv = f"(SELECT STRING_TO_MV(ARRAY_TO_STRING(tags, '|'), '[|]') AS m, ts FROM {EXTERN})"
    rows = _results(client, f"SELECT ts, MV_LENGTH(m) AS l FROM {mv} WHERE m = 'b'")
    assert rows == [["2021-01-01T00:00:00Z", 2]]
    rows = _results(client, f"SELECT STRING_TO_MV(ARRAY_TO_STRING(tags, '|'), '[|]') AS m, COUNT(*) AS c "
                            f"FROM {EXTERN} GROUP BY 1")
    assert sorted(rows, key=json.dumps) == sorted([["", 1], ["a", 1], ["b", 1], ["c", 1], ["null", 1]],
                                                  key=json.dumps)


def _insert(client, datasource: str, select: str, context: dict | None = None) -> str:
    task = client.submit(f"INSERT INTO {datasource} SELECT TIME_PARSE(ts) AS __time, {select} FROM {EXTERN} "
                         "PARTITIONED BY DAY", context or {})
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", status
    return task


def test_insert_arrays_array_mode(server):
    """arrayIngestMode=array (the default): ARRAY columns, `auto` dimension schemas."""
    client = server.client
    task = _insert(client, "arr", "tags, nums, ds")
    stages = client.report(task)["stages"]
    generator = next(st for st in stages if st["definition"]["processor"]["type"] == "segmentGenerator")
    dims = generator["definition"]["processor"]["dataSchema"]["dimensionsSpec"]["dimensions"]
    assert dims == [{"type": "auto", "name": "tags", "castToType": "ARRAY<STRING>"},
                    {"type": "auto", "name": "nums", "castToType": "ARRAY<LONG>"},
                    {"type": "auto", "name": "ds", "castToType": "ARRAY<DOUBLE>"}]
    columns = client.sql("SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'arr'")
    assert columns == [{"COLUMN_NAME": "__time", "DATA_TYPE": "TIMESTAMP"},
                       {"COLUMN_NAME": "tags", "DATA_TYPE": "VARCHAR ARRAY"},
                       {"COLUMN_NAME": "nums", "DATA_TYPE": "BIGINT ARRAY"},
                       {"COLUMN_NAME": "ds", "DATA_TYPE": "DOUBLE ARRAY"}]
    assert client.sql("SELECT tags, nums, ds FROM arr ORDER BY __time") == [
        {"tags": '["a","b"]', "nums": "[1,2,3]", "ds": "[1.5,null]"},
        {"tags": "[]", "nums": None, "ds": "[0.25]"},
        {"tags": '["c",null]', "nums": "[7]", "ds": None}]
    assert client.sql("SELECT x, COUNT(*) AS c FROM arr CROSS JOIN UNNEST(nums) AS t(x) WHERE x > 1 GROUP BY 1 "
                      "ORDER BY 1") == [{"x": 2, "c": 1}, {"x": 3, "c": 1}, {"x": 7, "c": 1}]
    # arrays order element by element, a prefix first, NULL first
    assert client.sql("SELECT nums FROM arr ORDER BY nums") == [{"nums": None}, {"nums": "[1,2,3]"},
                                                                {"nums": "[7]"}]
    assert client.sql("SELECT tags, COUNT(*) AS c FROM arr GROUP BY 1 ORDER BY 1") == [
        {"tags": "[]", "c": 1}, {"tags": '["a","b"]', "c": 1}, {"tags": '["c",null]', "c": 1}]


def test_insert_arrays_mvd_mode(server):
    """arrayIngestMode=mvd: string arrays become multi-value strings (values sorted)."""
    client = server.client
    _insert(client, "mvd", "tags, ARRAY_TO_MV(ARRAY_CONCAT(tags, ARRAY['0'])) AS m", {"arrayIngestMode": "mvd"})
    columns = client.sql("SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'mvd'")
    assert [c["DATA_TYPE"] for c in columns] == ["TIMESTAMP", "VARCHAR", "VARCHAR"]
    assert client.sql("SELECT tags, m FROM mvd ORDER BY __time") == [
        {"tags": '["a","b"]', "m": '["0","a","b"]'}, {"tags": None, "m": "0"},
        {"tags": '[null,"c"]', "m": '[null,"0","c"]'}]
    assert client.sql("SELECT m, COUNT(*) AS c FROM mvd GROUP BY 1 ORDER BY 1") == [
        {"m": None, "c": 1}, {"m": "0", "c": 3}, {"m": "a", "c": 1}, {"m": "b", "c": 1}, {"m": "c", "c": 1}]
    assert client.sql("SELECT COUNT(*) AS c FROM mvd WHERE m = 'b'") == [{"c": 1}]
    assert client.sql("SELECT MV_TO_STRING(m, '|') AS s FROM mvd WHERE MV_CONTAINS(m, 'c')") == [{"s": "null|0|c"}]


@pytest.mark.parametrize("select, mode, message", [
    ("nums", "mvd", "Numeric arrays can only be ingested when 'arrayIngestMode' is set to 'array'"),
    ("ds", "none", "Numeric arrays can only be ingested when 'arrayIngestMode' is set to 'array'"),
    ("tags", "none", "String arrays can not be ingested when 'arrayIngestMode' is set to 'none'"),
])
def test_array_ingest_mode_errors(server, select, mode, message):
    from client import HttpError
    with pytest.raises(HttpError) as err:
        server.client.submit(f"INSERT INTO bad SELECT TIME_PARSE(ts) AS __time, {select} FROM {EXTERN} "
                             "PARTITIONED BY DAY", {"arrayIngestMode": mode})
    body = err.value.json()
    assert err.value.status == 400 and body["errorCode"] == "invalidInput"
    assert message in body["errorMessage"]


def test_array_agg_past_max_size_fails_the_task(server):
    """A worker fails as Druid's does on the aggregator's ISE: UnknownError, class then message."""
    client = server.client
    ts = "TABLE(EXTERN('" + json.dumps({"type": "inline", "data": DATA}) + "', '{\"type\":\"json\"}', " \
         "'[{\"name\":\"ts\",\"type\":\"string\"}]'))"
    task = client.submit(f"SELECT ARRAY_AGG(DISTINCT ts, 50) AS a FROM {ts}")
    assert client.wait(task)["statusCode"] == "FAILED"
    error = client.report(task)["status"]["errorReport"]["error"]
    # each value is 1 + 4 + 20 bytes: 5 + 25 + 25 = 55 after the second
    assert error == {"errorCode": "UnknownError", "message": "org.apache.druid.java.util.common.ISE: Unable to "
                     "serialize [ARRAY<STRING>], size [55] is larger than max [50]",
                     "errorMessage": "org.apache.druid.java.util.common.ISE: Unable to serialize [ARRAY<STRING>], "
                     "size [55] is larger than max [50]"}
