"""The streaming reader in process: bounded batches, codecs, flattenSpec paths and globs."""
from __future__ import annotations

import gzip
import io
import json
import random

import pyarrow as pa
import pytest

from msqcore.errors import CannotParseExternalData, InvalidInput, TooManyWarnings, UnknownError
from msqcore.inputs import formats
from msqcore.inputs.cloud import java_glob
from msqcore.inputs.compression import DecompressedStream
from msqcore.inputs.flatten import compile_jq, compile_path, evaluate
from msqcore.inputs.reader import ParseWarnings, max_parse_exceptions, read_split
from msqcore.inputs.sources import list_files
from test_inputs import COMPRESSIONS, snappy_framed, zipped

SIG = [("ts", "VARCHAR"), ("k", "VARCHAR"), ("n", "BIGINT"), ("x", "DOUBLE")]


def _read(spec_source: dict, fmt: dict, sig=SIG, limit: int = -1):
    warnings = ParseWarnings(limit)
    out = []
    for f in list_files(spec_source):
        for table, _ in read_split(f, fmt, sig, warnings):
            if table is not None:
                out += table.to_pylist()
    return out, warnings


def test_a_large_file_is_read_in_bounded_batches(tmp_path):
    row = {"ts": "2021-01-01T00:00:00Z", "k": "x" * 100, "n": 7, "x": 1.5, "other": "y" * 50}
    line = (json.dumps(row) + "\n").encode()
    count = (48 << 20) // len(line)
    path = tmp_path / "big.json.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        for _ in range(count // 1000):
            out.write(line * 1000)
    f = list_files({"type": "local", "files": [str(path)]})[0]
    rows = batches = raw = 0
    peak = 0
    base = pa.total_allocated_bytes()
    for table, nbytes in read_split(f, {"type": "json"}, SIG, ParseWarnings(0)):
        raw += nbytes
        if table is not None:
            rows += table.num_rows
            batches += 1
        peak = max(peak, pa.total_allocated_bytes() - base)
        del table
    assert rows == count // 1000 * 1000
    assert batches >= 5
    assert raw == path.stat().st_size
    assert peak < 4 * formats.BLOCK_SIZE  # a few blocks, never the 48 MiB file


@pytest.mark.parametrize("ext", sorted(COMPRESSIONS))
def test_codecs_stream_in_small_reads(ext):
    data = b"".join(b"line %d of some text\n" % i for i in range(50_000))
    raw = COMPRESSIONS[ext](data)
    stream = DecompressedStream(io.BytesIO(raw), "mem" + ext, {".gz": "gzip", ".bz2": "bz2", ".xz": "xz",
                                                                 ".zst": "zstd", ".zip": "zip", ".sz": "snappy"}[ext])
    parts = []
    while True:
        chunk = stream.read(7777)
        if not chunk:
            break
        assert len(chunk) <= 7777
        parts.append(chunk)
    assert b"".join(parts) == data


def test_concatenated_gzip_members_are_all_read():
    raw = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert DecompressedStream(io.BytesIO(raw), "x.gz", "gzip").read() == b"a\nb\n"


@pytest.mark.parametrize("raw, codec", [(b"not gzip", "gzip"), (b"PK nope", "zip"), (b"nope", "snappy"),
                                        (snappy_framed(b"x" * 100)[:-5], "snappy"),
                                        (zipped(random.Random(0).randbytes(100000), "y")[:5000], "zip")])
def test_corrupt_streams_raise_unknown_error_naming_the_source(raw, codec):
    with pytest.raises(UnknownError) as e:
        DecompressedStream(io.BytesIO(raw), "s3://b/bad.file", codec).read()
    assert "s3://b/bad.file" in str(e.value)


def test_json_bad_lines_are_reported_with_record_and_line():
    data = '{"ts":"a","n":1}\n{"ts":"b","n":"2"}\n\n[1]\n{"ts":"c","n":3.9,"x":"4"}\n{"ts": \n'
    rows, warnings = _read({"type": "inline", "data": data}, {"type": "json"})
    assert [(r["ts"], r["n"], r["x"]) for r in rows] == [("a", 1, None), ("b", 2, None), ("c", 3, 4.0)]
    assert [w["errorMessage"] for w in warnings.samples] == [
        "Unable to parse row [] (Record: 3, Line: 3)", "Unable to parse row [[1]] (Record: 3, Line: 4)",
        "Unable to parse row [{\"ts\": ] (Record: 4, Line: 6)"]


def test_json_fast_and_line_paths_agree():
    rows = [{"ts": "t", "k": True, "n": 5, "x": 2}, {"ts": "u", "k": False, "n": None, "x": 2.5},
            {"ts": "v", "k": None, "n": -3, "x": None}]
    data = "".join(json.dumps(r) + "\n" for r in rows)
    fast, _ = _read({"type": "inline", "data": data}, {"type": "json"})
    slow, _ = _read({"type": "inline", "data": data + "\n"}, {"type": "json"})  # a blank line: line path
    assert fast == slow == [{"ts": "t", "k": "true", "n": 5, "x": 2.0}, {"ts": "u", "k": "false", "n": None, "x": 2.5},
                            {"ts": "v", "k": None, "n": -3, "x": None}]


def test_csv_quoted_and_unquoted_blocks_agree():
    plain = "ts,k,n\n1,a,1\n2,b,2\n"
    quoted = 'ts,k,n\n1,"a",1\n2,"b",2\n3,"unterminated,3\n'
    a, _ = _read({"type": "inline", "data": plain}, {"type": "csv", "findColumnsFromHeader": True})
    b, w = _read({"type": "inline", "data": quoted}, {"type": "csv", "findColumnsFromHeader": True})
    assert a == b[:2]
    assert w.count == 1 and w.samples[0]["errorMessage"].endswith("(Record: 3, Line: 4)")


def test_parse_warning_limits():
    data = "{\n{\n{\n"
    with pytest.raises(CannotParseExternalData):
        _read({"type": "inline", "data": data}, {"type": "json"}, limit=0)
    with pytest.raises(TooManyWarnings) as e:
        _read({"type": "inline", "data": data}, {"type": "json"}, limit=2)
    assert e.value.to_json()["maxWarnings"] == 2
    assert _read({"type": "inline", "data": data}, {"type": "json"}, limit=3)[1].count == 3
    assert max_parse_exceptions({}) == 0 and max_parse_exceptions({"mode": "nonStrict"}) == -1
    assert max_parse_exceptions({"maxParseExceptions": "7"}) == 7
    with pytest.raises(UnknownError) as e:
        max_parse_exceptions({"maxParseExceptions": -2})
    assert "Invalid limit of -2" in str(e.value)


@pytest.mark.parametrize("expr, expected", [
    ("$.a.b", 1), ("$['a']['b']", 1), ("$.l[0]", 10), ("$.l[-1]", 30), ("$.l[5]", None), ("$.missing.x", None),
    ("$.l.length()", 3), ("$.l.sum()", 60.0), ("$.o[*].v", [1, 2]), ("$..v", [1, 2]), ("$.a", {"b": 1}),
])
def test_json_path_subset(expr, expected):
    doc = {"a": {"b": 1}, "l": [10, 20, 30], "o": [{"v": 1}, {"v": 2}]}
    assert evaluate(compile_path(expr), doc) == expected


@pytest.mark.parametrize("expr, expected", [(".a.b", 1), ('.["a"].b', 1), (".l[1]", 20), (".l | length", 3),
                                            (".o[].v", [1, 2])])
def test_jq_subset(expr, expected):
    doc = {"a": {"b": 1}, "l": [10, 20, 30], "o": [{"v": 1}, {"v": 2}]}
    assert evaluate(compile_jq(expr), doc) == expected


@pytest.mark.parametrize("expr", ["a.b", "$.a[?(@.x)]", "$.a[1:2]"])
def test_unsupported_json_paths_are_refused(expr):
    with pytest.raises(InvalidInput):
        compile_path(expr)


@pytest.mark.parametrize("glob, key, matches", [
    ("*.json", "a.json", True), ("*.json", "dir/a.json", False), ("**.json", "dir/sub/a.json", True),
    ("**/*.json", "dir/a.json", True), ("data/?.csv", "data/1.csv", True), ("data/?.csv", "data/12.csv", False),
    ("*.{json,csv}", "x.csv", True), ("[!a]*.json", "a.json", False), ("[!a]*.json", "b.json", True),
])
def test_object_glob_is_java_glob(glob, key, matches):
    assert bool(java_glob(glob).match(key)) is matches
