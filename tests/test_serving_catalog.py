"""INFORMATION_SCHEMA, sys and lookup tables through /druid/v2/sql, with Druid's columns and values."""
from __future__ import annotations

import json

import pytest

from client import HttpError
from conftest import Server

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T00:00:00Z", "k": "a", "n": 1, "x": 1.5, "f": 0.5},
    {"ts": "2021-01-02T00:00:00Z", "k": "b", "n": 2, "x": 2.5, "f": 1.5},
])
SIG = ('[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"},'
       '{"name":"x","type":"double"},{"name":"f","type":"float"}]')


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serving_catalog") / "var")
    server.start()
    c = server.client
    src = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"
    task = c.submit(f"INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, k, n, x, f FROM {src} PARTITIONED BY DAY",
                    context={"sqlQueryId": "catalog-ingest"})
    assert c.wait(task)["statusCode"] == "SUCCESS"
    assert c.request("POST", "/druid/coordinator/v1/lookups/config", {})[0] == 202
    status, _, _ = c.request("POST", "/druid/coordinator/v1/lookups/config", {"__default": {"country": {
        "version": "v1", "lookupExtractorFactory": {"type": "map", "map": {"fr": "France", "de": "Germany"}}}}})
    assert status == 202
    yield server
    server.stop()


def test_schemata(srv):
    rows = srv.client.sql("SELECT * FROM INFORMATION_SCHEMA.SCHEMATA")
    assert [r["SCHEMA_NAME"] for r in rows] == ["druid", "INFORMATION_SCHEMA", "lookup", "sys"]
    assert rows[0] == {"CATALOG_NAME": "druid", "SCHEMA_NAME": "druid", "SCHEMA_OWNER": None,
                       "DEFAULT_CHARACTER_SET_CATALOG": None, "DEFAULT_CHARACTER_SET_SCHEMA": None,
                       "DEFAULT_CHARACTER_SET_NAME": None, "SQL_PATH": None}


def test_tables(srv):
    rows = srv.client.sql("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, IS_JOINABLE, IS_BROADCAST "
                          "FROM INFORMATION_SCHEMA.TABLES", resultFormat="array")
    assert rows == [["druid", "wiki", "TABLE", "NO", "NO"],
                    ["INFORMATION_SCHEMA", "COLUMNS", "SYSTEM_TABLE", "NO", "NO"],
                    ["INFORMATION_SCHEMA", "SCHEMATA", "SYSTEM_TABLE", "NO", "NO"],
                    ["INFORMATION_SCHEMA", "TABLES", "SYSTEM_TABLE", "NO", "NO"],
                    ["lookup", "country", "TABLE", "YES", "YES"],
                    ["sys", "segments", "SYSTEM_TABLE", "NO", "NO"],
                    ["sys", "server_segments", "SYSTEM_TABLE", "NO", "NO"],
                    ["sys", "servers", "SYSTEM_TABLE", "NO", "NO"],
                    ["sys", "tasks", "SYSTEM_TABLE", "NO", "NO"]]
    assert srv.client.sql("SELECT TABLE_CATALOG FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'wiki'") == \
        [{"TABLE_CATALOG": "druid"}]


def test_columns_of_a_datasource(srv):
    rows = srv.client.sql("SELECT COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, IS_NULLABLE, JDBC_TYPE "
                          "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = 'wiki'",
                          resultFormat="array")
    assert rows == [["__time", "0", "TIMESTAMP", "NO", 93], ["k", "1", "VARCHAR", "YES", 12],
                    ["n", "2", "BIGINT", "YES", -5], ["x", "3", "DOUBLE", "YES", 8], ["f", "4", "FLOAT", "YES", 6]]
    full = srv.client.sql("SELECT * FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'wiki' AND COLUMN_NAME = 'k'")
    assert full == [{"TABLE_CATALOG": "druid", "TABLE_SCHEMA": "druid", "TABLE_NAME": "wiki", "COLUMN_NAME": "k",
                     "ORDINAL_POSITION": "1", "COLUMN_DEFAULT": "", "IS_NULLABLE": "YES", "DATA_TYPE": "VARCHAR",
                     "CHARACTER_MAXIMUM_LENGTH": None, "CHARACTER_OCTET_LENGTH": None, "NUMERIC_PRECISION": None,
                     "NUMERIC_PRECISION_RADIX": None, "NUMERIC_SCALE": None, "DATETIME_PRECISION": None,
                     "CHARACTER_SET_NAME": "UTF-16LE", "COLLATION_NAME": "UTF-16LE$en_US$primary", "JDBC_TYPE": 12}]
    numeric = srv.client.sql("SELECT NUMERIC_PRECISION, NUMERIC_PRECISION_RADIX, NUMERIC_SCALE FROM "
                             "INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'wiki' AND COLUMN_NAME = 'n'")
    assert numeric == [{"NUMERIC_PRECISION": "19", "NUMERIC_PRECISION_RADIX": "10", "NUMERIC_SCALE": "0"}]


def test_columns_of_system_and_lookup_tables(srv):
    rows = srv.client.sql("SELECT TABLE_SCHEMA, COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS "
                          "WHERE TABLE_NAME IN ('country', 'server_segments')", resultFormat="array")
    assert rows == [["lookup", "k", "VARCHAR"], ["lookup", "v", "VARCHAR"],
                    ["sys", "server", "VARCHAR"], ["sys", "segment_id", "VARCHAR"]]
    counts = srv.client.sql("SELECT TABLE_NAME, COUNT(*) AS c FROM INFORMATION_SCHEMA.COLUMNS "
                            "WHERE TABLE_SCHEMA IN ('INFORMATION_SCHEMA', 'sys') GROUP BY TABLE_NAME ORDER BY 1")
    assert counts == [{"TABLE_NAME": "COLUMNS", "c": 17}, {"TABLE_NAME": "SCHEMATA", "c": 7},
                      {"TABLE_NAME": "TABLES", "c": 6}, {"TABLE_NAME": "segments", "c": 19},
                      {"TABLE_NAME": "server_segments", "c": 2}, {"TABLE_NAME": "servers", "c": 10},
                      {"TABLE_NAME": "tasks", "c": 14}]


def test_pydruid_has_table_query(srv):
    """The exact statement pydruid's SQLAlchemy dialect sends for has_table()."""
    q = "\n            SELECT COUNT(*) > 0 AS exists_\n              FROM INFORMATION_SCHEMA.TABLES\n" \
        "             WHERE TABLE_NAME = '{}'\n        "
    assert srv.client.sql(q.format("wiki")) == [{"exists_": True}]
    assert srv.client.sql(q.format("nope")) == [{"exists_": False}]


def test_sys_segments(srv):
    rows = srv.client.sql('SELECT * FROM sys.segments WHERE datasource = \'wiki\' ORDER BY "start"')
    assert len(rows) == 2
    seg = rows[0]
    full = srv.client.get("/druid/coordinator/v1/metadata/datasources/wiki/segments?full")[0]
    assert list(seg) == ["segment_id", "datasource", "start", "end", "size", "version", "partition_num",
                         "num_replicas", "num_rows", "is_active", "is_published", "is_available", "is_realtime",
                         "is_overshadowed", "shard_spec", "dimensions", "metrics", "last_compaction_state",
                         "replication_factor"]
    assert seg["segment_id"] == full["identifier"] and seg["version"] == full["version"]
    assert (seg["start"], seg["end"]) == ("2021-01-01T00:00:00.000Z", "2021-01-02T00:00:00.000Z")
    assert seg["size"] == full["size"] and seg["num_rows"] == 1 and seg["partition_num"] == 0
    assert (seg["is_active"], seg["is_published"], seg["is_available"], seg["is_realtime"],
            seg["is_overshadowed"]) == (1, 1, 1, 0, 0)
    assert seg["shard_spec"] == '{"type":"numbered","partitionNum":0,"partitions":1}'
    assert seg["dimensions"] == '["k","n","x","f"]' and seg["metrics"] == "[]"
    assert seg["last_compaction_state"] is None
    totals = srv.client.sql("SELECT datasource, SUM(\"size\") AS total_size, SUM(num_rows) AS r, COUNT(*) AS n "
                            "FROM sys.segments WHERE is_active = 1 GROUP BY 1")
    assert totals[0]["r"] == 2 and totals[0]["n"] == 2


def test_sys_server_segments_and_tasks(srv):
    servers = srv.client.sql("SELECT server, segment_id FROM sys.server_segments")
    assert {r["server"] for r in servers} == {f"127.0.0.1:{srv.port}"} and len(servers) == 2
    tasks = srv.client.sql("SELECT * FROM sys.tasks WHERE task_id = 'query-catalog-ingest'")
    assert len(tasks) == 1
    t = tasks[0]
    assert t["group_id"] == "query-catalog-ingest" and t["type"] == "query_controller"
    assert t["datasource"] == "wiki" and t["status"] == "SUCCESS" and t["runner_status"] == "NONE"
    assert t["duration"] > 0 and t["location"] == f"127.0.0.1:{srv.port}"
    assert t["host"] == "127.0.0.1" and t["plaintext_port"] == srv.port and t["tls_port"] == -1
    assert t["error_msg"] is None and t["created_time"].endswith("Z")
    workers = srv.client.sql("SELECT task_id FROM sys.tasks WHERE group_id = 'query-catalog-ingest' "
                             "AND type = 'query_worker'")
    assert workers == [{"task_id": "query-catalog-ingest-worker0_0"}]


def test_sys_servers(srv):
    rows = srv.client.sql("SELECT * FROM sys.servers ORDER BY server_type")
    assert [r["server_type"] for r in rows] == ["broker", "coordinator", "historical", "indexer", "overlord"]
    size = sum(s["size"] for s in srv.client.get("/druid/coordinator/v1/datasources/wiki/segments?full"))
    for r in rows:
        assert r["server"] == f"127.0.0.1:{srv.port}" and r["host"] == "127.0.0.1"
        assert r["plaintext_port"] == srv.port and r["tls_port"] == -1 and r["start_time"].endswith("Z")
        data = r["server_type"] == "historical"
        assert (r["tier"], r["curr_size"]) == (("_default_tier", size) if data else (None, None))
        assert (r["max_size"] > size) if data else r["max_size"] is None
        assert r["is_leader"] == (1 if r["server_type"] in ("coordinator", "overlord") else None)


def test_lookup_tables(srv):
    assert srv.client.sql("SELECT k, v FROM lookup.country ORDER BY k") == [{"k": "de", "v": "Germany"},
                                                                           {"k": "fr", "v": "France"}]
    assert srv.client.sql("SELECT v FROM lookup.country WHERE k = 'fr'") == [{"v": "France"}]


@pytest.mark.parametrize("table", ["information_schema.tables", "INFORMATION_SCHEMA.NOPE", "sys.SEGMENTS",
                                   "lookup.nope", "nope.wiki"])
def test_unknown_or_miscased_tables(srv, table):
    with pytest.raises(HttpError) as e:
        srv.client.sql(f"SELECT * FROM {table}")
    assert e.value.status == 400 and e.value.json()["errorMessage"].startswith("Object '")


def test_druid_schema_prefix(srv):
    assert srv.client.sql("SELECT COUNT(*) AS c FROM druid.wiki") == [{"c": 2}]
