"""Subqueries in FROM with GROUP BY / ORDER BY / LIMIT through the task engine: Druid's
``query`` datasource in the native query, the inner query's stages in front of the outer
query's, and INSERT/REPLACE of such a query. (Results on both engines: sql_cases/subquery.sql.)"""
from __future__ import annotations

import json

ROWS = [{"ts": f"2021-01-0{1 + i % 2}T0{i % 10}:00:00Z", "k": "abc"[i % 3], "n": i} for i in range(9)]
SRC = ("TABLE(EXTERN('" + json.dumps({"type": "inline", "data": "".join(json.dumps(r) + "\n" for r in ROWS)})
       + "', '{\"type\":\"json\"}', '[{\"name\":\"ts\",\"type\":\"string\"},{\"name\":\"k\",\"type\":\"string\"},"
       "{\"name\":\"n\",\"type\":\"long\"}]'))")
INNER = f"SELECT SUBSTRING(ts, 1, 10) AS d, k, SUM(n) AS s FROM {SRC} GROUP BY 1, 2"


def _run(c, sql: str, **context) -> tuple[dict, dict]:
    task = c.submit(sql, context=context or None)
    assert c.wait(task)["statusCode"] == "SUCCESS", c.report(task)["status"].get("errorReport")
    return c.report(task), c.get(f"/druid/indexer/v1/task/{task}")["payload"]


def test_select_over_a_grouped_subquery_plans_a_query_datasource(server):
    sql = f"SELECT d, MAX(s) AS top FROM ({INNER}) WHERE s > 2 GROUP BY d"
    report, payload = _run(server.client, sql, maxNumTasks=3)
    assert sorted(report["results"]["results"]) == [["2021-01-01", 10], ["2021-01-02", 8]]
    outer = payload["spec"]["query"]
    assert outer["queryType"] == "groupBy" and outer["dataSource"]["type"] == "query"
    inner = outer["dataSource"]["query"]
    assert inner["queryType"] == "groupBy" and inner["dataSource"]["type"] == "external"
    assert [d["outputName"] for d in inner["dimensions"]] == ["d0", "d1"]
    assert outer["filter"]["column"] == "s" and "filter" not in inner  # WHERE applies to the inner rows
    stages = [s["definition"] for s in report["stages"]]
    assert [s["processor"]["type"] for s in stages] == \
        ["groupByPreShuffle", "groupByPostShuffle", "groupByPreShuffle", "groupByPostShuffle"]
    assert stages[1]["shuffleSpec"] == {"type": "mix"}
    assert stages[2]["input"] == [{"type": "stage", "stage": 1}]
    assert stages[2]["processor"]["query"]["dataSource"] == {"type": "inputNumber", "inputNumber": 0}


def test_insert_and_replace_from_a_grouped_subquery(server):
    c = server.client
    select = f"SELECT TIME_PARSE(d) AS __time, k, s FROM ({INNER}) WHERE s >= 4"
    _run(c, f"INSERT INTO sums {select} PARTITIONED BY DAY")
    rows = c.sql("SELECT TIME_FORMAT(__time, 'yyyy-MM-dd') AS d, k, s FROM sums ORDER BY d, k")
    assert [[r["d"], r["k"], r["s"]] for r in rows] == \
        [["2021-01-01", "a", 6], ["2021-01-01", "b", 4], ["2021-01-01", "c", 10],
         ["2021-01-02", "b", 8], ["2021-01-02", "c", 5]]
    report, _ = _run(c, "REPLACE INTO sums OVERWRITE ALL SELECT __time, k, SUM(s) AS s FROM "
                        "(SELECT __time, k, s FROM sums ORDER BY s DESC LIMIT 2) GROUP BY 1, 2 PARTITIONED BY DAY")
    kinds = [s["definition"]["processor"]["type"] for s in report["stages"]]
    assert kinds == ["scan", "limit", "groupByPreShuffle", "groupByPostShuffle", "segmentGenerator"]
    rows = c.sql("SELECT TIME_FORMAT(__time, 'yyyy-MM-dd') AS d, k, s FROM sums ORDER BY s")
    assert [[r["d"], r["k"], r["s"]] for r in rows] == [["2021-01-02", "b", 8], ["2021-01-01", "c", 10]]


def test_exact_count_distinct_is_a_nested_group_by(server):
    sql = f"SELECT k, COUNT(DISTINCT SUBSTRING(ts, 1, 10)) AS days FROM {SRC} GROUP BY k"
    report, payload = _run(server.client, sql, useApproximateCountDistinct=False)
    assert sorted(report["results"]["results"]) == [["a", 2], ["b", 2], ["c", 2]]
    outer = payload["spec"]["query"]
    inner = outer["dataSource"]["query"]
    assert [d["outputName"] for d in inner["dimensions"]] == ["d0", "d1"] and inner["aggregations"] == []
    assert [d["dimension"] for d in outer["dimensions"]] == ["d0"]
    assert [a["type"] for a in outer["aggregations"]] == ["filtered"]
    assert outer["aggregations"][0]["aggregator"] == {"type": "count", "name": "a0"}
    assert outer["aggregations"][0]["filter"] == {"type": "not", "field": {"type": "null", "column": "d1"}}
    assert [s["definition"]["processor"]["type"] for s in report["stages"]] == \
        ["groupByPreShuffle", "groupByPostShuffle", "groupByPreShuffle", "groupByPostShuffle"]
