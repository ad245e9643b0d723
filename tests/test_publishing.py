"""Publishing, locks, worker tasks and task-level faults, over real HTTP."""
from __future__ import annotations

import json
import time

from conftest import seed_style_wikipedia

SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'


def inline(rows) -> str:
    data = "".join(json.dumps({"ts": t, "k": k, "n": n}) + "\n" for t, k, n in rows)
    return f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': data})}', '{{\"type\":\"json\"}}', '{SIG}'))"


def slow_source(files_server) -> str:
    base, root = files_server
    if not (root / "w.json.gz").exists():
        seed_style_wikipedia(root / "w.json.gz")
    sig = '[{"name":"timestamp","type":"string"},{"name":"page","type":"string"}]'
    return (f"TABLE(EXTERN('{{\"type\":\"http\",\"uris\":[\"{base}/slow/w.json.gz\"]}}', "
            f"'{{\"type\":\"json\"}}', '{sig}'))")


def segments(client, ds):
    return client.get(f"/druid/coordinator/v1/metadata/datasources/{ds}/segments?full")


def wait_phase(client, task_id, stage=0, phase="READING_INPUT", timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        stages = client.report(task_id)["stages"]
        if stages[stage].get("phase") == phase:
            return
        time.sleep(0.05)
    raise TimeoutError(phase)


ROWS = [("2021-01-01T00:00:00Z", k, i) for i, k in enumerate("abcdefghijklmnopqrst")]


def test_replace_writes_range_shard_specs(server):
    c = server.client
    task_id = c.submit(f"REPLACE INTO r OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {inline(ROWS)} "
                       "PARTITIONED BY DAY CLUSTERED BY k, n", {"rowsPerSegment": 7})
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    segs = sorted(segments(c, "r"), key=lambda s: s["shardSpec"]["partitionNum"])
    assert [s["shardSpec"] for s in segs] == [
        {"type": "range", "dimensions": ["k"], "start": None, "end": ["g"], "partitionNum": 0, "numCorePartitions": 3},
        {"type": "range", "dimensions": ["k"], "start": ["g"], "end": ["n"], "partitionNum": 1, "numCorePartitions": 3},
        {"type": "range", "dimensions": ["k"], "start": ["n"], "end": None, "partitionNum": 2, "numCorePartitions": 3},
    ]
    assert c.report(task_id)["status"]["segmentReport"] == {
        "shardSpec": "DimensionRangeShardSpec",
        "details": "Using[1] CLUSTERED BY columns for 'range' shard specs, since the next column is of type[LONG]. "
                   "Only string columns are included in 'range' shard specs."}
    # every row lands in the segment whose range holds it
    assert c.sql("SELECT COUNT(*) AS c FROM r") == [{"c": 20}]


def test_insert_reports_numbered(server):
    c = server.client
    task_id = c.submit(f"INSERT INTO i SELECT TIME_PARSE(ts) AS __time, k FROM {inline(ROWS)} "
                       "PARTITIONED BY DAY CLUSTERED BY k")
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    assert c.report(task_id)["status"]["segmentReport"] == {
        "shardSpec": "NumberedShardSpec",
        "details": "Using NumberedShardSpec to generate segments since the query is inserting rows."}


def test_replace_writes_tombstones_for_emptied_chunks(server):
    c = server.client
    two_days = [("2021-01-01T00:00:00Z", "a", 1), ("2021-01-02T00:00:00Z", "b", 2)]
    assert c.wait(c.submit(f"INSERT INTO t SELECT TIME_PARSE(ts) AS __time, k FROM {inline(two_days)} "
                           "PARTITIONED BY DAY"))["statusCode"] == "SUCCESS"
    task_id = c.submit(f"REPLACE INTO t OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k FROM {inline(two_days)} "
                       "WHERE k = 'a' PARTITIONED BY DAY")
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    segs = {s["interval"]: s for s in segments(c, "t")}
    tomb = segs["2021-01-02T00:00:00.000Z/2021-01-03T00:00:00.000Z"]
    assert tomb["shardSpec"]["type"] == "tombstone" and tomb["loadSpec"] == {"type": "tombstone"}
    assert segs["2021-01-01T00:00:00.000Z/2021-01-02T00:00:00.000Z"]["shardSpec"]["type"] == "numbered"
    assert tomb["version"] == segs["2021-01-01T00:00:00.000Z/2021-01-02T00:00:00.000Z"]["version"]
    assert c.sql("SELECT k FROM t") == [{"k": "a"}]


def test_empty_insert_and_fail_on_empty_insert(server):
    c = server.client
    src = inline(ROWS)
    ok = c.submit(f"INSERT INTO e SELECT TIME_PARSE(ts) AS __time, k FROM {src} WHERE k = 'zz' PARTITIONED BY DAY")
    assert c.wait(ok)["statusCode"] == "SUCCESS" and segments(c, "e") == []
    bad = c.submit(f"INSERT INTO e SELECT TIME_PARSE(ts) AS __time, k FROM {src} WHERE k = 'zz' PARTITIONED BY DAY",
                   {"failOnEmptyInsert": True})
    status = c.wait(bad)
    assert status["statusCode"] == "FAILED" and status["errorMsg"].startswith("InsertCannotBeEmpty: ")
    assert c.report(bad)["status"]["errorReport"]["error"]["dataSource"] == "e"


def test_max_num_segments(server):
    c = server.client
    task_id = c.submit(f"REPLACE INTO m OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k FROM {inline(ROWS)} "
                       "PARTITIONED BY DAY CLUSTERED BY k", {"rowsPerSegment": 5, "maxNumSegments": 2})
    status = c.wait(task_id)
    assert status["statusCode"] == "FAILED"
    error = c.report(task_id)["status"]["errorReport"]["error"]
    assert error["errorCode"] == "TooManySegmentsInTimeChunk"
    assert error["numSegments"] == 4 and error["maxNumSegments"] == 2
    assert c.get(f"/druid/indexer/v1/task/{task_id}")["payload"]["spec"]["tuningConfig"]["maxNumSegments"] == 2


def test_segment_sort_order(server):
    c = server.client
    task_id = c.submit(f"REPLACE INTO o OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, n, k FROM {inline(ROWS)} "
                       "PARTITIONED BY DAY", {"segmentSortOrder": "__time,k"})
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    assert segments(c, "o")[0]["dimensions"] == "k,n"


def test_two_replaces_never_interleave(server, files_server):
    c = server.client
    first = c.submit(f"REPLACE INTO w OVERWRITE ALL SELECT TIME_PARSE(\"timestamp\") AS __time, page "
                     f"FROM {slow_source(files_server)} PARTITIONED BY DAY")
    wait_phase(c, first)
    second = c.submit(f"REPLACE INTO w OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k AS page "
                      f"FROM {inline(ROWS[:3])} PARTITIONED BY DAY")
    time.sleep(0.5)
    waiting = c.status(second)
    assert waiting["statusCode"] == "RUNNING" and waiting["runnerStatusCode"] == "WAITING"
    # an INSERT cannot allocate in a chunk the REPLACE holds exclusively
    insert = c.submit(f"INSERT INTO w SELECT TIME_PARSE(ts) AS __time, k AS page FROM {inline(ROWS[:1])} "
                      "PARTITIONED BY DAY")
    assert c.wait(insert)["errorMsg"].startswith("InsertCannotAllocateSegment: ")
    c.post(f"/druid/indexer/v1/task/{first}/shutdown")
    assert c.wait(first)["statusCode"] == "FAILED"
    assert c.wait(second)["statusCode"] == "SUCCESS"
    assert c.sql("SELECT COUNT(*) AS n FROM w") == [{"n": 3}]


def test_worker_tasks_are_listed_and_killing_one_fails_the_query(server, files_server):
    c = server.client
    task_id = c.submit(f"INSERT INTO k SELECT TIME_PARSE(\"timestamp\") AS __time, page "
                       f"FROM {slow_source(files_server)} PARTITIONED BY DAY")
    wait_phase(c, task_id)
    worker_id = f"{task_id}-worker0_0"
    listed = {t["id"]: t for t in c.get("/druid/indexer/v1/tasks")}
    assert listed[worker_id]["type"] == "query_worker" and listed[worker_id]["groupId"] == task_id
    assert listed[worker_id]["statusCode"] == "RUNNING"
    payload = c.get(f"/druid/indexer/v1/task/{worker_id}")["payload"]
    assert payload["controllerTaskId"] == task_id and payload["workerNumber"] == 0
    assert c.post(f"/druid/indexer/v1/task/{worker_id}/shutdown") == {"task": worker_id}
    status = c.wait(task_id)
    assert status["errorMsg"].startswith("WorkerFailed: ")
    error = c.report(task_id)["status"]["errorReport"]
    assert error["taskId"] == worker_id and error["error"]["workerTaskId"] == worker_id
    assert c.status(worker_id)["statusCode"] == "FAILED"
    assert segments(c, "k") == []


def test_timeout_cancels_with_query_timeout(server, files_server):
    c = server.client
    task_id = c.submit(f"INSERT INTO to SELECT TIME_PARSE(\"timestamp\") AS __time, page "
                       f"FROM {slow_source(files_server)} PARTITIONED BY DAY", {"timeout": 1500})
    status = c.wait(task_id)
    assert status["errorMsg"] == "Canceled: Query canceled due to [Query timeout]."
    assert c.report(task_id)["status"]["errorReport"]["error"]["reason"] == "QUERY_TIMEOUT"
    assert segments(c, "to") == []


def test_overwrite_where_replaces_only_its_chunks(server):
    c = server.client
    days = [("2021-01-01T00:00:00Z", "a", 1), ("2021-01-02T00:00:00Z", "b", 2), ("2021-01-03T00:00:00Z", "c", 3)]
    assert c.wait(c.submit(f"INSERT INTO ow SELECT TIME_PARSE(ts) AS __time, k FROM {inline(days)} "
                           "PARTITIONED BY DAY"))["statusCode"] == "SUCCESS"
    where = "__time >= TIMESTAMP '2021-01-02' AND __time < TIMESTAMP '2021-01-03'"
    task_id = c.submit(f"REPLACE INTO ow OVERWRITE WHERE {where} SELECT TIME_PARSE(ts) AS __time, UPPER(k) AS k "
                       f"FROM {inline(days)} WHERE TIME_PARSE(ts) >= TIMESTAMP '2021-01-02' "
                       "AND TIME_PARSE(ts) < TIMESTAMP '2021-01-03' PARTITIONED BY DAY")
    assert c.wait(task_id)["statusCode"] == "SUCCESS"
    payload = c.get(f"/druid/indexer/v1/task/{task_id}")["payload"]
    assert payload["sqlQueryContext"]["sqlReplaceTimeChunks"] == "2021-01-02T00:00:00.000Z/2021-01-03T00:00:00.000Z"
    assert payload["spec"]["destination"]["replaceTimeChunks"] == ["2021-01-02T00:00:00.000Z/2021-01-03T00:00:00.000Z"]
    assert c.sql("SELECT k FROM ow ORDER BY __time") == [{"k": "a"}, {"k": "B"}, {"k": "c"}]
    # rows outside the OVERWRITE WHERE range fail the task and publish nothing
    bad = c.submit(f"REPLACE INTO ow OVERWRITE WHERE {where} SELECT TIME_PARSE(ts) AS __time, k FROM {inline(days)} "
                   "PARTITIONED BY DAY")
    assert c.wait(bad)["errorMsg"].startswith("InsertTimeOutOfBounds: ")
    assert c.sql("SELECT k FROM ow ORDER BY __time") == [{"k": "a"}, {"k": "B"}, {"k": "c"}]


def test_null_bytes_fail_unless_removed(server):
    c = server.client
    rows = [("2021-01-01T00:00:00Z", "a\u0000b", 1)]
    task_id = c.submit(f"INSERT INTO nb SELECT TIME_PARSE(ts) AS __time, k FROM {inline(rows)} PARTITIONED BY DAY")
    assert c.wait(task_id)["statusCode"] == "FAILED"
    error = c.report(task_id)["status"]["errorReport"]["error"]
    assert error["errorCode"] == "InvalidNullByte"
    assert (error["column"], error["rowNumber"], error["position"], error["value"]) == ("k", 1, 2, "a\u0000b")
    ok = c.submit(f"INSERT INTO nb SELECT TIME_PARSE(ts) AS __time, k FROM {inline(rows)} PARTITIONED BY DAY",
                  {"removeNullBytes": True})
    assert c.wait(ok)["statusCode"] == "SUCCESS"
    assert c.sql("SELECT k FROM nb") == [{"k": "ab"}]


def test_too_many_clustered_by_columns(server):
    c = server.client
    cols = ", ".join(f"k AS c{i}" for i in range(1500))
    task_id = c.submit(f"INSERT INTO cb SELECT TIME_PARSE(ts) AS __time, {cols} FROM {inline(ROWS[:1])} "
                       f"PARTITIONED BY DAY CLUSTERED BY {', '.join(f'c{i}' for i in range(1500))}")
    error = c.report(task_id)["status"]["errorReport"]["error"] if c.wait(task_id) else None
    assert error["errorCode"] == "TooManyClusteredByColumns"
    assert (error["numColumns"], error["maxColumns"], error["stage"]) == (1502, 1500, 0)


def test_task_assignment_max_and_auto(server, tmp_path):
    c = server.client
    for i in range(3):
        (tmp_path / f"p{i}.json").write_text(json.dumps({"ts": "2021-01-01T00:00:00Z", "k": f"f{i}", "n": i}) + "\n")
    ext = (f"TABLE(EXTERN('{{\"type\":\"local\",\"baseDir\":\"{tmp_path}\",\"filter\":\"p*.json\"}}', "
           f"'{{\"type\":\"json\"}}', '{SIG}'))")
    sql = f"INSERT INTO ta SELECT TIME_PARSE(ts) AS __time, k FROM {ext} PARTITIONED BY DAY"
    most = c.submit(sql, {"maxNumTasks": 3})
    assert c.wait(most)["statusCode"] == "SUCCESS"
    report = c.report(most)
    assert report["stages"][0]["workerCount"] == 2
    assert sorted(w["input0"]["files"][0] for w in report["counters"]["0"].values()) == [1, 2]
    assert all(w["input0"]["totalFiles"] == [3] for w in report["counters"]["0"].values())
    auto = c.submit(sql, {"maxNumTasks": 3, "taskAssignment": "AUTO"})
    assert c.wait(auto)["statusCode"] == "SUCCESS"
    assert c.report(auto)["stages"][0]["workerCount"] == 1
    assert c.get(f"/druid/indexer/v1/task/{auto}")["payload"]["spec"]["assignmentStrategy"] == "auto"
    assert c.sql("SELECT COUNT(*) AS n FROM ta") == [{"n": 6}]
