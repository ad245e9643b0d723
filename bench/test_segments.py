"""Benchmarks of the segment format (issue #5): build and size against pyarrow's Parquet writer,
scans against DuckDB over the same rows in Parquet (pytest-benchmark).

    python -m pytest -p no:cacheprovider bench/test_segments.py --benchmark-only -s

* build: alternating pairs of ``write_segment`` and the Parquet writer, each pair's ratio
  printed in wall time and in CPU time of the process (the steadiest numbers on a shared
  machine); and ``write_segment`` vs ``pyarrow.parquet.write_table(compression="zstd")`` (dictionary
  on, pyarrow's default) on the same 1M-row wiki-like table, sorted as the segment generator
  sorts it (``__time``, then the dimensions); the file size ratio is printed too; and the same
  segment streamed through a ``SegmentWriter`` in 65,536-row batches with spools on disk, as
  the segment generator writes it; and the one-shot build with ``threads=2`` (against the
  Parquet writer on one thread: not like for like, reported apart);
* scan: ``channel, COUNT(*) GROUP BY channel`` and ``COUNT(*), SUM(added) WHERE channel = …``
  over 5M rows (five 1M-row segments, one per time chunk) through the read + aggregate
  kernel path (``read_segment(dictionary=True)`` + ``bincount``; the bitmap index + a
  row-selective read), vs DuckDB (1 thread) over one Parquet file of the same rows.

Row counts are ``scaled(n)`` by ``BENCH_SCALE``. Arrow and DuckDB use one thread. There are
no timing assertions; the ``ratios`` fixture prints the ratios at the end (peer time / msqcore time: above 1
means msqcore is faster).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pytest_benchmark")

from bench import gen_data  # noqa: E402
from bench._scale import scaled  # noqa: E402
from msqcore.storage.segment import SegmentWriter, read_segment, string_value_index, write_segment  # noqa: E402

FILTER_VALUE = "#de.wikipedia"
METRICS = ["added", "deleted", "delta", "commentLength", "deltaBucket"]
_means: dict[str, float] = {}
_sizes: dict[str, int] = {}
_pairs: list[float] = []  # Parquet time / segment time, one per alternating round
# the same in CPU time of this process (both sides on one thread): steadier than wall time
# when other processes share the cores
_cpu_pairs: list[float] = []


pytestmark = pytest.mark.usefixtures("one_thread")


def wiki_table(rows: int) -> tuple[pa.Table, list[str]]:
    """The generated wiki rows as the segment generator gets them: ``__time`` in millis, the
    booleans as strings, sorted by ``__time`` and then every dimension. Returns (table, dims)."""
    t = gen_data.generate_table(rows, seed=42)
    millis = pc.cast(pc.cast(t["timestamp"], pa.timestamp("ms", "UTC")), pa.int64())
    t = t.drop(["timestamp"]).add_column(0, "__time", millis)
    for b in gen_data.BOOLEANS:
        t = t.set_column(t.schema.get_field_index(b), b, pc.cast(t[b], pa.string()))
    dims = [c for c in t.column_names if c not in ("__time", *METRICS)]
    t = t.take(pc.sort_indices(t, [(c, "ascending") for c in ["__time", *dims]]))
    return pa.Table.from_batches(t.combine_chunks().to_batches()), dims


@pytest.fixture(scope="module")
def build_data():
    return wiki_table(scaled(1_000_000))


@pytest.fixture(scope="module")
def scan_data(tmp_path_factory, build_data):
    """5 segments of the 1M rows (shifted a week each) and one Parquet file of all 5M rows."""
    table, dims = build_data
    root = tmp_path_factory.mktemp("scan")
    week = 7 * 86_400_000
    paths, parts = [], []
    for k in range(5):
        part = table.set_column(0, "__time", pc.add(table["__time"], k * week))
        path = str(root / f"chunk{k}.seg")
        write_segment(path, part, dimensions=dims, metrics=METRICS)
        paths.append(path)
        parts.append(part)
    parquet = str(root / "all.parquet")
    pq.write_table(pa.concat_tables(parts), parquet, compression="zstd")
    return paths, parquet, 5 * table.num_rows


def _record(name: str, benchmark) -> None:
    _means[name] = benchmark.stats.stats.mean


# --- build ----------------------------------------------------------------------------------------


def test_build_segment(benchmark, build_data, tmp_path):
    table, dims = build_data
    path = str(tmp_path / "wiki.seg")
    size = benchmark.pedantic(write_segment, args=(path, table),
                              kwargs={"dimensions": dims, "metrics": METRICS}, rounds=3, warmup_rounds=1)
    assert read_segment(path, ["channel"]).column(0).equals(table.column("channel"))
    _sizes["segment"] = size
    _record("build_segment", benchmark)
    # for the size table: no bitmaps on the columns where almost every value is its own bitmap
    # (Druid's createBitmapIndex: false), here those with more than n / 10 distinct values
    strings = [d for d in dims if pa.types.is_string(table.schema.field(d).type)]
    low = [d for d in strings if pc.count_distinct(table.column(d)).as_py() <= table.num_rows // 10]
    _sizes["segment_low_card_bitmaps"] = write_segment(path, table, dimensions=dims, metrics=METRICS,
                                                       bitmap_indexes=low)
    _sizes["high_card"] = len(strings) - len(low)


def test_build_segment_two_threads(benchmark, build_data, tmp_path):
    """The same segment with ``threads=2`` (two columns hashed and encoded at a time): against
    the Parquet writer on one thread, so not like for like; the bytes are the same."""
    table, dims = build_data
    path = str(tmp_path / "wiki.seg")
    size = benchmark.pedantic(write_segment, args=(path, table),
                              kwargs={"dimensions": dims, "metrics": METRICS, "threads": 2}, rounds=3, warmup_rounds=1)
    assert "segment" not in _sizes or size == _sizes["segment"]
    _record("build_segment_two_threads", benchmark)


def test_build_alternating(benchmark, build_data, tmp_path):
    """Builds alternating with the Parquet writer, one pair per round, so both see the same load
    of a shared machine: the ratio of each pair (Parquet time / segment time) is kept."""
    table, dims = build_data
    seg, parquet = str(tmp_path / "wiki.seg"), str(tmp_path / "wiki.parquet")

    def pair() -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        write_segment(seg, table, dimensions=dims, metrics=METRICS)
        t1, c1 = time.perf_counter(), time.process_time()
        pq.write_table(table, parquet, compression="zstd")
        _pairs.append((time.perf_counter() - t1) / (t1 - t0))
        _cpu_pairs.append((time.process_time() - c1) / (c1 - c0))

    benchmark.pedantic(pair, rounds=5, warmup_rounds=1)
    del _pairs[:-5], _cpu_pairs[:-5]  # the warmup's pair goes


def _write_streamed(path: str, table: pa.Table, dims: list[str], temp_dir: str) -> int:
    """The segment generator's way: 65,536-row batches into a SegmentWriter that spools to disk."""
    writer = SegmentWriter(path, table.schema, dimensions=dims, metrics=METRICS, temp_dir=temp_dir)
    for batch in table.to_batches(max_chunksize=65_536):
        writer.append(batch)
    return writer.finish()


def test_build_segment_streamed(benchmark, build_data, tmp_path):
    table, dims = build_data
    path = str(tmp_path / "wiki.seg")
    size = benchmark.pedantic(_write_streamed, args=(path, table, dims, str(tmp_path)), rounds=3, warmup_rounds=1)
    assert size == os.path.getsize(path)
    _record("build_segment_streamed", benchmark)


def test_build_parquet(benchmark, build_data, tmp_path):
    table, _ = build_data
    path = str(tmp_path / "wiki.parquet")
    benchmark.pedantic(pq.write_table, args=(table, path), kwargs={"compression": "zstd"},
                       rounds=3, warmup_rounds=1)
    _sizes["parquet"] = os.path.getsize(path)
    _record("build_parquet", benchmark)


# --- scans ----------------------------------------------------------------------------------------


def segments_group_by_channel(paths: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in paths:
        col = read_segment(path, ["channel"], dictionary=True).column(0).combine_chunks()
        ids = col.indices.to_numpy(zero_copy_only=False)
        for value, n in zip(col.dictionary.to_pylist(), np.bincount(ids, minlength=len(col.dictionary)).tolist()):
            if n:
                counts[value] = counts.get(value, 0) + n
    return counts


def segments_filtered_sum(paths: list[str]) -> tuple[int, int]:
    count = total = 0
    for path in paths:
        index = string_value_index(path, "channel")
        rows = index.rows(index.lookup([FILTER_VALUE]))
        index.close()
        if len(rows):
            added = read_segment(path, ["added"], rows=rows).column(0)
            count += len(rows)
            total += pc.sum(added).as_py() or 0
    return count, total


@pytest.fixture(scope="module")
def duck():
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.execute("SET threads = 1")
    yield con
    con.close()


def test_scan_group_by_segments(benchmark, scan_data):
    paths, _, n = scan_data
    counts = benchmark.pedantic(segments_group_by_channel, args=(paths,), rounds=5, warmup_rounds=1)
    assert sum(counts.values()) == n
    _record("group_segments", benchmark)


def test_scan_group_by_duckdb(benchmark, scan_data, duck):
    paths, parquet, n = scan_data
    sql = f"SELECT channel, COUNT(*) FROM read_parquet('{parquet}') GROUP BY channel"
    rows = benchmark.pedantic(lambda: duck.execute(sql).fetchall(), rounds=5, warmup_rounds=1)
    assert dict(rows) == segments_group_by_channel(paths)
    _record("group_duckdb", benchmark)


def test_scan_filter_segments(benchmark, scan_data):
    paths, _, _ = scan_data
    count, _ = benchmark.pedantic(segments_filtered_sum, args=(paths,), rounds=5, warmup_rounds=1)
    assert count > 0
    _record("filter_segments", benchmark)


def test_scan_filter_duckdb(benchmark, scan_data, duck):
    paths, parquet, _ = scan_data
    sql = f"SELECT COUNT(*), SUM(added) FROM read_parquet('{parquet}') WHERE channel = '{FILTER_VALUE}'"
    row = benchmark.pedantic(lambda: duck.execute(sql).fetchone(), rounds=5, warmup_rounds=1)
    assert tuple(row) == segments_filtered_sum(paths)
    _record("filter_duckdb", benchmark)


@pytest.fixture(scope="module", autouse=True)
def ratios(request):
    """Print the ratios once the module's benches ran (also under --benchmark-only)."""
    yield
    out = request.config.pluginmanager.get_plugin("terminalreporter")
    write = out.write_line if out is not None else print
    write("")
    pairs = [("build", "build_parquet", "build_segment", "pyarrow Parquet writer"),
             ("build, write_segment(threads=2) vs Parquet on 1 thread", "build_parquet", "build_segment_two_threads",
              "pyarrow Parquet writer"),
             ("build streamed (SegmentWriter, 65,536-row batches)", "build_parquet", "build_segment_streamed",
              "pyarrow Parquet writer"),
             ("GROUP BY channel", "group_duckdb", "group_segments", "DuckDB on Parquet"),
             ("filter channel = value", "filter_duckdb", "filter_segments", "DuckDB on Parquet")]
    for label, peer, ours, peer_name in pairs:
        if {peer, ours} <= _means.keys():
            write(f"{label}: msqcore {_means[ours] * 1000:.1f} ms, {peer_name} {_means[peer] * 1000:.1f} ms "
                  f"-> speed {_means[peer] / _means[ours]:.2f}x")
    if _pairs:
        write(f"build, alternating with the Parquet writer ({len(_pairs)} pairs): speed "
              f"{', '.join(f'{r:.2f}x' for r in _pairs)}; median {float(np.median(_pairs)):.2f}x")
        write(f"  the same pairs in CPU time: speed {', '.join(f'{r:.2f}x' for r in _cpu_pairs)}; "
              f"median {float(np.median(_cpu_pairs)):.2f}x")
    if {"segment", "parquet"} <= _sizes.keys():
        write(f"size: segment {_sizes['segment'] / 2**20:.1f} MiB, Parquet {_sizes['parquet'] / 2**20:.1f} MiB "
              f"-> {_sizes['segment'] / _sizes['parquet']:.2f}x the Parquet size")
    if {"segment_low_card_bitmaps", "parquet"} <= _sizes.keys():
        write(f"size without bitmaps on the {_sizes['high_card']} columns of > n/10 distinct values: "
              f"{_sizes['segment_low_card_bitmaps'] / 2**20:.1f} MiB "
              f"-> {_sizes['segment_low_card_bitmaps'] / _sizes['parquet']:.2f}x the Parquet size")
