"""Benchmarks of the native core: frames and the external sort (pytest-benchmark).

    python -m pytest -p no:cacheprovider bench/test_frames_sort.py --benchmark-only
    BENCH_SCALE=10 python -m pytest ... bench/test_frames_sort.py    # the issue's 10M-row target

* frame encode + decode vs Arrow IPC write + read of the same batches (with and without the
  sort-key column, which frames carry and IPC does not);
* ``ExternalSorter`` over (int64 time chunk, string, int64) keys with a 64 MiB memory
  budget (spilling, two merge levels) vs pyarrow ``sort_indices`` + ``take`` in memory.

Row counts are ``scaled(n)`` by ``BENCH_SCALE`` (default 1: about a minute in all). Arrow
is pinned to one thread so both sides use one core. There are no timing assertions; the
last test prints the ratios.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytest.importorskip("pytest_benchmark")

from msqcore.engine.frames import decode_frame, encode_frames  # noqa: E402
from msqcore.engine.sorter import ExternalSorter, read_frames_file  # noqa: E402

KEY = [("chunk", False), ("page", False), ("x", False)]
ARROW_KEY = [("chunk", "ascending"), ("page", "ascending"), ("x", "ascending")]
BUDGET = 64 << 20
_means: dict[str, float] = {}


def scaled(n: int, floor: int = 10_000) -> int:
    return max(floor, int(n * float(os.environ.get("BENCH_SCALE", "1"))))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    cpus, io_threads = pa.cpu_count(), pa.io_thread_count()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    yield
    pa.set_cpu_count(cpus)
    pa.set_io_thread_count(io_threads)


def make_table(n: int, seed: int = 42) -> pa.Table:
    """n rows of (7 daily time chunks, one of 50,000 page names, a random int64)."""
    rng = np.random.default_rng(seed)
    words = pa.array([f"Page_{i:06d}_{'abcdefgh'[i % 8] * (i % 13)}" for i in range(50_000)])
    return pa.table({
        "chunk": pa.array(rng.integers(0, 7, n) * 86_400_000 + 1_466_985_600_000, pa.int64()),
        "page": words.take(pa.array(rng.integers(0, 50_000, n))),
        "x": pa.array(rng.integers(0, 1 << 62, n), pa.int64()),
    })


@pytest.fixture(scope="module")
def frame_data() -> list[pa.RecordBatch]:
    return make_table(scaled(500_000)).to_batches(max_chunksize=65_536)


@pytest.fixture(scope="module")
def sort_data() -> pa.Table:
    return make_table(scaled(1_000_000), seed=7)


def _record(name: str, benchmark) -> None:
    _means[name] = benchmark.stats.stats.mean


def _frames_round_trip(batches, key):
    out = []
    for b in batches:
        for f in encode_frames(b, key):
            out.append(decode_frame(f))
    return out


def test_frames_encode_decode(benchmark, frame_data):
    out = benchmark(_frames_round_trip, frame_data, KEY)
    assert sum(b.num_rows for b in out) == sum(b.num_rows for b in frame_data)
    _record("frames", benchmark)


def test_frames_encode_decode_without_key(benchmark, frame_data):
    benchmark(_frames_round_trip, frame_data, [])
    _record("frames_nokey", benchmark)


def test_arrow_ipc_write_read(benchmark, frame_data):
    def run():
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, frame_data[0].schema) as w:
            for b in frame_data:
                w.write_batch(b)
        return pa.ipc.open_stream(pa.BufferReader(sink.getvalue())).read_all()

    out = benchmark(run)
    assert out.num_rows == sum(b.num_rows for b in frame_data)
    _record("ipc", benchmark)


def test_external_sort(benchmark, sort_data):
    batches = sort_data.to_batches(max_chunksize=65_536)
    state: dict = {}

    def setup():
        state["dir"] = tempfile.mkdtemp(prefix="bench-sort-")
        return (), {}

    def run():
        sorter = ExternalSorter(KEY, state["dir"], rows_in_memory=1 << 62, bytes_in_memory=BUDGET)
        try:
            for b in batches:
                sorter.add(b)
            (path,) = sorter.finish()
            rows = sum(b.num_rows for b in read_frames_file(path))
            state["progress"] = sorter.progress()
            return rows
        finally:
            sorter.close()
            shutil.rmtree(state["dir"], ignore_errors=True)

    rows = benchmark.pedantic(run, setup=setup, rounds=2, warmup_rounds=0)
    assert rows == sort_data.num_rows
    _record("external_sort", benchmark)
    print(f"\nexternal sort of {rows:,} rows in a {BUDGET >> 20} MiB budget: {state['progress']}")


def test_arrow_sort_in_memory(benchmark, sort_data):
    def run():
        return sort_data.take(pc.sort_indices(sort_data, sort_keys=ARROW_KEY))

    out = benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    assert out.num_rows == sort_data.num_rows
    _record("arrow_sort", benchmark)


def test_ratios(capsys):
    with capsys.disabled():
        print()
        if {"frames", "ipc"} <= _means.keys():
            print(f"frames encode+decode / Arrow IPC write+read: {_means['frames'] / _means['ipc']:.2f}x "
                  f"(without the key column: {_means.get('frames_nokey', float('nan')) / _means['ipc']:.2f}x)")
        if {"external_sort", "arrow_sort"} <= _means.keys():
            print(f"external sort / pyarrow sort_indices+take: "
                  f"{_means['external_sort'] / _means['arrow_sort']:.2f}x")
