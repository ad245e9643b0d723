"""CSV, TSV and regex ``listDelimiter`` values are multi-value strings, end to end over HTTP.

Druid's readers split a value holding the delimiter (``ParserUtils.getTransformationFunction``,
Guava's ``Splitter.on``) and the column becomes a multi-value STRING dimension; a value
without it stays a plain string.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Server
from msqcore.storage.segment import read_segment_meta

SIG = [{"name": "ts", "type": "string"}, {"name": "page", "type": "string"}, {"name": "tags", "type": "string"},
       {"name": "n", "type": "long"}]
ROWS = [("2021-01-01T00:00:00Z", "Gypsy Danger", ["mech", "kaiju"], 1),
        ("2021-01-01T01:00:00Z", "Striker Eureka", ["mech"], 2),
        ("2021-01-01T02:00:00Z", "Cherno Alpha", None, 3),
        ("2021-01-01T03:00:00Z", "Crimson Typhoon", ["b", "", "a"], 4)]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("listdelim") / "var")
    server.start()
    yield server
    server.stop()


def extern(source: dict, fmt: dict, sig: list = SIG) -> str:
    def quote(obj) -> str:
        return json.dumps(obj).replace("'", "''")
    return f"TABLE(EXTERN('{quote(source)}', '{quote(fmt)}', '{quote(sig)}'))"


def delimited(sep: str, list_sep: str, header: bool) -> str:
    lines = [sep.join(["ts", "page", "tags", "n"])] if header else []
    lines += [sep.join([ts, page, list_sep.join(tags) if tags else "", str(n)]) for ts, page, tags, n in ROWS]
    return "\n".join(lines) + "\n"


def ingest(client, ds: str, source: dict, fmt: dict, context: dict | None = None) -> str:
    task = client.submit(f'REPLACE INTO "{ds}" OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, tags, n '
                         f"FROM {extern(source, fmt)} PARTITIONED BY DAY", context)
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", client.report(task)["status"]
    return task


def results(client, sql: str, context: dict | None = None) -> list:
    task = client.submit(sql, context)
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", client.report(task)["status"]
    return client.report(task)["results"]["results"]


def check_datasource(client, ds: str) -> None:
    # values are stored sorted in each row (SORTED_ARRAY); an empty piece is an empty string
    assert client.sql(f'SELECT page, tags, n FROM "{ds}" ORDER BY n') == [
        {"page": "Gypsy Danger", "tags": '["kaiju","mech"]', "n": 1},
        {"page": "Striker Eureka", "tags": "mech", "n": 2},
        {"page": "Cherno Alpha", "tags": None, "n": 3},
        {"page": "Crimson Typhoon", "tags": '["","a","b"]', "n": 4}]
    assert client.sql(f"SELECT n, MV_LENGTH(tags) AS l, MV_CONTAINS(tags, 'mech') AS c, MV_TO_STRING(tags, ';') AS s "
                      f'FROM "{ds}" ORDER BY n') == [
        {"n": 1, "l": 2, "c": True, "s": "kaiju;mech"}, {"n": 2, "l": 1, "c": True, "s": "mech"},
        {"n": 3, "l": None, "c": None, "s": None}, {"n": 4, "l": 3, "c": False, "s": ";a;b"}]
    # GROUP BY unnests: each row counts under each of its values, an empty row under NULL
    assert client.sql(f'SELECT tags, COUNT(*) AS c, SUM(n) AS s FROM "{ds}" GROUP BY 1 ORDER BY 1') == [
        {"tags": None, "c": 1, "s": 3}, {"tags": "", "c": 1, "s": 4}, {"tags": "a", "c": 1, "s": 4},
        {"tags": "b", "c": 1, "s": 4}, {"tags": "kaiju", "c": 1, "s": 1}, {"tags": "mech", "c": 2, "s": 3}]
    # a filter matches a row when any of its values does
    assert client.sql(f"SELECT n FROM \"{ds}\" WHERE tags = 'mech' ORDER BY n") == [{"n": 1}, {"n": 2}]
    assert client.sql(f"SELECT n FROM \"{ds}\" WHERE tags IN ('kaiju', 'a') ORDER BY n") == [{"n": 1}, {"n": 4}]
    assert client.sql(f"SELECT n FROM \"{ds}\" WHERE tags LIKE 'k%' ORDER BY n") == [{"n": 1}]
    assert client.sql(f'SELECT n FROM "{ds}" WHERE tags IS NULL') == [{"n": 3}]
    assert client.sql("SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS "
                      f"WHERE TABLE_NAME = '{ds}'") == [
        {"COLUMN_NAME": "__time", "DATA_TYPE": "TIMESTAMP"}, {"COLUMN_NAME": "page", "DATA_TYPE": "VARCHAR"},
        {"COLUMN_NAME": "tags", "DATA_TYPE": "VARCHAR"}, {"COLUMN_NAME": "n", "DATA_TYPE": "BIGINT"}]


def segment_columns(srv: Server, ds: str) -> dict[str, dict]:
    """The stored columns of the datasource's one segment, read from deep storage."""
    (segment,) = srv.client.get(f"/druid/coordinator/v1/metadata/datasources/{ds}/segments?full")
    load = segment["loadSpec"]
    path = Path(load["path"])
    files = [path] if path.is_file() else sorted(path.rglob("*.seg")) or sorted(p for p in path.rglob("*")
                                                                               if p.is_file())
    return {c["name"]: c for c in read_segment_meta(str(files[0]))["columns"]}


def test_csv_custom_list_delimiter(srv):
    client = srv.client
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    task = ingest(client, "mv_csv", {"type": "inline", "data": delimited(",", "|", header=True)}, fmt)
    check_datasource(client, "mv_csv")
    # a multi-value STRING dimension; the columns without the delimiter stay single-valued
    stages = client.report(task)["stages"]
    generator = next(s for s in stages if s["definition"]["processor"]["type"] == "segmentGenerator")
    dims = generator["definition"]["processor"]["dataSchema"]["dimensionsSpec"]["dimensions"]
    assert {"type": "string", "name": "tags", "multiValueHandling": "SORTED_ARRAY", "createBitmapIndex": True} in dims
    columns = segment_columns(srv, "mv_csv")
    assert columns["tags"]["type"] == "STRING" and columns["tags"].get("multiValue") is True
    assert columns["page"]["type"] == "STRING" and "multiValue" not in columns["page"]
    assert columns["n"]["type"] == "LONG"


def test_tsv_default_list_delimiter(srv):
    client = srv.client
    fmt = {"type": "tsv", "columns": ["ts", "page", "tags", "n"]}  # listDelimiter defaults to \u0001
    ingest(client, "mv_tsv", {"type": "inline", "data": delimited("\t", "\u0001", header=False)}, fmt)
    check_datasource(client, "mv_tsv")


def test_regex_list_delimiter(srv):
    client = srv.client
    fmt = {"type": "regex", "pattern": "^(\\S+) \\[([^\\]]*)\\] ([^;]*);(\\d+)$",
           "columns": ["ts", "page", "tags", "n"], "listDelimiter": ","}
    data = "".join(f"{ts} [{page}] {','.join(tags) if tags else ''};{n}\n" for ts, page, tags, n in ROWS)
    ingest(client, "mv_regex", {"type": "inline", "data": data}, fmt)
    check_datasource(client, "mv_regex")


def test_select_task_reads_multi_value_strings(srv):
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    ext = extern({"type": "inline", "data": delimited(",", "|", header=True)}, fmt)
    rows = results(srv.client, f"SELECT tags, COUNT(*) AS c FROM {ext} GROUP BY 1 ORDER BY 1")
    assert rows == [[None, 1], ["", 1], ["a", 1], ["b", 1], ["kaiju", 1], ["mech", 2]]
    rows = results(srv.client, f"SELECT n, MV_LENGTH(tags) FROM {ext} WHERE MV_CONTAINS(tags, 'mech') ORDER BY n")
    assert rows == [[1, 2], [2, 1]]
    # the lists as read, in order (not sorted: only segments sort a row's values); a row of
    # one value is that value, as Druid's DimensionSelector.defaultGetObject gives it
    rows = results(srv.client, f"SELECT n, tags FROM {ext} ORDER BY n")
    assert rows == [[1, ["mech", "kaiju"]], [2, "mech"], [3, None], [4, ["b", "", "a"]]]


def test_files_with_and_without_lists(srv, tmp_path):
    """One worker reading a file whose column is multi-valued and one whose column is not
    (so one batch of strings, one of lists), and several workers doing so."""
    (tmp_path / "a.csv").write_text("ts,page,tags,n\n2021-01-01T00:00:00Z,A,x|y,1\n")
    (tmp_path / "b.csv").write_text("ts,page,tags,n\n2021-01-01T01:00:00Z,B,z,2\n")
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "*.csv"}
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    for tasks in (2, 3):
        ingest(srv.client, "mv_files", source, fmt, {"maxNumTasks": tasks})
        assert srv.client.sql('SELECT page, tags FROM "mv_files" ORDER BY n') == [
            {"page": "A", "tags": '["x","y"]'}, {"page": "B", "tags": "z"}]
        # rowsInMemory 1: the sorters spill a run of plain strings before the lists arrive
        ingest(srv.client, "mv_files", source, fmt, {"maxNumTasks": tasks, "rowsInMemory": 1})
        assert srv.client.sql('SELECT page, tags FROM "mv_files" ORDER BY n') == [
            {"page": "A", "tags": '["x","y"]'}, {"page": "B", "tags": "z"}]
        ext = extern(source, fmt)
        assert results(srv.client, f"SELECT page, tags FROM {ext} ORDER BY n", {"maxNumTasks": tasks}) == [
            ["A", ["x", "y"]], ["B", "z"]]
        assert results(srv.client, f"SELECT tags, SUM(n) AS s FROM {ext} GROUP BY tags ORDER BY tags",
                       {"maxNumTasks": tasks}) == [["x", 1], ["y", 1], ["z", 2]]
    # and a datasource whose segments disagree: one multi-valued, one not
    task = srv.client.submit(f'INSERT INTO "mv_files" SELECT TIME_PARSE(ts) AS __time, page, tags, n '
                             f"FROM {extern(source, {**fmt, 'listDelimiter': ';'})} PARTITIONED BY DAY")
    assert srv.client.wait(task)["statusCode"] == "SUCCESS"
    assert srv.client.sql('SELECT page, tags FROM "mv_files" ORDER BY n, tags') == [
        {"page": "A", "tags": '["x","y"]'}, {"page": "A", "tags": "x|y"}, {"page": "B", "tags": "z"},
        {"page": "B", "tags": "z"}]
    assert srv.client.sql('SELECT tags, COUNT(*) AS c FROM "mv_files" GROUP BY tags ORDER BY tags') == [
        {"tags": "x", "c": 1}, {"tags": "x|y", "c": 1}, {"tags": "y", "c": 1}, {"tags": "z", "c": 2}]
