"""Ingest-time rollup (spec §1.6) and GROUP BY ingestion, over real HTTP."""
from __future__ import annotations

import json

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
