"""Key statistics, range partitions by key, hash-partitioned groupBy stages and the partition
limits (spec §5.3–§5.7, §6.3), over real HTTP with several input files and workers."""
from __future__ import annotations

import json
import math
import os
import random
import time
from collections import Counter

import pytest

SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'
PHASES = ["READING_INPUT", "MERGING_STATISTICS", "POST_READING", "RESULTS_READY", "FINISHED"]


def write_files(root, rows, files: int) -> str:
    """``rows`` as JSON lines dealt to ``files`` local files; returns the EXTERN table."""
    root.mkdir(exist_ok=True)
    for i in range(files):
        with open(root / f"part{i}.json", "w") as out:
            for ts, k, n in rows[i::files]:
                out.write(json.dumps({"ts": ts, "k": k, "n": n}) + "\n")
    return (f"TABLE(EXTERN('{{\"type\":\"local\",\"baseDir\":\"{root}\",\"filter\":\"part*.json\"}}', "
            f"'{{\"type\":\"json\"}}', '{SIG}'))")


def segments(client, ds):
    segs = client.get(f"/druid/coordinator/v1/metadata/datasources/{ds}/segments?full")
    return sorted(segs, key=lambda s: (s["interval"], s["shardSpec"]["partitionNum"]))


def partition_rows(report, stage: int) -> list[int]:
    """Rows per input partition of a stage, summed over its workers (counters ``input0``)."""
    total: Counter = Counter()
    for counters in report["counters"][str(stage)].values():
        for p, n in enumerate(counters["input0"]["rows"]):
            total[p] += n
    return [total[p] for p in range(len(total))]


def run(client, sql, context, timeout=300):
    task_id = client.submit(sql, context)
    seen: list[str] = []
    deadline = time.time() + timeout
    while client.status(task_id)["statusCode"] == "RUNNING" and time.time() < deadline:
        phase = client.report(task_id)["stages"][0].get("phase")
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
        time.sleep(0.02)
    return task_id, client.wait(task_id), seen


def test_range_partitions_come_from_key_statistics(server, tmp_path):
    rng = random.Random(7)
    keys = [f"key{i:03d}" for i in range(300)]
    # two days; day 1 has 3,000 rows over 300 keys, day 2 has 700
    rows = [("2024-01-01T%02d:00:00Z" % rng.randrange(24), rng.choice(keys), i) for i in range(3000)]
    rows += [("2024-01-02T%02d:00:00Z" % rng.randrange(24), rng.choice(keys), i) for i in range(700)]
    ext = write_files(tmp_path / "in", rows, 3)
    c = server.client
    task_id, status, seen = run(c, f"REPLACE INTO rp OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {ext} "
                                   "PARTITIONED BY DAY CLUSTERED BY k", {"maxNumTasks": 3, "rowsPerSegment": 1000})
    assert status["statusCode"] == "SUCCESS", status
    # phases only move forward (the stage may pass through some between two polls)
    assert seen == sorted(seen, key=PHASES.index)
    report = c.report(task_id)
    stage0, stage1 = report["stages"][:2]
    assert stage0["workerCount"] == 2 and stage0["shuffle"] == "globalSort" and stage0["phase"] == "FINISHED"
    assert stage0["definition"]["shuffleSpec"]["clusterBy"]["columns"][-1]["columnName"] == "__boost"
    # 3 partitions for day 1 (3,000 / 1,000), 1 for day 2: one segment each
    assert stage0["partitionCount"] == 4 and stage1["partitionCount"] == 4
    segs = segments(c, "rp")
    assert len(segs) == 4
    per_partition = partition_rows(report, 1)
    assert sum(per_partition[:3]) == 3000 and per_partition[3] == 700
    assert all(900 <= n <= 1100 for n in per_partition[:3]), per_partition
    # every worker's shuffle counter has one entry per partition, adding up to the same rows
    shuffle = [w["shuffle"]["rows"] for w in report["counters"]["0"].values()]
    assert all(len(r) == 4 for r in shuffle)
    assert [sum(col) for col in zip(*shuffle)] == per_partition
    # range shard specs from the boundaries: contiguous, open at both ends of each chunk
    day1 = [s["shardSpec"] for s in segs[:3]]
    assert [s["partitionNum"] for s in day1] == [0, 1, 2] and all(s["numCorePartitions"] == 3 for s in day1)
    assert day1[0]["start"] is None and day1[-1]["end"] is None
    assert day1[0]["end"] == day1[1]["start"] and day1[1]["end"] == day1[2]["start"]
    assert day1[0]["end"][0] < day1[1]["end"][0]
    assert segs[3]["shardSpec"] == {"type": "range", "dimensions": ["k"], "start": None, "end": None,
                                    "partitionNum": 0, "numCorePartitions": 1}
    # each row sits in a segment whose range holds its key: pruned equality queries see every row
    expected = Counter(k for _, k, _ in rows)
    for key in ("key000", day1[1]["start"][0], day1[2]["start"][0], "key299"):
        assert c.sql(f"SELECT COUNT(*) AS n FROM rp WHERE k = '{key}'") == [{"n": expected[key]}]
    assert c.sql("SELECT COUNT(*) AS n FROM rp") == [{"n": 3700}]


def test_boost_splits_a_run_of_equal_keys(server, tmp_path):
    rows = [("2024-01-01T00:00:00Z", "same", i) for i in range(35)]
    ext = write_files(tmp_path / "in", rows, 2)
    c = server.client
    task_id, status, _ = run(c, f"REPLACE INTO eq OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {ext} "
                                "PARTITIONED BY DAY CLUSTERED BY k", {"maxNumTasks": 3, "rowsPerSegment": 10})
    assert status["statusCode"] == "SUCCESS", status
    specs = [s["shardSpec"] for s in segments(c, "eq")]
    assert [(s["start"], s["end"]) for s in specs] == [(None, ["same"]), (["same"], ["same"]),
                                                      (["same"], ["same"]), (["same"], None)]
    assert sum(partition_rows(c.report(task_id), 1)) == 35
    assert c.sql("SELECT COUNT(*) AS n, SUM(n) AS s FROM eq WHERE k = 'same'") == [{"n": 35, "s": 595}]


def test_large_chunk_is_cut_from_a_sample(server, tmp_path):
    """More rows than the statistics keep per chunk (4,096 keys): boundaries are quantiles of a
    sample, so partitions are about, not exactly, rowsPerSegment rows."""
    rng = random.Random(3)
    rows = [("2024-01-01T00:00:00Z", f"k{rng.randrange(100_000):05d}", i) for i in range(20_000)]
    ext = write_files(tmp_path / "in", rows, 2)
    c = server.client
    task_id, status, _ = run(c, f"REPLACE INTO big OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {ext} "
                                "PARTITIONED BY DAY CLUSTERED BY k", {"maxNumTasks": 3, "rowsPerSegment": 5000})
    assert status["statusCode"] == "SUCCESS", status
    per_partition = partition_rows(c.report(task_id), 1)
    assert len(per_partition) == 4 and sum(per_partition) == 20_000
    assert all(3500 <= n <= 6500 for n in per_partition), per_partition


def test_group_by_select_runs_post_shuffle_on_every_worker(server, tmp_path):
    rows = [("2024-01-01T00:00:00Z", f"g{i % 37}", i) for i in range(2000)]
    ext = write_files(tmp_path / "in", rows, 4)
    c = server.client
    sql = f"SELECT k, COUNT(*) AS c, SUM(n) AS s FROM {ext} GROUP BY k ORDER BY s DESC LIMIT 5 OFFSET 2"
    task_id, status, _ = run(c, sql, {"maxNumTasks": 3})
    assert status["statusCode"] == "SUCCESS", status
    report = c.report(task_id)
    sums = Counter()
    for _, k, n in rows:
        sums[k] += n
    expected = sorted(sums.items(), key=lambda kv: -kv[1])[2:7]
    assert report["results"]["results"] == [[k, 2000 // 37 + (1 if int(k[1:]) < 2000 % 37 else 0), s]
                                            for k, s in expected]
    pre, post = report["stages"]
    assert pre["definition"]["shuffleSpec"] == {
        "type": "hash", "clusterBy": {"columns": [{"columnName": "d0", "order": "NONE"}]}, "partitions": 2}
    assert pre["shuffle"] == "hash" and pre["partitionCount"] == 2 and pre["workerCount"] == 2
    assert "sort" not in pre
    assert post["workerCount"] == 2 and post["phase"] == "FINISHED"
    # partial groups leave stage 0 in two hash partitions; each post-shuffle worker reads one
    shuffled = [w["shuffle"]["rows"] for w in report["counters"]["0"].values()]
    assert all(len(r) == 2 for r in shuffled)
    read = [sum(w["input0"]["rows"]) for w in report["counters"]["1"].values()]
    assert sorted(read) == sorted(sum(col) for col in zip(*shuffled)) and all(read)


def test_rollup_post_shuffle_on_every_worker(server, tmp_path):
    rows = [("2024-01-01T%02d:30:00Z" % (i % 24), f"c{i % 5}", i) for i in range(1200)]
    ext = write_files(tmp_path / "in", rows, 3)
    c = server.client
    task_id, status, _ = run(
        c, f"REPLACE INTO ru OVERWRITE ALL SELECT TIME_FLOOR(TIME_PARSE(ts), 'PT1H') AS __time, k, "
           f"COUNT(*) AS cnt, SUM(n) AS total FROM {ext} GROUP BY 1, 2 PARTITIONED BY DAY CLUSTERED BY k",
        {"maxNumTasks": 3, "finalizeAggregations": False, "groupByEnableMultiValueUnnesting": False})
    assert status["statusCode"] == "SUCCESS", status
    stages = c.report(task_id)["stages"]
    assert [s["workerCount"] for s in stages] == [2, 2, 1]
    assert stages[0]["shuffle"] == "hash" and stages[1]["shuffle"] == "globalSort"
    assert c.sql("SELECT COUNT(*) AS r, SUM(cnt) AS c, SUM(total) AS t FROM ru") == [
        {"r": 120, "c": 1200, "t": sum(range(1200))}]


def test_too_many_buckets(server, tmp_path):
    # 5,001 hourly time chunks
    base = 1704067200  # 2024-01-01T00:00:00Z
    rows = [(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 3600 * h)), "a", h) for h in range(5001)]
    ext = write_files(tmp_path / "in", rows, 1)
    c = server.client
    task_id, status, _ = run(c, f"INSERT INTO tb SELECT TIME_PARSE(ts) AS __time, k FROM {ext} "
                                "PARTITIONED BY HOUR", {})
    assert status["statusCode"] == "FAILED"
    assert status["errorMsg"] == ("TooManyBuckets: Too many partition buckets (max = 5,000); try breaking your query "
                                  "up into smaller queries or using a wider PARTITIONED BY")
    assert c.report(task_id)["status"]["errorReport"]["error"] == {
        "errorCode": "TooManyBuckets", "maxBuckets": 5000,
        "errorMessage": "Too many partition buckets (max = 5,000); try breaking your query up into smaller queries "
                        "or using a wider PARTITIONED BY"}
    assert segments(c, "tb") == []


def test_too_many_partitions(server, tmp_path):
    rows = [("2024-01-01T00:00:00Z", f"k{i}", i) for i in range(25_001)]
    ext = write_files(tmp_path / "in", rows, 1)
    c = server.client
    task_id, status, _ = run(c, f"INSERT INTO tp SELECT TIME_PARSE(ts) AS __time, k FROM {ext} "
                                "PARTITIONED BY DAY CLUSTERED BY k", {"rowsPerSegment": 1})
    assert status["statusCode"] == "FAILED"
    error = c.report(task_id)["status"]["errorReport"]
    assert error["error"] == {
        "errorCode": "TooManyPartitions", "maxPartitions": 25000,
        "errorMessage": "Too many partitions (max = 25000). Try increasing the limit using the maxPartitions query "
                        "context parameter, breaking your query up into smaller queries, or using a larger target "
                        "size."}
    assert c.report(task_id)["stages"][0]["phase"] == "FAILED"
    assert segments(c, "tp") == []


@pytest.mark.parametrize("files", [1, 3])
def test_empty_result_makes_no_partitions(server, tmp_path, files):
    rows = [("2024-01-01T00:00:00Z", f"k{i}", i) for i in range(10)]
    ext = write_files(tmp_path / "in", rows, files)
    c = server.client
    task_id, status, _ = run(c, f"INSERT INTO em SELECT TIME_PARSE(ts) AS __time, k FROM {ext} WHERE k = 'none' "
                                "PARTITIONED BY DAY CLUSTERED BY k", {"maxNumTasks": 3})
    assert status["statusCode"] == "SUCCESS"
    stages = c.report(task_id)["stages"]
    assert stages[0]["phase"] == "FINISHED" and stages[1]["phase"] == "FINISHED"
    assert segments(c, "em") == []


def test_max_frame_size_is_used_and_too_large_is_not_enough_memory(server, tmp_path):
    rows = [("2024-01-01T00:00:00Z", "x" * 3000, 1), ("2024-01-01T00:00:00Z", "y", 2)]
    ext = write_files(tmp_path / "in", rows, 2)
    c = server.client
    sql = f"REPLACE INTO fs OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {ext} PARTITIONED BY DAY"
    # the shuffle's frames are maxFrameSize bytes at most: a 3,000-byte row cannot fit in 2,048
    _, status, _ = run(c, sql, {"maxFrameSize": 2048})
    assert status["errorMsg"] == ("RowTooLarge: Encountered row that cannot fit in a single frame (max frame size = "
                                  "2,048). Reduce your row size or increase the context parameter[maxFrameSize].")
    _, status, _ = run(c, sql, {"maxFrameSize": 8192})
    assert status["statusCode"] == "SUCCESS"
    # Druid's WorkerMemoryParameters (engine/memory.py): each worker's share of 75 % of this
    # machine must hold 10 MB of key statistics and 3 frames; enough workers of 2 GiB frames
    # cannot (a leaf stage: no processors or input workers to pay for)
    frame = (1 << 31) - 1
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    minimum = 10_000_000 + 3 * frame
    workers = int(total * 0.75) // minimum + 1
    ext = write_files(tmp_path / "many", [("2024-01-01T00:00:00Z", "x", i) for i in range(workers)], workers)
    sql = f"REPLACE INTO fs OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n FROM {ext} PARTITIONED BY DAY"
    task_id, status, _ = run(c, sql, {"maxFrameSize": frame, "maxNumTasks": workers + 1})
    assert status["statusCode"] == "FAILED"
    report = c.report(task_id)
    error = report["status"]["errorReport"]
    suggested = math.ceil(minimum * workers / 0.75)
    assert error["taskId"] == f"{task_id}-worker0_0" and error["stageNumber"] == 0
    assert error["error"] == {
        "errorCode": "NotEnoughMemory", "suggestedServerMemory": suggested, "serverMemory": total,
        "usableMemory": int(total * 0.75) // workers, "serverWorkers": workers, "serverThreads": 1,
        "maxConcurrentStages": 1, "errorMessage": error["error"]["errorMessage"]}
    assert status["errorMsg"].startswith(f"NotEnoughMemory: Not enough memory. Minimum bytes[{suggested:,}] "
                                         "is needed for the current configuration. (total bytes[")
    assert status["errorMsg"].endswith("Increase JVM memory with the -Xmx option, or reduce worker capacity on this "
                                       "server")
    assert report["stages"][0]["phase"] == "FAILED"
    assert c.get(f"/druid/indexer/v1/task/{task_id}")["payload"]["id"] == task_id
    assert c.get(f"/druid/indexer/v1/task/{task_id}-worker0_0")["payload"]["context"]["maxFrameSize"] == frame
