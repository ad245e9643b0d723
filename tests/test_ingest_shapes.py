"""Inputs, granularities, clustering and SELECT tasks, through the task API."""
from __future__ import annotations

import gzip
import json

import pytest

from client import HttpError

SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"},{"name":"x","type":"double"}]'
ROWS = [("2021-03-01T10:15:00Z", "b", 1, 1.5), ("2021-03-01T11:45:00.5Z", "a", 2, None),
        ("2021-04-02T00:00:00Z", "c", None, 3.25), ("2022-01-01 05:00:00", "a", 4, 0.0)]


def _extern(source: dict, fmt: dict, sig: str = SIG) -> str:
    return f"TABLE(EXTERN('{json.dumps(source)}', '{json.dumps(fmt)}', '{sig}'))"


def _json_lines() -> str:
    return "".join(json.dumps({"ts": t, "k": k, "n": n, "x": x}) + "\n" for t, k, n, x in ROWS)


def _ingest(client, sql: str) -> dict:
    task_id = client.submit(sql)
    status = client.wait(task_id)
    assert status["statusCode"] == "SUCCESS", client.report(task_id)["status"]
    return client.report(task_id)


@pytest.mark.parametrize("granularity, intervals", [
    ("HOUR", ["2021-03-01T10:00:00.000Z/2021-03-01T11:00:00.000Z", "2021-03-01T11:00:00.000Z/2021-03-01T12:00:00.000Z",
              "2021-04-02T00:00:00.000Z/2021-04-02T01:00:00.000Z", "2022-01-01T05:00:00.000Z/2022-01-01T06:00:00.000Z"]),
    ("MONTH", ["2021-03-01T00:00:00.000Z/2021-04-01T00:00:00.000Z", "2021-04-01T00:00:00.000Z/2021-05-01T00:00:00.000Z",
               "2022-01-01T00:00:00.000Z/2022-02-01T00:00:00.000Z"]),
    ("YEAR", ["2021-01-01T00:00:00.000Z/2022-01-01T00:00:00.000Z", "2022-01-01T00:00:00.000Z/2023-01-01T00:00:00.000Z"]),
    ("ALL TIME", ["-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"]),
    ("TIME_FLOOR(__time, 'P1D')", ["2021-03-01T00:00:00.000Z/2021-03-02T00:00:00.000Z",
                                   "2021-04-02T00:00:00.000Z/2021-04-03T00:00:00.000Z",
                                   "2022-01-01T00:00:00.000Z/2022-01-02T00:00:00.000Z"]),
])
def test_inline_json_granularities(server, granularity, intervals):
    src = _extern({"type": "inline", "data": _json_lines()}, {"type": "json"})
    report = _ingest(server.client, f"INSERT INTO g SELECT TIME_PARSE(ts) AS __time, k, n, x FROM {src} "
                                    f"PARTITIONED BY {granularity}")
    segs = server.client.get("/druid/coordinator/v1/metadata/datasources/g/segments?full")
    assert sorted(s["interval"] for s in segs) == sorted(intervals)
    assert report["stages"][0]["partitionCount"] == len(intervals)
    assert report["stages"][1]["partitionCount"] == len(intervals)
    rows = server.client.sql("SELECT __time, k, n, x FROM g ORDER BY __time")
    assert rows == [
        {"__time": "2021-03-01T10:15:00.000Z", "k": "b", "n": 1, "x": 1.5},
        {"__time": "2021-03-01T11:45:00.500Z", "k": "a", "n": 2, "x": None},
        {"__time": "2021-04-02T00:00:00.000Z", "k": "c", "n": None, "x": 3.25},
        {"__time": "2022-01-01T05:00:00.000Z", "k": "a", "n": 4, "x": 0.0},
    ]


def test_csv_tsv_and_gzip_local_files(server, tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    with gzip.open(d / "one.csv.gz", "wt") as f:
        f.write("ts,k,n,x\n" + "".join(f"{t},{k},{'' if n is None else n},{'' if x is None else x}\n"
                                        for t, k, n, x in ROWS[:2]))
    (d / "two.tsv").write_text("".join(f"{t}\t{k}\t{'' if n is None else n}\t{'' if x is None else x}\n"
                                       for t, k, n, x in ROWS[2:]))
    (d / "empty.csv").write_text("")  # empty files are skipped
    csv = _extern({"type": "local", "baseDir": str(d), "filter": "*.csv*"},
                  {"type": "csv", "findColumnsFromHeader": True})
    tsv = _extern({"type": "local", "files": [str(d / "two.tsv")]},
                  {"type": "tsv", "columns": ["ts", "k", "n", "x"]})
    c = server.client
    report = _ingest(c, f"INSERT INTO f SELECT TIME_PARSE(ts) AS __time, k, n, x FROM {csv} PARTITIONED BY DAY")
    assert report["counters"]["0"]["0"]["input0"]["files"] == [1]
    assert report["counters"]["0"]["0"]["input0"]["bytes"] == [(d / "one.csv.gz").stat().st_size]
    _ingest(c, f"INSERT INTO f SELECT TIME_PARSE(ts) AS __time, k, n, x FROM {tsv} PARTITIONED BY DAY")
    assert c.sql("SELECT k, n, x FROM f ORDER BY __time") == [
        {"k": "b", "n": 1, "x": 1.5}, {"k": "a", "n": 2, "x": None},
        {"k": "c", "n": None, "x": 3.25}, {"k": "a", "n": 4, "x": 0.0}]


def test_where_and_clustered_by(server):
    src = _extern({"type": "inline", "data": _json_lines()}, {"type": "json"})
    _ingest(server.client, f"REPLACE INTO w OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, n, k, x FROM {src} "
                           "WHERE (k = 'a' OR n < 2) AND NOT x IS NULL PARTITIONED BY ALL CLUSTERED BY k")
    segs = server.client.get("/druid/coordinator/v1/metadata/datasources/w/segments?full")
    assert segs[0]["dimensions"] == "k,n,x"  # CLUSTERED BY columns first (spec §8)
    assert server.client.sql("SELECT k, n FROM w ORDER BY k") == [{"k": "a", "n": 4}, {"k": "b", "n": 1}]


def test_rows_per_segment_splits_a_time_chunk(server):
    data = "".join(json.dumps({"ts": "2021-01-01T00:00:00Z", "k": f"k{i % 7}", "n": i, "x": 0.5}) + "\n"
                   for i in range(25))
    src = _extern({"type": "inline", "data": data}, {"type": "json"})
    task_id = server.client.submit(f"INSERT INTO s SELECT TIME_PARSE(ts) AS __time, k, n FROM {src} "
                                   "PARTITIONED BY DAY CLUSTERED BY k", {"rowsPerSegment": 10})
    assert server.client.wait(task_id)["statusCode"] == "SUCCESS"
    segs = server.client.get("/druid/coordinator/v1/metadata/datasources/s/segments?full")
    assert sorted(s["shardSpec"]["partitionNum"] for s in segs) == [0, 1, 2]
    assert all(s["shardSpec"]["partitions"] == 3 for s in segs)
    report = server.client.report(task_id)
    assert report["counters"]["0"]["0"]["shuffle"]["rows"] == [8, 8, 9]
    assert server.client.sql("SELECT COUNT(*) AS c, SUM(n) AS s FROM s") == [{"c": 25, "s": 300}]


def test_select_task_results_in_report(server):
    src = _extern({"type": "inline", "data": _json_lines()}, {"type": "json"})
    c = server.client
    task_id = c.submit(f"SELECT k, COUNT(*) AS cnt, SUM(n) AS total FROM {src} GROUP BY k ORDER BY cnt DESC, k")
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    payload = c.get(f"/druid/indexer/v1/task/{task_id}")["payload"]
    assert payload["dataSource"] == "__query_select"
    assert payload["spec"]["destination"] == {"type": "taskReport"}
    results = c.report(task_id)["results"]
    assert results["signature"] == [{"name": "k", "type": "STRING"}, {"name": "cnt", "type": "LONG"},
                                    {"name": "total", "type": "LONG"}]
    assert results["sqlTypeNames"] == ["VARCHAR", "BIGINT", "BIGINT"]
    assert results["results"] == [["a", 2, 6], ["b", 1, 1], ["c", 1, None]]
    scan = c.submit(f"SELECT TIME_PARSE(ts) AS t, k FROM {src} WHERE n >= 2 ORDER BY t DESC LIMIT 1")
    assert c.wait(scan)["statusCode"] == "SUCCESS"
    assert c.report(scan)["results"]["results"] == [[1641013200000, "a"]]
    assert [s["definition"]["processor"]["type"] for s in c.report(scan)["stages"]] == ["scan", "limit"]


def test_missing_input_fails_naming_it(server, tmp_path):
    src = _extern({"type": "local", "files": [str(tmp_path / "nope.json")]}, {"type": "json"})
    task_id = server.client.submit(f"INSERT INTO m SELECT TIME_PARSE(ts) AS __time, k FROM {src} PARTITIONED BY DAY")
    status = server.client.wait(task_id)
    assert status["statusCode"] == "FAILED"
    assert "nope.json" in status["errorMsg"]
    assert server.client.get("/druid/coordinator/v1/metadata/datasources/m/segments") == []


def test_null_time_fails_with_insert_time_null(server):
    src = _extern({"type": "inline", "data": '{"ts":"not a time","k":"a"}\n'}, {"type": "json"})
    task_id = server.client.submit(f"INSERT INTO m SELECT TIME_PARSE(ts) AS __time, k FROM {src} PARTITIONED BY DAY")
    assert server.client.wait(task_id)["errorMsg"] == \
        "InsertTimeNull: Null timestamp (__time) encountered during INSERT or REPLACE."
    error = server.client.report(task_id)["status"]["errorReport"]
    assert error["error"]["errorCode"] == "InsertTimeNull" and error["stageNumber"] == 0


def test_reserved_column_name_fails_the_task(server):
    src = _extern({"type": "inline", "data": _json_lines()}, {"type": "json"})
    task_id = server.client.submit(f"INSERT INTO m SELECT TIME_PARSE(ts) AS __time, k AS __bucket FROM {src} "
                                   "PARTITIONED BY DAY")
    assert server.client.wait(task_id)["errorMsg"].startswith("ColumnNameRestricted: ")


def test_unsupported_input_source_is_400(server):
    src = _extern({"type": "hdfs", "paths": ["/x"]}, {"type": "json"})
    with pytest.raises(HttpError) as e:
        server.client.request("POST", "/druid/v2/sql/task",
                              {"query": f"INSERT INTO m SELECT k FROM {src} PARTITIONED BY ALL"})
    assert e.value.status == 400 and "hdfs" in e.value.json()["errorMessage"]


def test_values_and_extend_in_tasks(server):
    c = server.client
    task_id = c.submit("INSERT INTO v SELECT TIME_PARSE(t) AS __time, k, n FROM (VALUES ('2021-01-01', 'a', 1), "
                       "('2021-01-02', 'b', 2)) AS x(t, k, n) PARTITIONED BY DAY")
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    data = json.dumps({"type": "inline", "data": '{"ts":"2021-01-03","k":"c","n":3}\n'})
    ext = f"TABLE(EXTERN(inputSource => '{data}', inputFormat => '{{\"type\":\"json\"}}')) EXTEND (ts VARCHAR, k VARCHAR, n BIGINT)"
    assert c.wait(c.submit(f"INSERT INTO v SELECT TIME_PARSE(ts) AS __time, k, n FROM {ext} PARTITIONED BY DAY")
                  )["statusCode"] == "SUCCESS"
    assert c.sql("SELECT k, n FROM v ORDER BY __time") == [{"k": "a", "n": 1}, {"k": "b", "n": 2}, {"k": "c", "n": 3}]
    select = c.submit("SELECT 1 + 1 AS two")
    assert c.wait(select)["statusCode"] == "SUCCESS"
    assert c.report(select)["results"]["results"] == [[2]]


def test_shuffle_spills_and_merges_over_levels(server):
    """A sort budget far below the input (rowsInMemory) spills runs and merges them."""
    data = "".join(json.dumps({"ts": f"2021-01-0{1 + i % 3}T00:00:00Z", "k": f"k{(i * 7919) % 1000:04d}", "n": i})
                   + "\n" for i in range(3000))
    src = _extern({"type": "inline", "data": data}, {"type": "json"})
    c = server.client
    task_id = c.submit(f"REPLACE INTO sp OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {src} "
                       "PARTITIONED BY DAY CLUSTERED BY k", {"rowsInMemory": 100})
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    progress = c.report(task_id)["counters"]["0"]["0"]["sortProgress"]
    assert progress["totalMergingLevels"] >= 3
    assert progress["levelToTotalBatches"]["0"] >= 30  # 3,000 rows / 100 per run
    assert progress["totalMergersForUltimateLevel"] == 3 and progress["progressDigest"] == 1.0
    assert c.sql("SELECT COUNT(*) AS c, SUM(n) AS s FROM sp") == [{"c": 3000, "s": 4498500}]
    # rows come back in CLUSTERED BY order within each day's segment
    first = c.sql("SELECT k FROM sp WHERE __time = TIMESTAMP '2021-01-01' LIMIT 3")
    assert [r["k"] for r in first] == sorted(r["k"] for r in first)
