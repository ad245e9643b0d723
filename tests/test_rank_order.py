"""Segment generation in rank order: a ``SegmentWriter`` with ``sort_order`` takes rows in any
order and writes the bytes of the same rows appended in segment order; the segmentGenerator
stage feeds it the partition's frames as they arrive (``engine/segment_gen.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from msqcore.engine.time_sort import segment_order
from msqcore.storage.segment import (SegmentWriter, can_sort_rows, open_segment, read_segment, read_segment_meta,
                                     write_segment)

DIMS = ["d", "uniq", "n", "x", "f", "e", "tags", "longs", "cx"]
METRICS = ["m", "big"]
ORDER = ["__time", "d", "uniq", "n", "x", "f", "e"]


def _arrivals(n: int, seed: int) -> pa.Table:
    """Rows in no order, with few distinct times (many ties), nulls, "" apart from null,
    non-ASCII, NaN and -0.0, whole-key duplicates (told apart by ``m``), a mostly distinct
    column and columns of every other kind."""
    rng = np.random.default_rng(seed)
    words = np.array(["b", "a", "", "é😀", "ab", "a\x00", "z" * 30], dtype=object)
    d = words[rng.integers(0, len(words), n)]
    d[rng.random(n) < 0.1] = None
    uniq = np.array([f"u{v:06d}" for v in rng.permutation(n)], dtype=object)
    uniq[rng.random(n) < 0.3] = "dup"  # still mostly distinct in the first rows
    uniq[rng.random(n) < 0.05] = None
    longs = rng.integers(-3, 3, n)
    x = rng.integers(-2, 2, n).astype(float)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.05] = -0.0
    tags = [None if i % 9 == 0 else sorted(rng.choice(list("pqr"), i % 3).tolist()) for i in range(n)]
    return pa.table({
        "__time": pa.array(rng.integers(0, 6, n) * 60_000, pa.int64()),
        "d": pa.array(d, pa.string()),
        "uniq": pa.array(uniq, pa.large_string()),
        "n": pa.array(np.where(rng.random(n) < 0.1, None, longs).tolist(), pa.int64()),
        "x": pa.array(np.where(rng.random(n) < 0.1, None, x).tolist(), pa.float64()),
        "f": pa.array(rng.integers(0, 2, n).astype(np.float32)),
        "e": pa.array([None] * n, pa.string()),  # every row null
        "tags": pa.array(tags, pa.list_(pa.string())),
        "longs": pa.array([[int(v)] * (i % 3) for i, v in enumerate(longs)], pa.list_(pa.int64())),
        "cx": pa.array([bytes([i % 251]) * (i % 4) for i in range(n)], pa.binary()),
        "m": pa.array(np.arange(n)),
        "big": pa.array((longs * 10**12).tolist(), pa.int64()),
    }).replace_schema_metadata(None)


def _write_in_rank_order(path, table: pa.Table, order: list[str], temp_dir, **kw) -> int:
    schema = table.schema.set(table.schema.get_field_index("cx"),
                              pa.field("cx", pa.binary(), metadata={b"druid_type": b"COMPLEX<thing>"}))
    writer = SegmentWriter(str(path), schema, dimensions=DIMS, metrics=METRICS, sort_order=order,
                           temp_dir=None if temp_dir is None else str(temp_dir), **kw)
    rng = np.random.default_rng(1)
    start = 0
    while start < table.num_rows:  # batches of uneven sizes
        size = int(rng.integers(1, 400))
        writer.append(table.slice(start, size).cast(schema))
        start += size
    return writer.finish()


def _write_sorted(path, table: pa.Table, order: list[str]) -> None:
    """Today's way: the rows sorted first (``time_sort.segment_order``: stable), then written."""
    schema = table.schema.set(table.schema.get_field_index("cx"),
                              pa.field("cx", pa.binary(), metadata={b"druid_type": b"COMPLEX<thing>"}))
    write_segment(str(path), table.take(pa.array(segment_order(table, order))).cast(schema),
                  dimensions=DIMS, metrics=METRICS)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("order", [ORDER, ["__time", "n", "x", "d"]])  # the second leaves uniq, f, e unranked
def test_same_bytes_as_rows_sorted_first(tmp_path, streamed, threads, order):
    table = _arrivals(5000, seed=len(order) + threads)
    temp = tmp_path / "tmp"
    temp.mkdir()
    _write_sorted(tmp_path / "sorted.seg", table, order)
    size = _write_in_rank_order(tmp_path / "ranked.seg", table, order, temp if streamed else None,
                                chunk_rows=700, threads=threads)
    ranked = (tmp_path / "ranked.seg").read_bytes()
    assert size == len(ranked)
    assert ranked == (tmp_path / "sorted.seg").read_bytes()
    assert list(temp.iterdir()) == []  # spools, spooled dictionaries and body removed
    seg = open_segment(str(tmp_path / "ranked.seg"))  # both string layouts
    try:
        assert seg.column("uniq")["layout"] == "rowLists" and seg.column("d")["layout"] == "ids"
    finally:
        seg.close()
    # ties on every sort column keep their arrival order (m counts the arrivals); repr: NaN != NaN
    rows = read_segment(str(tmp_path / "ranked.seg")).to_pylist()
    expected = table.take(pa.array(segment_order(table, order))).select(list(rows[0])).to_pylist()
    assert [repr(r) for r in rows] == [repr(r) for r in expected]


def test_rows_already_in_order_and_a_single_row(tmp_path):
    table = _arrivals(3000, seed=3)
    in_order = table.take(pa.array(segment_order(table, ORDER)))
    _write_sorted(tmp_path / "sorted.seg", in_order, ORDER)
    _write_in_rank_order(tmp_path / "ranked.seg", in_order, ORDER, tmp_path, threads=2)
    assert (tmp_path / "ranked.seg").read_bytes() == (tmp_path / "sorted.seg").read_bytes()
    one = table.slice(7, 1)
    _write_sorted(tmp_path / "one_sorted.seg", one, ORDER)
    _write_in_rank_order(tmp_path / "one.seg", one, ORDER, None)
    assert (tmp_path / "one.seg").read_bytes() == (tmp_path / "one_sorted.seg").read_bytes()


def test_no_rows(tmp_path):
    table = _arrivals(10, seed=4).slice(0, 0)
    _write_sorted(tmp_path / "sorted.seg", table, ORDER)
    _write_in_rank_order(tmp_path / "ranked.seg", table, ORDER, tmp_path)
    assert (tmp_path / "ranked.seg").read_bytes() == (tmp_path / "sorted.seg").read_bytes()
    assert read_segment_meta(str(tmp_path / "ranked.seg"))["numRows"] == 0


def test_which_orders_a_writer_ranks(tmp_path):
    schema = _arrivals(1, seed=5).schema
    assert can_sort_rows(schema, ORDER)
    assert can_sort_rows(schema, ["__time"])
    assert not can_sort_rows(schema, ["d", "__time"])  # forceSegmentSortByTime: false
    assert not can_sort_rows(schema, [])
    assert not can_sort_rows(schema, ["__time", "tags"])  # a multi-value string: by its key bytes
    assert not can_sort_rows(schema, ["__time", "longs"])
    assert not can_sort_rows(schema, ["__time", "cx"])
    assert not can_sort_rows(schema, ["__time", "nope"])
    json_text = pa.schema([("__time", pa.int64()),
                           pa.field("j", pa.string(), metadata={b"druid_type": b"COMPLEX<json>"})])
    assert not can_sort_rows(json_text, ["__time", "j"])
    for bad in (["d", "__time"], ["__time", "tags"], ["__time", "d", "d"]):
        with pytest.raises(ValueError, match="sort_order"):
            SegmentWriter(str(tmp_path / "x.seg"), schema, dimensions=["d", "tags"], metrics=["m"], sort_order=bad)
    with pytest.raises(ValueError, match="rollup"):
        SegmentWriter(str(tmp_path / "x.seg"), schema, dimensions=["d"], metrics=["m"], rollup={"m": "longSum"},
                      sort_order=["__time", "d"])


# --- the segmentGenerator stage over HTTP -------------------------------------------------------

SIG = [{"name": "ts", "type": "string"}, {"name": "ch", "type": "string"}, {"name": "page", "type": "string"},
       {"name": "k", "type": "long"}, {"name": "x", "type": "double"}, {"name": "m", "type": "long"}]


def _extern(source: dict, fmt: dict, sig: list = SIG) -> str:
    def quote(obj) -> str:
        return json.dumps(obj).replace("'", "''")
    return f"TABLE(EXTERN('{quote(source)}', '{quote(fmt)}', '{quote(sig)}'))"


def _segment_tables(c, ds: str) -> list[pa.Table]:
    tables = []
    for segment in c.get(f"/druid/coordinator/v1/metadata/datasources/{ds}/segments?full"):
        path = Path(segment["loadSpec"]["path"])
        for f in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            tables.append(read_segment(str(f)))
    return tables


def _progress(report: dict) -> dict:
    stage = next(s for s in report["stages"] if s["definition"]["processor"]["type"] == "segmentGenerator")
    totals = dict.fromkeys(["rowsProcessed", "rowsPersisted", "rowsMerged", "rowsPushed"], 0)
    for worker in report["counters"][str(stage["stageNumber"])].values():
        for k in totals:
            totals[k] += worker["segmentGenerationProgress"][k]
    return totals


def test_partitions_arrive_out_of_order_and_are_written_in_order(server, tmp_path):
    """CLUSTERED BY page: each worker's shuffle file comes in page order, the segments are in
    (__time, ch, page, k, x) order, string, long and double dimensions with nulls."""
    c = server.client
    rng = np.random.default_rng(11)
    n = 3000
    lines = []
    for i in range(n):
        sec = int(rng.integers(0, 2 * 86400))
        k = "" if i % 11 == 0 else str(int(rng.integers(-2, 3)))
        x = "" if i % 7 == 0 else str(float(rng.integers(0, 3)) / 2)
        ch = ["", "#a", "#b", "é"][i % 4] if i % 13 else ""
        lines.append(f"2024-01-{1 + sec // 86400:02d}T{sec // 3600 % 24:02d}:{sec // 60 % 60:02d}:00Z,{ch},"
                     f"p{int(rng.integers(0, 300))},{k},{x},{i}")
    for part in range(3):  # three files: three input splits
        (tmp_path / f"in{part}.csv").write_text("\n".join(lines[part::3]) + "\n")
    src = _extern({"type": "local", "baseDir": str(tmp_path), "filter": "*.csv"},
                  {"type": "csv", "columns": [f["name"] for f in SIG]})
    sql = ("REPLACE INTO ranked OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, ch, page, k, x, m FROM " + src +
           " PARTITIONED BY DAY CLUSTERED BY page")
    # m is a dimension too: every row is distinct, so the order is fully determined
    for ctx in ({"maxNumTasks": 3}, {"maxNumTasks": 3, "rowsInMemory": 200, "rowsPerSegment": 700}):
        task = c.submit(sql, ctx)
        assert c.wait(task)["statusCode"] == "SUCCESS", c.report(task)["status"]
        assert _progress(c.report(task)) == dict.fromkeys(
            ["rowsProcessed", "rowsPersisted", "rowsMerged", "rowsPushed"], n)
        tables = _segment_tables(c, "ranked")
        assert len(tables) >= 2 and sum(t.num_rows for t in tables) == n
        for t in tables:
            order = ["__time", "page", "ch", "k", "x", "m"]  # CLUSTERED BY columns first (spec §8)
            assert t.column_names[:len(order)] == order
            assert segment_order(t, order).tolist() == list(range(t.num_rows))
        got = c.sql('SELECT COUNT(*) AS c, COUNT(k) AS ck, COUNT(x) AS cx, SUM(m) AS sm FROM "ranked"')
        assert got == [{"c": n, "ck": n - len(range(0, n, 11)), "cx": n - len(range(0, n, 7)),
                        "sm": n * (n - 1) // 2}]


def test_a_string_column_that_becomes_multi_valued_in_a_later_file(server, tmp_path):
    """With ``listDelimiter``, a column is a list only in the workers whose rows held the
    delimiter: a partition whose first frames had plain strings is then read again and
    sorted the other way; every counter still counts each row once."""
    c = server.client
    # the bigger file goes to the first worker, whose shuffle file the partition reads first
    plain = [f"2021-01-01T00:{i % 60:02d}:00Z,A{i}{'.' * 20},t{i % 3},{i}" for i in range(300)]
    lists = [f"2021-01-01T01:{i % 60:02d}:00Z,B{i},t{i % 3}|u,{300 + i}" for i in range(300)]
    (tmp_path / "a.csv").write_text("ts,page,tags,n\n" + "\n".join(plain) + "\n")
    (tmp_path / "b.csv").write_text("ts,page,tags,n\n" + "\n".join(lists) + "\n")
    sig = [{"name": "ts", "type": "string"}, {"name": "page", "type": "string"},
           {"name": "tags", "type": "string"}, {"name": "n", "type": "long"}]
    src = _extern({"type": "local", "baseDir": str(tmp_path), "filter": "*.csv"},
                  {"type": "csv", "findColumnsFromHeader": True, "listDelimiter": "|"}, sig)
    for tasks in (2, 3):
        task = c.submit(f'REPLACE INTO "mv_later" OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, tags, n '
                        f"FROM {src} PARTITIONED BY DAY", {"maxNumTasks": tasks})
        assert c.wait(task)["statusCode"] == "SUCCESS", c.report(task)["status"]
        assert _progress(c.report(task)) == dict.fromkeys(
            ["rowsProcessed", "rowsPersisted", "rowsMerged", "rowsPushed"], 600)
        (t,) = _segment_tables(c, "mv_later")
        assert segment_order(t, ["__time", "page", "tags", "n"]).tolist() == list(range(600))
        assert c.sql('SELECT page, tags FROM "mv_later" WHERE n IN (1, 301) ORDER BY n') == [
            {"page": "A1" + "." * 20, "tags": "t1"}, {"page": "B1", "tags": '["t1","u"]'}]
        assert c.sql('SELECT tags, COUNT(*) AS c FROM "mv_later" GROUP BY tags ORDER BY tags') == [
            {"tags": "t0", "c": 200}, {"tags": "t1", "c": 200}, {"tags": "t2", "c": 200}, {"tags": "u", "c": 300}]
