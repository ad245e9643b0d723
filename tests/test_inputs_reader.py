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
from msqcore.inputs._csv import line_quotes, plain_longs
from msqcore.inputs.cloud import java_glob
from msqcore.inputs.compression import DecompressedStream
from msqcore.inputs.flatten import compile_jq, compile_path, evaluate
from msqcore.inputs.reader import ParseWarnings, max_parse_exceptions, read_signature, read_split
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
    assert batches >= (48 << 20) // formats.BLOCK_SIZE >= 3
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


FLAT_ROWS = [
    {"ts": "a\"b\\c\n\u00e9\U0001F600/", "k": True, "n": -12, "x": 2, "skip": {"s": "}{,\"", "l": [1, [2]]}},
    {"x": 1.5e3, "n": None, "ts": "", "skip": [{"a": "]"}], "k": False, "other": "é"},
    {"ts": "日本語", "n": 0, "skip": "\\\"", "more": 1e-5},
    {},
]
_FLAT_SIG = [("ts", "VARCHAR"), ("k", "VARCHAR"), ("n", "BIGINT"), ("x", "DOUBLE")]


def _flat(text: bytes, sig=_FLAT_SIG):
    import numpy as np
    from msqcore.inputs._ndjson import parse_flat
    kinds = np.array([formats.FlatJson.KINDS[t] for _, t in sig], dtype=np.uint8)
    return parse_flat(text, [n for n, _ in sig], kinds)


def test_flat_json_parser_reads_what_python_reads():
    lines = [json.dumps(r, ensure_ascii=i % 2 == 0) for i, r in enumerate(FLAT_ROWS)]
    text = ("\r\n".join(lines[:2]) + "\n" + "\n".join(lines[2:])).encode()  # CRLF and a last line without one
    columns = _flat(text)
    assert columns is not None  # the fast path took it
    expected = [{"ts": r.get("ts"), "k": {True: "true", False: "false"}.get(r.get("k")), "n": r.get("n"),
                 "x": None if r.get("x") is None else float(r["x"])} for r in FLAT_ROWS]
    assert pa.table(columns, names=["ts", "k", "n", "x"]).to_pylist() == expected
    rows, _ = _read({"type": "inline", "data": text.decode()}, {"type": "json"}, sig=_FLAT_SIG)
    assert rows == expected


def test_flat_json_keys_that_start_like_the_previous_rows_keys():
    # each row's key at a position is checked against the previous row's key there first:
    # a longer or shorter key sharing its start, or an escaped one, must not pass for it
    lines = ['{"ts":"a","n":1}', '{"tsx":"b","n":2}', '{"ts":"c","nn":3}', '{"t":"d","n":4}', '{"ts":"e","n":5}']
    columns = _flat("\n".join(lines).encode(), [("ts", "VARCHAR"), ("n", "BIGINT")])
    assert pa.table(columns, names=["ts", "n"]).to_pylist() == [
        {"ts": "a", "n": 1}, {"ts": None, "n": 2}, {"ts": "c", "n": None}, {"ts": None, "n": 4}, {"ts": "e", "n": 5}]
    assert _flat(b'{"ts":"a"}\n{"ts\\"":"b"}', [("ts", "VARCHAR")]) is None  # an escaped key: declined


def test_flat_json_reads_blocks_in_pieces_and_numbers_lines(monkeypatch):
    # small blocks and pieces: every block carries a line over from the previous read, is
    # parsed in several pieces, and a bad line later is still reported at its own line
    monkeypatch.setattr(formats, "BLOCK_SIZE", 1000)
    monkeypatch.setattr(formats.FlatJson, "MIN_PIECE", 100)
    rows = [{"ts": "é" * (i % 7) + str(i), "n": i, "x": i / 4, "k": ["a", "日本"][i % 2]} for i in range(600)]
    lines = [json.dumps(r, ensure_ascii=i % 3 == 0) for i, r in enumerate(rows)]
    lines.insert(450, '{"ts": ')
    rows_read, warnings = _read({"type": "inline", "data": "\n".join(lines) + "\n"}, {"type": "json"})
    assert rows_read == rows
    assert [w["errorMessage"] for w in warnings.samples] == ['Unable to parse row [{"ts": ] (Record: 451, Line: 451)']


@pytest.mark.parametrize("line", [
    b'{"ts": 5}', b'{"n": 1.5}', b'{"n": "5"}', b'{"n": true}', b'{"ts": {"a": 1}}', b'{"ts": "a", "ts": "b"}',
    b'{"t\\u0073": "a"}', b'[1]', b'', b'{"ts": "a"} x', b'{"ts": "\xff"}', b'{"n": 12345678901234567890}',
    b'{"skip": tru}',
])
def test_flat_json_parser_declines_what_it_cannot_read_exactly(line):
    text = b'{"ts": "ok"}\n' + line + b'\n{"ts": "ok"}\n'
    assert _flat(text) is None
    # and the reader still gets the rows right (or reports the bad line) through the other paths
    rows, warnings = _read({"type": "inline", "data": text.decode("latin-1")}, {"type": "json"}, sig=_FLAT_SIG,
                           limit=-1)
    assert rows[0]["ts"] == rows[-1]["ts"] == "ok" and len(rows) + warnings.count == 3


@pytest.mark.parametrize("text, value", [
    (b'{"ts": "\\ud800"}\n', "?"), (b'{"ts": "\\udc00x"}\n', "?x"), (b'{"ts": "\\ud800\\u0041"}\n', "?A"),
    (b'{"ts": "\\ud800\\ud800\\udc00"}\n', "?\U00010000"), (b'{"ts": "a\\ud83d\\ude00"}\n', "a\U0001F600"),
])
def test_lone_surrogates_read_as_question_marks(text, value):
    """Druid's String.getBytes(UTF_8) writes a lone surrogate as '?': the Cython parser and
    the line-by-line path agree."""
    table = _flat(text)
    assert table is not None and table[0].to_pylist() == [value]
    ctx = formats.SplitContext(None, [("ts", "VARCHAR")], lambda m, r: None)
    assert formats._json_lines(text, 1, ctx, formats.Flattener(None)).column("ts").to_pylist() == [value]


def test_csv_quoted_and_unquoted_blocks_agree():
    plain = "ts,k,n\n1,a,1\n2,b,2\n"
    quoted = 'ts,k,n\n1,"a",1\n2,"b",2\n3,"unterminated,3\n'
    a, _ = _read({"type": "inline", "data": plain}, {"type": "csv", "findColumnsFromHeader": True})
    b, w = _read({"type": "inline", "data": quoted}, {"type": "csv", "findColumnsFromHeader": True})
    assert a == b[:2]
    assert w.count == 1 and w.samples[0]["errorMessage"].endswith("(Record: 3, Line: 4)")


_CSV_PIECES = [b"a", b"b c", b"", b'""', b'"x,y"', b'"q""q"', b'"x\ty"', "é".encode(), b'""""', b"1", b"-7"]
_CSV_ODD = [b"\xff", b'"', b"\r", b"\t", b'"a"b', b"a,", b'a"']  # some make a block decline


@pytest.mark.parametrize("is_csv", [True, False])
def test_csv_plain_parser_reads_what_pyarrow_reads(is_csv):
    """``_csv.parse_delimited`` against pyarrow's reader on random lines: the same columns,
    or it declines the block (which pyarrow then reads)."""
    rng = random.Random(11)
    names, delimiter = ["a", "b", "c"], "," if is_csv else "\t"
    sig = [(n, "VARCHAR") for n in names]
    read = declined = 0
    for _ in range(1500):
        lines = []
        for _ in range(rng.randint(1, 6)):
            fields = [b"".join(rng.choice(_CSV_PIECES if rng.random() < 0.97 else _CSV_ODD)
                               for _ in range(rng.choice([0, 1, 1, 1, 2])))
                      for _ in range(3 if rng.random() < 0.98 else rng.choice([2, 4]))]
            lines.append(delimiter.encode().join(fields))
        data = rng.choice([b"\n", b"\r\n"]).join(lines) + rng.choice([b"", b"\n", b"\r\n"])
        wanted = rng.choice([names, ["c", "a"], ["b"]])
        plain = formats._delimited_plain(data, 0, len(data), names, wanted, delimiter, is_csv)
        if plain is None:
            declined += 1
            continue
        arrow = formats._delimited_arrow(memoryview(data), names, wanted, delimiter, is_csv, sig)
        assert arrow is not None and plain[0].combine_chunks().equals(arrow.combine_chunks()), data
        assert plain[1] == data.count(b"\n") + (not data.endswith(b"\n"))
        read += 1
    assert read > 400 and declined > 400, (read, declined)


def test_csv_plain_parser_reads_the_usual_shapes():
    data = ('a,b,c\n"2016-06-27T00:00:11.080Z","x ""y"" z",é\r\n\n,"",7\r\n\r\nlast,"a,b",-1').encode()
    plain, lines = formats._delimited_plain(data, 0, len(data), ["a", "b", "c"], ["c", "a"], ",", True)
    assert lines == 6 and plain.to_pylist() == [{"c": "c", "a": "a"}, {"c": "é", "a": "2016-06-27T00:00:11.080Z"},
                                 {"c": "7", "a": None}, {"c": "-1", "a": "last"}]


def test_line_quotes_counts_lines_and_finds_a_quote_pair_split_by_a_newline():
    # the SSE2 loop takes 16 bytes at a time: random short blocks cross its edges
    rng = random.Random(7)
    for _ in range(5000):
        block = bytes(rng.choice(b'"\na,') for _ in range(rng.randint(0, 70)))
        lines = block.split(b"\n")
        balanced = all(line.count(b'"') % 2 == 0 for line in lines)
        count, ok = line_quotes(block)
        assert ok == balanced, block
        if ok:
            assert count == block.count(b"\n") + (0 if not block or block.endswith(b"\n") else 1)


def test_csv_line_numbers_stay_right_over_many_blocks(monkeypatch):
    monkeypatch.setattr(formats.LineBlocks.__init__, "__defaults__", (4096,))  # many blocks, counted by the kernel
    rows = "".join(f'"{i}","k",{i}\n' for i in range(3000))
    data = "ts,k,n\n" + rows + 'bad,"unterminated,1\n' + rows + 'bad,"again,2\n' + rows
    out, w = _read({"type": "inline", "data": data}, {"type": "csv", "findColumnsFromHeader": True},
                   [("ts", "VARCHAR"), ("k", "VARCHAR"), ("n", "BIGINT")])
    assert len(out) == 9000 and out[-1] == {"ts": "2999", "k": "k", "n": 2999} and w.count == 2
    assert [s["errorMessage"].rsplit("(", 1)[1] for s in w.samples] == ["Record: 3001, Line: 3002)",
                                                                      "Record: 6001, Line: 6003)"]


@pytest.mark.parametrize("sig", [[("ts", "VARCHAR"), ("k", "VARCHAR"), ("n", "BIGINT")], [("absent", "VARCHAR")]])
def test_csv_blocks_read_in_pieces_read_as_one_block(monkeypatch, sig):
    # a block is parsed as its carried-over head and the rest of its read, never joined
    rng = random.Random(3)
    shapes = ['{i},"a,b",{i}', "{i},x|y|,{i}", "{i},plain,{i}", "{i},too few", '{i},"unterminated,{i}', "{i},x,0x{i}"]
    data = "ts,k,n\n" + "".join(rng.choice(shapes).format(i=i) + "\n" for i in range(4000))
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    whole, w1 = _read({"type": "inline", "data": data}, fmt, sig)
    monkeypatch.setattr(formats.LineBlocks.__init__, "__defaults__", (1000,))
    pieces, w2 = _read({"type": "inline", "data": data}, fmt, sig)
    assert len(whole) == 4000 - w1.count and sorted(map(str, pieces)) == sorted(map(str, whole))
    assert w2.count == w1.count > 0 and w2.samples == w1.samples


@pytest.mark.parametrize("start", [0, 3, 8])
def test_booleans_read_as_varchar_are_druids_text(start):
    values = [True, None, False, True, False, None, True, True, False, True, None] * 5
    col = pa.chunked_array([pa.array(values).slice(start), pa.array([False, True])])
    out = formats.conform(pa.table({"b": col}), [("b", "VARCHAR")]).column("b")
    assert out.to_pylist() == [None if v is None else "true" if v else "false" for v in values[start:] + [False, True]]


@pytest.mark.parametrize("values", [["1", "-0", None, "007", "-9223372036854775808", "9223372036854775807", "0"],
                                    [None, None], []])
def test_plain_longs_reads_plain_decimals(values):
    assert plain_longs(pa.array(values, pa.string())).to_pylist() == [None if v is None else int(v) for v in values]
    chunked = pa.chunked_array([pa.array(values, pa.string()).slice(1), pa.array(values, pa.string())], pa.string())
    assert plain_longs(chunked).to_pylist() == [None if v is None else int(v) for v in chunked.to_pylist()]


@pytest.mark.parametrize("bad", ["", "+5", "0x10", " 5", "5 ", "1.0", "-", "1e3", "9223372036854775808",
                                 "-9223372036854775809", "123456789012345678901"])
def test_plain_longs_declines_what_needs_the_lenient_parse(bad):
    assert plain_longs(pa.array(["1", None, bad], pa.string())) is None


def _delimited(data: str, fmt: dict, names: list[str]) -> list[pa.Table]:
    ctx = formats.SplitContext(None, [(n, "VARCHAR") for n in names], lambda m, r: None)
    return list(formats.read_delimited(io.BytesIO(data.encode()), fmt, ctx))


@pytest.mark.parametrize("fmt, data", [
    ({"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"},
     'ts,tags,n\n1,a|b,1\n2,c,2\n3,,3\n4,"d||e",4\n5,f|,5\n'),
    ({"type": "tsv", "columns": ["ts", "tags", "n"]},  # the default listDelimiter, \u0001
     "1\ta\x01b\t1\n2\tc\t2\n3\t\t3\n4\td\x01\x01e\t4\n5\tf\x01\t5\n"),
])
def test_list_delimiter_values_become_string_lists(fmt, data):
    (table,) = _delimited(data, fmt, ["ts", "tags", "n"])
    assert table.schema.field("tags").type == pa.list_(pa.string())
    # Guava's Splitter.on keeps empty pieces, and Druid no longer turns them into nulls
    assert table.column("tags").to_pylist() == [["a", "b"], ["c"], None, ["d", "", "e"], ["f", ""]]
    assert table.column("n").type == pa.string()  # columns without the delimiter stay plain


def test_list_delimiter_absent_or_unread_keeps_strings():
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    (table,) = _delimited("ts,tags\n1,a\n2,b\n", fmt, ["ts", "tags"])
    assert table.schema.field("tags").type == pa.string()
    # a column the query does not read is never parsed, so its lists do not matter
    (table,) = _delimited("ts,tags\n1,a|b\n", fmt, ["ts"])
    assert table.column_names == ["ts"] and table.column("ts").to_pylist() == ["1"]


def test_multi_value_column_reaches_the_engine_as_lists():
    data = "ts,tags,n\n1,a|b,5\n2,c,6\n"
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    rows, _ = _read({"type": "inline", "data": data}, fmt, sig=[("ts", "VARCHAR"), ("tags", "VARCHAR"), ("n", "BIGINT")])
    assert rows == [{"ts": "1", "tags": ["a", "b"], "n": 5}, {"ts": "2", "tags": ["c"], "n": 6}]


def test_multi_value_in_a_numeric_column():
    data = "ts,n\n1,5|6\n2,7\n"
    fmt = {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}
    rows, _ = _read({"type": "inline", "data": data}, fmt, sig=[("ts", "VARCHAR"), ("n", "BIGINT")])
    assert rows == [{"ts": "1", "n": None}, {"ts": "2", "n": 7}]


def test_regex_list_delimiter():
    fmt = {"type": "regex", "pattern": "(\\w+)=(.*)", "columns": ["k", "v"], "listDelimiter": ";"}
    ctx = formats.SplitContext(None, [("k", "VARCHAR"), ("v", "VARCHAR")], lambda m, r: None)
    (table,) = formats.read_regex(io.BytesIO(b"a=x;y\nb=z\nc=\nd=;\n"), fmt, ctx)
    assert table.column("v").to_pylist() == [["x", "y"], ["z"], None, ["", ""]]
    assert table.column("k").to_pylist() == ["a", "b", "c", "d"]
    (table,) = formats.read_regex(io.BytesIO(b"a=x;y\n"), {**fmt, "listDelimiter": None}, ctx)
    assert table.column("v").to_pylist() == ["x;y"]  # the default \u0001 is not in the data


def test_concat_tables_turns_plain_strings_into_one_value_lists():
    from msqcore.planner.arrays import concat_tables
    lists = pa.table({"t": pa.array([["a", "b"]], pa.list_(pa.string())), "n": [1]})
    plain = pa.table({"t": pa.array(["c", None]), "n": [2, 3]})
    out = concat_tables([plain, lists])
    assert out.schema.field("t").type == pa.list_(pa.string())
    assert out.column("t").to_pylist() == [["c"], None, ["a", "b"]]
    assert concat_tables([plain, plain]).column("t").to_pylist() == ["c", None, "c", None]


def test_read_signature_keeps_only_the_columns_a_query_reads():
    from msqcore.planner.query import compile_query
    from msqcore.planner.statement import split_statement

    class NoTables:
        def table_signature(self, name):
            return None

    sig = '[{"name":"ts","type":"string"},{"name":"a","type":"string"},{"name":"b","type":"long"}]'
    ext = f"""TABLE(EXTERN('{{"type":"inline","data":"x"}}', '{{"type":"json"}}', '{sig}'))"""
    cases = {f"SELECT a FROM {ext} WHERE b > 1": ["a", "b"], f"SELECT COUNT(*) FROM {ext}": ["ts"],
             f"SELECT b, COUNT(*) FROM {ext} GROUP BY b": ["b"], f"SELECT ts, a, b FROM {ext}": ["ts", "a", "b"]}
    for sql, expected in cases.items():
        query = compile_query(split_statement(sql).select, NoTables())
        assert [n for n, _ in read_signature(query)] == expected, sql


def test_line_blocks_join_reads_of_any_size():
    text = b"".join(b"line %d\n" % i for i in range(5000)) + b"last without newline"

    class Trickle(io.BytesIO):  # a stream that returns short reads, as sockets and codecs do
        def read(self, n=-1):
            return super().read(min(n, 777) if n > 0 else n)

    text = text[:20000] + b"x" * 10000 + text[20000:]  # one line longer than two blocks
    blocks = list(formats.LineBlocks(Trickle(text), block_size=4096))
    assert b"".join(b for b, _ in blocks) == text
    assert all(b.endswith(b"\n") for b, _ in blocks[:-1]) and len(blocks) > 5
    firsts = [first for _, first in blocks]
    counts = [b.count(b"\n") for b, _ in blocks]
    assert firsts == [1 + sum(counts[:i]) for i in range(len(blocks))]


def _local_text(n: int) -> bytes:
    rows = [f'{{"ts":"2021-01-01T00:00:{i % 60:02d}Z","k":"k\u00e9{i}","n":{i},"x":{i}.5}}' for i in range(n)]
    rows[n // 2] = rows[n // 2][:-1] + ',"pad":"' + "p" * 20000 + '"}'  # a line longer than two blocks
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_local_files_are_read_through_memory_maps(tmp_path, monkeypatch, bom):
    text = _local_text(3000)
    path = tmp_path / "rows.json"
    path.write_bytes(bom + text)
    kinds = []
    real = formats.LineBlocks._read_chunk

    def spy(self, size=None, mapped=False):
        chunk = real(self, size, mapped)
        kinds.append(type(chunk).__name__)
        return chunk

    monkeypatch.setattr(formats.LineBlocks, "_read_chunk", spy)
    monkeypatch.setattr(formats, "BLOCK_SIZE", 8192)  # many blocks, each a page-aligned map
    from_file, _ = _read({"type": "local", "files": [str(path)]}, {"type": "json"})
    assert kinds.count("mmap") > 10
    from_memory, _ = _read({"type": "inline", "data": (bom + text).decode("utf-8-sig")}, {"type": "json"})
    assert from_file == from_memory and len(from_file) == 3000 and from_file[1]["k"] == "k\u00e91"


def test_local_csv_after_its_header_is_read_through_memory_maps(tmp_path, monkeypatch):
    rows = "".join(f'{i},"k,{i}",{i}\n' for i in range(20000))
    path = tmp_path / "rows.csv"
    path.write_text("ts,k,n\n" + rows)
    monkeypatch.setattr(formats.LineBlocks.__init__, "__defaults__", (8192,))
    fmt, sig = {"type": "csv", "findColumnsFromHeader": True}, [("ts", "VARCHAR"), ("k", "VARCHAR"), ("n", "BIGINT")]
    f = list_files({"type": "local", "files": [str(path)]})[0]
    raw = 0
    for _, nbytes in read_split(f, fmt, sig, ParseWarnings(0)):
        raw += nbytes
    assert raw == path.stat().st_size  # the input bytes counter counts mapped bytes too
    from_file, _ = _read({"type": "local", "files": [str(path)]}, fmt, sig)
    from_memory, _ = _read({"type": "inline", "data": "ts,k,n\n" + rows}, fmt, sig)
    assert from_file == from_memory and from_file[-1] == {"ts": "19999", "k": "k,19999", "n": 19999}


def test_line_blocks_of_a_local_file_are_maps_of_its_pages(tmp_path):
    from msqcore.inputs.sources import open_raw
    text = _local_text(2000)
    path = tmp_path / "rows.json"
    path.write_bytes(text)
    f = list_files({"type": "local", "files": [str(path)]})[0]
    with DecompressedStream(open_raw(f), f.uri, None) as stream:
        blocks = list(formats.LineBlocks(stream, block_size=4096).blocks())
    assert any(type(b.body).__name__ == "mmap" for b, _ in blocks)
    assert b"".join(b.whole() for b, _ in blocks) == text
    assert all(isinstance(b.whole(), bytes) for b, _ in blocks)
    with gzip.open(tmp_path / "rows.json.gz", "wb") as out:
        out.write(text)
    g = list_files({"type": "local", "files": [str(tmp_path / "rows.json.gz")]})[0]
    with DecompressedStream(open_raw(g), g.uri, "gzip") as stream:  # decompressed bytes cannot be mapped
        blocks = list(formats.LineBlocks(stream, block_size=4096).blocks())
    assert not any(type(b.body).__name__ == "mmap" for b, _ in blocks)
    assert b"".join(b.whole() for b, _ in blocks) == text


@pytest.mark.parametrize("values, expected", [
    (["1", "-20", None, "007"], [1, -20, None, 7]),
    (["1", "3.7", "1e3", "abc", "+5", "0x10", " 5"], [1, 3, 1000, None, 5, None, None]),
    (["9223372036854775807", "9223372036854775808", "-9223372036854775808", "-99999999999999999999"],
     [2**63 - 1, 2**63 - 1, -2**63, -2**63]),  # past the range: Druid's double parse, saturated
])
def test_text_to_long_matches_the_lenient_parse(values, expected):
    table = formats.conform(pa.table({"n": pa.array(values, pa.string())}), [("n", "BIGINT")])
    assert table.column("n").to_pylist() == expected


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
