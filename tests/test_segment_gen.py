"""Segment generation with memory bounded by rowsInMemory: the streaming SegmentWriter and
the segmentGenerator stage over real HTTP."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from msqcore.storage.segment import SegmentWriter, read_segment, read_segment_meta, validate_segment, write_segment

# --- SegmentWriter ------------------------------------------------------------------------------


def _mixed_table(n: int, seed: int = 7) -> pa.Table:
    """Rows in segment order (__time, then d) with every column kind, nulls included."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i:04d}" for i in range(300)] + ["", "é😀"])
    d = words[rng.integers(0, len(words), n)].astype(object)
    d[rng.random(n) < 0.05] = None
    times = np.sort(rng.integers(0, 10, n)) * 3_600_000
    table = pa.table({"__time": pa.array(times, pa.int64()), "d": pa.array(d, pa.string())})
    table = table.sort_by([("__time", "ascending"), ("d", "ascending")])
    longs = rng.integers(-1000, 1000, n)
    tags = [None if i % 11 == 0 else sorted(words[rng.integers(0, 20, i % 3)].tolist()) for i in range(n)]
    return table.append_column("uniq", pa.array([f"u{i}" for i in rng.permutation(n)])) \
        .append_column("tags", pa.array(tags, pa.list_(pa.string()))) \
        .append_column("longs", pa.array([[int(v), None] if i % 7 == 0 else [int(v)] for i, v in enumerate(longs)],
                                         pa.list_(pa.int64()))) \
        .append_column(pa.field("cx", pa.binary(), metadata={b"druid_type": b"COMPLEX<thing>"}),
                       pa.array([bytes([i % 256]) * (i % 5) for i in range(n)], pa.binary())) \
        .append_column("n", pa.array(np.where(rng.random(n) < 0.1, None, longs).tolist(), pa.int64())) \
        .append_column("big", pa.array((longs * 10**12).tolist(), pa.int64())) \
        .append_column("x", pa.array(np.where(rng.random(n) < 0.1, None, rng.random(n)).tolist(), pa.float64())) \
        .append_column("f", pa.array(rng.random(n).astype(np.float32)))


DIMS = ["d", "uniq", "tags", "longs", "cx"]
METRICS = ["n", "big", "x", "f"]


def _stream(path, table: pa.Table, temp_dir, sizes, **kw) -> int:
    """Write ``table`` through a streaming SegmentWriter in batches of the given sizes (cycled)."""
    writer = SegmentWriter(str(path), table.schema, temp_dir=str(temp_dir), chunk_rows=kw.pop("chunk_rows", 1000),
                           **kw)
    start, i = 0, 0
    while start < table.num_rows:
        size = sizes[i % len(sizes)]
        writer.append(table.slice(start, size).to_batches()[0] if i % 2 else table.slice(start, size))
        start += size
        i += 1
    return writer.finish()


@pytest.mark.parametrize("sizes", [[1], [37, 1, 500], [5000]])
def test_streaming_writer_gives_the_one_shot_bytes(tmp_path, sizes):
    table = _mixed_table(3000)
    temp = tmp_path / "tmp"
    temp.mkdir()
    one_shot = tmp_path / "one.seg"
    write_segment(str(one_shot), table, dimensions=DIMS, metrics=METRICS)
    streamed = tmp_path / "stream.seg"
    size = _stream(streamed, table, temp, sizes, dimensions=DIMS, metrics=METRICS)
    assert size == os.path.getsize(streamed)
    assert streamed.read_bytes() == one_shot.read_bytes()
    validate_segment(str(streamed), full=True)
    assert read_segment(str(streamed)).to_pydict() == table.select(["__time", *DIMS, *METRICS]).to_pydict()
    assert os.listdir(temp) == []  # spools and body removed


def test_streaming_rollup_merges_keys_across_batches(tmp_path):
    rng = np.random.default_rng(3)
    n = 4000
    table = pa.table({"__time": pa.array(np.sort(rng.integers(0, 4, n)), pa.int64()),
                      "d": pa.array(np.array(["p", "q", None], dtype=object)[rng.integers(0, 3, n)], pa.string()),
                      "cnt": pa.array(np.ones(n, np.int64)),
                      "lo": pa.array(rng.integers(0, 100, n)),
                      "mx": pa.array(rng.random(n))})
    table = table.sort_by([("__time", "ascending"), ("d", "ascending")])
    rollup = {"cnt": "longSum", "lo": "longMin", "mx": "doubleMax"}
    one_shot = tmp_path / "one.seg"
    write_segment(str(one_shot), table, dimensions=["d"], metrics=list(rollup), rollup=rollup)
    streamed = tmp_path / "stream.seg"
    # batches of 7 rows: every run of equal keys (about 330 rows) spans many batches
    _stream(streamed, table, tmp_path, [7], dimensions=["d"], metrics=list(rollup), rollup=rollup, chunk_rows=10)
    assert streamed.read_bytes() == one_shot.read_bytes()
    out = read_segment(str(streamed))
    assert out.num_rows == 12 and sum(out.column("cnt").to_pylist()) == n
    expected = table.group_by(["__time", "d"], use_threads=False).aggregate(
        [("cnt", "sum"), ("lo", "min"), ("mx", "max")])
    got = {(t, d): (c, lo, mx) for t, d, c, lo, mx in zip(*out.to_pydict().values())}
    assert got == {(t, d): (c, lo, mx) for t, d, c, lo, mx in zip(*expected.to_pydict().values())}
    assert read_segment_meta(str(streamed))["rollup"] is True


def test_writer_close_without_finish_leaves_nothing(tmp_path):
    table = _mixed_table(500)
    with SegmentWriter(str(tmp_path / "never.seg"), table.schema, dimensions=DIMS, metrics=METRICS,
                       temp_dir=str(tmp_path), chunk_rows=100) as writer:
        writer.append(table)
    assert os.listdir(tmp_path) == []


def test_writer_of_no_rows(tmp_path):
    table = _mixed_table(10).slice(0, 0)
    path = tmp_path / "empty.seg"
    SegmentWriter(str(path), table.schema, dimensions=DIMS, metrics=METRICS, temp_dir=str(tmp_path)).finish()
    assert read_segment_meta(str(path))["numRows"] == 0
    assert sorted(os.listdir(tmp_path)) == ["empty.seg"]


def test_string_dictionary_kernel_matches_first_seen_order():
    from msqcore.kernels import _segment as k
    from msqcore.storage.segment import _string_buffers
    rng = np.random.default_rng(9)
    pool = ["", "a", "é", "a\x00", "x" * 40] + [f"https://example.org/{i}" for i in range(5000)]
    dictionary = k.StringDictionary()
    seen: dict[str, int] = {}
    for size in (0, 1, 7, 3000, 20000):  # several batches, growing past the first table and buffer
        values = [None if rng.random() < 0.1 else pool[int(rng.integers(0, len(pool)))] for _ in range(size)]
        values[size // 2:size // 2 + 5] = [values[size // 2]] * 5 if size > 10 else values[size // 2:size // 2 + 5]
        arr = pa.array(values, pa.string())
        valid = np.array([v is not None for v in values], np.uint8)
        ids = dictionary.encode(*_string_buffers(arr), valid)
        expected = [0 if v is None else seen.setdefault(v, len(seen)) + 1 for v in values]
        assert ids.tolist() == expected
    offsets, data = dictionary.values()
    assert dictionary.cardinality == len(seen) == len(offsets) - 1
    assert [bytes(data[offsets[i]:offsets[i + 1]]).decode() for i in range(len(seen))] == list(seen)
    assert dictionary.has_null


# --- the segmentGenerator stage over HTTP -------------------------------------------------------

SIG = json.dumps([{"name": "ts", "type": "string"}, {"name": "ch", "type": "string"},
                  {"name": "page", "type": "string"}, {"name": "n", "type": "long"},
                  {"name": "x", "type": "double"}])


def _rows(n: int) -> list[dict]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        day, sec = int(rng.integers(1, 4)), int(rng.integers(0, 86400))
        out.append({"ts": f"2024-01-0{day}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z",
                    "ch": None if i % 17 == 0 else f"#c{int(rng.integers(0, 12))}",
                    "page": f"page {int(rng.integers(0, 2000))}", "n": int(rng.integers(0, 50)) if i % 13 else None,
                    "x": float(rng.random())})
    return out


def _extern(rows: list[dict]) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    return f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': data})}', '{{\"type\":\"json\"}}', '{SIG}'))"


def _segments(c, ds: str) -> list[dict]:
    segs = c.get(f"/druid/coordinator/v1/metadata/datasources/{ds}/segments?full")
    keep = ("interval", "dimensions", "metrics", "shardSpec", "size", "binaryVersion")
    return sorted(({k: s[k] for k in keep} for s in segs), key=lambda s: (s["interval"], json.dumps(s["shardSpec"])))


def test_replace_with_small_rows_in_memory_gives_the_same_datasource(server):
    c = server.client
    src = _extern(_rows(6000))
    sql = ("REPLACE INTO DS OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, ch, page, n, x FROM " + src +
           " PARTITIONED BY DAY CLUSTERED BY ch")
    reports = {}
    # 3 partitions of about 2,000 rows: "small" finishes each while sorting the next
    # (segment_gen.PIPELINE_ROWS_IN_MEMORY), "tiny" one after the other
    for ds, ctx in (("dflt", {}), ("small", {"rowsInMemory": 1000}), ("tiny", {"rowsInMemory": 300})):
        task = c.submit(sql.replace("DS", ds, 1), {"maxNumTasks": 2, **ctx})
        assert c.wait(task)["statusCode"] == "SUCCESS"
        reports[ds] = c.report(task)
    assert _segments(c, "small") == _segments(c, "dflt") == _segments(c, "tiny")
    assert len(_segments(c, "small")) == 3
    query = "SELECT __time, ch, page, n, x FROM {} ORDER BY __time, ch, page, n, x"
    assert c.sql(query.format("small")) == c.sql(query.format("dflt")) == c.sql(query.format("tiny"))

    def progress(report):
        stage = next(s for s in report["stages"] if s["definition"]["processor"]["type"] == "segmentGenerator")
        totals = {"rowsProcessed": 0, "rowsPersisted": 0, "rowsMerged": 0, "rowsPushed": 0}
        for worker in report["counters"][str(stage["stageNumber"])].values():
            for k in totals:
                totals[k] += worker["segmentGenerationProgress"][k]
        return totals

    assert progress(reports["small"]) == progress(reports["dflt"]) == progress(reports["tiny"]) == dict.fromkeys(
        ["rowsProcessed", "rowsPersisted", "rowsMerged", "rowsPushed"], 6000)


def test_rollup_with_small_rows_in_memory_merges_keys(server):
    c = server.client
    rows = _rows(3000)
    src = _extern(rows)
    sql = ("INSERT INTO r SELECT TIME_FLOOR(TIME_PARSE(ts), 'P1D') AS __time, ch, COUNT(*) AS cnt, SUM(n) AS sn "
           f"FROM {src} GROUP BY 1, 2 PARTITIONED BY DAY")
    ctx = {"finalizeAggregations": False, "groupByEnableMultiValueUnnesting": False, "rowsInMemory": 100}
    assert c.wait(c.submit(sql, ctx))["statusCode"] == "SUCCESS"
    keys = {(r["ts"][:10], r["ch"]) for r in rows}
    assert c.sql("SELECT COUNT(*) AS n, SUM(cnt) AS cnt, SUM(sn) AS sn FROM r") == \
        [{"n": len(keys), "cnt": 3000, "sn": sum(r["n"] or 0 for r in rows)}]
