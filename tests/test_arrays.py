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
                                ["ARRAY", "ARRAY", "ARRAY"],
                                ['["a",null]', "[1,2]", "[0.5]"]]
    _, _, text = client.request("POST", "/druid/v2/sql", {"query": q, "resultFormat": "csv"})
    assert text == '"[""a"",null]","[1,2]",[0.5]\n\n'


def test_unstringified_arrays(server):
    """sqlStringifyArrays=false: JSON arrays in the JSON formats, Java's List.toString in csv;
    multi-value strings stay JSON text (Druid's SqlResults.coerce)."""
    client = server.client
    q = "SELECT ARRAY['a', NULL] AS s, ARRAY[1, 2] AS l, ARRAY[0.5, 1e10] AS d, ARRAY_SLICE(ARRAY[1], 5) AS n, " \
        "STRING_TO_MV('x,y', ',') AS m"
    context = {"sqlStringifyArrays": False}
    _, _, text = client.request("POST", "/druid/v2/sql", {"query": q, "resultFormat": "object", "context": context})
    assert json.loads(text) == [{"s": ["a", None], "l": [1, 2], "d": [0.5, 1e10], "n": None, "m": '["x","y"]'}]
    _, _, text = client.request("POST", "/druid/v2/sql", {"query": q, "resultFormat": "csv", "context": context})
    assert text == '"[a, null]","[1, 2]","[0.5, 1.0E10]",,"[""x"",""y""]"\n\n'
    _, _, text = client.request("POST", "/druid/v2/sql",
                                {"query": "SET sqlStringifyArrays = 'false'; SELECT ARRAY[1] AS l"})
    assert json.loads(text) == [{"l": [1]}]


def test_type_names_in_task_payload_and_report(server):
    """sqlTypeNames (payload and report) and the sqlTypesHeader say ARRAY for arrays and OTHER
    for COMPLEX, as Calcite's SqlTypeName names them."""
    client = server.client
    task = client.submit(f"INSERT INTO typenames SELECT TIME_PARSE(ts) AS __time, tags, "
                         f"APPROX_COUNT_DISTINCT_BUILTIN(ts) AS h FROM {EXTERN} GROUP BY 1, 2 PARTITIONED BY DAY",
                         {"finalizeAggregations": False})
    assert client.wait(task)["statusCode"] == "SUCCESS"
    task = client.submit("SELECT tags, h FROM typenames", {"finalizeAggregations": False})
    assert client.wait(task)["statusCode"] == "SUCCESS"
    assert client.get(f"/druid/indexer/v1/task/{task}")["payload"]["sqlTypeNames"] == ["ARRAY", "OTHER"]
    assert client.report(task)["results"]["sqlTypeNames"] == ["ARRAY", "OTHER"]
    _, _, text = client.request("POST", "/druid/v2/sql", {"query": "SELECT tags, h FROM typenames", "header": True,
                                                           "typesHeader": True, "sqlTypesHeader": True})
    assert json.loads(text)[0] == {"tags": {"type": "ARRAY<STRING>", "sqlType": "ARRAY"},
                                   "h": {"type": "COMPLEX<hyperUnique>", "sqlType": "OTHER"}}


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


def test_array_equality_is_an_equals_filter(server):
    """Druid plans ``arr = ARRAY[...]`` as an ``equals`` filter whose matchValueType is the
    array type, and answers it by comparing whole arrays."""
    client = server.client
    q = ("SELECT n FROM (SELECT n, STRING_TO_ARRAY(s, ',') AS arr FROM (VALUES (1, 'a,b'), (2, 'b,a'), (3, 'a')) "
         "AS v(n, s)) WHERE arr = ARRAY['a', 'b'] OR arr <> ARRAY['a']")
    assert client.sql(q) == [{"n": 1}, {"n": 2}]
    task = client.submit("REPLACE INTO arr_eq OVERWRITE ALL SELECT TIMESTAMP '2024-01-01' AS __time, n, "
                         "STRING_TO_ARRAY(s, ',') AS arr FROM (VALUES (1, 'a,b'), (2, 'b,a'), (3, 'a')) AS v(n, s) "
                         "PARTITIONED BY ALL")
    assert client.wait(task)["statusCode"] == "SUCCESS"
    q = "SELECT n FROM arr_eq WHERE arr = ARRAY['a', 'b'] OR arr <> ARRAY['a'] ORDER BY n"
    native = json.loads(client.sql("EXPLAIN PLAN FOR " + q)[0]["PLAN"])[0]["query"]
    assert native["filter"] == {"type": "or", "fields": [
        {"type": "equals", "column": "arr", "matchValueType": "ARRAY<STRING>", "matchValue": ["a", "b"]},
        {"type": "not", "field": {"type": "equals", "column": "arr", "matchValueType": "ARRAY<STRING>",
                                  "matchValue": ["a"]}}]}
    assert client.sql(q) == [{"n": 1}, {"n": 2}]


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
    """arrayIngestMode=mvd: string arrays become multi-value strings that keep their order
    (multiValueHandling ARRAY); ARRAY_TO_MV values are sorted (SORTED_ARRAY), as in Druid."""
    client = server.client
    task = _insert(client, "mvd", "tags, ARRAY_TO_MV(ARRAY_CONCAT(tags, ARRAY['0'])) AS m", {"arrayIngestMode": "mvd"})
    stages = client.report(task)["stages"]
    generator = next(st for st in stages if st["definition"]["processor"]["type"] == "segmentGenerator")
    dims = generator["definition"]["processor"]["dataSchema"]["dimensionsSpec"]["dimensions"]
    assert dims == [{"type": "string", "name": "tags", "multiValueHandling": "ARRAY", "createBitmapIndex": True},
                    {"type": "string", "name": "m", "multiValueHandling": "SORTED_ARRAY", "createBitmapIndex": True}]
    assert {"name": "tags", "type": "ARRAY<STRING>"} in stages[0]["definition"]["signature"]
    # the segment records the same dimension schemas as the payload
    from pathlib import Path
    from msqcore.storage.segment import read_segment_meta
    for segment in client.get("/druid/coordinator/v1/metadata/datasources/mvd/segments?full"):
        path = Path(segment["loadSpec"]["path"])
        path = path if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[0]
        assert read_segment_meta(str(path))["dimensionsSpec"] == dims
    columns = client.sql("SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'mvd'")
    assert [c["DATA_TYPE"] for c in columns] == ["TIMESTAMP", "VARCHAR", "VARCHAR"]
    assert client.sql("SELECT tags, m FROM mvd ORDER BY __time") == [
        {"tags": '["a","b"]', "m": '["0","a","b"]'}, {"tags": None, "m": "0"},
        {"tags": '["c",null]', "m": '[null,"0","c"]'}]
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


_SEE = ". See https://druid.apache.org/docs/latest/querying/arrays#arrayingestmode for more details about this check " \
       "and how to override it if needed."


@pytest.mark.parametrize("datasource, stored, select, context, message", [
    ("tc_mv_into_array", "tags", "ARRAY_TO_MV(tags) AS tags", {},
     "Cannot write into field[tags] using type[VARCHAR] and arrayIngestMode[array], since the existing type "
     "is[VARCHAR ARRAY]. Try adjusting your query to make this column an ARRAY instead of VARCHAR" + _SEE),
    ("tc_mvd_into_array", "tags", "tags", {"arrayIngestMode": "mvd"},
     "Cannot write into field[tags] using type[VARCHAR ARRAY] and arrayIngestMode[mvd], since the existing type "
     "is[VARCHAR ARRAY]. Try setting arrayIngestMode to[array] to retain the SQL type[VARCHAR ARRAY]" + _SEE),
    ("tc_array_into_mv", "ARRAY_TO_MV(tags) AS tags", "tags", {},
     "Cannot write into field[tags] using type[VARCHAR ARRAY] and arrayIngestMode[array], since the existing type "
     "is[VARCHAR]. Try wrapping this field using ARRAY_TO_MV(...) AS \"tags\"" + _SEE),
    ("tc_longs_into_mv", "ARRAY_TO_MV(tags) AS tags", "nums AS tags", {},
     "Cannot write into field[tags] using type[BIGINT ARRAY] and arrayIngestMode[array], since the existing type "
     "is[VARCHAR]. Try wrapping this field using ARRAY_TO_MV(...) AS \"tags\"" + _SEE),
])
def test_type_change_check(server, datasource, stored, select, context, message):
    """Mixing arrays and multi-value strings in one column fails validation (Druid's
    DruidSqlValidator.validateTypeChanges) unless skipTypeVerification names the column."""
    from client import HttpError
    client = server.client
    _insert(client, datasource, stored)
    with pytest.raises(HttpError) as err:
        _insert(client, datasource, select, context)
    body = err.value.json()
    assert err.value.status == 400 and body["errorCode"] == "invalidInput"
    assert body["errorMessage"] == message
    # both list forms of skipTypeVerification: comma-separated, and a JSON array in a string
    _insert(client, datasource, select, dict(context, skipTypeVerification="ts,tags"))
    _insert(client, datasource, select, dict(context, skipTypeVerification='["tags"]'))


def test_type_change_check_allows_same_kind(server):
    """An array into an array column, a string into a string column: no check fails."""
    client = server.client
    _insert(client, "tc_same", "tags, ARRAY_TO_MV(tags) AS m")
    _insert(client, "tc_same", "tags, ARRAY_TO_MV(tags) AS m")
    _insert(client, "tc_same", "ARRAY['x'] AS tags, 'plain' AS m")
    assert client.sql("SELECT COUNT(*) AS c FROM tc_same") == [{"c": 9}]


def _replace(client, datasource: str, select: str, clustered_by: str) -> str:
    task = client.submit(f"REPLACE INTO {datasource} OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, {select} "
                         f"FROM {EXTERN} PARTITIONED BY ALL CLUSTERED BY {clustered_by}")
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", status
    return task


def _shard_specs(client, datasource: str) -> list[dict]:
    return [s["shardSpec"] for s in client.get(f"/druid/coordinator/v1/metadata/datasources/{datasource}/segments"
                                               "?full")]


def test_clustered_by_multi_value_falls_back_to_numbered(server):
    """REPLACE CLUSTERED BY a multi-value string: the workers report a row with several values
    (shuffleCheckHasMultipleValues), so the segments get numbered shard specs, as in Druid."""
    client = server.client
    mv = "ARRAY_TO_MV(tags) AS m"
    task = _replace(client, "cl_mv", mv, "m")
    assert client.report(task)["status"]["segmentReport"] == {
        "shardSpec": "NumberedShardSpec",
        "details": "Cannot use 'range' shard specs since CLUSTERED BY contains multi-valued fields."}
    assert _shard_specs(client, "cl_mv") == [{"type": "numbered", "partitionNum": 0, "partitions": 1}]
    # a multi-value column whose rows hold at most one value keeps range shard specs
    task = _replace(client, "cl_single", "ARRAY_TO_MV(ARRAY_SLICE(tags, 0, 1)) AS m", "m")
    assert client.report(task)["status"]["segmentReport"]["shardSpec"] == "DimensionRangeShardSpec"
    assert _shard_specs(client, "cl_single")[0]["type"] == "range"
