"""Coordinator datasource and metadata APIs, marking segments unused, lookups config, status."""
from __future__ import annotations

import json

import pytest

from client import HttpError
from conftest import Server

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T03:00:00Z", "k": "a", "n": 1},
    {"ts": "2021-01-02T03:00:00Z", "k": "b", "n": 2},
    {"ts": "2021-01-03T03:00:00Z", "k": "c", "n": 3},
])
SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'
SRC = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"
D = "/druid/coordinator/v1/datasources"
L = "/druid/coordinator/v1/lookups/config"


def ingest(c, ds: str) -> None:
    task = c.submit(f"INSERT INTO {ds} SELECT TIME_PARSE(ts) AS __time, k, n FROM {SRC} PARTITIONED BY DAY")
    assert c.wait(task)["statusCode"] == "SUCCESS"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serving_metadata") / "var")
    server.start()
    ingest(server.client, "ds1")
    yield server
    server.stop()


def raw(srv, method, path, body=None):
    try:
        status, headers, text = srv.client.request(method, path, body)
    except HttpError as e:
        return e.status, e.body
    return status, text


def test_datasources_list_simple_full(srv):
    c = srv.client
    assert c.get(D) == ["ds1"]
    simple = c.get(D + "?simple")
    size = sum(s["size"] for s in c.get(D + "/ds1/segments?full"))
    assert simple == [{"name": "ds1", "properties": {
        "tiers": {"_default_tier": {"size": size, "replicatedSize": size, "segmentCount": 3}},
        "segments": {"maxTime": "2021-01-04T00:00:00.000Z", "size": size, "minTime": "2021-01-01T00:00:00.000Z",
                     "count": 3, "replicatedSize": size}}}]
    # key order as Jackson writes Druid's HashMaps
    assert raw(srv, "GET", D + "/ds1")[1].startswith('{"tiers":{"_default_tier":{"size":')
    full = c.get(D + "?full")
    assert full[0]["name"] == "ds1" and len(full[0]["segments"]) == 3
    assert full[0]["segments"][0]["dataSource"] == "ds1"


def test_datasource_detail_intervals_segments(srv):
    c = srv.client
    assert c.get(D + "/ds1")["segments"]["count"] == 3
    assert raw(srv, "GET", D + "/nope") == (204, "")
    intervals = c.get(D + "/ds1/intervals")
    assert intervals == ["2021-01-03T00:00:00.000Z/2021-01-04T00:00:00.000Z",
                         "2021-01-02T00:00:00.000Z/2021-01-03T00:00:00.000Z",
                         "2021-01-01T00:00:00.000Z/2021-01-02T00:00:00.000Z"]
    simple = c.get(D + "/ds1/intervals?simple")
    assert list(simple) == intervals and all(v["count"] == 1 for v in simple.values())
    full = c.get(D + "/ds1/intervals?full")
    seg = next(iter(full[intervals[0]].values()))
    assert seg["servers"] == [f"127.0.0.1:{srv.port}"] and seg["metadata"]["dataSource"] == "ds1"
    ids = c.get(D + "/ds1/segments")
    assert len(ids) == 3 and ids == sorted(ids)
    assert c.get(D + "/ds1/intervals/2021-01-01_2021-01-03") == ids[:2]
    assert c.get(D + "/ds1/intervals/2021-01-02T00:00:00.000Z_P1D") == ids[1:2]
    one = c.get(D + f"/ds1/segments/{ids[0]}")
    assert one["metadata"]["identifier"] == ids[0] and one["servers"] == [f"127.0.0.1:{srv.port}"]


def test_load_status(srv):
    path = D + "/ds1/loadstatus"
    status, text = raw(srv, "GET", path)
    assert status == 400 and text == "Invalid request. forceMetadataRefresh must be specified"
    q = "?forceMetadataRefresh=true&interval=1970-01-01/2999-01-01"
    assert raw(srv, "GET", path + q)[1] == '{"ds1":100.0}'
    assert srv.client.get(path + q + "&simple") == {"ds1": 0}
    assert srv.client.get(path + q + "&full") == {"_default_tier": {"ds1": 0}}
    # the default interval is the last two weeks: these 2021 segments are outside it
    assert raw(srv, "GET", path + "?forceMetadataRefresh=false") == (204, "")
    assert raw(srv, "GET", D + "/nope/loadstatus" + q) == (204, "")


def test_metadata_views(srv):
    c = srv.client
    assert c.get("/druid/coordinator/v1/metadata/datasources") == ["ds1"]
    ds = c.get("/druid/coordinator/v1/metadata/datasources/ds1")
    assert ds["name"] == "ds1" and len(ds["segments"]) == 3
    assert raw(srv, "GET", "/druid/coordinator/v1/metadata/datasources/nope")[0] == 404
    sid = c.get("/druid/coordinator/v1/metadata/datasources/ds1/segments")[0]
    assert c.get(f"/druid/coordinator/v1/metadata/datasources/ds1/segments/{sid}")["identifier"] == sid


def test_mark_unused_and_drop(srv):
    c = srv.client
    ingest(c, "ds2")
    ids = c.get(D + "/ds2/segments")
    # Overlord: by interval (segments lying within it), then by id
    status, text = raw(srv, "POST", "/druid/indexer/v1/datasources/ds2/markUnused",
                       {"interval": "2021-01-01/2021-01-02"})
    assert (status, json.loads(text)) == (200, {"numChangedSegments": 1})
    assert c.sql("SELECT COUNT(*) AS c FROM ds2") == [{"c": 2}]
    assert c.post("/druid/indexer/v1/datasources/ds2/markUnused", {"segmentIds": [ids[1], "not-a-segment"]}) == \
        {"numChangedSegments": 1}
    status, text = raw(srv, "POST", "/druid/indexer/v1/datasources/ds2/markUnused",
                       {"interval": "2021-01-01/2021-01-02", "segmentIds": [ids[2]]})
    assert status == 400 and text.startswith("Invalid request payload. Specify either 'interval' or 'segmentIds'")
    assert raw(srv, "POST", "/druid/indexer/v1/datasources/ds2/markUnused", {"segmentIds": [ids[2]],
                                                                             "versions": ["x"]})[0] == 400
    assert c.sql("SELECT k FROM ds2") == [{"k": "c"}]
    # Coordinator: unknown datasource is 204; DELETE drops the rest
    assert raw(srv, "POST", D + "/nope/markUnused", {"interval": "2000/2030"}) == (204, "")
    assert c.request("DELETE", D + "/ds2")[2] == '{"numChangedSegments":1}'
    assert c.get(D) == ["ds1"]
    with pytest.raises(HttpError) as e:
        c.sql("SELECT * FROM ds2")
    assert e.value.json()["errorMessage"] == "Object 'ds2' not found"
    # the Overlord's DELETE and a single segment
    ingest(c, "ds3")
    one = c.get(D + "/ds3/segments")[0]
    assert c.request("DELETE", f"/druid/indexer/v1/datasources/ds3/segments/{one}")[2] == '{"numChangedSegments":1}'
    assert c.request("DELETE", f"{D}/ds3/segments/{one}")[2] == '{"segmentStateChanged":false}'
    assert c.request("DELETE", "/druid/indexer/v1/datasources/ds3")[2] == '{"numChangedSegments":2}'
    assert c.request("DELETE", "/druid/indexer/v1/datasources/ds3")[2] == '{"numChangedSegments":0}'


def test_lookups_config_api(srv):
    c = srv.client
    spec = {"version": "v1", "lookupExtractorFactory": {"type": "map", "map": {"us": "United States"}}}
    assert raw(srv, "GET", L) == (404, "")
    status, text = raw(srv, "POST", L, {"__default": {"country": spec}})
    assert (status, json.loads(text)) == (500, {"error": "Not initialized. If this is the first lookup, post an empty "
                                                         "map to initialize"})
    assert raw(srv, "POST", L, {}) == (202, "{}")
    assert c.get(L) == []
    status, text = raw(srv, "POST", L, {"__default": {"country": spec}})
    assert status == 202 and json.loads(text) == {"__default": {"country": spec}}
    assert c.get(L) == ["__default"]
    assert c.get(L + "/all") == {"__default": {"country": spec}}
    assert c.get(L + "/__default") == ["country"]
    assert c.get(L + "/__default?detailed=true") == {"country": spec}
    assert c.get(L + "/__default/country") == spec
    assert raw(srv, "GET", L + "/__default/nope") == (404, '{"error":"lookup [nope] not found"}')
    assert raw(srv, "GET", L + "/tier2") == (404, '{"error":"Tier [tier2] not found"}')
    # an update needs a greater version
    status, text = raw(srv, "POST", L + "/__default/country", spec)
    assert status == 500 and json.loads(text)["error"].startswith(
        "given update for lookup [__default]:[country] can't replace existing spec [LookupExtractorFactoryMapContainer"
        "{version='v1'")
    newer = {"version": "v2", "lookupExtractorFactory": {"type": "map", "map": {"us": "USA", "fr": "France"}}}
    assert raw(srv, "POST", L + "/__default/country", newer) == (202, "")
    assert raw(srv, "POST", L + "/__default/nov", {"lookupExtractorFactory": {"type": "map", "map": {}}}) == \
        (500, '{"error":"lookup [__default]:[nov] does not have version."}')
    assert c.sql("SELECT k, v FROM lookup.country ORDER BY k") == [{"k": "fr", "v": "France"}, {"k": "us", "v": "USA"}]
    # LOOKUP() reads the same map, in SQL and in ingestion tasks
    assert c.sql("SELECT LOOKUP('fr', 'country') AS a, LOOKUP('xx', 'country') AS b, "
                 "LOOKUP('xx', 'country', 'n/a') AS d") == [{"a": "France", "b": None, "d": "n/a"}]
    status, text = raw(srv, "POST", "/druid/v2/sql", {"query": "SELECT LOOKUP('fr', 'nope') AS a"})
    assert status == 400 and "Lookup [nope] not found" in text
    rows = "".join(json.dumps({"t": "2021-01-01", "cc": cc}) + "\n" for cc in ("us", "fr", "de"))
    src = (f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': rows})}', '{{\"type\":\"json\"}}', "
           "'[{\"name\":\"t\",\"type\":\"string\"},{\"name\":\"cc\",\"type\":\"string\"}]'))")
    task = c.submit(f"INSERT INTO lk SELECT TIME_PARSE(t) AS __time, cc, LOOKUP(cc, 'country') AS country "
                    f"FROM {src} PARTITIONED BY DAY")
    assert c.wait(task)["statusCode"] == "SUCCESS"
    assert c.sql("SELECT cc, country FROM lk ORDER BY cc") == [
        {"cc": "de", "country": None}, {"cc": "fr", "country": "France"}, {"cc": "us", "country": "USA"}]
    assert c.get("/druid/coordinator/v1/lookups/status") == {"__default": {"country": {"loaded": True}}}
    # other tiers are stored but not served as SQL tables
    assert raw(srv, "POST", L + "/tier2/other", spec)[0] == 202
    assert c.get(L) == ["__default", "tier2"]
    assert c.sql("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'lookup'") == \
        [{"TABLE_NAME": "country"}]
    assert raw(srv, "DELETE", L + "/tier2/nope") == (404, "")
    assert raw(srv, "DELETE", L + "/tier2") == (202, "")
    assert raw(srv, "DELETE", L + "/__default/country") == (202, "")
    assert c.get(L + "/all") == {}


def test_lookups_survive_a_restart(tmp_path):
    server = Server(tmp_path / "var")
    server.start()
    try:
        c = server.client
        c.request("POST", L, {})
        c.request("POST", L + "/__default/kv", {"version": "1", "lookupExtractorFactory": {
            "type": "map", "map": {"a": "1"}}})
        server.stop()
        server.start()
        assert server.client.sql("SELECT v FROM lookup.kv WHERE k = 'a'") == [{"v": "1"}]
    finally:
        server.stop()


def test_status_routes(srv):
    c = srv.client
    assert c.get("/status/health") is True
    status = c.get("/status")
    assert set(status) == {"version", "modules", "memory"}
    assert set(status["memory"]) == {"maxMemory", "totalMemory", "freeMemory", "usedMemory", "directMemory"}
    props = c.get("/status/properties")
    assert props["druid.plaintextPort"] == str(srv.port) and all(isinstance(v, str) for v in props.values())
    assert c.get("/status/selfDiscovered/status") == {"selfDiscovered": True}
    assert c.get("/druid/v2/sql/task/enabled") == {"enabled": True}
    assert c.get("/druid/v2/sql/statements/enabled") == {"enabled": True}
