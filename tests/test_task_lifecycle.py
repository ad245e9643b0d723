"""Quickstart ingestion, cancellation, errors, restart and shutdown, over real HTTP."""
from __future__ import annotations

import json
import signal
import time

import pytest

from client import HttpError
from conftest import WIKITICKER, Server, seed_style_wikipedia

_TYPES = {"metroCode": "long", "delta": "long", "added": "long", "deleted": "long"}
_COLUMNS = ["time", "channel", "cityName", "comment", "countryIsoCode", "countryName", "isAnonymous", "isMinor",
            "isNew", "isRobot", "isUnpatrolled", "metroCode", "namespace", "page", "regionIsoCode", "regionName",
            "user", "delta", "added", "deleted"]


def quickstart_sql(base_dir: str, filt: str = "wikiticker-2015-09-12-sampled.json.gz") -> str:
    """Druid's quickstart REPLACE (spec §10), with baseDir pointing at our copy of the sample."""
    signature = json.dumps([{"name": c, "type": _TYPES.get(c, "string")} for c in _COLUMNS])
    selected = ", ".join(f'"{c}"' for c in _COLUMNS[1:])
    return (f'REPLACE INTO "wikipedia" OVERWRITE ALL\nWITH "input_data" AS (\n  SELECT *\n  FROM TABLE(\n    EXTERN(\n'
            f'      \'{{"type":"local","baseDir":"{base_dir}","filter":"{filt}"}}\',\n'
            f'      \'{{"type":"json"}}\',\n      \'{signature}\'\n    )\n  )\n)\n'
            f'SELECT\n  TIME_PARSE("time") AS "__time",\n  {selected}\nFROM "input_data"\nPARTITIONED BY DAY')


def test_quickstart_replace_local(server):
    task_id = server.client.submit(quickstart_sql(str(WIKITICKER.parent)))
    assert server.client.wait(task_id)["statusCode"] == "SUCCESS"
    first = server.client.sql('SELECT __time, "user" FROM wikipedia ORDER BY __time LIMIT 1')
    assert first == [{"__time": "2015-09-12T00:46:58.771Z", "user": "GELongstreet"}]
    report = server.client.report(task_id)
    assert report["counters"]["0"]["0"]["input0"]["bytes"] == [WIKITICKER.stat().st_size]
    segments = server.client.get("/druid/coordinator/v1/metadata/datasources/wikipedia/segments?full")
    assert len(segments) == 1 and segments[0]["shardSpec"]["type"] == "numbered"


def test_replace_overwrites_and_insert_appends(server, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.json").write_text('{"t":"2020-01-01T01:00:00Z","k":"x","v":1}\n{"t":"2020-01-02T01:00:00Z","k":"y","v":2}\n')
    sig = '[{"name":"t","type":"string"},{"name":"k","type":"string"},{"name":"v","type":"long"}]'
    ext = f"TABLE(EXTERN('{{\"type\":\"local\",\"files\":[\"{data / 'a.json'}\"]}}', '{{\"type\":\"json\"}}', '{sig}'))"
    c = server.client
    first = c.submit(f"INSERT INTO t SELECT TIME_PARSE(t) AS __time, k, v FROM {ext} PARTITIONED BY DAY")
    assert c.wait(first)["statusCode"] == "SUCCESS"
    second = c.submit(f"INSERT INTO t SELECT TIME_PARSE(t) AS __time, k, v FROM {ext} PARTITIONED BY DAY")
    assert c.wait(second)["statusCode"] == "SUCCESS"
    assert c.sql("SELECT COUNT(*) AS n, SUM(v) AS s FROM t") == [{"n": 4, "s": 6}]
    segs = c.get("/druid/coordinator/v1/metadata/datasources/t/segments?full")
    # appended segments share the chunk's version and take the next partition numbers
    by_interval = {}
    for s in segs:
        by_interval.setdefault(s["interval"], []).append(s)
    assert len(by_interval) == 2
    for group in by_interval.values():
        assert sorted(s["shardSpec"]["partitionNum"] for s in group) == [0, 1]
        assert len({s["version"] for s in group}) == 1
    third = c.submit(f"REPLACE INTO t OVERWRITE ALL SELECT TIME_PARSE(t) AS __time, k, v FROM {ext} "
                     "WHERE k = 'x' PARTITIONED BY ALL")
    assert c.wait(third)["statusCode"] == "SUCCESS"
    assert c.sql("SELECT k, v FROM t") == [{"k": "x", "v": 1}]
    segs = c.get("/druid/coordinator/v1/metadata/datasources/t/segments?full")
    assert [s["interval"] for s in segs] == ["-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"]


def test_cancel_running_task_publishes_nothing(server, files_server):
    base, root = files_server
    seed_style_wikipedia(root / "w.json.gz")
    sig = '[{"name":"timestamp","type":"string"},{"name":"page","type":"string"}]'
    sql = (f"INSERT INTO slow SELECT TIME_PARSE(\"timestamp\") AS __time, page FROM TABLE(EXTERN("
           f"'{{\"type\":\"http\",\"uris\":[\"{base}/slow/w.json.gz\"]}}', '{{\"type\":\"json\"}}', '{sig}')) "
           "PARTITIONED BY DAY")
    c = server.client
    task_id = c.submit(sql)
    # wait until the worker is reading (counters show up or the stage started)
    deadline = time.time() + 30
    while time.time() < deadline:
        live = c.report(task_id)
        if live["stages"][0].get("phase") == "READING_INPUT":
            break
        time.sleep(0.05)
    # the report is live while the task runs
    assert live["status"]["status"] == "RUNNING" and live["status"]["durationMs"] >= 0
    assert live["stages"][0]["phase"] == "READING_INPUT" and "phase" not in live["stages"][1]
    assert live["status"]["workers"]["0"][0]["state"] == "RUNNING"
    assert c.status(task_id)["statusCode"] == "RUNNING" and c.status(task_id)["duration"] == -1
    assert c.post(f"/druid/indexer/v1/task/{task_id}/shutdown") == {"task": task_id}
    final = c.wait(task_id, timeout=30)
    assert final["statusCode"] == "FAILED"
    assert final["errorMsg"].startswith("Canceled: ")
    error = c.report(task_id)["status"]["errorReport"]["error"]
    assert error == {"errorCode": "Canceled", "reason": "TASK_SHUTDOWN",
                     "errorMessage": "Query canceled due to [Task shutdown]."}
    assert c.get("/druid/coordinator/v1/metadata/datasources/slow/segments?full") == []
    # shutting down a finished task is a no-op
    assert c.post(f"/druid/indexer/v1/task/{task_id}/shutdown") == {"task": task_id}


@pytest.mark.parametrize("route", ["", "/", "/status", "/reports", "/report"])
def test_unknown_task_is_404(server, route):
    with pytest.raises(HttpError) as e:
        server.client.request("GET", f"/druid/indexer/v1/task/query-nope{route}")
    assert e.value.status == 404
    assert e.value.body == "Cannot find any task with id: [query-nope]"


def test_unknown_task_shutdown_is_404(server):
    with pytest.raises(HttpError) as e:
        server.client.request("POST", "/druid/indexer/v1/task/query-nope/shutdown")
    assert e.value.status == 404


@pytest.mark.parametrize("sql, message", [
    ("INSERT INTO t SELECT 1", "Operation [INSERT] requires a PARTITIONED BY to be explicitly defined, but none "
                               "was found."),
    ("SELEC 1", "Incorrect syntax"),
    ("INSERT INTO t SELECT * FROM nowhere PARTITIONED BY DAY", "Object 'nowhere' not found"),
    ("INSERT INTO t SELECT 1 AS x PARTITIONED BY DAY", "the query must specify a time column (named __time)"),
    ("INSERT INTO t SELECT 1 AS __time PARTITIONED BY ALL", "Field[__time] was the wrong type[BIGINT], expected TIMESTAMP"),
    ("INSERT INTO t SELECT 1 AS a, 2 AS a PARTITIONED BY ALL", "Duplicate field in SELECT: [a]"),
    ("REPLACE INTO t SELECT 1 AS a PARTITIONED BY ALL", "Missing time chunk information in OVERWRITE clause"),
])
def test_bad_sql_is_400_with_druid_error(server, sql, message):
    with pytest.raises(HttpError) as e:
        server.client.request("POST", "/druid/v2/sql/task", {"query": sql})
    assert e.value.status == 400
    err = e.value.json()
    assert set(err) == {"error", "errorCode", "persona", "category", "errorMessage", "context"}
    assert err["error"] == "druidException" and err["errorCode"] == "invalidInput"
    assert err["persona"] == "USER" and err["category"] == "INVALID_INPUT"
    assert message in err["errorMessage"]


def test_malformed_body_is_400(server):
    with pytest.raises(HttpError) as e:
        server.client.request("POST", "/druid/v2/sql/task", "{not json")
    assert e.value.status == 400 and e.value.json()["errorCode"] == "invalidInput"


def test_restart_keeps_tasks_and_data(tmp_path):
    srv = Server(tmp_path / "var")
    srv.start()
    try:
        task_id = srv.client.submit(quickstart_sql(str(WIKITICKER.parent)))
        assert srv.client.wait(task_id)["statusCode"] == "SUCCESS"
        report = srv.client.report(task_id)
    finally:
        assert srv.stop() == 0
    srv.start()
    try:
        assert srv.client.status(task_id)["statusCode"] == "SUCCESS"
        assert srv.client.report(task_id) == report
        assert srv.client.get(f"/druid/indexer/v1/task/{task_id}")["payload"]["id"] == task_id
        assert srv.client.sql("SELECT COUNT(*) AS c FROM wikipedia") == [{"c": 39244}]
        assert any(t["id"] == task_id for t in srv.client.get("/druid/indexer/v1/tasks"))
    finally:
        srv.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_server_mid_task_publishes_nothing(tmp_path, files_server, sig):
    base, root = files_server
    seed_style_wikipedia(root / "w.json.gz")
    srv = Server(tmp_path / "var")
    srv.start()
    sql = (f"INSERT INTO slow SELECT TIME_PARSE(\"timestamp\") AS __time, page FROM TABLE(EXTERN("
           f"'{{\"type\":\"http\",\"uris\":[\"{base}/slow/w.json.gz\"]}}', '{{\"type\":\"json\"}}', "
           "'[{\"name\":\"timestamp\",\"type\":\"string\"},{\"name\":\"page\",\"type\":\"string\"}]')) "
           "PARTITIONED BY DAY")
    try:
        task_id = srv.client.submit(sql)
        assert srv.client.status(task_id)["statusCode"] == "RUNNING"
    finally:
        code = srv.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0
    srv.start()
    try:
        status = srv.client.status(task_id)
        assert status["statusCode"] == "FAILED"
        assert status["errorMsg"].startswith("Canceled: ")
        assert srv.client.get("/druid/coordinator/v1/metadata/datasources/slow/segments?full") == []
        assert not (tmp_path / "var" / "tmp" / task_id).exists()
    finally:
        srv.stop()


def test_sigkill_inside_the_publish_transaction(tmp_path, monkeypatch):
    """The server dies while its publish transaction is open (segments pushed and inserted,
    not committed): after a restart nothing of the task is visible and the earlier data is."""
    srv = Server(tmp_path / "var")
    seg_root = tmp_path / "var" / "segments" / "wikipedia"
    srv.start()
    try:
        assert srv.client.wait(srv.client.submit(quickstart_sql(str(WIKITICKER.parent))))["statusCode"] == "SUCCESS"
        before = srv.client.get("/druid/coordinator/v1/metadata/datasources/wikipedia/segments?full")
    finally:
        assert srv.stop() == 0
    files_before = set(seg_root.rglob("*.seg"))
    marker = tmp_path / "publishing"
    monkeypatch.setenv("MSQCORE_TEST_PAUSE_PUBLISH", f"wikipedia:{marker}")
    srv.start()
    try:
        task_id = srv.client.submit(quickstart_sql(str(WIKITICKER.parent)).replace('FROM "input_data"',
                                    'FROM "input_data" WHERE "channel" = \'#en.wikipedia\''),
                                    {"maxNumTasks": 3, "rowsPerSegment": 5000})
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), srv.client.status(task_id)
        # really mid-publish: the new segments were pushed to deep storage
        assert len(set(seg_root.rglob("*.seg")) - files_before) >= 2
        assert (tmp_path / "var" / "tmp" / task_id).exists()
        # reads do not wait for the open transaction, and see only what is committed
        assert srv.client.status(task_id)["statusCode"] == "RUNNING"
        assert srv.client.get("/druid/coordinator/v1/metadata/datasources/wikipedia/segments?full") == before
    finally:
        srv.stop(signal.SIGKILL)
    monkeypatch.delenv("MSQCORE_TEST_PAUSE_PUBLISH")
    srv.start()
    try:
        c = srv.client
        status = c.status(task_id)
        assert status["statusCode"] == "FAILED"
        assert status["errorMsg"] == ("Canceled: Query canceled due to [Unknown]: the server stopped while the task "
                                      "was running.")
        assert c.get("/druid/coordinator/v1/metadata/datasources/wikipedia/segments?full") == before
        assert c.sql("SELECT COUNT(*) AS c FROM wikipedia") == [{"c": 39244}]
        assert not (tmp_path / "var" / "tmp" / task_id).exists()
        # the files it pushed are gone, and so is any claim that its workers succeeded
        assert set(seg_root.rglob("*.seg")) == files_before
        workers = [t for t in c.get("/druid/indexer/v1/tasks") if t["groupId"] == task_id and t["id"] != task_id]
        assert workers and {t["statusCode"] for t in workers} == {"FAILED"}
    finally:
        srv.stop()
