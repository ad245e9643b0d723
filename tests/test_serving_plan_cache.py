"""What ``Cluster.run_sql`` keeps between queries of the same text: the parsed statement
(``cluster.parsed_statement``) and a datasource's signature for its current segment list.
Neither may hide a change: a REPLACE that adds a column, a drop, new parameters or SET
values must all show in the next query of the same text. In process, to see the caches."""
from __future__ import annotations

import json

import pytest

from msqcore import cluster as cluster_module
from msqcore.cluster import Cluster, ClusterConfig
from msqcore.errors import DruidException


def _ingest(c: Cluster, rows: list[dict], columns: list[str]) -> None:
    sig = json.dumps([{"name": "t", "type": "string"}] + [{"name": n, "type": "long"} for n in columns])
    source = json.dumps({"type": "inline", "data": "\n".join(json.dumps(r) for r in rows)})
    sql = (f"REPLACE INTO w OVERWRITE ALL SELECT TIME_PARSE(\"t\") AS __time, {', '.join(columns)} "
           f"FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{sig}')) PARTITIONED BY DAY")
    task = c.submit_task(sql, {"maxNumTasks": 2}, None)
    assert c.wait(task, 180)
    assert c.task_status(task)["status"]["statusCode"] == "SUCCESS", c.task_status(task)


@pytest.fixture()
def cluster(tmp_path):
    c = Cluster(ClusterConfig(data_dir=str(tmp_path / "var")))
    yield c
    c.close()


def test_same_text_sees_replace_and_drop(cluster):
    sql = "SELECT * FROM w ORDER BY __time"
    _ingest(cluster, [{"t": "2020-01-01T00:00:00Z", "a": 1}, {"t": "2020-01-02T00:00:00Z", "a": 2}], ["a"])
    query, table = cluster.run_sql(sql, {}, None)
    assert [n for n, _ in query.output] == ["__time", "a"] and table.column("a").to_pylist() == [1, 2]
    assert cluster._signatures["w"][1] == [("__time", "TIMESTAMP"), ("a", "BIGINT")]
    # a REPLACE with another column: the same text now plans against the new signature
    _ingest(cluster, [{"t": "2020-01-03T00:00:00Z", "a": 3, "b": 30}], ["a", "b"])
    query, table = cluster.run_sql(sql, {}, None)
    assert [n for n, _ in query.output] == ["__time", "a", "b"]
    assert table.column("b").to_pylist() == [30]
    # dropped: the table is gone for the same text
    cluster.drop_datasource("w")
    with pytest.raises(DruidException, match="not found"):
        cluster.run_sql(sql, {}, None)


def test_same_text_binds_new_parameters_and_settings(cluster):
    _ingest(cluster, [{"t": f"2020-01-0{d}T00:00:00Z", "a": d} for d in (1, 2, 3)], ["a"])
    sql = "SELECT COUNT(*) AS c, SUM(a) AS s FROM w WHERE a >= ?"
    for low, want in ((1, [3, 6]), (3, [1, 3]), (2, [2, 5])):
        table = cluster.run_sql(sql, {}, [{"type": "BIGINT", "value": low}])[1]
        assert [table.column(0)[0].as_py(), table.column(1)[0].as_py()] == want
    zoned = "SET sqlTimeZone = 'America/Los_Angeles'; SELECT TIME_FORMAT(MIN(__time), 'yyyy-MM-dd HH') AS m FROM w"
    for _ in range(2):
        assert cluster.run_sql(zoned, {}, None)[1].column(0).to_pylist() == ["2019-12-31 16"]
    assert cluster.run_sql("SELECT TIME_FORMAT(MIN(__time), 'yyyy-MM-dd HH') AS m FROM w",
                           {"sqlTimeZone": "Asia/Tokyo"}, None)[1].column(0).to_pylist() == ["2020-01-01 09"]


def test_cached_tree_is_not_changed_by_planning(cluster):
    """The parsed tree is shared by every run of its text: planning gets a copy."""
    _ingest(cluster, [{"t": "2020-01-01T00:00:00Z", "a": 1}, {"t": "2020-01-02T00:00:00Z", "a": 2}], ["a"])
    for sql in ["SELECT a FROM w UNION ALL SELECT a + 10 FROM w",
                "SELECT x FROM (SELECT a * 2 AS x FROM w) WHERE x > 2",
                "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'w'"]:
        text = cluster_module.parsed_statement(sql)[3].sql("druid")
        first = cluster.run_sql(sql, {}, None)[1].to_pylist()
        assert cluster.run_sql(sql, {}, None)[1].to_pylist() == first
        assert cluster_module.parsed_statement(sql)[3].sql("druid") == text


def test_refusals_hold_on_every_run(cluster):
    for _ in range(2):
        with pytest.raises(DruidException, match="Incorrect syntax"):
            cluster.run_sql("SELECT FROM WHERE", {}, None)
        with pytest.raises(DruidException, match="REPLACE operations are not supported"):
            cluster.run_sql("REPLACE INTO w OVERWRITE ALL SELECT * FROM w PARTITIONED BY DAY", {}, None)


def test_long_text_is_parsed_each_time(cluster):
    _ingest(cluster, [{"t": "2020-01-01T00:00:00Z", "a": 1}, {"t": "2020-01-02T00:00:00Z", "a": 2}], ["a"])
    values = ", ".join(str(i) for i in range(2, 20000))  # more than 64 KiB of text
    sql = f"SELECT COUNT(*) AS c FROM w WHERE a IN ({values})"
    assert len(sql) > cluster_module._CACHED_TEXT_CHARS
    size = cluster_module._cached_parse.cache_info().currsize
    for _ in range(2):
        assert cluster.run_sql(sql, {}, None)[1].column(0).to_pylist() == [1]
    assert cluster_module._cached_parse.cache_info().currsize == size
