"""Every SELECT stage writes its output as frame files (docs/frames.md): the groupBy and
join ``hash`` shuffles, single-partition outputs, and ORDER BY outputs sorted through the
external sorter. The files are removed when the task ends, so these tests read what the
report's ``shuffle`` counters say about them (rows, bytes, frames per partition), the
``sortProgress`` of the sorter, and the results."""
from __future__ import annotations

import json
import math

import pytest

N_FILES = 4
ROWS_PER_FILE = 150
MAX_FRAME_SIZE = 1024  # the smallest maxFrameSize: a few dozen of these rows per frame


def _row(i: int) -> dict:
    # k: 40 groups; s: a text of varying length, NULL every 7th row; d: 3 join keys and NULL
    return {"k": f"key-{i % 40:03d}", "s": None if i % 7 == 0 else f"s{(i * 37) % 101:03d}" * (1 + i % 3),
            "n": i, "d": None if i % 5 == 0 else "abc"[i % 3]}


ROWS = [_row(i) for i in range(N_FILES * ROWS_PER_FILE)]


@pytest.fixture
def facts(tmp_path) -> str:
    """ROWS in N_FILES local JSON files (one input split each, so several workers read them)."""
    d = tmp_path / "facts"
    d.mkdir()
    for f in range(N_FILES):
        rows = ROWS[f * ROWS_PER_FILE:(f + 1) * ROWS_PER_FILE]
        (d / f"part-{f}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = {"type": "local", "baseDir": str(d), "filter": "*.json"}
    sig = [{"name": "k", "type": "string"}, {"name": "s", "type": "string"}, {"name": "n", "type": "long"},
           {"name": "d", "type": "string"}]
    return f"TABLE(EXTERN('{json.dumps(source)}', '{{\"type\":\"json\"}}', '{json.dumps(sig)}'))"


def _inline(rows: list[dict], sig: list[tuple[str, str]]) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    sig_json = json.dumps([{"name": n, "type": t} for n, t in sig])
    return f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': data})}', '{{\"type\":\"json\"}}', '{sig_json}'))"


def _run(c, sql: str, **context) -> dict:
    task = c.submit(sql, context=context)
    status = c.wait(task)
    report = c.report(task)
    assert status["statusCode"] == "SUCCESS", report["status"].get("errorReport")
    return report


def _shuffles(report: dict, stage: int) -> list[dict]:
    return [w["shuffle"] for w in report["counters"][str(stage)].values()]


def _assert_frame_files(shuffle: dict, frame_size: int) -> None:
    """Per partition: at least one frame (an empty partition holds one empty frame that
    carries the columns), none over ``frame_size``, and as many as the bytes need."""
    for rows, nbytes, frames in zip(shuffle["rows"], shuffle["bytes"], shuffle["frames"]):
        assert frames >= 1
        assert frames >= math.ceil((nbytes - 200) / frame_size)  # 200: file header, index, trailer
        assert nbytes <= frames * frame_size + 200
        if rows == 0:
            assert frames == 1


def test_group_by_hash_shuffle_writes_frame_files(server, facts):
    c = server.client
    report = _run(c, f"SELECT k, COUNT(*) AS c, SUM(n) AS total, MAX(s) AS m FROM {facts} GROUP BY k",
                  maxNumTasks=3, maxFrameSize=MAX_FRAME_SIZE)
    expected = {}
    for r in ROWS:
        c_, t, m = expected.get(r["k"], (0, 0, None))
        expected[r["k"]] = (c_ + 1, t + r["n"], max(m, r["s"]) if m is not None and r["s"] is not None
                            else (m if r["s"] is None else r["s"]))
    assert sorted(map(tuple, report["results"]["results"])) == sorted((k, *v) for k, v in expected.items())
    stages = report["stages"]
    assert stages[0]["definition"]["shuffleSpec"]["type"] == "hash"
    shuffles = _shuffles(report, 0)
    assert len(shuffles) == 2  # maxNumTasks 3: two workers, each with 2 hash partitions
    for shuffle in shuffles:
        assert len(shuffle["rows"]) == 2
        _assert_frame_files(shuffle, MAX_FRAME_SIZE)
    # each worker saw 2 files: every group, once per worker
    assert sum(sum(s["rows"]) for s in shuffles) == 80
    assert any(f > 1 for s in shuffles for f in s["frames"])  # several frames of at most 1,024 bytes
    # the post-shuffle stage read those frames
    inputs = [w["input0"] for w in report["counters"]["1"].values()]
    assert sum(sum(i["rows"]) for i in inputs) == 80
    assert sum(sum(i["frames"]) for i in inputs) == sum(sum(s["frames"]) for s in shuffles)


def test_sort_merge_join_shuffles_frames(server, facts):
    c = server.client
    dims = _inline([{"d": "a", "name": "alpha"}, {"d": "b", "name": "beta"}, {"d": None, "name": "nothing"}],
                   [("d", "string"), ("name", "string")])
    sql = f"SELECT f.n, f.d, x.name FROM {facts} f INNER JOIN {dims} x ON f.d = x.d"
    report = _run(c, sql, maxNumTasks=3, maxFrameSize=MAX_FRAME_SIZE, sqlJoinAlgorithm="sortMerge")
    names = {"a": "alpha", "b": "beta"}
    expected = sorted([r["n"], r["d"], names[r["d"]]] for r in ROWS if r["d"] in names)
    assert sorted(report["results"]["results"]) == expected
    kinds = [s["definition"]["processor"]["type"] for s in report["stages"]]
    assert kinds[:3] == ["scan", "scan", "sortMergeJoin"]
    for stage in (0, 1):
        for shuffle in _shuffles(report, stage):
            _assert_frame_files(shuffle, MAX_FRAME_SIZE)
    facts_shuffles = _shuffles(report, 0)
    assert sum(sum(s["rows"]) for s in facts_shuffles) == len(ROWS)
    assert sum(sum(s["frames"]) for s in facts_shuffles) > 2 * len(facts_shuffles)
    # the join stage's output, too
    join_rows = sum(sum(s["rows"]) for s in _shuffles(report, 2))
    assert join_rows == len(expected)
    for shuffle in _shuffles(report, 2):
        _assert_frame_files(shuffle, MAX_FRAME_SIZE)


def _sorted_rows(desc: bool) -> list[list]:
    """[s, n] by s (NULL first ascending, last descending), then n."""
    nulls = sorted([r["s"], r["n"]] for r in ROWS if r["s"] is None)
    values = sorted(([r["s"], r["n"]] for r in ROWS if r["s"] is not None), key=lambda v: v[1])
    values = sorted(values, key=lambda v: v[0], reverse=desc)  # stable: n stays ascending within a value
    return values + nulls if desc else nulls + values


@pytest.mark.parametrize("desc", [False, True])
def test_order_by_sorts_through_the_external_sorter(server, facts, desc):
    c = server.client
    direction = "DESC" if desc else "ASC"
    report = _run(c, f"SELECT s, n FROM {facts} ORDER BY s {direction}, n", maxNumTasks=2, rowsInMemory=10)
    rows = report["results"]["results"]
    assert len(rows) == len(ROWS)
    expected = _sorted_rows(desc)
    assert [r[0] for r in rows] == [e[0] for e in expected]
    assert rows == expected
    progress = report["counters"]["0"]["0"]["sortProgress"]
    # 600 rows, 10 per run: 60 level-0 runs, merged 16 at a time, then the output
    assert progress["totalMergingLevels"] > 1
    assert progress["levelToTotalBatches"]["0"] == 60
    assert progress["levelToMergedBatches"] == progress["levelToTotalBatches"]
    assert progress["progressDigest"] == 1.0
    shuffle = report["counters"]["0"]["0"]["shuffle"]
    assert shuffle["rows"] == [len(ROWS)]


def test_order_by_limit_keeps_the_first_rows_of_each_worker(server, facts):
    c = server.client
    report = _run(c, f"SELECT n, k FROM {facts} ORDER BY k DESC, n LIMIT 7 OFFSET 3", maxNumTasks=3, rowsInMemory=25)
    expected = sorted(([r["n"], r["k"]] for r in ROWS), key=lambda v: v[0])
    expected = sorted(expected, key=lambda v: v[1], reverse=True)[3:10]
    assert report["results"]["results"] == expected
    # each worker sorted its rows in several runs and kept OFFSET + LIMIT of them for the limit stage
    for worker in report["counters"]["0"].values():
        assert worker["sortProgress"]["totalMergingLevels"] > 1
        assert worker["shuffle"]["rows"] == [10]


def test_group_by_order_by_sorts_the_groups(server, facts):
    c = server.client
    report = _run(c, f"SELECT k, SUM(n) AS total FROM {facts} GROUP BY k ORDER BY total DESC", maxNumTasks=3,
                  rowsInMemory=3)
    totals: dict[str, int] = {}
    for r in ROWS:
        totals[r["k"]] = totals.get(r["k"], 0) + r["n"]
    assert report["results"]["results"] == sorted(([k, t] for k, t in totals.items()), key=lambda v: -v[1])
    for worker in report["counters"]["1"].values():
        assert worker["sortProgress"]["totalMergingLevels"] > 1


def test_nulls_last_ascending_is_ordered_in_memory(server, facts):
    """NULLS LAST with ASC is not the frame order: the stage orders in memory instead."""
    c = server.client
    report = _run(c, f"SELECT s, n FROM {facts} ORDER BY s NULLS LAST, n", maxNumTasks=2, rowsInMemory=10)
    rows = report["results"]["results"]
    assert [r[0] for r in rows] == sorted(r["s"] for r in ROWS if r["s"] is not None) + \
        [None] * sum(r["s"] is None for r in ROWS)
    assert report["counters"]["0"]["0"]["sortProgress"]["totalMergingLevels"] == 1


def test_boolean_and_sketch_columns_cross_the_shuffle(server, facts):
    """BOOLEAN values are LONG 1/0 in frames and in the results, as in Druid; hyperUnique
    partial states cross the hash shuffle as base64 text."""
    c = server.client
    report = _run(c, f"SELECT n > 300 AS big, COUNT(*) AS c, APPROX_COUNT_DISTINCT(k) AS ks FROM {facts} "
                  "GROUP BY n > 300 ORDER BY big", maxNumTasks=3)
    assert report["results"]["results"] == [[0, 301, 40], [1, 299, 40]]
    # through a limit stage
    report = _run(c, f"SELECT n, n > 300 AS big FROM {facts} ORDER BY n DESC LIMIT 2", maxNumTasks=3)
    assert [s["definition"]["processor"]["type"] for s in report["stages"]] == ["scan", "limit"]
    assert report["results"]["results"] == [[599, 1], [598, 1]]


@pytest.mark.parametrize("order_by", ["", " ORDER BY n"])
def test_row_too_large_for_max_frame_size(server, order_by):
    c = server.client
    src = _inline([{"n": 1, "s": "x" * 2000}], [("n", "long"), ("s", "string")])
    task = c.submit(f"SELECT n, s FROM {src}{order_by}", context={"maxFrameSize": 1024})
    assert c.wait(task)["statusCode"] == "FAILED"
    error = c.report(task)["status"]["errorReport"]["error"]
    assert error["errorCode"] == "RowTooLarge" and error["maxFrameSize"] == 1024
    assert error["errorMessage"] == ("Encountered row that cannot fit in a single frame (max frame size = 1,024). "
                                     "Reduce your row size or increase the context parameter[maxFrameSize].")


def test_an_empty_hash_partition_holds_one_empty_frame(server):
    c = server.client
    src = _inline([{"k": "a", "n": 1}], [("k", "string"), ("n", "long")])
    report = _run(c, f"SELECT k, SUM(n) AS s FROM {src} GROUP BY k", maxNumTasks=3)
    assert report["results"]["results"] == [["a", 1]]
    shuffle = report["counters"]["0"]["0"]["shuffle"]
    assert sorted(shuffle["rows"]) == [0, 1] and shuffle["frames"] == [1, 1]
    # the post-shuffle stage read both files, the empty one included
    assert report["counters"]["1"]["0"]["input0"]["frames"] == [2]
