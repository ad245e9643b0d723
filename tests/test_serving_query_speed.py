"""The SQL endpoint's fast paths over segments: GROUP BY on dictionary ids
(``engine.id_aggregate``), string columns answered by the bitmap index, and segment files
kept open between queries (``engine.open_segments``). Each query's answer is checked against
the general path (every row decoded, then ``ops.run_local``). In process, to reach both paths."""
from __future__ import annotations

import json

import pytest

from msqcore.catalog import SqlCatalog
from msqcore.cluster import Cluster, ClusterConfig
from msqcore.engine import operators as ops
from msqcore.engine.open_segments import OPEN_SEGMENTS
from msqcore.engine.scan_pruning import aggregate_datasource, scan_datasource
from msqcore.planner.query import compile_query
from msqcore.planner.statement import split_statement

SIG = json.dumps([{"name": "t", "type": "string"}, {"name": "k1", "type": "string"},
                  {"name": "k2", "type": "string"}, {"name": "n", "type": "long"},
                  {"name": "d", "type": "double"}, {"name": "tags", "type": "string"}])


def _rows(days: int, extra: int = 0) -> str:
    out = []
    for i in range(300):
        out.append(json.dumps({
            "t": f"2020-01-0{1 + i % days}T{i % 24:02d}:00:00Z",
            "k1": [None, "", "a", "b", "c", "é"][i % 6],
            "k2": None if i % 7 == 0 else f"x{(i * 7 + extra) % 5}",
            "n": None if i % 11 == 0 else (i * 37 % 101) - 50 + extra,
            "d": i / 7,
            "tags": "p,q" if i % 4 == 0 else "p",
        }))
    return "\n".join(out)


def _ingest(c: Cluster, rows: str, table: str = "t", overwrite: str = "ALL") -> None:
    source = json.dumps({"type": "inline", "data": rows})
    sql = (f"REPLACE INTO {table} OVERWRITE {overwrite} SELECT TIME_PARSE(\"t\") AS __time, k1, k2, n, d, "
           "STRING_TO_MV(tags, ',') AS tags "
           f"FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{SIG}')) PARTITIONED BY DAY")
    task = c.submit_task(sql, {"maxNumTasks": 2}, None)
    assert c.wait(task, 180)
    assert c.task_status(task)["status"]["statusCode"] == "SUCCESS", c.task_status(task)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(ClusterConfig(data_dir=str(tmp_path_factory.mktemp("queryspeed") / "var")))
    _ingest(c, _rows(3))
    yield c
    c.close()


def _compile(c: Cluster, sql: str):
    return compile_query(split_statement(sql).select, SqlCatalog(c), [], {})


def _general(c: Cluster, sql: str) -> list[dict]:
    """The answer through the general path: all rows of the matching segments, then run_local."""
    query = _compile(c, sql)
    table, _ = scan_datasource(c, query)
    return ops.run_local(table, query).to_pylist()


GROUPED = [
    "SELECT k1, COUNT(*) AS c, SUM(n) AS s FROM t GROUP BY k1",
    "SELECT k1, k2, COUNT(*) AS c, COUNT(n) AS cn, MIN(n) AS lo, MAX(n) AS hi FROM t GROUP BY 1, 2",
    "SELECT k1, COUNT(k2) AS c2, COUNT(tags) AS ct, COUNT(d) AS cd FROM t GROUP BY 1",
    "SELECT k2, COUNT(*) AS c FROM t WHERE k1 = 'a' GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT k2, COUNT(*) AS c, SUM(n) AS s FROM t WHERE k1 IN ('a', 'é', 'zz') GROUP BY 1",
    "SELECT k1, COUNT(*) AS c FROM t WHERE k1 = 'b' GROUP BY 1",
    "SELECT k1, SUM(n) AS s FROM t WHERE k1 = 'a' AND n > 0 GROUP BY 1",
    "SELECT k1, SUM(n) AS s FROM t WHERE k2 = 'x1' OR n < 0 GROUP BY 1 HAVING COUNT(*) > 2",
    "SELECT k1, SUM(n) AS s FROM t WHERE k1 = 'nope' GROUP BY 1",
    "SELECT COUNT(*) AS c, SUM(n) AS s, MIN(n) AS lo FROM t WHERE k1 = 'nope'",
    "SELECT COUNT(*) AS c, SUM(n) AS s FROM t WHERE k1 = 'c' AND __time >= TIMESTAMP '2020-01-02 00:00:00'",
    "SELECT COUNT(*) AS c FROM t",
    "SELECT k1, COUNT(*) AS c FROM t WHERE k2 = 'x3' AND k1 = 'a' GROUP BY 1",
    "SELECT k1 AS key, COUNT(*) + 1 AS c1 FROM t GROUP BY k1 ORDER BY c1 DESC LIMIT 3",
    "SELECT k1, COUNT(*) AS c FROM t WHERE tags = 'q' GROUP BY 1",  # a multi-value column's index
    "SELECT k2, COUNT(*) AS c FROM t WHERE tags IN ('q', 'p') AND k1 = 'a' GROUP BY 1",
]


@pytest.mark.parametrize("sql", GROUPED)
def test_id_aggregation_matches_the_general_path(cluster, sql):
    assert aggregate_datasource(cluster, _compile(cluster, sql)) is not None  # the fast path applies
    assert cluster.run_sql(sql, {}, None)[1].to_pylist() == _general(cluster, sql)


@pytest.mark.parametrize("sql", [
    "SELECT tags, COUNT(*) AS c FROM t GROUP BY 1",  # a multi-value key
    "SELECT k1, SUM(d) AS s FROM t GROUP BY 1",  # a sum of doubles depends on the order of its terms
    "SELECT UPPER(k1) AS u, COUNT(*) AS c FROM t GROUP BY 1",
    "SELECT k1, COUNT(*) FILTER (WHERE n > 0) AS c FROM t GROUP BY 1",
])
def test_other_aggregations_take_the_general_path(cluster, sql):
    assert aggregate_datasource(cluster, _compile(cluster, sql)) is None
    assert cluster.run_sql(sql, {}, None)[1].to_pylist() == _general(cluster, sql)


def test_index_answered_column_is_read_from_the_index(cluster):
    """Rows a string equality selects show the value the index says, for = and IN."""
    for sql in ["SELECT k1, k2, n FROM t WHERE k1 = 'é'",
                "SELECT k1, n FROM t WHERE k1 IN ('a', 'b', 'missing') AND n > 10"]:
        query = _compile(cluster, sql)
        rows = cluster.run_sql(sql, {}, None)[1].to_pylist()
        assert rows and rows == ops.run_local(_full_table(cluster, query), query).to_pylist()


def _full_table(cluster, query):
    """Every row of the datasource decoded, without any index."""
    import pyarrow as pa

    from msqcore.engine.worker import read_datasource_segment
    tables = [read_datasource_segment(cluster.deep_storage.local_path(s.payload["loadSpec"]), query)
              for s in cluster.metadata.data_segments("t")]
    return pa.concat_tables(tables)


def test_replace_between_two_queries_is_seen(tmp_path):
    """Open segments are per file: a REPLACE publishes new files, and the next query reads
    them; the replaced files are forgotten."""
    c = Cluster(ClusterConfig(data_dir=str(tmp_path / "var")))
    try:
        _ingest(c, _rows(2), table="r")
        sql = "SELECT k2, COUNT(*) AS c, SUM(n) AS s FROM r WHERE k1 = 'a' GROUP BY 1 ORDER BY 1"
        before = c.run_sql(sql, {}, None)[1].to_pylist()
        old = {c.deep_storage.local_path(s.payload["loadSpec"]) for s in c.metadata.data_segments("r")}
        assert old <= set(OPEN_SEGMENTS.paths())
        _ingest(c, _rows(2, extra=1000), table="r")
        after = c.run_sql(sql, {}, None)[1].to_pylist()
        assert after != before and after == _general(c, sql)
        assert not old & set(OPEN_SEGMENTS.paths())
        # one time chunk replaced: the other keeps its open file
        _ingest(c, _rows(1, extra=5), table="r",
                overwrite="WHERE __time >= TIMESTAMP '2020-01-01' AND __time < TIMESTAMP '2020-01-02'")
        assert c.run_sql(sql, {}, None)[1].to_pylist() == _general(c, sql)
    finally:
        c.close()


def test_group_kernels_fold_like_java_longs():
    """``_groups.fold`` counts the rows with a value and sums (wrapping as Java's long does),
    or takes the min or max, per group; ``number_groups`` numbers codes by first row."""
    import numpy as np

    from msqcore.kernels import _groups
    rng = np.random.default_rng(7)
    for n, lo, hi in [(1000, -2**63, 2**63 - 1), (250_000, -10**6, 10**6), (100, 2**62, 2**63 - 1), (0, 0, 1)]:
        data = rng.integers(lo, hi, n, dtype=np.int64, endpoint=True)
        groups = rng.integers(0, 7, n).astype(np.int64)
        valid = rng.integers(0, 2, n).astype(np.uint8)
        keep = valid.astype(bool)
        want = np.zeros(8, dtype=np.int64)  # group 7 never has a row
        np.add.at(want, groups[keep], data[keep])  # wraps
        counts, sums = _groups.fold(_groups.SUM, groups, 8, data, valid)
        assert sums.tolist() == want.tolist()
        assert counts.tolist() == np.bincount(groups[keep], minlength=8).tolist()
        for kind, pick in [(_groups.MIN, min), (_groups.MAX, max)]:
            got = _groups.fold(kind, groups, 8, data)[1].tolist()
            assert got == [pick(data[groups == g].tolist(), default=0) for g in range(8)]
        assert _groups.fold(_groups.COUNT, groups, 8)[1] is None
    code = np.array([5, 2, 5, 0, 2, 9], dtype=np.int64)
    gid, first = _groups.number_groups(code, 10)
    assert gid.tolist() == [0, 1, 0, 2, 1, 3] and first.tolist() == [0, 1, 3, 5]
    with pytest.raises(ValueError):
        _groups.number_groups(code, 9)
    with pytest.raises(ValueError):
        _groups.fold(_groups.SUM, np.array([3], dtype=np.int64), 3, np.array([1], dtype=np.int64))


@pytest.mark.parametrize("sql, stops", [
    ("SELECT k1, k2, n FROM t WHERE k1 = 'a' LIMIT 5", False),  # one day holds them: the others are pruned
    ("SELECT k1, n FROM t WHERE n > 0 LIMIT 7 OFFSET 3", True),
    ("SELECT __time, k2 FROM t LIMIT 4", True),
    ("SELECT 1 AS one FROM t LIMIT 4", True),
    ("SELECT k1 FROM t WHERE k1 = 'b' AND k2 = 'x1' LIMIT 1000", False),  # fewer rows than the limit
])
def test_scan_with_limit_stops_reading_segments(cluster, sql, stops):
    """A LIMIT without ORDER BY keeps the first rows that pass the filter, in segment order:
    the scan reads segments (a pool's width at a time) until it has them, and the answer is
    the full scan's."""
    from msqcore.engine import scan_pruning
    query = _compile(cluster, sql)
    rows = cluster.run_sql(sql, {}, None)[1].to_pylist()
    assert rows == ops.run_local(_full_table(cluster, query), query).to_pylist()
    _, stats = scan_datasource(cluster, query)
    if stops and scan_pruning._WIDTH < stats.segments:
        assert stats.read + stats.pruned_by_index == scan_pruning._WIDTH
    else:
        assert stats.read + stats.pruned_by_index == stats.segments


def test_published_segments_are_loaded_before_the_first_query(tmp_path):
    """A task's new segments are opened, with the bitmap indexes of their string columns
    stored with ids, in the background after the publish (as Druid's historicals load new
    segments), so the first query does not pay for it; it still answers right."""
    import time
    c = Cluster(ClusterConfig(data_dir=str(tmp_path / "var")))
    try:
        _ingest(c, _rows(2), table="p")
        paths = {c.deep_storage.local_path(s.payload["loadSpec"]) for s in c.metadata.data_segments("p")}
        deadline = time.monotonic() + 30
        while not paths <= set(OPEN_SEGMENTS.paths()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert paths <= set(OPEN_SEGMENTS.paths())
        for path in paths:
            opened = OPEN_SEGMENTS.get(path, "p")
            while len(opened._indexes) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert {"k1", "k2"} <= set(opened._indexes)  # tags is multi-value: left to the queries
        sql = "SELECT k2, COUNT(*) AS c, SUM(n) AS s FROM p WHERE k1 = 'a' GROUP BY 1 ORDER BY 1"
        assert c.run_sql(sql, {}, None)[1].to_pylist() == _general(c, sql)
    finally:
        c.close()
