"""POST /druid/v2/sql: result formats and headers, over real HTTP."""
from __future__ import annotations

import json

import pytest

from client import HttpError

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T00:00:00Z", "k": "a", "n": 1},
    {"ts": "2021-01-02T00:00:00Z", "k": "b,c", "n": None},
])
SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'


@pytest.fixture
def loaded(server):
    src = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"
    task_id = server.client.submit(f"INSERT INTO d SELECT TIME_PARSE(ts) AS __time, k, n FROM {src} PARTITIONED BY DAY")
    assert server.client.wait(task_id)["statusCode"] == "SUCCESS"
    return server.client


Q = "SELECT __time, k, n FROM d ORDER BY __time"


def _raw(client, **body):
    status, headers, text = client.request("POST", "/druid/v2/sql", {"query": Q, **body})
    assert status == 200
    return headers, text


def test_object_default(loaded):
    headers, text = _raw(loaded)
    assert headers["Content-Type"].startswith("application/json")
    assert text == ('[{"__time":"2021-01-01T00:00:00.000Z","k":"a","n":1},'
                    '{"__time":"2021-01-02T00:00:00.000Z","k":"b,c","n":null}]\n')
    assert headers["X-Druid-SQL-Query-Id"]
    assert "X-Druid-SQL-Header-Included" not in headers


def test_array_with_all_headers(loaded):
    headers, text = _raw(loaded, resultFormat="array", header=True, typesHeader=True, sqlTypesHeader=True)
    assert json.loads(text) == [["__time", "k", "n"], ["LONG", "STRING", "LONG"], ["TIMESTAMP", "VARCHAR", "BIGINT"],
                                ["2021-01-01T00:00:00.000Z", "a", 1], ["2021-01-02T00:00:00.000Z", "b,c", None]]
    assert headers["X-Druid-SQL-Header-Included"] == "yes"


def test_object_header_with_types(loaded):
    _, text = _raw(loaded, header=True, typesHeader=True, sqlTypesHeader=True)
    assert json.loads(text)[0] == {"__time": {"type": "LONG", "sqlType": "TIMESTAMP"},
                                   "k": {"type": "STRING", "sqlType": "VARCHAR"},
                                   "n": {"type": "LONG", "sqlType": "BIGINT"}}
    _, text = _raw(loaded, header=True)
    assert json.loads(text)[0] == {"__time": None, "k": None, "n": None}


def test_lines_formats_end_with_blank_line(loaded):
    headers, text = _raw(loaded, resultFormat="objectLines")
    assert headers["Content-Type"].startswith("text/plain")
    assert text == ('{"__time":"2021-01-01T00:00:00.000Z","k":"a","n":1}\n'
                    '{"__time":"2021-01-02T00:00:00.000Z","k":"b,c","n":null}\n\n')
    _, text = _raw(loaded, resultFormat="arrayLines", header=True)
    assert text == '["__time","k","n"]\n["2021-01-01T00:00:00.000Z","a",1]\n["2021-01-02T00:00:00.000Z","b,c",null]\n\n'


def test_csv(loaded):
    headers, text = _raw(loaded, resultFormat="csv", header=True)
    assert headers["Content-Type"].startswith("text/csv")
    assert text == '__time,k,n\n2021-01-01T00:00:00.000Z,a,1\n2021-01-02T00:00:00.000Z,"b,c",\n\n'


def test_text_plain_body_and_parameters(loaded):
    status, _, text = loaded.request("POST", "/druid/v2/sql", "SELECT COUNT(*) AS c FROM d", content_type="text/plain")
    assert json.loads(text) == [{"c": 2}]
    rows = loaded.sql("SELECT k FROM d WHERE n = ? OR k = ?", parameters=[{"type": "BIGINT", "value": 1},
                                                                         {"type": "VARCHAR", "value": "zz"}])
    assert rows == [{"k": "a"}]


def test_empty_result_keeps_header(loaded):
    _, text = _raw(loaded, resultFormat="array", header=True)
    assert json.loads(text)[0] == ["__time", "k", "n"]
    status, _, text = loaded.request("POST", "/druid/v2/sql", {"query": "SELECT k FROM d WHERE k = 'none'",
                                                               "resultFormat": "array", "header": True})
    assert json.loads(text) == [["k"]]


def test_insert_refused_on_sql_endpoint(loaded):
    with pytest.raises(HttpError) as e:
        loaded.request("POST", "/druid/v2/sql", {"query": "INSERT INTO d SELECT * FROM d PARTITIONED BY DAY"})
    assert e.value.status == 400
    assert "INSERT operations are not supported by requested SQL engine [native]" in e.value.json()["errorMessage"]


def test_unknown_table_is_400(server):
    with pytest.raises(HttpError) as e:
        server.client.request("POST", "/druid/v2/sql", {"query": "SELECT * FROM missing"})
    assert e.value.status == 400 and e.value.json()["errorMessage"] == "Object 'missing' not found"
