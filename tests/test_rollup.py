"""Ingest-time rollup (spec §1.6) and GROUP BY ingestion, over real HTTP."""
from __future__ import annotations

import base64
import json

import numpy as np
import pyarrow as pa
import pytest

from client import HttpError
from msqcore.engine import hll

SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"},{"name":"x","type":"double"}]'
ROWS = [("2021-01-01T00:10:00Z", "a", 1, 0.5), ("2021-01-01T00:20:00Z", "a", 2, 1.5),
        ("2021-01-01T01:10:00Z", "a", 3, None), ("2021-01-01T00:30:00Z", "b", None, 2.0)]
ROLLUP = {"finalizeAggregations": False, "groupByEnableMultiValueUnnesting": False}


def src(rows=ROWS) -> str:
    data = "".join(json.dumps({"ts": t, "k": k, "n": n, "x": x}) + "\n" for t, k, n, x in rows)
    return f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': data})}', '{{\"type\":\"json\"}}', '{SIG}'))"


SQL = ("INSERT INTO r SELECT TIME_FLOOR(TIME_PARSE(ts), 'PT1H') AS __time, k, COUNT(*) AS cnt, SUM(n) AS sn, "
       "MAX(x) AS mx FROM {src} GROUP BY 1, 2 PARTITIONED BY DAY")


def test_rollup_stores_metrics_and_reaggregates(server):
    c = server.client
    task_id = c.submit(SQL.format(src=src()), ROLLUP)
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    report = c.report(task_id)
    assert [s["definition"]["processor"]["type"] for s in report["stages"]] == \
        ["groupByPreShuffle", "groupByPostShuffle", "segmentGenerator"]
    schema = report["stages"][2]["definition"]["processor"]["dataSchema"]
    assert schema["metricsSpec"] == [{"type": "longSum", "name": "cnt", "fieldName": "cnt"},
                                     {"type": "longSum", "name": "sn", "fieldName": "sn"},
                                     {"type": "doubleMax", "name": "mx", "fieldName": "mx"}]
    assert schema["granularitySpec"]["rollup"] is True
    assert schema["granularitySpec"]["queryGranularity"] == "HOUR"
    assert [d["name"] for d in schema["dimensionsSpec"]["dimensions"]] == ["k"]
    seg = c.get("/druid/coordinator/v1/metadata/datasources/r/segments?full")[0]
    assert seg["dimensions"] == "k" and seg["metrics"] == "cnt,sn,mx"
    # a second INSERT adds rows for the same keys; queries combine them
    assert c.wait(c.submit(SQL.format(src=src()), ROLLUP))["statusCode"] == "SUCCESS"
    assert c.sql("SELECT __time, k, SUM(cnt) AS cnt, SUM(sn) AS sn, MAX(mx) AS mx FROM r GROUP BY 1, 2 "
                 "ORDER BY 1, 2") == [
        {"__time": "2021-01-01T00:00:00.000Z", "k": "a", "cnt": 4, "sn": 6, "mx": 1.5},
        {"__time": "2021-01-01T00:00:00.000Z", "k": "b", "cnt": 2, "sn": None, "mx": 2.0},
        {"__time": "2021-01-01T01:00:00.000Z", "k": "a", "cnt": 2, "sn": 6, "mx": None}]


def test_group_by_without_rollup_context_stores_dimensions(server):
    c = server.client
    task_id = c.submit(SQL.format(src=src()))
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    schema = c.report(task_id)["stages"][2]["definition"]["processor"]["dataSchema"]
    assert schema["metricsSpec"] == [] and schema["granularitySpec"]["rollup"] is False
    seg = c.get("/druid/coordinator/v1/metadata/datasources/r/segments?full")[0]
    assert seg["dimensions"] == "k,cnt,sn,mx" and seg["metrics"] == ""
    assert c.sql("SELECT SUM(cnt) AS c FROM r") == [{"c": 4}]


HLL_SQL = ("INSERT INTO h SELECT TIME_FLOOR(TIME_PARSE(ts), 'P1D') AS __time, k, COUNT(*) AS cnt, "
           "APPROX_COUNT_DISTINCT(n) AS un FROM {src} GROUP BY 1, 2 PARTITIONED BY DAY")


def test_rollup_stores_hyper_unique_collectors(server):
    """APPROX_COUNT_DISTINCT under rollup stores Druid's HyperLogLogCollector as a
    ``hyperUnique`` metric; reading back folds the stored collectors."""
    c = server.client
    first = [("2021-01-01T00:10:00Z", "a", n, 0.0) for n in range(0, 300)]
    second = [("2021-01-01T05:00:00Z", "a", n, 0.0) for n in range(200, 500)] + \
        [("2021-01-01T06:00:00Z", "b", 7, 0.0)]
    task_id = c.submit(HLL_SQL.format(src=src(first)), ROLLUP)
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    schema = c.report(task_id)["stages"][2]["definition"]["processor"]["dataSchema"]
    assert schema["metricsSpec"] == [
        {"type": "longSum", "name": "cnt", "fieldName": "cnt"},
        {"type": "hyperUnique", "name": "un", "fieldName": "un", "isInputHyperUnique": False, "round": True}]
    segment = c.get("/druid/coordinator/v1/metadata/datasources/h/segments?full")[0]
    assert segment["metrics"] == "cnt,un"
    assert c.wait(c.submit(HLL_SQL.format(src=src(second)), ROLLUP))["statusCode"] == "SUCCESS"
    # two stored rows for (day, a) hold collectors of 0..299 and 200..499: the fold counts 500
    rows = c.sql("SELECT k, SUM(cnt) AS cnt, APPROX_COUNT_DISTINCT(un) AS un, COUNT(DISTINCT un) AS un2 "
                 "FROM h GROUP BY k ORDER BY k")
    regs = hll.new(1)
    hll.add_values(regs, np.zeros(500, np.int64), pa.array(range(500), pa.int64()))
    expected = hll.estimate(regs).to_pylist()[0]
    assert rows == [{"k": "a", "cnt": 600, "un": expected, "un2": expected},
                    {"k": "b", "cnt": 1, "un": 1, "un2": 1}]
    native = c.get(f"/druid/indexer/v1/task/{task_id}")["payload"]["spec"]["query"]
    assert native["aggregations"][1]["type"] == "cardinality"
    # the raw metric reads as Druid shows a stored collector: base64 of its bytes
    raw = c.sql("SELECT un FROM h WHERE k = 'b'")[0]["un"]
    assert base64.b64decode(raw)[0] == 1  # version 1 collector
    select = c.submit("SELECT un FROM h WHERE k = 'b'")
    assert c.wait(select)["statusCode"] == "SUCCESS"
    assert c.report(select)["results"]["results"] == [[raw]]


PAIR_SQL = ("INSERT INTO p SELECT TIME_FLOOR(TIME_PARSE(ts), 'P1D') AS __time, COUNT(*) AS cnt, "
            "EARLIEST_BY(k, TIME_PARSE(ts)) AS ek, LATEST_BY(k, TIME_PARSE(ts)) AS lk, "
            "EARLIEST_BY(n, TIME_PARSE(ts)) AS en, LATEST_BY(x, TIME_PARSE(ts)) AS lx FROM {src} "
            "GROUP BY 1 PARTITIONED BY DAY")


def test_rollup_stores_earliest_latest_pairs(server):
    """EARLIEST/LATEST(_BY) under rollup store the (time, value) pair with the combining
    stringFirst/longFirst/doubleLast... metric; reading back picks by the stored time."""
    c = server.client
    first = [("2021-01-01T03:00:00Z", "c", 3, 3.5), ("2021-01-01T01:00:00Z", "b", 2, None),
             ("2021-01-01T05:00:00Z", "d", None, 5.5)]
    second = [("2021-01-01T00:30:00Z", "a", 1, 1.5), ("2021-01-01T04:00:00Z", None, 4, 4.5)]
    task_id = c.submit(PAIR_SQL.format(src=src(first)), ROLLUP)
    assert c.wait(task_id)["statusCode"] == "SUCCESS", c.status(task_id)
    schema = c.report(task_id)["stages"][2]["definition"]["processor"]["dataSchema"]
    assert schema["metricsSpec"] == [
        {"type": "longSum", "name": "cnt", "fieldName": "cnt"},
        {"type": "stringFirst", "name": "ek", "fieldName": "ek", "timeColumn": "__time", "maxStringBytes": 1024},
        {"type": "stringLast", "name": "lk", "fieldName": "lk", "timeColumn": "__time", "maxStringBytes": 1024},
        {"type": "longFirst", "name": "en", "fieldName": "en", "timeColumn": "__time"},
        {"type": "doubleLast", "name": "lx", "fieldName": "lx", "timeColumn": "__time"}]
    assert c.wait(c.submit(PAIR_SQL.format(src=src(second)), ROLLUP))["statusCode"] == "SUCCESS"
    assert c.sql("SELECT SUM(cnt) AS cnt, EARLIEST(ek) AS ek, LATEST(lk) AS lk, EARLIEST(en) AS en, "
                 "LATEST(lx) AS lx FROM p") == [{"cnt": 5, "ek": "a", "lk": "d", "en": 1, "lx": 5.5}]



def test_earliest_without_time_column_is_refused_as_druid_does(server):
    with pytest.raises(HttpError) as info:
        server.client.submit(PAIR_SQL.format(src=src()).replace("EARLIEST_BY(k, TIME_PARSE(ts))", "EARLIEST(k)"))
    body = info.value.json()
    assert (info.value.status, body["errorCode"], body["persona"]) == (400, "general", "ADMIN")
    assert body["errorMessage"].startswith("Query could not be planned. A possible reason is [LATEST and EARLIEST "
                                           "aggregators implicitly depend on the __time column")


def test_array_agg_is_ingested_as_an_array_column(server):
    """An ARRAY output is stored as an ARRAY column (arrayIngestMode=array, docs/arrays.md)."""
    c = server.client
    task_id = c.submit(f"INSERT INTO a SELECT TIME_FLOOR(TIME_PARSE(ts), 'P1D') AS __time, "
                       f"ARRAY_AGG(DISTINCT k) AS ks FROM {src()} GROUP BY 1 PARTITIONED BY DAY")
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    assert c.sql("SELECT ks FROM a") == [{"ks": '["a","b"]'}]


def test_unfinalized_states_without_rollup_pass_through(server):
    """finalizeAggregations=false without groupByEnableMultiValueUnnesting=false is not
    rollup: complex states are stored with Druid's ``passthrough`` metric, the rest are
    finished dimensions."""
    c = server.client
    task_id = c.submit(HLL_SQL.format(src=src()), {"finalizeAggregations": False})
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    schema = c.report(task_id)["stages"][2]["definition"]["processor"]["dataSchema"]
    assert schema["metricsSpec"] == [{"type": "passthrough", "columnName": "un", "complexTypeName": "hyperUnique"}]
    assert schema["granularitySpec"]["rollup"] is False
    assert [d["name"] for d in schema["dimensionsSpec"]["dimensions"]] == ["k", "cnt"]
    assert c.sql("SELECT k, SUM(cnt) AS cnt, APPROX_COUNT_DISTINCT(un) AS un FROM h GROUP BY k ORDER BY k") == [
        {"k": "a", "cnt": 3, "un": 3}, {"k": "b", "cnt": 1, "un": 0}]
