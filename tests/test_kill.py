"""Kill tasks: unused segments leave the metadata store and deep storage for good."""
from __future__ import annotations

import json
import re
from pathlib import Path

from client import HttpError

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T03:00:00Z", "k": "a", "n": 1},
    {"ts": "2021-01-02T03:00:00Z", "k": "b", "n": 2},
    {"ts": "2021-01-03T03:00:00Z", "k": "c", "n": 3},
])
SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'
SRC = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"
TASK = "/druid/indexer/v1/task"
D = "/druid/coordinator/v1/datasources"


def replace(c, ds: str, where: str = "") -> None:
    task = c.submit(f"REPLACE INTO {ds} OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {SRC} {where} "
                    "PARTITIONED BY DAY")
    assert c.wait(task)["statusCode"] == "SUCCESS"


def segment_files(data_dir: Path, ds: str) -> list[Path]:
    return sorted((data_dir / "segments" / ds).rglob("index.seg"))


def test_kill_deletes_only_unused_segments_in_the_interval(server):
    c = server.client
    replace(c, "k1")
    first = segment_files(server.data_dir, "k1")
    assert len(first) == 3
    replace(c, "k1")  # a new version overshadows all three; their files stay (as in Druid)
    assert len(segment_files(server.data_dir, "k1")) == 6

    body = {"type": "kill", "dataSource": "k1", "interval": "2021-01-01/2021-01-03", "batchSize": 1}
    task_id = c.post(TASK, body)["task"]
    assert re.fullmatch(r"kill_k1_[a-z]{8}_2021-01-01T00:00:00\.000Z_2021-01-03T00:00:00\.000Z_\d{4}-.*Z", task_id)
    status = c.wait(task_id)
    assert status["statusCode"] == "SUCCESS" and status["type"] == "kill" and status["dataSource"] == "k1"
    report = c.get(f"{TASK}/{task_id}/reports")
    assert report == {"killUnusedSegments": {"type": "killUnusedSegments", "taskId": task_id, "payload": {
        "numSegmentsKilled": 2, "numBatchesProcessed": 2, "numSegmentsMarkedAsUnused": None}}}
    payload = c.get(f"{TASK}/{task_id}")["payload"]
    assert payload["type"] == "kill" and payload["interval"] == "2021-01-01T00:00:00.000Z/2021-01-03T00:00:00.000Z"
    assert payload["batchSize"] == 1 and payload["id"] == task_id

    left = segment_files(server.data_dir, "k1")
    assert len(left) == 4 and set(first) - set(left) == {first[0], first[1]}
    assert c.sql("SELECT SUM(n) AS s FROM k1") == [{"s": 6}]  # the used data is untouched
    assert len(c.get(f"{D}/k1/segments")) == 3


def test_coordinator_interval_delete_issues_a_kill_task(server):
    c = server.client
    replace(c, "k2")
    c.post(f"{D}/k2/markUnused", {"interval": "2021-01-02/2021-01-04"})
    assert len(segment_files(server.data_dir, "k2")) == 3
    status, _, text = c.request("DELETE", f"{D}/k2/intervals/2021-01-01_2021-01-04")
    assert (status, text) == (200, "")
    kill = c.get("/druid/indexer/v1/tasks?type=kill")
    assert len(kill) == 1 and kill[0]["id"].startswith("api-issued_kill_k2_")
    assert c.wait(kill[0]["id"])["statusCode"] == "SUCCESS"
    assert len(segment_files(server.data_dir, "k2")) == 1
    assert c.sql("SELECT k FROM k2") == [{"k": "a"}]


def test_kill_task_validation(server):
    c = server.client
    for body, culprit in [
        ({"type": "kill", "dataSource": "x", "interval": "2021-01-01/2021-01-02", "batchSize": 0}, "batchSize[0]"),
        ({"type": "kill", "dataSource": "x", "interval": "2021-01-01/2021-01-02", "limit": -1}, "limit[-1]"),
        ({"type": "kill", "dataSource": "x", "interval": "yesterday"}, "Invalid interval [yesterday]"),
        ({"type": "kill", "dataSource": "x"}, "interval"),
        ({"type": "index_parallel", "spec": {}}, "Task type [index_parallel]"),
    ]:
        try:
            c.post(TASK, body)
        except HttpError as e:
            assert e.status == 400 and culprit in e.json()["errorMessage"], (body, e.body)
        else:
            raise AssertionError(f"accepted {body}")
