"""Nested JSON (COMPLEX<json>) over real HTTP: ingesting nested objects from EXTERN into
a datasource, reading them back with the JSON functions, rendering them in the SQL API's
result formats and in task reports, and the nested column's field columns on disk.

Expected values are Druid's: JSON_VALUE gives VARCHAR unless RETURNING says otherwise, a
nested value is rendered as nested JSON (not a quoted string), and PARSE_JSON of text that
is not JSON fails the query."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from client import HttpError

ROWS = [
    {"ts": "2024-01-01T00:00:00Z", "id": 1,
     "obj": {"a": 1, "b": {"c": "x", "d": [1, 2, 3]}, "e": 1.5, "f": True, "g": None}},
    {"ts": "2024-01-01T01:00:00Z", "id": 2, "obj": {"b": {"c": "y", "d": []}, "a": "12", "h": [{"k": 1}, {"k": 2}]}},
    {"ts": "2024-01-02T00:00:00Z", "id": 3, "obj": {"a": 3.7, "x.y": "dot", "b": {"c": "é\n"}}},
    {"ts": "2024-01-02T00:00:00Z", "id": 4, "obj": "just text"},
    {"ts": "2024-01-03T00:00:00Z", "id": 5, "obj": None},
    {"ts": "2024-01-03T00:00:00Z", "id": 6},
    {"ts": "2024-01-03T00:00:00Z", "id": 7, "obj": [1, {"a": 2}]},
]
DATA = "".join(json.dumps(r) + "\n" for r in ROWS)
SOURCE = json.dumps({"type": "inline", "data": DATA}).replace("'", "''")
SIG = json.dumps([{"name": "ts", "type": "string"}, {"name": "id", "type": "long"},
                  {"name": "obj", "type": "COMPLEX<json>"}])
EXTERN = f"TABLE(EXTERN('{SOURCE}', '{{\"type\":\"json\"}}', '{SIG}'))"
INGEST = (f"REPLACE INTO nested OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, id, obj FROM {EXTERN} "
          "PARTITIONED BY DAY")


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """A server with the ``nested`` datasource ingested from ROWS."""
    from conftest import Server
    srv = Server(tmp_path_factory.mktemp("json") / "var")
    srv.start()
    try:
        task = srv.client.submit(INGEST)
        status = srv.client.wait(task)
        assert status["statusCode"] == "SUCCESS", status
        srv.ingest_task = task
        yield srv
    finally:
        srv.stop()


def _sql(srv, query: str, **extra):
    return srv.client.post("/druid/v2/sql", {"query": query, **extra})


def _column(srv, expr: str) -> list:
    return [r["v"] for r in _sql(srv, f"SELECT {expr} AS v FROM nested ORDER BY id")]


def test_stored_column_round_trips_as_nested_json(nested):
    # nested values come back as JSON, keys in input order; a JSON string as a string
    assert _column(nested, "obj") == [r.get("obj") for r in ROWS]


def test_result_formats_render_nested_values(nested):
    q = "SELECT obj FROM nested WHERE id = 1"
    assert _sql(nested, q, resultFormat="array") == [[ROWS[0]["obj"]]]
    text = nested.client.request("POST", "/druid/v2/sql", {"query": q, "resultFormat": "csv"})[2]
    assert text == '"{""a"":1,""b"":{""c"":""x"",""d"":[1,2,3]},""e"":1.5,""f"":true,""g"":null}"\n\n'
    head = _sql(nested, q, resultFormat="array", header=True, typesHeader=True, sqlTypesHeader=True)[:3]
    # the SQL type of a COMPLEX column is Calcite's OTHER (Druid's ComplexSqlType), its native type COMPLEX<json>
    assert head == [["obj"], ["COMPLEX<json>"], ["OTHER"]]


@pytest.mark.parametrize("expr, expect", [
    ("JSON_VALUE(obj, '$.a')", ["1", "12", "3.7", None, None, None, None]),
    ("JSON_VALUE(obj, '$.a' RETURNING BIGINT)", [1, 12, 3, None, None, None, None]),
    ("JSON_VALUE(obj, '$.a' RETURNING DOUBLE)", [1.0, 12.0, 3.7, None, None, None, None]),
    ("JSON_VALUE(obj, '$.b.c')", ["x", "y", "é\n", None, None, None, None]),
    ("JSON_VALUE(obj, '$.b.d[1]' RETURNING BIGINT)", [2, None, None, None, None, None, None]),
    ("JSON_VALUE(obj, '$.b.d[-1]' RETURNING BIGINT)", [3, None, None, None, None, None, None]),
    ("JSON_VALUE(obj, '$.b')", [None] * 7),
    ("JSON_VALUE(obj, '$.f')", ["1", None, None, None, None, None, None]),
    ("JSON_VALUE(obj, '$[''x.y'']')", [None, None, "dot", None, None, None, None]),
    ("JSON_VALUE(obj, '$')", [None, None, None, "just text", None, None, None]),
    ("JSON_VALUE(obj, '$[1].a' RETURNING BIGINT)", [None] * 6 + [2]),
    ("JSON_VALUE(obj, '$.b.d' RETURNING BIGINT ARRAY)", [[1, 2, 3], [], None, None, None, None, None]),
    ("JSON_QUERY(obj, '$.b')", [{"c": "x", "d": [1, 2, 3]}, {"c": "y", "d": []}, {"c": "é\n"}, None, None, None,
                                None]),
    ("JSON_QUERY(obj, '$.h[1]')", [None, {"k": 2}, None, None, None, None, None]),
    ("JSON_QUERY(obj, '$.g')", [None] * 7),
    ("JSON_KEYS(obj, '$')", [["a", "b", "e", "f", "g"], ["b", "a", "h"], ["a", "x.y", "b"], None, None, None,
                             ["0", "1"]]),
    ("JSON_KEYS(obj, '$.b')", [["c", "d"], ["c", "d"], ["c"], None, None, None, None]),
    ("JSON_PATHS(obj)", [["$.a", "$.b.c", "$.b.d", "$.e", "$.f", "$.g"], ["$.b.c", "$.b.d", "$.a", "$.h[0].k",
                                                                        "$.h[1].k"],
                         ["$.a", "$['x.y']", "$.b.c"], ["$"], None, None, ["$[0]", "$[1].a"]]),
    ("TO_JSON_STRING(JSON_QUERY(obj, '$.b'))", ['{"c":"x","d":[1,2,3]}', '{"c":"y","d":[]}', '{"c":"é\\n"}',
                                                None, None, None, None]),
])
def test_json_functions_on_stored_column(nested, expr, expect):
    got = _column(nested, expr)
    if expr.startswith(("JSON_KEYS", "JSON_PATHS")) or "ARRAY)" in expr:
        got = [None if v is None else json.loads(v) for v in got]  # ARRAY results are JSON text
    assert got == expect


def test_filter_and_group_on_json_value(nested):
    rows = _sql(nested, "SELECT JSON_VALUE(obj, '$.b.c') AS c, COUNT(*) AS n FROM nested "
                        "WHERE JSON_VALUE(obj, '$.a' RETURNING BIGINT) > 1 GROUP BY 1 ORDER BY 1")
    assert rows == [{"c": "y", "n": 1}, {"c": "é\n", "n": 1}]


def test_select_task_report_renders_nested_json(nested):
    client = nested.client
    task = client.submit("SELECT id, JSON_QUERY(obj, '$.b') AS b, JSON_OBJECT(KEY 'id' VALUE id) AS o "
                         "FROM nested WHERE id < 3 ORDER BY id")
    assert client.wait(task)["statusCode"] == "SUCCESS"
    results = client.report(task)["results"]
    assert results["results"] == [[1, {"c": "x", "d": [1, 2, 3]}, {"id": 1}], [2, {"c": "y", "d": []}, {"id": 2}]]
    assert results["sqlTypeNames"] == ["BIGINT", "OTHER", "OTHER"]
    assert results["signature"][1] == {"name": "b", "type": "COMPLEX<json>"}


def _dicts(obj):
    if isinstance(obj, dict):
        yield obj
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            yield from _dicts(v)


def test_ingest_payload_and_segments_name_json_columns(nested):
    client = nested.client
    report = client.report(nested.ingest_task)  # the segmentGenerator stage's dataSchema
    dims = [d for d in _dicts(report) if d.get("name") == "obj" and "type" in d]
    assert {"type": "json", "name": "obj", "formatVersion": 5, "multiValueHandling": "SORTED_ARRAY",
            "createBitmapIndex": True} in dims
    segments = client.get("/druid/coordinator/v1/metadata/datasources/nested/segments?full")
    assert segments and all("obj" in s["dimensions"].split(",") for s in segments)


def test_extend_type_complex_json_and_json_object(server):
    src = f"TABLE(EXTERN('{SOURCE}', '{{\"type\":\"json\"}}')) EXTEND (id BIGINT, obj TYPE('COMPLEX<json>'))"
    task = server.client.submit(f"SELECT id, JSON_VALUE(obj, '$.b.c') AS c, "
                                f"JSON_OBJECT(KEY 'x' VALUE id, KEY 'y' VALUE JSON_QUERY(obj, '$.b')) AS o "
                                f"FROM {src} WHERE id <= 2")
    assert server.client.wait(task)["statusCode"] == "SUCCESS"
    rows = server.client.report(task)["results"]["results"]
    assert rows == [[1, "x", {"x": 1, "y": {"c": "x", "d": [1, 2, 3]}}], [2, "y", {"x": 2, "y": {"c": "y", "d": []}}]]


def test_parse_json_error_fails_the_query(server):
    with pytest.raises(HttpError) as e:
        server.client.post("/druid/v2/sql", {"query": "SELECT PARSE_JSON('{bad') AS v"})
    assert e.value.status == 500
    body = e.value.json()
    assert body["errorCode"] == "general"
    assert body["errorMessage"] == "Bad string input [{bad] to [parse_json]"


def test_nested_column_writes_field_columns(nested):
    """The stored column keeps one typed field column per literal path (docs/segment-format.md)."""
    from msqcore.storage import nested as nested_storage
    from msqcore.storage.segment import validate_segment
    files = sorted(Path(nested.data_dir).rglob("index.seg"))
    fields = {}
    for f in files:
        validate_segment(str(f), full=True)
        for path in nested_storage.field_paths(str(f), "obj"):
            kind, values = nested_storage.read_field(str(f), "obj", path)
            fields.setdefault(path, {})[f.parent.parent.parent.name[:10]] = (kind, values.to_pylist())
    # day 1: rows 1 and 2; $.a holds 1 and "12", so it is a STRING field there
    assert fields["$.a"]["2024-01-01"] == ("STRING", ["1", "12"])
    assert fields["$.b.c"]["2024-01-01"] == ("STRING", ["x", "y"])
    assert fields["$.e"]["2024-01-01"] == ("DOUBLE", [1.5, None])
    assert fields["$.f"]["2024-01-01"] == ("LONG", [1, None])
    assert fields["$.h[1].k"]["2024-01-01"] == ("LONG", [None, 2])
    assert fields["$.a"]["2024-01-02"] == ("DOUBLE", [3.7, None])
    assert fields["$"]["2024-01-02"] == ("STRING", [None, "just text"])
    assert "$.b.d" not in fields  # an array of literals stays in the raw JSON


def test_json_value_on_stored_column_reads_only_field_columns(nested):
    """A segment scan of JSON_VALUE(obj, literal path) reads the field column, not the raw
    JSON; the same query over a column also read as a whole reads the raw JSON."""
    from msqcore.engine import operators as ops
    from msqcore.engine.worker import read_datasource_segment
    from msqcore.planner.query import compile_query
    from msqcore.planner.statement import split_statement

    class Catalog:
        def table_signature(self, name):
            return [("__time", "TIMESTAMP"), ("id", "BIGINT"), ("obj", "COMPLEX<json>")] if name == "nested" else None

    day1 = next(f for f in Path(nested.data_dir).rglob("index.seg") if "2024-01-01T" in str(f.parent.parent.parent))
    fields_only = compile_query(split_statement(
        "SELECT JSON_VALUE(obj, '$.b.c') AS c, JSON_VALUE(obj, '$.e' RETURNING DOUBLE) AS e FROM nested").select,
        Catalog())
    table = read_datasource_segment(str(day1), fields_only)
    assert table.column("obj").null_count == table.num_rows == 2  # the raw JSON was not read
    assert ops.scan(table, fields_only).to_pylist() == [{"c": "x", "e": 1.5}, {"c": "y", "e": None}]
    both = compile_query(split_statement("SELECT obj, JSON_VALUE(obj, '$.b.c') AS c FROM nested").select, Catalog())
    table = read_datasource_segment(str(day1), both)
    assert table.column("obj").null_count == 0
    assert [r["c"] for r in ops.scan(table, both).to_pylist()] == ["x", "y"]


def _random_doc(rnd, depth=0):
    kind = rnd.choice(["obj", "arr", "str", "int", "float", "bool", "null"] if depth < 3 else
                      ["str", "int", "float", "bool", "null"])
    if kind == "obj":
        return {rnd.choice(["a", "b", "c.d", "é", "q\"", "k\n", "\U0001F600"]) + str(i): _random_doc(rnd, depth + 1)
                for i in range(rnd.randint(0, 4))}
    if kind == "arr":
        return [_random_doc(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {"str": lambda: rnd.choice(["", "x", "tab\there", "é\u2028", "\x01", "\U0001F600"]),
            "int": lambda: rnd.randint(-10**12, 10**12), "float": lambda: rnd.uniform(-1e6, 1e6),
            "bool": lambda: rnd.random() < 0.5, "null": lambda: None}[kind]()


def test_kernels_match_python_json_on_random_documents():
    """The C kernels against Python's json module: canonical text parses back to the same
    document (keys in order); JSON_QUERY/JSON_KEYS find what indexing the document finds."""
    import random

    import pyarrow as pa

    from msqcore.planner import json_functions as jf
    rnd = random.Random(7)
    docs = [{"top": _random_doc(rnd), "n": i} for i in range(300)]
    # whitespace and escapes the canonical form removes
    texts = [json.dumps(d, indent=rnd.choice([None, 2]), ensure_ascii=rnd.random() < 0.5) for d in docs]
    canon = jf.canonical(pa.array(texts), strict=True).to_pylist()
    for doc, text in zip(docs, canon):
        back = json.loads(text)
        assert back == doc and json.dumps(back) == json.dumps(doc)
        assert text == json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    arr = pa.array(canon)
    got = jf.json_query(arr, jf.kernel_path(["top"])).to_pylist()  # JSON null is SQL NULL
    assert [None if v is None else json.loads(v) for v in got] == [d["top"] for d in docs]
    keys = jf.json_keys(arr, jf.kernel_path(["top"])).to_pylist()
    for k, d in zip(keys, docs):
        top = d["top"]
        expect = list(top) if isinstance(top, dict) else [str(i) for i in range(len(top))] \
            if isinstance(top, list) else None
        assert k == expect


@pytest.mark.parametrize("text, ok", [
    ('{"a":1}', True), ('  [1, 2] ', True), ('"\\ud83d\\ude00"', True), ("1.5e-3", True), ("-0", True),
    ('{"a":1} trailing', True),  # Jackson's readValue stops after the first value
    ("", False), ("{", False), ("{'a':1}", False), ("[1,]", False), ('{"a" 1}', False), ("01", False),
    ("NaN", False), ('"tab\there"', False), ("1.", False), ('"\\x"', False), ("tru", False),
])
def test_canonical_accepts_what_jackson_reads(text, ok):
    import pyarrow as pa

    from msqcore.planner import json_functions as jf
    assert (jf.canonical(pa.array([text]), strict=False)[0].as_py() is not None) == ok


def test_reindex_keeps_nested_column(nested):
    """A nested column read from a datasource and written to another stays nested JSON, and
    JSON_VALUE of it can be a new typed column."""
    client = nested.client
    task = client.submit("REPLACE INTO nested2 OVERWRITE ALL SELECT __time, id, obj, "
                         "JSON_VALUE(obj, '$.a' RETURNING DOUBLE) AS a FROM nested WHERE id <= 3 PARTITIONED BY ALL")
    assert client.wait(task)["statusCode"] == "SUCCESS"
    rows = _sql(nested, "SELECT id, obj, a, JSON_VALUE(obj, '$.b.c') AS c FROM nested2 ORDER BY id")
    assert rows == [{"id": r["id"], "obj": r["obj"], "a": a, "c": r["obj"]["b"]["c"]}
                    for r, a in zip(ROWS[:3], [1.0, 12.0, 3.7])]


def test_native_query_uses_nested_field_virtual_columns(nested):
    """Druid plans JSON_VALUE of a column at a path as a ``nested-field`` virtual column
    (NestedFieldVirtualColumn as Jackson writes it), the filter's first, one column per
    expression, and a comparison with it as an ``equals``/``range`` filter on that column."""
    q = ("SELECT JSON_VALUE(obj, '$.b.c') AS c, COUNT(*) AS n FROM nested "
         "WHERE JSON_VALUE(obj, '$.a' RETURNING BIGINT) > 1 AND JSON_VALUE(obj, '$.h[0].k') = '1' GROUP BY 1")
    native = json.loads(_sql(nested, "EXPLAIN PLAN FOR " + q)[0]["PLAN"])[0]["query"]
    assert native["virtualColumns"] == [
        {"type": "nested-field", "columnName": "obj", "outputName": "v0", "expectedType": "LONG",
         "pathParts": [{"type": "field", "field": "a"}], "processFromRaw": False},
        {"type": "nested-field", "columnName": "obj", "outputName": "v1", "expectedType": "STRING",
         "pathParts": [{"type": "field", "field": "h"}, {"type": "arrayElement", "index": 0},
                       {"type": "field", "field": "k"}], "processFromRaw": False},
        {"type": "nested-field", "columnName": "obj", "outputName": "v2", "expectedType": "STRING",
         "pathParts": [{"type": "field", "field": "b"}, {"type": "field", "field": "c"}], "processFromRaw": False}]
    assert native["filter"] == {"type": "and", "fields": [
        {"type": "range", "column": "v0", "matchValueType": "LONG", "lower": 1, "lowerOpen": True},
        {"type": "equals", "column": "v1", "matchValueType": "STRING", "matchValue": "1"}]}
    assert [d["dimension"] for d in native["dimensions"]] == ["v2"]
    # the same JSON_VALUE in the filter and the SELECT list is one virtual column
    q = "SELECT JSON_VALUE(obj, '$.b.c') AS c FROM nested WHERE JSON_VALUE(obj, '$.b.c') IS NOT NULL"
    native = json.loads(_sql(nested, "EXPLAIN PLAN FOR " + q)[0]["PLAN"])[0]["query"]
    assert [v["outputName"] for v in native["virtualColumns"]] == ["v0"]
    assert native["filter"] == {"type": "not", "field": {"type": "null", "column": "v0"}}
    assert native["columns"] == ["v0"]
