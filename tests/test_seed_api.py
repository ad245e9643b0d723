"""The seed page's requests, end to end over real HTTP (Druid's SQL-based ingestion API page)."""
from __future__ import annotations

import json

from conftest import SEED_COLUMNS, seed_style_wikipedia

# The exact body of the seed page's "Submit a query" example; only the URI is ours.
SEED_BODY = {
    "query": "INSERT INTO wikipedia\nSELECT\n  TIME_PARSE(\"timestamp\") AS __time,\n  *\nFROM TABLE(\n  EXTERN(\n"
             "    '{\"type\": \"http\", \"uris\": [\"https://static.imply.io/data/wikipedia.json.gz\"]}',\n"
             "    '{\"type\": \"json\"}',\n    '" + json.dumps([{"name": c, "type": "long" if c in (
                 "added", "commentLength", "deleted", "delta") else "string"} for c in SEED_COLUMNS]) +
             "'\n  )\n)\nPARTITIONED BY DAY",
    "context": {"maxNumTasks": 3},
}


def test_seed_insert_end_to_end(server, files_server):
    base, root = files_server
    rows = seed_style_wikipedia(root / "wikipedia.json.gz")
    assert rows == 39244
    body = json.loads(json.dumps(SEED_BODY).replace("https://static.imply.io/data/wikipedia.json.gz",
                                                    f"{base}/wikipedia.json.gz"))
    status, headers, text = server.client.request("POST", "/druid/v2/sql/task/", body)
    assert status == 202
    submitted = json.loads(text)
    assert set(submitted) == {"taskId", "state"} and submitted["state"] == "RUNNING"
    task_id = submitted["taskId"]
    assert task_id.startswith("query-")

    final = server.client.wait(task_id)
    assert final["statusCode"] == "SUCCESS", final
    assert final["status"] == "SUCCESS" and final["runnerStatusCode"] == "NONE"
    assert final["errorMsg"] is None and final["duration"] > 0
    assert final["type"] == "query_controller" and final["dataSource"] == "wikipedia"
    assert final["queueInsertionTime"] == "1970-01-01T00:00:00.000Z"

    report = server.client.report(task_id)
    assert report["status"]["status"] == "SUCCESS"
    counters = report["counters"]
    rows_in = sum(w["input0"]["rows"][0] for w in counters["0"].values())
    assert rows_in == 39244
    assert sum(w["input0"]["files"][0] for w in counters["0"].values()) == 1
    gen = [w["segmentGenerationProgress"] for w in counters["1"].values()]
    assert sum(g["rowsPushed"] for g in gen) == 39244
    assert [s["phase"] for s in report["stages"]] == ["FINISHED", "FINISHED"]
    assert report["stages"][0]["definition"]["processor"]["type"] == "scan"
    assert report["stages"][1]["definition"]["processor"]["type"] == "segmentGenerator"
    assert report["stages"][0]["definition"]["shuffleSpec"]["clusterBy"]["columns"][0]["columnName"] == "__bucket"

    assert server.client.sql("SELECT COUNT(*) AS c FROM wikipedia") == [{"c": 39244}]

    segments = server.client.get("/druid/coordinator/v1/metadata/datasources/wikipedia/segments?full")
    assert [s["interval"] for s in segments] == ["2015-09-12T00:00:00.000Z/2015-09-13T00:00:00.000Z"]
    seg = segments[0]
    assert set(seg) >= {"dataSource", "interval", "version", "loadSpec", "dimensions", "metrics", "shardSpec",
                        "binaryVersion", "size", "identifier"}
    assert seg["binaryVersion"] == 9 and seg["size"] > 0
    assert seg["identifier"] == f"wikipedia_2015-09-12T00:00:00.000Z_2015-09-13T00:00:00.000Z_{seg['version']}"
    # SELECT * keeps the signature's order; "timestamp" stays a dimension as in Druid.
    assert seg["dimensions"].split(",") == SEED_COLUMNS


def test_payload_shape(server, files_server):
    base, root = files_server
    seed_style_wikipedia(root / "wikipedia.json.gz")
    body = json.loads(json.dumps(SEED_BODY).replace("https://static.imply.io/data/wikipedia.json.gz",
                                                    f"{base}/wikipedia.json.gz"))
    task_id = server.client.submit(body["query"], body["context"])
    got = server.client.get(f"/druid/indexer/v1/task/{task_id}")
    assert got["task"] == task_id
    payload = got["payload"]
    assert payload["type"] == "query_controller" and payload["id"] == task_id
    assert payload["groupId"] == task_id and payload["dataSource"] == "wikipedia"
    assert payload["resource"] == {"availabilityGroup": task_id, "requiredCapacity": 1}
    assert payload["context"] == {"forceTimeChunkLock": True, "useLineageBasedSegmentAllocation": True}
    assert payload["sqlQuery"] == body["query"]
    assert payload["sqlQueryContext"]["maxNumTasks"] == 3
    assert payload["sqlQueryContext"]["sqlInsertSegmentGranularity"] == '"DAY"'
    assert payload["sqlTypeNames"][0] == "TIMESTAMP" and len(payload["sqlTypeNames"]) == 25
    assert payload["nativeTypeNames"][0] == "LONG"
    spec = payload["spec"]
    assert spec["query"]["queryType"] == "scan"
    assert spec["query"]["dataSource"]["type"] == "external"
    assert spec["query"]["dataSource"]["inputFormat"] == {
        "type": "json", "keepNullColumns": False, "assumeNewlineDelimited": False, "useJsonNodeReader": False}
    assert spec["query"]["virtualColumns"][0]["expression"] == "timestamp_parse(\"timestamp\",null,'UTC')"
    assert spec["columnMappings"][0] == {"queryColumn": "v0", "outputColumn": "__time"}
    assert spec["destination"] == {"type": "dataSource", "dataSource": "wikipedia", "segmentGranularity": "DAY"}
    assert spec["assignmentStrategy"] == "max"
    assert spec["tuningConfig"] == {"maxNumWorkers": 2, "maxRowsInMemory": 100000, "rowsPerSegment": 3000000}
    assert server.client.wait(task_id)["statusCode"] == "SUCCESS"
