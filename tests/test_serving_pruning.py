"""Segment pruning on the SQL path (msqcore.engine.scan_pruning): __time ranges from the filter
skip segments by interval, and equality filters on string dimensions use the segments'
inverted indexes. In process, so the scan statistics can be inspected."""
from __future__ import annotations

import json
import os

import pytest

from conftest import WIKITICKER
from msqcore.catalog import SqlCatalog
from msqcore.cluster import Cluster, ClusterConfig
from msqcore.engine.scan_pruning import MAX_TIME, MIN_TIME, scan_datasource, string_conditions, time_ranges
from msqcore.planner.query import compile_query
from msqcore.planner.statement import split_statement

H = 3_600_000
T0 = 1442016000000  # 2015-09-12T00:00:00Z
SIG = json.dumps([{"name": "time", "type": "string"}, {"name": "channel", "type": "string"},
                  {"name": "page", "type": "string"}, {"name": "user", "type": "string"},
                  {"name": "added", "type": "long"}])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(ClusterConfig(data_dir=str(tmp_path_factory.mktemp("pruning") / "var")))
    sql = ("REPLACE INTO wiki OVERWRITE ALL SELECT TIME_PARSE(\"time\") AS __time, channel, page, \"user\", added "
           f"FROM TABLE(EXTERN('{{\"type\":\"local\",\"baseDir\":\"{WIKITICKER.parent}\","
           f"\"filter\":\"{WIKITICKER.name}\"}}',"
           f" '{{\"type\":\"json\"}}', '{SIG}')) PARTITIONED BY HOUR CLUSTERED BY channel")
    task = c.submit_task(sql, {"maxNumTasks": 3}, None)
    assert c.wait(task, 180)
    assert c.task_status(task)["status"]["statusCode"] == "SUCCESS"
    yield c
    c.close()


def compile_where(cluster, where: str):
    return compile_query(split_statement(f"SELECT COUNT(*) AS c FROM wiki WHERE {where}").select,
                         SqlCatalog(cluster), [], {})


def count(cluster, where: str) -> int:
    return cluster.run_sql(f"SELECT COUNT(*) AS c FROM wiki WHERE {where}", {}, None)[1].to_pylist()[0]["c"]


@pytest.mark.parametrize("where, ranges", [
    ("__time >= TIMESTAMP '2015-09-12 05:00:00'", [(T0 + 5 * H, MAX_TIME)]),
    ("__time > TIMESTAMP '2015-09-12 05:00:00'", [(T0 + 5 * H + 1, MAX_TIME)]),
    ("__time < TIMESTAMP '2015-09-12 05:00:00'", [(MIN_TIME, T0 + 5 * H)]),
    ("TIMESTAMP '2015-09-12 05:00:00' >= __time", [(MIN_TIME, T0 + 5 * H + 1)]),
    ("__time = TIMESTAMP '2015-09-12 05:00:00'", [(T0 + 5 * H, T0 + 5 * H + 1)]),
    ("__time BETWEEN TIMESTAMP '2015-09-12 01:00:00' AND TIMESTAMP '2015-09-12 02:00:00'",
     [(T0 + H, T0 + 2 * H + 1)]),
    ("TIME_IN_INTERVAL(__time, '2015-09-12T03:00:00Z/PT2H') AND channel = '#en.wikipedia'", [(T0 + 3 * H, T0 + 5 * H)]),
    ("__time < TIMESTAMP '2015-09-12 01:00:00' OR __time >= TIMESTAMP '2015-09-12 23:00:00'",
     [(MIN_TIME, T0 + H), (T0 + 23 * H, MAX_TIME)]),
    ("__time >= TIMESTAMP '2015-09-12 05:00:00' AND __time < TIMESTAMP '2015-09-12 03:00:00'", []),
    ("__time IN (TIMESTAMP '2015-09-12 01:00:00', TIMESTAMP '2015-09-12 00:00:00')",
     [(T0, T0 + 1), (T0 + H, T0 + H + 1)]),
    ("channel = '#en.wikipedia'", None),
    ("NOT (__time < TIMESTAMP '2015-09-12 05:00:00')", None),
    ("__time < TIMESTAMP '2015-09-12 05:00:00' OR channel = 'x'", None),
])
def test_time_ranges(cluster, where, ranges):
    assert time_ranges(compile_where(cluster, where).filter) == ranges


@pytest.mark.parametrize("where, conditions", [
    ("channel = '#en.wikipedia'", {"channel": {"#en.wikipedia"}}),
    ("'#en.wikipedia' = channel AND added > 5", {"channel": {"#en.wikipedia"}}),
    ("channel IN ('#a', '#b') AND channel = '#b'", {"channel": {"#b"}}),
    ("(channel = '#a' OR channel = '#b') AND \"user\" = 'x'", {"channel": {"#a", "#b"}, "user": {"x"}}),
    ("channel = '#a' OR \"user\" = 'x'", {}),
    ("channel <> '#a'", {}),
    ("UPPER(channel) = '#A'", {}),
])
def test_string_conditions(cluster, where, conditions):
    assert string_conditions(compile_where(cluster, where).filter) == conditions


def test_time_filter_skips_segments(cluster):
    query = compile_where(cluster, "__time >= TIMESTAMP '2015-09-12 05:00:00' AND "
                                   "__time < TIMESTAMP '2015-09-12 07:00:00'")
    table, stats = scan_datasource(cluster, query)
    assert (stats.segments, stats.pruned_by_time, stats.read) == (24, 22, 2)
    assert stats.rows_read == table.num_rows == count(cluster, "__time >= TIMESTAMP '2015-09-12 05:00:00' AND "
                                                              "__time < TIMESTAMP '2015-09-12 07:00:00'")
    # the same count as a full scan filtered row by row
    full = cluster.run_sql("SELECT COUNT(*) AS c FROM wiki WHERE TIME_FORMAT(__time, 'HH') IN ('05', '06')",
                           {}, None)[1].to_pylist()[0]["c"]
    assert stats.rows_read == full


def test_inverted_index_selects_rows_and_skips_segments(cluster):
    table, stats = scan_datasource(cluster, compile_where(cluster, "channel = '#en.wikipedia'"))
    assert stats.pruned_by_index == 0 and stats.read == 24
    assert stats.rows_read == table.num_rows == 11549 < stats.rows_total == 39244
    assert count(cluster, "channel = '#en.wikipedia'") == 11549
    _, stats = scan_datasource(cluster, compile_where(cluster, "channel = '#no.such.channel'"))
    assert (stats.pruned_by_index, stats.read) == (24, 0)
    assert count(cluster, "channel = '#no.such.channel'") == 0
    where = "channel IN ('#de.wikipedia', '#fr.wikipedia') AND \"user\" = 'Cheers!-bot'"
    _, stats = scan_datasource(cluster, compile_where(cluster, where))
    assert stats.read < 24 and count(cluster, where) == 0
    where = "channel = '#en.wikipedia' AND page = 'Main Page' AND added >= 0"
    table, stats = scan_datasource(cluster, compile_where(cluster, where))
    assert stats.rows_read == count(cluster, where) == cluster.run_sql(
        "SELECT COUNT(*) AS c FROM wiki WHERE LOWER(channel) = '#en.wikipedia' AND LOWER(page) = 'main page'",
        {}, None)[1].to_pylist()[0]["c"]


def test_pruned_segment_files_are_never_opened(cluster):
    """A time chunk the filter excludes can lose its file without the query noticing."""
    first = next(s for s in cluster.metadata.used_segments("wiki") if s.start == T0)
    path = cluster.deep_storage.local_path(first.payload["loadSpec"])
    saved = path + ".saved"
    os.rename(path, saved)
    try:
        assert count(cluster, "__time >= TIMESTAMP '2015-09-12 01:00:00'") > 0
        with pytest.raises(OSError):
            count(cluster, "__time >= TIMESTAMP '2015-09-12 00:30:00'")
    finally:
        os.rename(saved, path)


def test_range_shard_specs_prune_segments(tmp_path):
    """REPLACE ... CLUSTERED BY a string writes range shard specs; an equality filter on
    that column skips the segments whose range cannot hold the value, without opening them."""
    c = Cluster(ClusterConfig(data_dir=str(tmp_path / "var")))
    try:
        rows = "".join(json.dumps({"time": "2015-09-12T00:00:00Z", "channel": f"#c{i % 30:02d}", "page": "p",
                                   "user": "u", "added": i}) + "\n" for i in range(300))
        sql = ("REPLACE INTO r OVERWRITE ALL SELECT TIME_PARSE(\"time\") AS __time, channel, added FROM TABLE(EXTERN("
               f"'{json.dumps({'type': 'inline', 'data': rows})}', '{{\"type\":\"json\"}}', '{SIG}')) "
               "PARTITIONED BY DAY CLUSTERED BY channel")
        task = c.submit_task(sql, {"rowsPerSegment": 100}, None)
        assert c.wait(task, 120) and c.task_status(task)["status"]["statusCode"] == "SUCCESS"
        segments = c.metadata.used_segments("r")
        assert len(segments) == 3 and all(s.payload["shardSpec"]["type"] == "range" for s in segments)
        query = compile_query(split_statement("SELECT SUM(added) AS s FROM r WHERE channel = '#c00'").select,
                              SqlCatalog(c), [], {})
        _, stats = scan_datasource(c, query)
        assert stats.pruned_by_shard_spec == 2 and stats.read == 1
        # the other segments' files are never opened
        last = next(s for s in segments if s.payload["shardSpec"]["start"] is not None
                    and s.payload["shardSpec"]["end"] is None)
        os.remove(c.deep_storage.local_path(last.payload["loadSpec"]))
        assert c.run_sql("SELECT SUM(added) AS s FROM r WHERE channel = '#c00'", {}, None)[1].to_pylist() == \
            [{"s": sum(i for i in range(300) if i % 30 == 0)}]
    finally:
        c.close()
