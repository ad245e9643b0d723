"""A JSON string escape that is a lone UTF-16 surrogate (``"\\ud800"``), over HTTP.

Jackson reads it into a Java string, and Druid writes strings as UTF-8 with
``String.getBytes``, which turns a lone surrogate into ``?``; the row is ingested.
"""
from __future__ import annotations

import json

import pytest

from conftest import Server

SIG = [{"name": "ts", "type": "string"}, {"name": "s", "type": "string"}, {"name": "n", "type": "long"}]
DATA = ('{"ts":"2021-01-01T00:00:00Z","s":"x\\ud800y","n":1}\n'
        '{"ts":"2021-01-01T01:00:00Z","s":"\\udc00","n":2}\n'
        '{"ts":"2021-01-01T02:00:00Z","s":"\\ud83d\\ude00 \\ud800\\u0041","n":3}\n'
        '{"ts":"2021-01-01T03:00:00Z","s":"plain","n":4}\n')
EXPECTED = [{"s": "x?y", "n": 1}, {"s": "?", "n": 2}, {"s": "\U0001F600 ?A", "n": 3}, {"s": "plain", "n": 4}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("surrogate") / "var")
    server.start()
    yield server
    server.stop()


def extern(fmt: dict) -> str:
    source = json.dumps({"type": "inline", "data": DATA}).replace("'", "''")
    return f"TABLE(EXTERN('{source}', '{json.dumps(fmt)}', '{json.dumps(SIG)}'))"


@pytest.mark.parametrize("ds, fmt", [
    ("flat", {"type": "json"}),  # the Cython parser of flat lines
    # a flattenSpec takes the line-by-line path (json.loads)
    ("flattened", {"type": "json", "flattenSpec": {"fields": [{"type": "path", "name": "s", "expr": "$.s"}]}}),
])
def test_lone_surrogate_is_ingested_as_question_mark(srv, ds, fmt):
    client = srv.client
    task = client.submit(f"REPLACE INTO {ds} OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, s, n "
                         f"FROM {extern(fmt)} PARTITIONED BY DAY")
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", client.report(task)["status"]
    assert client.sql(f"SELECT s, n FROM {ds} ORDER BY n") == EXPECTED
    assert "warnings" not in json.dumps(client.report(task)["counters"])


def test_lone_surrogate_in_select_task(srv):
    client = srv.client
    task = client.submit(f"SELECT s FROM {extern({'type': 'json'})} WHERE n < 3")
    assert client.wait(task)["statusCode"] == "SUCCESS"
    assert client.report(task)["results"]["results"] == [["x?y"], ["?"]]
